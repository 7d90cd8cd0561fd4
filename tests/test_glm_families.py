"""Tests of jreg.glm's model families: multi-output squared loss, multinomial, Poisson, Huber,
bounds, user-defined penalties and losses, the registries, scoring and traced options.

Optimality is checked as in ``test_glm.py``, from gradients computed here in numpy (an
independent model of each loss) at the returned coefficients, for every datafit x penalty pair on
tall and correlated data and, for a subset, on wide data. References: scikit-learn
(``MultiTaskLasso``, ``MultiTaskElasticNet``, multinomial ``LogisticRegression``, ``Lasso(positive
=True)``), skglm (``Huber``, ``Poisson``) and R's glmnet (Poisson, multinomial; skipped where
``Rscript`` is absent).
"""

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
import scipy.special
from glm_setup import setup_path
from numpy_penalties import concave_slopes, concave_values
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso, LogisticRegression, MultiTaskElasticNet, MultiTaskLasso

from jreg import glm, penalties, prox
from jreg.glm import datafits, paths, selection

TOL = 1e-11
MAX_ITER = 100_000
TIGHT = dict(tol=TOL, max_iter=MAX_ITER)
RATIOS = np.array([1.0, 0.99, 0.6, 0.3, 0.1, 0.03])
L1_RATIO, GAMMA, A, DELTA = 0.5, 3.0, 3.7, 1.0
FAMILIES = ("multi", "multinomial", "poisson", "huber")  # "multi": squared with 3 outputs
PENALTIES = ("l1", "elastic_net", "group_lasso", "mcp", "scad", "l2")
SHAPES = {"tall": (200, 20), "wide": (30, 100), "correlated": (200, 20)}
N_OUTPUTS = 3


def datafit_of(family):
    return "squared" if family == "multi" else family


class Data(NamedTuple):
    X: np.ndarray
    targets: dict  # family -> y
    groups: np.ndarray


@functools.cache
def dataset(name: str) -> Data:
    n, p = SHAPES[name]
    rng = np.random.default_rng(10 + list(SHAPES).index(name))
    X = rng.standard_normal((n, p))
    if name == "correlated":
        X = X @ np.linalg.cholesky(scipy.linalg.toeplitz(0.9 ** np.arange(p))).T
    B = np.zeros((p, N_OUTPUTS))
    B[[0, 3, 7, 12]] = [[2.0, -1.0, 0.5], [-1.5, 1.0, 0.0], [1.0, 0.5, -1.0], [0.5, -0.5, 0.5]]
    Z = X @ B
    probabilities = scipy.special.softmax(Z + [0.3, 0.0, -0.2], axis=1)
    targets = {
        "multi": Z + 0.3 + 0.5 * rng.standard_normal((n, N_OUTPUTS)),
        "multinomial": np.array([rng.choice(N_OUTPUTS, p=row) for row in probabilities]),
        "poisson": rng.poisson(np.exp(0.3 * Z[:, 0] + 0.5)).astype(float),
        "huber": Z[:, 0] + 0.3 + rng.standard_t(2, n),
    }
    groups = 10 * (np.arange(p) % (6 if p == 20 else 30))
    return Data(X, targets, groups)


def options(family, penalty, groups) -> dict:
    kw = {"huber": {"delta": DELTA}}.get(family, {})
    if penalty == "elastic_net":
        kw["l1_ratio"] = L1_RATIO
    if penalty == "group_lasso" and family in ("poisson", "huber"):
        kw["groups"] = groups  # several outputs: each feature's coefficients are a group
    return kw


# --------------------------------------------------------------------------------------------
# An independent numpy model of the losses and of the optimality conditions.


def encoded(y, family):
    """Targets as ``(n, m)``: one-hot classes for multinomial."""
    if family == "multinomial":
        return np.eye(N_OUTPUTS)[np.asarray(y, int)]
    y = np.asarray(y, float)
    return y.reshape(y.shape[0], -1)


def loss_terms(z, y, family):
    """Per-sample losses ``(n,)``, their gradients ``(n, m)`` and Hessian diagonals in ``z``."""
    if family == "multi":
        r = z - y
        return 0.5 * np.sum(r**2, 1), r, np.ones_like(z)
    if family == "multinomial":
        P = scipy.special.softmax(z, axis=1)
        return scipy.special.logsumexp(z, axis=1) - np.sum(y * z, 1), P - y, P * (1 - P)
    if family == "logistic":  # labels in {0, 1}
        s = scipy.special.expit(z)
        return (np.logaddexp(0, z) - y * z)[:, 0], s - y, s * (1 - s)
    if family == "poisson":
        mu = np.exp(z)
        loss = mu - y * z - y + scipy.special.xlogy(y, y)
        return loss[:, 0], mu - y, mu
    r = z - y
    huber = np.where(np.abs(r) <= DELTA, r**2 / 2, DELTA * np.abs(r) - DELTA**2 / 2)
    return huber[:, 0], np.clip(r, -DELTA, DELTA), (np.abs(r) <= DELTA).astype(float)


def gradients(X, y, W, b, family, weights=None):
    """Objective's datafit part, gradient in W ``(p, m)`` and in b ``(m,)``."""
    a = np.full(X.shape[0], 1 / X.shape[0]) if weights is None else weights / np.sum(weights)
    W = W.reshape(X.shape[1], -1)
    z = X @ W + np.reshape(b, (1, -1))
    losses, g, _ = loss_terms(z, encoded(y, family), family)
    return a @ losses, X.T @ (a[:, None] * g), a @ g


def mixing(penalty, l1_ratio):
    """The l1_ratio a fit of ``penalty`` used: ``options``' for the elastic net, else 1."""
    if l1_ratio is not None:
        return l1_ratio
    return L1_RATIO if penalty == "elastic_net" else 1.0


def penalty_value(W, strength, penalty, groups=None, l1_ratio=None, factor=None):
    l1_ratio = mixing(penalty, l1_ratio)
    W = W.reshape(W.shape[0], -1)
    f = np.ones(W.shape[0]) if factor is None else factor
    lam, aw = strength * f[:, None], np.abs(W)
    if penalty == "l1":
        return np.sum(lam * aw)
    if penalty == "l2":
        return np.sum(lam * W**2) / 2
    if penalty == "elastic_net":
        return np.sum(lam * (l1_ratio * aw + (1 - l1_ratio) / 2 * W**2))
    if penalty in ("mcp", "scad"):
        return np.sum(concave_values(aw, lam, penalty, gamma=GAMMA, a=A))
    return sum(
        strength
        * weight
        * (l1_ratio * np.linalg.norm(W[m]) + (1 - l1_ratio) / 2 * np.sum(W[m] ** 2))
        for m, weight in group_members(groups, W.shape[0])
    )


def group_members(groups, p):
    """``(mask, weight)`` per group: each feature alone (weight 1) when ``groups`` is None."""
    if groups is None:
        return [(np.arange(p) == j, 1.0) for j in range(p)]
    return [(groups == g, np.sqrt(np.sum(groups == g))) for g in np.unique(groups)]


def subgradient_interval(w, s, c):
    """The subdifferential of ``s |w| + c/2 w^2`` (elementwise): its ends."""
    lo = np.where(w > 0, s + c * w, np.where(w < 0, -s + c * w, -s))
    hi = np.where(w > 0, s + c * w, np.where(w < 0, -s + c * w, s))
    return lo, hi


def kkt_violation(G, W, strength, penalty, *, groups=None, l1_ratio=None, bounds=None):
    """Largest violation of ``0 in G + dP(W) + N_bounds(W)`` (per coordinate, per group)."""
    l1_ratio = mixing(penalty, l1_ratio)
    W, G = W.reshape(W.shape[0], -1), G.reshape(W.shape[0], -1)
    if penalty == "group_lasso":
        worst = 0.0
        for members, weight in group_members(groups, W.shape[0]):
            lam = strength * weight
            w, g = W[members], G[members] + (1 - l1_ratio) * lam * W[members]
            norm = np.linalg.norm(w)
            if norm == 0:
                worst = max(worst, np.linalg.norm(g) - l1_ratio * lam)
            else:
                worst = max(worst, np.linalg.norm(g + l1_ratio * lam * w / norm))
        return worst
    lam, aw = strength, np.abs(W)
    if penalty in ("l1", "elastic_net", "l2"):
        slope = {"l1": 1.0, "elastic_net": l1_ratio, "l2": 0.0}[penalty]
        lo, hi = subgradient_interval(W, slope * lam, (1 - slope) * lam)
        if bounds is not None:
            lower, upper = bounds
            at = 1e-12 * (1 + np.abs(W))  # at a bound: to rounding (a line search's step)
            lo = np.where(W <= lower + at, -np.inf, lo)  # the normal cone at a bound
            hi = np.where(W >= upper - at, np.inf, hi)
        return np.max(np.maximum(lo + G, 0) + np.maximum(-G - hi, 0))
    slope = concave_slopes(aw, lam, penalty, gamma=GAMMA, a=A)
    return np.max(np.where(W == 0, np.abs(G) - lam, np.abs(G + np.sign(W) * slope)))


def loss_at_zero(X, y, family) -> float:
    """The objective at ``W = 0`` with the best intercept (what ``tol`` is relative to): the
    mean loss minimized over ``b`` by scipy."""
    m = encoded(y, family).shape[1]
    mean_loss = lambda b: gradients(X, y, np.zeros((X.shape[1], m)), b, family)[0]  # noqa: E731
    return float(scipy.optimize.minimize(mean_loss, np.zeros(m), method="BFGS", tol=1e-12).fun)


def kkt_tolerance(X, y, family, fit, tol):
    """``3 sqrt(2 L tol F(0))`` (see test_glm.py), ``L`` the largest curvature of the datafit
    in (W, b) over the path's solutions (Poisson's varies), ``F(0)`` the objective at ``W = 0``
    with the best intercept."""
    Xb = np.column_stack([X, np.ones(X.shape[0])])
    n = X.shape[0]
    largest = 0.0
    coef = np.asarray(fit.coef).reshape(len(fit.strengths), X.shape[1], -1)
    intercept = np.asarray(fit.intercept).reshape(len(fit.strengths), -1)
    for W, b in zip(coef, intercept, strict=True):
        _, _, h = loss_terms(X @ W + b, encoded(y, family), family)
        for k in range(h.shape[1]):
            curvature = np.linalg.eigvalsh(Xb.T @ (h[:, k, None] * Xb) / n)[-1]
            largest = max(largest, curvature)
    return 3 * np.sqrt(2 * largest * tol * loss_at_zero(X, y, family))


def assert_optimal(fit, X, y, family, penalty, tol, *, groups=None, l1_ratio=None,
                   bounds=None):  # fmt: skip
    bound = kkt_tolerance(X, y, family, fit, tol)
    coef = np.asarray(fit.coef).reshape(len(fit.strengths), X.shape[1], -1)
    intercept = np.asarray(fit.intercept).reshape(len(fit.strengths), -1)
    for k, strength in enumerate(np.asarray(fit.strengths, float)):
        _, G, grad_b = gradients(X, y, coef[k], intercept[k], family)
        violation = kkt_violation(
            G, coef[k], strength, penalty, groups=groups, l1_ratio=l1_ratio, bounds=bounds
        )
        assert violation <= bound, f"strength #{k}: KKT violation {violation:.3g} > {bound:.3g}"
        assert np.max(np.abs(grad_b)) <= bound, f"strength #{k}: intercept gradient {grad_b}"


def grid(X, y, family, penalty, **kw):
    top = glm.strength_max(
        X, y, datafit=datafit_of(family), penalty="l1" if penalty == "l2" else penalty, **kw
    )
    return float(top) * RATIOS


@functools.cache
def fitted(name, family, penalty):
    data = dataset(name)
    y, kw = data.targets[family], options(family, penalty, data.groups)
    grid_kw = {k: v for k, v in kw.items() if k != "l1_ratio" or penalty != "l2"}
    strengths = grid(data.X, y, family, penalty, **grid_kw)
    fit = glm.path(
        data.X, y, datafit=datafit_of(family), penalty=penalty, strengths=strengths, **TIGHT,
        **kw,
    )  # fmt: skip
    return jax.tree.map(np.asarray, fit)


WIDE = ["l1", "group_lasso", "l2"]
KKT_CASES = [
    (name, family, penalty)
    for family in FAMILIES
    for name, penalties_ in [("tall", PENALTIES), ("correlated", PENALTIES), ("wide", WIDE)]
    for penalty in penalties_
]


# --------------------------------------------------------------------------------------------
# Optimality at every strength, and the shapes.


@pytest.mark.parametrize("name, family, penalty", KKT_CASES)
def test_kkt_conditions_hold_at_every_strength(name, family, penalty):
    data = dataset(name)
    y, fit = data.targets[family], fitted(name, family, penalty)
    groups = data.groups if penalty == "group_lasso" and family in ("poisson", "huber") else None
    assert_optimal(fit, data.X, y, family, penalty, TOL, groups=groups)
    assert np.all(fit.gap <= TOL * loss_at_zero(data.X, y, family) * (1 + 1e-6)), fit.gap
    assert np.all(fit.n_iter < MAX_ITER)
    if penalty != "l2":  # strength_max: all zero there, not just below
        np.testing.assert_array_equal(fit.coef[0], 0)
        assert np.any(fit.coef[1] != 0)
    assert np.any(fit.coef[-1] != 0)


@pytest.mark.parametrize("family", FAMILIES)
def test_shapes_follow_the_outputs(family):
    data = dataset("tall")
    fit = fitted("tall", family, "l1")
    m = N_OUTPUTS if family in ("multi", "multinomial") else None
    k, p = RATIOS.size, data.X.shape[1]
    assert fit.coef.shape == ((k, p, m) if m else (k, p))
    assert fit.intercept.shape == ((k, m) if m else (k,))
    assert fit.gap.shape == fit.n_iter.shape == (k,)


def test_one_output_as_a_column_keeps_its_axis():
    """``y (n, 1)`` gives ``coef (k, p, 1)`` (as scikit-learn's multi-task estimators), equal to
    the single-output path."""
    data = dataset("tall")
    y = data.targets["multi"][:, 0]
    single = glm.path(data.X, y, n_strengths=5, **TIGHT)
    column = glm.path(data.X, y[:, None], n_strengths=5, **TIGHT)
    assert column.coef.shape == (5, 20, 1) and column.intercept.shape == (5, 1)
    np.testing.assert_allclose(column.coef[..., 0], single.coef, atol=1e-8)
    np.testing.assert_allclose(column.intercept[:, 0], single.intercept, atol=1e-8)


def test_multinomial_intercepts_sum_to_zero():
    """The classes' intercepts are defined up to a common shift: the one returned is centred."""
    fit = fitted("tall", "multinomial", "l1")
    np.testing.assert_allclose(np.sum(fit.intercept, axis=1), 0, atol=1e-8)


def test_multinomial_intercept_steps_stay_off_the_ones():
    """The intercepts' Newton block is singular along the vector of ones, where rounding leaves
    an eigenvalue of either sign: solved on its complement. Once, on this cross-validation
    (scikit-learn's weights-versus-repetitions check, near-separable, two zero features), the
    intercepts drifted along the ones to 2e5, then a rounded curvature there made the Newton
    model unbounded: a fold's path ended with intercepts of 1e31 and scores of 5e31."""
    rng = np.random.RandomState(42)
    X, y, weights = rng.rand(15, 30), rng.randint(0, 3, size=15), rng.randint(0, 5, size=15)
    order = np.random.RandomState(0).permutation(15)
    stacked = np.pad(np.vstack([X[order], X, X]), ((0, 0), (0, 2)))
    labels = np.concatenate([y[order], y, y])
    weights = np.concatenate([weights[order], np.ones(30)])
    folds = np.repeat([0, 1, 2], 15)  # (and no ConvergenceWarning: every solve converges)
    cv = glm.cross_validate(stacked, labels, datafit="multinomial", sample_weight=weights,
                            folds=folds)  # fmt: skip
    assert np.all(np.asarray(cv.scores) < 2)  # log(3) = 1.1 at w = 0
    assert np.all(np.abs(cv.path.intercept) < 20)


# --------------------------------------------------------------------------------------------
# References.


def assert_matches(fit, family, penalty, X, y, coefs, intercepts, *, atol, first=0, **kw):
    """Ours no worse than the reference's objective up to our tolerance, and the same
    coefficients and intercepts to ``atol`` (multinomial intercepts centred)."""
    for k in range(first, len(fit.strengths)):
        strength = float(fit.strengths[k])
        ours = gradients(X, y, fit.coef[k], fit.intercept[k], family)[0] + penalty_value(
            np.asarray(fit.coef[k]), strength, penalty, **kw
        )
        theirs = gradients(X, y, coefs[k], intercepts[k], family)[0] + penalty_value(
            np.asarray(coefs[k]), strength, penalty, **kw
        )
        assert ours <= theirs + 1e-9 * abs(theirs) + 1e-12, (k, ours - theirs)
        np.testing.assert_allclose(fit.coef[k], coefs[k], rtol=0, atol=atol, err_msg=f"#{k}")
        ours_b, theirs_b = np.asarray(fit.intercept[k]), np.asarray(intercepts[k])
        if family == "multinomial":
            ours_b, theirs_b = ours_b - ours_b.mean(), theirs_b - theirs_b.mean()
        np.testing.assert_allclose(ours_b, theirs_b, rtol=0, atol=atol, err_msg=f"#{k}")


@pytest.mark.parametrize("name", ["tall", "wide"])
@pytest.mark.parametrize("l1_ratio", [1.0, 0.5])
def test_multi_output_matches_multitask_lasso_and_elastic_net(name, l1_ratio):
    """``MultiTaskLasso(alpha)`` is ``group_lasso`` over each feature's outputs;
    ``MultiTaskElasticNet(alpha, l1_ratio)`` the same with ``l1_ratio`` (a ridge part)."""
    data = dataset(name)
    Y = data.targets["multi"]
    strengths = grid(data.X, Y, "multi", "group_lasso", l1_ratio=l1_ratio)
    fit = glm.path(data.X, Y, penalty="group_lasso", l1_ratio=l1_ratio, strengths=strengths,
                   **TIGHT)  # fmt: skip
    fit = jax.tree.map(np.asarray, fit)
    assert_optimal(fit, data.X, Y, "multi", "group_lasso", TOL, l1_ratio=l1_ratio)
    coefs, intercepts = [], []
    for strength in strengths[1:]:
        Model = MultiTaskLasso if l1_ratio == 1 else MultiTaskElasticNet
        kw = {} if l1_ratio == 1 else {"l1_ratio": l1_ratio}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = Model(alpha=strength, tol=1e-14, max_iter=200_000, **kw).fit(data.X, Y)
        coefs.append(model.coef_.T)
        intercepts.append(model.intercept_)
    coefs, intercepts = [np.zeros_like(coefs[0])] + coefs, [Y.mean(0)] + intercepts
    assert_matches(fit, "multi", "group_lasso", data.X, Y, coefs, intercepts, atol=1e-5,
                   first=1, l1_ratio=l1_ratio)  # fmt: skip


def test_multinomial_matches_sklearn_logistic_regression():
    """``LogisticRegression(C = 1/(n s), l1_ratio=1, solver="saga")`` (multinomial for three
    classes): the same objective, elementwise L1 on every class's coefficients."""
    data = dataset("tall")
    y = data.targets["multinomial"]
    fit = fitted("tall", "multinomial", "l1")
    n = y.size
    coefs, intercepts = [], []
    for strength in fit.strengths:
        model = LogisticRegression(
            C=1 / (n * strength), l1_ratio=1.0, solver="saga", tol=1e-12, max_iter=100_000,
            random_state=0,
        ).fit(data.X, y)  # fmt: skip
        coefs.append(model.coef_.T)
        intercepts.append(model.intercept_)
    assert_matches(fit, "multinomial", "l1", data.X, y, coefs, intercepts, atol=1e-4, first=1)


@pytest.mark.parametrize("name", ["tall", "correlated"])
def test_positive_bounds_match_sklearn_positive_lasso(name):
    """``bounds=(0, inf)`` is ``Lasso(positive=True)``."""
    data = dataset(name)
    y = data.targets["huber"]  # a plain regression target
    strengths = float(glm.strength_max(data.X, y, bounds=(0, np.inf))) * RATIOS
    # tol 1e-14: at 1e-11 a gap allows coefficients off by sqrt(2 tol F(0)), about 1e-5
    fit = jax.tree.map(np.asarray, glm.path(data.X, y, strengths=strengths, bounds=(0, np.inf),
                                            tol=1e-14, max_iter=MAX_ITER))  # fmt: skip
    assert np.all(fit.coef >= 0) and np.any(fit.coef[1] > 0)
    np.testing.assert_array_equal(fit.coef[0], 0)
    coefs, intercepts = [], []
    for strength in strengths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = Lasso(alpha=strength, positive=True, tol=1e-14, max_iter=200_000)
            model.fit(data.X, y)
        coefs.append(model.coef_)
        intercepts.append(model.intercept_)
    assert_matches(fit, "multi", "l1", data.X, y, coefs, intercepts, atol=1e-6)


SKGLM = """
import sys, warnings
import numpy as np
from skglm import GeneralizedLinearEstimator
from skglm.datafits import Huber, Poisson
from skglm.penalties import L1
from skglm.solvers import AndersonCD, ProxNewton

data = np.load(sys.argv[1])
coefs, intercepts = [], []
for strength in data["strengths"]:
    if sys.argv[2] == "poisson":
        datafit = Poisson()
        solver = ProxNewton(tol=1e-12, max_iter=1_000, max_pn_iter=1_000, fit_intercept=True)
    else:  # Huber: no second derivative in skglm, coordinate descent
        datafit = Huber(float(data["delta"]))
        solver = AndersonCD(tol=1e-12, max_iter=1_000, max_epochs=100_000, fit_intercept=True)
    model = GeneralizedLinearEstimator(datafit, L1(strength), solver)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(data["X"], data["y"])
    coefs.append(model.coef_)
    intercepts.append(np.atleast_1d(model.intercept_))
np.savez(sys.argv[1], coefs=np.array(coefs), intercepts=np.array(intercepts))
"""


def skglm_path(family, X, y, strengths):
    """skglm's L1 path, in a process of its own: numba's LLVM beside XLA's in this one has
    crashed XLA's compiler (a segmentation fault in the next compilation)."""
    if importlib.util.find_spec("skglm") is None:  # not imported here (numba)
        pytest.skip("skglm is not installed")
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "data.npz")
        np.savez(path, X=X, y=y, strengths=strengths, delta=DELTA)
        result = subprocess.run([sys.executable, "-c", SKGLM, path, family], capture_output=True,
                                text=True, timeout=600)  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        out = np.load(path)
        return list(out["coefs"]), list(out["intercepts"])


@pytest.mark.parametrize("family", ["huber", "poisson"])
def test_huber_and_poisson_match_skglm(family):
    """skglm's ``Huber(delta)`` and ``Poisson`` datafits (``1/n`` sums; Poisson without the
    constant of the half deviance) with ``L1``, solved by its proximal Newton (Poisson) or
    coordinate descent (Huber)."""
    data = dataset("tall")
    y = data.targets[family]
    fit = fitted("tall", family, "l1")
    coefs, intercepts = skglm_path(family, data.X, y, np.asarray(fit.strengths[1:]))
    coefs = [np.zeros(data.X.shape[1])] + coefs
    intercepts = [np.atleast_1d(fit.intercept[0])] + intercepts
    assert_matches(fit, family, "l1", data.X, y, coefs, intercepts, atol=1e-5)


GLMNET = r"""
suppressMessages(library(glmnet))
X <- as.matrix(read.csv(file.path(dir, "X.csv"), header = FALSE))
y <- read.csv(file.path(dir, "y.csv"), header = FALSE)[, 1]
lambda <- read.csv(file.path(dir, "lambda.csv"), header = FALSE)[, 1]
fit <- glmnet(X, if (family == "multinomial") factor(y) else y, family = family,
              lambda = lambda, standardize = FALSE, thresh = 1e-15, maxit = 1e7)
coefs <- coef(fit)
if (family == "multinomial") {
  out <- do.call(rbind, lapply(coefs, as.matrix))  # (C (p + 1)) x k, class by class
} else {
  out <- as.matrix(coefs)
}
write.table(out, file.path(dir, "coef.csv"), sep = ",", row.names = FALSE, col.names = FALSE)
write.table(cbind(fit$dev.ratio, fit$df), file.path(dir, "summary.csv"), sep = ",",
            row.names = FALSE, col.names = FALSE)
"""


def glmnet_path(family, X, y, strengths):
    """R's glmnet at our strengths: coefficients ``(k, p)`` or ``(k, p, C)``, intercepts, and
    ``dev.ratio`` and ``df`` ``(k, 2)``."""
    if shutil.which("Rscript") is None:
        pytest.skip("Rscript is not installed (apt-get install r-cran-glmnet)")
    with tempfile.TemporaryDirectory() as directory:
        np.savetxt(os.path.join(directory, "X.csv"), X, delimiter=",")
        np.savetxt(os.path.join(directory, "y.csv"), y, delimiter=",")
        np.savetxt(os.path.join(directory, "lambda.csv"), strengths, delimiter=",")
        script = f'dir <- "{directory}"; family <- "{family}"\n' + GLMNET
        result = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True,
                                timeout=300)  # fmt: skip
        if result.returncode != 0 and "glmnet" in result.stderr:
            pytest.skip(f"R's glmnet is not available: {result.stderr[-300:]}")
        assert result.returncode == 0, result.stderr[-2000:]
        out = np.loadtxt(os.path.join(directory, "coef.csv"), delimiter=",", ndmin=2)
        summary = np.loadtxt(os.path.join(directory, "summary.csv"), delimiter=",", ndmin=2)
    p = X.shape[1]
    if family == "multinomial":
        out = out.reshape(-1, p + 1, len(strengths))  # (C, p + 1, k)
        return out[:, 1:].transpose(2, 1, 0), out[:, 0].T, summary
    return out[1:].T, out[0], summary


@pytest.mark.parametrize("family", ["poisson", "multinomial"])
def test_poisson_and_multinomial_match_glmnet(family):
    """glmnet's ``family="poisson"`` and ``"multinomial"`` (elementwise lasso), unstandardized,
    at our strengths (its ``lambda``): the coefficients, ``dev.ratio`` and ``df``."""
    data = dataset("tall")
    y = data.targets[family]
    fit = fitted("tall", family, "l1")
    coefs, intercepts, summary = glmnet_path(family, data.X, y, np.asarray(fit.strengths))
    assert_matches(fit, family, "l1", data.X, y, coefs, intercepts, atol=2e-5, first=1)
    np.testing.assert_allclose(fit.deviance_ratio, summary[:, 0], rtol=0, atol=1e-6)
    # (at strength_max glmnet keeps a non-zero coefficient: skipped, as for the coefficients)
    np.testing.assert_array_equal(fit.n_nonzero[1:], summary[1:, 1])


# --------------------------------------------------------------------------------------------
# Bounds.


@pytest.mark.parametrize("family", ["multi", "multinomial", "poisson", "huber"])
@pytest.mark.parametrize("penalty", ["l1", "elastic_net", "group_lasso", "l2"])
def test_bounds_hold_with_optimality_inside_them(family, penalty):
    """Coefficients within ``(lower, upper)`` (per feature, some infinite, some 0) and optimal
    there: KKT with the normal cone of the box (per coordinate; per group, the prox by bisection
    is checked against the optimality of the group)."""
    data = dataset("tall")
    y = data.targets[family]
    p = data.X.shape[1]
    lower = np.where(np.arange(p) % 3 == 0, -np.inf, np.where(np.arange(p) % 3 == 1, -0.3, 0.0))
    upper = np.where(np.arange(p) % 4 == 0, 0.4, np.inf)
    kw = options(family, penalty, data.groups)
    bounds = (lower, upper)
    strengths = grid(data.X, y, family, "l1", bounds=bounds)
    fit = glm.path(data.X, y, datafit=datafit_of(family), penalty=penalty, strengths=strengths,
                   bounds=bounds, **TIGHT, **kw)  # fmt: skip
    coef = np.asarray(fit.coef).reshape(RATIOS.size, p, -1)
    assert np.all(coef >= lower[None, :, None]) and np.all(coef <= upper[None, :, None])
    assert np.any(coef == 0.4) or np.any(coef == -0.3)  # some bound is active
    groups = data.groups if penalty == "group_lasso" and family in ("poisson", "huber") else None
    if penalty == "group_lasso":  # no closed-form KKT with a box: the objective is minimal
        for k, strength in enumerate(strengths):
            base = gradients(data.X, y, coef[k], np.asarray(fit.intercept[k]), family)[0]
            ours = base + penalty_value(coef[k], strength, penalty, groups)
            rng = np.random.default_rng(k)
            for _ in range(20):  # feasible perturbations do not lower it
                moved = np.clip(coef[k] + 1e-3 * rng.standard_normal(coef[k].shape),
                                lower[:, None], upper[:, None])  # fmt: skip
                value = gradients(data.X, y, moved, np.asarray(fit.intercept[k]), family)[0]
                assert ours <= value + penalty_value(moved, strength, penalty, groups) + 1e-9
        return
    bounds_m = (lower[:, None], upper[:, None])
    for k, strength in enumerate(np.asarray(fit.strengths)):
        _, G, grad_b = gradients(data.X, y, coef[k], np.asarray(fit.intercept[k]), family)
        violation = kkt_violation(G, coef[k], strength, penalty, bounds=bounds_m)
        assert violation <= kkt_tolerance(data.X, y, family, fit, TOL), (k, violation)


# --------------------------------------------------------------------------------------------
# User-defined parts and the registries.


def test_user_penalty_pair_reproduces_l1():
    """``(penalties.l1, prox.l1)`` runs through the proximal-gradient path and reaches the same
    objective as ``penalty="l1"`` (its stopping rule, the gradient mapping, is not a gap)."""
    data = dataset("tall")
    for family in ("multi", "poisson"):
        y = data.targets[family]
        reference = fitted("tall", family, "l1")
        fit = glm.path(data.X, y, datafit=datafit_of(family), penalty=(penalties.l1, prox.l1),
                       strengths=reference.strengths, **TIGHT)  # fmt: skip
        np.testing.assert_allclose(fit.coef, reference.coef, atol=1e-5)
        np.testing.assert_allclose(fit.intercept, reference.intercept, atol=1e-5)
        pair = {"penalty": (penalties.l1, prox.l1), "strengths": reference.strengths}
        cv = glm.cross_validate(data.X, y, datafit=datafit_of(family), n_folds=3, **pair)
        assert cv.scores.shape == (3, RATIOS.size)
        stable = glm.stability_selection(
            data.X, y, datafit=datafit_of(family), penalty=(penalties.l1, prox.l1),
            strengths=reference.strengths, n_subsamples=4,
        )  # fmt: skip
        assert stable.probabilities.shape == (RATIOS.size, data.X.shape[1])


def squared_loss(z, y):
    return (y - z) ** 2 / 2


def test_user_loss_reproduces_squared():
    """A loss ``(y - z)^2 / 2`` as a callable: autodiff gradients, proximal Newton, stopping on
    the gradient mapping; the same path as ``"squared"``."""
    data = dataset("tall")
    y = data.targets["huber"]
    reference = glm.path(data.X, y, n_strengths=6, **TIGHT)
    fit = glm.path(data.X, y, datafit=squared_loss, strengths=reference.strengths, **TIGHT)
    # a KKT residual of tol F(0) leaves coefficients off by about sqrt(2 tol F(0)), 1e-5
    np.testing.assert_allclose(fit.coef, reference.coef, atol=1e-5)
    np.testing.assert_allclose(fit.intercept, reference.intercept, atol=1e-5)
    cv = glm.cross_validate(data.X, y, datafit=squared_loss, n_folds=3, n_strengths=5)
    assert cv.scores.shape == (3, 5) and np.all(np.isfinite(cv.scores))


def probit(options):
    r"""A datafit of the tests' own: probit regression, :math:`-\log \Phi(s z)`, labels {0, 1}
    (no conjugate: solves stop on the gradient mapping)."""
    norm = jax.scipy.stats.norm

    def gradient(z, y):
        s = 2 * y - 1
        return -s * jnp.exp(norm.logpdf(z) - norm.logcdf(s * z))

    def curvature(z, y):
        s = 2 * y - 1
        ratio = jnp.exp(norm.logpdf(z) - norm.logcdf(s * z))
        return ratio * (s * z + ratio), None

    return datafits.Datafit(
        loss=lambda z, y: -jnp.sum(norm.logcdf((2 * y - 1) * z), axis=1),
        gradient=gradient,
        curvature=curvature,
        prepare=lambda y, weights: (jnp.asarray(y, weights.dtype) > 0)[:, None].astype(
            weights.dtype
        ),
        mean=norm.cdf,
        curvature_bound=1.0,
        classify=lambda response: (response[..., 0] > 0.5).astype(jnp.int32),
    )


def test_a_datafit_of_our_own_is_one_definition_and_one_registry_entry(monkeypatch):
    monkeypatch.setitem(glm.DATAFITS, "probit", datafits.Family(probit))
    data = dataset("tall")
    labels = (data.targets["huber"] > 0.3).astype(float)
    fit = glm.path(data.X, labels, datafit="probit", n_strengths=6, strength_min_ratio=0.05,
                   **TIGHT)  # fmt: skip
    z = data.X @ np.asarray(fit.coef).T + np.asarray(fit.intercept)
    s = 2 * labels[:, None] - 1
    g = -s * np.exp(scipy.stats.norm.logpdf(z) - scipy.stats.norm.logcdf(s * z))  # (n, k)
    for k, strength in enumerate(np.asarray(fit.strengths)):
        G = data.X.T @ g[:, k] / labels.size
        assert kkt_violation(G, np.asarray(fit.coef[k]), strength, "l1") <= 1e-5
        assert abs(np.mean(g[:, k])) <= 1e-5
    np.testing.assert_array_equal(fit.coef[0], 0)
    cv = glm.cross_validate(data.X, labels, datafit="probit", n_folds=4, n_strengths=6,
                            scoring="misclassification")  # fmt: skip
    assert cv.scores.shape == (4, 6) and float(np.min(cv.scores)) < 0.3


# --------------------------------------------------------------------------------------------
# Traced options: a new number runs the same program.


def test_new_numbers_do_not_recompile():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 6)), rng.standard_normal(40)
    strengths = [0.1, 0.05]
    runs = [
        ("squared", "elastic_net", {"l1_ratio": 0.3}, {"l1_ratio": 0.7, "tol": 1e-8}),
        ("squared", "mcp", {"gamma": 3.0}, {"gamma": 5.0, "max_iter": 500}),
        ("squared", "scad", {"a": 3.7}, {"a": 4.5}),
        ("huber", "l1", {"delta": 1.0}, {"delta": 2.0}),
        ("squared", "l1", {"bounds": (-1.0, 1.0)}, {"bounds": (0.0, 2.0)}),
    ]
    for datafit, penalty, first, second in runs:
        glm.path(X, y, datafit=datafit, penalty=penalty, strengths=strengths, **first)
        before = paths.path_jit._cache_size()
        glm.path(X, y, datafit=datafit, penalty=penalty, strengths=strengths, **second)
        assert paths.path_jit._cache_size() == before, (datafit, penalty, second)
    groups = np.arange(6) // 2
    glm.path(X, y, penalty="group_lasso", groups=groups, strengths=strengths)
    before = paths.path_jit._cache_size()
    glm.path(X, y, penalty="group_lasso", groups=groups, group_weights=[1.0, 2.0, 3.0],
             strengths=strengths)  # fmt: skip
    assert paths.path_jit._cache_size() == before


def test_settings_defaults_are_path_defaults():
    """``cross_validate`` and ``stability_selection`` forward ``path``'s keywords through
    :class:`~jreg.glm.paths.Settings`: its defaults are ``path``'s."""
    import inspect

    parameters = inspect.signature(glm.path).parameters
    defaults = {k: v.default for k, v in parameters.items() if v.kind == v.KEYWORD_ONLY}
    assert defaults == paths.Settings()._asdict()


# --------------------------------------------------------------------------------------------
# Cross-validation scores and stability selection with the new families.


def reference_scores(scoring, family, z, y, weights):
    """Held-out scores of one member: numpy (and scikit-learn for the AUC)."""
    from sklearn.metrics import roc_auc_score

    Y = encoded(y, family)
    if scoring == "deviance":
        losses = loss_terms(z, Y, family)[0]
        return np.average(losses, weights=weights)
    response = {"multinomial": lambda z: scipy.special.softmax(z, axis=1),
                "logistic": scipy.special.expit}.get(family, lambda z: z)(z)  # fmt: skip
    if scoring == "mse":
        return np.average(np.sum((Y - response) ** 2, axis=1), weights=weights)
    if scoring == "mae":
        return np.average(np.sum(np.abs(Y - response), axis=1), weights=weights)
    if scoring == "misclassification":
        predicted = np.argmax(response, 1) if family == "multinomial" else response[:, 0] > 0.5
        actual = np.argmax(Y, 1) if family == "multinomial" else Y[:, 0] > 0.5
        return np.average(predicted != actual, weights=weights)
    return 1 - roc_auc_score(Y[:, 0], z[:, 0], sample_weight=weights)


SCORING_CASES = [
    ("multi", "deviance"), ("multi", "mse"), ("multi", "mae"), ("poisson", "deviance"),
    ("huber", "mae"), ("multinomial", "deviance"), ("multinomial", "misclassification"),
    ("multinomial", "mse"), ("logistic", "auc"), ("logistic", "misclassification"),
    ("logistic", "deviance"),
]  # fmt: skip


@pytest.mark.parametrize("family, scoring", SCORING_CASES)
def test_held_out_scores_match_numpy_and_sklearn(family, scoring):
    """The scores of a batch of paths on held-out weights, against a numpy (and, for the AUC,
    scikit-learn) computation of each member; ties in the AUC count one half."""
    data = dataset("tall")
    rng = np.random.default_rng(1)
    if family == "logistic":
        y = (data.targets["huber"] > 0.3).astype(float)
    else:
        y = data.targets[family]
    settings = paths.Settings(datafit=datafit_of(family), n_strengths=4)
    prepared, options_, config, grid_ = setup_path(data.X, y, settings)
    datafit, _ = paths.parts(config, options_, prepared)
    held_out = jnp.asarray(rng.uniform(0, 1, (2, y.shape[0])) * (rng.random((2, y.shape[0])) < 0.4))
    fit, _ = selection.batched_paths_jit(prepared, 1 - held_out, grid_, options_, config=config,
                                         sequential=True)  # fmt: skip
    if scoring == "auc":  # ties: round the linear predictors so that some tie
        fit = fit._replace(coef=jnp.round(fit.coef, 1), intercept=jnp.round(fit.intercept, 1))
    scores = selection._held_out_scores(prepared, datafit, fit, held_out, scoring)
    coef = np.asarray(fit.coef).reshape(2, 4, data.X.shape[1], -1)
    intercept = np.asarray(fit.intercept).reshape(2, 4, -1)
    for b in range(2):
        for k in range(4):
            z = data.X @ coef[b, k] + intercept[b, k]
            expected = reference_scores(scoring, family, z, y, np.asarray(held_out[b]))
            np.testing.assert_allclose(scores[b, k], expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("family", ["multinomial", "poisson", "huber", "multi"])
def test_cross_validate_and_stability_selection_with_new_families(family):
    data = dataset("tall")
    y = data.targets[family]
    kw = dict(datafit=datafit_of(family), n_strengths=8, **options(family, "l1", data.groups))
    cv = glm.cross_validate(data.X, y, n_folds=4, **kw)
    scores = np.asarray(cv.scores)
    assert scores.shape == (4, 8) and np.all(np.isfinite(scores))
    assert float(cv.best_strength) <= float(cv.strength_1se)
    mean = scores.mean(axis=0)
    assert mean.min() < mean[0]  # the model beats the intercept-only one
    full = glm.path(data.X, y, strengths=cv.strengths, tol=kw.pop("tol", 1e-6), **kw)
    np.testing.assert_allclose(cv.path.coef, full.coef, atol=1e-4)
    stable = glm.stability_selection(data.X, y, n_subsamples=10, **kw)
    probabilities = np.asarray(stable.probabilities)
    assert probabilities.shape == (8, data.X.shape[1])
    assert probabilities[-1, 0] == 1.0  # the strongest feature is always selected


def test_multinomial_folds_are_stratified():
    """Every fold holds out rows of every class: with as many folds as the smallest class,
    each fold's held-out rows hold each class."""
    data = dataset("tall")
    y = data.targets["multinomial"]
    smallest = int(np.bincount(y).min())
    cv = glm.cross_validate(data.X, y, datafit="multinomial", n_folds=smallest, n_strengths=3,
                            scoring="misclassification")  # fmt: skip
    assert cv.scores.shape == (smallest, 3)
    with pytest.raises(ValueError, match="n_folds"):
        glm.cross_validate(data.X, y, datafit="multinomial", n_folds=smallest + 1, n_strengths=3)


# --------------------------------------------------------------------------------------------
# Bad input (the cases of the new families are in test_glm.py's BAD_INPUTS).


def test_a_loss_returning_the_wrong_shape_names_the_datafit():
    X, y = np.ones((6, 2)), np.arange(6.0)
    with pytest.raises(ValueError, match="datafit"):
        glm.path(X, y, datafit=lambda z, y: jnp.sum((z - y) ** 2), strengths=[0.1])
