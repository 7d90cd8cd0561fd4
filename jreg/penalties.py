r"""Penalty values on pytrees.

Every function here has the signature ``penalties.X(params, strength, **options)`` and returns a
scalar: the sum over the leaves of ``params`` of the leaf's penalty.

Conventions (``w`` a leaf, ``s`` its strength):

=============== =================================================== ============================
name            value                                               matches
=============== =================================================== ============================
``l1``          :math:`s \sum |w|`                                  sklearn ``Lasso(alpha)``
``l2``          :math:`\tfrac{s}{2} \sum w^2`                       ``add_decayed_weights(s)``
``elastic_net`` :math:`s(\rho \sum|w| + \tfrac{1-\rho}{2}\sum w^2)` sklearn ``ElasticNet``
``group_lasso`` :math:`s \sum_g \|w_g\|_2` (``axis``: the groups)   grpreg, skglm ``L2_1``
``l0``          :math:`s \cdot \#\{w \ne 0\}`                       hard thresholding
``linf``        :math:`s \max |w|` per leaf                         L1-ball projection
``nuclear``     :math:`s \sum_i \sigma_i(w)` per matrix (last 2 axes) singular value thresholding
``mcp``         minimax concave penalty, ``gamma=3.0``              skglm ``MCPenalty``, ncvreg
``scad``        smoothly clipped absolute deviation, ``a=3.7``      skglm ``SCAD``, ncvreg
=============== =================================================== ============================

``strength`` is a non-negative scalar or array, or a pytree whose structure is a prefix of
``params``: one strength per leaf (``0`` exempts a leaf, such as a bias) or arrays broadcastable
to each leaf (per-coordinate weights, glmnet's ``penalty.factor``). For the penalties that act on
groups (``group_lasso``, ``linf``, ``nuclear``) a strength array broadcasts to the groups of a
leaf: the leaf's shape with the reduced axes removed. Where the structures differ (a flax
``nnx.State`` against a plain dict), a nested dict of strengths is matched by the names along each
leaf's path, e.g. ``{"linear1": {"kernel": 1e-3, "bias": 0.0}}``. ``strength`` may also be a
function of each leaf's path (a tuple of its keys, e.g. ``("linear1", "kernel")``) and the leaf,
``lambda path, leaf: 1e-3 if leaf.ndim == 2 else 0.0``.

Values are computed in at least float32 and returned in the dtype of the parameters. Gradients
are finite everywhere; at 0 the gradient of the L1-type terms is the subgradient 0
(``strength * sign(w)``, as PyTorch's and optax's L1 conventions).
"""

import math
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import optax
from jax.tree_util import GetAttrKey

from jreg._checks import check_a, check_gamma, check_l1_ratio, check_strength, is_function

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

# --------------------------------------------------------------------------------------------
# Shared machinery (also used by jreg.prox).


def _compute_dtype(leaf: jax.Array, name: str) -> jnp.dtype:
    """float32 for half-precision leaves, the leaf's own dtype otherwise."""
    try:
        if isinstance(leaf, str | bytes):  # result_type would read it as a dtype's name
            raise TypeError
        dtype = jnp.result_type(leaf)
    except TypeError:  # a string, None, an object
        raise TypeError(f"{name} must have floating-point leaves, got {leaf!r}") from None
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{name} must have floating-point leaves, got dtype {dtype}")
    return jnp.promote_types(dtype, jnp.float32)


def _path_names(path) -> tuple:
    """A key path's names (dict keys, attributes, indices), without the ``value`` attribute
    that wraps a flax ``Variable``'s array."""
    names = tuple(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))) for k in path)
    return names[:-1] if names[-1:] == ("value",) and isinstance(path[-1], GetAttrKey) else names


def _by_names(name: str, tree: Mapping, path: tuple):
    """The entry of the nested dict ``tree`` along the names of ``path``."""
    value = tree
    for key in path:
        if not isinstance(value, Mapping):
            break
        if key not in value:
            raise ValueError(f"{name} has no entry for params' leaf {'/'.join(map(str, path))}")
        value = value[key]
    check_strength(value, f"{name} of {'/'.join(map(str, path))}")
    return value


def _per_leaf(name: str, tree, params) -> list:
    """``tree`` (a prefix of ``params``, a nested dict matched by names, or a function of the
    path and the leaf) as a list with one entry per leaf."""
    if is_function(tree):
        paths = jax.tree_util.tree_flatten_with_path(params)[0]
        values = [(_path_names(p), tree(_path_names(p), leaf)) for p, leaf in paths]
        for path, value in values:
            check_strength(value, f"{name} of {'/'.join(map(str, path))}")
        return [value for _, value in values]
    try:
        return jax.tree.leaves(jax.tree.broadcast(tree, params))
    except (ValueError, TypeError) as error:
        if isinstance(tree, Mapping):
            paths = [_path_names(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
            for entry, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
                keys = _path_names(entry)
                if not any(path[: len(keys)] == keys for path in paths):
                    raise ValueError(f"{name} has an entry {'/'.join(map(str, keys))} that "
                                     f"names no leaf of params") from error  # fmt: skip
            return [_by_names(name, tree, path) for path in paths]
        raise ValueError(
            f"{name} must be a scalar, an array, a pytree whose structure is a prefix of params, "
            f"a nested dict or a function of (path, leaf); got {jax.tree.structure(tree)} for "
            f"params {jax.tree.structure(params)}"
        ) from error


def _broadcast_to_groups(name: str, value, shape: Sequence[int], axes, dtype) -> jax.Array:
    """Casts ``value`` to ``dtype`` and broadcasts it to the groups of a leaf of ``shape``.

    The groups' shape is ``shape`` without ``axes``; the result keeps ``axes`` as size 1 so that
    it broadcasts against the leaf.
    """
    value = jnp.asarray(value, dtype)
    groups = tuple(n for i, n in enumerate(shape) if i not in axes)
    try:
        value = jnp.broadcast_to(value, groups)
    except ValueError as error:
        raise ValueError(
            f"{name} of shape {value.shape} does not broadcast to shape {groups} (a leaf of "
            f"shape {tuple(shape)} reduced over axes {axes})"
        ) from error
    return jnp.expand_dims(value, axes)


def _normalize_axis(axis, ndim: int) -> tuple[int, ...]:
    """numpy's meaning of ``axis`` (None: every axis) as a tuple of non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else axis
    if not isinstance(axes, Sequence) or not all(isinstance(a, int) for a in axes):
        raise TypeError(f"axis must be None, an int or a tuple of ints, got {axis!r}")
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for a leaf with {ndim} dimensions")
    normalized = tuple(a % ndim for a in axes)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"axis {axis!r} repeats an axis")
    return normalized


def _group_shape(shape: Sequence[int], axes: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` with the reduced ``axes`` kept as size 1 (numpy's ``keepdims``)."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _leaf_arguments(params, strength, axes_of: Callable[[jax.Array], tuple[int, ...]], *,
                    what: str = "params", **trees):  # fmt: skip
    """Yields ``(leaf, axes, strength, *trees)`` per leaf, cast and broadcast to its groups.

    ``leaf`` (of the argument named ``what``) is cast to its compute dtype; ``strength`` and
    every tree in ``trees`` (e.g. the prox's ``scaling``) are broadcast to the leaf's group
    shape (``axes_of(leaf)`` reduced), and NaN where negative or not finite (a traced value
    that its check would reject: the results carry the NaN).
    """
    check_strength(strength)
    for name, tree in trees.items():
        check_strength(tree, name)
    leaves = jax.tree.leaves(params)
    per_leaf = [_per_leaf("strength", strength, params)]
    per_leaf += [_per_leaf(name, tree, params) for name, tree in trees.items()]
    names = ["strength", *trees]
    for leaf, *values in zip(leaves, *per_leaf, strict=True):
        dtype = _compute_dtype(leaf, what)
        leaf = jnp.asarray(leaf, dtype)
        axes = axes_of(leaf)
        broadcast = (_broadcast_to_groups(n, v, leaf.shape, axes, dtype)
                     for n, v in zip(names, values, strict=True))  # fmt: skip
        yield leaf, axes, *(jnp.where((v >= 0) & (v < jnp.inf), v, jnp.nan) for v in broadcast)


def _all_axes(leaf: jax.Array) -> tuple[int, ...]:
    return tuple(range(leaf.ndim))


def _no_axes(leaf: jax.Array) -> tuple[int, ...]:
    return ()


def _matrix_axes(leaf: jax.Array) -> tuple[int, ...]:
    if leaf.ndim < 2:
        raise ValueError(
            f"params: nuclear needs matrix leaves (at least 2 dimensions), got shape {leaf.shape}"
        )
    return (leaf.ndim - 2, leaf.ndim - 1)


def _sum_over_leaves(leaf_value: Callable, params, strength, axes_of=_no_axes) -> jax.Array:
    """Sums ``leaf_value(leaf, axes, strength)`` over the leaves of ``params``."""
    values = [  # the leaves' checks first: they name params
        jnp.sum(leaf_value(leaf, axes, s))
        for leaf, axes, s in _leaf_arguments(params, strength, axes_of)
    ]
    if not values:
        return jnp.zeros((), jnp.result_type(float))
    out_dtype = jnp.result_type(*jax.tree.leaves(params))
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total.astype(out_dtype)


def _magnitude(w: jax.Array) -> jax.Array:
    """``|w|`` whose derivative is ``sign(w)``, 0 at 0 (``jnp.abs`` differentiates to 1 there)."""
    return jnp.sign(w) * w


# --------------------------------------------------------------------------------------------
# Penalties.


def l1(params, strength) -> jax.Array:
    r"""L1 penalty (lasso).

    .. math:: P(w) = s \sum_i |w_i|

    Args:
      params: a pytree of floating-point arrays.
      strength: non-negative scalar, array or pytree prefix of ``params``.

    Returns:
      A scalar in the dtype of ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import penalties
      >>> params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(3.0)}
      >>> print(penalties.l1(params, {"w": 0.5, "b": 0.0}))
      1.5
    """
    return _sum_over_leaves(lambda w, _, s: s * _magnitude(w), params, strength, _no_axes)


def l2(params, strength) -> jax.Array:
    r"""Squared L2 penalty (ridge, weight decay).

    .. math:: P(w) = \frac{s}{2} \sum_i w_i^2

    Its gradient ``s * w`` is ``optax.add_decayed_weights(s)`` and PyTorch's ``weight_decay=s``.

    Args:
      params: a pytree of floating-point arrays.
      strength: non-negative scalar, array or pytree prefix of ``params``.

    Returns:
      A scalar in the dtype of ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import penalties
      >>> print(penalties.l2(jnp.array([1.0, -2.0]), 0.5))
      1.25
    """
    return _sum_over_leaves(lambda w, _, s: s / 2 * w**2, params, strength, _no_axes)


def elastic_net(params, strength, *, l1_ratio=0.5) -> jax.Array:
    r"""Elastic-net penalty, scikit-learn's and glmnet's parametrization.

    .. math:: P(w) = s \Big(\rho \sum_i |w_i| + \frac{1 - \rho}{2} \sum_i w_i^2\Big),
       \qquad \rho = \text{l1\_ratio} \in [0, 1]

    Args:
      params: a pytree of floating-point arrays.
      strength: non-negative scalar, array or pytree prefix of ``params`` (sklearn's ``alpha``).
      l1_ratio: the mixing :math:`\rho`; 1 is the lasso, 0 is ridge.

    Returns:
      A scalar in the dtype of ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import penalties
      >>> print(penalties.elastic_net(jnp.array([1.0, -2.0]), 1.0, l1_ratio=0.5))
      2.75
    """
    check_l1_ratio(l1_ratio)

    def leaf_value(w, _, s):
        rho = jnp.asarray(l1_ratio, w.dtype)
        return s * (rho * _magnitude(w) + (1 - rho) / 2 * w**2)

    return _sum_over_leaves(leaf_value, params, strength, _no_axes)


def group_lasso(params, strength, *, axis=None) -> jax.Array:
    r"""Group lasso: the sum of the Euclidean norms of groups.

    .. math:: P(w) = \sum_g s_g \|w_g\|_2

    With ``axis=None`` each leaf is one group. With ``axis=k`` (an int or a tuple, numpy's
    meaning) the norm is taken over axis ``k``, so every remaining index is a group: for a
    ``(p, m)`` weight matrix, ``axis=1`` makes each row (an input feature) a group. ``strength``
    broadcasts to the groups, i.e. to the leaf's shape with ``axis`` removed (as size 1).

    Args:
      params: a pytree of floating-point arrays.
      strength: non-negative scalar, array or pytree prefix of ``params``.
      axis: the axes each norm is taken over; ``None`` for the whole leaf.

    Returns:
      A scalar in the dtype of ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import penalties
      >>> w = jnp.array([[3.0, 4.0], [0.0, 1.0]])
      >>> print(penalties.group_lasso(w, 1.0, axis=1))
      6.0
    """
    return _sum_over_leaves(
        lambda w, axes, s: s * _safe_norm(w, axes), params, strength, _axes_of(axis)
    )


def l0(params, strength) -> jax.Array:
    r"""L0 "norm": the number of non-zero entries.

    .. math:: P(w) = s \cdot \#\{i : w_i \neq 0\}

    Its gradient is zero wherever it exists; use it through :func:`jreg.prox.l0`.

    Args:
      params: a pytree of floating-point arrays.
      strength: non-negative scalar, array or pytree prefix of ``params``.

    Returns:
      A scalar in the dtype of ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import penalties
      >>> print(penalties.l0(jnp.array([0.0, -2.0, 0.5]), 0.5))
      1.0
    """
    return _sum_over_leaves(
        lambda w, _, s: s * jnp.where(jnp.isnan(w), w, (w != 0).astype(w.dtype)), params, strength
    )


def linf(params, strength) -> jax.Array:
    r"""L-infinity norm of each leaf, summed over leaves.

    .. math:: P(w) = s \max_i |w_i|

    ``strength`` gives one value per leaf (a per-leaf pytree, not per-coordinate weights).

    Args:
      params: a pytree of floating-point arrays.
      strength: non-negative scalar, or pytree prefix of ``params`` with one scalar per leaf.

    Returns:
      A scalar in the dtype of ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import penalties
      >>> print(penalties.linf(jnp.array([1.0, -3.0, 2.0]), 0.5))
      1.5
    """
    return _sum_over_leaves(
        lambda w, axes, s: s * jnp.max(_magnitude(w), axis=axes, keepdims=True, initial=0),
        params,
        strength,
        _all_axes,
    )


def nuclear(params, strength) -> jax.Array:
    r"""Nuclear (trace) norm: the sum of singular values of each matrix.

    .. math:: P(W) = s \sum_i \sigma_i(W)

    Leaves must have at least two dimensions; the last two are the matrix and any leading axes
    are a batch of matrices (``strength`` broadcasts to that batch).

    Args:
      params: a pytree of floating-point arrays, each at least 2-D.
      strength: non-negative scalar, array or pytree prefix of ``params``.

    Returns:
      A scalar in the dtype of ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import penalties
      >>> print(penalties.nuclear(jnp.diag(jnp.array([3.0, -1.0])), 2.0))
      8.0
    """

    def leaf_value(w, _, s):  # an infinite entry (and no NaN): an infinite norm, not the SVD's NaN
        infinite = jnp.any(jnp.isinf(w), axis=(-2, -1)) & ~jnp.any(jnp.isnan(w), axis=(-2, -1))
        finite = jnp.where(jnp.isinf(w), 0, w)
        norm = jnp.sum(jnp.linalg.svd(finite, compute_uv=False), axis=-1)
        return s[..., 0, 0] * jnp.where(infinite, jnp.inf, norm)

    return _sum_over_leaves(leaf_value, params, strength, _matrix_axes)


def mcp(params, strength, *, gamma=3.0) -> jax.Array:
    r"""Minimax concave penalty (Zhang, 2010).

    .. math::
       P(w) = \sum_i \begin{cases}
         s|w_i| - \frac{w_i^2}{2\gamma} & |w_i| \le \gamma s \\
         \frac{\gamma s^2}{2} & |w_i| > \gamma s
       \end{cases}

    It equals the lasso near zero and is constant beyond :math:`\gamma s`, so large
    coefficients are not shrunk.

    Args:
      params: a pytree of floating-point arrays.
      strength: :math:`s`, non-negative scalar, array or pytree prefix of ``params``.
      gamma: concavity :math:`\gamma > 1`.

    Returns:
      A scalar in the dtype of ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import penalties
      >>> print(penalties.mcp(jnp.array([1.0, 10.0]), 1.0, gamma=4.0))
      2.875
    """
    check_gamma(gamma)

    return _sum_over_leaves(
        lambda w, _, s: _mcp_value(_magnitude(w), s, jnp.asarray(gamma, w.dtype)), params, strength
    )


def scad(params, strength, *, a=3.7) -> jax.Array:
    r"""Smoothly clipped absolute deviation (Fan and Li, 2001).

    .. math::
       P(w) = \sum_i \begin{cases}
         s|w_i| & |w_i| \le s \\
         \frac{2 a s |w_i| - w_i^2 - s^2}{2(a - 1)} & s < |w_i| \le a s \\
         \frac{(a + 1) s^2}{2} & |w_i| > a s
       \end{cases}

    Args:
      params: a pytree of floating-point arrays.
      strength: :math:`s`, non-negative scalar, array or pytree prefix of ``params``.
      a: shape parameter :math:`a > 2`.

    Returns:
      A scalar in the dtype of ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import penalties
      >>> print(penalties.scad(jnp.array([0.5, 2.0, 10.0]), 1.0, a=3.0))
      4.25
    """
    check_a(a)

    return _sum_over_leaves(
        lambda w, _, s: _scad_value(_magnitude(w), s, jnp.asarray(a, w.dtype)), params, strength
    )


# --------------------------------------------------------------------------------------------
# Helpers shared with jreg.prox.


def _axes_of(axis) -> Callable[[jax.Array], tuple[int, ...]]:
    """The reduced axes of ``group_lasso`` for a leaf, from its ``axis`` option."""
    return lambda leaf: _normalize_axis(axis, leaf.ndim)


def _safe_norm(w: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    """Euclidean norm over ``axes`` (kept as size 1) with gradient 0 at 0."""
    kept = w.ndim - len(axes)
    flat = jnp.moveaxis(w, axes, tuple(range(kept, w.ndim)))
    flat = flat.reshape(flat.shape[:kept] + (math.prod(flat.shape[kept:]),))  # (-1: not if empty)
    # over the group's largest |entry| (held constant: the norm is homogeneous), so that its
    # squares neither overflow nor underflow (entries of 1e200 or 1e-200)
    top = jnp.max(jnp.abs(flat), axis=-1, keepdims=True, initial=0)
    top = jax.lax.stop_gradient(jnp.where((top > 0) & (top < jnp.inf), top, 1))
    norm = top[..., 0] * optax.safe_norm(flat / top, 0.0, axis=-1)
    return norm.reshape(_group_shape(w.shape, axes))


def _mcp_value(absw: jax.Array, s: jax.Array, gamma: jax.Array) -> jax.Array:
    """Elementwise MCP of ``|w|``."""
    # a NaN |w| fails every comparison: it falls in a branch that carries it
    return jnp.where(absw > gamma * s, gamma * s**2 / 2, s * absw - absw**2 / (2 * gamma))


def _scad_value(absw: jax.Array, s: jax.Array, a: jax.Array) -> jax.Array:
    """Elementwise SCAD of ``|w|``."""
    middle = (2 * a * s * absw - absw**2 - s**2) / (2 * (a - 1))
    return jnp.where(absw > a * s, (a + 1) * s**2 / 2, jnp.where(absw > s, middle, s * absw))
