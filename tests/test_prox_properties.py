"""Property tests of jreg.prox (hypothesis): Moreau decomposition, firm non-expansiveness,
zero strength, exact zeros. One array shape throughout, so each operator compiles once."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_penalties import NAMES, OPTIONS, SHAPE, jitted

from jreg import prox

EXAMPLES = settings(max_examples=30)
arrays = hnp.arrays(
    np.float64, SHAPE, elements=st.floats(-3, 3, allow_nan=False, allow_subnormal=False)
)
# no subnormal strength * scaling: XLA on CPU flushes subnormals to zero (threshold 0)
strengths = st.just(0.0) | st.floats(1e-6, 2.0)
scalings = st.floats(0.05, 2.0)


def _prox(name, x, s, c):
    return np.asarray(jitted(prox, name)(x, np.float64(s), scaling=np.float64(c)))


def project_l1_ball(x, radius):
    """Euclidean projection onto {||y||_1 <= radius}, by bisection on the soft threshold."""
    magnitude = np.abs(x)
    if magnitude.sum() <= radius:
        return x
    low, high = 0.0, magnitude.max()
    for _ in range(100):
        middle = (low + high) / 2
        excess = np.maximum(magnitude - middle, 0).sum() > radius
        low, high = (middle, high) if excess else (low, middle)
    return np.sign(x) * np.maximum(magnitude - high, 0)


def _elastic_net_conjugate_prox(x, t):
    # h(y) = a|y| + b/2 y^2, h*(z) = (|z| - a)_+^2 / (2b): prox_h* keeps |x| <= a, else solves
    # z - x + (z - a sign z) / b = 0
    a, b = t * OPTIONS["elastic_net"]["l1_ratio"], t * (1 - OPTIONS["elastic_net"]["l1_ratio"])
    return np.where(np.abs(x) <= a, x, np.sign(x) * (b * np.abs(x) + a) / (1 + b))


def _group_conjugate_prox(x, t):
    # the conjugate of t ||.||_2 per group is the indicator of the ball of radius t
    norms = np.sqrt(np.sum(x**2, axis=OPTIONS["group_lasso"]["axis"], keepdims=True))
    return x * np.minimum(1, t / np.where(norms > 0, norms, 1))


def _nuclear_conjugate_prox(x, t):
    # projection onto the spectral-norm ball of radius t
    u, sigma, vh = np.linalg.svd(x, full_matrices=False)
    return (u * np.minimum(sigma, t)[..., None, :]) @ vh


# prox of the conjugate of t * P (t = scaling * strength), numpy
CONJUGATE_PROX = {
    "l1": lambda x, t: np.clip(x, -t, t),
    "l2": lambda x, t: x * t / (1 + t),
    "elastic_net": _elastic_net_conjugate_prox,
    "group_lasso": _group_conjugate_prox,
    "linf": project_l1_ball,
    "nuclear": _nuclear_conjugate_prox,
}
CONVEX = list(CONJUGATE_PROX)


@pytest.mark.parametrize("name", CONVEX)
@EXAMPLES
@given(x=arrays, s=strengths, c=scalings)
def test_moreau_decomposition(name, x, s, c):
    y = _prox(name, x, s, c)
    np.testing.assert_allclose(y + CONJUGATE_PROX[name](x, c * s), x, atol=1e-10)


@pytest.mark.parametrize("name", CONVEX)
@EXAMPLES
@given(x=arrays, z=arrays, s=strengths, c=scalings)
def test_firmly_nonexpansive(name, x, z, s, c):
    difference = _prox(name, x, s, c) - _prox(name, z, s, c)
    assert np.sum(difference**2) <= np.sum(difference * (x - z)) + 1e-10


@pytest.mark.parametrize("name", NAMES)
@EXAMPLES
@given(x=arrays, s=strengths, c=scalings)
def test_zero_strength_or_scaling_is_identity(name, x, s, c):
    np.testing.assert_allclose(_prox(name, x, 0.0, c), x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_prox(name, x, s, 0.0), x, rtol=1e-12, atol=1e-12)


# threshold(c, s) below which |x_i| is mapped to exactly 0, above which it is not
THRESHOLDS = {
    "l1": lambda c, s: c * s,
    "elastic_net": lambda c, s: c * s * OPTIONS["elastic_net"]["l1_ratio"],
    "l0": lambda c, s: np.sqrt(2 * c * s),
    # convex regime gamma > c: soft threshold at c s; else hard threshold at s sqrt(c gamma)
    "mcp": lambda c, s: (
        c * s if OPTIONS["mcp"]["gamma"] > c else s * np.sqrt(c * OPTIONS["mcp"]["gamma"])
    ),
    "scad": lambda c, s: c * s,  # convex regime: a > 1 + c for all drawn c
}


@pytest.mark.parametrize("name", list(THRESHOLDS))
@EXAMPLES
@given(x=arrays, s=strengths, c=st.floats(0.05, 2.0) | st.floats(2.5, 4.0))
def test_exact_zeros_below_threshold(name, x, s, c):
    if name == "scad":
        c = min(c, OPTIONS["scad"]["a"] - 1.1)
    y = _prox(name, x, s, c)
    threshold = THRESHOLDS[name](c, s)
    below, above = np.abs(x) < threshold * (1 - 1e-9), np.abs(x) > threshold * (1 + 1e-9)
    np.testing.assert_array_equal(y[below], 0.0)
    assert np.all(y[above] != 0)


@EXAMPLES
@given(x=arrays, s=strengths, c=scalings)
def test_group_lasso_exact_zero_groups(x, s, c):
    axis = OPTIONS["group_lasso"]["axis"]
    y = _prox("group_lasso", x, s, c)
    norms = np.broadcast_to(np.sqrt(np.sum(x**2, axis=axis, keepdims=True)), x.shape)
    np.testing.assert_array_equal(y[norms < c * s * (1 - 1e-9)], 0.0)
    kept = (norms > c * s * (1 + 1e-9)) & (np.abs(x) > 1e-300)  # no subnormal (flushed) output
    assert np.all(y[kept] != 0)


@EXAMPLES
@given(x=arrays, s=strengths, c=scalings)
def test_nuclear_thresholds_singular_values(x, s, c):
    y = _prox("nuclear", x, s, c)
    sigma_x = np.linalg.svd(x, compute_uv=False)
    sigma_y = np.linalg.svd(y, compute_uv=False)
    np.testing.assert_allclose(sigma_y, np.maximum(sigma_x - c * s, 0), atol=1e-10)
    # exact low rank: the rank drops to the number of singular values above the threshold
    rank = np.linalg.matrix_rank(y, tol=1e-9)
    np.testing.assert_array_equal(rank, np.sum(np.maximum(sigma_x - c * s, 0) > 1e-9, axis=-1))
