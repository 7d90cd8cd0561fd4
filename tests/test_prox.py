"""Tests of jreg.prox: optimality conditions, brute-force and scipy references, autodiff."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from test_penalties import (
    BAD_COMMON,
    BAD_SPECIFIC,
    NAMES,
    OPTIONS,
    SHAPE,
    check_bad_input,
    check_bad_option,
    elementwise_reference,
    group_shape,
    jitted,
    operator,
    random_leaf,
    reference,
    sklearn_solution,
)

from jreg import prox

TOL = 1e-10
S, C = np.float64(0.7), np.float64(0.9)  # a strength and a scaling (np.float64: one jit signature)

# --------------------------------------------------------------------------------------------
# Optimality: 0 in y - x + t dP(y), t = scaling * strength, for the convex operators.


def _check_elementwise(x, y, t, rho):
    """P = rho |y| + (1 - rho) / 2 y^2 per coordinate (l1: rho=1, l2: rho=0)."""
    t = np.broadcast_to(t, x.shape)
    zero = y == 0
    assert np.all(np.abs(x[zero]) <= rho * t[zero] + TOL)
    residual = x - y - t * (rho * np.sign(y) + (1 - rho) * y)
    np.testing.assert_allclose(residual[~zero], 0, atol=TOL)


def _check_group_lasso(x, y, t, axis):
    norm_x = np.sqrt(np.sum(x**2, axis=axis, keepdims=True))
    norm_y = np.sqrt(np.sum(y**2, axis=axis, keepdims=True))
    t = np.broadcast_to(t, np.sum(x, axis=axis).shape)  # the groups' shape
    t = np.broadcast_to(t if axis is None else np.expand_dims(t, axis), norm_y.shape)
    zero = norm_y == 0
    assert np.all(norm_x[zero] <= t[zero] + TOL)
    residual = x - y - t * y / np.where(zero, 1, norm_y)
    np.testing.assert_allclose(np.where(zero, 0, residual), 0, atol=TOL)


def _check_linf(x, y, t):
    r = x - y
    if np.all(y == 0):
        assert np.sum(np.abs(x)) <= t + TOL
        return
    at_max = np.abs(y) >= np.max(np.abs(y)) - 1e-9
    np.testing.assert_allclose(r[~at_max], 0, atol=TOL)  # only the largest |y_i| are clipped
    assert np.all(r[at_max] * np.sign(y[at_max]) >= -TOL)  # ... towards zero
    np.testing.assert_allclose(np.sum(np.abs(r)), t, atol=TOL)  # r in t * d||y||_inf


def _check_nuclear(x, y, t):
    t = np.broadcast_to(t, x.shape[:-2])
    for index in np.ndindex(x.shape[:-2]):
        if t[index] == 0:
            np.testing.assert_allclose(y[index], x[index], atol=TOL)
            continue
        g = (x[index] - y[index]) / t[index]  # in d||Y||_* = {U V^T + W: ||W||_2 <= 1, ...}
        u, sigma, vh = np.linalg.svd(y[index])
        rank = np.sum(sigma > 1e-9)
        np.testing.assert_allclose(u[:, :rank].T @ g, vh[:rank], atol=TOL)
        np.testing.assert_allclose(g @ vh[:rank].T, u[:, :rank], atol=TOL)
        assert np.linalg.norm(g, 2) <= 1 + TOL


OPTIMALITY = {
    "l1": lambda x, y, t: _check_elementwise(x, y, t, 1.0),
    "l2": lambda x, y, t: _check_elementwise(x, y, t, 0.0),
    "elastic_net": lambda x, y, t: _check_elementwise(x, y, t, OPTIONS["elastic_net"]["l1_ratio"]),
    "group_lasso": lambda x, y, t: _check_group_lasso(x, y, t, OPTIONS["group_lasso"]["axis"]),
    "linf": _check_linf,
    "nuclear": _check_nuclear,
}


@pytest.mark.parametrize("name", list(OPTIMALITY))
def test_optimality_condition(name):
    rng = np.random.default_rng(20)
    fn = jitted(prox, name)
    shape = group_shape(name)
    strengths = [np.float64(0.6)] + ([] if shape is None else [rng.uniform(0, 1.2, shape)])
    zeros = 0
    for x in [random_leaf(rng), random_leaf(rng), 0.05 * random_leaf(rng)]:
        for strength in strengths:
            for scaling in np.array([0.0, 0.3, 1.0, 2.5]):
                y = np.asarray(fn(x, strength, scaling=scaling))
                OPTIMALITY[name](x, y, scaling * strength)
                zeros += np.sum(y == 0)
    assert zeros > 0  # the exact-zero branch was exercised


@pytest.mark.parametrize("axis", [None, 0, (0, 2)])
def test_group_lasso_optimality_other_axes(axis):
    rng = np.random.default_rng(21)
    x = random_leaf(rng)
    strength = rng.uniform(0, 1.5, np.sum(x, axis=axis).shape)
    y = np.asarray(jitted(prox, "group_lasso", {"axis": axis})(x, strength, scaling=1.5))
    _check_group_lasso(x, y, 1.5 * strength, axis)


# --------------------------------------------------------------------------------------------
# Elementwise operators against a brute-force 1-D minimization, convex and non-convex regimes.


def brute_force(name, options, x, s, c):
    """Per coordinate: global minimizer of 1/2 (y - x)^2 + c P(y; s) over a grid, refined.

    Returns the minimizer, the minimum, and a mask of the coordinates whose minimizer is
    unique (no point 0.05 away from it is within 1e-6 of the minimum).
    """

    def objective(y):
        return 0.5 * (y - x[:, None]) ** 2 + c[:, None] * elementwise_reference(
            name, y, s[:, None], **options
        )

    radius = np.max(np.abs(x)) + 1
    grid = np.linspace(-radius, radius, 6001)  # holds 0
    values = objective(grid[None, :])
    best = grid[np.argmin(values, axis=1)]
    step = grid[1] - grid[0]
    fine = best[:, None] + np.concatenate([[0.0], np.linspace(-step, step, 201)])
    fine_values = objective(fine)
    index = np.argmin(fine_values, axis=1)
    rows = np.arange(len(x))
    minimizer, minimum = fine[rows, index], fine_values[rows, index]
    far = np.abs(grid[None, :] - minimizer[:, None]) > 0.05
    unique = np.min(np.where(far, values, np.inf), axis=1) > minimum + 1e-6
    return minimizer, minimum, unique


GRID_CASES = [
    ("l1", {}, [0.5, 2.0]),
    ("l2", {}, [0.5, 2.0]),
    ("elastic_net", {"l1_ratio": 0.3}, [0.5, 2.0]),
    ("l0", {}, [0.5, 2.0]),
    ("mcp", {"gamma": 3.0}, [0.5, 2.0]),
    ("mcp", {"gamma": 3.0}, [3.0, 5.0]),  # gamma <= scaling: non-convex 1-D problem
    ("mcp", {"gamma": 1.5}, [1.0, 1.5, 4.0]),
    ("scad", {"a": 3.7}, [0.5, 2.0]),
    ("scad", {"a": 3.7}, [2.7, 5.0]),  # a <= 1 + scaling: non-convex
    ("scad", {"a": 2.5}, [1.0, 1.5, 4.0]),
    ("mcp", {"gamma": 2.0}, "per-coordinate"),  # scaling array mixing both regimes
    ("scad", {"a": 3.0}, "per-coordinate"),
    ("l0", {}, "per-coordinate"),
]


@pytest.mark.parametrize(("name", "options", "scalings"), GRID_CASES)
def test_elementwise_prox_is_global_minimizer(name, options, scalings):
    rng = np.random.default_rng(22)
    x = np.concatenate([np.linspace(-5, 5, 201), rng.uniform(-5, 5, 99)])
    s = rng.uniform(0.3, 1.5, x.shape)  # per-coordinate strength
    if scalings == "per-coordinate":
        scalings = [rng.choice([0.3, 1.0, 2.0, 3.0, 4.5], x.shape)]
    fn = jitted(prox, name, options)
    for scaling in scalings:
        y = np.asarray(fn(x, s, scaling=np.float64(scaling) if np.ndim(scaling) == 0 else scaling))
        c = np.broadcast_to(scaling, x.shape)
        minimizer, minimum, unique = brute_force(name, options, x, s, c)
        objective = 0.5 * (y - x) ** 2 + c * elementwise_reference(name, y, s, **options)
        assert np.all(objective <= minimum + 1e-9), np.max(objective - minimum)
        assert np.mean(unique) > 0.8
        np.testing.assert_allclose(y[unique], minimizer[unique], atol=1e-4)


# --------------------------------------------------------------------------------------------
# Group lasso, linf, nuclear against scipy and a bisection closed form.


def _scipy_minimum(objective, shape, starts):
    best = None
    for start in starts:
        result = scipy.optimize.minimize(
            lambda v: objective(v.reshape(shape)),
            np.ravel(start),
            method="Powell",
            options={"xtol": 1e-10, "ftol": 1e-15, "maxfev": 100_000},
        )
        best = result if best is None or result.fun < best.fun else best
    return best.x.reshape(shape), best.fun


SCIPY_CASES = [
    ("group_lasso", {"axis": 1}, (2, 3), [0.5, 2.5]),  # the second group is zeroed
    ("group_lasso", {"axis": None}, (2, 3), 1.0),
    ("group_lasso", {"axis": 0}, (2, 3), [0.3, 1.0, 4.0]),
    ("linf", {}, (6,), 1.0),
    ("linf", {}, (2, 3), 4.0),
    ("nuclear", {}, (2, 3), 0.5),
    ("nuclear", {}, (3, 2), 1.5),
]


@pytest.mark.parametrize(("name", "options", "shape", "strength"), SCIPY_CASES)
def test_prox_beats_scipy_minimize(name, options, shape, strength):
    rng = np.random.default_rng(23)
    x, c = 2 * rng.normal(size=shape), 0.8
    strength = np.asarray(strength)
    y = np.asarray(jitted(prox, name, options)(x, strength, scaling=c))

    def objective(v):
        return 0.5 * np.sum((v - x) ** 2) + c * reference(name, v, strength, **options)

    starts = [x, np.zeros_like(x), y + 0.1 * rng.normal(size=shape)]
    y_ref, f_ref = _scipy_minimum(objective, shape, starts)
    f_prox = objective(y)
    assert f_prox <= f_ref + 1e-9
    # the objective is 1-strongly convex: ||y_ref - y*||^2 / 2 <= f_ref - f(y*)
    assert np.linalg.norm(y_ref - y) <= np.sqrt(2 * max(f_ref - f_prox, 0)) + 1e-6


def linf_prox_by_bisection(x, t):
    """``sign(x) min(|x|, tau)`` with ``sum (|x| - tau)_+ = t`` (Moreau + L1-ball projection)."""
    magnitude = np.abs(x)
    if magnitude.sum() <= t:
        return np.zeros_like(x)
    low, high = 0.0, magnitude.max()
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if np.maximum(magnitude - middle, 0).sum() > t else (low, middle)
    return np.clip(x, -low, low)


def test_linf_matches_bisection_closed_form():
    rng = np.random.default_rng(24)
    fn = jitted(prox, "linf")
    for x in [random_leaf(rng), random_leaf(rng), 0.02 * random_leaf(rng)]:
        for strength, scaling in [(0.3, 1.0), (2.0, 1.5), (5.0, 2.0), (0.0, 1.0)]:
            y = fn(x, np.float64(strength), scaling=np.float64(scaling))
            expected = linf_prox_by_bisection(x, strength * scaling)
            np.testing.assert_allclose(y, expected, atol=1e-12)


@pytest.mark.parametrize("l1_ratio", [1.0, 0.7])
def test_sklearn_solution_is_a_proximal_gradient_fixed_point(l1_ratio):
    X, y, alpha, w = sklearn_solution(l1_ratio)
    gradient = -X.T @ (y - X @ w) / len(y)
    for step in [0.05, 0.3]:
        moved = w - step * gradient
        if l1_ratio == 1.0:
            fixed = prox.l1(moved, alpha, scaling=step)
        else:
            fixed = prox.elastic_net(moved, alpha, scaling=step, l1_ratio=l1_ratio)
        np.testing.assert_allclose(fixed, w, atol=1e-7)


# --------------------------------------------------------------------------------------------
# Pytrees, per-coordinate strengths and scalings.


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_zero_strength_keeps_tiny_values(name, dtype):
    # squares of such values underflow: a threshold test on x**2 would zero them
    x = np.full(SHAPE, 1e-30 if dtype == np.float32 else 1e-200, dtype)
    x[0] *= -3
    y = jitted(prox, name)(x, np.float64(0.0), scaling=C)
    np.testing.assert_allclose(y, x, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_pytree_structure_dtypes_and_per_leaf_strength(name):
    rng = np.random.default_rng(25)
    tree = {
        "w": jnp.asarray(random_leaf(rng), jnp.bfloat16),
        "layers": ({"k": random_leaf(rng, dtype=np.float32)}, [random_leaf(rng)]),
        "unused": None,
    }
    strength = {"w": S, "layers": ({"k": 0.0}, [S]), "unused": None}
    fn = jitted(prox, name)
    out = fn(tree, strength, scaling=C)
    assert jax.tree.structure(out) == jax.tree.structure(tree)
    exempt = tree["layers"][0]["k"]
    np.testing.assert_allclose(out["layers"][0]["k"], exempt, atol=1e-6)  # strength 0: unchanged
    for leaf, result in zip(jax.tree.leaves(tree), jax.tree.leaves(out), strict=True):
        assert result.dtype == leaf.dtype and result.shape == leaf.shape
        if leaf is not exempt:  # each leaf is the prox of that leaf alone
            np.testing.assert_array_equal(result, fn(leaf, S, scaling=C))


@pytest.mark.parametrize("name", [n for n in NAMES if group_shape(n) is not None])
def test_per_coordinate_strength_is_per_group_scalar_strength(name):
    # an array strength acts like the scalar strength of each coordinate / group / matrix
    rng = np.random.default_rng(26)
    x = random_leaf(rng)
    strength = rng.uniform(0, 2, group_shape(name))
    fn = jitted(prox, name)
    y = np.asarray(fn(x, strength, scaling=C))
    full = np.broadcast_to(
        np.expand_dims(strength, OPTIONS[name]["axis"]) if name == "group_lasso" else strength,
        x.shape if name != "nuclear" else x.shape[:-2],
    )
    for value in np.unique(full):
        mask = full == value
        if name == "nuclear":
            np.testing.assert_allclose(y[mask], fn(x[mask], value, scaling=C), atol=1e-13)
        else:
            np.testing.assert_allclose(y[mask], np.asarray(fn(x, value, scaling=C))[mask])


# --------------------------------------------------------------------------------------------
# jit, vmap, autodiff.


@pytest.mark.parametrize("name", NAMES)
def test_jit_and_vmap_agree_with_eager(name):
    rng = np.random.default_rng(27)
    fn, jit_fn = operator(prox, name), jitted(prox, name)
    xs = np.stack([random_leaf(rng) for _ in range(3)])
    strengths, scalings = np.array([0.0, 0.4, 1.3]), np.array([0.7, 2.0, 0.9])
    np.testing.assert_allclose(fn(xs[1], S, scaling=C), jit_fn(xs[1], S, scaling=C))
    pairs = list(zip(strengths, scalings, strict=True))
    expected = [[jit_fn(x, s, scaling=c) for s, c in pairs] for x in xs]

    # vmap over params, and over strength and scaling (traced), in one compiled program
    def call(x, s, c):
        return fn(x, s, scaling=c)

    both = jax.jit(jax.vmap(jax.vmap(call, (None, 0, 0)), (0, None, None)))
    np.testing.assert_allclose(both(xs, strengths, scalings), np.array(expected), atol=1e-14)


@functools.cache
def _prox_gradient(name):
    """Gradient in (x, strength) of <prox(x, strength), w>: finite iff w^T J is."""

    def inner(x, s, w):
        return jnp.sum(operator(prox, name)(x, s, scaling=0.8) * w)

    return jax.jit(jax.grad(inner, (0, 1)))


def _repeated_singular_values():
    """Matrices with repeated singular values (1, 1, 1) and (2, 2, 0)."""
    return np.stack([np.eye(3, 4), np.diag([2.0, 2.0, 0.0]) @ np.eye(3, 4)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_jacobian_finite_at_zero_and_zero_strength(name, dtype):
    rng = np.random.default_rng(28)
    x = random_leaf(rng, dtype=dtype)
    w = rng.normal(size=SHAPE).astype(dtype)  # no zero: any NaN in J shows in w^T J
    zero, repeated = np.zeros_like(x), _repeated_singular_values().astype(dtype)
    for point, s in [(zero, 1.0), (zero, 0.0), (x, 0.0), (x, 1.0), (repeated, 0.5)]:
        gx, gs = _prox_gradient(name)(point, np.asarray(s, dtype), w)
        assert gx.dtype == dtype and gx.shape == x.shape
        assert np.all(np.isfinite(gx)) and np.all(np.isfinite(gs)), (point, s)


@pytest.mark.parametrize("point", ["random", "zero"])
@pytest.mark.parametrize("name", NAMES)
def test_jacobian_at_zero_strength_is_identity(name, point):
    rng = np.random.default_rng(29)
    x = rng.normal(size=SHAPE) if point == "random" else np.zeros(SHAPE)
    w = rng.normal(size=SHAPE)
    gx, _ = _prox_gradient(name)(x, np.float64(0.0), w)
    np.testing.assert_allclose(gx, w, atol=1e-12)  # w^T J = w


# --------------------------------------------------------------------------------------------
# nuclear: the custom JVP.


def plain_svt(x, threshold):
    """Singular value thresholding differentiated by jax through ``jnp.linalg.svd``."""
    u, sigma, vh = jnp.linalg.svd(x, full_matrices=False)
    return (u * jnp.maximum(sigma - threshold, 0)[..., None, :]) @ vh


_svt = jax.jit(lambda x, s: prox.nuclear(x, s, scaling=0.7))


_svt_jvp = jax.jit(lambda x, s, dx, ds: jax.jvp(_svt, (x, s), (dx, ds)))
_plain_jvp = jax.jit(
    lambda x, s, dx, ds: jax.jvp(lambda x, s: plain_svt(x, 0.7 * s), (x, s), (dx, ds))
)
_svt_jacobians = jax.jit(lambda x, s: (jax.jacfwd(_svt)(x, s), jax.jacrev(_svt)(x, s)))


@pytest.mark.parametrize("shape", [(3, 3), (5, 3), (2, 3, 4)])
def test_nuclear_jvp_matches_autodiff_of_plain_svd(shape):
    rng = np.random.default_rng(30)
    x = rng.normal(size=shape)
    sigma = np.linalg.svd(x, compute_uv=False)
    middle = np.sort(sigma.ravel())[sigma.size // 2 - 1 : sigma.size // 2 + 1]
    s = np.float64(np.mean(middle) / 0.7)  # some singular values kept, some zeroed
    assert np.min(np.abs(sigma - 0.7 * s)) > 1e-3 and np.min(np.diff(sigma[..., ::-1])) > 1e-3
    dx, ds = rng.normal(size=shape), np.float64(0.3)
    y, dy = _svt_jvp(x, s, dx, ds)
    y_plain, dy_plain = _plain_jvp(x, s, dx, ds)
    np.testing.assert_allclose(y, y_plain, atol=1e-12)
    np.testing.assert_allclose(dy, dy_plain, atol=1e-9)


def _orthogonal(rng, n):
    return np.linalg.qr(rng.normal(size=(n, n)))[0]


def _with_singular_values(rng, sigma, shape):
    m, n = shape
    full = np.zeros(shape)
    full[np.arange(len(sigma)), np.arange(len(sigma))] = sigma
    return _orthogonal(rng, m) @ full @ _orthogonal(rng, n).T


_RNG = np.random.default_rng(31)
NUCLEAR_POINTS = {  # one shape: one compilation
    "distinct": _RNG.normal(size=(3, 4)),
    "repeated": _with_singular_values(_RNG, [2.0, 2.0, 0.2], (3, 4)),
    "all-repeated": _with_singular_values(_RNG, [1.5, 1.5, 1.5], (3, 4)),
    "rank-deficient": _with_singular_values(_RNG, [2.0, 1.0, 0.0], (3, 4)),
    "zero": np.zeros((3, 4)),
}


@pytest.mark.parametrize("strength", [0.0, 0.5])
@pytest.mark.parametrize("point", list(NUCLEAR_POINTS))
def test_nuclear_jvp_matches_finite_differences(point, strength):
    # at repeated and zero singular values (away from the threshold) the map is differentiable
    rng = np.random.default_rng(32)
    x = NUCLEAR_POINTS[point]
    s, h = np.float64(strength), 1e-6
    for dx, ds in [(rng.normal(size=x.shape), 0.0), (np.zeros_like(x), 1.0)]:
        if strength == 0 and ds:
            continue  # one-sided in the strength at 0
        _, dy = _svt_jvp(x, s, dx, np.float64(ds))
        difference = (_svt(x + h * dx, s + h * ds) - _svt(x - h * dx, s - h * ds)) / (2 * h)
        np.testing.assert_allclose(dy, difference, atol=1e-7)
    jac_forward, jac_reverse = _svt_jacobians(x, s)
    assert np.all(np.isfinite(jac_reverse))
    np.testing.assert_allclose(jac_forward, jac_reverse, atol=1e-12)


# --------------------------------------------------------------------------------------------
# dtypes and structure.


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64, jnp.bfloat16])
@pytest.mark.parametrize("name", NAMES)
def test_output_keeps_dtype(name, dtype):
    x = jnp.asarray(random_leaf(np.random.default_rng(33)), dtype)
    y = jitted(prox, name)(x, S, scaling=C)
    assert y.dtype == dtype and y.shape == x.shape
    expected = jitted(prox, name)(np.asarray(x, np.float64), S, scaling=C)
    tol = {jnp.bfloat16: 2e-2, jnp.float32: 1e-5, jnp.float64: 0}[dtype]
    np.testing.assert_allclose(np.asarray(y, np.float64), expected, rtol=tol, atol=tol)


# --------------------------------------------------------------------------------------------
# Bad inputs.

BAD_SCALING = [
    ("negative-scaling", lambda f, x: f(x, 1.0, scaling=-0.5), ValueError, "scaling"),
    ("nan-scaling", lambda f, x: f(x, 1.0, scaling=np.nan), ValueError, "scaling"),
    ("inf-scaling", lambda f, x: f(x, 1.0, scaling=np.inf), ValueError, "scaling"),
    ("scaling-tree", lambda f, x: f({"w": x}, 1.0, scaling={"v": 1.0}), ValueError, "scaling"),
    ("scaling-shape", lambda f, x: f(x, 1.0, scaling=np.ones(5)), ValueError, "scaling"),
]


@pytest.mark.parametrize(
    ("case", "call", "error", "match"),
    BAD_COMMON + BAD_SCALING,
    ids=[case[0] for case in BAD_COMMON + BAD_SCALING],
)
@pytest.mark.parametrize("name", NAMES)
def test_bad_input_raises_naming_the_argument(name, case, call, error, match):
    check_bad_input(prox, name, call, error, match)


@pytest.mark.parametrize(("name", "options", "error", "match"), BAD_SPECIFIC)
def test_bad_option_raises_naming_the_argument(name, options, error, match):
    check_bad_option(prox, name, options, error, match)


def test_nuclear_rejects_vectors():
    with pytest.raises(ValueError, match="params"):
        prox.nuclear({"w": np.ones((3, 4)), "b": np.ones(3)}, 1.0)
