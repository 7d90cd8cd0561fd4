r"""One compiled program over many hyperparameter values: :func:`sweep`.

``sweep(fn, hyperparams)`` computes ``fn(h)`` for every row ``h`` of ``hyperparams`` in one
compiled program per chunk shape, sharded over the devices: ``vmap(fn)`` on accelerators, a
``lax.map`` loop over the values on CPU (where XLA runs batched matmuls slower than a loop).
"""

import functools
import math
import sys
from collections.abc import Callable
from numbers import Number
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jreg._checks import check_batch_size, check_callable, is_traced

__all__ = ["sweep"]


@functools.partial(jax.jit, static_argnums=(0, 1))
def _compiled(fn: Callable, sharding: NamedSharding, hyperparams: Any) -> Any:
    """``fn`` over each device's rows of ``hyperparams``: ``lax.map`` on CPU, ``vmap`` elsewhere.

    Compiled once per ``fn`` object, sharding and shapes (jit's own cache).
    """
    on_cpu = sharding.mesh.devices.flat[0].platform == "cpu"
    per_device = functools.partial(jax.lax.map, fn) if on_cpu else jax.vmap(fn)
    # fn knows nothing of the mesh (e.g. its scan carries start unsharded): no varying-axis checks
    return jax.shard_map(
        per_device,
        mesh=sharding.mesh,
        in_specs=sharding.spec,
        out_specs=sharding.spec,
        check_vma=False,
    )(hyperparams)


def _as_sweep_axis(hyperparams: Any) -> Any:
    """A list or tuple of numbers is one sweep axis (an array), not a pytree of scalars."""
    if isinstance(hyperparams, list | tuple) and all(
        isinstance(value, Number) or getattr(value, "ndim", None) == 0 for value in hyperparams
    ):
        return np.asarray(hyperparams) if hyperparams else hyperparams
    return hyperparams


def _chunk_size(length: int, batch_size: int | None, n_devices: int) -> int:
    """The fewest chunks of at most ``batch_size`` rows, balanced, in multiples of the devices.

    The chunk depends only on their number: every ``batch_size >= length`` (or ``None``) is one
    chunk, and batch sizes that give as many chunks share one program (and pad the least).
    """
    largest = n_devices * math.ceil(min(batch_size or length, length) / n_devices)
    n_chunks = math.ceil(length / largest)
    return n_devices * math.ceil(length / (n_chunks * n_devices))


def _sweep_length(leaves: list) -> int:
    if not leaves:
        raise ValueError("hyperparams must contain at least one array")
    shapes = [np.shape(leaf) for leaf in leaves]
    if any(len(shape) == 0 for shape in shapes):
        raise ValueError(f"hyperparams: every leaf needs a leading sweep axis, got shapes {shapes}")
    lengths = {shape[0] for shape in shapes}
    if len(lengths) > 1:
        raise ValueError(f"hyperparams: leaves must share their leading axis, got shapes {shapes}")
    (length,) = lengths
    if length == 0:
        raise ValueError("hyperparams: empty sweep (leading axis of length 0)")
    return length


def batch_sharding(mesh: Mesh | None) -> NamedSharding:
    """Shards the leading axis over every axis of ``mesh`` (default: all devices, 1-D)."""
    if mesh is None:
        mesh = Mesh(np.asarray(jax.devices()), ("sweep",))
    elif not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh or None, got {type(mesh).__name__}")
    return NamedSharding(mesh, PartitionSpec(tuple(mesh.axis_names)))


def _show_progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // total
    end = "\n" if done == total else ""
    print(
        f"\rsweep [{'#' * filled}{'.' * (width - filled)}] {done}/{total} chunks",
        end=end,
        file=sys.stderr,
        flush=True,
    )


def sweep(
    fn: Callable[[Any], Any],
    hyperparams: Any,
    *,
    batch_size: int | None = None,
    mesh: Mesh | None = None,
    progress: bool = False,
) -> Any:
    r"""Evaluates ``fn`` at many hyperparameter values as one compiled, batched program.

    .. math:: \text{sweep}(f, h)_i = f(h_i), \qquad i = 0, \dots, k - 1

    One program per chunk shape runs the whole sweep, e.g. a training run per value over 100
    strengths, as one XLA computation: ``vmap(fn)`` on accelerators; on CPU a ``lax.map`` loop
    over the values (XLA:CPU runs ``vmap``'s batched matmuls slower than a loop of matmuls; the
    results are the same). It is compiled once per ``fn`` *object* and chunk shape, so a second
    call with new values of the same shape does not recompile; define ``fn`` once (a new
    ``lambda`` or ``functools.partial`` per call compiles anew). ``jax.clear_caches()`` frees the
    compiled programs.

    The :math:`k` values are split into the fewest chunks of at most ``batch_size``, of equal
    size (a multiple of the number of devices; the last value is repeated to fill them, and
    dropped from the result), so every chunk runs the same program, and a ``batch_size`` that
    gives as many chunks (any ``batch_size >= k`` included) runs the program of ``None``. Each
    chunk is sharded over the devices of ``mesh`` (``jax.sharding.NamedSharding``). The same call
    scales to several hosts: start every process with ``jax.distributed.initialize()``, build
    ``mesh`` over ``jax.devices()`` (all hosts' devices), and call ``sweep`` with the same
    arguments in every process; the result is then a global array, sharded across hosts (gather
    it with ``jax.experimental.multihost_utils.process_allgather``).

    Args:
      fn: a function of one hyperparameter value (a pytree of arrays without the leading axis)
        returning a pytree of arrays, e.g. a whole training run.
      hyperparams: an array, a list of numbers (one sweep axis), or a pytree of arrays (e.g.
        ``{"strength": s, "lr": lr}``) whose leaves share a leading axis of length
        :math:`k \ge 1` (copied to the host to be chunked).
      batch_size: the most values per compiled call, to bound memory (rounded up to a multiple
        of the number of devices); ``None`` runs all :math:`k` at once.
      mesh: a ``jax.sharding.Mesh`` whose devices share the leading axis (over all its axes);
        ``None`` uses every device of ``jax.devices()``.
      progress: show a progress bar over the chunks on stderr, when stderr is a terminal.

    Returns:
      The pytree of ``fn``'s outputs, each stacked on a leading axis of length :math:`k`.

    Raises:
      ValueError: ``hyperparams`` is empty or its leaves do not share a leading axis, or
        ``batch_size < 1``.
      TypeError: ``fn`` is not callable, ``batch_size`` is not an int or ``mesh`` is not a
        ``jax.sharding.Mesh``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jreg
      >>> def ridge(strength):  # closed-form ridge on a 2-point problem
      ...     X, y = jnp.eye(2), jnp.array([1.0, 2.0])
      ...     return jnp.linalg.solve(X.T @ X + strength * jnp.eye(2), X.T @ y)
      >>> print(jreg.sweep(ridge, [0.0, 1.0, 3.0]))
      [[1.   2.  ]
       [0.5  1.  ]
       [0.25 0.5 ]]
    """
    check_callable("fn", fn, "a function of one hyperparameter value")
    if is_traced(jax.tree.leaves(hyperparams)):
        raise TypeError(
            "hyperparams must be concrete: sweep compiles and runs its own program (call it "
            "outside jax.jit)"
        )
    leaves, treedef = jax.tree.flatten(_as_sweep_axis(hyperparams))
    for leaf in leaves:
        if np.asarray(leaf).dtype.kind not in "biufc":
            raise TypeError(f"hyperparams must hold numbers, got dtype {np.asarray(leaf).dtype}")
    length = _sweep_length(leaves)
    check_batch_size(batch_size)
    sharding = batch_sharding(mesh)
    chunk = _chunk_size(length, batch_size, sharding.mesh.size)
    n_chunks = math.ceil(length / chunk)
    padded = [
        np.concatenate([leaf, np.repeat(leaf[-1:], n_chunks * chunk - length, axis=0)])
        for leaf in map(np.asarray, leaves)
    ]
    show_progress = progress and sys.stderr.isatty()
    results = []
    for i in range(n_chunks):
        chunk_leaves = [
            jax.make_array_from_callback(rows.shape, sharding, lambda index, rows=rows: rows[index])
            for rows in (leaf[i * chunk : (i + 1) * chunk] for leaf in padded)
        ]
        results.append(_compiled(fn, sharding, jax.tree.unflatten(treedef, chunk_leaves)))
        if show_progress:
            jax.block_until_ready(results[-1])
            _show_progress(i + 1, n_chunks)
    if n_chunks == 1:
        stacked = results[0]
    else:
        stacked = jax.tree.map(lambda *chunks: jnp.concatenate(chunks), *results)
    if n_chunks * chunk == length:
        return stacked
    return jax.tree.map(lambda x: x[:length], stacked)
