r"""Proximal operators of the penalties in :mod:`jreg.penalties`.

Every operator has one signature, ``prox.X(x, strength, *, scaling=1.0, **options)``, and
returns the pytree

.. math:: \operatorname{prox}(x) = \operatorname*{argmin}_y \; \tfrac12 \|y - x\|_2^2
   + \text{scaling} \cdot P(y; \text{strength}),

with :math:`P` = ``penalties.X`` and the same conventions for ``strength`` (scalar, per-leaf
pytree or per-coordinate arrays). Inside an optimizer ``scaling`` is the learning rate. It may
also be a pytree of per-coordinate arrays for the elementwise penalties (``l1``, ``l2``,
``elastic_net``, ``l0``, ``mcp``, ``scad``): the prox is then taken in the diagonal metric
:math:`\sum_i (y_i - x_i)^2 / (2 c_i)`, as proximal Adam needs.

For the non-convex ``l0``, ``mcp`` and ``scad`` the operator returns the global minimizer of the
separable 1-D problem; the docstrings give the condition under which it is unique.

Outputs keep the structure and dtype of ``x``; the computation runs in at least float32. The
maps and their Jacobians are finite everywhere (``nuclear`` has a custom JVP that stays finite at
repeated and zero singular values).
"""

import jax
import jax.numpy as jnp
import optax

from jreg._checks import check_a, check_gamma, check_l1_ratio, safe_divide
from jreg.penalties import (
    _all_axes,
    _axes_of,
    _leaf_arguments,
    _matrix_axes,
    _no_axes,
    _safe_norm,
    _scad_value,
)

__all__ = [
    "elastic_net",
    "group_lasso",
    "l0",
    "l1",
    "l2",
    "linf",
    "mcp",
    "nuclear",
    "scad",
]


def _map_leaves(leaf_prox, x, strength, scaling, axes_of=_no_axes):
    """Applies ``leaf_prox(leaf, axes, strength, scaling)`` to each leaf of ``x``.

    Where ``scaling * strength`` is 0 the result is the leaf itself, so that the prox is the
    identity there with the identity as its derivative (an exempt leaf, such as a bias).
    """

    def one(leaf, args):
        compute_leaf, _, s, c = args  # s, c: NaN where invalid, then so is the result
        out = jnp.where(c * s > 0, leaf_prox(*args), jnp.where(c * s == 0, compute_leaf, jnp.nan))
        return out.astype(jnp.result_type(leaf))

    leaves, treedef = jax.tree.flatten(x)
    arguments = _leaf_arguments(x, strength, axes_of, what="x", scaling=scaling)
    return jax.tree.unflatten(
        treedef, [one(leaf, args) for leaf, args in zip(leaves, arguments, strict=True)]
    )


def _soft_threshold(x: jax.Array, threshold: jax.Array) -> jax.Array:
    """``sign(x) max(|x| - threshold, 0)``, written with fewer operations (and exact zeros)."""
    return x - jnp.clip(x, -threshold, threshold)


def l1(x, strength, *, scaling=1.0):
    r"""Soft thresholding, the prox of :func:`jreg.penalties.l1`.

    .. math:: \operatorname{prox}(x)_i = \operatorname{sign}(x_i) \max(|x_i| - c s, 0),
       \qquad c = \text{scaling}

    Args:
      x: a pytree of floating-point arrays.
      strength: non-negative scalar, array or pytree prefix of ``x``.
      scaling: non-negative step size :math:`c` (scalar or per-coordinate pytree).

    Returns:
      A pytree like ``x``; entries with :math:`|x_i| \le c s` are exactly zero.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import prox
      >>> print(prox.l1(jnp.array([-2.0, 0.5, 3.0]), 1.0))
      [-1.  0.  2.]
    """
    return _map_leaves(lambda x, _, s, c: _soft_threshold(x, c * s), x, strength, scaling)


def l2(x, strength, *, scaling=1.0):
    r"""Shrinkage, the prox of :func:`jreg.penalties.l2`.

    .. math:: \operatorname{prox}(x) = \frac{x}{1 + c s}

    Args:
      x: a pytree of floating-point arrays.
      strength: non-negative scalar, array or pytree prefix of ``x``.
      scaling: non-negative step size :math:`c` (scalar or per-coordinate pytree).

    Returns:
      A pytree like ``x``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import prox
      >>> print(prox.l2(jnp.array([-2.0, 4.0]), 1.0))
      [-1.  2.]
    """
    return _map_leaves(lambda x, _, s, c: x / (1 + c * s), x, strength, scaling)


def elastic_net(x, strength, *, scaling=1.0, l1_ratio=0.5):
    r"""Prox of :func:`jreg.penalties.elastic_net`: soft thresholding, then shrinkage.

    .. math:: \operatorname{prox}(x)_i = \frac{\operatorname{sign}(x_i)
       \max(|x_i| - c s \rho, 0)}{1 + c s (1 - \rho)}, \qquad \rho = \text{l1\_ratio}

    Args:
      x: a pytree of floating-point arrays.
      strength: non-negative scalar, array or pytree prefix of ``x``.
      scaling: non-negative step size :math:`c` (scalar or per-coordinate pytree).
      l1_ratio: the mixing :math:`\rho \in [0, 1]`.

    Returns:
      A pytree like ``x``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import prox
      >>> print(prox.elastic_net(jnp.array([-3.0, 0.5, 5.0]), 2.0, l1_ratio=0.5))
      [-1.  0.  2.]
    """
    check_l1_ratio(l1_ratio)

    def leaf_prox(x, _, s, c):
        rho = jnp.asarray(l1_ratio, x.dtype)
        return _soft_threshold(x, c * s * rho) / (1 + c * s * (1 - rho))

    return _map_leaves(leaf_prox, x, strength, scaling)


def group_lasso(x, strength, *, scaling=1.0, axis=None):
    r"""Group soft thresholding, the prox of :func:`jreg.penalties.group_lasso`.

    .. math:: \operatorname{prox}(x)_g = x_g \max\Big(1 - \frac{c s_g}{\|x_g\|_2}, 0\Big)

    Args:
      x: a pytree of floating-point arrays.
      strength: non-negative scalar, array broadcastable to the groups, or pytree prefix of ``x``.
      scaling: non-negative step size :math:`c` (broadcastable to the groups, like strength).
      axis: the axes each group norm is taken over; ``None`` makes each leaf one group.

    Returns:
      A pytree like ``x``; groups with :math:`\|x_g\| \le c s_g` are exactly zero.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import prox
      >>> print(prox.group_lasso(jnp.array([[3.0, 4.0], [0.3, 0.4]]), 1.0, axis=1))
      [[2.4 3.2]
       [0.  0. ]]
    """

    def leaf_prox(x, axes, s, c):
        norm, threshold = _safe_norm(x, axes), c * s
        # threshold 0 is the identity, also where the norm is 0 (or underflows to 0)
        keep = (threshold <= 0).astype(x.dtype)
        return x * safe_divide(norm - threshold, norm, norm > threshold, keep)

    return _map_leaves(leaf_prox, x, strength, scaling, _axes_of(axis))


def l0(x, strength, *, scaling=1.0):
    r"""Hard thresholding, the prox of :func:`jreg.penalties.l0`.

    .. math:: \operatorname{prox}(x)_i = \begin{cases} x_i & |x_i| > \sqrt{2 c s} \\
       0 & \text{otherwise} \end{cases}

    The minimizer is unique except at :math:`|x_i| = \sqrt{2 c s}`, where both ``0`` and
    :math:`x_i` are minimizers and ``0`` is returned.

    Args:
      x: a pytree of floating-point arrays.
      strength: non-negative scalar, array or pytree prefix of ``x``.
      scaling: non-negative step size :math:`c` (scalar or per-coordinate pytree).

    Returns:
      A pytree like ``x``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import prox
      >>> print(prox.l0(jnp.array([-2.0, 0.5, 3.0]), 0.5))
      [-2.  0.  3.]
    """
    # |x| vs sqrt(.) rather than x**2 vs (.): squares of tiny |x| underflow to 0 (prox(x, 0) ==
    # x); a NaN fails the comparison and is kept
    return _map_leaves(
        lambda x, _, s, c: jnp.where(jnp.abs(x) <= jnp.sqrt(2 * c * s), 0, x), x, strength, scaling
    )


def linf(x, strength, *, scaling=1.0):
    r"""Prox of :func:`jreg.penalties.linf`, by the Moreau decomposition.

    .. math:: \operatorname{prox}(x) = x - \Pi_{\{\|y\|_1 \le c s\}}(x)

    where :math:`\Pi` is the Euclidean projection onto the L1 ball
    (``optax.projections.projection_l1_ball``), applied per leaf.

    Args:
      x: a pytree of floating-point arrays.
      strength: non-negative scalar, or pytree prefix of ``x`` with one scalar per leaf.
      scaling: non-negative scalar step size :math:`c`.

    Returns:
      A pytree like ``x``: the largest magnitudes are clipped to a common level, and the leaf is
      exactly zero when :math:`\|x\|_1 \le c s`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import prox
      >>> print(jnp.round(prox.linf(jnp.array([1.0, -3.0, 2.0]), 1.5), 4))
      [ 1.   -1.75  1.75]
    """

    def leaf_prox(x, axes, s, c):
        if x.size == 0:  # nothing to project (optax's projection needs an entry)
            return x
        radius = jnp.reshape(c * s, ())
        positive = radius > 0
        # optax's simplex projection divides by an integer count, which promotes float32 to
        # float64 when x64 is enabled and breaks its lax.cond: run it in the default float dtype.
        wide = jnp.promote_types(x.dtype, jax.dtypes.canonicalize_dtype(jnp.float64))
        projected = optax.projections.projection_l1_ball(
            x.astype(wide), jnp.where(positive, radius, 1).astype(wide)
        ).astype(x.dtype)
        return jnp.where(positive, x - projected, x)

    return _map_leaves(leaf_prox, x, strength, scaling, _all_axes)


def nuclear(x, strength, *, scaling=1.0):
    r"""Singular value thresholding, the prox of :func:`jreg.penalties.nuclear`.

    .. math:: \operatorname{prox}(X) = U \operatorname{diag}(\max(\sigma - c s, 0)) V^\top,
       \qquad X = U \operatorname{diag}(\sigma) V^\top

    Acts on the last two axes of each leaf (leading axes are a batch). Its JVP is the closed form
    of the derivative of a spectral function, finite at repeated and zero singular values, so
    ``jax.grad`` through it never returns NaN.

    Args:
      x: a pytree of floating-point arrays, each at least 2-D.
      strength: non-negative scalar, array broadcastable to the batch, or pytree prefix of ``x``.
      scaling: non-negative step size :math:`c` (broadcastable to the batch, like strength).

    Returns:
      A pytree like ``x`` whose matrices have rank at most the number of
      :math:`\sigma_i > c s`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import prox
      >>> print(prox.nuclear(jnp.diag(jnp.array([3.0, -0.5])), 1.0))
      [[2. 0.]
       [0. 0.]]
    """
    return _map_leaves(
        lambda x, _, s, c: _singular_value_thresholding(x, (c * s)[..., 0]),
        x,
        strength,
        scaling,
        _matrix_axes,
    )


@jax.custom_jvp
def _singular_value_thresholding(x: jax.Array, threshold: jax.Array) -> jax.Array:
    """``U diag(max(sigma - threshold, 0)) V^T``; ``threshold`` has shape ``(..., 1)``."""
    u, sigma, vh = jnp.linalg.svd(x, full_matrices=False)
    thresholded = (u * jnp.maximum(sigma - threshold, 0)[..., None, :]) @ vh
    return jnp.where(threshold[..., None] > 0, thresholded, x)


@_singular_value_thresholding.defjvp
def _singular_value_thresholding_jvp(primals, tangents):
    r"""Derivative of the spectral function :math:`F(X) = U f(\Sigma) V^\top`.

    With :math:`dP = U^\top dX V`, :math:`F' = U (D_- \circ \mathrm{sym}(dP) + D_+ \circ
    \mathrm{skew}(dP)) V^\top` plus, for non-square :math:`X`, the terms of the complements of
    :math:`U` and :math:`V` scaled by :math:`f(\sigma)/\sigma`, where
    :math:`D_\mp = (f(\sigma_i) \mp f(\sigma_j)) / (\sigma_i \mp \sigma_j)`. Each quotient takes
    its limit :math:`f'(\sigma_i)` where its denominator vanishes.
    """
    x, threshold = primals
    dx, dthreshold = tangents
    u, sigma, vh = jnp.linalg.svd(x, full_matrices=False)
    ut, v = jnp.swapaxes(u, -1, -2), jnp.swapaxes(vh, -1, -2)
    active = sigma > threshold
    f = jnp.maximum(sigma - threshold, 0)
    f_prime = (active | (threshold <= 0)).astype(x.dtype)

    def quotient(numerator, denominator):
        diagonal = jnp.broadcast_to(f_prime[..., :, None], numerator.shape)
        return safe_divide(numerator, denominator, denominator != 0, diagonal)

    si, sj = sigma[..., :, None], sigma[..., None, :]
    fi, fj = f[..., :, None], f[..., None, :]
    # f is linear between two singular values of equal slope, so their divided difference is that
    # slope; computing it would cancel catastrophically at (numerically) repeated values.
    slope_i, slope_j = jnp.broadcast_arrays(f_prime[..., :, None], f_prime[..., None, :])
    same_slope = slope_i == slope_j
    divided_difference = jnp.where(same_slope, slope_i, quotient(fi - fj, si - sj))
    dp = ut @ dx @ v
    dp_t = jnp.swapaxes(dp, -1, -2)
    inner = divided_difference * (dp + dp_t) / 2 + quotient(fi + fj, si + sj) * (dp - dp_t) / 2
    ratio = safe_divide(f, sigma, sigma > 0, f_prime)
    dy = (
        u @ inner @ vh
        + ((dx @ v - u @ dp) * ratio[..., None, :]) @ vh
        + u @ (ratio[..., :, None] * (ut @ dx - dp @ vh))
        - (u * (active * dthreshold)[..., None, :]) @ vh
    )
    thresholding = threshold[..., None] > 0
    return jnp.where(thresholding, (u * f[..., None, :]) @ vh, x), jnp.where(thresholding, dy, dx)


def mcp(x, strength, *, scaling=1.0, gamma=3.0):
    r"""Firm thresholding, the prox of :func:`jreg.penalties.mcp`.

    With :math:`c` = scaling, :math:`s` = strength and :math:`\gamma > c` (then the 1-D problem
    is strictly convex and the minimizer unique):

    .. math:: \operatorname{prox}(x)_i = \begin{cases} 0 & |x_i| \le c s \\
       \operatorname{sign}(x_i) \frac{|x_i| - c s}{1 - c / \gamma} & c s < |x_i| \le \gamma s \\
       x_i & |x_i| > \gamma s \end{cases}

    For :math:`\gamma \le c` the global minimizer is hard thresholding at
    :math:`s \sqrt{c \gamma}` (unique except at that threshold, where ``0`` is returned).

    Args:
      x: a pytree of floating-point arrays.
      strength: non-negative scalar, array or pytree prefix of ``x``.
      scaling: non-negative step size :math:`c` (scalar or per-coordinate pytree).
      gamma: concavity :math:`\gamma > 1`.

    Returns:
      A pytree like ``x``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import prox
      >>> print(jnp.round(prox.mcp(jnp.array([0.5, 2.0, 4.0]), 1.0, gamma=3.0), 4))
      [0.  1.5 4. ]
    """
    check_gamma(gamma)

    def leaf_prox(x, _, s, c):
        g = jnp.asarray(gamma, x.dtype)
        absx = jnp.abs(x)
        convex = g > c
        firm = safe_divide(_soft_threshold(x, c * s), 1 - c / g, convex, 0)
        hard = jnp.where(absx > s * jnp.sqrt(c * g), x, 0)
        return jnp.where(convex, jnp.where(absx <= g * s, firm, x), hard)

    return _map_leaves(leaf_prox, x, strength, scaling)


def scad(x, strength, *, scaling=1.0, a=3.7):
    r"""The prox of :func:`jreg.penalties.scad`: SCAD's three-piece thresholding rule.

    With :math:`c` = scaling, :math:`s` = strength and :math:`a > 1 + c` (then the 1-D problem
    is strictly convex and the minimizer unique):

    .. math:: \operatorname{prox}(x)_i = \begin{cases}
       \operatorname{sign}(x_i) \max(|x_i| - c s, 0) & |x_i| \le (1 + c) s \\
       \frac{(a - 1) x_i - \operatorname{sign}(x_i) c a s}{a - 1 - c}
         & (1 + c) s < |x_i| \le a s \\
       x_i & |x_i| > a s \end{cases}

    For :math:`a \le 1 + c` the middle piece is concave and the global minimizer is the better of
    the minimizers over :math:`|y| \le s` and :math:`|y| \ge a s` (unique except where the two
    tie, where the smaller is returned).

    Args:
      x: a pytree of floating-point arrays.
      strength: non-negative scalar, array or pytree prefix of ``x``.
      scaling: non-negative step size :math:`c` (scalar or per-coordinate pytree).
      a: shape parameter :math:`a > 2`.

    Returns:
      A pytree like ``x``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import prox
      >>> print(prox.scad(jnp.array([0.5, 1.5, 2.5, 5.0]), 1.0, a=3.0))
      [0.  0.5 2.  5. ]
    """
    check_a(a)

    def leaf_prox(x, _, s, c):
        a_ = jnp.asarray(a, x.dtype)
        absx, sign = jnp.abs(x), jnp.sign(x)
        convex = a_ > 1 + c
        middle = safe_divide((a_ - 1) * absx - c * a_ * s, a_ - 1 - c, convex, 0)
        three_piece = jnp.where(
            absx <= (1 + c) * s,
            jnp.maximum(absx - c * s, 0),
            jnp.where(absx <= a_ * s, middle, absx),
        )
        low, high = jnp.clip(absx - c * s, 0, s), jnp.maximum(absx, a_ * s)

        def objective(y):
            return (y - absx) ** 2 / 2 + c * _scad_value(y, s, a_)

        best = jnp.where(objective(low) <= objective(high), low, high)
        return sign * jnp.where(convex, three_piece, best)

    return _map_leaves(leaf_prox, x, strength, scaling)
