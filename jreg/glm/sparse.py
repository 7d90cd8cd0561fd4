r"""Sparse design matrices, held in compressed columns and never densified.

A ``scipy.sparse`` matrix (any format) or a :class:`jax.experimental.sparse.BCOO` given as ``X``
becomes a :class:`Columns`: its non-zeros by column, and a centring vector :math:`\mu` that is
subtracted implicitly, so that :math:`X - 1 \mu^\top` (the features centred for the intercept)
is never formed. A :class:`Columns` behaves as the few array operations the solvers use:
``X @ W``, ``V @ X``, ``X.T`` (a view), ``X.T[j]`` (one centred column, dense), ``shape`` and
``dtype``; the functions below do the rest for dense arrays and :class:`Columns` alike.

Products cost :math:`O(\text{nnz})`; a coordinate step (:func:`coordinate_sweep`, proximal
Newton's epochs) costs the largest column's count of non-zeros (``window``), so a few very dense
columns slow every step down, never memory; a dense column ``X.T[j]`` costs :math:`O(n)`.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
from jax.experimental import sparse as jax_sparse

from jreg._checks import check_real, is_traced

SLOTS_PER_ENTRY = 4  # Columns.slots: at most this many per non-zero or feature

__all__ = ["Columns", "centred", "column_max_abs", "combination", "coordinate_sweep",
           "from_input", "is_sparse", "is_sparse_input", "largest_abs", "linear_map", "scaled",
           "squares_times", "take", "values", "zero_columns"]  # fmt: skip


@dataclasses.dataclass(frozen=True, eq=False)
class Columns:
    """``X (n, p)`` minus ``1 mean^T``, from its non-zeros in column order (``transposed``: the
    view ``X^T``, ``(p, n)``, the features as rows). The arrays hold ``window`` padding entries
    at the end (value 0, column ``p``) so that every column's window is in bounds.

    ``slots``, where it holds at most :data:`SLOTS_PER_ENTRY` per non-zero or feature, puts
    each column's entries in a row of its own: the sums over columns (``X^T v``) are then one
    gather and a row sum, not a sorted scatter-add (20000 x 50000, 10^6 non-zeros, on this
    2-core machine: 1.4 against 5.4 ms; the process pinned to one core: 3.1 against 2.9 ms);
    else (a few columns hold most entries) ``None``."""

    values: jax.Array  # (nnz + window,)
    row: jax.Array  # (nnz + window,) int32
    col: jax.Array  # (nnz + window,) int32, ascending
    start: jax.Array  # (p + 1,) int32: column j's entries are start[j]:start[j + 1]
    mean: jax.Array  # (p,) subtracted from every row
    slots: jax.Array | None  # (p, window) int32: column j's entries' positions, then nnz
    n_samples: int
    window: int  # the most non-zeros in a column
    transposed: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        p = self.mean.shape[0]
        return (p, self.n_samples) if self.transposed else (self.n_samples, p)

    @property
    def dtype(self):
        return self.values.dtype

    ndim = 2

    @property
    def T(self) -> "Columns":  # noqa: N802 (as an array's)
        return dataclasses.replace(self, transposed=not self.transposed)

    def __matmul__(self, other) -> jax.Array:
        """``X @ W`` (``W (p, ...)``), or ``X^T @ V`` (``V (n, ...)``) for the view."""
        other = jnp.asarray(other)
        flat = other.reshape(other.shape[0], -1)
        n = self.n_samples
        if self.transposed:
            sums = self.column_sums(lambda value, mean: value, flat)
            out = sums - self.mean[:, None] * jnp.sum(flat, axis=0)[None, :]
        else:
            terms = self.values[:, None] * flat.at[self.col].get(mode="fill", fill_value=0)
            out = jax.ops.segment_sum(terms, self.row, n) - (self.mean @ flat)[None, :]
        return out.reshape(out.shape[:1] + other.shape[1:])

    def column_sums(self, term: Callable, flat: jax.Array) -> jax.Array:
        r""":math:`\sum_i t(x_{ij}, \mu_j) v_{ik}` over each column's stored entries (uncentred),
        ``(p, m)``, for ``flat (n, m)`` and an elementwise ``term`` :math:`t` of an entry and
        its column's mean (the padding's value 0 must give 0)."""
        p = self.mean.size
        if self.slots is None:
            mean = self.mean[jnp.minimum(self.col, p - 1)]
            terms = term(self.values, mean)[:, None] * flat[self.row]
            return jax.ops.segment_sum(terms, self.col, p, indices_are_sorted=True)
        terms = term(self.values[self.slots], self.mean[:, None])[:, :, None]
        return jnp.sum(terms * flat[self.row[self.slots]], axis=1)

    def __rmatmul__(self, other) -> jax.Array:
        """``V @ X`` for ``V (n,)`` or ``(k, n)`` (and so for the view)."""
        return (self.T @ jnp.asarray(other).T).T

    def __getitem__(self, j) -> jax.Array:
        """Feature ``j``'s column, centred, dense ``(n,)`` (the view only: ``X.T[j]``)."""
        if not self.transposed:
            raise TypeError("index the features of X.T, not the rows of X")
        values, rows = self.nonzeros(j)
        return jnp.zeros(self.n_samples, self.dtype).at[rows].add(values) - self.mean[j]

    def nonzeros(self, j) -> tuple[jax.Array, jax.Array]:
        """Feature ``j``'s stored values (uncentred) and their rows, ``(window,)`` each (the
        unused end of the window: value 0, row 0)."""
        first = self.start[j]
        inside = jnp.arange(self.window) < self.start[j + 1] - first
        values = jax.lax.dynamic_slice(self.values, (first,), (self.window,))
        rows = jax.lax.dynamic_slice(self.row, (first,), (self.window,))
        return jnp.where(inside, values, 0), jnp.where(inside, rows, 0)


jax.tree_util.register_dataclass(
    Columns,
    data_fields=["values", "row", "col", "start", "mean", "slots"],
    meta_fields=["n_samples", "window", "transposed"],
)


def is_sparse_input(X) -> bool:
    return scipy.sparse.issparse(X) or isinstance(X, jax_sparse.BCOO)


def is_sparse(X) -> bool:
    return isinstance(X, Columns)


def from_input(X) -> Columns:
    """A ``scipy.sparse`` matrix or a ``BCOO`` (concrete, 2-D, no batch or dense dimensions) as
    :class:`Columns` (duplicates summed), in its dtype, at least float32."""
    if isinstance(X, jax_sparse.BCOO):
        if is_traced(X.data) or is_traced(X.indices):
            raise ValueError("X: a sparse BCOO X must be concrete (not traced inside jit)")
        if X.n_batch or X.n_dense or X.ndim != 2:
            raise ValueError(f"X must be a 2-D BCOO without batch or dense dimensions, got {X!r}")
        indices = np.asarray(X.indices)
        stored = np.all(indices < np.asarray(X.shape), axis=1)  # out of range: BCOO's padding
        rows, cols = indices[stored].T
        X = scipy.sparse.coo_matrix((np.asarray(X.data)[stored], (rows, cols)), shape=X.shape)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array (n_samples, n_features), got shape {X.shape}")
    check_real("X", X.data)
    X = scipy.sparse.csc_matrix(X, copy=True)
    X.sum_duplicates()  # and sorts each column's rows
    n, p = X.shape
    counts = np.diff(X.indptr)
    window = max(int(counts.max(initial=0)), 1)
    dtype = jnp.promote_types(jnp.asarray(X.data[:0]).dtype, jnp.float32)
    pad = lambda x, fill: np.concatenate([x, np.full(window, fill, x.dtype)])  # noqa: E731
    slots = None
    if p * window <= SLOTS_PER_ENTRY * (X.nnz + p):
        place = np.arange(window)[None, :]
        slots = np.where(place < counts[:, None], X.indptr[:-1, None] + place, X.nnz)
        slots = jnp.asarray(slots, jnp.int32)
    return Columns(
        values=jnp.asarray(pad(X.data, 0), dtype),
        row=jnp.asarray(pad(X.indices.astype(np.int32), 0)),
        col=jnp.asarray(pad(np.repeat(np.arange(p, dtype=np.int32), counts), p)),
        start=jnp.asarray(X.indptr, jnp.int32),
        mean=jnp.zeros(p, dtype),
        slots=slots,
        n_samples=n,
        window=window,
    )


def values(X) -> jax.Array:
    """The stored numbers of ``X`` (a dense array: all of them)."""
    return X.values if is_sparse(X) else X


def largest_abs(X) -> jax.Array:
    r""":math:`\max |x|` over the stored numbers of ``X``: NaN where one is NaN, ``inf`` where
    one is infinite (so also whether all are finite); held fixed under differentiation (a
    scale). One pass for the largest and the smallest number: ``max(abs(X))`` had XLA:CPU write
    out ``|X|`` (20000 x 300 float64: 33 ms against 4.6 ms)."""
    v = jax.lax.stop_gradient(values(X))
    inf = jnp.asarray(jnp.inf, v.dtype)
    largest, smallest = jax.lax.reduce((v, v), (-inf, inf), _max_min, tuple(range(v.ndim)))
    return jnp.maximum(largest, -smallest)


def _max_min(a, b):
    return jnp.maximum(a[0], b[0]), jnp.minimum(a[1], b[1])


def centred(X, mean: jax.Array):
    """``X - 1 mean^T`` (implicitly for :class:`Columns`: it replaces their ``mean``)."""
    if is_sparse(X):
        return dataclasses.replace(X, mean=mean)
    return X - mean[None, :]


def scaled(X, scale: jax.Array):
    """Column ``j`` divided by ``scale[j]``."""
    if not is_sparse(X):
        return X / scale[None, :]
    per_entry = jnp.append(scale, 1)[X.col]
    return dataclasses.replace(X, values=X.values / per_entry, mean=X.mean / scale)


def zero_columns(X, mask: jax.Array):
    """``X`` with the columns where ``mask (p,)`` holds set to 0."""
    if not is_sparse(X):
        return jnp.where(mask[None, :], 0, X)
    per_entry = jnp.append(mask, True)[X.col]
    return dataclasses.replace(X, values=jnp.where(per_entry, 0, X.values),
                               mean=jnp.where(mask, 0, X.mean))  # fmt: skip


def column_max_abs(X) -> jax.Array:
    """``max_i |x_ij|`` per column ``(p,)`` of uncentred ``X`` (dense: from the largest and the
    smallest, no ``|X|`` written out: 20000 x 300 float64 6 ms against 34 ms)."""
    if not is_sparse(X):
        return jnp.maximum(jnp.max(X, axis=0), -jnp.min(X, axis=0))
    p = X.mean.shape[0]
    largest = jax.ops.segment_max(jnp.abs(X.values), X.col, p, indices_are_sorted=True)
    return jnp.maximum(largest, 0)  # an empty column's -inf


def take(rows, index: jax.Array) -> jax.Array:
    """The rows ``index`` of features-major ``rows (p, n)``, dense ``(K, n)``; 0 where an index
    is ``p`` or more (padding)."""
    if not is_sparse(rows):
        return rows.at[index].get(mode="fill", fill_value=0)
    p = rows.shape[0]
    dense = jax.vmap(rows.__getitem__)(jnp.minimum(index, p - 1))
    return jnp.where((index < p)[:, None], dense, 0)


def combination(rows, index: jax.Array, weights: jax.Array) -> jax.Array:
    r"""``weights.T @ take(rows, index)``: the rows ``index`` of features-major ``rows (p, n)``
    weighted by ``weights (K,)`` or ``(K, m)`` and summed, ``(n,)`` or ``(m, n)`` (an index
    of ``p`` or more: padding). Sparse, from the rows' windows alone: :math:`O(K \cdot
    \text{window})`, no dense row written out."""
    if not is_sparse(rows):
        return weights.T @ take(rows, index)
    (p, n), flat = rows.shape, weights.reshape(weights.shape[0], -1)
    m, held, feature = flat.shape[1], index < p, jnp.minimum(index, p - 1)
    values, samples = jax.vmap(rows.nonzeros)(feature)  # (K, window) each
    terms = jnp.where(held[:, None, None], values[:, :, None] * flat[:, None, :], 0)
    sums = jnp.zeros((n, m), flat.dtype).at[samples.reshape(-1)].add(terms.reshape(-1, m))
    centring = jnp.where(held, rows.mean[feature], 0) @ flat
    return (sums - centring[None, :]).T.reshape(weights.shape[1:] + (n,))


def squares_times(rows, h: jax.Array) -> jax.Array:
    r""":math:`\sum_i \text{rows}_{ji}^2 h_i` for features-major ``rows (p, n)`` and ``h (n,)``
    or ``(n, m)``: the weighted squared norms of the (centred) columns (dense: one reduction,
    the squares not written out)."""
    flat = h.reshape(h.shape[0], -1)
    if not is_sparse(rows):
        out = jnp.sum(jnp.square(rows)[:, :, None] * flat[None], axis=1)
        return out.reshape(rows.shape[:1] + h.shape[1:])
    X, p = rows, rows.shape[0]
    sums = X.column_sums(lambda value, mean: value * (value - 2 * mean), flat)
    out = sums + X.mean[:, None] ** 2 * jnp.sum(flat, axis=0)[None, :]
    return out.reshape((p,) + h.shape[1:])


def coordinate_sweep(rows, a, w, r, order, size, new_value):
    r"""One epoch of coordinate descent on a residual: for ``t < size``, coordinate ``j =
    order[t]`` (each at most once: ``order`` is a permutation) moves to ``new_value(j, w_j,
    g_j)`` with :math:`g_j = x_j^\top \operatorname{diag}(a) r`, and :math:`r \leftarrow r -
    (w_j' - w_j) x_j` (``rows (p, n)``: the centred features). Returns ``(w, r)``.

    A coordinate's value is read from ``w`` as the epoch found it (it has not moved yet) and the
    new values are written to a buffer that is never read: XLA:CPU copies a carried vector
    updated from a read of itself, which made every step cost :math:`O(p)` (7.4 us instead of
    0.6 us at p = 20000, measured). Sparse, a step costs the column's non-zeros: the centring's
    part of :math:`r` is a scalar carried aside, :math:`c = s_0 - s` with :math:`s = a^\top
    r_{\text{stored}}`, exact because :math:`\mu_j = a^\top x_j` (the centring is the weighted
    mean), and :math:`g_j = x_j^\top \operatorname{diag}(a) r_{\text{stored}} - \mu_j s`."""

    def dense_step(t, state):
        moved, r = state
        j = order[t]
        x = rows[j]
        new = new_value(j, w[j], x @ (a * r))
        return moved.at[t].set(new), r - (new - w[j]) * x

    def sparse_step(t, state):
        moved, r, s = state
        j = order[t]
        values, index = rows.nonzeros(j)
        mean = rows.mean[j]
        new = new_value(j, w[j], values @ (a[index] * r[index]) - mean * s)
        delta = new - w[j]
        return moved.at[t].set(new), r.at[index].add(-delta * values), s - delta * mean

    ordered = w[order]
    if is_sparse(rows):
        s0 = a @ r
        moved, r, s = jax.lax.fori_loop(0, size, sparse_step, (ordered, r, s0))
        r = r + (s0 - s)
    else:
        moved, r = jax.lax.fori_loop(0, size, dense_step, (ordered, r))
    return w.at[order].set(moved), r  # unvisited entries of moved: as they were


def linear_map(X, W: jax.Array) -> jax.Array:
    """``X @ W`` over the first axis of ``W (p, ...)``: ``(n, ...)``."""
    return X @ W if is_sparse(X) else jnp.tensordot(X, W, axes=(1, 0))
