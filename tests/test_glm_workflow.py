"""Tests of glmnet's everyday workflow in jreg.glm: ``offset``, ``standardize``, ``coef_at`` and
``predict`` (between grid points), against their definitions (optimality conditions in numpy, a
rescaled problem, the interpolation formula) and against R's glmnet (``offset``,
``standardize=TRUE``, ``predict(s=)``, ``cv.glmnet(foldid=)``; skipped where ``Rscript`` is
absent)."""

import os
import shutil
import subprocess
import tempfile

import jax
import numpy as np
import pytest
import scipy.special

from jreg import glm

TIGHT = dict(tol=1e-12, max_iter=100_000)
DATAFITS = ("squared", "logistic", "multinomial", "poisson", "huber")
N, P = 120, 8


def problem(datafit: str, seed: int = 0):
    """Features on different scales, an offset, and targets drawn with that offset."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, P)) * np.geomspace(0.1, 10, P)
    z = X @ (np.array([1.0, 0, -0.5, 0, 0, 0.05, 0, 0.02]) / np.geomspace(0.1, 10, P) * 0.8)
    offset = 0.5 * rng.standard_normal(N)
    eta = z + offset
    y = {
        "squared": eta + 0.3 * rng.standard_normal(N),
        "huber": eta + rng.standard_t(2, N),
        "logistic": (rng.random(N) < scipy.special.expit(eta)).astype(float),
        "poisson": rng.poisson(np.exp(eta)).astype(float),
        "multinomial": np.argmax(np.c_[eta, -eta, 0 * eta] + rng.gumbel(size=(N, 3)), axis=1),
    }[datafit]
    return X, y, offset


def loss_gradient(datafit: str, z, y):
    """The per-sample loss's gradient in the linear predictor ``z (n, m)``, in numpy."""
    if datafit == "squared":
        return z - y[:, None]
    if datafit == "huber":
        return np.clip(z - y[:, None], -1.35, 1.35)
    if datafit == "logistic":
        return scipy.special.expit(z) - y[:, None]
    if datafit == "poisson":
        return np.exp(z) - y[:, None]
    return scipy.special.softmax(z, axis=1) - np.eye(z.shape[1])[y]


def assert_lasso_optimal(datafit, X, y, offset, weights, coef, intercept, strength, atol):
    """The lasso's KKT conditions at ``(coef, intercept)`` with the offset in the predictor."""
    W = np.asarray(coef).reshape(X.shape[1], -1)
    b = np.asarray(intercept).reshape(-1)
    z = X @ W + b[None, :] + (0 if offset is None else offset.reshape(len(y), -1))
    a = weights / weights.sum()
    g = a[:, None] * loss_gradient(datafit, z, y)
    G = X.T @ g
    np.testing.assert_allclose(g.sum(axis=0), 0, atol=atol)  # the intercept's
    active = W != 0
    np.testing.assert_allclose(G[active], -strength * np.sign(W[active]), rtol=0, atol=atol)
    assert np.all(np.abs(G[~active]) <= strength + atol)


# --------------------------------------------------------------------------------------------
# offset


@pytest.mark.parametrize("datafit", DATAFITS)
def test_offset_is_optimal_with_the_offset_in_the_predictor(datafit):
    X, y, offset = problem(datafit)
    weights = np.random.default_rng(1).uniform(0.5, 2, N)
    fit = glm.path(X, y, datafit=datafit, offset=offset, sample_weight=weights, n_strengths=6,
                   **TIGHT)  # fmt: skip
    for k in (2, 5):
        assert_lasso_optimal(datafit, X, y, offset, weights, fit.coef[k], fit.intercept[k],
                             float(fit.strengths[k]), atol=1e-6)  # fmt: skip
    # at strength_max the solution is all zeros and the intercept is the null model's, with offset
    assert np.all(np.asarray(fit.coef[0]) == 0)
    assert_lasso_optimal(datafit, X, y, offset, weights, fit.coef[0], fit.intercept[0],
                         float(fit.strengths[0]), atol=1e-6)  # fmt: skip


def test_offset_changes_the_fit_and_matches_shifted_targets():
    """For the squared loss an offset is the same as subtracting it from ``y``; a multinomial
    offset may be given per class."""
    X, y, offset = problem("squared")
    with_offset = glm.path(X, y, offset=offset, n_strengths=5)
    shifted = glm.path(X, y - offset, n_strengths=5)
    np.testing.assert_allclose(with_offset.coef, shifted.coef, atol=1e-12)
    X, y, offset = problem("multinomial")
    per_class = np.c_[offset, -offset, 0 * offset]
    fit = glm.path(X, y, datafit="multinomial", offset=per_class, n_strengths=4, **TIGHT)
    assert_lasso_optimal("multinomial", X, y, per_class, np.ones(N), fit.coef[3],
                         fit.intercept[3], float(fit.strengths[3]), atol=1e-6)  # fmt: skip


def test_offset_is_checked():
    X, y, offset = problem("poisson")
    with pytest.raises(ValueError, match=r"offset must have shape \(120,\)"):
        glm.path(X, y, datafit="poisson", offset=offset[:-1])
    with pytest.raises(ValueError, match="offset must be finite"):
        glm.path(X, y, datafit="poisson", offset=np.where(np.arange(N) == 3, np.nan, offset))
    fit = glm.path(X, y, datafit="poisson", offset=offset, n_strengths=3)
    with pytest.raises(ValueError, match="offset must be given"):
        glm.predict(fit, X)


# --------------------------------------------------------------------------------------------
# standardize


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("datafit", ["squared", "logistic"])
def test_standardize_solves_the_rescaled_problem(datafit, fit_intercept):
    """``standardize=True`` is the path on ``X / s`` (``s`` the weighted standard deviations,
    a constant column left alone) with bounds times ``s``, coefficients divided by ``s``."""
    X, y, _ = problem(datafit)
    X[:, 4] = 3.0  # constant
    weights = np.random.default_rng(2).uniform(0.5, 2, N)
    a = weights / weights.sum()
    scale = np.sqrt(a @ (X - a @ X) ** 2)
    scale[4] = 1.0
    lower = np.full(P, -np.inf)
    lower[0] = -0.05
    kw = dict(datafit=datafit, sample_weight=weights, fit_intercept=fit_intercept, **TIGHT)
    fit = glm.path(X, y, standardize=True, n_strengths=6, bounds=(lower, np.inf), **kw)
    rescaled = glm.path(X / scale, y, strengths=fit.strengths, bounds=(lower * scale, np.inf),
                        **kw)  # fmt: skip
    np.testing.assert_allclose(fit.coef, np.asarray(rescaled.coef) / scale, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fit.intercept, rescaled.intercept, rtol=1e-6, atol=1e-9)
    assert np.all(np.asarray(fit.coef[:, 0]) >= -0.05)
    assert np.asarray(fit.deviance_ratio)[-1] > 0


def test_standardize_is_differentiable():
    """The derivative of the coefficients in the strength and the sample weights (through the
    scales) matches central differences."""
    X, y, _ = problem("squared")
    weights = np.random.default_rng(3).uniform(0.5, 2, N)

    def coef(strength, weights):
        return glm.fit(X, y, strength, standardize=True, sample_weight=weights, **TIGHT).coef

    strength, step = 0.05, 1e-6
    slope = jax.jacfwd(coef)(strength, weights)
    central = (coef(strength + step, weights) - coef(strength - step, weights)) / (2 * step)
    np.testing.assert_allclose(slope, central, rtol=1e-4, atol=1e-6)
    direction = np.random.default_rng(4).standard_normal(N)
    along = jax.jvp(lambda w: coef(strength, w), (weights,), (direction,))[1]
    central = (coef(strength, weights + step * direction)
               - coef(strength, weights - step * direction)) / (2 * step)  # fmt: skip
    np.testing.assert_allclose(along, central, rtol=1e-4, atol=1e-6)


def test_offset_with_standardize_is_differentiable():
    """Poisson counts with an offset, standardized: the derivative in the strength matches
    central differences."""
    X, y, offset = problem("poisson")

    def coef(strength):
        return glm.fit(X, y, strength, datafit="poisson", offset=offset, standardize=True,
                       **TIGHT).coef  # fmt: skip

    strength, step = 0.02, 1e-6
    central = (coef(strength + step) - coef(strength - step)) / (2 * step)
    np.testing.assert_allclose(jax.jacfwd(coef)(strength), central, rtol=1e-4, atol=1e-6)


def test_standardize_applies_per_fold():
    """In cross-validation each fold is standardized with its own rows (as glmnet's folds):
    fold ``k``'s path is the standardized path fitted without its rows."""
    X, y, _ = problem("squared")
    folds = np.arange(N) % 3
    cv = glm.cross_validate(X, y, folds=folds, standardize=True, n_strengths=5, **TIGHT)
    rows = folds != 1
    alone = glm.path(X[rows], y[rows], strengths=cv.strengths, standardize=True, **TIGHT)
    predicted = np.asarray(glm.predict(alone, X[~rows]))
    held_out = np.mean((predicted - y[~rows]) ** 2, axis=1) / 2
    np.testing.assert_allclose(cv.scores[1], held_out, rtol=1e-8)


def test_standardize_is_checked():
    X, y, _ = problem("squared")
    with pytest.raises(TypeError, match="standardize must be a bool"):
        glm.path(X, y, standardize="yes")


# --------------------------------------------------------------------------------------------
# coef_at and predict


def test_coef_at_interpolates_linearly_between_grid_points():
    X, y, _ = problem("logistic")
    fit = glm.path(X, y, datafit="logistic", n_strengths=8)
    s = np.asarray(fit.strengths)
    exact = glm.coef_at(fit, s)
    np.testing.assert_array_equal(exact.coef, fit.coef)
    np.testing.assert_array_equal(exact.intercept, fit.intercept)
    between = 0.3 * s[3] + 0.7 * s[4]
    at = glm.coef_at(fit, between)
    np.testing.assert_allclose(at.coef, 0.3 * fit.coef[3] + 0.7 * fit.coef[4], rtol=1e-12)
    np.testing.assert_allclose(at.intercept, 0.3 * fit.intercept[3] + 0.7 * fit.intercept[4])
    beyond = glm.coef_at(fit, [10 * s[0], s[-1] / 10])  # the nearest end
    np.testing.assert_array_equal(beyond.coef, np.asarray(fit.coef)[[0, -1]])
    # a grid given in any order interpolates the same
    shuffled = glm.path(X, y, datafit="logistic", strengths=s[::-1][[3, 0, 7, 1, 5, 2, 6, 4]])
    np.testing.assert_allclose(glm.coef_at(shuffled, between).coef, at.coef, atol=1e-5)


def test_predict_outputs_and_shapes():
    X, y, _ = problem("multinomial")
    cv = glm.cross_validate(X, y, datafit="multinomial", n_strengths=6, n_folds=3)
    k, C = 6, 3
    assert glm.predict(cv, X[:5]).shape == (k, 5, C)
    probabilities = glm.predict(cv, X[:5], strength="1se")
    np.testing.assert_allclose(np.sum(probabilities, axis=-1), 1, rtol=1e-12)
    link = glm.predict(cv, X[:5], strength="best", output="link")
    np.testing.assert_allclose(probabilities, scipy.special.softmax(
        glm.predict(cv, X[:5], strength=cv.strength_1se, output="link"), axis=-1))  # fmt: skip
    coef = glm.coef_at(cv, "best")
    np.testing.assert_allclose(link, X[:5] @ np.asarray(coef.coef) + np.asarray(coef.intercept),
                               rtol=1e-12)  # fmt: skip
    classes = glm.predict(cv, X, strength=[cv.best_strength, cv.strength_1se], output="class")
    assert classes.shape == (2, N) and set(np.unique(classes)) <= {0, 1, 2}
    assert np.mean(np.asarray(classes[0]) == y) > 0.5
    # logistic with labels {-1, 1}: classes in the fit's labels; poisson: means exp(link)
    Xl, yl, _ = problem("logistic")
    fit = glm.path(Xl, 2 * yl - 1, datafit="logistic", n_strengths=4)
    assert set(np.unique(glm.predict(fit, Xl, output="class"))) == {-1, 1}
    Xp, yp, offset = problem("poisson")
    fit = glm.path(Xp, yp, datafit="poisson", offset=offset, n_strengths=4)
    link = glm.predict(fit, Xp, offset=offset, output="link")
    np.testing.assert_allclose(glm.predict(fit, Xp, offset=offset), np.exp(link))


def test_predict_is_checked():
    X, y, _ = problem("squared")
    fit = glm.path(X, y, n_strengths=3)
    with pytest.raises(ValueError, match="output must be one of"):
        glm.predict(fit, X, output="probability")
    with pytest.raises(ValueError, match='output="class" needs a classifier'):
        glm.predict(fit, X, output="class")
    with pytest.raises(ValueError, match=r"X must have shape \(n_samples, 8\)"):
        glm.predict(fit, X[:, :3])
    with pytest.raises(ValueError, match="strength must be finite and >= 0"):
        glm.predict(fit, X, strength=-1.0)
    with pytest.raises(ValueError, match='"best" / "1se" for a CrossValidation'):
        glm.coef_at(fit, "best")
    with pytest.raises(TypeError, match="fit must be a Path or a CrossValidation"):
        glm.predict(glm.fit(X, y, 0.1), X)


def test_predict_works_under_jit():
    X, y, _ = problem("logistic")
    fit = glm.path(X, y, datafit="logistic", n_strengths=5)
    predicted = jax.jit(lambda f, X, s: glm.predict(f, X, strength=s))(fit, X, 0.01)
    np.testing.assert_allclose(predicted, glm.predict(fit, X, strength=0.01), rtol=1e-12)


# --------------------------------------------------------------------------------------------
# R's glmnet


def run_glmnet(script: str, **arrays) -> dict:
    """Runs ``script`` in R with glmnet loaded and each array as a numeric matrix or vector
    read from CSV; returns the CSV files it writes into ``dir`` (``out_<name>.csv``)."""
    if shutil.which("Rscript") is None:
        pytest.skip("Rscript is not installed (apt-get install r-cran-glmnet)")
    with tempfile.TemporaryDirectory() as directory:
        reads = []
        for name, value in arrays.items():
            np.savetxt(os.path.join(directory, f"{name}.csv"), value, delimiter=",")
            read = f'as.matrix(read.csv(file.path(dir, "{name}.csv"), header = FALSE))'
            reads.append(f"{name} <- {read if np.ndim(value) == 2 else read + '[, 1]'}")
        header = f'suppressMessages(library(glmnet)); dir <- "{directory}"\n'
        header += "out <- function(name, x) write.table(as.matrix(x), file.path(dir, "
        header += 'paste0("out_", name, ".csv")), sep = ",", row.names = FALSE,\n'
        header += "col.names = FALSE)\n"
        result = subprocess.run(["Rscript", "-e", header + "\n".join(reads) + "\n" + script],
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        if result.returncode != 0 and "glmnet" in result.stderr:
            pytest.skip(f"R's glmnet is not available: {result.stderr[-300:]}")
        assert result.returncode == 0, result.stderr[-2000:]
        return {
            name[4:-4]: np.loadtxt(os.path.join(directory, name), delimiter=",", ndmin=2)
            for name in os.listdir(directory)
            if name.startswith("out_")
        }


GLMNET_FIT = """
fit <- glmnet(X, y, family = family, weights = w, offset = if (length(o) > 1) o else NULL,
              standardize = TRUE, intercept = intercept, lambda = lambda_, thresh = 1e-14,
              maxit = 1e7)
out("coef", as.matrix(coef(fit)))
out("dev", fit$dev.ratio)
out("link", predict(fit, X, s = s, newoffset = if (length(o) > 1) o else NULL, type = "link"))
out("coef_s", as.matrix(coef(fit, s = s)))
"""


@pytest.mark.parametrize(
    "datafit, intercept, with_offset",
    [("squared", True, False), ("squared", False, False), ("logistic", True, True),
     ("poisson", True, True)],
)  # fmt: skip
def test_standardize_offset_and_predict_match_glmnet(datafit, intercept, with_offset):
    """glmnet with ``standardize = TRUE``, sample weights and ``offset``, at jreg's strengths:
    coefficients, ``dev.ratio``, and ``coef`` / ``predict(type = "link")`` at strengths
    between the grid's."""
    X, y, offset = problem(datafit)
    weights = np.random.default_rng(5).uniform(0.5, 2, N)
    kw = dict(offset=offset) if with_offset else {}
    fit = glm.path(X, y, datafit=datafit, standardize=True, sample_weight=weights,
                   fit_intercept=intercept, n_strengths=8, **kw, **TIGHT)  # fmt: skip
    strengths = np.asarray(fit.strengths)
    between = np.sqrt(strengths[2:6] * strengths[3:7])
    family = {"squared": "gaussian", "logistic": "binomial"}.get(datafit, datafit)
    script = f'family <- "{family}"; intercept <- {str(intercept).upper()}\n' + GLMNET_FIT
    out = run_glmnet(script, X=X, y=y, w=weights, lambda_=strengths, s=between,
                     o=offset if with_offset else np.zeros(1))  # fmt: skip
    scale = np.abs(np.asarray(fit.coef)).max()
    np.testing.assert_allclose(fit.coef[1:], out["coef"][1:, 1:].T, atol=1e-6 * scale)
    np.testing.assert_allclose(fit.intercept[1:], out["coef"][0, 1:], atol=1e-6 * scale)
    np.testing.assert_allclose(fit.deviance_ratio, out["dev"][:, 0], atol=1e-6)
    at = glm.coef_at(fit, between)
    np.testing.assert_allclose(at.coef, out["coef_s"][1:].T, atol=1e-6 * scale)
    link = glm.predict(fit, X, strength=between, output="link", **kw)
    np.testing.assert_allclose(link, out["link"].T, atol=1e-5 * scale)


def test_cross_validate_with_foldid_offset_and_standardize_matches_cv_glmnet():
    """``cv.glmnet(foldid =, offset =, standardize = TRUE)`` for Poisson counts: its ``cvm``
    (the mean held-out deviance, twice jreg's half deviance) at jreg's strengths."""
    X, y, offset = problem("poisson")
    folds = np.random.default_rng(6).permutation(np.arange(N) % 4)
    cv = glm.cross_validate(X, y, datafit="poisson", folds=folds, offset=offset,
                            standardize=True, n_strengths=10, **TIGHT)  # fmt: skip
    script = """
    cv <- cv.glmnet(X, y, family = "poisson", offset = o, foldid = foldid, lambda = lambda_,
                    standardize = TRUE, thresh = 1e-14, maxit = 1e7, grouped = TRUE)
    out("cvm", cv$cvm)
    """
    out = run_glmnet(script, X=X, y=y, o=offset, foldid=folds + 1, lambda_=cv.strengths)
    np.testing.assert_allclose(2 * np.mean(cv.scores, axis=0), out["cvm"][:, 0], rtol=1e-5)
