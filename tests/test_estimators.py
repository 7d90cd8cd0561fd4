"""jreg.estimators: scikit-learn's own estimator suite, agreement with scikit-learn's estimators
at matching strengths, the workflows (pipelines, grid searches, pandas, sample weights), and
padding that never changes a result."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import ElasticNet, Lasso, LassoCV, LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, ShuffleSplit, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from jreg import glm
from jreg.estimators import GLMClassifier, GLMClassifierCV, GLMRegressor, GLMRegressorCV, bucket
from jreg.glm import paths


@parametrize_with_checks([GLMRegressor(), GLMClassifier(), GLMRegressorCV(), GLMClassifierCV()])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def _regression(n=80, p=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) * rng.uniform(0.5, 3, p) + rng.uniform(-2, 2, p)
    y = X @ (rng.standard_normal(p) * (rng.uniform(size=p) < 0.6)) + rng.standard_normal(n)
    return X, y


def _classification(n=120, p=5, n_classes=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    z = X @ rng.standard_normal((p, n_classes)) + rng.gumbel(size=(n, n_classes))
    return X, np.array(["ant", "bee", "cat", "dog"])[np.argmax(z, axis=1)]


def test_lasso_and_elastic_net_equal_scikit_learn():
    X, y = _regression()
    for strength in (0.01, 0.1, 0.5):
        ours = GLMRegressor(strength=strength, tol=1e-12).fit(X, y)
        theirs = Lasso(alpha=strength, tol=1e-12, max_iter=100_000).fit(X, y)
        np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=1e-6)
        np.testing.assert_allclose(ours.intercept_, theirs.intercept_, atol=1e-6)
        assert np.array_equal(ours.coef_ == 0, theirs.coef_ == 0)
        ours = GLMRegressor(penalty="elastic_net", l1_ratio=0.3, strength=strength, tol=1e-12)
        theirs = ElasticNet(alpha=strength, l1_ratio=0.3, tol=1e-12, max_iter=100_000)
        np.testing.assert_allclose(ours.fit(X, y).predict(X), theirs.fit(X, y).predict(X),
                                   atol=1e-6)  # fmt: skip


def test_weighted_lasso_equals_scikit_learn():
    X, y = _regression(seed=1)
    weights = np.random.default_rng(1).uniform(0, 3, X.shape[0])
    ours = GLMRegressor(strength=0.05, tol=1e-12).fit(X, y, sample_weight=weights)
    theirs = Lasso(alpha=0.05, tol=1e-12, max_iter=100_000).fit(X, y, sample_weight=weights)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=1e-6)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_l1_logistic_equals_scikit_learn(n_classes):
    X, y = _classification(n_classes=n_classes)
    C = 0.5
    ours = GLMClassifier(strength=1 / (len(y) * C), tol=1e-12).fit(X, y)
    theirs = LogisticRegression(C=C, l1_ratio=1, solver="saga", tol=1e-10, max_iter=100_000)
    theirs.fit(X, y)
    assert list(ours.classes_) == list(theirs.classes_)
    assert ours.coef_.shape == theirs.coef_.shape == (1 if n_classes == 2 else n_classes, 5)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=2e-6)
    np.testing.assert_allclose(ours.predict_log_proba(X), np.log(ours.predict_proba(X)))
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    if n_classes == 2:  # a binary model is identified: the same coefficients
        np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=1e-5)
        np.testing.assert_allclose(ours.decision_function(X), theirs.decision_function(X),
                                   atol=1e-5)  # fmt: skip


def test_default_strength_is_one_sample_weight():
    """``strength=None``: :math:`1 / \\sum a_i`, as ``LogisticRegression(C=1)``."""
    X, y = _classification(n=60)
    weights = np.arange(60) % 3 + 1.0
    default = GLMClassifier().fit(X, y, sample_weight=weights)
    assert default.strength_ == pytest.approx(1 / weights.sum())
    explicit = GLMClassifier(strength=1 / weights.sum()).fit(X, y, sample_weight=weights)
    np.testing.assert_array_equal(default.coef_, explicit.coef_)


def test_cv_regressor_picks_lasso_cvs_strength():
    """Given the same folds and grid, ``scoring="mse"`` reproduces ``LassoCV``: its scores
    (``mse_path_``) and its choice."""
    X, y = _regression(n=150, p=10, seed=2)
    alphas = np.geomspace(1.0, 1e-3, 25)
    folds = KFold(5, shuffle=True, random_state=0)
    ours = GLMRegressorCV(strengths=alphas, cv=folds, scoring="mse", tol=1e-12).fit(X, y)
    theirs = LassoCV(alphas=alphas, cv=folds, tol=1e-12, max_iter=100_000).fit(X, y)
    np.testing.assert_allclose(ours.strengths_, theirs.alphas_)
    np.testing.assert_allclose(ours.scores_, theirs.mse_path_.T, rtol=1e-6)
    assert ours.strength_ == pytest.approx(theirs.alpha_)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=1e-6)
    one_se = GLMRegressorCV(strengths=alphas, cv=folds, scoring="mse", rule="1se").fit(X, y)
    assert one_se.strength_ >= ours.strength_
    assert np.sum(one_se.coef_ != 0) <= np.sum(ours.coef_ != 0)


def test_cv_estimators_equal_glm_cross_validate():
    X, y = _classification(n=150, n_classes=3, seed=3)
    labels = np.unique(y, return_inverse=True)[1]
    folds = np.arange(150) % 4
    splits = [(np.flatnonzero(folds != k), np.flatnonzero(folds == k)) for k in range(4)]
    ours = GLMClassifierCV(n_strengths=20, cv=splits, scoring="misclassification").fit(X, y)
    cv = glm.cross_validate(X, labels, folds=folds, datafit="multinomial", n_strengths=20,
                            scoring="misclassification")  # fmt: skip
    np.testing.assert_allclose(ours.scores_, cv.scores, atol=1e-12)
    assert ours.strength_ == pytest.approx(float(cv.best_strength))
    np.testing.assert_allclose(ours.predict_proba(X).sum(axis=1), 1)


def test_cv_must_partition_the_rows():
    X, y = _regression()
    with pytest.raises(ValueError, match="cv's test sets must partition the rows"):
        GLMRegressorCV(cv=ShuffleSplit(3, test_size=0.2, random_state=0)).fit(X, y)
    with pytest.raises(ValueError, match="rule must be one of"):
        GLMRegressorCV(rule="2se").fit(X, y)


def test_padding_never_changes_a_result():
    """Padded fits equal :func:`jreg.glm.fit` on the data as given: per-feature options
    (bounds, penalty factors, groups and their weights) padded so that the padded features
    stay at exactly 0."""
    X, y = _regression(n=37, p=11, seed=4)
    assert bucket(37) == 64 and bucket(11) == 16 and bucket(200) == 208
    groups = np.arange(11) // 3
    cases = [
        dict(penalty="l1", penalty_factor=np.linspace(0, 2, 11), bounds=(-np.ones(11), 1.0)),
        dict(penalty="group_lasso", groups=groups, group_weights=[1.0, 2.0, 0.5, 1.0]),
        dict(penalty="mcp", gamma=2.5),
    ]
    for options in cases:
        ours = GLMRegressor(strength=0.05, tol=1e-12, **options).fit(X, y)
        fit = glm.fit(X, y, 0.05, tol=1e-12, **options)
        np.testing.assert_allclose(ours.coef_, fit.coef, atol=1e-7)
        np.testing.assert_allclose(ours.intercept_, fit.intercept, atol=1e-7)
    with pytest.raises(ValueError, match=r"penalty_factor must have shape \(11,\)"):
        GLMRegressor(penalty_factor=np.ones(16)).fit(X, y)


def test_buckets():
    sizes = np.arange(1, 5000)
    padded = np.array([bucket(int(s)) for s in sizes])
    assert np.all(padded >= sizes) and np.all(np.diff(padded) >= 0)
    assert np.all(padded[sizes > 64] <= 1.125 * sizes[sizes > 64])
    assert len(np.unique(padded[sizes <= 64])) == 4  # 8, 16, 32, 64


def test_pipeline_grid_search_cross_val_score_and_pandas():
    X, y = _regression(n=100, p=6, seed=5)
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(6)])
    pipeline = make_pipeline(StandardScaler(), GLMRegressor(tol=1e-10))
    search = GridSearchCV(pipeline, {"glmregressor__strength": np.geomspace(1, 1e-3, 20)}, cv=5)
    search.fit(frame, y)
    model = search.best_estimator_[-1]
    assert model.coef_.shape == (6,)
    np.testing.assert_allclose(search.predict(frame), search.best_estimator_.predict(frame))
    direct = GLMRegressor().fit(frame, y)
    assert list(direct.feature_names_in_) == list(frame.columns)
    with pytest.warns(UserWarning, match="feature names"):
        direct.predict(X)
    # the grid's best equals a refit at its strength, and cross_val_score agrees with the search
    best = search.best_params_["glmregressor__strength"]
    refit = make_pipeline(StandardScaler(), GLMRegressor(strength=best, tol=1e-10)).fit(X, y)
    np.testing.assert_allclose(refit[-1].coef_, model.coef_, atol=1e-8)
    scores = cross_val_score(refit, X, y, cv=5)
    assert np.mean(scores) == pytest.approx(search.best_score_)


def test_grid_search_compiles_once_per_shape():
    """20 strengths x 5 folds and the refit: one compiled program (the folds' 48 rows and the
    full data's 60 share a bucket), never one per strength."""
    X, y = _regression(n=60, p=7, seed=6)
    y = y + 3  # a new program: no earlier test compiled this configuration
    before = paths.path_jit._cache_size()
    search = GridSearchCV(
        GLMRegressor(fit_intercept=False), {"strength": np.geomspace(1, 1e-3, 20)}
    )
    search.fit(X, y)
    assert paths.path_jit._cache_size() - before == 1


def test_sample_weight_and_poisson():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((200, 4))
    counts = rng.poisson(np.exp(0.5 * X[:, 0] - 0.3 * X[:, 1]))
    weights = rng.integers(0, 3, 200).astype(float)
    weighted = GLMRegressor(datafit="poisson", strength=0.01, tol=1e-12)
    weighted.fit(X, counts, sample_weight=weights)
    repeated = GLMRegressor(datafit="poisson", strength=0.01, tol=1e-12)
    repeated.fit(np.repeat(X, weights.astype(int), axis=0), np.repeat(counts, weights.astype(int)))
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, atol=1e-7)
    np.testing.assert_allclose(
        weighted.predict(X), np.exp(X @ weighted.coef_ + weighted.intercept_)
    )


def test_multi_output_regression():
    X, _ = _regression(n=60, p=5, seed=8)
    Y = X @ np.random.default_rng(8).standard_normal((5, 3))
    model = GLMRegressor(penalty="group_lasso", strength=0.1).fit(X, Y)
    assert model.coef_.shape == (3, 5) and model.intercept_.shape == (3,)
    assert model.predict(X).shape == (60, 3)


def test_import_jreg_does_not_import_scikit_learn():
    code = "import sys, jreg; assert 'sklearn' not in sys.modules, 'sklearn imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
