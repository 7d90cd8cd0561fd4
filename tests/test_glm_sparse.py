"""Sparse design matrices (scipy.sparse, BCOO): the same results as dense, never densified."""

import jax
import numpy as np
import pytest
import scipy.sparse
from glm_setup import setup_path
from jax.experimental import sparse as jax_sparse

from jreg import glm
from jreg.estimators import GLMClassifier, GLMRegressorCV
from jreg.glm import paths, solvers, sparse

TIGHT = dict(n_strengths=8, tol=1e-12)


def _problem(n, p, density=0.15, seed=0):
    """A sparse ``X`` (CSR) with non-zero column means, weights, and targets of every kind."""
    rng = np.random.default_rng(seed)
    X = scipy.sparse.random(n, p, density=density, random_state=seed, format="csr",
                            data_rvs=lambda k: rng.uniform(0.5, 2, k))  # fmt: skip
    beta = np.zeros(p)
    beta[:4] = [1.5, -1.0, 1.0, 0.8]
    z = X @ beta - 0.6
    targets = {
        "squared": z + 0.2 * rng.standard_normal(n),
        "logistic": (z + 0.5 * rng.standard_normal(n) > 0).astype(float),
        "poisson": rng.poisson(np.exp(0.5 * z)).astype(float),
        "multinomial": np.digitize(z + 0.3 * rng.standard_normal(n), [-0.8, 0.0]),
        "huber": z + rng.standard_t(2, n) * 0.3,
    }
    return X, targets, rng.uniform(0.5, 2.0, n)


def _assert_same_path(dense, fitted, atol=1e-7):
    np.testing.assert_allclose(fitted.strengths, dense.strengths, rtol=1e-12)
    np.testing.assert_allclose(fitted.coef, dense.coef, atol=atol)
    np.testing.assert_allclose(fitted.intercept, dense.intercept, atol=atol)
    # the same supports, up to rounding (at strength_max a feature's gradient equals its
    # threshold: either solver may leave it at 1e-16)
    np.testing.assert_array_equal(np.abs(fitted.coef) > 1e-12, np.abs(dense.coef) > 1e-12)


@pytest.mark.parametrize(
    "shape, fit_intercept",
    [((90, 30), True), ((40, 120), True), ((40, 120), False), ((60, 800), True)],
)
def test_lasso_path_on_sparse_X_equals_dense(shape, fit_intercept):
    X, targets, weights = _problem(*shape)
    kwargs = dict(fit_intercept=fit_intercept, sample_weight=weights, **TIGHT)
    dense = glm.path(X.toarray(), targets["squared"], **kwargs)
    _assert_same_path(dense, glm.path(X, targets["squared"], **kwargs))


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_logistic_path_on_sparse_X_equals_dense(fit_intercept):
    X, targets, weights = _problem(120, 40)
    kwargs = dict(datafit="logistic", fit_intercept=fit_intercept, sample_weight=weights, **TIGHT)
    dense = glm.path(X.toarray(), targets["logistic"], **kwargs)
    _assert_same_path(dense, glm.path(X, targets["logistic"], **kwargs), atol=1e-6)


@pytest.mark.parametrize("datafit", ["multinomial", "huber"])  # poisson: with an offset below
def test_other_datafits_on_sparse_X_equal_dense(datafit):
    X, targets, _ = _problem(120, 25)
    dense = glm.path(X.toarray(), targets[datafit], datafit=datafit, **TIGHT)
    _assert_same_path(dense, glm.path(X, targets[datafit], datafit=datafit, **TIGHT), atol=1e-6)


@pytest.mark.parametrize("form", ["csc", "coo", "BCOO", "padded BCOO", "duplicates"])
def test_every_sparse_form_gives_the_csr_path(form):
    X, targets, _ = _problem(40, 120)
    y = targets["squared"]
    if form == "BCOO":
        given = jax_sparse.BCOO.from_scipy_sparse(X)
    elif form == "padded BCOO":  # entries beyond nnz, at out-of-range indices (BCOO's padding)
        given = jax_sparse.BCOO.fromdense(X.toarray(), nse=X.nnz + 7)
    elif form == "duplicates":  # a COO matrix whose entries are split in two: summed
        coo = X.tocoo()
        given = scipy.sparse.coo_matrix(
            (np.r_[coo.data / 2, coo.data / 2], (np.r_[coo.row, coo.row], np.r_[coo.col, coo.col])),
            shape=X.shape,
        )
    else:
        given = X.asformat(form)
    _assert_same_path(glm.path(X, y, **TIGHT), glm.path(given, y, **TIGHT), atol=1e-12)


def test_support_products_from_the_windows_equal_dense():
    """Where a support's windows hold few of the non-zeros (60 x 800: 65 windows of at most 21
    of 7200), ``w @ rows`` is summed from them: the dense product, for one output and several,
    with the centring, and the whole product where the support is larger than ``size``."""
    X, _, _ = _problem(60, 800)
    mean = np.random.default_rng(1).standard_normal(800)
    rows = sparse.centred(sparse.from_input(X), mean).T
    size = 65
    assert size * rows.window * solvers._WINDOWS_SHARE <= rows.values.size  # the windows' case
    dense = (X.toarray() - mean).T
    rng = np.random.default_rng(2)
    support_product = jax.jit(solvers.support_product, static_argnums=2)
    for shape in [(800,), (800, 3)]:
        for support in (5, size, 300):  # 300 > size: the whole product
            w = np.zeros(shape)
            w[rng.choice(800, support, replace=False)] = rng.standard_normal((support, *shape[1:]))
            np.testing.assert_allclose(support_product(w, rows, size), w.T @ dense, atol=1e-12)


def test_sums_over_columns_with_and_without_slots_equal_dense():
    """``X^T V`` and the weighted squared column norms, centred, from the columns' slots (spread
    columns) and from the scatter-add (one dense column: the slots would hold 30x the
    non-zeros), equal the dense ones; a path on the dense-column matrix equals dense."""
    X, targets, _ = _problem(300, 200, density=0.02)
    heavy = X.tolil()
    heavy[:, 7] = np.linspace(1, 2, 300)[:, None]
    rng = np.random.default_rng(3)
    mean, V = rng.standard_normal(200), rng.standard_normal((300, 3))
    for matrix, slotted in [(X, True), (heavy.tocsr(), False)]:
        columns = sparse.from_input(matrix)
        assert (columns.slots is not None) == slotted
        rows = sparse.centred(columns, mean).T
        dense = (matrix.toarray() - mean).T
        np.testing.assert_allclose(jax.jit(lambda r, v: r @ v)(rows, V), dense @ V, atol=1e-12)
        squares = jax.jit(sparse.squares_times)(rows, V)
        np.testing.assert_allclose(squares, (dense**2) @ V, atol=1e-12)
    kwargs = dict(fit_intercept=True, **TIGHT)
    dense_path = glm.path(heavy.toarray(), targets["squared"], **kwargs)
    _assert_same_path(dense_path, glm.path(heavy.tocsr(), targets["squared"], **kwargs))


def test_the_centred_matrix_is_never_formed():
    """The compiled path (with an intercept, standardized) holds no ``(n, p)`` array: the
    shapes of its program name neither ``n x p`` nor ``p x n``."""
    X, targets, _ = _problem(101, 203, density=0.02)
    for datafit in ("squared", "logistic"):
        settings = paths.Settings(datafit=datafit, standardize=True, n_strengths=4)
        data, options, config, grid = setup_path(X, targets[datafit], settings)
        assert sparse.is_sparse(data.X)
        text = paths.path_jit.lower(data, grid, options, config=config).as_text()
        assert "101x203" not in text and "203x101" not in text
        dense_data = data._replace(X=X.toarray())
        dense_text = paths.path_jit.lower(dense_data, grid, options, config=config).as_text()
        assert "101x203" in dense_text or "203x101" in dense_text  # the check can fail


def test_penalties_and_options_on_sparse_X_equal_dense():
    X, targets, weights = _problem(40, 120)
    y = targets["squared"]
    factor = np.ones(120)
    factor[0], factor[5] = 0.0, np.inf  # an unpenalized and an excluded feature
    offset = np.linspace(-1, 1, 40)
    cases = [  # standardized, columns of small spread: coefficients in data units are the
        # solution's divided by it, so a 1e-12 gap leaves them 3e-6 apart (dense: Newton steps)
        dict(penalty="elastic_net", l1_ratio=0.5, standardize=True, tol=3e-14),
        dict(penalty_factor=factor, sample_weight=weights),
        dict(penalty="mcp", bounds=None),  # the same coordinate descent: the same point
        dict(penalty="group_lasso", groups=np.arange(120) // 4),
        dict(datafit="poisson", y=targets["poisson"], offset=offset),
    ]
    for case in cases:
        target = case.pop("y", y)
        kwargs = {**TIGHT, **case}
        dense = glm.path(X.toarray(), target, **kwargs)
        _assert_same_path(dense, glm.path(X, target, **kwargs), atol=1e-6)


def test_strength_max_fit_and_its_derivative_on_sparse_X_equal_dense():
    X, targets, _ = _problem(40, 120)
    y, Xd = targets["squared"], X.toarray()
    factor = np.r_[0.0, np.ones(119)]
    for kwargs in (dict(), dict(penalty_factor=factor), dict(standardize=True)):
        np.testing.assert_allclose(
            glm.strength_max(X, y, **kwargs), glm.strength_max(Xd, y, **kwargs), rtol=1e-9
        )
    fit = lambda X, s: glm.fit(X, y, s, tol=1e-12).coef  # noqa: E731
    np.testing.assert_allclose(fit(X, 0.05), fit(Xd, 0.05), atol=1e-9)
    slope = lambda X: jax.jacfwd(lambda s: fit(X, s))(0.05)  # noqa: E731
    np.testing.assert_allclose(slope(X), slope(Xd), atol=1e-7)
    assert np.any(np.asarray(slope(X)) != 0)
    batched = jax.vmap(lambda s: fit(X, s))(np.array([0.2, 0.05]))
    np.testing.assert_allclose(batched[1], fit(Xd, 0.05), atol=1e-9)


def test_cross_validation_and_stability_selection_on_sparse_X_equal_dense():
    """Over the suite's 4 devices (sharded by default). Half of 80 rows for 20 features: a
    subsample of 30 rows for 30 features is so ill-conditioned at the smallest strength that
    coordinate descent, dense or sparse, stalls at a gap of 2e-7 (10000 epochs)."""
    X, targets, _ = _problem(80, 20)
    Xd = X.toarray()
    for datafit in ("squared", "logistic"):
        y = targets[datafit]
        kwargs = dict(datafit=datafit, n_folds=3, n_strengths=6, tol=1e-12)
        dense, fitted = glm.cross_validate(Xd, y, **kwargs), glm.cross_validate(X, y, **kwargs)
        np.testing.assert_allclose(fitted.scores, dense.scores, rtol=1e-6)
        np.testing.assert_allclose(fitted.path.coef, dense.path.coef, atol=1e-6)
    y = targets["squared"]
    kwargs = dict(n_subsamples=6, n_strengths=5, tol=1e-12)
    dense = glm.stability_selection(Xd, y, **kwargs)
    fitted = glm.stability_selection(X, y, **kwargs)
    np.testing.assert_array_equal(fitted.probabilities, dense.probabilities)


def test_predict_and_estimators_take_sparse_X():
    X, targets, _ = _problem(60, 30)
    Xd = X.toarray()
    fit = glm.path(Xd, targets["logistic"], datafit="logistic", n_strengths=5)
    np.testing.assert_allclose(glm.predict(fit, X), glm.predict(fit, Xd), atol=1e-12)
    y = targets["squared"]
    dense, fitted = GLMRegressorCV(n_folds=3).fit(Xd, y), GLMRegressorCV(n_folds=3).fit(X, y)
    np.testing.assert_allclose(fitted.coef_, dense.coef_, atol=1e-6)
    np.testing.assert_allclose(fitted.predict(X), dense.predict(Xd), atol=1e-6)
    labels = targets["logistic"]
    clf = GLMClassifier(strength=0.01).fit(X, labels)
    np.testing.assert_allclose(clf.coef_, GLMClassifier(strength=0.01).fit(Xd, labels).coef_,
                               atol=1e-6)  # fmt: skip


def test_bad_sparse_input_is_named():
    X, targets, _ = _problem(20, 10)
    y = targets["squared"]
    broken = X.copy()
    broken.data[0] = np.nan
    with pytest.raises(ValueError, match="X must be finite"):
        glm.path(broken, y)
    with pytest.raises(TypeError, match="X must hold real numbers"):
        glm.path(X.astype(complex), y)
    batched = jax_sparse.BCOO.fromdense(np.ones((2, 20, 10)), n_batch=1)
    with pytest.raises(ValueError, match="X must be a 2-D BCOO"):
        glm.path(batched, y)
    with pytest.raises(ValueError, match="y must have 20 rows"):
        glm.path(X, y[:5])
    with pytest.raises(ValueError, match="X must have at least one sample"):
        glm.path(scipy.sparse.csr_matrix((20, 0)), y)
