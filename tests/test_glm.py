"""Tests of jreg.glm: optimality at every strength, references, options, CV, stability, errors.

The optimality (KKT) conditions are checked directly, with gradients computed here in numpy from
the returned coefficients and intercepts, for every datafit x penalty pair on two data sets
(n >> p, and correlated features) and, for the pairs with a reference, on a third (p >> n). The
KKT tolerance follows from the stopping rule: a gap (or squared gradient mapping) at most
``tol * F(0)`` bounds the optimality residual by about ``2 sqrt(2 L tol F(0))``, ``L`` the
Lipschitz constant of the datafit's gradient (see ``kkt_tolerance``).

References: scikit-learn (``lasso_path``, ``enet_path``, ``LogisticRegression``, ``Ridge``),
celer (``GroupLasso``, optional) and, for mcp and scad, exact coordinate descent written here
(Breheny and Huang's closed-form coordinate updates; skglm's ``MCPenalty``/``SCAD`` agree with it,
but compiling skglm with numba costs more than this whole file). Ours must reach an objective no
worse than theirs up to our stopping tolerance, and the same coefficients.

Compiled programs are shared between tests: the data sets have two shapes (the correlated one is
"tall"), the grids six strengths, and the float64 solver settings are ``TIGHT``.
"""

import functools
import os
import re
import subprocess
import sys
import types
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.sparse
import scipy.special
from glm_setup import setup_path
from numpy_penalties import concave_slopes, concave_values
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge, enet_path, lasso_path
from sklearn.metrics import r2_score

from jreg import glm, penalties, prox
from jreg.glm import datafits, objectives, paths, selection, solvers, sparse

TOL = 1e-12
MAX_ITER = 100_000
TIGHT = dict(tol=TOL, max_iter=MAX_ITER)  # the float64 solver settings of every test
# The grid, as fractions of strength_max: 0.99 checks that strength_max is the smallest strength
# with an all-zero solution.
RATIOS = np.array([1.0, 0.99, 0.6, 0.3, 0.1, 0.03])
L1_RATIO = 0.5
GAMMA, A = 3.0, 3.7  # jreg's defaults for mcp and scad (also ncvreg's and skglm's usual values)
DATAFITS = ("squared", "logistic")
PENALTIES = ("l1", "elastic_net", "group_lasso", "mcp", "scad", "l2")
SHAPES = {"tall": (200, 20), "wide": (30, 100), "correlated": (200, 20)}
BETA = {0: 2.0, 3: -1.5, 7: 1.0, 12: 0.5}  # the true coefficients; every other one is 0


class Data(NamedTuple):
    X: np.ndarray
    y: np.ndarray  # regression targets
    labels: np.ndarray  # {0, 1}
    groups: np.ndarray  # interleaved groups of unequal sizes, non-consecutive ids

    def target(self, datafit):
        return self.y if datafit == "squared" else self.labels


@functools.cache
def dataset(name: str) -> Data:
    n, p = SHAPES[name]
    rng = np.random.default_rng(list(SHAPES).index(name))
    X = rng.standard_normal((n, p))
    if name == "correlated":  # Toeplitz covariance rho^|i - j|, rho = 0.9
        X = X @ np.linalg.cholesky(scipy.linalg.toeplitz(0.9 ** np.arange(p))).T
    beta = np.zeros(p)
    beta[list(BETA)] = list(BETA.values())
    z = X @ beta + 0.3
    y = z + 0.5 * rng.standard_normal(n)
    labels = (rng.random(n) < scipy.special.expit(z)).astype(float)
    groups = 10 * (np.arange(p) % (6 if p == 20 else 30))
    return Data(X, y, labels, groups)


def options(penalty: str, groups) -> dict:
    return {"elastic_net": {"l1_ratio": L1_RATIO}, "group_lasso": {"groups": groups}}.get(
        penalty, {}
    )


def squared_parts(X, y, penalty="l1", **kw):
    """The squared loss's data, datafit and penalty on ``X, y``."""
    data, options, config = paths.setup(X, y, paths.Settings(penalty=penalty, **TIGHT, **kw))
    datafit, penalty = paths.parts(config, options, data)
    return data, datafit, penalty


def squared_problem(X, y, penalty="l1", **kw):
    """The squared loss's problem (with its smooth) and its penalty on ``X, y``."""
    data, datafit, penalty = squared_parts(X, y, penalty, **kw)
    return objectives.problem(datafit, penalty, data, fit_intercept=True), penalty


# --------------------------------------------------------------------------------------------
# Independent numpy model of the objective.


def normalized(weights, n):
    return np.full(n, 1 / n) if weights is None else np.asarray(weights, float) / np.sum(weights)


def datafit_and_gradients(X, y, w, b, datafit, weights=None):
    """Datafit value and its gradients in w and b, at (w, b); labels mapped to {-1, 1}."""
    a = normalized(weights, X.shape[0])
    z = X @ w + b
    if datafit == "squared":
        r = z - y
        return 0.5 * a @ r**2, X.T @ (a * r), a @ r
    signs = np.where(y > 0, 1.0, -1.0)
    u = scipy.special.expit(-signs * z)
    return a @ np.logaddexp(0, -signs * z), -X.T @ (a * signs * u), -a @ (signs * u)


def group_sizes(groups):
    return {g: np.sum(groups == g) for g in np.unique(groups)}


def penalty_value(w, strength, penalty, groups=None):
    lam, aw = np.full_like(w, strength), np.abs(w)
    if penalty == "l1":
        return lam @ aw
    if penalty == "l2":
        return lam @ w**2 / 2
    if penalty == "elastic_net":
        return lam @ (L1_RATIO * aw + (1 - L1_RATIO) / 2 * w**2)
    if penalty in ("mcp", "scad"):
        return np.sum(concave_values(aw, lam, penalty, gamma=GAMMA, a=A))
    sizes = group_sizes(groups)
    return strength * sum(np.sqrt(sizes[g]) * np.linalg.norm(w[groups == g]) for g in sizes)


def objective(X, y, w, b, datafit, strength, penalty, groups=None):
    value = datafit_and_gradients(X, y, w, b, datafit)[0]
    return value + penalty_value(w, strength, penalty, groups)


def kkt_violation(grad, w, strength, penalty, factor=None, groups=None) -> float:
    """Largest violation of ``0 in grad + dP(w)``, coordinate-wise (per group for the group lasso).

    At ``w_j = 0`` the condition is ``|grad_j| <= P'(0+) = lam_j`` (``l1_ratio * lam_j`` for the
    elastic net); elsewhere ``grad_j = -P'(w_j)``. ``lam_j = strength * factor_j``; for the group
    lasso ``factor`` holds the group weights (by sorted id), by default sqrt(group size).
    """
    lam = strength * (np.ones_like(w) if factor is None else factor)
    if penalty == "group_lasso":
        worst = 0.0
        for i, (g, size) in enumerate(group_sizes(groups).items()):
            members, weight = groups == g, np.sqrt(size) if factor is None else factor[i]
            lam_g, norm = strength * weight, np.linalg.norm(w[members])
            if norm == 0:
                worst = max(worst, np.linalg.norm(grad[members]) - lam_g)
            else:
                worst = max(worst, np.linalg.norm(grad[members] + lam_g * w[members] / norm))
        return worst
    if penalty == "l2":
        return np.max(np.abs(grad + lam * w))
    if penalty == "elastic_net":
        grad, lam = grad + (1 - L1_RATIO) * lam * w, L1_RATIO * lam
    aw = np.abs(w)
    concave = penalty in ("mcp", "scad")  # P'(|w|) for w != 0
    slope = concave_slopes(aw, lam, penalty, gamma=GAMMA, a=A) if concave else lam
    return np.max(np.where(w == 0, np.abs(grad) - lam, np.abs(grad + np.sign(w) * slope)))


def value_at_zero(y, datafit, weights=None, fit_intercept=True):
    """The objective at w = 0 and the best intercept (what ``tol`` is relative to)."""
    a = normalized(weights, y.size)
    if datafit == "squared":
        return 0.5 * a @ (y - (a @ y if fit_intercept else 0)) ** 2
    q = a @ (y > 0)
    return -(q * np.log(q) + (1 - q) * np.log1p(-q)) if fit_intercept else np.log(2)


def lipschitz(X, datafit, weights=None, fit_intercept=True):
    a = normalized(weights, X.shape[0])
    if datafit == "squared":
        Xc = X - a @ X if fit_intercept else X
        return np.linalg.eigvalsh(Xc.T @ (a[:, None] * Xc))[-1]
    Xb = np.column_stack([X, np.ones(X.shape[0])]) if fit_intercept else X
    return np.linalg.eigvalsh(Xb.T @ (a[:, None] * Xb))[-1] / 4


def kkt_tolerance(X, y, datafit, tol, weights=None, fit_intercept=True):
    """``3 sqrt(2 L tol F(0))``: a squared gradient mapping ``|G|^2 / (2 L')`` at most
    ``tol F(0)`` (``L' ~ 1.1 L`` the solver's step constant) leaves a residual at most
    ``2 |G| ~ 2.1 sqrt(2 L tol F(0))`` at the proximal point; a duality gap that small, in
    practice, less. (Observed: at most ``1.0 sqrt(2 L tol F(0))`` over every path here.)"""
    f0 = value_at_zero(y, datafit, weights, fit_intercept)
    return 3 * np.sqrt(2 * lipschitz(X, datafit, weights, fit_intercept) * tol * f0)


def assert_optimal(
    fit, X, y, datafit, penalty, tol, *, factor=None, groups=None, weights=None, fit_intercept=True
):
    """The KKT conditions at every strength of ``fit``, and the intercept's gradient is 0."""
    bound = kkt_tolerance(X, y, datafit, tol, weights, fit_intercept)
    for k, strength in enumerate(np.asarray(fit.strengths, float)):
        w, b = np.asarray(fit.coef[k], float), float(fit.intercept[k])
        _, grad, grad_b = datafit_and_gradients(X, y, w, b, datafit, weights)
        violation = kkt_violation(grad, w, strength, penalty, factor, groups)
        assert violation <= bound, f"strength #{k}: KKT violation {violation:.3g} > {bound:.3g}"
        if fit_intercept:
            assert abs(grad_b) <= bound, f"strength #{k}: intercept gradient {grad_b:.3g}"
        else:
            assert b == 0


def grid(X, y, datafit, penalty, **kw):
    """``RATIOS`` times strength_max (the lasso's for ``l2``, whose own is glmnet's convention)."""
    top = glm.strength_max(
        X, y, datafit=datafit, penalty="l1" if penalty == "l2" else penalty, **kw
    )
    return float(top) * RATIOS


@functools.cache
def fitted(name: str, datafit: str, penalty: str) -> glm.Path:
    data = dataset(name)
    y, kw = data.target(datafit), options(penalty, data.groups)
    fit = glm.path(
        data.X,
        y,
        datafit=datafit,
        penalty=penalty,
        strengths=grid(data.X, y, datafit, penalty, **kw),
        **TIGHT,
        **kw,
    )
    return jax.tree.map(np.asarray, fit)


ALL_PAIRS = [(datafit, penalty) for datafit in DATAFITS for penalty in PENALTIES]
# p >> n exercises the solver on X (not the Gram matrix) and its working sets (p >= 64). Each
# (shape, pair) is a compiled program: on "wide", the pairs the reference tests use.
WIDE_PAIRS = [
    ("squared", "l1"),
    ("squared", "elastic_net"),
    ("squared", "group_lasso"),
    ("squared", "l2"),
    ("logistic", "l1"),
    ("logistic", "l2"),
]
KKT_CASES = [(name, *pair) for name in ("tall", "correlated") for pair in ALL_PAIRS] + [
    ("wide", *pair) for pair in WIDE_PAIRS
]


# --------------------------------------------------------------------------------------------
# Optimality at every strength.


@pytest.mark.parametrize("name, datafit, penalty", KKT_CASES)
def test_kkt_conditions_hold_at_every_strength(name, datafit, penalty):
    data = dataset(name)
    y, fit = data.target(datafit), fitted(name, datafit, penalty)
    assert fit.coef.shape == (RATIOS.size, data.X.shape[1])
    assert_optimal(fit, data.X, y, datafit, penalty, TOL, groups=data.groups)
    # The stopping rule was met, within the iteration budget.
    assert np.all(fit.gap >= 0)
    assert np.all(fit.gap <= TOL * value_at_zero(y, datafit) * (1 + 1e-6)), fit.gap
    assert np.all(fit.n_iter < MAX_ITER)
    # The solver moved wherever the solution changed along the path (warm starts).
    assert np.any(fit.coef[-1] != 0) and np.any(fit.n_iter > 0)
    previous = np.vstack([np.zeros_like(fit.coef[:1]), fit.coef[:-1]])
    unchanged = np.all(fit.coef == previous, axis=1)
    assert np.all(unchanged[fit.n_iter == 0]), fit.n_iter


def assert_within_strength(fit, X, y, datafit, penalty, tol):
    """Every coefficient meets its optimality condition within ``max(10 sqrt(tol), 1e-3)`` of
    the strength (the solvers' residual target; for the group lasso each group within
    ``sqrt(size)`` times that, a group's norm of per-coordinate residuals), up to rounding."""
    scale = max(10 * np.sqrt(tol), 1e-3) * (np.sqrt(X.shape[1]) if penalty == "group_lasso" else 1)
    for k, strength in enumerate(np.asarray(fit.strengths, float)):
        w, b = np.asarray(fit.coef[k], float), float(fit.intercept[k])
        _, grad, _ = datafit_and_gradients(X, y, w, b, datafit)
        groups = options(penalty, 10 * (np.arange(X.shape[1]) % 6)).get("groups")
        violation = kkt_violation(grad, w, strength, penalty, groups=groups)
        assert violation <= scale * strength + 1e-12, (k, violation / strength)


@pytest.mark.parametrize("name, datafit, penalty", [c for c in KKT_CASES if c[2] != "group_lasso"])
def test_every_coefficient_meets_its_condition_within_the_strengths_scale(name, datafit, penalty):
    data = dataset(name)
    y, fit = data.target(datafit), fitted(name, datafit, penalty)
    assert_within_strength(fit, data.X, y, datafit, penalty, TOL)


@pytest.mark.parametrize("penalty", ["l1", "elastic_net", "mcp", "scad"])
def test_supports_are_exact_at_tol_1e_8_on_correlated_wide_data(penalty):
    """Issue 14's case: 120 x 400, chain-correlated features, an intercept, 20 strengths at
    tol=1e-8. Before, MCP returned a coefficient of -3e-5 where the solution is 0 (an
    extrapolated point), SCAD one of the wrong sign, the elastic net a zero whose gradient
    exceeded its threshold by 1e-3 of the strength; every coefficient now meets its condition
    within 1e-3 of the strength. (Logistic: the tall and correlated sets above; labels on this
    one are separable at the small strengths, where MCP's minimizer does not exist.)"""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 400))
    X[:, 1:] += 0.3 * X[:, :-1]
    y = X[:, :5] @ np.array([3, -2, 1.5, 1, -1.0]) + rng.standard_normal(120) + 2
    kw = options(penalty, None)
    fit = glm.path(X, y, penalty=penalty, n_strengths=20, tol=1e-8, **kw)
    assert_within_strength(fit, X, y, "squared", penalty, 1e-8)


@pytest.mark.parametrize("name, datafit, penalty", [case for case in KKT_CASES if case[2] != "l2"])
def test_strength_max_is_the_smallest_strength_with_zero_solution(name, datafit, penalty):
    data = dataset(name)
    y, fit = data.target(datafit), fitted(name, datafit, penalty)
    # The closed form: the largest |gradient at 0| (group norm / sqrt(size)), over l1_ratio.
    a = normalized(None, y.size)
    q = a @ (y > 0)
    b0 = a @ y if datafit == "squared" else np.log(q / (1 - q))
    _, grad0, _ = datafit_and_gradients(data.X, y, np.zeros(data.X.shape[1]), b0, datafit)
    if penalty == "group_lasso":
        expected = max(
            np.linalg.norm(grad0[data.groups == g]) / np.sqrt(size)
            for g, size in group_sizes(data.groups).items()
        )
    else:
        expected = np.max(np.abs(grad0)) / (L1_RATIO if penalty == "elastic_net" else 1)
    np.testing.assert_allclose(fit.strengths[0], expected, rtol=1e-10)
    # All zeros at strength_max, with the intercept-only model; not all zeros just below.
    np.testing.assert_array_equal(fit.coef[0], 0)
    np.testing.assert_allclose(fit.intercept[0], b0, rtol=1e-10)
    assert np.any(fit.coef[1] != 0), "strength_max is not the smallest such strength"


@pytest.mark.parametrize("datafit, shape", [("squared", (200, 50)), ("squared", (60, 150)),
                                           ("logistic", (200, 50))])  # fmt: skip
def test_a_top_strength_rounded_another_way_gives_the_zero_solution(datafit, shape):
    """``glm.fit(X, y, cv.strengths[0])`` returned a coefficient of 1e-16 on 26 of 48 data
    sets: the cross-validation's program computes the top strength from ``X``, ``fit`` from
    the host's moments, a few ulps apart. Strengths that close below the top are solved at it;
    1e-9 below it the lasso's solution is not 0."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal(shape) * rng.uniform(0.1, 10, shape[1]) + 3
    y = X[:, :3] @ np.array([1.0, -0.5, 0.3]) / 10 + rng.standard_normal(shape[0])
    y = (y > np.median(y)).astype(float) if datafit == "logistic" else y
    top = float(glm.strength_max(X, y, datafit=datafit))
    tops = [top * (1 - 20 * np.finfo(float).eps)]
    if datafit == "squared" and shape[0] > shape[1]:  # the case found: moments against X
        tops.append(float(glm.cross_validate(X, y, n_strengths=3).strengths[0]))
    for strength in tops:
        np.testing.assert_array_equal(glm.fit(X, y, strength, datafit=datafit).coef, 0)
    if datafit == "squared":  # (logistic: 0 meets the tolerance there, its first iterate)
        assert np.count_nonzero(glm.fit(X, y, top * (1 - 1e-9)).coef) == 1


@pytest.mark.parametrize("datafit", DATAFITS)
def test_strength_max_for_ridge_is_glmnet_convention(datafit):
    """Ridge solutions are never exactly 0: ``strength_max`` for ``l2`` is the elastic net's at
    ``l1_ratio = 1e-3`` (glmnet's convention), where the coefficients are small but non-zero."""
    data = dataset("tall")
    y = data.target(datafit)
    top = float(glm.strength_max(data.X, y, datafit=datafit, penalty="l2"))
    lasso_top = float(glm.strength_max(data.X, y, datafit=datafit))
    np.testing.assert_allclose(top, lasso_top / 1e-3, rtol=1e-12)
    fit = glm.path(data.X, y, datafit=datafit, penalty="l2", strengths=top * RATIOS, **TIGHT)
    coef = np.asarray(fit.coef[0])
    assert np.all(coef != 0)
    # |w| <= |grad F(0)| / strength for the strongly convex ridge objective.
    assert np.linalg.norm(coef) <= np.sqrt(data.X.shape[1]) * lasso_top / top


# --------------------------------------------------------------------------------------------
# Agreement with scikit-learn, celer and exact coordinate descent.


def assert_matches_reference(fit, problem, coefs, intercepts, *, atol, condition=1.0, first=0):
    """At every strength (from ``first`` on), ours is no worse than the reference up to our
    tolerance, and the coefficients and intercepts agree to ``atol``.

    ``problem`` is ``(X, y, datafit, penalty, groups)``. A duality gap at most ``TOL * F(0)``
    bounds our suboptimality; for mcp and scad the stopping rule bounds the squared gradient
    mapping instead, which bounds the suboptimality of a strongly convex objective
    ``condition = L / mu`` times as much.
    """
    X, y, datafit, penalty, groups = problem
    slack = TOL * value_at_zero(y, datafit) * (2 * condition if condition > 1 else 1) + 1e-14
    for k in range(first, RATIOS.size):
        strength = float(fit.strengths[k])
        ours = objective(X, y, fit.coef[k], fit.intercept[k], datafit, strength, penalty, groups)
        theirs = objective(X, y, coefs[k], intercepts[k], datafit, strength, penalty, groups)
        assert ours <= theirs + slack, (k, ours - theirs)
        np.testing.assert_allclose(fit.coef[k], coefs[k], rtol=0, atol=atol, err_msg=f"#{k}")
        np.testing.assert_allclose(fit.intercept[k], intercepts[k], rtol=0, atol=atol)


@pytest.mark.parametrize("name", SHAPES)
@pytest.mark.parametrize("penalty", ["l1", "elastic_net"])
def test_squared_matches_sklearn_lasso_and_enet_path(name, penalty):
    """On centered data (``lasso_path`` fits no intercept), then ``b = mean(y) - mean(X) w``."""
    data = dataset(name)
    fit = fitted(name, "squared", penalty)
    x_mean, y_mean = data.X.mean(axis=0), data.y.mean()
    solve = lasso_path if penalty == "l1" else functools.partial(enet_path, l1_ratio=L1_RATIO)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=1e-14 may not be reached
        Xc, yc = data.X - x_mean, data.y - y_mean
        coefs = solve(Xc, yc, alphas=fit.strengths, tol=1e-14, max_iter=100_000)[1].T
    problem = (data.X, data.y, "squared", penalty, None)
    assert_matches_reference(fit, problem, coefs, y_mean - coefs @ x_mean, atol=1e-5)


@pytest.mark.parametrize("name", SHAPES)
def test_squared_l2_matches_sklearn_ridge(name):
    """``Ridge(alpha = n * strength)``."""
    data = dataset(name)
    fit = fitted(name, "squared", "l2")
    n = data.X.shape[0]
    models = [Ridge(alpha=n * s, solver="cholesky").fit(data.X, data.y) for s in fit.strengths]
    coefs, intercepts = [m.coef_ for m in models], [m.intercept_ for m in models]
    problem = (data.X, data.y, "squared", "l2", None)
    assert_matches_reference(fit, problem, coefs, intercepts, atol=1e-5)


def logistic_regression(X, y, strength, penalty, **kw):
    """scikit-learn's ``LogisticRegression`` with ``C = 1 / (n strength)``: saga for L1 (seeded:
    it is stochastic), newton-cholesky for L2; both leave the intercept unpenalized, as we do."""
    C = 1 / (X.shape[0] * strength)
    if penalty == "l1":
        kw.update(l1_ratio=1.0, solver="saga", max_iter=50_000, random_state=0)
    else:
        kw.update(solver="newton-cholesky")
    return LogisticRegression(C=C, tol=1e-12, **kw).fit(X, y)


@pytest.mark.parametrize("name", SHAPES)
@pytest.mark.parametrize("penalty", ["l1", "l2"])
def test_logistic_matches_sklearn_logistic_regression(name, penalty):
    """Saga's stopping rule (on the change of the coefficients) stops it early when they are all
    zero: the L1 comparison starts below strength_max (whose intercept is checked in closed form
    by the strength_max test)."""
    data = dataset(name)
    fit = fitted(name, "logistic", penalty)
    models = [logistic_regression(data.X, data.labels, s, penalty) for s in fit.strengths]
    coefs, intercepts = [m.coef_[0] for m in models], [m.intercept_[0] for m in models]
    problem = (data.X, data.labels, "logistic", penalty, None)
    first = 1 if penalty == "l1" else 0
    assert_matches_reference(fit, problem, coefs, intercepts, atol=5e-5, first=first)


@pytest.mark.parametrize("name", SHAPES)
def test_group_lasso_matches_celer(name):
    """celer's ``GroupLasso(alpha = strength, weights = sqrt(group sizes))``."""
    celer = pytest.importorskip("celer")
    data = dataset(name)
    fit = fitted(name, "squared", "group_lasso")
    sizes = group_sizes(data.groups)
    members = [np.flatnonzero(data.groups == g).tolist() for g in sizes]
    weights = np.sqrt(list(sizes.values()))
    coefs, intercepts = [], []
    for strength in fit.strengths:
        model = celer.GroupLasso(
            groups=members,
            alpha=strength,
            weights=weights,
            tol=1e-14,
            max_iter=1_000,
            max_epochs=100_000,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # celer's sklearn base class may warn
            model.fit(data.X, data.y)
        coefs.append(model.coef_)
        intercepts.append(model.intercept_)
    problem = (data.X, data.y, "squared", "group_lasso", data.groups)
    assert_matches_reference(fit, problem, coefs, intercepts, atol=1e-5)


def coordinate_descent(X, y, strengths, penalty, *, sweeps=20_000):
    """Squared loss + mcp/scad with an intercept by cyclic coordinate descent, warm-started down
    the path. Each coordinate is minimized exactly (firm thresholding, Breheny and Huang 2011),
    which needs the column's curvature above the penalty's largest negative curvature."""
    n = y.size
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    curvature = (Xc**2).sum(axis=0) / n
    concavity = 1 / GAMMA if penalty == "mcp" else 1 / (A - 1)
    assert np.all(curvature > concavity)
    w, coefs = np.zeros(X.shape[1]), []
    for lam in strengths:
        residual = yc - Xc @ w
        for _ in range(sweeps):
            largest_step = 0.0
            for j, v in enumerate(curvature):
                z = Xc[:, j] @ residual / n + v * w[j]
                soft = np.sign(z) * max(abs(z) - lam, 0.0)
                if penalty == "mcp":
                    new = soft / (v - 1 / GAMMA) if abs(z) <= GAMMA * lam * v else z / v
                elif abs(z) <= lam * (1 + v):
                    new = soft / v
                elif abs(z) <= A * lam * v:
                    new = np.sign(z) * max(abs(z) - A * lam / (A - 1), 0.0) / (v - 1 / (A - 1))
                else:
                    new = z / v
                residual -= Xc[:, j] * (new - w[j])
                largest_step = max(largest_step, abs(new - w[j]))
                w[j] = new
            if largest_step < 1e-13:
                break
        coefs.append(w.copy())
    coefs = np.array(coefs)
    return coefs, y.mean() - coefs @ X.mean(axis=0)


@pytest.mark.parametrize("penalty", ["mcp", "scad"])
def test_mcp_and_scad_match_coordinate_descent(penalty):
    """On "tall" the objective is strongly convex despite the concave penalty (the smallest
    eigenvalue of the centered covariance exceeds the penalty's largest negative curvature), so
    its minimizer is unique and any two solvers must agree, to the KKT tolerance over mu, the
    objective's strong convexity. (Elsewhere, e.g. with correlated features, the paths may end at
    different stationary points; the KKT test covers those.)"""
    data = dataset("tall")
    Xc = data.X - data.X.mean(axis=0)
    eigenvalues = np.linalg.eigvalsh(Xc.T @ Xc / Xc.shape[0])
    mu = eigenvalues[0] - (1 / GAMMA if penalty == "mcp" else 1 / (A - 1))
    assert mu > 0
    fit = fitted("tall", "squared", penalty)
    coefs, intercepts = coordinate_descent(data.X, data.y, fit.strengths, penalty)
    atol = kkt_tolerance(data.X, data.y, "squared", TOL) / mu
    problem = (data.X, data.y, "squared", penalty, None)
    assert_matches_reference(
        fit, problem, coefs, intercepts, atol=atol, condition=eigenvalues[-1] / mu
    )


@pytest.mark.parametrize("datafit", DATAFITS)
def test_without_intercept_matches_sklearn(datafit):
    data = dataset("tall")
    y = data.target(datafit)
    strengths = float(glm.strength_max(data.X, y, datafit=datafit, fit_intercept=False)) * RATIOS
    fit = glm.path(data.X, y, datafit=datafit, strengths=strengths, fit_intercept=False, **TIGHT)
    np.testing.assert_array_equal(fit.intercept, 0)
    assert_optimal(fit, data.X, y, datafit, "l1", TOL, fit_intercept=False)
    np.testing.assert_array_equal(fit.coef[0], 0)
    assert np.any(fit.coef[1] != 0)
    if datafit == "squared":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            coefs = lasso_path(data.X, y, alphas=strengths, tol=1e-14, max_iter=100_000)[1].T
    else:
        models = [logistic_regression(data.X, y, s, "l1", fit_intercept=False) for s in strengths]
        coefs = [m.coef_[0] for m in models]
    problem = (data.X, y, datafit, "l1", None)
    assert_matches_reference(fit, problem, coefs, np.zeros(RATIOS.size), atol=5e-5)


# --------------------------------------------------------------------------------------------
# The Newton step of the active-set solver (squared loss, l1 and elastic net).


@pytest.mark.parametrize("name", ["tall", "wide"])  # the Gram form and the X form
@pytest.mark.parametrize("penalty", ["l1", "elastic_net"])
def test_newton_step_from_the_solutions_support_lands_on_the_solution(name, penalty):
    """From a point with the solution's support and signs where no zero feature violates the
    optimality condition (so that none enters), one step solves the problem."""
    data = dataset(name)
    fit = fitted(name, "squared", penalty)
    kw = {"l1_ratio": L1_RATIO} if penalty == "elastic_net" else {}
    problem, penalty_fn = squared_problem(data.X, data.y, penalty, **kw)
    datafit = problem
    rng = np.random.default_rng(0)
    for k in (2, 4, 5):
        solution = np.asarray(fit.coef[k])
        lam = jnp.full(solution.size, float(fit.strengths[k]))
        noise = rng.uniform(-0.5, 0.5, solution.size)
        for spread in 0.5 ** np.arange(12):  # same support and signs, shrunk until none enters
            start = jnp.asarray(solution * (1 + spread * noise))
            grad = datafit.smooth.evaluate(start, jnp.zeros(1)).grad_w
            if np.all(np.asarray(penalty_fn.violation(grad, lam))[solution == 0] < 0):
                break
        assert np.all(np.asarray(penalty_fn.violation(grad, lam))[solution == 0] < 0)
        assert np.abs(start - solution).max() > 1e-4 * np.abs(solution).max()
        step, _, _ = solvers.newton(datafit.smooth, penalty_fn, start, grad, lam)
        np.testing.assert_array_equal(np.asarray(step) != 0, solution != 0)
        np.testing.assert_allclose(step, solution, rtol=0, atol=1e-5)  # the path's accuracy
        w = np.asarray(step, float)  # optimal to rounding (the path only to its tolerance)
        b = data.y.mean() - data.X.mean(axis=0) @ w
        _, grad, _ = datafit_and_gradients(data.X, data.y, w, b, "squared")
        assert kkt_violation(grad, w, float(fit.strengths[k]), penalty) < 1e-12


@pytest.mark.parametrize("shape", [(120, 80), (50, 100)])  # the Gram form and the X form
def test_batched_newton_steps_are_the_members_steps(shape):
    """Under vmap (cross-validation folds) each member's system is solved in its own size: the
    batched step equals each member's own step, members spanning several system sizes (the
    Gram form; the X form has one size, and a factor per member)."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal(shape), rng.standard_normal(shape[0])
    prepared, datafit, penalty = squared_parts(X, y)
    weights = jnp.asarray(rng.uniform(0.5, 1.5, (3, shape[0])))
    weights = weights / weights.sum(axis=1, keepdims=True)
    supports = [3, 30, 45]  # Gram form: system sizes 32, 64 and 64 with the entering features
    starts = jnp.asarray(
        rng.standard_normal((3, shape[1])) * (np.arange(shape[1]) < np.c_[supports])
    )
    strength = 0.01 * float(np.abs(X.T @ y).max()) / shape[0]

    def step(weights, start):
        data = prepared._replace(weights=weights)
        smooth = objectives.problem(datafit, penalty, data, fit_intercept=True).smooth
        lam = jnp.full(start.shape, strength)
        grad = smooth.evaluate(start, jnp.zeros(1)).grad_w
        return solvers.newton(smooth, penalty, start, grad, lam)[0]

    batched = jax.jit(jax.vmap(step))(weights, starts)
    # batched and single programs may sum in other orders (a GPU's, or CPU kernels compiled
    # without vectorization), and the X form's systems here are near-singular (steps of 1e9):
    # their rounding is amplified to 1e-4 (H200; CPU at LLVM -O0 3e-4); a system of the wrong size
    # is O(1)
    well_posed = shape[0] > shape[1] and jax.default_backend() == "cpu"
    rtol = 1e-10 if well_posed else 1e-3
    for i in range(3):
        alone = jax.jit(step)(weights[i], starts[i])
        assert np.sum(np.asarray(alone) != np.asarray(starts[i])) > supports[i] // 2  # a step
        np.testing.assert_allclose(batched[i], alone, rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("shape", [(120, 80), (50, 100)])  # the Gram form and the X form
def test_newton_first_crossing_is_a_descent_step_in_the_orthant(shape):
    """Where the Newton target flips signs, the step to the first sign change: on the segment to
    the target (every moved coordinate the same fraction ``t`` in (0, 1) of the way), the first
    coordinate to reach 0 set to 0, no other sign flipped, and a lower objective than the start
    (the projected target, every flipped coordinate zeroed, need not be)."""
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal(shape), rng.standard_normal(shape[0])
    prepared, datafit, penalty = squared_parts(X, y)
    problem = objectives.problem(datafit, penalty, prepared, fit_intercept=True)
    lam = jnp.full(shape[1], 0.05 * float(np.abs(X.T @ y).max()) / shape[0])
    objective = lambda w: problem.smooth.evaluate(w, jnp.zeros(1)).loss + penalty.value(w, lam)  # noqa: E731
    crossed = 0
    for seed in range(10):
        start = jnp.asarray(np.random.default_rng(seed).standard_normal(shape[1])
                            * (np.arange(shape[1]) < 30))  # fmt: skip
        grad = problem.smooth.evaluate(start, jnp.zeros(1)).grad_w
        point, first, _ = solvers.newton(problem.smooth, penalty, start, grad, lam)
        start, point, first = np.asarray(start), np.asarray(point), np.asarray(first)
        flipped = (start != 0) & (point == 0)
        if not flipped.any():
            np.testing.assert_array_equal(first, point)
            continue
        crossed += 1
        moved = (point != 0) & (np.abs(point - start) > 1e-8)
        t = (first - start)[moved] / (point - start)[moved]
        assert 0 < t.min() and t.max() < 1 and np.ptp(t) <= 1e-8 * t.max()
        zeroed = flipped & (first == 0)
        assert zeroed.sum() == 1
        kept = (start != 0) & ~zeroed
        np.testing.assert_array_equal(np.sign(first[kept]), np.sign(start[kept]))
        assert objective(jnp.asarray(first)) < objective(jnp.asarray(start))
    assert crossed >= 3


def test_newton_factor_updates_give_the_direct_directions():
    """The X form's Newton factor, carried through active sets that grow, lose features (the
    slots from the first that left on are dropped where many left or the factor is singular,
    else they are held at 0), change curvature (built anew) and empty, always gives the direct
    Newton direction on the active set; the appends read the factor's first quarter, half or
    all of its slots, and the 40 features appended at once take each."""
    rng = np.random.default_rng(0)
    n, p = 50, 100
    X = rng.standard_normal((n, p))
    X[:, 99] = X[:, 98]  # duplicated: singular systems pass by the jitter
    prepared, datafit, penalty = squared_parts(X, rng.standard_normal(n))
    smooth = objectives.problem(datafit, penalty, prepared, fit_intercept=True).smooth
    rows, a, _ = map(np.asarray, smooth.hessian_data)
    grad = rng.standard_normal(p)
    grad = jnp.asarray(np.r_[grad[:99], grad[98]])  # a gradient of the duplicated pair

    @jax.jit
    def step(active, curvature, factor, plan):
        return smooth.factor_step(smooth.hessian_data, active, grad, curvature, plan, factor)

    factor = smooth.factor
    quarter, half, _ = solvers._prefix_widths(factor.order.size)
    block = solvers._APPEND_BLOCK  # the blocks of the 37 appended after 3 end at ``ends``
    ends = np.arange(3 + block, 3 + 37 + block, block)
    assert min(ends) <= quarter < ends[(ends > quarter) & (ends <= half)].min()
    assert max(ends) > half and 40 < factor.order.size
    assert 31 <= solvers._LEAVING_MAX < 34  # the steps below that hold at 0 and that cut
    changes = [  # (features, curvature, the first slot dropped: None, none)
        ([3, 7, 9], 0.0, None),
        (range(40), 0.0, None),
        ([3, *range(0, 40, 8), 41, 43], 0.0, 1),  # 34 leave, the first (7) from the second slot
        ([*range(0, 40, 3), 41, 43, 45, 60, 61], 0.0, None),
        ([*range(0, 40, 6), *range(41, 48), 60, 61], 0.0, None),  # 10 leave: held at 0
        ([*range(0, 40, 6), 60, 61, 98, 99], 0.5, 0),  # the curvature changed
        ([*range(30), 98, 99], 0.0, 0),  # the curvature changed; singular (the duplicated pair)
        ([*range(30), 98], 0.0, 31),  # 99 leaves a singular set: from its slot on
        ([], 0.0, None),  # 31 leave: held at 0
    ]
    for features, shift, first in changes:
        active = jnp.zeros(p, bool).at[jnp.asarray(features, int)].set(True)
        curvature = jnp.full(p, shift)
        first_dropped, count = smooth.factor_plan(factor, active, curvature)
        assert int(first_dropped) == (factor.order.size if first is None else first)
        assert int(count) <= smooth.newton_size
        direction, factor = step(active, curvature, factor, first_dropped)
        f = sorted(features)
        hessian = (rows[f] * a) @ rows[f].T + shift * np.eye(len(f))
        expected = np.zeros(p)
        if f and 99 not in f:
            expected[f] = -np.linalg.solve(hessian, np.asarray(grad)[f])
            np.testing.assert_allclose(direction, expected, rtol=1e-9, atol=1e-9)
        else:  # singular: any minimizer
            d = np.asarray(direction)
            assert np.all(np.isfinite(d)) and np.all(d[~np.asarray(active)] == 0)
            np.testing.assert_allclose(hessian @ d[f], -np.asarray(grad)[f], atol=1e-6)


def test_predicted_gradient_is_exact_on_a_linear_piece_of_the_lasso_path():
    """Coordinate descent's first Newton step at a strength lets in features by the gradient
    predicted from the last two solutions: on a piece of the lasso path where no feature
    enters or leaves (its path is linear there) it is the next solution's gradient (solutions:
    scikit-learn's ``lasso_path``), where the last solution's own gradient is off by the
    strength's change; before a first solution it is that solution's gradient."""
    rng = np.random.default_rng(0)
    n, p = 60, 12
    X = rng.standard_normal((n, p))
    y = X[:, :4] @ np.array([2.0, -1.0, 0.5, 1.5]) + 0.3 * rng.standard_normal(n)
    top = np.max(np.abs(X.T @ y)) / n
    strengths = top * np.array([0.3, 0.299, 0.298])
    _, coefs, _ = lasso_path(X, y, alphas=strengths, tol=1e-14, max_iter=100_000)
    signs = np.sign(coefs.T)
    assert np.all(signs == signs[0]) and 0 < np.sum(signs[0] != 0) < p  # one linear piece
    grads = [X.T @ (X @ w - y) / n for w in coefs.T]

    def evaluation(grad):
        return solvers.Evaluation(jnp.zeros(()), jnp.asarray(grad), jnp.zeros(1), None)

    lam = [jnp.full(p, s) for s in strengths]
    first = solvers.first_warm(evaluation(grads[0]), None)
    np.testing.assert_array_equal(solvers.predicted_gradient(first, lam[1]), grads[0])
    warm = solvers.warm_after(
        solvers.warm_after(first, evaluation(grads[0]), None, lam[0]),
        evaluation(grads[1]), None, lam[1],
    )  # fmt: skip
    predicted = solvers.predicted_gradient(warm, lam[2])
    np.testing.assert_allclose(predicted, grads[2], atol=1e-10 * top)
    assert np.max(np.abs(grads[1] - grads[2])) > 1e-4 * top


def test_newton_steps_on_the_complement_equal_the_direct_steps():
    """Large supports of a well-conditioned Gram form solve on the complement of the active set
    (from the inverse Gram matrix): the same step as the direct system, alone and batched; a
    singular Gram matrix (a duplicated feature) is inverted with a shift, the steps on its
    complement those of the shifted direct system."""
    rng = np.random.default_rng(0)
    n, p = 400, 200
    X, y = rng.standard_normal((n, p)), rng.standard_normal(n)
    prepared, datafit, penalty = squared_parts(X, y)
    supports = [190, 150, 110]  # complement systems of 5, 45 and 85 features
    starts = jnp.asarray(rng.standard_normal((3, p)) * (np.arange(p) < np.c_[supports]))
    lam = jnp.full(p, 0.01 * float(np.abs(X.T @ y).max()) / n)
    smooth = objectives.problem(datafit, penalty, prepared, fit_intercept=True).smooth
    assert smooth.complement_size > 0
    gram, inverse = smooth.hessian_data
    nan_gram = smooth._replace(hessian_data=(jnp.full_like(gram, jnp.nan), inverse))

    def step(start, *, complement=True):
        # with a NaN Gram matrix a direct step would give none
        solver = nan_gram if complement else smooth._replace(complement_size=0)
        grad = smooth.evaluate(start, jnp.zeros(1)).grad_w
        return solvers.newton(solver, penalty, start, grad, lam)[0]

    batched = jax.jit(jax.vmap(step))(starts)
    for i, support in enumerate(supports):
        system, outside = solvers.newton_system(smooth, support + 5, p)
        assert bool(outside) and int(system) == p - support - 5
        direct = jax.jit(functools.partial(step, complement=False))(starts[i])
        assert np.sum(np.asarray(direct) != np.asarray(starts[i])) > support // 2  # a step
        np.testing.assert_allclose(jax.jit(step)(starts[i]), direct, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(batched[i], direct, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(inverse @ gram, np.eye(p), atol=1e-9)  # nearly exact
    # a singular Gram matrix (a duplicated feature) is inverted with a shift sqrt(eps) L: the
    # steps on its complement are the direct steps on G_SS + shift I
    duplicated = prepared._replace(X=prepared.X.at[:, 1].set(prepared.X[:, 0]))
    smooth = objectives.problem(datafit, penalty, duplicated, fit_intercept=True).smooth
    gram, inverse = smooth.hessian_data
    assert bool(solvers.newton_system(smooth, p - 10, p)[1])
    shift = np.sqrt(np.finfo(np.float64).eps) * float(smooth.lipschitz)
    shifted = smooth._replace(hessian_data=(gram + shift * jnp.eye(p),), complement_size=0)
    grad = smooth.evaluate(starts[0], jnp.zeros(1)).grad_w
    nan_gram = smooth._replace(hessian_data=(jnp.full_like(gram, jnp.nan), inverse))
    on_complement = solvers.newton(nan_gram, penalty, starts[0], grad, lam)[0]
    direct = solvers.newton(shifted, penalty, starts[0], grad, lam)[0]
    assert np.sum(np.asarray(direct) != np.asarray(starts[0])) > supports[0] // 2  # a step
    np.testing.assert_allclose(on_complement, direct, rtol=1e-6, atol=1e-9)


def test_lasso_paths_on_a_singular_gram_matrix_take_newton_steps_on_its_complement():
    """n = p = 150 with an intercept: the centred Gram matrix has rank n - 1 < p. Its shifted
    inverse gives the late strengths Newton steps on the complement of their supports: the
    path is optimal at tol 1e-8, in 236 iterations (785 when those steps were given up)."""
    rng = np.random.default_rng(0)
    n = 150
    X = rng.standard_normal((n, n)) + 1.0
    y = X[:, :10] @ np.ones(10) + rng.standard_normal(n) + 3
    fit = glm.path(X, y, n_strengths=100, tol=1e-8)
    assert_optimal(fit, X, y, "squared", "l1", 1e-8)
    assert np.sum(np.asarray(fit.coef[-1]) != 0) > n // 2  # supports whose complement is small
    assert int(np.sum(fit.n_iter)) < 400


@pytest.mark.parametrize("datafit", ["logistic", "poisson"])
def test_best_intercept_meets_its_dual_constraint_to_rounding(datafit):
    """Primal minus dual is off by ``b * dF/db`` where the intercept's gradient is not 0: from
    1e-10 to 1e-7 off the best shift (a loss change below its rounding), the Newton steps of
    ``best_shift`` are taken and the gradient falls to rounding."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((200, 1))
    if datafit == "logistic":
        y = (rng.random((200, 1)) < 0.3).astype(float)
    else:
        y = rng.poisson(2.0, (200, 1)).astype(float)
    loss, a = datafits.DATAFITS[datafit].build(None), jnp.full(200, 1 / 200)
    gradient = lambda shift: float(a @ loss.gradient(z + shift, y)[:, 0])  # noqa: E731
    low, high = -10.0, 10.0  # the best shift, by bisection (the gradient increases)
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (low, middle) if gradient(middle) > 0 else (middle, high)
    polished = jax.jit(lambda start: solvers.best_shift(loss, start, y, a, solvers.POLISH_STEPS))
    offsets = np.geomspace(1e-10, 1e-7, 20)
    for start in low + np.concatenate([offsets, -offsets]):
        residual = gradient(start + float(polished(z + start)[0]))
        assert abs(residual) <= 1e-15, (start - low, residual)


@pytest.mark.parametrize("penalty", ["l1", "group_lasso"])
def test_extrapolation_keeps_a_coordinate_that_did_not_move(penalty):
    """Anderson's affine combination of iterates equal to a bound (0.4) rounds off it (for most
    weights); the extrapolated point keeps such a coordinate exactly, and a zero one at zero."""
    X = np.random.default_rng(0).standard_normal((20, 4))
    groups = [0, 1, 2, 2] if penalty == "group_lasso" else None
    settings = paths.Settings(penalty=penalty, bounds=(-1.0, 0.4), strengths=[0.1], groups=groups)
    data, options, config, _ = setup_path(X, X @ np.ones(4), settings)
    penalty = paths.parts(config, options, data)[1]
    extrapolated = jax.jit(lambda iterates: solvers._extrapolated(iterates, penalty))
    for seed in range(10):
        noise = 1e-3 * np.random.default_rng(seed).standard_normal((2, 6))
        iterates = np.zeros((6, 4))
        iterates[:, 1] = 0.4
        iterates[:, 2] = 0.1 + 0.3 * 0.5 ** np.arange(6) + noise[0]
        iterates[:, 3] = -0.5 * 0.7 ** np.arange(6) + noise[1]
        w = extrapolated(jnp.asarray(iterates))
        assert float(w[0]) == 0.0 and float(w[1]) == 0.4, seed
        assert w[2] != iterates[-1, 2] and w[3] != iterates[-1, 3]  # those were extrapolated


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_kth_largest_matches_a_sort(dtype):
    """Both selections against a sort: the bisection counts ties (and returns the smallest
    entry past the size), the passes of ``max`` count distinct values (``-inf`` past them);
    ``_first_smallest`` is ``argmin`` (the first of tied entries, -0 tied with 0)."""
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.standard_normal(40), [0.0, -0.0, 3.0, 3.0, 3.0, -np.inf, np.inf]])
    v = jnp.asarray(rng.permutation(v), dtype)
    ordered = np.sort(np.asarray(v))[::-1]
    distinct = np.unique(np.asarray(v))[::-1]
    many = jax.jit(solvers._kth_largest_of_many)
    for k in [1, 2, 3, 4, 5, 17, 46, 47, 60]:
        assert float(many(v, k)) == ordered[min(k, v.size) - 1], k
    for k in [1, 2, 3, 10, 45, 46]:
        expected = distinct[k - 1] if k <= distinct.size else -np.inf
        assert float(solvers._kth_largest(v, k)) == expected, k
    first_smallest = jax.jit(solvers._first_smallest)
    for values in (v, jnp.where(jnp.isinf(v), 0, -v), jnp.abs(v) * 0, -jnp.abs(v) * 0):
        assert int(first_smallest(values)) == int(jnp.argmin(values))


def test_index_loops_match_numpy():
    """``first_true`` is ``jnp.nonzero`` with a size and a fill (fewer, as many and more true
    entries than the size; none; all), ``stable_order`` a stable argsort of small keys, under
    ``jit`` and ``vmap``."""
    rng = np.random.default_rng(0)
    masks = np.stack([rng.random(50) < 0.2, np.zeros(50, bool), np.ones(50, bool)])
    first_true = jax.jit(solvers.first_true, static_argnums=(1, 2))
    for size in [1, 7, 10, 50]:
        expected = [np.asarray(jnp.nonzero(m, size=size, fill_value=50)[0]) for m in masks]
        for mask, indices in zip(masks, expected, strict=True):
            np.testing.assert_array_equal(first_true(mask, size, 50), indices)
        batched = jax.vmap(lambda m: solvers.first_true(m, size, 50))(masks)  # noqa: B023
        np.testing.assert_array_equal(batched, np.stack(expected))
    keys = rng.integers(0, 4, (3, 40))
    keys[1] = 2  # one key only
    order = jax.jit(jax.vmap(lambda key: solvers.stable_order(key, 4)))(keys)
    np.testing.assert_array_equal(order, np.argsort(keys, axis=1, kind="stable"))


def test_symmetric_product_matches_matmul():
    """``symmetric_product`` is ``(Z.T @ Z, Z.T @ V)`` below and above the columns it halves
    from (an odd count too), without ``V``, in float64 and float32, under ``jit`` and ``vmap``."""
    rng = np.random.default_rng(1)
    for k in [5, solvers._HALVED_PRODUCT, 2 * solvers._HALVED_PRODUCT + 1]:
        Z, V = rng.standard_normal((2, 40, k)), rng.standard_normal((2, 40, 3))
        for dtype, rtol in [(np.float64, 1e-12), (np.float32, 1e-5)]:
            gram, cross = jax.jit(jax.vmap(solvers.symmetric_product))(
                Z.astype(dtype), V.astype(dtype)
            )
            alone, none = jax.jit(solvers.symmetric_product)(Z[0].astype(dtype))
            assert gram.shape == (2, k, k) and cross.shape == (2, k, 3) and none is None
            assert gram.dtype == cross.dtype == dtype
            expected = np.swapaxes(Z, 1, 2) @ Z, np.swapaxes(Z, 1, 2) @ V
            for formed, exact in [
                (gram, expected[0]),
                (cross, expected[1]),
                (alone, expected[0][0]),
            ]:
                np.testing.assert_allclose(formed, exact, rtol=rtol, atol=rtol * 40)


def test_working_set_takes_in_the_violators_at_most_doubling():
    """The active units first, then the zeros that violate their optimality condition by how
    much: all of them, but at least ``_ENTERING`` (then the least negative) and at most as many
    as the active units (the most violating); ``order`` is a permutation."""
    active = jnp.arange(100) % 5 == 0  # 20 active units
    ladder = -jnp.arange(1.0, 101.0)  # no zero violates; the lowest index is the least negative
    working_set = jax.jit(solvers.working_set)
    for violators, size in [(0, 30), (5, 30), (15, 35), (25, 40), (40, 40)]:
        rising = jnp.flatnonzero(~active)[:violators][::-1]  # the violators, the worst last
        violation = ladder.at[rising].set(jnp.arange(1.0, violators + 1))
        order, n = working_set(active, violation)
        order = np.asarray(order)
        assert int(n) == size, (violators, n)
        assert sorted(order.tolist()) == list(range(100))
        assert np.all(order[:20] % 5 == 0)
        zeros = np.flatnonzero(~np.asarray(active))
        expected = zeros[np.argsort(-np.asarray(violation)[zeros], kind="stable")[: size - 20]]
        assert set(order[20:size].tolist()) == set(expected.tolist()), violators
    # ties (bounded coordinates all read -lam) never crowd out a violator, below or at the cut
    for violators, tied in [(3, -1.0), (10, 1.0)]:
        violation = (
            jnp.where(active, 0.0, tied).at[zeros[-violators:]].set(2.0 + jnp.arange(violators))
        )
        order, n = working_set(active, violation)
        assert set(zeros[-violators:].tolist()) <= set(np.asarray(order[: int(n)]).tolist())
    assert int(working_set(jnp.arange(100) < 95, jnp.ones(100))[1]) == 100
    assert int(working_set(jnp.zeros(100, bool), jnp.ones(100))[1]) == solvers._ENTERING


def test_gram_epoch_is_the_residual_epoch():
    """An epoch of coordinate descent on the Gram matrix (the gradient carried) moves the
    coordinates as the same epoch on ``X`` (the residual carried), and carries the gradient
    of the point it reaches."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 12)), rng.standard_normal(60)
    a = rng.random(60)
    a = a / a.sum()
    Xc, yc = X - a @ X, y - a @ y
    gram, rows = jnp.asarray(Xc.T @ (a[:, None] * Xc)), jnp.asarray(Xc.T)
    curvature = jnp.diag(gram)

    def new_value(j, w_j, correlation):  # the lasso's coordinate minimizer at strength 0.05
        u = w_j + correlation / curvature[j]
        return jnp.sign(u) * jnp.maximum(jnp.abs(u) - 0.05 / curvature[j], 0)

    w = jnp.asarray(np.where(rng.random(12) < 0.5, rng.standard_normal(12), 0))
    order, size = jnp.asarray(rng.permutation(12)), 9
    gradient = lambda w: gram @ w - Xc.T @ (a * yc)  # noqa: E731
    on_gram = solvers.gram_sweep(gram, w, gradient(w), order, size, new_value)
    on_rows = solvers.sparse.coordinate_sweep(rows, a, w, yc - Xc @ w, order, size, new_value)
    np.testing.assert_allclose(on_gram[0], on_rows[0], rtol=1e-12, atol=1e-14)
    assert np.all(on_gram[0][order[size:]] == w[order[size:]])  # unvisited: unmoved
    assert np.sum(on_gram[0] != w) >= 5
    np.testing.assert_allclose(on_gram[1], gradient(on_gram[0]), rtol=1e-12, atol=1e-14)


def test_duplicated_features_are_solved_like_sklearn():
    """A singular Gram matrix (a feature twice, as a binary feature and its square): the Newton
    step's factorization goes through, and the path is as optimal as scikit-learn's."""
    data = dataset("correlated")
    X = np.column_stack([data.X, data.X[:, [0, 3]]])
    Xc, yc = X - X.mean(axis=0), data.y - data.y.mean()
    strengths = float(glm.strength_max(X, data.y)) * RATIOS
    fit = jax.tree.map(np.asarray, glm.path(X, data.y, strengths=strengths, **TIGHT))
    assert_optimal(fit, X, data.y, "squared", "l1", TOL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        coefs = lasso_path(Xc, yc, alphas=strengths, tol=1e-14, max_iter=100_000)[1].T
    for k, strength in enumerate(strengths):
        ours = objective(X, data.y, fit.coef[k], fit.intercept[k], "squared", strength, "l1")
        theirs = objective(Xc, yc, coefs[k], 0.0, "squared", strength, "l1")
        assert ours <= theirs + TOL * value_at_zero(data.y, "squared") + 1e-14, k


# --------------------------------------------------------------------------------------------
# Dtypes and jit.

TOL32 = 1e-6
FLOAT32_CASES = [("squared", "l1"), ("logistic", "l1")]


@pytest.mark.parametrize("datafit, penalty", FLOAT32_CASES)
def test_float32_inputs_give_float32_solutions(datafit, penalty):
    data = dataset("tall")
    y, kw = data.target(datafit), options(penalty, data.groups)
    fit64 = fitted("tall", datafit, penalty)
    X32, y32 = jnp.asarray(data.X, jnp.float32), jnp.asarray(y, jnp.float32)
    fit = glm.path(
        X32,
        y32,
        datafit=datafit,
        penalty=penalty,
        strengths=fit64.strengths,
        tol=TOL32,
        max_iter=MAX_ITER,
        **kw,
    )
    for name in ("strengths", "coef", "intercept", "gap"):
        assert getattr(fit, name).dtype == jnp.float32, name
    assert glm.strength_max(X32, y32, datafit=datafit, **kw).dtype == jnp.float32
    assert np.all(np.asarray(fit.n_iter) < MAX_ITER)
    # Optimal to float32 accuracy: the stopping rule's bound plus rounding of the gradients.
    X, y = np.asarray(X32, float), np.asarray(y32, float)
    scale = float(fit64.strengths[0])
    floor = paths.TOL_FLOOR_EPS * np.finfo(np.float32).eps  # the smallest tol in float32
    loose = kkt_tolerance(X, y, datafit, max(TOL32, floor)) + 1e-5 * scale
    for k, strength in enumerate(np.asarray(fit.strengths, float)):
        w, b = np.asarray(fit.coef[k], float), float(fit.intercept[k])
        _, grad, grad_b = datafit_and_gradients(X, y, w, b, datafit)
        assert kkt_violation(grad, w, strength, penalty, groups=data.groups) <= loose, k
        assert abs(grad_b) <= loose
    np.testing.assert_allclose(fit.coef, fit64.coef, rtol=0, atol=2e-3 * np.abs(fit64.coef).max())
    # the top strength is float64's strength_max: float32's rounding of the gradient at 0 may
    # lift a coefficient, by far less than 1e-5 of the solution's scale
    np.testing.assert_allclose(fit.coef[0], 0, rtol=0, atol=1e-5 * np.abs(fit64.coef).max())


def test_path_under_jit_matches_eager():
    """Logistic: the label checks are skipped on traced labels; the default grid is traced."""
    datafit = "logistic"
    data = dataset("tall")
    y = data.target(datafit)
    kw = dict(datafit=datafit, n_strengths=RATIOS.size, strength_min_ratio=0.03, **TIGHT)
    eager = glm.path(data.X, y, **kw)
    jitted = jax.jit(lambda X, y: glm.path(X, y, **kw))(data.X, y)
    np.testing.assert_allclose(jitted.strengths, eager.strengths, rtol=1e-12)
    np.testing.assert_allclose(jitted.coef, eager.coef, rtol=0, atol=1e-8)
    np.testing.assert_allclose(jitted.intercept, eager.intercept, rtol=0, atol=1e-8)
    assert_optimal(jitted, data.X, y, datafit, "l1", TOL)


def test_default_grid_is_held_fixed_under_differentiation():
    """Derivatives of a default-grid path are those at its strengths held fixed (computed in the
    path's program, the grid says where to look: it is not differentiated)."""
    data = dataset("tall")
    kw = dict(n_strengths=6, strength_min_ratio=0.05, **TIGHT)
    weights = np.random.default_rng(0).standard_normal(data.X.shape[1])
    grid = glm.path(data.X, data.y, **kw).strengths

    def summary(y, **strengths):
        return jnp.sum(glm.path(data.X, y, **kw, **strengths).coef @ weights)

    default = jax.grad(summary)(jnp.asarray(data.y))
    fixed = jax.grad(lambda y: summary(y, strengths=grid))(jnp.asarray(data.y))
    assert np.abs(fixed).max() > 0
    np.testing.assert_allclose(default, fixed, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Sample weights and penalty factors.


@pytest.mark.parametrize("datafit, penalty", ALL_PAIRS)
def test_integer_sample_weights_equal_repeated_rows(datafit, penalty):
    """Weights w_i (here 0 to 4, summing to n) fit the data with row i repeated w_i times."""
    data = dataset("tall")
    y, kw = data.target(datafit), options(penalty, data.groups)
    n = y.size
    counts = np.random.default_rng(7).multinomial(n, np.full(n, 1 / n))
    assert counts.sum() == n and counts.min() == 0 and counts.max() > 1
    X_rep, y_rep = np.repeat(data.X, counts, axis=0), np.repeat(y, counts)
    strengths = grid(X_rep, y_rep, datafit, penalty, **kw)
    np.testing.assert_allclose(
        grid(data.X, y, datafit, penalty, sample_weight=counts, **kw), strengths, rtol=1e-10
    )
    common = dict(datafit=datafit, penalty=penalty, strengths=strengths, **TIGHT, **kw)
    weighted = glm.path(data.X, y, sample_weight=3.0 * counts, **common)
    repeated = glm.path(X_rep, y_rep, **common)
    assert_optimal(weighted, data.X, y, datafit, penalty, TOL, groups=data.groups, weights=counts)
    atol = 1e-5 * max(1.0, np.abs(repeated.coef).max())
    np.testing.assert_allclose(weighted.coef, repeated.coef, rtol=0, atol=atol)
    np.testing.assert_allclose(weighted.intercept, repeated.intercept, rtol=0, atol=atol)


FACTOR_PENALTIES = ["l1", "elastic_net", "mcp", "scad", "l2"]


@pytest.mark.parametrize("datafit", DATAFITS)
@pytest.mark.parametrize("penalty", FACTOR_PENALTIES)
def test_penalty_factor_scales_each_feature_strength(datafit, penalty):
    data = dataset("tall")
    y, kw = data.target(datafit), options(penalty, data.groups)
    factor = np.random.default_rng(3).uniform(0.3, 3.0, data.X.shape[1])
    strengths = grid(data.X, y, datafit, penalty, penalty_factor=factor, **kw)
    fit = glm.path(
        data.X,
        y,
        datafit=datafit,
        penalty=penalty,
        strengths=strengths,
        penalty_factor=factor,
        **TIGHT,
        **kw,
    )
    assert_optimal(fit, data.X, y, datafit, penalty, TOL, factor=factor)
    if penalty != "l2":  # strength_max is max_j |grad_j(0)| / factor_j (over l1_ratio)
        np.testing.assert_array_equal(fit.coef[0], 0)
        assert np.any(fit.coef[1] != 0)
    # A constant factor c is the same as the strength times c.
    scaled = glm.path(
        data.X,
        y,
        datafit=datafit,
        penalty=penalty,
        strengths=strengths,
        penalty_factor=np.full(data.X.shape[1], 2.5),
        **TIGHT,
        **kw,
    )
    plain = glm.path(
        data.X, y, datafit=datafit, penalty=penalty, strengths=2.5 * strengths, **TIGHT, **kw
    )
    np.testing.assert_allclose(scaled.coef, plain.coef, rtol=0, atol=1e-6)


def test_l1_penalty_factor_equals_rescaled_columns():
    """Lasso: factor_j |w_j| = |v_j| with column j divided by factor_j, v_j = factor_j w_j."""
    data = dataset("tall")
    factor = np.random.default_rng(4).uniform(0.3, 3.0, data.X.shape[1])
    strengths = grid(data.X, data.y, "squared", "l1", penalty_factor=factor)
    fit = glm.path(data.X, data.y, strengths=strengths, penalty_factor=factor, **TIGHT)
    rescaled = glm.path(data.X / factor, data.y, strengths=strengths, **TIGHT)
    np.testing.assert_allclose(np.asarray(fit.coef) * factor, rescaled.coef, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fit.intercept, rescaled.intercept, rtol=0, atol=1e-6)


def test_group_weights_scale_each_group_strength():
    data = dataset("tall")
    weights = np.random.default_rng(6).uniform(0.5, 3.0, len(group_sizes(data.groups)))
    kw = dict(groups=data.groups, group_weights=weights)
    strengths = grid(data.X, data.y, "squared", "group_lasso", **kw)
    fit = glm.path(data.X, data.y, penalty="group_lasso", strengths=strengths, **kw, **TIGHT)
    assert_optimal(
        fit, data.X, data.y, "squared", "group_lasso", TOL, factor=weights, groups=data.groups
    )
    grad0 = -data.X.T @ (data.y - data.y.mean()) / data.y.size
    norms = [np.linalg.norm(grad0[data.groups == g]) for g in group_sizes(data.groups)]
    np.testing.assert_allclose(strengths[0], np.max(np.array(norms) / weights), rtol=1e-10)
    np.testing.assert_array_equal(fit.coef[0], 0)
    assert np.any(fit.coef[1] != 0)


@pytest.mark.parametrize("datafit", DATAFITS)
def test_zero_penalty_factor_leaves_feature_unpenalized(datafit):
    data = dataset("tall")
    y = data.target(datafit)
    factor = np.ones(data.X.shape[1])
    factor[[0, 5]] = 0  # a true feature and a noise feature
    strengths = float(glm.strength_max(data.X, y, datafit=datafit)) * RATIOS
    fit = glm.path(data.X, y, datafit=datafit, strengths=strengths, penalty_factor=factor, **TIGHT)
    assert np.all(np.asarray(fit.coef)[:, [0, 5]] != 0)
    assert_optimal(fit, data.X, y, datafit, "l1", TOL, factor=factor)


def test_strength_max_with_unpenalized_features():
    data = dataset("correlated")  # feature 1 is correlated with the unpenalized feature 0
    factor = np.ones(data.X.shape[1])
    factor[0] = 0
    # The residual of the least-squares fit on the unpenalized feature and the intercept.
    U = np.column_stack([np.ones(data.y.size), data.X[:, 0]])
    residual = data.y - U @ np.linalg.lstsq(U, data.y, rcond=None)[0]
    expected = np.max(np.abs(data.X[:, 1:].T @ residual) / data.y.size)
    np.testing.assert_allclose(
        glm.strength_max(data.X, data.y, penalty_factor=factor), expected, rtol=1e-6
    )


def test_strength_max_without_unpenalized_features_forms_no_gram_matrix():
    """Its program computes the gradient at zero only: the Gram matrix (p x p) is built only
    for the solve of the unpenalized features, where a penalty factor is 0 (or traced)."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 37)), rng.standard_normal(60)

    def program(**settings):
        """The compiled text: the computations it calls, then the program (its ENTRY)."""
        data, options, config = paths.setup(X, y, paths.Settings(**settings))
        unpenalized = bool(np.any(options.penalty_factor == 0))
        lowered = paths._strength_max_jit.lower(data, options, config=config,
                                                unpenalized=unpenalized)  # fmt: skip
        return lowered.compile().as_text().split("ENTRY")

    assert "[37,37]" not in "".join(program())
    factor = np.r_[0.0, np.ones(36)]
    called, entry = program(penalty_factor=factor)
    assert "[37,37]" not in entry  # the unpenalized fit stays in its branch
    assert "[37,37]" in called
    assert float(glm.strength_max(X, y, penalty_factor=factor)) == pytest.approx(
        float(jax.jit(lambda f: glm.strength_max(X, y, penalty_factor=f))(factor)), rel=1e-12
    )


@pytest.mark.parametrize("penalty", ["l1", "group_lasso"])  # norms: homogeneous
@pytest.mark.parametrize("scale, shift", [(1e-3, 0.0), (100.0, 0.0), (1.0, 10.0)])
def test_logistic_is_invariant_to_the_scale_and_offset_of_the_features(penalty, scale, shift):
    """Features X c + t at strengths c s: coefficients w / c, intercept b - t sum(w) / c. The
    intercept's gradient differs in scale from the features' by c (and, uncentred, they are
    correlated through t): a shared step would stall there (it did, at max_iter)."""
    data, base = dataset("tall"), fitted("tall", "logistic", penalty)
    kw = options(penalty, data.groups)
    moved = glm.path(
        data.X * scale + shift, data.labels, datafit="logistic", penalty=penalty,
        strengths=base.strengths * scale, max_iter=2000, tol=TOL, **kw,
    )  # fmt: skip
    assert np.all(np.asarray(moved.n_iter) < 2000)
    coef = np.asarray(moved.coef) * scale
    np.testing.assert_allclose(coef, base.coef, rtol=0, atol=1e-5)
    intercept = np.asarray(moved.intercept) + shift * np.sum(coef, axis=1) / scale
    np.testing.assert_allclose(intercept, base.intercept, rtol=0, atol=1e-5)


@pytest.mark.parametrize("api", ["path", "cross_validate", "stability_selection"])
def test_stopping_at_max_iter_warns(api):
    data = dataset("correlated")
    kwargs = {"n_strengths": 5, "tol": 1e-12}
    run = lambda **kw: getattr(glm, api)(data.X, data.y, **kwargs, **kw)  # noqa: E731
    with pytest.warns(glm.ConvergenceWarning, match=r"stopped at max_iter=2 before the gap"):
        run(max_iter=2)
    result = run(max_iter=MAX_ITER)  # converged: no warning (warnings are errors in the tests)
    if api == "path":  # nor where a strength converges in the block that reaches max_iter
        run(max_iter=int(np.max(result.n_iter)))


def test_labels_minus_one_one_equal_zero_one():
    data = dataset("tall")
    fit = fitted("tall", "logistic", "l1")
    signed = glm.path(
        data.X, 2 * data.labels - 1, datafit="logistic", strengths=fit.strengths, **TIGHT
    )
    np.testing.assert_allclose(signed.coef, fit.coef, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# The default grid.


@pytest.mark.parametrize("n, p, bottom", [(20, 20, 1e-3), (10, 30, 1e-2)])
def test_default_grid_is_glmnet_grid(n, p, bottom):
    rng = np.random.default_rng(n + p)
    X = rng.standard_normal((n, p))
    y = X[:, 0] - X[:, 1] + rng.standard_normal(n)
    fit = glm.path(X, y)
    strengths = np.asarray(fit.strengths)
    assert strengths.shape == (100,) and fit.coef.shape == (100, p)
    np.testing.assert_allclose(strengths[0], glm.strength_max(X, y), rtol=1e-12)
    np.testing.assert_allclose(strengths[-1] / strengths[0], bottom, rtol=1e-10)
    np.testing.assert_allclose(np.diff(np.log(strengths)), np.log(bottom) / 99, rtol=1e-8)


def test_grid_options():
    data = dataset("tall")
    fit = glm.path(data.X, data.y, n_strengths=RATIOS.size, strength_min_ratio=0.05, **TIGHT)
    top = float(glm.strength_max(data.X, data.y))
    np.testing.assert_allclose(fit.strengths, top * np.geomspace(1, 0.05, RATIOS.size), rtol=1e-12)
    # An explicit grid is kept in the given order (never re-sorted), whatever the order.
    order = np.array([3, 0, 5, 1, 4, 2])
    shuffled = glm.path(data.X, data.y, strengths=top * RATIOS[order], **TIGHT)
    np.testing.assert_array_equal(shuffled.strengths, top * RATIOS[order])
    np.testing.assert_allclose(shuffled.coef, fitted("tall", "squared", "l1").coef[order],
                               atol=1e-8)  # fmt: skip
    cv = glm.cross_validate(data.X, data.y, strengths=top * RATIOS[order], **TIGHT)
    np.testing.assert_array_equal(cv.strengths, top * RATIOS[order])
    best = np.argmin(np.mean(cv.scores, axis=0))
    assert float(cv.best_strength) == float(cv.strengths[best])


@pytest.mark.parametrize("datafit", DATAFITS)
def test_infinite_penalty_factor_excludes_a_feature(datafit):
    """``penalty_factor=inf`` is glmnet's ``exclude``: the feature's coefficient is exactly 0 at
    every strength, and the rest is the path (and ``strength_max``) without that feature."""
    data = dataset("tall")
    X, y = data.X, data.target(datafit)
    factor = np.ones(X.shape[1])
    factor[[0, 5]] = np.inf  # feature 0 is the strongest of the true support
    factor[7] = 0.5
    keep = np.isfinite(factor)
    fit = glm.path(X, y, datafit=datafit, penalty_factor=factor, n_strengths=8, **TIGHT)
    assert np.all(np.asarray(fit.coef)[:, ~keep] == 0) and np.any(np.asarray(fit.coef) != 0)
    dropped = glm.path(X[:, keep], y, datafit=datafit, penalty_factor=factor[keep],
                       strengths=fit.strengths, **TIGHT)  # fmt: skip
    np.testing.assert_allclose(np.asarray(fit.coef)[:, keep], dropped.coef, rtol=0, atol=1e-8)
    np.testing.assert_allclose(fit.intercept, dropped.intercept, rtol=0, atol=1e-8)
    for bad in (np.nan, -np.inf):
        with pytest.raises(ValueError, match="penalty_factor"):
            glm.path(X, y, datafit=datafit, penalty_factor=np.where(keep, 1.0, bad))


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_deviance_ratio_and_n_nonzero(fit_intercept):
    """``deviance_ratio`` is the weighted R^2 of the squared loss (scikit-learn's ``r2_score``
    with an intercept; against the zero model without), and one minus the ratio of log-losses
    to the null model's for logistic; ``n_nonzero`` counts the non-zero coefficients."""
    data = dataset("tall")
    weights = np.random.default_rng(0).uniform(0.2, 2, data.X.shape[0])
    kw = dict(n_strengths=8, sample_weight=weights, fit_intercept=fit_intercept, **TIGHT)
    fit = glm.path(data.X, data.y, **kw)
    predictions = data.X @ np.asarray(fit.coef).T + np.asarray(fit.intercept)
    if fit_intercept:
        expected = [r2_score(data.y, z, sample_weight=weights) for z in predictions.T]
    else:
        expected = 1 - weights @ (data.y[:, None] - predictions) ** 2 / (weights @ data.y**2)
    np.testing.assert_allclose(fit.deviance_ratio, expected, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(fit.n_nonzero, np.sum(np.asarray(fit.coef) != 0, axis=1))
    assert fit.n_nonzero[0] == 0 and fit.n_nonzero[-1] > 0

    fit = glm.path(data.X, data.labels, datafit="logistic", **kw)
    z = data.X @ np.asarray(fit.coef).T + np.asarray(fit.intercept)
    log_loss = weights @ (np.logaddexp(0, z) - data.labels[:, None] * z) / weights.sum()
    mean = weights @ data.labels / weights.sum()
    null = -(mean * np.log(mean) + (1 - mean) * np.log(1 - mean)) if fit_intercept else np.log(2)
    np.testing.assert_allclose(fit.deviance_ratio, 1 - log_loss / null, rtol=0, atol=1e-10)


# --------------------------------------------------------------------------------------------
# Cross-validation.


def assert_cv_summary(cv, n_folds):
    """best_strength is the argmin of the mean score; strength_1se the largest strength whose
    mean score is within one standard error (std with ddof=1 over sqrt(n_folds)) of the best."""
    strengths, scores = np.asarray(cv.strengths), np.asarray(cv.scores)
    assert scores.shape == (n_folds, strengths.size)
    assert np.all(np.isfinite(scores)) and np.all(scores >= 0)
    mean = scores.mean(axis=0)
    best = np.argmin(mean)
    assert float(cv.best_strength) == strengths[best]
    standard_error = scores[:, best].std(ddof=1) / np.sqrt(n_folds)
    assert float(cv.strength_1se) == strengths[mean <= mean[best] + standard_error].max()
    assert cv.strength_1se >= cv.best_strength


def test_cross_validate_summary_and_path():
    data = dataset("tall")
    fit = fitted("tall", "squared", "l1")
    cv = glm.cross_validate(data.X, data.y, n_folds=5, strengths=fit.strengths, **TIGHT)
    np.testing.assert_allclose(cv.strengths, fit.strengths, rtol=1e-15)
    assert_cv_summary(cv, 5)
    # The path is the path on all the data (optimal to the tolerance: batched, it may take other
    # steps than glm.path); the best model beats the intercept-only one.
    assert_optimal(cv.path, data.X, data.y, "squared", "l1", TOL)
    np.testing.assert_allclose(cv.path.coef, fit.coef, rtol=0, atol=1e-6)
    np.testing.assert_allclose(cv.path.intercept, fit.intercept, rtol=0, atol=1e-6)
    mean = np.asarray(cv.scores).mean(axis=0)
    assert mean.min() < 0.5 * mean[0]
    # Another seed, other folds.
    other = glm.cross_validate(data.X, data.y, n_folds=5, seed=1, strengths=fit.strengths, **TIGHT)
    assert not np.allclose(other.scores, cv.scores)


SMALL_STRENGTHS = dict(n_strengths=RATIOS.size, strength_min_ratio=0.05, **TIGHT)


def small_data(datafit):
    """Twelve rows (squared); eight, four of each class (logistic)."""
    rng = np.random.default_rng(5)
    if datafit == "squared":
        X = rng.standard_normal((12, 4))
        return X, X[:, 0] - 0.5 * X[:, 1] + 0.5 * rng.standard_normal(12)
    return rng.standard_normal((8, 3)), np.tile([0.0, 1.0], 4)


def held_out_loss(datafit, X, y, fit):
    z = X @ np.asarray(fit.coef).T + np.asarray(fit.intercept)  # (rows, k)
    if datafit == "squared":  # the default score, the deviance: the datafit's loss
        return (y[:, None] - z) ** 2 / 2
    return np.logaddexp(0, -np.where(y > 0, 1.0, -1.0)[:, None] * z)


@functools.cache
def fits_without(datafit, dropped: tuple, strengths: tuple):
    """The path fitted on the small data set without the rows ``dropped`` (deleted, not
    weighted)."""
    X, y = small_data(datafit)
    keep = ~np.isin(np.arange(y.size), dropped)
    fit = glm.path(X[keep], y[keep], datafit=datafit, strengths=strengths, **TIGHT)
    return jax.tree.map(np.asarray, fit)


def held_out_sets(datafit):
    """Leave one out (squared); leave one of each class out (logistic, stratified)."""
    _, y = small_data(datafit)
    if datafit == "squared":
        return [(i,) for i in range(y.size)]
    return [(i, j) for i in np.flatnonzero(y > 0) for j in np.flatnonzero(y == 0)]


@pytest.mark.parametrize("datafit", DATAFITS)
def test_cross_validate_folds_are_fits_on_the_training_rows(datafit):
    """Leave-one-out (squared, n_folds = n), or four folds of four positives and four negatives
    (logistic: stratification puts one of each class in every fold). Whatever the assignment of
    rows to folds, each fold's scores must be the held-out loss of the path fitted on the other
    rows, one candidate held-out set per fold, covering every row once."""
    X, y = small_data(datafit)
    n_folds = y.size if datafit == "squared" else 4
    cv = glm.cross_validate(X, y, datafit=datafit, n_folds=n_folds, **SMALL_STRENGTHS)
    assert_cv_summary(cv, n_folds)
    strengths = tuple(np.asarray(cv.strengths).tolist())
    candidates = {
        rows: held_out_loss(
            datafit, X[list(rows)], y[list(rows)], fits_without(datafit, rows, strengths)
        ).mean(axis=0)
        for rows in held_out_sets(datafit)
    }
    matched = []
    for row in np.asarray(cv.scores):
        errors = {rows: np.abs(row - value).max() for rows, value in candidates.items()}
        rows = min(errors, key=errors.get)
        # both fits are optimal to a gap of 1e-12 P(0), so to ~1e-6 in the coefficients (the
        # batched one may take other steps); other held-out sets differ by far more
        assert errors[rows] <= 1e-5 * max(1.0, np.abs(row).max()), (row, errors[rows])
        matched.extend(rows)
    assert sorted(matched) == list(range(y.size))


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_member_gram_is_the_gram_of_the_kept_rows(fit_intercept):
    """A cross-validation member's Gram matrix formed from the full data's by removing the rows
    it leaves out equals the one formed from its rows: the features centred with its weights
    (with an intercept) or not, features with large means (no cancellation: rows are removed
    from the data centred on the full mean), rows of weight 0 in the data, a member that leaves
    out none (the full path), the same under ``vmap``."""
    rng = np.random.default_rng(5)
    n, p = 90, 12
    X = rng.standard_normal((n, p)) * rng.uniform(0.1, 10, p) + rng.uniform(-1e3, 1e3, p)
    full = rng.uniform(0, 2, n) * (rng.uniform(size=n) > 0.1)
    full = full / full.sum()
    kept = rng.uniform(size=(4, n)) > np.array([[0.2], [0.5], [0.05], [0.0]])
    members = jnp.asarray(full * kept / (full * kept).sum(axis=1, keepdims=True))
    dropped = int(np.max(np.sum(~kept & (full > 0), axis=1)))
    data = objectives.Data(jnp.asarray(X), jnp.zeros((n, 1)), jnp.asarray(full))
    shared = objectives.shared_gram(data)
    gram = functools.partial(objectives.member_gram, shared, data.weights, dropped=dropped,
                             fit_intercept=fit_intercept)  # fmt: skip
    vmapped = jax.vmap(gram)(members)
    for a, batched in zip(np.asarray(members), vmapped, strict=True):
        centre = a @ X if fit_intercept else np.zeros(p)
        expected = (X - centre).T @ (a[:, None] * (X - centre))
        scale = np.sqrt(np.outer(np.diag(expected), np.diag(expected)))
        for formed in (np.asarray(gram(jnp.asarray(a))), np.asarray(batched)):
            assert np.max(np.abs(formed - expected) / scale) <= 1e-12
            np.testing.assert_array_equal(formed, formed.T)


@pytest.mark.parametrize("n", [90, 96, 7])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_centred_products_by_blocks_of_rows(monkeypatch, n, dtype):
    """The Gram matrix and ``X_0^T diag(a) V`` summed over blocks of 16 rows (the last one
    overlapping the one before; none; one block) equal the products of the centred rows,
    features with means far above their spread (the centring exact in float32 too), exactly
    symmetric; and a 20000 x 300 float64 path's program holds a few blocks, not a centred copy
    of ``X``."""
    monkeypatch.setattr(solvers, "SAMPLE_BLOCK", 16)
    rng = np.random.default_rng(2)
    X = rng.standard_normal((n, 5)) * [1, 1e-3, 10, 1, 1] + [1e3, 1, -1e4, 0, 5]
    V, a = rng.standard_normal((n, 2)), rng.uniform(0, 1, n)
    mean = a @ X / a.sum()
    gram, product = objectives._centred_products(*(jnp.asarray(v, dtype) for v in (X, mean, a, V)))
    X0 = X - mean
    expected = X0.T @ (a[:, None] * X0), X0.T @ (a[:, None] * V)
    bound = np.sqrt(np.outer(np.diag(expected[0]), [*np.diag(expected[0]), *(a @ V**2)]))
    rounding = 100 * np.finfo(dtype).eps * n  # relative to the Cauchy-Schwarz bound
    for formed, exact, scale in zip(
        (gram, product), expected, (bound[:, :5], bound[:, 5:]), strict=True
    ):
        assert formed.dtype == dtype
        assert np.all(np.abs(np.asarray(formed, np.float64) - exact) <= rounding * scale)
    np.testing.assert_array_equal(gram, gram.T)

    monkeypatch.undo()
    X, y = rng.standard_normal((20000, 300)) + 3, rng.standard_normal(20000)
    data, options, config, grid = setup_path(X, y, paths.Settings(n_strengths=3))
    compiled = paths.path_jit.lower(data, grid, options, config=config).compile()
    assert compiled.memory_analysis().temp_size_in_bytes < X.nbytes / 4  # 50 MB before


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_host_gram_is_the_programs_gram_where_it_is_used(monkeypatch, fit_intercept):
    """The Gram matrix the host's BLAS forms equals the program's (centred with an intercept)
    to 100 eps times the digits its centring cancels, exactly symmetric, and ``glm.path`` and
    ``glm.cross_validate`` pass it: their results are those of the programs that form their
    own. Not formed (``None``) where it could not be the program's to that accuracy or where
    the program must form it: non-uniform weights, float32, a traced ``X``, p > n, and
    (centred) a mean over 100 standard deviations, where ``X^T X / n - mu mu^T`` would cancel
    more than 4 digits."""
    rng = np.random.default_rng(9)
    n, p = 200, 30
    X = rng.standard_normal((n, p)) * rng.uniform(0.5, 2, p) + rng.uniform(-20, 20, p)
    y = X[:, :3] @ [1.0, -2.0, 0.5] + rng.standard_normal(n)
    data = setup_path(X, y, paths.Settings(fit_intercept=fit_intercept))[0]
    host = objectives.host_gram(data, centred=fit_intercept)
    mean = np.asarray(data.weights) @ X if fit_intercept else np.zeros(p)
    programs = jax.jit(objectives._centred_products)(data.X, mean, data.weights)[0]
    variance = np.diag(programs)
    scale = np.sqrt(np.outer(variance, variance))
    cancelled = max(1.0, np.max(mean**2 / variance))  # the centring's loss (up to 1e4 here)
    assert np.max(np.abs(host - np.asarray(programs)) / scale) <= 100 * 2.3e-16 * cancelled
    np.testing.assert_array_equal(host, host.T)

    def results(host: bool):
        """The path (its moments, :func:`objectives.host_moments`) and the cross-validation's
        scores (its folds' Gram matrices formed from the whole data's, centred), with the
        host's matrices or the program's own; the host's."""
        formed, host_products = [], objectives.host_products
        spy = lambda *args, **kwargs: formed.append(host_products(*args, **kwargs)) or formed[-1]  # noqa: E731
        monkeypatch.setattr(objectives, "host_products", spy if host else lambda *a, **k: None)
        kwargs = dict(fit_intercept=fit_intercept, n_strengths=20, tol=1e-10)
        path = glm.path(X, y, **kwargs)
        cv = glm.cross_validate(X, y, n_folds=3, **kwargs)
        monkeypatch.undo()
        return (path.coef, cv.scores), formed

    passed, formed = results(host=True)
    assert len(formed) == 2 and all(gram is not None for gram in formed)
    for mine, theirs in zip(passed, results(host=False)[0], strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=1e-7)

    def formed_for(X, rows=n, **settings):
        settings = paths.Settings(fit_intercept=fit_intercept, **settings)
        return objectives.host_gram(setup_path(X[:rows], y[:rows], settings)[0],
                                    centred=fit_intercept)  # fmt: skip

    assert formed_for(X, sample_weight=rng.uniform(0.5, 1, n)) is None
    assert formed_for(X, sample_weight=np.full(n, 3.0)) is not None  # uniform all the same
    assert formed_for(X.copy(order="F")) is not None
    assert formed_for(X.astype(np.float32)) is None
    assert formed_for(X, rows=p - 1) is None
    assert formed_for(X, rows=p) is not None
    traced = jax.jit(lambda X: objectives.host_gram(data._replace(X=X), centred=fit_intercept))
    assert traced(data.X) is None
    far = X + 1e3 * np.r_[np.zeros(p - 1), 1.0]  # one feature's mean ~1000 sd
    assert (formed_for(far) is None) == fit_intercept


@pytest.mark.parametrize("fit_intercept, standardize", [(True, False), (False, False),
                                                         (True, True), (False, True)])  # fmt: skip
def test_paths_from_the_hosts_moments_equal_the_programs(monkeypatch, fit_intercept, standardize):
    """Where the host forms the Gram form's moments (:func:`objectives.host_moments`), the
    program reads them in place of ``X`` (never copied to the device): ``glm.path`` (default
    grid and given strengths), ``glm.fit`` and ``glm.strength_max`` equal the programs' own,
    with features and targets off zero and of unequal scales, for an F-ordered numpy ``X`` and
    a jax one; the top strength's solution is zero after ``glm.strength_max`` (both from the
    same moments). Not formed where ``y`` is traced, where its mean is over 100
    standard deviations (with an intercept), where ``X`` is on another device than the default
    (the path runs there), nor, standardized without an intercept, where a feature is
    constant (its variance would be a rounding error)."""
    rng = np.random.default_rng(3)
    n, p = 300, 40
    X = rng.standard_normal((n, p)) * rng.uniform(0.1, 10, p) + rng.uniform(-5, 5, p)
    y = X[:, :4] @ [1.0, -2.0, 0.5, 0.3] + rng.standard_normal(n) + 7
    kwargs = dict(fit_intercept=fit_intercept, standardize=standardize, tol=1e-12)
    read = []
    moments = objectives.host_moments
    spy = lambda *a, **k: read.append(moments(*a, **k)) or read[-1]  # noqa: E731

    def results(host: bool, X):
        monkeypatch.setattr(objectives, "host_moments", spy if host else lambda *a, **k: None)
        top = glm.strength_max(X, y, fit_intercept=fit_intercept, standardize=standardize)
        path = glm.path(X, y, n_strengths=15, **kwargs)
        given = glm.path(X, y, strengths=float(top) * np.logspace(0, -2, 6), **kwargs)
        fit = glm.fit(X, y, 0.1 * float(top), **kwargs)
        monkeypatch.undo()
        assert np.all(path.coef[0] == 0) and np.any(path.coef[1] != 0)
        # strength_max's program and the path's round alike (to an ulp at LLVM's -O0)
        assert np.max(np.abs(given.coef[0])) <= 1e-12 * np.max(np.abs(given.coef[-1]))
        return top, path.strengths, path.coef, path.intercept, given.coef, fit.coef, fit.intercept

    expected = results(False, X)
    for data in (np.asfortranarray(X), jnp.asarray(X)):
        read.clear()
        mine = results(True, data)
        assert len(read) == 4 and all(isinstance(m, objectives.Moments) for m in read)
        for a, b in zip(mine, expected, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-9)

    def moments_of(data, centred=fit_intercept, standardized=standardize):
        products = objectives.host_products(data, centred=centred)
        return objectives.host_moments(data, products, centred=centred, standardized=standardized)

    elsewhere = jax.device_put(X, jax.devices()[1])  # moments would run on the default device
    assert glm.path(elsewhere, y, n_strengths=3, **kwargs).coef.devices() == {jax.devices()[1]}
    data = setup_path(elsewhere, y, paths.Settings(fit_intercept=fit_intercept))[0]
    assert objectives.host_products(data, centred=fit_intercept) is not None  # the gram: formed
    assert moments_of(data) is None
    data = setup_path(X, y, paths.Settings(fit_intercept=fit_intercept))[0]
    assert jax.jit(lambda y: moments_of(data._replace(y=y)))(data.y) is None
    far = setup_path(X, y + 1e3 * np.std(y), paths.Settings(fit_intercept=fit_intercept))[0]
    assert (moments_of(far) is None) == fit_intercept
    constant = setup_path(np.c_[X, np.full(n, 2.0)], y, paths.Settings())[0]
    assert moments_of(constant, centred=False, standardized=True) is None


@pytest.mark.parametrize("datafit", ["squared", "logistic"])
def test_paths_of_x_held_by_columns_read_its_transpose(monkeypatch, datafit):
    """A Fortran-ordered numpy ``X`` whose program reads it by features (the X form: p > n for
    the squared loss, any shape for the logistic) reaches the path's program as its transpose
    (:func:`paths.by_features`); the paths equal those of the same ``X`` in C order and as a
    jax array, with an intercept, standardized, with sample weights, and so do the
    cross-validations and the stability selections. A C-ordered or jax ``X``, and one solved on
    its Gram matrix, are not transposed."""
    rng = np.random.default_rng(4)
    n, p = 40, 90
    X = rng.standard_normal((n, p)) * rng.uniform(0.5, 3, p) + rng.uniform(-2, 2, p)
    signal = X[:, :3] @ [1.5, -2.0, 1.0] + rng.standard_normal(n)
    y = signal if datafit == "squared" else (signal > 0).astype(float)
    settings = dict(datafit=datafit, n_strengths=8, tol=1e-10, fit_intercept=True,
                    standardize=True, sample_weight=rng.uniform(0.5, 2, n))  # fmt: skip
    seen = []

    def spied(program):
        def spy(*args, **kwargs):
            seen.append(kwargs.get("transposed", False))
            return program(*args, **kwargs)

        return spy

    monkeypatch.setattr(paths, "path_jit", spied(paths.path_jit))
    for name in ("_cross_validation_jit", "_selection_probabilities_jit"):
        monkeypatch.setattr(selection, name, spied(getattr(selection, name)))
    by_columns = glm.path(np.asfortranarray(X), y, **settings)
    for data in (np.ascontiguousarray(X), jnp.asarray(X)):
        other = glm.path(data, y, **settings)
        for a, b in ((by_columns.coef, other.coef), (by_columns.intercept, other.intercept)):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    tall = np.asfortranarray(rng.standard_normal((2 * p, p)))
    target = tall[:, 0] + rng.standard_normal(2 * p)
    glm.path(tall, target if datafit == "squared" else target > 0, datafit=datafit, n_strengths=3)
    # the squared loss's tall X: solved on its Gram matrix
    assert seen == [True, False, False, datafit == "logistic"]
    folds = np.arange(n) % 4
    cv = [glm.cross_validate(data, y, folds=folds, **settings)
          for data in (np.asfortranarray(X), np.ascontiguousarray(X))]  # fmt: skip
    np.testing.assert_allclose(cv[0].scores, cv[1].scores, rtol=1e-8)
    np.testing.assert_allclose(cv[0].path.coef, cv[1].path.coef, rtol=1e-8, atol=1e-10)
    selected = [glm.stability_selection(data, y, n_subsamples=6, **settings).probabilities
                for data in (np.asfortranarray(X), np.ascontiguousarray(X))]  # fmt: skip
    np.testing.assert_array_equal(selected[0], selected[1])
    assert np.any((selected[0] > 0) & (selected[0] < 1))  # subsamples that disagree
    assert seen[4:] == [True, False, True, False]


@pytest.mark.parametrize("n", [90, 96, 40])
def test_centred_rows_by_blocks_of_samples(monkeypatch, n):
    """The solver's rows ``(X - mean)^T`` written out by blocks of 16 samples (the last one
    overlapping the one before; one block) are exactly ``(X - mean)^T``; and a 20000 x 300
    float64 logistic path's program holds one copy of them (three before: XLA:CPU wrote one
    out for each kind of reader), no more than 1.5 ``X`` of temporaries in all."""
    monkeypatch.setattr(solvers, "SAMPLE_BLOCK", 16)
    rng = np.random.default_rng(4)
    X, mean = rng.standard_normal((n, 3)) + 5, rng.standard_normal(3)
    rows = jax.jit(objectives._centred_rows)(jnp.asarray(X), jnp.asarray(mean))
    np.testing.assert_array_equal(rows, (X - mean).T)

    monkeypatch.undo()
    X, y = rng.standard_normal((20000, 300)) + 3, rng.integers(0, 2, 20000).astype(float)
    settings = paths.Settings(n_strengths=3, datafit="logistic")
    data, options, config, grid = setup_path(X, y, settings)
    compiled = paths.path_jit.lower(data, grid, options, config=config).compile()
    assert compiled.memory_analysis().temp_size_in_bytes < 1.5 * X.nbytes  # 3.1 X before


def test_the_gram_form_reads_X_as_it_is():
    """On the Gram form (n >= p) the path's program neither transposes an ``n x p`` array (XLA:CPU
    writes the transposed copy out: the products over the samples contract ``X`` as it is) nor
    takes ``|X|`` (written out before its maximum: one pass for the largest and the smallest
    number gives the scale and the finiteness check); the X form (n < p) does transpose: the
    check can fail."""
    rng = np.random.default_rng(8)

    def copies(n, p):
        X, y = rng.standard_normal((n, p)) + 3, rng.standard_normal(n)
        data, options, config, grid = setup_path(X, y, paths.Settings(n_strengths=3))
        text = paths.path_jit.lower(data, grid, options, config=config).as_text()
        shapes = (f"<{n}x{p}x", f"<{p}x{n}x")
        return [
            line
            for line in text.splitlines()
            if any(op in line for op in ("stablehlo.transpose", "stablehlo.abs"))
            and any(s in line for s in shapes)
        ]

    assert copies(61, 23) == []
    assert any("stablehlo.transpose" in line for line in copies(23, 61))


def test_maybe_runs_nothing_when_not_asked(monkeypatch):
    """``solvers.maybe``'s loop runs ``f`` at most once: XLA must not hoist ``f``'s work on its
    closure out of it, where it would run whatever the condition. At the path's start (``w =
    0``, a constant) the X form's dense product ``w^T X_c^T`` was hoisted so, out of every loop
    of the compiled program (a product of the transposed, centred ``X`` into an ``n``-vector);
    with a plain ``while_loop`` it still is (the check can fail; should XLA stop hoisting, the
    workaround can go)."""
    rng = np.random.default_rng(8)
    n, p = 200, 3000  # XLA hoists the product from about this size
    X, y = rng.standard_normal((n, p)) + 3, rng.standard_normal(n)

    def hoisted_products():
        data, options, config, grid = setup_path(X, y, paths.Settings(n_strengths=3))
        jax.clear_caches()
        text = paths.path_jit.lower(data, grid, options, config=config).compile().as_text()
        entry = text[text.index("\nENTRY") :]
        entry = entry[: entry.index("\n}")]
        rows = re.findall(rf"\s*(%\S+) = f64\[{p},{n}\]\{{1,0\}} (?:fusion|copy)\(", entry)
        assert len(rows) == 1  # the transposed, centred X, written once
        product = re.compile(rf"\s*%\S+ = f64\[{n}\]\{{0\}} dot\(.*{re.escape(rows[0])}[,)]")
        return sum(product.match(line) is not None for line in entry.splitlines())

    assert hoisted_products() == 0

    def plain(condition, f, operand):
        body = lambda state: (jnp.zeros_like(state[0]), f(state[1]))  # noqa: E731
        return jax.lax.while_loop(lambda state: state[0], body, (condition, operand))[1]

    monkeypatch.setattr(solvers, "maybe", plain)
    assert hoisted_products() == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_largest_abs_is_the_max_abs_and_flags_non_finite_numbers(dtype):
    """``sparse.largest_abs``: ``max |x|`` over dense and sparse ``X`` (a negative number the
    largest), NaN where one is NaN, inf where one is +-inf, the same under ``jit``; held fixed
    under differentiation."""
    rng = np.random.default_rng(9)
    X = (rng.standard_normal((30, 7)) * (rng.uniform(size=(30, 7)) < 0.3)).astype(dtype)
    X[4, 2] = -9.5
    for form in (jnp.asarray(X), sparse.from_input(scipy.sparse.csr_matrix(X))):
        assert float(sparse.largest_abs(form)) == 9.5
        assert float(jax.jit(sparse.largest_abs)(form)) == 9.5
    for bad, expected in [(np.nan, np.nan), (np.inf, np.inf), (-np.inf, np.inf)]:
        Y = X.copy()
        Y[1, 5] = bad
        np.testing.assert_equal(float(sparse.largest_abs(jnp.asarray(Y))), expected)
    grad = jax.grad(lambda X: sparse.largest_abs(X) * jnp.sum(X))(jnp.asarray(X))
    np.testing.assert_array_equal(grad, np.full(X.shape, 9.5, dtype))


BATCH_CASES = [("squared", (40, 6)), ("squared", (300, 150)), ("squared", (12, 30)),
               ("logistic", (40, 6))]  # fmt: skip


@pytest.mark.parametrize("datafit, shape", BATCH_CASES)
def test_vmapped_batch_equals_the_sequential_batch(datafit, shape):
    """Batches of paths run as a loop on CPU and vmapped on accelerators: both give the same
    paths (Gram form, with Newton steps on the complement for 150 features, X form and
    logistic; members with different weights), and so do the Gram form's members whose Gram
    matrices are formed from the full data's (cross-validation), and the accelerators' solver of
    the squared loss, FISTA where the CPU runs coordinate descent."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal(shape)
    y = X[:, 0] - X[:, 1] + rng.standard_normal(shape[0])
    y = (y > 0).astype(float) if datafit == "logistic" else y
    settings = paths.Settings(datafit=datafit, n_strengths=8, **TIGHT)
    data, options, config, grid = setup_path(X, y, settings)
    weights = jnp.asarray(rng.uniform(0, 1, (3, shape[0])) > 0.3, jnp.float64)
    config = config._replace(coordinate_descent=True)  # the CPU's solver (on any platform)

    def batch(sequential, dropped=None, config=config):
        fit, reached = selection.batched_paths_jit(
            data, weights, grid, options, config=config, sequential=sequential, dropped=dropped
        )
        assert np.all(reached)
        return jax.tree.map(np.asarray, fit)

    looped, vmapped = batch(True), batch(False)
    assert np.count_nonzero(looped.coef) > 0
    batches = [vmapped]
    if datafit == "squared":  # the accelerators' solver
        batches.append(batch(False, config=config._replace(coordinate_descent=False)))
    if datafit == "squared" and shape[0] >= shape[1]:  # Gram form: also from the full data's
        dropped = int(np.max(np.sum(np.asarray(weights) == 0, axis=1)))
        batches += [batch(True, dropped), batch(False, dropped)]
    for other in batches:
        np.testing.assert_allclose(other.coef, looped.coef, rtol=0, atol=1e-6)
        np.testing.assert_allclose(other.intercept, looped.intercept, rtol=0, atol=1e-6)


def test_the_squared_loss_runs_coordinate_descent_on_the_cpu_only():
    """The solver follows the platform of the data: coordinate descent on the CPU, FISTA on an
    accelerator (where each coordinate's update is a kernel launch); traced, the default
    device's platform decides."""

    class OnGPU(NamedTuple):
        def devices(self):
            return [types.SimpleNamespace(platform="gpu")]

    X, y = small_data("squared")
    assert paths.setup(X, y, paths.Settings())[2].coordinate_descent
    assert not paths.on_cpu(OnGPU())
    traced = []
    jax.make_jaxpr(lambda x: traced.append(paths.on_cpu(x)) or x)(X)
    with jax.default_device("gpu"):  # a platform's name: tracing needs no GPU
        jax.make_jaxpr(lambda x: traced.append(paths.on_cpu(x)) or x)(X)
    assert traced == [True, False]


def test_cross_validate_logistic_needs_n_folds_at_most_the_smallest_class():
    """With more folds than members of a class, some fold holds out no row of it (and with more
    than the larger class, none at all: a NaN score): a clear error instead."""
    X, y = small_data("logistic")
    with pytest.raises(ValueError, match="n_folds"):
        glm.cross_validate(X, y, datafit="logistic", n_folds=5, n_strengths=3)


@pytest.mark.parametrize("datafit", DATAFITS)
def test_cross_validate_given_folds(datafit):
    """``folds`` (glmnet's ``foldid``): fold ``k``'s scores are the held-out loss of the path
    fitted on the rows whose id is not ``k``."""
    X, y = small_data(datafit)
    folds = np.arange(y.size) % 3
    cv = glm.cross_validate(X, y, datafit=datafit, folds=folds, **SMALL_STRENGTHS)
    assert_cv_summary(cv, 3)
    strengths = tuple(np.asarray(cv.strengths).tolist())
    for k, row in enumerate(np.asarray(cv.scores)):
        rows = tuple(np.flatnonzero(folds == k).tolist())
        fits = fits_without(datafit, rows, strengths)
        expected = held_out_loss(datafit, X[list(rows)], y[list(rows)], fits).mean(axis=0)
        np.testing.assert_allclose(row, expected, rtol=0, atol=1e-5 * max(1.0, np.abs(row).max()))


def test_cross_validate_given_folds_are_checked():
    X, y = small_data("squared")
    n = y.size
    for folds, message in [
        (np.arange(n) % 3 + 1, "ids 0..K-1"),  # no fold 0
        (np.zeros(n, int), "K >= 2"),
        (np.arange(n - 1) % 2, rf"shape \({n},\)"),
        (np.arange(n) % 2 * 1.0, "int array"),
    ]:
        with pytest.raises(ValueError, match=message):
            glm.cross_validate(X, y, folds=folds, n_strengths=3)
    weights = (np.arange(n) % 2).astype(float)  # fold 0 holds out only rows of weight 0
    with pytest.raises(ValueError, match="rows of positive sample_weight"):
        glm.cross_validate(X, y, folds=np.arange(n) % 2, sample_weight=weights, n_strengths=3)


# --------------------------------------------------------------------------------------------
# Stability selection.


def test_default_grids_are_computed_in_each_program_alike():
    """``path``, ``cross_validate`` and ``stability_selection`` compute the default grid in
    their programs, on all the data: ``strength_max`` times log-spaced ratios, also with an
    unpenalized feature (``strength_max`` then fits it first)."""
    X, y = small_data("squared")
    for factor in (None, np.r_[0.0, np.ones(3)]):
        kw = dict(n_strengths=5, strength_min_ratio=0.1, penalty_factor=factor)
        top = float(glm.strength_max(X, y, penalty_factor=factor))
        expected = top * np.logspace(0, -1, 5)
        np.testing.assert_allclose(glm.path(X, y, **kw).strengths, expected, rtol=1e-12)
        cv = glm.cross_validate(X, y, n_folds=3, **kw)
        np.testing.assert_allclose(cv.strengths, expected, rtol=1e-12)
        stable = glm.stability_selection(X, y, n_subsamples=4, **kw)
        np.testing.assert_allclose(stable.strengths, expected, rtol=1e-12)


def test_stability_selection_probabilities():
    data = dataset("tall")
    fit = fitted("tall", "squared", "l1")
    kw = dict(n_subsamples=20, strengths=fit.strengths, **TIGHT)
    result = glm.stability_selection(data.X, data.y, fraction=0.5, **kw)
    probabilities = np.asarray(result.probabilities)
    assert probabilities.shape == (RATIOS.size, data.X.shape[1])
    np.testing.assert_allclose(result.strengths, fit.strengths, rtol=1e-15)
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    np.testing.assert_allclose(probabilities * 20, np.round(probabilities * 20), atol=1e-9)
    # The strongest true feature is always selected at moderate strengths; noise rarely.
    np.testing.assert_array_equal(probabilities[2:, 0], 1)
    noise = np.setdiff1d(np.arange(data.X.shape[1]), list(BETA))
    assert np.all(probabilities[1:3, noise] <= 0.2), probabilities[1:3, noise]
    assert np.any((probabilities > 0) & (probabilities < 1))
    # With every row in every subsample, the probabilities are the full path's support.
    everything = glm.stability_selection(data.X, data.y, fraction=1.0, **kw)
    np.testing.assert_array_equal(everything.probabilities, fit.coef != 0)


@pytest.mark.parametrize("datafit", DATAFITS)
def test_stability_selection_subsample_is_a_fit_on_its_rows(datafit):
    """One subsample leaving one row out (one row of each class for logistic, stratified): its
    selection pattern is the support of the path fitted on the remaining rows."""
    X, y = small_data(datafit)
    fraction = 11 / 12 if datafit == "squared" else 3 / 4
    result = glm.stability_selection(
        X, y, datafit=datafit, n_subsamples=1, fraction=fraction, **SMALL_STRENGTHS
    )
    strengths = tuple(np.asarray(result.strengths).tolist())
    supports = [fits_without(datafit, rows, strengths).coef != 0 for rows in held_out_sets(datafit)]
    probabilities = np.asarray(result.probabilities)
    assert any(np.array_equal(probabilities, support) for support in supports)
    # Not a trivial match: the supports differ between held-out sets.
    assert any(not np.array_equal(supports[0], support) for support in supports)


# --------------------------------------------------------------------------------------------
# Bad inputs.

_rng = np.random.default_rng(11)
_X, _y = _rng.standard_normal((10, 3)), _rng.standard_normal(10)
_labels = np.tile([0.0, 1.0], 5)
_counts = np.arange(10) % 4 * 1.0
_classes = np.arange(10) % 3


def _with(array, index, value):
    array = np.array(array)
    array[index] = value
    return array


BAD_INPUTS = [
    # (function, X, y, keywords, the argument named in the message)
    (glm.path, _with(_X, (0, 0), np.nan), _y, {}, "X"),
    (glm.path, _with(_X, (1, 2), np.inf), _y, {}, "X"),
    (glm.path, _X, _with(_y, 3, np.nan), {}, "y"),
    (glm.path, _X, _y[:-1], {}, "y"),
    (glm.path, _X, _y[:, None, None], {}, "y"),
    (glm.path, _X[:, 0], _y, {}, "X"),
    (glm.path, _X[:0], _y[:0], {}, "X"),
    (glm.path, _X, np.ones(10), {"datafit": "logistic"}, "y"),
    (glm.path, _X, np.arange(10.0) % 3, {"datafit": "logistic"}, "y"),
    (glm.path, _X, _y, {"penalty": "lasso"}, "penalty"),
    (glm.path, _X, _y, {"datafit": "gaussian"}, "datafit"),
    (glm.path, _X, _y, {"strengths": []}, "strengths"),
    (glm.path, _X, _y, {"strengths": [0.1, -0.1]}, "strengths"),
    (glm.path, _X, _y, {"strengths": [0.1, np.nan]}, "strengths"),
    (glm.path, _X, _y, {"strengths": [[0.1]]}, "strengths"),
    (glm.path, _X, _y, {"n_strengths": 0}, "n_strengths"),
    (glm.path, _X, _y, {"strength_min_ratio": 1.5}, "strength_min_ratio"),
    (glm.path, _X, _y, {"penalty": "elastic_net", "l1_ratio": 1.5}, "l1_ratio"),
    (glm.path, _X, _y, {"penalty": "elastic_net", "l1_ratio": -0.1}, "l1_ratio"),
    (glm.path, _X, _y, {"penalty_factor": [1.0, -1.0, 1.0]}, "penalty_factor"),
    (glm.path, _X, _y, {"penalty_factor": [1.0, 1.0]}, "penalty_factor"),
    (glm.path, _X, _y, {"penalty": "group_lasso"}, "groups"),
    (glm.path, _X, _y, {"penalty": "group_lasso", "groups": [0, 1]}, "groups"),
    (glm.path, _X, _y, {"penalty": "group_lasso", "groups": [0.0, 1.0, 1.0]}, "groups"),
    (glm.path, _X, _y, {"penalty": "l1", "groups": [0, 1, 1]}, "groups"),
    (
        glm.path,
        _X,
        _y,
        {"penalty": "group_lasso", "groups": [0, 1, 1], "group_weights": [1.0]},
        "group_weights",
    ),
    (
        glm.path,
        _X,
        _y,
        {"penalty": "group_lasso", "groups": [0, 1, 1], "penalty_factor": [1.0] * 3},
        "penalty_factor",
    ),
    (glm.path, _X, _y, {"tol": 0.0}, "tol"),
    (glm.path, _X, _y, {"tol": -1e-6}, "tol"),
    (glm.path, _X, _y, {"max_iter": 0}, "max_iter"),
    (glm.path, _X, _y, {"max_iter": True}, "max_iter"),
    (glm.path, _X, _y, {"n_strengths": True}, "n_strengths"),
    (glm.path, _X, _y, {"l1_ratio": 0.5}, "l1_ratio"),  # the lasso has none
    (glm.path, _X, _y, {"penalty": "scad", "gamma": 5.0}, "gamma"),
    (glm.path, _X, _y, {"group_weights": [1.0]}, "group_weights"),
    (glm.path, _X, _y, {"penalty": "group_lasso", "groups": [0.0, 1.0, 1.0]}, "groups"),
    (glm.path, _X, _y, {"penalty": "elastic_net", "l1_ratio": 1e-320}, "l1_ratio"),  # subnormal
    (glm.path, _X, _y, {"penalty": "mcp", "gamma": 1.0}, "gamma"),
    (glm.path, _X, _y, {"penalty": "scad", "a": 2.0}, "a"),
    (glm.path, _X, _y, {"sample_weight": _with(np.ones(10), 0, -1.0)}, "sample_weight"),
    (glm.path, _X, _y, {"sample_weight": np.zeros(10)}, "sample_weight"),
    (glm.path, _X, _y, {"sample_weight": np.ones(9)}, "sample_weight"),
    (glm.strength_max, _X, _y, {"penalty": "ridge"}, "penalty"),
    (
        glm.strength_max,
        _X,
        _labels,
        {"datafit": "logistic", "penalty_factor": [1, 1, -1]},
        "penalty_factor",
    ),
    (glm.cross_validate, _X, _y, {"n_folds": 1}, "n_folds"),
    (glm.cross_validate, _X, _y, {"n_folds": 11}, "n_folds"),
    (glm.cross_validate, _X, _y, {"n_folds": 2.5}, "n_folds"),
    (glm.cross_validate, _X, _y, {"strengths": []}, "strengths"),
    (glm.stability_selection, _X, _y, {"fraction": 0.0}, "fraction"),
    (glm.stability_selection, _X, _y, {"fraction": 1.5}, "fraction"),
    (glm.stability_selection, _X, _y, {"n_subsamples": 0}, "n_subsamples"),
    (glm.stability_selection, _X, _y, {"n_subsamples": True}, "n_subsamples"),
    (glm.stability_selection, _X, np.ones(10), {"datafit": "logistic"}, "y"),
    # the families of jreg.glm.datafits, bounds, user-defined parts, scoring
    (glm.path, _X, -_counts - 1, {"datafit": "poisson"}, "y"),
    (glm.path, _X, _counts + 0.5, {"datafit": "poisson"}, "y"),
    (glm.path, _X, np.zeros(10), {"datafit": "poisson"}, "y"),
    (glm.path, _X, np.zeros(10), {"datafit": "multinomial"}, "y"),
    (glm.path, _X, _classes + 0.5, {"datafit": "multinomial"}, "y"),
    (glm.path, _X, _classes * 2, {"datafit": "multinomial"}, "y"),  # classes 0, 2, 4
    (glm.path, _X, _classes - 1, {"datafit": "multinomial"}, "y"),
    (glm.path, _X, _y, {"bounds": (1.0, -1.0)}, "bounds"),
    (glm.path, _X, _y, {"bounds": (0.5, 1.0)}, "bounds"),  # glmnet: lower <= 0
    (glm.path, _X, _y, {"bounds": (-1.0, -0.5)}, "bounds"),
    (glm.path, _X, _y, {"bounds": ([0.0, 0.0], 1.0)}, "bounds"),
    (glm.path, _X, _y, {"bounds": 1.0}, "bounds"),
    (glm.path, _X, _y, {"bounds": (0.0, np.inf), "penalty": "mcp"}, "bounds"),
    (glm.path, _X, _y, {"datafit": "huber", "delta": 0.0}, "delta"),
    (glm.path, _X, _y, {"datafit": "huber", "delta": -1.0}, "delta"),
    (glm.path, _X, _y, {"datafit": "huber", "delta": np.inf}, "delta"),
    (glm.path, _X, _y, {"delta": 2.0}, "delta"),  # the squared loss has none
    (glm.path, _X, _y, {"penalty": (penalties.l1, prox.l1)}, "strengths"),
    (glm.path, _X, _y, {"penalty": (penalties.l1,)}, "penalty"),
    (glm.path, _X, _y, {"datafit": 3}, "datafit"),
    (glm.strength_max, _X, _y, {"penalty": (penalties.l1, prox.l1)}, "strength_max"),
    (glm.path, _X, np.column_stack([_y, _y]), {"datafit": "poisson"}, "y"),
    (glm.cross_validate, _X, _y, {"scoring": "auc"}, "scoring"),
    (glm.cross_validate, _X, _y, {"scoring": "r2"}, "scoring"),
    (glm.cross_validate, _X, _classes, {"datafit": "multinomial", "scoring": "auc"}, "scoring"),
    (
        glm.path,
        _X,
        _y,
        {"penalty": "group_lasso", "groups": [0, 0, 1], "l1_ratio": 0.0},
        "l1_ratio",
    ),
]


@pytest.mark.parametrize(
    "function, X, y, kwargs, argument",
    BAD_INPUTS,
    ids=[f"{f.__name__}-{arg}-{i}" for i, (f, _, _, _, arg) in enumerate(BAD_INPUTS)],
)
def test_bad_input_raises_value_error_naming_the_argument(function, X, y, kwargs, argument):
    with pytest.raises(ValueError, match=rf"(^|\W){argument}\W"):
        function(X, y, **kwargs)


def test_counts_accept_numpy_integers_and_fit_intercept_must_be_a_bool():
    fit = glm.path(_X, _y, n_strengths=np.int64(3), max_iter=np.int32(1000))
    assert fit.coef.shape == (3, 3)
    cv = glm.cross_validate(_X, _y, n_folds=np.int64(2), n_strengths=3)
    assert cv.scores.shape == (2, 3)
    with pytest.raises(TypeError, match="fit_intercept must be a bool"):
        glm.path(_X, _y, fit_intercept="no")


def test_huge_sample_weights_are_relative():
    """Weights whose sum overflows still weigh the rows equally."""
    fit = glm.path(_X, _y, strengths=[0.1], sample_weight=np.full(10, 1e308))
    np.testing.assert_allclose(fit.coef, glm.path(_X, _y, strengths=[0.1]).coef, rtol=1e-12)
    assert np.any(np.asarray(fit.coef) != 0)


def test_power_iteration_does_not_overflow_in_float32():
    """Products of about 1e21: their squared norm overflows float32, not their norm."""
    matrix = jnp.diag(jnp.asarray([1e21, 5e20, 1e20], jnp.float32))
    top = solvers.top_eigenvalue(lambda v: matrix @ v, 3, jnp.float32)
    np.testing.assert_allclose(top, 1.1e21, rtol=1e-3)


def test_precision_without_x64_is_the_datas():
    """With x64 off (JAX's default): float32 data on features with a large mean is solved in
    float32 and matches sklearn (to float32's accuracy, at the default tol: it converges without
    a warning); float64 numpy data is solved in float64 (x64 on for the call), its results numpy
    arrays, the same as with x64 on; under jit the traced computation keeps JAX's float32."""
    script = """
import warnings
import jax
import numpy as np
from sklearn.linear_model import lasso_path
from jreg import glm
warnings.simplefilter("error")
rng = np.random.default_rng(0)
for n, p in [(200, 20), (40, 100)]:
    X = rng.standard_normal((n, p)) + 2000.0
    y = X[:, 0] - X[:, 1] + 0.1 * rng.standard_normal(n)
    fit = glm.path(X.astype(np.float32), y, n_strengths=10)
    assert isinstance(fit.coef, jax.Array) and fit.coef.dtype == np.float32
    Xc, yc = X - X.mean(0), y - y.mean()
    _, ref, _ = lasso_path(Xc, yc, alphas=np.asarray(fit.strengths, float), tol=1e-12)
    scale = np.abs(ref).max()
    assert np.abs(np.asarray(fit.coef) - ref.T).max() < 2e-3 * scale, (n, p)
    fit64 = glm.path(X, y, n_strengths=10, tol=1e-10)
    assert isinstance(fit64.coef, np.ndarray) and fit64.coef.dtype == np.float64
    _, ref, _ = lasso_path(Xc, yc, alphas=fit64.strengths, tol=1e-14)
    assert np.abs(fit64.coef - ref.T).max() < 1e-7 * scale, (n, p)
    cv = glm.cross_validate(X, y, n_strengths=5, n_folds=3)
    assert cv.scores.dtype == np.float64 and glm.predict(fit64, X).dtype == np.float64
    assert jax.jit(lambda s: glm.fit(X, y, s).coef)(0.1).dtype == np.float32
assert not jax.config.jax_enable_x64
print("ok")
"""
    env = {**os.environ, "JAX_ENABLE_X64": "0"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("intercept", [True, False])
def test_gram_form_minimizes_its_model(intercept):
    r"""Epochs of proximal Newton's Gram form (:func:`solvers._gram_form`) reach the minimizer of
    its model plus the l1 penalty (per-feature strengths) over the working set, checked from the
    model's gradient :math:`\nabla + X^\top D (X dw + db)` computed here (zeros within their
    strength, the rest at it, the intercept's 0 where fitted); a zero column's coordinate stays;
    ``dz``, ``quadratic`` and ``at`` against the same formulas. The model's Hessian is formed
    in float32 (:func:`solvers._model_gram`): what reads it is held to its rounding."""
    rng = np.random.default_rng(5)
    n, p, size, widths = 60, 14, 9, (6, 11, 13)  # the Gram on 11 features, padded to 13
    X = rng.standard_normal((n, p))
    ad = rng.uniform(0.1, 1.0, (n, 1)) / n
    grad, grad_b = 0.3 * rng.standard_normal(p), np.array([0.2])
    w0, b0 = np.where(rng.uniform(size=p) < 0.3, rng.standard_normal(p), 0.0), np.array([0.1])
    order = rng.permutation(p)
    X[:, order[0]], w0[order[0]] = 0.0, 0.5  # a zero column in the working set
    settings = paths.Settings(strengths=[0.1])
    data, options, config, _ = setup_path(X, rng.standard_normal(n), settings)
    penalty = paths.parts(config, options, data)[1]
    lam = rng.uniform(0.02, 0.1, p)
    design = solvers.Design(jnp.asarray(X.T), None, None, p)
    arrays = [jnp.asarray(v) for v in (grad, grad_b, w0, b0, order)]
    none = solvers._no_grams(p, n, widths[-1], jnp.float64)
    grams = solvers._grams_for(design, jnp.asarray(ad[:, 0]), arrays[-1], size, widths, none)
    step = (lambda block, g_b: -g_b / jnp.diagonal(block)) if intercept else None
    form = solvers._gram_form(design, grams, *arrays, size, penalty=penalty,
                              lam=jnp.asarray(lam), intercept=step)  # fmt: skip
    epochs = jax.jit(lambda model: jax.lax.fori_loop(0, 300, lambda _, m: form.epoch(m)[0], model))
    model = epochs(form.start)
    w, b = np.asarray(model.w), np.asarray(model.b)
    dz = X @ (w - w0) + (b - b0)
    assert np.array_equal(w[order[size:]], w0[order[size:]]) and w[order[0]] == 0.5
    np.testing.assert_allclose(np.asarray(form.dz(model))[:, 0], dz, rtol=0, atol=1e-12)
    np.testing.assert_allclose(form.quadratic(model), dz @ (ad[:, 0] * dz) / 2, rtol=1e-6)
    g = grad + X.T @ (ad[:, 0] * dz)
    g_b = grad_b[0] + np.sum(ad[:, 0] * dz)
    assert abs(g_b) <= 1e-12 if intercept else (b[0] == b0[0] and abs(g_b) > 1e-3)
    working = order[1:size]
    zero, moved = working[w[working] == 0], working[w[working] != 0]
    assert zero.size and moved.size
    rounding = 1e-6 * np.max(np.abs(X.T @ (ad[:, 0] * dz)))  # float32's, relative to G dw
    assert np.all(np.abs(g[zero]) <= lam[zero] + rounding)
    np.testing.assert_allclose(g[moved], -lam[moved] * np.sign(w[moved]), rtol=0, atol=rounding)
    again = form.at(model.w, model.b - 0.3 * intercept)  # the gradient re-formed (and b re-fit)
    np.testing.assert_allclose(again.g[:size], g[order[:size]], rtol=0, atol=rounding)
    np.testing.assert_allclose(again.b, b, rtol=0, atol=1e-12)


def test_gram_matrices_are_reused_while_they_hold_the_working_set_near_their_curvatures():
    """Proximal Newton's Gram matrices (:func:`solvers._grams_for`): formed on the narrowest
    width that holds the working set, on the order of :func:`solvers._gram_order` (the working
    set, then the rest by violation, the largest first); reused, rearranged to a new order, by
    a model whose working set they hold and whose curvatures are within ``_STALE`` of theirs
    (which then stand); formed afresh where either fails."""
    rng = np.random.default_rng(6)
    n, p, widths = 50, 12, (8, 12)
    X = rng.standard_normal((n, p))
    design = solvers.Design(jnp.asarray(X.T), None, None, p)
    ad, violation = rng.uniform(0.1, 1.0, n) / n, rng.standard_normal(p)
    start = rng.permutation(p)
    order = np.asarray(solvers._gram_order(jnp.asarray(start), 5, jnp.asarray(violation)))
    assert np.array_equal(order[:5], start[:5]) and np.array_equal(np.sort(order), np.arange(p))
    assert np.all(np.diff(violation[order[5:]]) <= 0)

    def check(grams, features, curvatures):
        """``grams`` hold ``features`` first (the rest: none), formed with ``curvatures``."""
        k = features.size
        assert np.array_equal(grams.index, np.append(features, [p] * (p - k)))
        assert np.array_equal(grams.ad, curvatures)
        x = X[:, features]
        gram = x.T @ (curvatures[:, None] * x)
        np.testing.assert_allclose(grams.gram[:k, :k], gram, rtol=0, atol=1e-6 * gram.max())
        np.testing.assert_allclose(grams.u[:k], x.T @ curvatures, rtol=1e-12)
        assert not np.any(grams.gram[k:]) and not np.any(grams.u[k:])

    def grams_for(curvatures, order, size, kept):
        orders = jnp.asarray(order)
        return solvers._grams_for(design, jnp.asarray(curvatures), orders, size, widths, kept)

    grams = grams_for(ad, order, 5, solvers._no_grams(p, n, p, jnp.float64))
    check(grams, order[:8], ad)  # the narrower width holds the working set
    held = rng.permutation(order[:8])
    shuffled = np.concatenate([held, rng.permutation(order[8:])])
    near = ad * rng.uniform(0.8, 1.2, n)  # within 0.25
    check(grams_for(near, shuffled, 6, grams), held, ad)  # reused: its curvatures stand
    check(grams_for(1.3 * ad, shuffled, 6, grams), held, 1.3 * ad)  # too far: formed afresh
    entering = np.concatenate([order[8:9], held, order[9:]])  # one working feature not held
    check(grams_for(near, entering, 6, grams), entering[:8], near)


@pytest.mark.parametrize("scale", [1.0, 1e-30, 1e30])
@pytest.mark.parametrize("block", [8, 2048])
def test_model_gram_is_the_weighted_gram_to_float32_rounding(monkeypatch, scale, block):
    """Proximal Newton's model Hessian ``x diag(ad) x^T`` on rows ``index`` of ``rows`` (and
    ``u = x ad``), its products in float32, by blocks of 8 samples (the last overlapping) or
    whole: within 1e-6 of each entry's bound ``sqrt(G_ii G_jj)`` (Cauchy-Schwarz), exactly
    symmetric, its diagonal exact, for rows of 1e-30 and 1e30 (far outside float32's range:
    scaled first), a zero row, zero weights (a block of them) and one feature repeated."""
    monkeypatch.setattr(solvers, "SAMPLE_BLOCK", block)
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((9, 50)) * np.array([1, 2, 0.5, 1e3, 1e-3, 1, 0, 5, 5])[:, None]
    rows[5] = rows[1]  # a repeated feature
    ad = rng.uniform(0.0, 2.0, 50) * (rng.uniform(size=50) < 0.8)  # some weights 0
    ad[16:32] = 0
    rows = rows * scale
    index = np.array([3, 0, 1, 2, 4, 5, 6])
    gram, u = jax.jit(solvers._model_gram)(*(jnp.asarray(v) for v in (rows, index, ad)))
    gram, x = np.asarray(gram), rows[index]
    exact = (x * ad) @ x.T
    bound = np.sqrt(np.outer(np.diagonal(exact), np.diagonal(exact)))
    assert gram.dtype == np.float64 and np.array_equal(gram, gram.T)
    np.testing.assert_allclose(np.diagonal(gram), np.diagonal(exact), rtol=1e-14)
    assert np.all(np.abs(gram - exact) <= 1e-6 * bound)
    assert np.all(gram[6] == 0) and np.all(np.isfinite(gram))
    np.testing.assert_allclose(u, x @ ad, rtol=1e-13, atol=0)


@pytest.mark.parametrize(
    "datafit, gram_widths", [("logistic", None), ("poisson", None), ("logistic", (8, 16))]
)
def test_proximal_newton_on_the_gram_form_matches_the_x_form(monkeypatch, datafit, gram_widths):
    """Proximal Newton's model on its working set's weighted Gram matrix (one output, dense
    rows, ``n >= p``; with widths 8 and 16, working sets of more than 16 features on ``X``: both
    forms in one path) and on ``X`` alone reach the same path, with an intercept and sample
    weights (each to its gap: a strength short of ``tol`` warns, an error here); the Gram forms
    were traced in the first and not in the second."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 70))
    X[:, 1:] += 0.6 * X[:, :-1]  # chained correlation
    z = X[:, :6] @ np.array([1.0, -1.0, 0.5, 0.5, -0.5, 0.3])
    y = (
        (z + rng.logistic(size=300) > 0) * 1.0
        if datafit == "logistic"
        else rng.poisson(np.exp(z / 3))
    )
    weight = rng.uniform(0.5, 2.0, 300)
    widths = []
    grams_for = solvers._grams_for
    spy = lambda *a: widths.append(a[4]) or grams_for(*a)  # noqa: E731
    monkeypatch.setattr(solvers, "_grams_for", spy)

    def fitted():
        jax.clear_caches()
        return glm.path(X, y, datafit=datafit, n_strengths=12, tol=1e-13, sample_weight=weight)

    if gram_widths is not None:
        monkeypatch.setattr(solvers, "_GRAM_WIDTHS", gram_widths)
    on_gram = fitted()
    assert set(widths) == {gram_widths or (32, 64, 70)}, widths
    assert np.max(on_gram.n_nonzero) > 16  # with widths (8, 16): supports on X too
    monkeypatch.setattr(solvers, "_GRAM_WIDTHS", ())
    widths.clear()
    on_x = fitted()
    assert widths == []
    scale = np.max(np.abs(on_x.coef))
    np.testing.assert_allclose(on_gram.coef, on_x.coef, rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(on_gram.intercept, on_x.intercept, rtol=0, atol=1e-6 * scale)
    assert np.array_equal(np.asarray(on_gram.coef) != 0, np.asarray(on_x.coef) != 0)
