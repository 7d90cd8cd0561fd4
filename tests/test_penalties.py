"""Tests of jreg.penalties against independent numpy formulas and scikit-learn.

The helpers at the top (the operator table, the numpy references, the bad-input table) are also
used by the prox tests.
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.integrate
from sklearn.linear_model import ElasticNet, Lasso

from jreg import penalties

# (name, options) of the nine operators, with non-default options where they exist.
OPERATORS = [
    ("l1", {}),
    ("l2", {}),
    ("elastic_net", {"l1_ratio": 0.3}),
    ("group_lasso", {"axis": 1}),
    ("l0", {}),
    ("linf", {}),
    ("nuclear", {}),
    ("mcp", {"gamma": 2.5}),
    ("scad", {"a": 3.2}),
]
NAMES = [name for name, _ in OPERATORS]
OPTIONS = dict(OPERATORS)
ELEMENTWISE = ("l1", "l2", "elastic_net", "l0", "mcp", "scad")
CONVEX = ("l1", "l2", "elastic_net", "group_lasso", "linf", "nuclear")
# The documented defaults of the options.
DEFAULTS = {
    "elastic_net": {"l1_ratio": 0.5},
    "group_lasso": {"axis": None},
    "mcp": {"gamma": 3.0},
    "scad": {"a": 3.7},
}
SHAPE = (2, 3, 4)  # one leaf shape for most tests (jit caches per shape)


def operator(module, name, options=None):
    """``module.name`` with ``options`` (by default the table's) bound."""
    return functools.partial(
        getattr(module, name), **(OPTIONS[name] if options is None else options)
    )


@functools.cache
def _jitted(module, name, options):
    return jax.jit(operator(module, name, dict(options)))


def jitted(module, name, options=None):
    """``jax.jit`` of :func:`operator`, cached (eager calls compile every primitive: slow)."""
    options = OPTIONS[name] if options is None else options
    return _jitted(module, name, tuple(sorted(options.items())))


def random_leaf(rng, shape=SHAPE, dtype=np.float64):
    """Normal entries of scale 1.5, about a fifth of them exactly zero."""
    leaf = 1.5 * rng.normal(size=shape)
    leaf[rng.random(shape) < 0.2] = 0.0
    return leaf.astype(dtype)


def group_shape(name, shape=SHAPE):
    """Shape of the per-coordinate strength for a leaf of ``shape`` (None: scalar only)."""
    return {"group_lasso": (shape[0], 1), "nuclear": shape[:-2], "linf": None}.get(name, shape[1:])


# --------------------------------------------------------------------------------------------
# numpy references, written from the papers' definitions.


def elementwise_reference(name, w, s, *, l1_ratio=0.5, gamma=3.0, a=3.7):
    """Per-coordinate value of an elementwise penalty (numpy, float64)."""
    t = np.abs(w)
    if name == "l1":
        return s * t
    if name == "l2":
        return s / 2 * t**2
    if name == "elastic_net":
        return s * (l1_ratio * t + (1 - l1_ratio) / 2 * t**2)
    if name == "l0":
        return s * (w != 0)
    if name == "mcp":  # Zhang (2010), eq. (2.1)
        return np.where(t <= gamma * s, s * t - t**2 / (2 * gamma), gamma * s**2 / 2)
    if name == "scad":  # Fan and Li (2001), eq. (2.7) integrated
        middle = (2 * a * s * t - t**2 - s**2) / (2 * (a - 1))
        return np.select([t <= s, t <= a * s], [s * t, middle], (a + 1) * s**2 / 2)
    raise KeyError(name)


def reference(name, w, s, **options):
    """Penalty of one leaf (numpy, float64); ``s`` broadcasts to the leaf's groups."""
    options = {**DEFAULTS.get(name, {}), **options}
    w, s = np.asarray(w, np.float64), np.asarray(s, np.float64)
    if name == "group_lasso":
        return float(np.sum(s * np.sqrt(np.sum(w**2, axis=options["axis"]))))
    if name == "linf":
        return float(s * np.max(np.abs(w), initial=0.0))
    if name == "nuclear":
        return float(np.sum(s * np.linalg.svd(w, compute_uv=False).sum(axis=-1)))
    return float(np.sum(elementwise_reference(name, w, s, **options)))


# Bad inputs: (id, call(module, name, x) -> None, exception, regex naming the argument).
BAD_COMMON = [
    ("negative-strength", lambda f, x: f(x, -0.1), ValueError, "strength"),
    ("nan-strength", lambda f, x: f(x, np.nan), ValueError, "strength"),
    ("inf-strength", lambda f, x: f(x, np.inf), ValueError, "strength"),
    (
        "negative-in-array",
        lambda f, x: f(x, np.array([0.5, -0.1, 0.5, 0.5])),
        ValueError,
        "strength",
    ),
    ("tree-missing-key", lambda f, x: f({"w": x, "b": x}, {"w": 1.0}), ValueError, "strength"),
    ("tree-extra-key", lambda f, x: f({"w": x}, {"w": 1.0, "v": 1.0}), ValueError, "strength"),
    ("tree-list-for-tuple", lambda f, x: f((x, x), [1.0, 1.0]), ValueError, "strength"),
    ("not-broadcastable", lambda f, x: f(x, np.ones(5)), ValueError, "strength"),
    ("negative-leaf-strength", lambda f, x: f({"w": x}, {"w": -1.0}), ValueError, "strength"),
    ("string-strength", lambda f, x: f(x, "1.0"), TypeError, "strength"),
    ("integer-params", lambda f, x: f(x.astype(np.int32), 1.0), TypeError, "^(params|x) must"),
]
BAD_SPECIFIC = [
    ("elastic_net", {"l1_ratio": -0.1}, ValueError, "l1_ratio"),
    ("elastic_net", {"l1_ratio": 1.5}, ValueError, "l1_ratio"),
    ("elastic_net", {"l1_ratio": np.nan}, ValueError, "l1_ratio"),
    ("mcp", {"gamma": 1.0}, ValueError, "gamma"),
    ("mcp", {"gamma": 0.5}, ValueError, "gamma"),
    ("mcp", {"gamma": np.inf}, ValueError, "gamma"),
    ("scad", {"a": 2.0}, ValueError, r"^a\b"),
    ("scad", {"a": 1.0}, ValueError, r"^a\b"),
    ("group_lasso", {"axis": 3}, ValueError, "axis"),
    ("group_lasso", {"axis": -4}, ValueError, "axis"),
    ("group_lasso", {"axis": (0, 3)}, ValueError, "axis"),
    ("group_lasso", {"axis": (1, -2)}, ValueError, "axis"),
    ("group_lasso", {"axis": 1.0}, TypeError, "axis"),
]


def check_bad_input(module, name, call, error, match):
    fn = operator(module, name)
    with pytest.raises(error, match=match):
        call(fn, np.ones(SHAPE))


def check_bad_option(module, name, options, error, match):
    fn = getattr(module, name)
    with pytest.raises(error, match=match):
        fn(np.ones(SHAPE), 1.0, **options)


# --------------------------------------------------------------------------------------------
# Values.


VALUE_CASES = OPERATORS + [
    ("elastic_net", {}),
    ("elastic_net", {"l1_ratio": 0.0}),
    ("elastic_net", {"l1_ratio": 1.0}),
    ("group_lasso", {}),
    ("mcp", {}),
    ("mcp", {"gamma": 1.1}),
    ("scad", {}),
    ("scad", {"a": 2.1}),
]


@pytest.mark.parametrize(("name", "options"), VALUE_CASES)
def test_value_matches_numpy_reference(name, options):
    w = random_leaf(np.random.default_rng(0))
    fn = jitted(penalties, name, options)
    for strength in [0.0, 0.7, 2.0]:
        value = fn(w, strength)
        assert value.shape == ()
        expected = reference(name, w, strength, **options)
        np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize(
    ("name", "options", "derivative"),
    [
        ("mcp", {"gamma": 2.5}, lambda u, s: max(s - u / 2.5, 0.0)),
        ("mcp", {"gamma": 1.2}, lambda u, s: max(s - u / 1.2, 0.0)),
        ("scad", {"a": 3.7}, lambda u, s: s if u <= s else max(3.7 * s - u, 0.0) / 2.7),
        ("scad", {"a": 2.2}, lambda u, s: s if u <= s else max(2.2 * s - u, 0.0) / 1.2),
    ],
)
def test_mcp_scad_reference_integrates_the_papers_derivative(name, options, derivative):
    # MCP and SCAD are defined by their derivatives on [0, inf) (Zhang 2010; Fan and Li 2001):
    # this pins the closed forms used as references everywhere else.
    s = 0.8
    ts = np.array([0.0, 0.3, 0.8, 1.0, 1.7, 2.5, 3.0, 6.0])
    kinks = [s, 1.2 * s, 2.2 * s, 2.5 * s, 3.7 * s]
    integrals = [
        scipy.integrate.quad(derivative, 0, t, args=(s,), points=kinks, limit=200)[0] for t in ts
    ]
    np.testing.assert_allclose(elementwise_reference(name, ts, s, **options), integrals, rtol=1e-10)
    np.testing.assert_allclose(
        elementwise_reference(name, -ts, s, **options), integrals, rtol=1e-10
    )
    values = jax.vmap(jitted(penalties, name, options), (0, None))(ts, s)
    np.testing.assert_allclose(values, integrals, rtol=1e-10)


def sklearn_solution(l1_ratio):
    """``(X, y, alpha, coef)``: sklearn's Lasso (l1_ratio=1) or ElasticNet fit, no intercept."""
    rng = np.random.default_rng(1)
    n, p = 40, 8
    X = rng.normal(size=(n, p))
    y = X @ np.r_[2.0, -1.5, 1.0, np.zeros(p - 3)] + 0.5 * rng.normal(size=n)
    alpha = 0.2 * np.max(np.abs(X.T @ y)) / (n * l1_ratio)
    model = Lasso(alpha=alpha) if l1_ratio == 1.0 else ElasticNet(alpha=alpha, l1_ratio=l1_ratio)
    w = model.set_params(fit_intercept=False, tol=1e-14, max_iter=100_000).fit(X, y).coef_
    assert 0 < np.count_nonzero(w) < p
    return X, y, alpha, w


@pytest.mark.parametrize("l1_ratio", [1.0, 0.7, 0.2])
def test_l1_and_elastic_net_are_sklearn_objective(l1_ratio):
    # sklearn's solution minimizes 1/(2n) ||y - X w||^2 + P(w) with P = jreg's penalty: no small
    # coordinate move from it lowers that objective.
    X, y, alpha, w = sklearn_solution(l1_ratio)
    if l1_ratio == 1.0:
        penalty = jitted(penalties, "l1")
    else:
        penalty = jitted(penalties, "elastic_net", {"l1_ratio": l1_ratio})

    def objective(w):
        return jnp.sum((y - X @ w) ** 2) / (2 * len(y)) + penalty(w, alpha)

    moves = np.concatenate([np.eye(len(w)), -np.eye(len(w))]) * 1e-3
    base = objective(w)
    moved = jax.vmap(objective)(w + moves)
    assert np.all(moved >= base - 1e-11), moved - base


def test_l2_gradient_is_optax_add_decayed_weights():
    params = {"w": random_leaf(np.random.default_rng(2)), "b": np.array([1.0, -2.0])}
    grad = jax.jit(jax.grad(penalties.l2))(params, 0.3)
    decayed, _ = optax.add_decayed_weights(0.3).update(
        jax.tree.map(jnp.zeros_like, params), optax.EmptyState(), params
    )
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-14), grad, decayed)


# --------------------------------------------------------------------------------------------
# Pytrees and strengths.


@pytest.mark.parametrize("name", NAMES)
def test_pytree_sums_over_leaves_with_per_leaf_strengths(name):
    rng = np.random.default_rng(4)
    params = {"a": random_leaf(rng), "b": [random_leaf(rng, (3, 4)), random_leaf(rng, (5, 2))]}
    a, (b0, b1) = params["a"], params["b"]
    fn, ref = jitted(penalties, name), functools.partial(reference, name, **OPTIONS[name])
    np.testing.assert_allclose(fn(params, 0.7), ref(a, 0.7) + ref(b0, 0.7) + ref(b1, 0.7))
    # one strength per leaf; 0 exempts a leaf, whatever its value
    for strength in [{"a": 0.7, "b": [0.0, 1.3]}, {"a": 0.7, "b": [2.0, 1.3]}]:
        b = strength["b"]
        expected = ref(a, 0.7) + ref(b0, b[0]) + ref(b1, b[1])
        np.testing.assert_allclose(fn(params, strength), expected, rtol=1e-12)
    big = {"a": a, "b": [100 * b0 + 1, b1]}
    np.testing.assert_allclose(fn(big, {"a": 0.7, "b": [0.0, 1.3]}), ref(a, 0.7) + ref(b1, 1.3))
    # a prefix: one strength for the whole subtree "b"
    np.testing.assert_allclose(fn(params, {"a": 0.7, "b": 0.0}), ref(a, 0.7), rtol=1e-12)


@pytest.mark.parametrize("name", [n for n in NAMES if group_shape(n) is not None])
def test_per_coordinate_strength(name):
    rng = np.random.default_rng(5)
    params = {"w": random_leaf(rng), "v": random_leaf(rng)}
    s = rng.uniform(0, 2, group_shape(name))
    s.flat[0] = 0.0  # a zero weight exempts its coordinates / groups
    fn, ref = jitted(penalties, name), functools.partial(reference, name, **OPTIONS[name])
    # a pytree of arrays next to a per-leaf scalar
    value = fn(params, {"w": s, "v": 0.5})
    np.testing.assert_allclose(value, ref(params["w"], s) + ref(params["v"], 0.5), rtol=1e-12)
    value = fn(params, {"w": s, "v": 0.0})
    np.testing.assert_allclose(value, ref(params["w"], s), rtol=1e-12)


@pytest.mark.parametrize("axis", [None, 1, -1, (0, 2), ()])
def test_group_lasso_axis(axis):
    rng = np.random.default_rng(6)
    w = random_leaf(rng)
    w[0, :, 1] = 0.0  # a zero group for axis=1
    s = rng.uniform(0, 2, np.sum(w, axis=axis).shape)
    value = jitted(penalties, "group_lasso", {"axis": axis})(w, s)
    np.testing.assert_allclose(value, np.sum(s * np.sqrt(np.sum(w**2, axis=axis))), rtol=1e-12)
    if axis == ():  # every coordinate its own group
        np.testing.assert_allclose(value, np.sum(s * np.abs(w)), rtol=1e-12)


def test_nuclear_on_a_batch_of_matrices():
    rng = np.random.default_rng(7)
    w = rng.normal(size=(2, 3, 4, 2))
    s = rng.uniform(0, 2, (2, 3))
    for strength in [s, s[:, :1], 0.5]:
        per_matrix = np.broadcast_to(strength, (2, 3))
        expected = sum(
            per_matrix[i, j] * np.linalg.svd(w[i, j], compute_uv=False).sum()
            for i in range(2)
            for j in range(3)
        )
        value = jitted(penalties, "nuclear")(w, strength)
        np.testing.assert_allclose(value, expected, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Transformations: jit, vmap, grad.


@pytest.mark.parametrize("name", NAMES)
def test_jit_and_vmap_agree_with_eager(name):
    rng = np.random.default_rng(8)
    fn = operator(penalties, name)
    xs = np.stack([random_leaf(rng) for _ in range(3)])
    strengths = np.array([0.0, 0.4, 1.3])
    eager = fn(xs[1], strengths[2])
    np.testing.assert_allclose(eager, reference(name, xs[1], 1.3, **OPTIONS[name]), rtol=1e-12)
    np.testing.assert_allclose(jitted(penalties, name)(xs[1], strengths[2]), eager, rtol=1e-12)
    # vmap over params and over strength (traced), one compiled program
    expected = np.array([[reference(name, x, s, **OPTIONS[name]) for s in strengths] for x in xs])
    both = jax.jit(jax.vmap(jax.vmap(fn, (None, 0)), (0, None)))
    np.testing.assert_allclose(both(xs, strengths), expected, rtol=1e-12)


@functools.cache
def _grad(name):
    return jax.jit(jax.grad(operator(penalties, name), argnums=(0, 1)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_gradient_finite_at_zero_and_zero_strength(name, dtype):
    x = random_leaf(np.random.default_rng(9), dtype=dtype)
    for point, strength in [(np.zeros_like(x), 1.0), (np.zeros_like(x), 0.0), (x, 0.0)]:
        gx, gs = _grad(name)(point, np.asarray(strength, dtype))
        assert gx.dtype == dtype and gx.shape == x.shape
        assert np.all(np.isfinite(gx)) and np.isfinite(gs), (point, strength)
        if strength == 0.0:
            np.testing.assert_array_equal(gx, 0.0)


@pytest.mark.parametrize("name", CONVEX)
def test_gradient_is_a_subgradient(name):
    # P(z) >= P(x) + <g, z - x> for the gradient g that jax returns, at kinks (zero) too
    rng = np.random.default_rng(10)
    fn, s = jitted(penalties, name), np.float64(0.8)
    x = random_leaf(rng)
    for point in [np.zeros_like(x), x]:
        g, _ = _grad(name)(point, s)
        for _ in range(4):
            z = random_leaf(rng)
            assert fn(z, s) >= fn(point, s) + np.sum(np.asarray(g) * (z - point)) - 1e-12


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64, jnp.bfloat16])
@pytest.mark.parametrize("name", NAMES)
def test_value_dtype_is_params_dtype(name, dtype):
    x = jnp.asarray(random_leaf(np.random.default_rng(11)), dtype)
    value = jitted(penalties, name)(x, 0.7)
    assert value.dtype == dtype
    expected = reference(name, np.asarray(x, np.float64), 0.7, **OPTIONS[name])
    tol = {jnp.bfloat16: 1e-2, jnp.float32: 1e-5, jnp.float64: 1e-12}[dtype]
    np.testing.assert_allclose(np.float64(value), expected, rtol=tol)


def test_half_precision_strength_is_accepted():
    x = jnp.asarray([1.0, -2.0, 0.5], jnp.bfloat16)
    value = penalties.l1(x, jnp.asarray(0.5, jnp.bfloat16))
    assert value.dtype == jnp.bfloat16 and float(value) == 1.75
    with pytest.raises(ValueError, match="strength"):
        penalties.l1(x, jnp.asarray(-0.5, jnp.bfloat16))


def test_mixed_dtype_tree_value_promotes():
    rng = np.random.default_rng(12)
    params = {"a": jnp.asarray(random_leaf(rng), jnp.bfloat16), "b": random_leaf(rng, dtype="f4")}
    assert jitted(penalties, "l1")(params, 0.5).dtype == jnp.float32
    assert penalties.l1({}, 0.5).shape == ()


# --------------------------------------------------------------------------------------------
# Bad inputs.


@pytest.mark.parametrize(
    ("case", "call", "error", "match"), BAD_COMMON, ids=[c[0] for c in BAD_COMMON]
)
@pytest.mark.parametrize("name", NAMES)
def test_bad_input_raises_naming_the_argument(name, case, call, error, match):
    check_bad_input(penalties, name, call, error, match)


@pytest.mark.parametrize(("name", "options", "error", "match"), BAD_SPECIFIC)
def test_bad_option_raises_naming_the_argument(name, options, error, match):
    check_bad_option(penalties, name, options, error, match)


def test_nuclear_rejects_vectors():
    with pytest.raises(ValueError, match=re.compile("params.*2", re.S)):
        penalties.nuclear({"w": np.ones((3, 4)), "b": np.ones(3)}, 1.0)


def test_concrete_bad_strength_raises_inside_jit():
    with pytest.raises(ValueError, match="strength"):
        jax.jit(lambda x: penalties.l1(x, -1.0))(np.ones(3))
