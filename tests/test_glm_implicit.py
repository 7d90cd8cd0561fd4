"""Tests of glm.fit and the derivatives of solutions (jreg.glm.implicit).

Every derivative is checked three ways on problems whose support is locally constant: forward
mode (``jax.jvp``), reverse mode (``jax.grad``) and central finite differences of solves at a
tight tolerance, in one random direction over all hyperparameters and data at once (strength,
penalty factors or group weights, l1_ratio, sample weights, X, and y where it is continuous),
so that a wrong derivative in any of them shows. The lasso's derivative is also checked against
its closed form, and derivatives off the support and above strength_max are exactly 0.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import Lasso

from jreg import glm, penalties, prox

CONVEX_TOL, CONCAVE_TOL = 1e-13, 1e-18  # concave penalties stop on a squared gradient mapping
MAX_ITER = 100_000


def problem(datafit: str, n: int = 60, p: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    z = X[:, :3] @ np.array([1.0, -0.8, 0.5])
    if datafit == "logistic":
        y = (rng.random(n) < 1 / (1 + np.exp(-2 * z))).astype(float)
    elif datafit == "poisson":
        y = rng.poisson(np.exp(0.5 * z)).astype(float)
    elif datafit == "multinomial":
        y = np.argmax(np.stack([z, -z, 0 * z], axis=1) + rng.gumbel(size=(n, 3)), axis=1)
    else:
        y = z + 0.3 * rng.standard_normal(n)
    return X, y


def hyperparameters(datafit, penalty, X, y, options):
    """What the derivative is taken with respect to (y where it is continuous and not integer
    counts: perturbed counts would be rejected by the finite differences' solves)."""
    n, p = X.shape
    theta = {"X": X, "strength": None, "sample_weight": np.ones(n)}
    if datafit in ("squared", "huber") or callable(datafit):
        theta["y"] = y
    if penalty == "group_lasso":
        groups = options.get("groups", np.arange(p))  # without: a group per feature
        theta["group_weights"] = np.sqrt(np.bincount(groups))
    else:
        theta["penalty_factor"] = np.ones(p)
    if penalty == "elastic_net":
        theta["l1_ratio"] = 0.5
    return theta


def log_cosh(z, y):
    return jnp.logaddexp(z - y, y - z)


CASES = [
    ("squared", "l1", {}),
    ("logistic", "l1", {}),
    ("poisson", "l1", {}),
    ("huber", "l1", {}),
    ("multinomial", "l1", {}),
    ("squared", "elastic_net", {}),
    ("squared", "group_lasso", {"groups": np.arange(8) // 2}),
    ("squared", "l2", {}),
    ("squared", "mcp", {}),
    ("squared", "scad", {}),
    ("logistic", "group_lasso", {"groups": np.arange(8) // 2}),
    ("multinomial", "group_lasso", {}),
    ("poisson", "elastic_net", {}),
    ("logistic", "mcp", {}),
    ("squared", "l1", {"bounds": (-0.3, 0.5)}),
    ("squared", "group_lasso", {"groups": np.arange(8) // 2, "bounds": (0.0, np.inf)}),
    ("squared", "l1", {"fit_intercept": False}),
    ("multinomial", "l1", {"fit_intercept": False}),
    (log_cosh, "l1", {}),
    ("squared", (penalties.elastic_net, prox.elastic_net), {}),
]


def solution_of(datafit, penalty, options, y, tol):
    def solve(theta):
        keywords = {k: v for k, v in theta.items() if k not in ("X", "y", "strength")}
        keywords |= dict(datafit=datafit, penalty=penalty, tol=tol, max_iter=MAX_ITER)
        return glm.fit(theta["X"], theta.get("y", y), theta["strength"], **options, **keywords)

    return solve


def case_id(value) -> str:
    return getattr(value, "__name__", None) or str(value)[:24]


@pytest.mark.parametrize(("datafit", "penalty", "options"), CASES, ids=case_id)
def test_forward_reverse_and_finite_differences_agree(datafit, penalty, options):
    X, y = problem(datafit)
    concave = penalty in ("mcp", "scad") or not isinstance(penalty, str)  # a pair: a KKT stop
    tol = CONCAVE_TOL if concave else CONVEX_TOL
    bounds = {"bounds": options["bounds"]} if "bounds" in options else {}
    groups = {"groups": options["groups"]} if "groups" in options else {}
    named = isinstance(penalty, str) and penalty != "l2"
    top = glm.strength_max(X, y, datafit=datafit, penalty=penalty if named else "l1", **bounds,
                           **groups)  # fmt: skip
    theta = hyperparameters(datafit, penalty, X, y, options)
    theta["strength"] = 0.3 * float(top)
    solve = solution_of(datafit, penalty, options, y, tol)
    rng = np.random.default_rng(1)
    size = solve(theta).coef.size + np.size(solve(theta).intercept)
    weights = rng.standard_normal(size)

    def summary(theta):
        fit = solve(theta)
        return jnp.concatenate([fit.coef.ravel(), jnp.ravel(fit.intercept)]) @ weights

    direction = {k: rng.standard_normal(np.shape(v)) for k, v in theta.items()}
    direction["strength"] *= 0.1 * theta["strength"]
    if "l1_ratio" in direction:
        direction["l1_ratio"] = 0.1
    forward = jax.jvp(summary, (theta,), (direction,))[1]
    gradient = jax.grad(summary)(theta)
    reverse = sum(np.sum(np.asarray(gradient[k]) * direction[k]) for k in theta)
    # concave solves reach ~sqrt(tol): larger steps; convex ones reach ~1e-11 in the coefficients
    # (below, the objective changes less than its rounding): a quotient's noise 1e-6 at h = 1e-5
    h = 1e-4 if concave else 1e-5
    shifted = [jax.tree.map(lambda t, d, s=s: np.asarray(t) + s * h * d, theta, direction)
               for s in (1, -1)]  # fmt: skip
    fits = [solve(t) for t in shifted]
    support = solve(theta).coef != 0
    assert all(np.array_equal(fit.coef != 0, support) for fit in fits)  # locally constant
    assert 0 < np.sum(support) < support.size or penalty == "l2"
    finite_difference = (summary(shifted[0]) - summary(shifted[1])) / (2 * h)
    scale = 1e-5 * max(1.0, abs(float(finite_difference)))
    assert abs(float(forward) - float(reverse)) <= 1e-9 * max(1.0, abs(float(forward)))
    assert abs(float(forward) - float(finite_difference)) <= scale


def test_lasso_derivative_is_the_closed_form():
    """:math:`d w_S / ds = -(X_S^\\top X_S / n)^{-1} \\operatorname{sign}(w_S)` (centred X, an
    intercept), 0 off the support; ``jacfwd`` equals ``jacrev``."""
    X, y = problem("squared", n=100, p=20)
    strength = 0.05

    def coef(s):
        return glm.fit(X, y, s, tol=CONVEX_TOL, max_iter=MAX_ITER).coef

    w = coef(strength)
    support = np.asarray(w != 0)
    assert 2 < support.sum() < 20
    Xc = X[:, support] - X[:, support].mean(axis=0)
    closed = -np.linalg.solve(Xc.T @ Xc / len(y), np.sign(w[support]))
    forward, reverse = jax.jacfwd(coef)(strength), jax.jacrev(coef)(strength)
    np.testing.assert_allclose(forward[support], closed, rtol=1e-9)
    np.testing.assert_array_equal(forward[~support], 0.0)
    np.testing.assert_allclose(reverse, forward, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("penalty", ["l1", "group_lasso"])
def test_above_strength_max_every_coefficient_derivative_is_exactly_zero(penalty):
    X, y = problem("squared")
    groups = {"groups": np.arange(8) // 2} if penalty == "group_lasso" else {}
    top = float(glm.strength_max(X, y, penalty=penalty, **groups))

    def solution(X, y, s):
        fit = glm.fit(X, y, s, penalty=penalty, tol=CONVEX_TOL, **groups)
        return fit.coef, fit.intercept

    d_coef, d_intercept = jax.jacrev(solution, argnums=(0, 1, 2))(X, y, 1.5 * top)
    for derivative in d_coef:
        np.testing.assert_array_equal(derivative, 0.0)  # finite (no NaN) and exactly 0
    # the intercept is the mean of y there
    np.testing.assert_allclose(d_intercept[1], np.full(len(y), 1 / len(y)), rtol=1e-12)


def test_fit_matches_sklearn_lasso():
    X, y = problem("squared", n=100, p=20)
    fit = glm.fit(X, y, 0.05, tol=1e-10)
    reference = Lasso(alpha=0.05, tol=1e-12, max_iter=100_000).fit(X, y)
    np.testing.assert_allclose(fit.coef, reference.coef_, atol=1e-6)
    np.testing.assert_allclose(fit.intercept, reference.intercept_, atol=1e-6)


def test_vmap_and_jit_of_fit_equal_the_path():
    X, y = problem("logistic", n=100, p=20)
    reference = glm.path(X, y, datafit="logistic", n_strengths=5, tol=1e-10)
    fit = jax.jit(
        jax.vmap(lambda s: glm.fit(X, y, s, datafit="logistic", tol=1e-10)),
    )(reference.strengths)
    np.testing.assert_allclose(fit.coef, reference.coef, atol=1e-6)
    np.testing.assert_allclose(fit.intercept, reference.intercept, atol=1e-6)
    np.testing.assert_array_equal(fit.coef != 0, reference.coef != 0)


def test_vmap_over_sample_weights_and_targets_equals_a_loop():
    X, y = problem("squared")
    rng = np.random.default_rng(3)
    weights = rng.poisson(1.0, size=(3, len(y))).astype(float)  # bootstrap weights
    targets = y + 0.3 * rng.standard_normal((3, len(y)))

    def coef(w, y):
        return glm.fit(X, y, 0.05, sample_weight=w, tol=1e-10).coef

    batched = jax.vmap(coef)(weights, targets)
    for row, w, target in zip(batched, weights, targets, strict=True):
        np.testing.assert_allclose(row, coef(w, target), atol=1e-7)


def test_path_coefficients_differentiate_as_fits():
    X, y = problem("squared")
    strengths = np.array([0.2, 0.1, 0.05])

    def path_coef(X):
        return glm.path(X, y, strengths=strengths, tol=CONVEX_TOL, max_iter=MAX_ITER).coef

    def fit_coef(X, s):
        return glm.fit(X, y, s, tol=CONVEX_TOL, max_iter=MAX_ITER).coef

    weights = np.random.default_rng(4).standard_normal((3, 8))
    along_path = jax.grad(lambda X: jnp.sum(path_coef(X) * weights))(X)
    separately = sum(jax.grad(lambda X, s=s, v=v: fit_coef(X, s) @ v)(X)
                     for s, v in zip(strengths, weights, strict=True))  # fmt: skip
    np.testing.assert_allclose(along_path, separately, rtol=1e-8, atol=1e-12)


def test_fit_rejects_bad_strengths():
    X, y = problem("squared")
    with pytest.raises(ValueError, match="strength must be a scalar"):
        glm.fit(X, y, [0.1, 0.2])
    with pytest.raises(ValueError, match="strength must be finite and non-negative"):
        glm.fit(X, y, -0.1)
    with pytest.raises(ValueError, match="strength must be finite and non-negative"):
        glm.fit(X, y, np.nan)


def directional(solution, theta, direction, h=1e-6):
    """Forward mode, reverse mode and central differences of ``solution`` (an array) along
    ``direction``, with the supports at both ends (they must equal the centre's)."""
    forward = jax.jvp(solution, (theta,), (direction,))[1]
    reverse = jax.vjp(solution, theta)[1](forward)[0]  # <J^T J d, d> = |J d|^2
    ends = [solution(jax.tree.map(lambda t, d, s=s: t + s * h * d, theta, direction))
            for s in (1, -1)]  # fmt: skip
    pairs = zip(jax.tree.leaves(reverse), jax.tree.leaves(direction), strict=True)
    inner = sum(np.sum(np.asarray(r) * d) for r, d in pairs)
    return forward, inner, (ends[0] - ends[1]) / (2 * h), [e != 0 for e in ends]


def assert_derivative(solution, theta, direction, *, fixed=Ellipsis):
    """``fixed``: the coefficients whose zeros stay zeros (not those free at 0)."""
    forward, inner, finite_difference, supports = directional(solution, theta, direction)
    centre = solution(theta) != 0
    assert all(np.array_equal(s[fixed], centre[fixed]) for s in supports)
    np.testing.assert_allclose(forward, finite_difference, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(inner, np.sum(np.asarray(forward) ** 2), rtol=1e-8)
    assert np.max(np.abs(forward)) > 1e-3  # something moved


def test_a_zero_coefficient_where_the_penalty_is_smooth_still_moves():
    """Ridge: a zero column has coefficient exactly 0, yet it is free (the penalty is smooth
    at 0): moving the column moves it, by the closed form ``d'r / (n s)`` (``d`` the centred
    move, ``r`` the residual)."""
    X, y = problem("squared")
    X[:, 5] = 0.0
    move = np.random.default_rng(5).standard_normal(len(y))
    direction = np.zeros_like(X)
    direction[:, 5] = move

    def ridge(X):
        return glm.fit(X, y, 0.1, penalty="l2", tol=CONVEX_TOL, max_iter=MAX_ITER)

    fit = ridge(X)
    assert fit.coef[5] == 0
    residual = y - X @ fit.coef - fit.intercept
    closed = (move - move.mean()) @ residual / (len(y) * 0.1)
    forward = jax.jvp(lambda X: ridge(X).coef, (X,), (direction,))[1]
    np.testing.assert_allclose(forward[5], closed, rtol=1e-9)
    reverse = jax.grad(lambda X: ridge(X).coef[5])(X)
    np.testing.assert_allclose(np.sum(reverse * direction), forward[5], rtol=1e-9)


def test_a_zero_coordinate_of_a_selected_group_still_moves():
    """Two outputs, the second all zeros: each feature's row is a group whose second coefficient
    is exactly 0 while the group is selected; moving the second output moves it."""
    X, y = problem("squared")
    Y = np.stack([y, np.zeros_like(y)], axis=1)
    direction = np.zeros_like(Y)
    direction[:, 1] = np.random.default_rng(6).standard_normal(len(y))

    def coef(Y):
        return glm.fit(X, Y, 0.05, penalty="group_lasso", tol=CONVEX_TOL, max_iter=MAX_ITER).coef

    selected = np.asarray(coef(Y)[:, 0] != 0)
    assert selected.any() and np.all(coef(Y)[:, 1] == 0)
    assert_derivative(lambda Y: coef(Y)[selected], Y, direction, fixed=(slice(None), 0))
    unselected = coef(Y + 1e-6 * direction)[~selected]
    np.testing.assert_array_equal(unselected, 0.0)  # the groups stay as they were


def test_a_coefficient_at_a_bound_follows_the_bound():
    X, y = problem("squared")

    def coef(upper):
        bounds = (-np.inf, upper)
        return glm.fit(X, y, 0.01, bounds=bounds, tol=CONVEX_TOL, max_iter=MAX_ITER).coef

    upper = np.full(8, 0.4)
    at_bound = np.asarray(coef(upper) == 0.4)
    assert at_bound.any()
    direction = np.random.default_rng(7).standard_normal(8)
    assert_derivative(coef, upper, direction)
    derivative = jax.jacfwd(coef)(upper)
    np.testing.assert_allclose(derivative[at_bound][:, at_bound], np.eye(at_bound.sum()))
