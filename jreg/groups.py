r"""Groups that span leaves: structured sparsity of whole neurons and channels, and pruning.

:func:`jreg.penalties.group_lasso`'s groups live inside one leaf. A neuron of an MLP is spread
over three: its column of the incoming kernel, its entry of the bias and its row of the outgoing
kernel; a convolution channel over a kernel's output channel, its bias and the next kernel's
input channel. :func:`units` declares such groups as a list of ``(path, axis)`` slices whose
sizes along ``axis`` agree, each index ``j`` along them one group:

.. math:: w_j = \big(W^{(1)}_{[\dots, j, \dots]}, \; \dots, \; W^{(m)}_{[\dots, j, \dots]}\big)
   \qquad P(w) = \sum_j s_j \|w_j\|_2

with the norm taken jointly over all the slices of group ``j``. :func:`group_lasso` is that
penalty, :func:`prox_group_lasso` its proximal operator (block soft thresholding of the joint
vector), and both plug into the transforms as they are::

    neurons = jreg.groups.units(params, [("hidden/kernel", 1), ("hidden/bias", 0),
                                         ("out/kernel", 0)])
    jreg.proximal(jreg.groups.prox_group_lasso, strength, lr, prox_kwargs={"groups": neurons})
    jreg.add_penalty_gradient(jreg.groups.group_lasso, strength,
                              penalty_kwargs={"groups": neurons})

Leaves outside the groups are left unchanged by the prox and add nothing to the penalty. Groups
of several layers whose leaves are disjoint (say each hidden layer's incoming columns and biases)
take one transform each, chained: the proxes of penalties on disjoint leaves compose into the
prox of their sum.

:func:`prune` then removes the groups that are exactly zero and returns the smaller model's
parameters, which give the same outputs: a zero neuron's output is ``activation(0)``, which its
outgoing row, zero too, discards (or which is 0, see :func:`prune`'s ``dependents``).

Paths: a leaf's path is its ``jax.tree_util`` key path written with
``jax.tree_util.keystr(path, simple=True, separator="/")``: ``"hidden/kernel"`` in
``{"hidden": {"kernel": ...}}``, ``"layers/0/kernel"`` in a list. The trailing ``/value`` of a
flax ``nnx.Variable`` may be left out, so the same paths name the leaves of plain dicts and of
``nnx.state(model, nnx.Param)``.

The joint vectors are gathered into a matrix of one row per group and handed to
:func:`jreg.penalties.group_lasso` and :func:`jreg.prox.group_lasso` (``axis=1``), so values,
dtypes, overflow-safe norms, NaN-free gradients and the checks on ``strength`` and ``scaling``
are theirs.
"""

import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jreg import penalties, prox
from jreg._checks import is_traced

__all__ = ["Groups", "group_lasso", "prox_group_lasso", "prune", "units"]


class Groups(NamedTuple):
    """Groups spanning leaves, made by :func:`units`: group ``j`` is index ``j`` along ``axis``
    of every ``(path, axis)`` in ``slices``."""

    slices: tuple[tuple[str, int], ...]  # (leaf path, non-negative axis) pairs
    size: int  # the number of groups, every slice's length along its axis


def units(params, slices: Sequence[tuple[str, int]]) -> Groups:
    """Declares groups across leaves: index ``j`` along each slice's axis is group ``j``.

    Args:
      params: the pytree the groups belong to (a nested dict, an ``nnx.State``...).
      slices: ``(path, axis)`` pairs; ``path`` names a leaf as the module docstring says and
        ``axis`` (negative counts from the end) is the axis indexed by the group. The leaves'
        sizes along their axes must agree.

    Returns:
      A :class:`Groups`, the ``groups`` argument of the functions of this module.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import groups
      >>> params = {"hidden": {"kernel": jnp.ones((5, 3)), "bias": jnp.ones(3)},
      ...           "out": {"kernel": jnp.ones((3, 2))}}
      >>> groups.units(params, [("hidden/kernel", 1), ("hidden/bias", 0), ("out/kernel", 0)])
      Groups(slices=(('hidden/kernel', 1), ('hidden/bias', 0), ('out/kernel', 0)), size=3)
    """
    return _units(params, slices, "slices")


def group_lasso(params, strength, *, groups: Groups) -> jax.Array:
    r"""Group lasso over groups spanning leaves.

    .. math:: P(w) = \sum_j s_j \|w_j\|_2, \qquad
       \|w_j\|_2^2 = \sum_{(p, a) \in \text{slices}} \|W^{(p)}_{[a = j]}\|_2^2

    Args:
      params: a pytree of floating-point arrays holding the leaves of ``groups``.
      strength: non-negative scalar, or an array of one strength per group (``(groups.size,)``).
      groups: the groups, from :func:`units`.

    Returns:
      A scalar in the dtype of the grouped leaves; other leaves add nothing.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import groups
      >>> params = {"a": jnp.array([[3.0, 0.0]]), "b": jnp.array([4.0, 0.0]), "c": jnp.ones(9)}
      >>> pairs = groups.units(params, [("a", 1), ("b", 0)])
      >>> print(groups.group_lasso(params, 2.0, groups=pairs))
      10.0
    """
    return penalties.group_lasso(_gather(params, groups, "params")[0], strength, axis=1)


def prox_group_lasso(x, strength, *, scaling=1.0, groups: Groups):
    r"""Block soft thresholding of the joint groups, the prox of :func:`group_lasso`.

    .. math:: \operatorname{prox}(x)_j = x_j \max\Big(1 - \frac{c s_j}{\|x_j\|_2}, 0\Big),

    the minimizer of :math:`\tfrac12 \|y - x\|_2^2 + c P(y)`, with :math:`x_j` the joint vector
    of group ``j`` over all its slices; other leaves are returned as they are.

    Args:
      x: a pytree of floating-point arrays holding the leaves of ``groups``.
      strength: non-negative scalar, or an array of one strength per group.
      scaling: non-negative step size :math:`c`, a scalar or one per group (not a pytree of
        per-coordinate scalings: use the prox with :func:`jreg.proximal`).
      groups: the groups, from :func:`units`.

    Returns:
      A pytree like ``x``; every slice of a group with :math:`\|x_j\| \le c s_j` is exactly zero.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import groups
      >>> x = {"a": jnp.array([[3.0, 0.3]]), "b": jnp.array([4.0, 0.4])}
      >>> pairs = groups.units(x, [("a", 1), ("b", 0)])
      >>> y = groups.prox_group_lasso(x, 1.0, groups=pairs)
      >>> print(y["a"], y["b"])
      [[2.4 0. ]] [3.2 0. ]
    """
    if not jax.tree_util.treedef_is_leaf(jax.tree.structure(scaling)):
        raise TypeError(
            "scaling must be a scalar or an array of one per group, got a pytree: the "
            "per-coordinate scalings of proximal_adam and proximal_adagrad are not supported"
        )
    matrix, scatter = _gather(x, groups, "x")
    return scatter(prox.group_lasso(matrix, strength, scaling=scaling, axis=1))


def prune(params, groups: Groups, *, dependents: Sequence[tuple[str, int]] = ()):
    """Removes the groups that are exactly zero: the parameters of the smaller model.

    A group is removed when every entry of all its slices is 0 (a NaN is not 0), from its slices
    and from the ``dependents``: slices indexed by the same units that the penalty leaves out,
    such as the next kernel's rows when a neuron's group is its incoming column and bias (one
    such group per hidden layer keeps the layers' groups disjoint). A removed neuron's output is
    then ``activation(0)``, so the outputs are unchanged where ``activation(0) == 0`` (relu,
    tanh, gelu...). Other leaves are returned as they are.

    Args:
      params: a pytree of concrete floating-point arrays (not traced: the result's shapes depend
        on its values).
      groups: the groups, from :func:`units`.
      dependents: ``(path, axis)`` pairs as in :func:`units`, of ``groups.size`` entries along
        ``axis``, pruned with the groups but not deciding which are zero.

    Returns:
      ``(pruned, kept)``: ``params`` with only the kept groups in the slices' leaves, and the
      kept groups' indices, an increasing int array.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import groups
      >>> params = {"a": jnp.array([[1.0, 0.0, 2.0]]), "b": jnp.array([1.0, 0.0, 0.0])}
      >>> pruned, kept = groups.prune(params, groups.units(params, [("a", 1), ("b", 0)]))
      >>> print(pruned["a"], pruned["b"], kept)
      [[1. 2.]] [1. 0.] [0 2]
    """
    if is_traced(params):
        raise TypeError("params must be concrete to prune: the pruned shapes depend on its values")
    kept = np.flatnonzero(np.any(np.asarray(_gather(params, groups, "params")[0]) != 0, axis=1))
    removed = groups
    if dependents:
        removed = _units(params, [*groups.slices, *dependents], "dependents")
    pruned = {key: jnp.take(leaf, kept, axis=axis)
              for key, leaf, axis in _grouped(params, removed, "params")}  # fmt: skip
    return _replace(params, pruned), kept


# --------------------------------------------------------------------------------------------
# Paths, gathering and scattering.


def _units(params, slices: Sequence[tuple[str, int]], name: str) -> Groups:
    """:func:`units`, its errors naming the argument ``name``."""
    if isinstance(slices, str) or not isinstance(slices, Sequence) or not slices:
        raise TypeError(f"{name} must be a non-empty list of (path, axis) pairs, got {slices!r}")
    for entry in slices:
        if (not isinstance(entry, Sequence) or len(entry) != 2 or not isinstance(entry[0], str)
                or not isinstance(entry[1], int) or isinstance(entry[1], bool)):  # fmt: skip
            raise TypeError(f"{name} must hold (path: str, axis: int) pairs, got {entry!r}")
    leaves = _leaves_by_path(params)
    shapes = [jnp.shape(leaves[_find(path, leaves, name)]) for path, _ in slices]
    normalized = []
    for (path, axis), shape in zip(slices, shapes, strict=True):
        if not -len(shape) <= axis < len(shape):
            raise ValueError(f"{name}: axis {axis} is out of range for {path!r} of shape {shape}")
        normalized.append((path, axis % len(shape)))
    groups = Groups(tuple(normalized), shapes[0][normalized[0][1]])
    keys = [key for key, _, _ in _grouped(params, groups, name)]  # sizes agree
    if len(set(keys)) != len(keys):
        raise ValueError(f"{name} must name each leaf once, got {list(slices)!r}")
    return groups


def _leaves_by_path(tree) -> dict[str, jax.Array]:
    """The leaves of ``tree`` keyed by their ``/``-separated paths."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {_path_string(path): leaf for path, leaf in flat}


def _path_string(path) -> str:
    return jax.tree_util.keystr(path, simple=True, separator="/")


def _find(path: str, leaves: dict[str, jax.Array], name: str) -> str:
    """The key of ``leaves`` that ``path`` names (itself, or with flax's ``/value`` added)."""
    for candidate in (path, f"{path}/value"):
        if candidate in leaves:
            return candidate
    raise ValueError(f"{name}: no leaf at path {path!r}; the paths are {sorted(leaves)}")


def _grouped(tree, groups: Groups, name: str) -> list[tuple[str, jax.Array, int]]:
    """``(key, leaf, axis)`` for each slice of ``groups`` in ``tree``, checked."""
    if not isinstance(groups, Groups):
        raise TypeError(f"groups must be made by jreg.groups.units, got {groups!r}")
    leaves = _leaves_by_path(tree)
    grouped = []
    for path, axis in groups.slices:
        key = _find(path, leaves, name)
        shape = jnp.shape(leaves[key])
        if axis >= len(shape) or shape[axis] != groups.size:
            raise ValueError(
                f"{name}: the leaf {path!r} of shape {shape} must have {groups.size} entries "
                f"along axis {axis}, as the groups' other slices"
            )
        grouped.append((key, leaves[key], axis))
    return grouped


def _replace(tree, new_leaves: dict[str, jax.Array]):
    """``tree`` with the leaves at the keys of ``new_leaves`` replaced."""
    return jax.tree_util.tree_map_with_path(
        lambda path, leaf: new_leaves.get(_path_string(path), leaf), tree
    )


def _gather(tree, groups: Groups, name: str):
    """The joint groups as a ``(groups.size, k)`` matrix, and the map that writes such a matrix
    back into the leaves of ``tree`` (in their dtypes)."""
    grouped = _grouped(tree, groups, name)
    blocks = [jnp.moveaxis(jnp.asarray(leaf), axis, 0) for _, leaf, axis in grouped]
    widths = [math.prod(block.shape[1:]) for block in blocks]
    matrix = jnp.concatenate(
        [block.reshape(groups.size, width) for block, width in zip(blocks, widths, strict=True)],
        axis=1,
    )
    ends = np.cumsum(widths)[:-1].tolist()

    def scatter(new_matrix):
        columns = jnp.split(new_matrix, ends, axis=1)
        return _replace(tree, {
            key: jnp.moveaxis(column.reshape(block.shape), 0, axis).astype(jnp.result_type(leaf))
            for (key, leaf, axis), block, column in zip(grouped, blocks, columns, strict=True)
        })  # fmt: skip

    return matrix, scatter
