r"""The solvers of :mod:`jreg.glm`, written against what they need of a problem, never a name.

- :func:`fista`: accelerated proximal gradient with gradient restart, for any penalty; steps from
  a curvature bound, or by backtracking where the datafit has none. For a quadratic datafit each
  iteration is one evaluation (the gradient is affine), and penalties with Newton steps
  (``on_orthant``) interleave the active-set steps of :func:`newton`.
- :func:`coordinate_descent`: the squared loss of one output, separable penalties, on ``X``
  (p > n) or its Gram matrix: working sets, Anderson extrapolation, Newton steps first where the
  penalty has them.
- :func:`prox_newton`: proximal Newton for every smooth datafit and separable penalty: each outer
  step minimizes a quadratic model of the datafit (its per-sample Hessian) by coordinate descent
  on a working set (on ``X``, or for one output and ``n >= p`` on the working set's weighted
  Gram matrix), then a backtracking line search on the objective.

Every solver is warm-started down the path and stops at a :class:`Target`: when :func:`gap_at`,
a duality gap (convex penalty, datafit with a conjugate) or a squared gradient mapping
(otherwise), falls below ``tol * F(0)`` and every coordinate's optimality residual below a
fraction of the strength; the dual point first meets the constraints of the unpenalized
coordinates and the intercept, which scaling cannot (see :func:`gap_at`). Each solver is one
loop that scores its point after every step (:func:`scored_loop`): the gap, the largest piece of
its program, is compiled once. The returned ``w`` is the output of a proximal or coordinate
step, or of a Newton or extrapolated step kept on its signs (a coordinate it would move across
or off zero is zero); proximal Newton's is its model's minimizer, or, where the line search
shortened the step, a point on the way to it.
"""

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.xla_metadata import set_xla_metadata

from jreg.glm import sparse
from jreg.glm.penalties import Penalty

_CHECK_EVERY = 10  # FISTA iterations between two gap evaluations (quadratic: Newton tries)
_BACKTRACK = 60  # the most doublings of FISTA's curvature in one step
_INNER_EPOCHS = 50  # the most coordinate-descent epochs on one model of proximal Newton
_LINE_SEARCH = 30  # the most halvings of a proximal Newton step
_ARMIJO = 1e-3  # the fraction of the model's decrease a proximal Newton step must achieve
_UNMEASURABLE = 64  # a predicted decrease below this many ulps of the objective: a full step
_ENTERING = 10  # the fewest zero coordinates a working set takes in (when they violate)
_ANDERSON = 5  # coordinate-descent epochs between two Anderson extrapolations
_GRAM_WIDTHS = (32, 64, 128, 256, 512)  # the working sets of proximal Newton's Gram forms
_GRAM_SAMPLES = 4  # proximal Newton's Gram forms need n >= _GRAM_SAMPLES p (measured)
_STALE = 0.25  # proximal Newton reuses a Gram matrix while its curvatures are within this share
POLISH_STEPS = 3  # Newton steps on the intercept before a gap (from near its best)
_FREE_MAX = 32  # the most unpenalized coordinates whose dual constraints the gap meets
_NEGLIGIBLE = 1e-3  # a strength below this fraction of its gradient counts as unpenalized there

_NEWTON_MAX = 1024  # the largest support a Newton step solves on
_NEWTON_BUCKETS = (32, 64, 128, 256, 512)  # smaller systems solve faster
_NEWTON_ENTERING = 5  # the most features a Newton step lets into the support
_FACTOR_ENTERING = 10  # that where a factor is carried (X form; 5: 1.16x the steps, measured)
_NEWTON_AFTER = 30  # FISTA iterations at one strength after which Newton steps are tried
_NEWTON_CHEAP = 4  # (FISTA) below m^3 <= _NEWTON_CHEAP p^2, a Newton step is tried first
_COMPLEMENT_CHEAP = 16  # _NEWTON_CHEAP for those (late in a path, their steps land: measured)
_APPEND_BLOCK = 8  # features appended to a Newton factor at a time (X form; 16: 1.05x, 4: 1.03x)
_LEAVING_MAX = 32  # the most features a Newton factor holds at 0 (X form; 16: 4 cuts, not 1)
_WINDOWS_SHARE = 4  # (sparse) support products from windows holding at most 1/4 of the non-zeros
SAMPLE_BLOCK = 2048  # samples per block of the products summed over many samples
_HALVED_PRODUCT = 128  # the fewest columns whose Gram matrices are formed by halves (CPU)


class Evaluation(NamedTuple):
    """A datafit's value and gradients at ``(w, b)``, and its part of the dual objective as a
    function of the scaling ``kappa`` of the dual point ``theta = kappa * dF/dz``."""

    loss: jax.Array
    grad_w: jax.Array  # (d,)
    grad_b: jax.Array  # (m,); 0 where the intercept is not a variable
    dual: Callable | None  # a Partial (carried across strengths); None: no conjugate
    z: jax.Array | None = None  # the linear predictor (n, m), where the solver reuses it


class Factor(NamedTuple):
    """The inverse of the Cholesky factor of the Hessian on the features of the last Newton
    steps (squared loss, X form), kept along a path: the features that enter are appended to it
    (products with it, ``O(K^2)`` each, as in LARS) and those that leave are held at 0 by a
    constraint. Where more than ``_LEAVING_MAX`` have left, or the factor comes near singular
    (a feature nearly in the span of those before it: they can outnumber the samples), the
    slots from the first that left on are dropped and their active features appended again; so
    are those from a slot whose penalty curvature changed or whose update failed (see
    :func:`factor_plan`)."""

    order: jax.Array  # (K,) the features it holds in the order they entered, then padding (p)
    inverse: jax.Array  # (K, K) L^-1, L L^T = Hessian + diag(curvature + jitter) on them
    curvature: jax.Array  # (K,) the penalty's curvature in ``inverse``
    pivots: jax.Array  # (K,) (L_jj^2 - jitter) / H_jj (~0: singular); NaN: the update failed


class Smooth(NamedTuple):
    """What :func:`fista` and :func:`newton` need of a datafit on data.

    ``lipschitz`` bounds the curvature in ``w`` (with ``backtrack``: a first estimate, scaled up
    where a step fails the descent condition, which ``value`` evaluates), ``intercept_lipschitz``
    in the intercept, which takes its own step (the features are centred, so the bound on the
    Hessian is block-diagonal). For a quadratic datafit, the Newton steps of :func:`newton`
    read its Hessian on a set of indices in one of two ways, each a function of the arrays it
    reads (so that a batch of Newton systems can be solved one after the other): from
    ``hessian_block(hessian_data, index)`` (``p`` pads: zero rows and columns), or, with a
    ``factor`` carried from step to step, through ``factor_plan(factor, active, curvature) ->
    (plan, count)``, the size of the next system, and ``factor_step(hessian_data, active, grad,
    curvature, plan, factor) -> (direction, factor)`` (see :func:`factor_step`).
    """

    evaluate: Callable[[jax.Array, jax.Array], Evaluation]
    lipschitz: jax.Array
    intercept_lipschitz: jax.Array | float = 1.0
    quadratic: bool = False
    backtrack: bool = False
    # (w, b) -> the datafit's value, where it costs less than an evaluation (backtracking;
    # coordinate descent's choice between its epochs' point and their extrapolation)
    value: Callable | None = None
    # (w, b) -> the best intercept for w, to rounding (the duality gap needs it: see best_shift)
    best_intercept: Callable | None = None
    hessian_block: Callable | None = None
    factor_plan: Callable | None = None
    factor_step: Callable | None = None
    hessian_data: tuple = ()
    newton_size: int = 0  # the largest support a Newton step solves on (static)
    # > 0: ``hessian_data`` is ``(hessian, inverse)`` (of the Hessian, shifted where it is near
    # singular), and Newton systems on large supports solve on the complement of the support,
    # up to this size
    complement_size: int = 0
    factor: Factor | None = None  # before the first step
    # (evaluation, w, index) -> the evaluation with a dual point that meets the constraints of
    # the coordinates ``index`` (see :func:`gap_at`); None: their gradient mapping is counted
    feasible: Callable | None = None


class Solution(NamedTuple):
    w: jax.Array
    b: jax.Array
    gap: jax.Array
    residual: jax.Array  # the largest optimality residual (see gap_at)
    n_iter: jax.Array
    warm: object = None  # what the solver carries to the next strength


class Target(NamedTuple):
    """Where a solver stops: the gap at most ``gap`` and every coordinate's optimality residual
    (see :func:`gap_at`) at most ``residual``."""

    gap: jax.Array
    residual: jax.Array


def short_of(gap, residual, target: Target) -> jax.Array:
    """Whether a solver with this gap and residual has not reached ``target``."""
    return (gap > target.gap) | (residual > target.residual)


# --------------------------------------------------------------------------------------------
# Shared pieces.


def top_eigenvalue(matvec: Callable, size: int, dtype, *, n_iter: int = 64) -> jax.Array:
    """Upper estimate of the largest eigenvalue of a PSD operator by power iteration."""
    v = jnp.ones(size, dtype) / float(np.sqrt(size)) + 0.01 * jnp.sin(jnp.arange(size, dtype=dtype))

    def step(v, _):
        u = matvec(v)
        u = u / jnp.maximum(jnp.max(jnp.abs(u)), jnp.finfo(dtype).tiny)  # its norm cannot overflow
        return u / jnp.maximum(jnp.linalg.norm(u), jnp.finfo(dtype).tiny), None

    v = jax.lax.scan(step, v / jnp.linalg.norm(v), length=n_iter)[0]
    return 1.1 * jnp.vdot(v, matvec(v)) + jnp.finfo(dtype).tiny


def pick(condition, if_true, if_false):
    """``if_true`` where ``condition`` holds, else ``if_false`` (pytrees of arrays)."""
    return jax.tree.map(lambda x, y: jnp.where(condition, x, y), if_true, if_false)


def maybe(condition, f, operand):
    """``f(operand)`` if ``condition`` else ``operand``. Unlike ``lax.cond``, which under
    ``vmap`` runs ``f`` for every member, ``f`` runs only when some member's condition holds (a
    while loop of at most one trip; members whose condition is false keep ``operand``)."""
    body = lambda state: (jnp.zeros_like(state[0]), f(state[1]))  # noqa: E731
    out = jax.lax.while_loop(lambda state: state[0], body, (condition, operand))
    # XLA would hoist ``f``'s work on its closure (loop invariants) out of the loop and run it
    # whatever the condition (a dense ``X`` product and a transposed copy of ``X`` for it)
    return set_xla_metadata(out, _xla_disable_loop_instr_hoisting="true")[1]


def first_true(mask, size: int, fill: int) -> jax.Array:
    """``jnp.nonzero(mask, size=size, fill_value=fill)[0]`` for a 1-d ``mask``: the indices of
    its first ``size`` true entries in order, then ``fill``, by one sequential loop (compiled
    whole). XLA:CPU computes ``jnp.nonzero``'s cumulative sum as a tree of windowed reductions:
    0.14 ms at 5000 entries and 0.1-0.2 s to compile, the loop 0.02-0.05 ms and 0.03 s."""

    def put(i, carry):
        count, index = carry
        return count + mask[i], index.at[jnp.where(mask[i], count, size)].set(i, mode="drop")

    start = (jnp.zeros((), int), jnp.full(size, fill, int))
    return jax.lax.fori_loop(0, mask.size, put, start)[1]


def stable_order(key, keys: int) -> jax.Array:
    """``jnp.argsort(key, stable=True)`` for integers ``key`` in ``[0, keys)`` (``keys`` static,
    small): one sequential loop puts each index at the next free place of its key (XLA:CPU's
    sort took 1.3 ms at 5000 entries, the loop 0.1 ms)."""
    free = jnp.stack([jnp.sum(key < k) for k in range(keys)])  # where each key's run starts

    def put(i, carry):
        free, order = carry
        return free.at[key[i]].add(1), order.at[free[key[i]]].set(i)

    return jax.lax.fori_loop(0, key.size, put, (free, jnp.zeros(key.size, int)))[1]


def either(condition, if_true: Callable, if_false: Callable):
    """``if_true()`` if ``condition`` else ``if_false()``, by two :func:`maybe`: under ``vmap``
    each runs only when some member's condition asks for it (``lax.cond`` would run both)."""
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(if_true))
    on_true = maybe(condition, lambda _: if_true(), zeros)
    return pick(condition, on_true, maybe(~condition, lambda _: if_false(), zeros))


def scored_loop(not_done: Callable, step: Callable, score: Callable, start):
    """``state = score(start)``, then ``state = score(step(state))`` while ``not_done(state)``:
    the first pass of the loop scores ``start``, so that ``score`` (a duality gap, the largest
    piece of a solver's program) is compiled once."""

    def body(carry):
        first, state = carry
        return jnp.zeros_like(first), score(maybe(~first, step, state))

    carry = (jnp.ones((), bool), start)
    return jax.lax.while_loop(lambda carry: carry[0] | not_done(carry[1]), body, carry)[1]


def support_product(w, rows, size: int) -> jax.Array:
    """``w @ rows`` (``w (p,)`` or ``(p, m)``, ``rows (p, n)``) from the rows of the support of
    ``w`` only, when it holds at most ``size`` (static) features. Sparse ``rows``: from their
    windows (:func:`~jreg.glm.sparse.combination`), at most as many as hold ``1 /
    _WINDOWS_SHARE`` of the non-zeros (a product reads every one: 20000 x 50000 with 1e6
    non-zeros, 6.7 ms, against 1.2-1.6 ms from the windows of a support of 30-1000)."""
    p = rows.shape[0]
    if sparse.is_sparse(rows):
        size = min(size, rows.values.size // (_WINDOWS_SHARE * rows.window))
    if not 0 < size < p:
        return w.T @ rows
    support = w != 0 if w.ndim == 1 else jnp.any(w != 0, axis=1)
    larger = jnp.sum(support) > size

    def on_support():
        index = first_true(support, size, p)
        return sparse.combination(rows, index, sparse.take(w, index))

    if sparse.is_sparse(rows):  # neither product where the other is used (both cost)
        return either(larger, lambda: w.T @ rows, on_support)
    return maybe(larger, lambda _: w.T @ rows, on_support())


def gap_at(evaluation: Evaluation, curvature, intercept_curvature, penalty: Penalty, w, lam,
           feasible: Callable | None = None):  # fmt: skip
    r"""Duality gap or squared gradient mapping at ``(w, b)`` from an evaluation of the datafit
    there, and the optimality residual :math:`\max_j h_j |w_j - \operatorname{prox}(w - g / h)_j|`
    (in gradient units: for a coordinate at zero :math:`|g_j| - \lambda_j` where positive, else
    the distance of :math:`-g_j` to the penalty's slope at :math:`w_j`); ``curvature`` is the
    curvature :math:`h` in ``w`` (a scalar bound, or per coordinate), the inverse step of the
    gradient mapping (``intercept_curvature``: in ``b``).

    The dual point :math:`\theta = \kappa \nabla F(z)` is scaled into the penalty's dual
    feasible set, but an unpenalized coordinate :math:`j` (and the intercept) constrains it to
    :math:`X_j^\top \theta = 0`, which scaling cannot meet. With ``feasible``, for up to
    ``_FREE_MAX`` such coordinates the dual point is first moved to meet them (see
    :func:`feasible_gradient`) and scaled into the conjugate's domain (:func:`domain_scale`): the
    gap then bounds the suboptimality. Otherwise (more of them, no ``feasible``) their squared
    gradient mapping is added, an estimate. A coordinate whose strength is negligible (below
    ``_NEGLIGIBLE`` of its gradient, or ``_NEGLIGIBLE^2`` of its scale :math:`\sqrt{2 h_j F}`)
    would be met by scaling only to nearly 0, or, at the solution, to within the gradient's
    rounding: the gap is also bounded with those treated as unpenalized (the dual of a problem whose
    optimum is lower, so still a bound, looser by about :math:`\lambda_j |w_j|`), and the
    smaller of the two bounds is returned.
    """
    step = 1 / curvature
    mapped = penalty.prox(w - step * evaluation.grad_w, lam, step)
    residual = jnp.max(jnp.abs(w - mapped) * curvature)
    intercept = jnp.sum(evaluation.grad_b**2 / (2 * intercept_curvature))
    if penalty.dual_scale is None or evaluation.dual is None:
        return jnp.sum((w - mapped) ** 2 * curvature / 2) + intercept, residual
    per_coordinate = lam.shape == w.shape  # else per group: no unpenalized coordinates
    unpenalized = (lam == 0) if per_coordinate else jnp.zeros(w.shape, bool)
    size = min(w.size, _FREE_MAX)
    primal = evaluation.loss + penalty.value(w, lam)

    def gap_freeing(free):
        """The gap with the dual constraints of ``free`` met by moving the dual point."""
        evaluation_, domain = evaluation, jnp.ones((), evaluation.loss.dtype)
        projected = jnp.zeros((), bool)
        if feasible is not None:
            projected = jnp.any(free) & (jnp.sum(free) <= size)

            def project(state):  # the free coordinates found only here (a loop over p)
                moved = feasible(state[0], w, first_true(free, size, w.size))
                return moved, domain_scale(moved.dual, domain)

            evaluation_, domain = maybe(projected, project, (evaluation_, domain))
        v = -evaluation_.grad_w
        kappa = jnp.minimum(penalty.dual_scale(v, lam), domain)
        dual = evaluation_.dual(kappa) - penalty.conjugate(kappa * v, lam)
        estimate = jnp.where(unpenalized & ~projected, (w - mapped) ** 2 * curvature / 2, 0)
        return jnp.maximum(primal - dual, 0) + jnp.sum(estimate)

    if feasible is None or not per_coordinate:
        return gap_freeing(unpenalized) + intercept, residual
    rough = _NEGLIGIBLE * jnp.sqrt(2 * curvature * jnp.abs(evaluation.loss))
    negligible = unpenalized | (lam < _NEGLIGIBLE * jnp.maximum(jnp.abs(evaluation.grad_w), rough))
    loose = (jnp.sum(negligible) <= size) & jnp.any(negligible & ~unpenalized)
    # both bounds in one loop, so that the projection (half the gap's operations) compiles once
    frees = jnp.stack([unpenalized, negligible])
    smaller = lambda k, gap: jnp.minimum(gap, gap_freeing(frees[k]))  # noqa: E731
    gap = jax.lax.fori_loop(0, 1 + loose.astype(int), smaller, jnp.asarray(jnp.inf, primal.dtype))
    return gap + intercept, residual


def free_solve(M: jax.Array, rhs: jax.Array) -> jax.Array:
    """A least-squares solution of ``M x = rhs`` (``M`` PSD, exact where ``rhs`` is in its
    range), scaled by its diagonal first (zero rows and columns: padding)."""
    diagonal = jnp.diagonal(M)
    s = jnp.where(diagonal > 0, 1 / jnp.sqrt(jnp.where(diagonal > 0, diagonal, 1)), 0)
    return s * (jnp.linalg.pinv(s[:, None] * M * s[None, :], hermitian=True) @ (s * rhs))


def feasible_gradient(rows, a, g, curvature, index, *, intercept: bool):
    r"""The per-sample gradient moved to meet the dual constraints of the coordinates ``index``
    (flat indices of ``w.reshape(p, m)``; ``p m`` pads) and, with ``intercept``, of the
    intercepts: :math:`g' = g - H X_U \delta` with :math:`X_U^\top A H X_U \delta = X_U^\top
    A g`, so that :math:`X_U^\top A g' = 0`; :math:`H` the per-sample Hessians ``curvature =
    (d, q)`` (a Newton step on those coordinates, linearized: :math:`g'` is the gradient after
    it, to first order, so near the optimum it stays in the conjugate's domain). Returns
    :math:`g'` ``(n, m)`` and :math:`X^\top A g'`, 0 on ``index``."""
    n, m = g.shape
    d, q = curvature
    feature, output = index // m, index % m
    columns = sparse.take(rows, feature)  # (K, n)
    if intercept:
        columns = jnp.concatenate([columns, jnp.ones((m, n), rows.dtype)])
        output = jnp.concatenate([output, jnp.arange(m)])
    same = output[:, None] == output[None, :]
    M = ((columns * (a[:, None] * d[:, output]).T) @ columns.T) * same
    if q is not None:
        q_columns = columns * q[:, output].T
        M = M - (q_columns * a[None, :]) @ q_columns.T
    rhs = jnp.take_along_axis((columns * a[None, :]) @ g, output[:, None], axis=1)[:, 0]
    delta = free_solve(M, rhs)
    step = columns.T @ (delta[:, None] * (output[:, None] == jnp.arange(m)[None, :]))  # (n, m)
    h_step = d * step if q is None else d * step - q * jnp.sum(q * step, axis=1, keepdims=True)
    moved = g - h_step
    grad = (rows @ (a[:, None] * moved)).reshape(-1)
    return moved, grad.at[index].set(0, mode="drop")


def domain_scale(dual: Callable, one: jax.Array, steps: int = 40) -> jax.Array:
    r"""The largest :math:`\kappa \le 1` (to :math:`2^{-40}`) at which the dual objective
    ``dual(kappa)`` is finite: the conjugate's domain is convex and holds 0."""

    def halve(_, bounds):
        low, high = bounds
        middle = (low + high) / 2
        finite = jnp.isfinite(dual(middle))
        return jnp.where(finite, middle, low), jnp.where(finite, high, middle)

    inside = lambda _: jax.lax.fori_loop(0, steps, halve, (0 * one, one))[0]  # noqa: E731
    return maybe(~jnp.isfinite(dual(one)), inside, one)


def working_set(active, violation) -> tuple[jax.Array, jax.Array]:
    """A working set of coordinate descent and proximal Newton: ``(order, size)``, the units
    ``order[:size]`` (the ``active`` ones, then the zeros that violate most, each tier in index
    order; ``order`` is a permutation). It takes in every zero whose optimality condition
    fails (``violation > 0``), but at least ``_ENTERING`` of them (then the least negative) and
    at most as many as there are active units (as glmnet's passes, which move only the
    violators; celer and skglm take twice the support: on correlated data the extra
    coordinates' epochs cost more than the features they let in early). Ordered by
    :func:`stable_order`, no sort (XLA's CPU argsort cost 1.6 ms at 10^4 units, run at every
    block)."""
    active_count = jnp.sum(active)
    score = jnp.where(active, -jnp.inf, violation)
    violators = jnp.sum(score > 0)
    entering = jnp.clip(violators, _ENTERING, jnp.maximum(active_count, _ENTERING))
    few, many = violators < _ENTERING, violators > entering
    threshold = jax.lax.switch(
        few + 2 * many,
        [
            lambda: jnp.zeros((), score.dtype),  # every violator enters
            lambda: _kth_largest(score, _ENTERING),
            lambda: _kth_largest_of_many(score, entering),
        ],
    )
    # the violators above the threshold, then those at it or below 0 (ties: cut by ``size``)
    first = score > jnp.maximum(threshold, 0)
    tier = jnp.select([active, first, score >= threshold], [0, 1, 2], 3)
    return stable_order(tier, 4), jnp.minimum(active_count + entering, active.size)


def _codes(v: jax.Array) -> tuple[jax.Array, Callable]:
    """Order-preserving unsigned integer codes of the floats ``v`` (their bits, the negatives
    reversed and below the rest; -0 as 0), and the map back from a code to its float."""
    bits = v.dtype.itemsize * 8
    unsigned = jnp.dtype(f"uint{bits}")
    sign = jnp.asarray(1 << (bits - 1), unsigned)
    raw = jax.lax.bitcast_convert_type(jnp.where(v == 0, 0, v), unsigned)
    codes = jnp.where(raw >= sign, ~raw, raw | sign)

    def value(code):
        return jax.lax.bitcast_convert_type(jnp.where(code >= sign, code ^ sign, ~code), v.dtype)

    return codes, value


def _first_smallest(v: jax.Array) -> jax.Array:
    """``jnp.argmin(v)`` for a 1-d ``v`` without NaN, by two integer reductions on its
    :func:`_codes` (XLA:CPU's argmin is a loop of scalar steps: 44 us at 10^4 entries)."""
    codes, _ = _codes(v)
    return jnp.min(jnp.where(codes == jnp.min(codes), jnp.arange(v.size), v.size))


def _kth_largest(v: jax.Array, k: int) -> jax.Array:
    """The ``k``-th largest of the distinct values of ``v`` (``-inf`` past the last), for a small
    static ``k``: ``k`` passes of ``max`` over their :func:`_codes` (integers: XLA:CPU's float
    ``max``, which propagates NaN, ran 2-3x slower: 0.8 against 0.25 ms at 50000 entries)."""
    codes, value = _codes(v)
    below = lambda _, top: jnp.max(jnp.where(codes < top, codes, 0))  # noqa: E731
    top = jax.lax.fori_loop(0, k - 1, below, jnp.max(codes))
    return jnp.where(top == 0, -jnp.inf, value(top))


def _kth_largest_of_many(v: jax.Array, k) -> jax.Array:
    """The ``k``-th largest entry of ``v`` (``k`` traced; where ``k > v.size``, the smallest):
    a bisection on the floats' :func:`_codes`, one count per bit (0.13 ms at 10^4 entries
    against 1.4 ms for a sort on CPU)."""
    bits = v.dtype.itemsize * 8
    codes, value = _codes(v)

    def halve(_, bounds):
        low, high = bounds  # at least k codes >= low, fewer than k >= high
        middle = low + (high - low) // 2
        enough = jnp.sum(codes >= middle) >= k
        return jnp.where(enough, middle, low), jnp.where(enough, high, middle)

    low = jax.lax.fori_loop(0, bits, halve, (jnp.min(codes), jnp.max(codes) + 1))[0]
    return value(low)


# --------------------------------------------------------------------------------------------
# Active-set Newton steps (squared loss; l1 and elastic net).


def newton(smooth: Smooth, penalty: Penalty, w, grad, lam, worth=True, factor=None, guide=None):
    r"""Newton step of an active-set method (squared loss; ``l1``, ``elastic_net``).

    The active set is the support of ``w`` and the zero features that violate the optimality
    condition at 0 by one of the ``_NEWTON_ENTERING`` largest amounts (``_FACTOR_ENTERING`` with
    a factor: its appends cost less than the steps they save; tied features enter
    together: duplicated columns); on the orthant of the signs of ``w`` (of
    :math:`-\nabla F` for the entering features) the objective restricted to the active set is
    a convex quadratic. The step goes to its minimizer, with every coordinate that leaves its
    orthant set to 0: when the active set and the signs are the solution's, that is the
    solution. An entering feature that the minimizer gives the other sign is left out and the
    system solved once more without it (set to 0, it would leave the others solved with it: on
    a 500 x 5000 path 19 of 199 steps only repaired that; a second solve costs no evaluation).
    Not a descent method: callers keep the step only if it lowers the objective, or
    try the step to the first sign change along the way (:func:`_first_crossing`). The
    system is solved in the smallest static size that holds the active set, or, where the datafit
    has an inverse Hessian (the lasso in Gram form) and the complement of the active
    set is the smaller, on the complement, in the same sizes (one program for each size: the
    compile of a 600 x 300 path 4.1-4.6 -> 3.6-4.1 s), or, where the datafit carries a
    ``factor``, from that factor updated; a larger system, a singular one, or ``worth`` false
    gives no step. ``guide`` (``grad`` by default) chooses the entering features and their
    signs. Under ``vmap`` the systems of a batch are solved one after the other, each
    in its own size (a batched ``lax.switch`` would solve every size for every member). Returns
    the new point, the point at the first sign change and the factor kept for the next step
    (None: none is kept).
    """
    p = w.size
    factor = smooth.factor if factor is None else factor
    support = w != 0
    guide = grad if guide is None else guide
    violation = jnp.where(support, -jnp.inf, penalty.violation(guide, lam))
    most = _NEWTON_ENTERING if smooth.factor_step is None else _FACTOR_ENTERING
    entering = _kth_largest(violation, min(most, p))
    active = support | ((violation > 0) & (violation >= entering))
    signs = jnp.where(support, jnp.sign(w), -jnp.sign(guide))
    penalty_grad, penalty_curvature = penalty.on_orthant(w, signs, lam)
    no_curvature = penalty_curvature is None
    on_complement = bool(smooth.complement_size) and no_curvature
    # larger active sets than half the features solve on their complement (:func:`newton_system`)
    largest = min(smooth.newton_size, p // 2) if on_complement else smooth.newton_size
    # a factor's updates cost O(K^2) per feature: one size (fewer programs to compile)
    sizes = newton_sizes(largest) if smooth.factor_step is None else (largest,)
    curvature = jnp.zeros_like(w) if no_curvature else jnp.broadcast_to(penalty_curvature, w.shape)
    factored_steps = smooth.factor_step is not None

    def step_in(m):
        """The solution ``z`` of the system on ``index[:m]`` (0 elsewhere): ``H_SS z = rhs_S``
        on the active set ``S``, or, on its complement ``T``, ``(H^{-1})_TT z = rhs_T``."""

        def step(active, index, complement, rhs, curvature, data, plan, factor):
            index = index[:m]  # ascending, then padding (p)
            take = lambda v: v.at[index].get(mode="fill", fill_value=0)  # noqa: E731

            def block():
                return smooth.hessian_block(data, index) + jnp.diag(take(curvature))

            def inverse_block():
                return data[1].at[index[:, None], index[None, :]].get(mode="fill", fill_value=0)

            matrix = jax.lax.cond(complement, inverse_block, block) if on_complement else block()
            # padding has 1 on the diagonal; a relative jitter lets the factorization through
            # singular (duplicated) features
            matrix = matrix + jnp.diag(jnp.where(index == p, 1, 0).astype(w.dtype))
            jitter = 10 * jnp.finfo(w.dtype).eps * jnp.trace(matrix)
            z = cholesky_solve(matrix + jitter * jnp.eye(m, dtype=w.dtype), take(rhs))
            return jnp.zeros(p, w.dtype).at[index].set(z, mode="drop"), factor

        return step

    def factored(active, index, complement, rhs, curvature, data, plan, factor):
        return smooth.factor_step(data, active, -rhs, curvature, plan, factor)

    def solve(branch, operands, batched, member, out):
        """Writes the solution and the kept factor of one member of a batch (``member``;
        None: no batch) into ``out``. Its operands are read inside the branch that solves, so
        that the members that take no step copy nothing."""

        def in_size(step):
            def write(out):
                read = jax.tree.map(lambda x, b: x[member] if b else x, operands, batched)
                result = step(*read)
                if member is None:
                    return result
                return jax.tree.map(lambda o, r: o.at[member].set(r), out, result)

            return write

        steps = [factored] if factored_steps else [step_in(m) for m in sizes]
        return jax.lax.switch(branch, [lambda out: out, *map(in_size, steps)], out)

    @jax.custom_batching.custom_vmap
    def solution_of(branch, *operands):
        out = (jnp.zeros(p, w.dtype), operands[-1])
        return solve(branch, operands, jax.tree.map(lambda _: False, operands), None, out)

    @solution_of.def_vmap
    def _(batch_size, batched, branch, *operands):
        batched = jax.tree.unflatten(
            jax.tree.structure((branch, operands)), jax.tree.leaves(batched)
        )
        stacked = lambda x, b: x if b else jnp.broadcast_to(x, (batch_size, *x.shape))  # noqa: E731
        out = (
            jnp.zeros((batch_size, p), w.dtype),
            jax.tree.map(stacked, operands[-1], batched[1][-1]),
        )
        pick_branch = lambda i: branch[i] if batched[0] else branch  # noqa: E731
        member = lambda i, out: solve(pick_branch(i), operands, batched[1], i, out)  # noqa: E731
        out = jax.lax.fori_loop(0, batch_size, member, out)
        return out, jax.tree.map(lambda _: True, out)

    def direction_on(active, factor, worth):
        """The direction on ``active`` and the factor kept (see above). On the complement
        ``T``, with ``u = H^{-1} g``: ``d = H^{-1} z - u`` on ``S``, ``(H^{-1})_TT z = u_T``, as
        :math:`(H^{-1})_{SS}^{-1} = H_{SS} - H_{ST} H_{TT}^{-1} H_{TS}`."""
        count, plan = jnp.sum(active), None
        if factored_steps:
            plan, count = smooth.factor_plan(factor, active, curvature)
        system, complement = newton_system(smooth, count, p, on_complement)
        branch = jnp.searchsorted(jnp.asarray(sizes), system) + 1
        branch = jnp.where(worth & (count > 0) & (system <= sizes[-1]), branch, 0)
        masked = jnp.where(active, grad + penalty_grad, 0)
        index, rhs = None, -masked
        if not factored_steps:  # the system's features in ascending order, then padding (p)
            solved = jnp.where(complement, ~active, active)
            index = first_true(solved, sizes[-1], p)
        if on_complement:
            inverse = smooth.hessian_data[1]
            rhs = maybe(complement, lambda _: inverse @ masked, rhs)
        operands = (active, index, complement, rhs, curvature, smooth.hessian_data, plan, factor)
        z, factor = solution_of(branch, *operands)
        if on_complement:
            z = maybe(complement, lambda z: jnp.where(active, inverse @ z - rhs, 0), z)
        return z, factor

    def kept_in(target):  # the coordinates the target keeps on their orthant
        return (jnp.sign(target) == signs) | (lam == 0)

    def attempt(state):
        """A solve on ``active``; again without the entering features it gives the other
        sign, after the first."""
        active, _, factor, again, passes = state
        # under vmap the body runs for every member while one needs it: ``again`` (false for
        # the others) gives those no solve
        direction, factor = direction_on(active, factor, worth & again)
        target = w + jnp.where(jnp.all(jnp.isfinite(direction)), direction, 0)
        wrong = active & ~support & ~kept_in(target)
        return active & ~wrong, target, factor, jnp.any(wrong) & (passes == 0), passes + 1

    start = (active, w, factor, jnp.ones((), bool), jnp.zeros((), jnp.int32))
    _, target, factor, _, _ = jax.lax.while_loop(lambda state: state[3], attempt, start)
    kept = kept_in(target)
    point = jnp.where(kept, target, 0)
    return point, _first_crossing(w, target, point, kept), factor


def _first_crossing(w, target, point, kept) -> jax.Array:
    r"""The point on the segment from ``w`` to the Newton ``target`` where the first of the
    non-zero coordinates whose sign the target flips (not ``kept``) reaches 0, that one set to
    0 (and the coordinates entering with the wrong sign held at 0); ``point`` where none
    flips. Up to there the objective is the orthant's convex quadratic, decreasing towards
    its minimizer: a descent step (LARS's), where ``point``, every flipped coordinate set to 0
    at once, may raise the objective (near a support of n features, measured on 200 x 1000:
    Newton steps rejected at 20-60 loops a strength)."""
    crossing = (w != 0) & ~kept
    ratio = jnp.where(crossing, w / jnp.where(crossing, w - target, 1), 1)
    first = _first_smallest(ratio)
    partial = jnp.where(kept | crossing, w + ratio[first] * (target - w), 0).at[first].set(0)
    return jnp.where(jnp.any(crossing), partial, point)


def cholesky_solve(matrix, rhs):
    """``matrix^-1 rhs`` by Cholesky (``matrix`` positive definite, its lower triangle read;
    :func:`solve_psd` for a semi-definite one), ``rhs`` a vector or a matrix."""
    lower = jax.lax.linalg.cholesky(matrix, symmetrize_input=False)
    solve = functools.partial(jax.lax.linalg.triangular_solve, lower, left_side=True, lower=True)
    columns = rhs.reshape(rhs.shape[0], -1)
    return solve(solve(columns), transpose_a=True).reshape(rhs.shape)


def empty_factor(size: int, p: int, dtype) -> Factor:
    """A :class:`Factor` for systems of up to ``size`` features of ``p`` that holds none
    (``_APPEND_BLOCK`` more slots: the last features are appended in a block of that many)."""
    slots = size + _APPEND_BLOCK
    zeros = functools.partial(jnp.zeros, dtype=dtype)
    return Factor(jnp.full(slots, p), zeros((slots, slots)), zeros(slots), zeros(slots))


def factor_plan(factor: Factor, active, curvature, *, size: int):
    """The first slot of ``factor`` the next step drops, with every slot after it (see
    :class:`Factor`), and the number of slots it will then hold (at most ``size``)."""
    p, slot = active.size, jnp.arange(factor.order.size)
    held = factor.order < p
    leaving = held & ~active.at[factor.order].get(mode="fill", fill_value=False)
    now = curvature.at[factor.order].get(mode="fill", fill_value=0)
    broken = held & ((factor.curvature != now) | jnp.isnan(factor.pivots))
    singular = jnp.any(held & ~(factor.pivots >= jnp.sqrt(jnp.finfo(now.dtype).eps)))
    count = jnp.sum(active)
    many = (jnp.sum(leaving) > _LEAVING_MAX) | (count + jnp.sum(leaving) > size)
    first_of = lambda mask: jnp.min(jnp.where(mask, slot, slot.size))  # noqa: E731
    first = jnp.minimum(first_of(broken), jnp.where(many | singular, first_of(leaving), slot.size))
    return first, count + jnp.sum(leaving & (slot < first))


def factor_step(rows, a, jitter, active, grad, curvature, first, factor: Factor):
    r"""The Newton direction on ``active`` (gradient ``grad``, 0 elsewhere) from ``factor``
    updated, and the factor. The slots from ``first`` on are dropped (the rows of
    :math:`L^{-1}` before them are those of their features alone), then the active features not
    held are appended. With :math:`H = L L^\top` on the held features and :math:`E` the unit
    vectors of those that left the active set, the direction minimizes :math:`g^\top d +
    d^\top H d / 2` subject to :math:`E^\top d = 0`: :math:`d = -L^{-\top} (I - P) L^{-1}
    g`, :math:`P` the projection on the columns of :math:`L^{-1} E`; NaN where an update
    failed. ``rows (p, n)`` are the design's, ``a`` the sample weights, ``jitter`` added to the
    diagonal lets the factorization through singular (duplicated) features. The features held
    once updated (the ``count`` of :func:`factor_plan`) are at most the factor's size."""
    p, slots = active.size, factor.order.size
    order = jnp.where(jnp.arange(slots) < first, factor.order, p)
    part = _appended(factor._replace(order=order), rows, a, jitter, active, curvature)
    held = part.order < p
    leaving = held & ~active.at[part.order].get(mode="fill", fill_value=False)
    g = grad.at[part.order].get(mode="fill", fill_value=0)

    def projected(y):  # (I - P) y, where a feature leaves (most steps: none)
        out = first_true(leaving, _LEAVING_MAX, slots)
        ys = jnp.where(held[:, None], part.inverse.at[:, out].get(mode="fill", fill_value=0), 0)
        eye = jnp.diag((out == slots).astype(g.dtype))
        return y - ys @ cholesky_solve(ys.T @ ys + eye, ys.T @ y)

    y = maybe(jnp.any(leaving), projected, jnp.where(held, part.inverse @ g, 0))
    d = -(y @ part.inverse)  # L^-T y, without a transposed copy of L^-1 (3x the time)
    d = jnp.where(jnp.any(held & jnp.isnan(part.pivots)), jnp.nan, jnp.where(leaving, 0, d))
    return jnp.zeros(p, grad.dtype).at[part.order].set(d, mode="drop"), part


def _appended(part: Factor, rows, a, jitter, active, curvature) -> Factor:
    r"""``part`` with the active features it does not hold appended, ``_APPEND_BLOCK`` at a
    time: with :math:`l = L^{-1} H_{12}` and :math:`C C^\top = H_{22} - l^\top l`, the new
    rows of :math:`L^{-1}` are :math:`[-C^{-1} l^\top L^{-1}, C^{-1}]`. The products read the
    factor's first slots only, the narrowest of :func:`_prefix_widths` that holds the held ones
    and the new block (early in a path the factor is mostly empty)."""
    p, k, slots = active.size, _APPEND_BLOCK, part.order.size
    entering = active & ~jnp.zeros(p, bool).at[part.order].set(True, mode="drop")
    index = first_true(entering, slots, p)
    start = jnp.sum(part.order < p)
    widths = _prefix_widths(slots)

    def in_prefix(product):
        """``product(width, at, *operands) -> (k, width)`` on the narrowest prefix, padded."""

        def run(at, *operands):
            def branch(width):
                return lambda: jnp.pad(product(width, at, *operands), ((0, 0), (0, slots - width)))

            narrowest = sum(at + k > width for width in widths[:-1])
            return jax.lax.switch(narrowest, [branch(width) for width in widths])

        return run

    @in_prefix
    def left_of(width, at, ax, part: Factor):  # l^T, 0 from ``at`` on (those slots are not read)
        before = jnp.arange(width)[None, :] < at
        held = sparse.take(rows, part.order[:width])
        cross = jnp.where(before, ax @ held.T, 0)
        return jnp.where(before, cross @ part.inverse[:width, :width].T, 0)

    @in_prefix
    def strip_of(width, at, corner, left, part: Factor):
        strip = -(corner @ left[:, :width]) @ part.inverse[:width, :width]
        return jax.lax.dynamic_update_slice(strip, corner, (0, at))

    def chunk(c, part: Factor) -> Factor:
        new = jax.lax.dynamic_slice(index, (c * k,), (k,))
        at = start + c * k
        x = sparse.take(rows, new)
        ax = x * a[None, :]
        left = left_of(at, ax, part)
        now = curvature.at[new].get(mode="fill", fill_value=0)
        block = ax @ x.T + jnp.diag(now)
        lower = jax.lax.linalg.cholesky(
            block + jnp.diag(jnp.where(new < p, jitter, 1)) - left @ left.T
        )
        corner = jax.lax.linalg.triangular_solve(lower, jnp.eye(k, dtype=a.dtype), left_side=True,
                                                 lower=True)  # fmt: skip
        strip = strip_of(at, corner, left, part)
        strip = jnp.where(jnp.isfinite(strip), strip, 0)  # (a failed update: see ``pivots``)
        excess = (jnp.diagonal(lower) ** 2 - jitter) / jnp.maximum(jnp.diagonal(block), jitter)
        pivots = jnp.where(new < p, excess, 1)
        return Factor(
            jax.lax.dynamic_update_slice(part.order, new, (at,)),
            jax.lax.dynamic_update_slice(part.inverse, strip, (at, 0)),
            jax.lax.dynamic_update_slice(part.curvature, now, (at,)),
            jax.lax.dynamic_update_slice(part.pivots, pivots, (at,)),
        )

    return jax.lax.fori_loop(0, (jnp.sum(entering) + k - 1) // k, chunk, part)


def _prefix_widths(slots: int) -> tuple[int, ...]:
    """The static widths of a factor's products on its first slots: a quarter, a half, all."""
    return tuple(sorted({max(_APPEND_BLOCK, -(-slots * share // 4)) for share in (1, 2, 4)}))


def newton_sizes(largest: int) -> tuple[int, ...]:
    """The static sizes of Newton systems up to ``largest`` (0: none), each a branch of
    :func:`newton`."""
    return tuple(m for m in _NEWTON_BUCKETS if m < largest) + (largest,) if largest else ()


def newton_system(smooth: Smooth, count, p: int, complement: bool = True):
    """The size of the Newton system on ``count`` active features of ``p``, and whether it is
    solved on the complement (``complement``: if the penalty allows it)."""
    if not (smooth.complement_size and complement):
        return count, jnp.zeros((), bool)
    outside = (p - count < count) & (p - count <= smooth.complement_size)
    return jnp.where(outside, p - count, count), outside


def newton_cheap(smooth: Smooth, w) -> jax.Array:
    """Whether a Newton step from ``w`` costs at most a few products with a ``p x p`` matrix
    (an iteration of FISTA on the Gram form, an epoch of coordinate descent on it): a step
    costs ~m^3 / 3 for m active features, and a system of the smallest size always passes. On
    ``X`` every step counts as cheap: it updates a :class:`Factor`, :math:`O(n K)` a feature
    appended (the cubic bound refused supports above 159 of 1000 features: 3384 iterations
    against 2446 on a 200 x 1000 path down to 1e-3)."""
    if smooth.factor_step is not None:
        return jnp.ones((), bool)
    p = w.size
    system, outside = newton_system(smooth, jnp.sum(w != 0) + _NEWTON_ENTERING, p)
    bound = jnp.where(outside, _COMPLEMENT_CHEAP, _NEWTON_CHEAP) * float(p) ** 2
    smallest = system <= _NEWTON_BUCKETS[0]
    return smallest | (system.astype(w.dtype) ** 3 <= bound)  # in floats: int32 would overflow


def has_newton(smooth: Smooth, penalty: Penalty) -> bool:
    hessian = smooth.hessian_block is not None or smooth.factor_step is not None
    return hessian and penalty.on_orthant is not None


# --------------------------------------------------------------------------------------------
# FISTA.


class _Fista(NamedTuple):
    w: jax.Array
    b: jax.Array
    w_prev: jax.Array
    b_prev: jax.Array
    grad: jax.Array  # at w (quadratic datafits only)
    grad_prev: jax.Array
    objective: jax.Array  # at w (quadratic datafits only)
    momentum: jax.Array
    scale: jax.Array  # the curvature's multiple of ``lipschitz`` (backtracking)
    n_iter: jax.Array
    gap: jax.Array
    b_best: jax.Array  # the intercept the gap was taken at (see Smooth.best_intercept)
    residual: jax.Array
    budget: jax.Array  # iterations before the next Newton step is tried


def fista(smooth: Smooth, penalty: Penalty, lam, w, b, target: Target, max_iter) -> Solution:
    """FISTA with gradient restart from ``(w, b)`` until it reaches ``target``.

    For a quadratic datafit the gradient is affine, so the gradient at the extrapolated point
    is the same combination of the last two gradients: each iteration evaluates the datafit
    once, at its new iterate, and checks the gap there. When the penalty has Newton steps
    (:func:`newton`), each block of ``_CHECK_EVERY`` iterations is preceded by a Newton step,
    and replaced by it when it lowers the objective, where the step is cheap (a small system:
    a small support, or a large one solved on its complement) or the iterations are slow (more
    than ``_NEWTON_AFTER`` at one strength: an ill-conditioned problem). Otherwise the gap is
    checked every ``_CHECK_EVERY`` iterations. With ``smooth.backtrack`` each step doubles the
    curvature until the datafit lies below its quadratic upper model (Beck and Teboulle).
    """
    quadratic = smooth.quadratic

    def moved(w_ex, b_ex, grad_w, grad_b, scale):
        lipschitz, intercept = scale * smooth.lipschitz, scale * smooth.intercept_lipschitz
        step = 1 / lipschitz
        return penalty.prox(w_ex - step * grad_w, lam, step), b_ex - grad_b / intercept

    def backtracked(w_ex, b_ex, evaluation, scale):
        """The step at the smallest curvature ``scale * 2^k`` under which the datafit lies
        below its quadratic model at the new point."""

        def too_long(state):
            scale, (w_new, b_new), count = state
            dw, db = w_new - w_ex, b_new - b_ex
            model = (
                evaluation.loss
                + jnp.vdot(evaluation.grad_w, dw)
                + jnp.vdot(evaluation.grad_b, db)
                + scale / 2 * (smooth.lipschitz * jnp.vdot(dw, dw))
                + scale / 2 * (smooth.intercept_lipschitz * jnp.vdot(db, db))
            )
            return ~(smooth.value(w_new, b_new) <= model) & (count < _BACKTRACK)

        def double(state):
            scale = 2 * state[0]
            return (
                scale,
                moved(w_ex, b_ex, evaluation.grad_w, evaluation.grad_b, scale),
                state[2] + 1,
            )

        start = (scale, moved(w_ex, b_ex, evaluation.grad_w, evaluation.grad_b, scale), 0)
        scale, (w_new, b_new), _ = jax.lax.while_loop(too_long, double, start)
        return w_new, b_new, scale

    def fista_step(it: _Fista) -> _Fista:
        momentum = (1 + jnp.sqrt(1 + 4 * it.momentum**2)) / 2
        beta = (it.momentum - 1) / momentum
        w_ex = it.w + beta * (it.w - it.w_prev)
        b_ex = it.b + beta * (it.b - it.b_prev)
        scale = it.scale
        if quadratic:  # the intercept is fixed (centred data): its gradient is 0
            grad = it.grad + beta * (it.grad - it.grad_prev)
            w_new, b_new = moved(w_ex, b_ex, grad, jnp.zeros_like(b_ex), scale)
        elif smooth.backtrack:
            w_new, b_new, scale = backtracked(w_ex, b_ex, smooth.evaluate(w_ex, b_ex), scale)
        else:
            evaluation = smooth.evaluate(w_ex, b_ex)
            w_new, b_new = moved(w_ex, b_ex, evaluation.grad_w, evaluation.grad_b, scale)
        # gradient restart: the gradient mapping, in each block's own step, opposes the move
        restart = (
            smooth.lipschitz * jnp.vdot(w_ex - w_new, w_new - it.w)
            + smooth.intercept_lipschitz * jnp.vdot(b_ex - b_new, b_new - it.b)
            > 0
        )
        momentum = jnp.where(restart, 1, momentum).astype(it.momentum.dtype)
        return it._replace(w=w_new, b=b_new, w_prev=it.w, b_prev=it.b, grad_prev=it.grad,
                           momentum=momentum, scale=scale, n_iter=it.n_iter + 1)  # fmt: skip

    def at(it: _Fista) -> _Fista:
        """``it`` with its gradient, objective and gap at ``(it.w, it.b)`` (the gap and the
        objective at the best intercept for ``w``, where the datafit says which: the iterations
        go on from ``b``)."""
        best = it.b if smooth.best_intercept is None else smooth.best_intercept(it.w, it.b)
        evaluation = smooth.evaluate(it.w, best)
        objective = evaluation.loss + penalty.value(it.w, lam)
        curvature = it.scale * smooth.lipschitz
        intercept = it.scale * smooth.intercept_lipschitz
        gap, residual = gap_at(evaluation, curvature, intercept, penalty, it.w, lam,
                               smooth.feasible)  # fmt: skip
        return it._replace(grad=evaluation.grad_w, objective=objective, gap=gap, b_best=best,
                           residual=residual)  # fmt: skip

    def newton_step(it: _Fista, worth) -> _Fista:
        """A Newton step from ``it`` if it lowers the objective (momentum restarted: the next
        extrapolation is 0, whatever ``grad_prev``), else ``it``."""
        candidate, _, _ = newton(smooth, penalty, it.w, it.grad, lam, worth)
        evaluation = smooth.evaluate(candidate, it.b)
        lower = evaluation.loss + penalty.value(candidate, lam) < it.objective
        stepped = it._replace(w=candidate, w_prev=candidate, momentum=jnp.ones_like(it.momentum),
                              n_iter=it.n_iter + 1)  # fmt: skip
        return pick(lower, stepped, it)

    def step(it: _Fista) -> _Fista:
        """A FISTA iteration (a block of them for a datafit that is not quadratic), or where
        Newton steps are due a Newton step that lowers the objective."""
        if not quadratic:
            return jax.lax.fori_loop(0, _CHECK_EVERY, lambda _, it: fista_step(it), it)
        if not has_newton(smooth, penalty):
            return fista_step(it)
        due = it.budget <= 0
        worth = due & ((it.n_iter >= _NEWTON_AFTER) | newton_cheap(smooth, it.w))
        tried = maybe(worth, lambda it: newton_step(it, worth), it)
        stepped = tried.n_iter > it.n_iter
        budget = jnp.where(due & ~stepped, _CHECK_EVERY, tried.budget) - 1
        return pick(stepped, tried, fista_step(tried._replace(budget=budget)))

    def not_done(it: _Fista):
        return short_of(it.gap, it.residual, target) & (it.n_iter < max_iter)

    one, zero = jnp.ones((), w.dtype), jnp.zeros((), jnp.int32)
    # grad, grad_prev, objective, gap, b_best, residual: placeholders (the loop's first pass
    # scores (w, b); momentum 1 makes the first extrapolation ignore grad_prev)
    start = _Fista(w, b, w, b, w, w, one, one, one, zero, one, b, one, zero)
    it = scored_loop(not_done, step, at, start)
    return Solution(it.w, it.b_best, it.gap, it.residual, it.n_iter)


# --------------------------------------------------------------------------------------------
# Coordinate descent (squared loss, one output).


def _anderson(iterates: jax.Array) -> jax.Array:
    """Anderson extrapolation of a sequence ``(m + 1, k)``: the weights ``(m,)`` of the affine
    combination of its last ``m`` members that minimizes the norm of the combined differences."""
    diffs = jnp.diff(iterates, axis=0)
    # its upper triangle, one fused reduction: 23 us at 10^4 coordinates, where ``diffs @
    # diffs.T`` (a library call) took 140 us and the full square reduced 49 us
    rows, columns = np.triu_indices(len(diffs))
    pair = np.zeros((len(diffs),) * 2, int)  # (i, j) -> the position of {i, j} among the pairs
    pair[rows, columns] = pair[columns, rows] = np.arange(rows.size)
    gram = jnp.sum(diffs[rows] * diffs[columns], axis=1)[pair]
    ridge = 1e-10 * jnp.trace(gram) + jnp.finfo(gram.dtype).tiny
    gram = gram + ridge * jnp.eye(len(gram), dtype=gram.dtype)
    weights = jnp.linalg.solve(gram, jnp.ones(len(gram), gram.dtype))
    return weights / jnp.sum(weights)


def _extrapolated(iterates: jax.Array, penalty: Penalty) -> jax.Array:
    """Anderson's extrapolation of ``iterates (m + 1, d)``, projected onto the penalty's domain
    (its prox at strength 0: the bounds; an affine combination may leave them) and kept on the
    signs of the last iterate (a coordinate it zeroed stays zero, one it would flip is zero); a
    coordinate that did not move stays exactly (at a bound: the combination's rounding would
    move it off)."""
    w = _anderson(iterates) @ iterates[1:]
    w = jnp.where(jnp.all(iterates == iterates[-1:], axis=0), iterates[-1], w)
    w = jnp.where(jnp.sign(w) == jnp.sign(iterates[-1]), w, 0)
    return penalty.prox(w, jnp.zeros_like(penalty.factor), jnp.ones((), w.dtype))


def _steps(curvature, penalty: Penalty):
    """Coordinate curvatures as steps: at least twice the penalty's concavity (see
    :attr:`Penalty.concavity`), 1 where a column is 0 (its coordinate never moves)."""
    return jnp.where(curvature > 0, jnp.maximum(curvature, 2 * penalty.concavity), 1)


def _coordinate_step(penalty: Penalty, lam, c, now, curvature, gradient) -> jax.Array:
    """Coordinate ``c`` to the minimizer along it of a quadratic (the squared loss in coordinate
    descent, proximal Newton's model): from ``now``, where the quadratic has ``curvature`` and
    ``gradient`` along it, the penalty's prox with the curvature as step (at least twice the
    penalty's concavity); a zero column's coordinate stays."""
    step = 1 / _steps(curvature, penalty)
    new = penalty.coordinate_prox(now - step * gradient, lam[c], step, c)
    return jnp.where(curvature > 0, new, now)


class Warm(NamedTuple):
    """What coordinate descent carries from one strength to the next, at the solution: the
    datafit's evaluation and the last Newton factor there, the strengths ``lam`` it solved
    for (inf: none yet), and ``slope``, the gradient's derivative in them along the path, a
    difference quotient over the last two solutions (0 where unknown)."""

    evaluation: Evaluation
    factor: Factor | None
    lam: jax.Array
    slope: jax.Array


def first_warm(evaluation: Evaluation, factor: Factor | None) -> Warm:
    """The :class:`Warm` of a path's start, before any solution (no strengths, no slope)."""
    lam = jnp.full_like(evaluation.grad_w, jnp.inf)
    return Warm(evaluation, factor, lam, jnp.zeros_like(lam))


def _strength_change(warm: Warm, lam) -> tuple[jax.Array, jax.Array]:
    """Where ``warm`` holds a solution at other strengths than ``lam``, and the change of
    strength there (1 elsewhere)."""
    known = jnp.isfinite(warm.lam) & (lam != warm.lam)
    return known, jnp.where(known, lam - warm.lam, 1)


def predicted_gradient(warm: Warm, lam) -> jax.Array:
    r"""The datafit's gradient at the solution for strengths ``lam`` predicted from ``warm``'s:
    :math:`g + (\lambda' - \lambda) \partial g / \partial \lambda`, exact for the lasso
    where no feature entered or left between the last two solutions (its path is piecewise
    linear)."""
    known, change = _strength_change(warm, lam)
    return warm.evaluation.grad_w + jnp.where(known, change * warm.slope, 0)


def warm_after(warm: Warm, evaluation: Evaluation, factor: Factor | None, lam) -> Warm:
    """The :class:`Warm` at the solution for ``lam`` (its ``evaluation``), from the last
    solution's ``warm``."""
    known, change = _strength_change(warm, lam)
    slope = jnp.where(known, (evaluation.grad_w - warm.evaluation.grad_w) / change, 0)
    return Warm(evaluation, factor, lam, slope)


class _Sweep(NamedTuple):
    w: jax.Array
    evaluation: Evaluation
    objective: jax.Array
    gap: jax.Array
    residual: jax.Array
    n_iter: jax.Array
    factor: Factor | None
    settled: jax.Array  # the last block of epochs changed no sign (at first False)
    by_newton: jax.Array  # ``w`` is a Newton step's (else the start's, or epochs')
    polished: jax.Array  # the last Newton step from a point that met the target was taken


class Sweeps(NamedTuple):
    r"""How coordinate descent keeps what its steps read: ``carried(evaluation, w)``, the
    vector an epoch starts from, and ``epoch(w, carried, order, size, new_value) -> (w,
    carried)``, coordinates ``order[:size]`` each once to ``new_value(j, w_j, -g_j)`` (``g``
    the loss's gradient): :func:`jreg.glm.sparse.coordinate_sweep` on the residual (X form) or
    :func:`gram_sweep` on the gradient (Gram form)."""

    carried: Callable
    epoch: Callable


def gram_sweep(gram, w, g, order, size, new_value):
    r"""One epoch of coordinate descent on the Gram form: for ``t < size``, coordinate ``j =
    order[t]`` moves to ``new_value(j, w_j, -g_j)`` and the gradient :math:`g = G w - c`
    follows, :math:`g \leftarrow g + (w_j' - w_j) G_j` (as scikit-learn's precomputed mode and
    glmnet's covariance updates): :math:`O(p)` a step, against :math:`O(n)` on ``X``. Values
    are read as the epoch found them and written to a buffer never read (see
    :func:`jreg.glm.sparse.coordinate_sweep`). Returns ``(w, g)``."""

    def step(t, state):
        moved, g = state
        j = order[t]
        new = new_value(j, w[j], -g[j])
        return moved.at[t].set(new), g + (new - w[j]) * gram[j]

    moved, g = jax.lax.fori_loop(0, size, step, (w[order], g))
    return w.at[order].set(moved), g


def coordinate_descent(smooth: Smooth, sweeps: Sweeps, curvature, penalty: Penalty, lam, w, b,
                       target, max_iter, warm: Warm):  # fmt: skip
    r"""Coordinate descent on working sets with Anderson acceleration (squared loss, one output).

    Each coordinate moves to the exact minimizer along it: the penalty's prox with scaling
    :math:`1 / h_j`, :math:`h_j = \sum_i a_i (x_{ij} - \bar x_j)^2` (``curvature``), the
    residual or the gradient updated in place (``sweeps``). Each block of epochs visits only
    the working set, the non-zero features and the violators of the optimality condition at
    zero (:func:`working_set`), in a dynamic loop so that the shapes stay static; then the
    iterates are extrapolated (Anderson, kept if it lowers the objective) and the full gap is
    checked. For ``l1`` and ``elastic_net`` a Newton step on the active set (:func:`newton`)
    comes first where it is cheap (:func:`newton_cheap`) or the last block changed no sign
    (measured on a 1000 x 1000 path: a costly step tried first at each strength, or after a
    block that moved the support, took 2x the time), and the epochs run only when it does not
    lower the objective: the epochs find the support, the Newton steps solve on it; where the
    epochs met the target, one last cheap Newton step is taken, and the loop goes on from it
    if it misses the target (a gap bounds the error in ``w`` only by its square root). The
    first Newton step at a strength lets in the features that violate most by the gradient
    predicted there from the last solution (:func:`predicted_gradient`). Against ``g`` itself
    (the last solution's violators, often features its support explains once it moves) the
    lasso matrix of ``benchmarks/paths.py`` took 0.91x the time (p > n 0.85x, 300 x 10000
    0.67-0.78x), a 200 x 1000 cross-validation 0.5x (766 -> 401 steps).
    ``warm``: see :class:`Warm`. ``n_iter`` counts epochs and Newton steps.
    """
    curvature = _steps(curvature, penalty)

    def new_value(j, w_j, correlation):
        return _coordinate_step(penalty, lam, j, w_j, curvature[j], -correlation)

    def valued(w):
        """The datafit's evaluation at ``w`` and the objective there."""
        evaluation = smooth.evaluate(w, b)
        return evaluation, evaluation.loss + penalty.value(w, lam)

    def moved(sweep: _Sweep, w, n_iter) -> _Sweep:
        """``sweep`` at ``w``: the datafit's evaluation and the objective there (not the gap)."""
        evaluation, objective = valued(w)
        return sweep._replace(w=w, evaluation=evaluation, objective=objective, n_iter=n_iter)

    def scored(sweep: _Sweep) -> _Sweep:
        gap, residual = gap_at(sweep.evaluation, curvature, smooth.intercept_lipschitz, penalty,
                               sweep.w, lam, smooth.feasible)  # fmt: skip
        return sweep._replace(gap=gap, residual=residual)

    def newton_point(sweep: _Sweep) -> _Sweep:
        """The Newton step from ``sweep``, or where it does not lower the objective (and
        zeroed coordinates the direction flips), the step to the first of them."""
        grad = sweep.evaluation.grad_w
        guide = jnp.where(sweep.n_iter == 0, predicted, grad)  # at the start: predicted
        candidate, first, factor = newton(
            smooth, penalty, sweep.w, grad, lam, factor=sweep.factor, guide=guide
        )
        tried = moved(sweep, candidate, sweep.n_iter + 1)
        retry = (tried.objective >= sweep.objective) & jnp.any(first != candidate)
        at_first = lambda _: (first, *valued(first))  # noqa: E731
        carried = (tried.w, tried.evaluation, tried.objective)  # not the factor: a copy
        w, evaluation, objective = maybe(retry, at_first, carried)
        return tried._replace(w=w, evaluation=evaluation, objective=objective, factor=factor,
                              by_newton=True)  # fmt: skip

    def polish_due(sweep: _Sweep) -> jax.Array:
        """Whether to take a last Newton step from the epochs' point that met ``target``, even
        where the objective cannot tell the two apart (the step solves on the support
        exactly): once, where cheap."""
        met = ~short_of(sweep.gap, sweep.residual, target) & (sweep.n_iter < max_iter)
        return met & ~sweep.by_newton & ~sweep.polished & newton_cheap(smooth, sweep.w)

    def newton_or_epochs(sweep: _Sweep) -> _Sweep:
        polish = polish_due(sweep)
        tried = maybe(polish | sweep.settled | newton_cheap(smooth, sweep.w), newton_point, sweep)
        kept = pick(polish | (tried.objective < sweep.objective), tried, sweep)
        kept = kept._replace(factor=tried.factor, polished=sweep.polished | polish)
        return maybe(~polish & (kept.objective >= sweep.objective), block, kept)

    def block(sweep: _Sweep) -> _Sweep:
        violation = penalty.violation(sweep.evaluation.grad_w, lam)
        order, size = working_set(sweep.w != 0, violation)

        def epoch(state, _):
            state = sweeps.epoch(*state, order, size, new_value)
            return state, state[0]

        carried = sweeps.carried(sweep.evaluation, sweep.w)
        (w, _), iterates = jax.lax.scan(epoch, (sweep.w, carried), length=_ANDERSON)
        extrapolated = _extrapolated(jnp.concatenate([sweep.w[None], iterates]), penalty)
        n_iter = sweep.n_iter + _ANDERSON
        if smooth.value is None:  # a value costs an evaluation (Gram form): evaluate both
            plain = moved(sweep, w, n_iter)
            accelerated = moved(sweep, extrapolated, n_iter)
            kept = pick(accelerated.objective < plain.objective, accelerated, plain)
        else:  # (X form) the values choose; the point chosen alone is evaluated
            objective = lambda v: smooth.value(v, b) + penalty.value(v, lam)  # noqa: E731
            better = objective(extrapolated) < objective(w)
            kept = moved(sweep, jnp.where(better, extrapolated, w), n_iter)
        settled = jnp.all(jnp.sign(kept.w) == jnp.sign(sweep.w))
        return kept._replace(settled=settled, by_newton=jnp.zeros((), bool))

    def not_done(sweep: _Sweep):
        short = short_of(sweep.gap, sweep.residual, target) & (sweep.n_iter < max_iter)
        return short | polish_due(sweep) if has_newton(smooth, penalty) else short

    step = newton_or_epochs if has_newton(smooth, penalty) else block
    predicted = predicted_gradient(warm, lam)
    objective = warm.evaluation.loss + penalty.value(w, lam)
    unknown = jnp.full((), jnp.inf, objective.dtype)  # the gap: scored in the loop's first pass
    start = _Sweep(w, warm.evaluation, objective, unknown, unknown, jnp.zeros((), jnp.int32),
                   warm.factor, *jnp.zeros((3,), bool))  # fmt: skip
    sweep = scored_loop(not_done, step, scored, start)
    warm = warm_after(warm, sweep.evaluation, sweep.factor, lam)
    return Solution(sweep.w, b, sweep.gap, sweep.residual, sweep.n_iter, warm)


# --------------------------------------------------------------------------------------------
# Proximal Newton.


def solve_psd(matrix, rhs, shift_invariant: bool):
    """``matrix^+ rhs`` for a small symmetric PSD ``matrix``: eigenvalues below ``m eps`` times
    the largest are dropped. With ``shift_invariant`` (the multinomial's intercept block,
    singular along the vector of ones, where rounding leaves an eigenvalue of either sign and
    any size near 0), the system is solved on the complement of the ones: their direction
    given a known curvature, the right side and the solution centred (else the intercepts
    drift along it and a rounded curvature there makes the Newton model unbounded)."""
    if shift_invariant:
        m = rhs.shape[0]
        matrix = matrix + jnp.trace(matrix) / m**2 * jnp.ones((m, m), matrix.dtype)
        rhs = rhs - jnp.mean(rhs)
    values, vectors = jnp.linalg.eigh(matrix)
    cutoff = matrix.shape[0] * jnp.finfo(matrix.dtype).eps * jnp.max(values)
    inverse = jnp.where(values > cutoff, 1 / jnp.where(values > cutoff, values, 1), 0)
    solution = vectors @ (inverse * (vectors.T @ rhs))
    return solution - jnp.mean(solution) if shift_invariant else solution


def best_shift(datafit, z, y, a, n_steps: int) -> jax.Array:
    r"""The intercept change ``db (m,)`` that minimizes :math:`\sum_i a_i f(z_i + db, y_i)`, by
    ``n_steps`` Newton steps on the ``(m, m)`` system from 0, each halved until the objective
    does not rise by more than its rounding (the loss's curvature may be far from constant:
    Huber's, Poisson's; near the best shift a step changes the objective below its rounding).

    A duality gap needs a dual point :math:`\theta = \kappa f'(z)` with
    :math:`\sum_i a_i \theta_i = 0` (the intercept is unpenalized); off it, primal minus dual is
    off by :math:`b^\top \nabla_b F`, first order, of either sign. The solvers evaluate the gap
    at the intercept that is best for the current ``w``, where that sum is 0 to rounding."""

    def value(db):
        return a @ datafit.loss(z + db[None, :], y)

    def step(_, db):
        shifted = z + db[None, :]
        gradient = a @ datafit.gradient(shifted, y)
        dd, q = datafit.curvature(shifted, y)
        block = jnp.diag(a @ dd) - (0 if q is None else q.T @ (a[:, None] * q))
        direction = solve_psd(block, -gradient, datafit.shift_invariant)
        now = value(db)
        rounding = _UNMEASURABLE * jnp.finfo(now.dtype).eps * jnp.abs(now)

        def rejected(search):
            t, count = search
            return ~(value(db + t * direction) <= now + rounding) & (count < 60)

        t = jax.lax.while_loop(rejected, lambda s: (s[0] / 2, s[1] + 1), (1.0, 0))[0]
        return jnp.where(jnp.isfinite(t * direction), db + t * direction, db)

    return jax.lax.fori_loop(0, n_steps, step, jnp.zeros(y.shape[1], y.dtype))


class Design(NamedTuple):
    """The data of a generic datafit: ``z = rows^T W + b``, ``W = w.reshape(p, m)``."""

    rows: jax.Array  # (p, n) the (centred) features, transposed
    y: jax.Array  # (n, m) prepared targets
    a: jax.Array  # (n,) sample weights, summing to one
    support_size: int  # the largest support whose product reads only its rows (static)


def linear(design: Design, w, b) -> jax.Array:
    """The linear predictor ``(n, m)``."""
    p = design.rows.shape[0]
    return support_product(w.reshape(p, -1), design.rows, design.support_size).T + b[None, :]


class _Model(NamedTuple):
    """Coordinate descent on a quadratic model: the candidate ``w`` and ``b``, the change of the
    linear predictor ``dz = X (w - w0) + (b - b0)`` and, for a Hessian with a rank-one part,
    ``s_i = q_i . dz_i``."""

    w: jax.Array
    b: jax.Array
    dz: jax.Array
    s: jax.Array


class _GramModel(NamedTuple):
    """Coordinate descent on a quadratic model in the Gram form: the candidate ``w`` and ``b``
    and the model's gradient in the gathered coordinates ``g`` (exact in those the Gram matrix
    was formed for, the working set among them) and in the intercept ``g_b``."""

    w: jax.Array
    b: jax.Array
    g: jax.Array
    g_b: jax.Array


class _Form(NamedTuple):
    r"""Proximal Newton's quadratic model in one representation (:class:`_Model` on ``X``,
    :class:`_GramModel` on the working set's weighted Gram matrix): ``start``, the model at the
    current point; ``epoch(model) -> (model, residual)``, one epoch of coordinate descent on the
    working set, then the intercept's step; ``at(w, b)``, the model at a point, its intercept
    refitted (where there is one); ``quadratic(model)``, :math:`\tfrac12 dz^\top H dz`;
    ``dz(model)``, the step in ``z``, ``(n, m)``."""

    start: NamedTuple
    epoch: Callable
    at: Callable
    quadratic: Callable
    dz: Callable


class _Inner(NamedTuple):
    model: NamedTuple
    value: jax.Array  # the model's value minus the objective's at w0
    residual: jax.Array  # the largest coordinate step in gradient units in the last epoch
    first: jax.Array  # the same in the first epoch
    epochs: jax.Array


def _minimize_model(form: _Form, first_order: Callable, penalty: Penalty):
    """Coordinate descent on proximal Newton's model plus the penalty, ``first_order(model)``
    its value less the quadratic term: blocks of ``_ANDERSON`` epochs, then Anderson's
    extrapolation of their ``w`` if it is lower (the intercept re-fitted to it; extrapolating
    the rest too would amplify its rounding by the weights, large once the epochs have
    converged), until the largest step is a tenth of the first epoch's or after
    ``_INNER_EPOCHS``. Returns the model, its value and the epochs."""

    def value(model):
        return first_order(model) + form.quadratic(model)

    def epoch(model, _):
        model, residual = form.epoch(model)
        return model, (model, residual)

    def block(inner: _Inner) -> _Inner:
        model, (iterates, residuals) = jax.lax.scan(epoch, inner.model, length=_ANDERSON)
        w = _extrapolated(jnp.concatenate([inner.model.w[None], iterates.w]), penalty)
        extrapolated = form.at(w, model.b)
        plain_value, extrapolated_value = value(model), value(extrapolated)
        better = extrapolated_value < plain_value
        return _Inner(
            model=pick(better, extrapolated, model),
            value=jnp.minimum(plain_value, extrapolated_value),
            residual=residuals[-1],
            first=jnp.where(inner.epochs == 0, residuals[0], inner.first),
            epochs=inner.epochs + _ANDERSON,
        )

    def short(inner: _Inner):
        solved = (inner.epochs > 0) & (inner.residual <= 0.1 * inner.first)
        return ~solved & (inner.epochs < _INNER_EPOCHS)

    zero = jnp.zeros((), form.start.b.dtype)
    inner = jax.lax.while_loop(short, block, _Inner(form.start, zero, zero, zero, 0))
    return inner.model, inner.value, inner.epochs


def sample_blocks(n: int) -> tuple[int, int]:
    """``(blocks, size)``: ``n`` samples as ``blocks`` of ``size``, :data:`SAMPLE_BLOCK`
    beyond ``4 SAMPLE_BLOCK`` samples on CPU (else one block: a loop costs 0.2-0.3 s of a
    logistic path's compilation and buys nothing at 5000 x 200; on an accelerator memory is not
    what binds and each block would be launches of its own), block ``k`` from
    :func:`block_start`; the last may overlap the one before (it ends at ``n``)."""
    blocked = n > 4 * SAMPLE_BLOCK and jax.default_backend() == "cpu"
    size = SAMPLE_BLOCK if blocked else n
    return -(-n // size), size


def block_start(k, n: int):
    """The first sample of block ``k`` of :func:`sample_blocks`."""
    size = sample_blocks(n)[1]
    return jnp.minimum(k * size, n - size)


def sum_over_samples(term: Callable, n: int):
    r""":math:`\sum_B` ``term(start, size, counted)`` (a pytree of arrays) over the blocks of
    :func:`sample_blocks`, in a loop: a program holds one block's temporaries, never an array
    of ``n`` rows (20000 x 300: 50 MB of fresh buffers a call, 13,000 page faults, and
    XLA:CPU's products on them slower), and traces ``term`` once. ``counted (size,)`` marks the
    samples an earlier block counted (the last block's overlap), which ``term`` leaves out."""
    blocks, size = sample_blocks(n)

    def add(k, sums):
        start = block_start(k, n)
        counted = start + jnp.arange(size) < k * size
        return jax.tree.map(jnp.add, sums, term(start, size, counted))

    zeros = jax.eval_shape(lambda: term(0, size, jnp.zeros(size, bool)))
    return jax.lax.fori_loop(0, blocks, add, jax.tree.map(jnp.zeros_like, zeros))


def symmetric_product(columns: jax.Array, other: jax.Array | None = None, **options):
    r"""``(G, P)``: :math:`G = Z^\top Z` for ``columns`` :math:`Z` ``(s, k)`` and :math:`P =
    Z^\top V` for ``other`` :math:`V` ``(s, m)`` (``None`` without). On CPU, from :math:`k \geq`
    :data:`_HALVED_PRODUCT` columns on, by halves :math:`Z = (L\ R)`: :math:`G` as
    :math:`\begin{pmatrix} L^\top L & L^\top R \\ R^\top L & R^\top R \end{pmatrix}`, three
    products, three quarters of the arithmetic (XLA:CPU has no symmetric rank-k update; the
    squared loss's centred products, interleaved in one process: 20000 x 300 64 -> 56 ms,
    2000 x 500 17 -> 14 ms), and :math:`P` by halves too (so that XLA fuses the halves into
    their producer: no copy of :math:`Z`).
    ``options``: ``jnp.tensordot``'s."""
    k = columns.shape[1]
    product = functools.partial(jnp.tensordot, axes=(0, 0), **options)
    if k < _HALVED_PRODUCT or jax.default_backend() != "cpu":
        return product(columns, columns), None if other is None else product(columns, other)
    left, right = columns[:, : k // 2], columns[:, k // 2 :]
    corner = product(left, right)
    gram = jnp.block([[product(left, left), corner], [corner.T, product(right, right)]])
    if other is None:
        return gram, None
    return gram, jnp.concatenate([product(left, other), product(right, other)])


def _model_gram(rows, index, ad) -> tuple[jax.Array, jax.Array]:
    r"""The model's Hessian on the rows ``index`` of ``rows (p, n)``, :math:`G = x
    \operatorname{diag}(a d) x^\top` with :math:`x` = ``rows[index]``, and :math:`u = x (a d)`,
    by blocks of samples (:func:`sum_over_samples`: no ``x`` nor its float32 copy written out;
    a 100000 x 200 logistic path 2.96 -> 2.51 s). Each
    block's product is in float32 (on CPU 55-67% of float64's time): proximal Newton's model
    needs the Hessian only roughly (its gradient, the datafit's, stays exact, so the outer loop
    meets the same duality gap; a relative error of ~1e-7 in the Hessian slows its convergence
    by as little). A block's rows are scaled to unit norm first, so that float32 neither
    overflows nor flushes them to 0 (its error is then below float32's rounding of its
    Cauchy-Schwarz bound, and so the sum's of :math:`\sqrt{G_{ii} G_{jj}}`), and the diagonal
    is kept exact."""

    def block(start, size, counted):
        x = jax.lax.dynamic_slice_in_dim(rows, start, size, axis=1)[index]  # (width, size)
        weights = jnp.where(counted, 0, jax.lax.dynamic_slice_in_dim(ad, start, size))
        scaled = x * jnp.sqrt(jnp.maximum(weights, 0))[None, :]
        squares = jnp.sum(scaled**2, axis=1)
        norms = jnp.sqrt(squares)
        unit = (scaled / jnp.where(norms > 0, norms, 1)[:, None]).astype(jnp.float32)
        cosines, _ = symmetric_product(unit.T, precision="highest")  # no TF32 on GPUs
        return cosines.astype(x.dtype) * (norms[:, None] * norms[None, :]), squares, x @ weights

    gram, squares, u = sum_over_samples(block, rows.shape[1])
    gram = (gram + gram.T) / 2  # exactly symmetric
    return gram.at[jnp.diag_indices(index.shape[0])].set(squares), u


class _Grams(NamedTuple):
    """The weighted Gram matrix of a model of proximal Newton's Gram form (:func:`_gram_form`),
    kept for the next: ``gram (widest, widest)`` and ``u`` on the features ``index`` (``p``
    where it holds none), formed with the weighted curvatures ``ad (n,)``."""

    gram: jax.Array
    u: jax.Array
    index: jax.Array
    ad: jax.Array


def _no_grams(p: int, n: int, widest: int, dtype) -> _Grams:
    """:class:`_Grams` that hold no feature."""
    zeros = functools.partial(jnp.zeros, dtype=dtype)
    return _Grams(zeros((widest, widest)), zeros(widest), jnp.full(widest, p), zeros(n))


def _gram_order(order, size, violation) -> jax.Array:
    """``order`` with the units after its working set ``order[:size]`` sorted by ``violation``,
    the largest first: the features a Gram matrix holds beyond the working set (up to its
    width) are then those likeliest to enter the next working sets, which can reuse it."""
    t = jnp.arange(order.size)
    outside = jnp.zeros(order.size, bool).at[order].set(t >= size)
    rest = jnp.lexsort((-violation, ~outside))  # outside first, then by violation
    return jnp.where(t < size, order, rest[jnp.maximum(t - size, 0)])


def _grams_for(design: Design, ad, order, size, widths, kept: _Grams) -> _Grams:
    r""":class:`_Grams` for a model with weighted curvatures ``ad (n,)`` on the working set
    ``order[:size]`` (``size <= widths[-1]``), on the features ``order[:widths[-1]]``:
    ``kept``'s, rearranged, where they hold the working set and their curvatures are within
    ``_STALE`` of ``ad`` (the model's Hessian then within that share of the exact one, as
    :math:`(1 - s) H \preceq H' \preceq (1 + s) H`; its gradient stays exact, the line search
    keeps every step a descent: a Poisson or logistic path's later models of a strength, whose
    steps are short, skip the ``n w^2`` products); else formed afresh on the narrowest of
    ``widths`` that holds the working set (``n width^2``, zeros beyond: one program for all)."""
    p, widest = design.rows.shape[0], widths[-1]
    index = order[:widest]
    position = jnp.full(p + 1, widest).at[kept.index].set(jnp.arange(widest))[index]
    held = jnp.all((position < widest) | (jnp.arange(widest) >= size))
    close = jnp.all(jnp.abs(ad - kept.ad) <= _STALE * kept.ad)

    def rearranged():
        gram = kept.gram.at[position[:, None], position[None, :]].get(mode="fill", fill_value=0)
        u = kept.u.at[position].get(mode="fill", fill_value=0)
        return _Grams(gram, u, jnp.where(position < widest, index, p), kept.ad)

    def formed():
        def narrow(width):
            pad = widest - width
            gram, u = _model_gram(design.rows, order[:width], ad)
            return jnp.pad(gram, (0, pad)), jnp.pad(u, (0, pad))

        bucket = sum(size > width for width in widths[:-1])
        gram, u = jax.lax.switch(bucket, [functools.partial(narrow, width) for width in widths])
        formed_on = jnp.arange(widest) < jnp.asarray(widths)[bucket]
        return _Grams(gram, u, jnp.where(formed_on, index, p), ad)

    return either(held & close, rearranged, formed)


def _gram_form(design: Design, grams: _Grams, grad, grad_b, w0, b0, order, size, *,
               penalty: Penalty, lam, intercept: Callable | None) -> _Form:  # fmt: skip
    r"""Proximal Newton's model (one output, diagonal Hessian, dense rows) on its working set
    ``order[:size]``, on ``grams`` (:func:`_grams_for`): the weighted Gram matrix :math:`G =
    X_W^\top \operatorname{diag}(a d) X_W` of the first ``widest`` features of ``order``, ``u =
    X_W^\top (a d)`` and :math:`\sum a d`. An epoch costs ``widest`` a step (as glmnet's
    covariance updates) against ``n`` on ``X``: the model's gradient :math:`g_W = \nabla_W +
    G\,dw_W + u\,db` follows each step (:func:`gram_sweep`). ``intercept``: the intercept's
    Newton step ``(block, g_b) -> db`` on the model's ``(m, m)`` block, or None."""
    gram, u = grams.gram, grams.u
    widest = u.size
    index = order[:widest]
    total, diagonal, grad_w = jnp.sum(grams.ad)[None], jnp.diagonal(gram), grad[index]
    block = jnp.diag(total)  # the model's (m, m) block in the intercept

    def new_value(t, w_t, correlation):
        return _coordinate_step(penalty, lam, index[t], w_t, diagonal[t], -correlation)

    def fitted(model: _GramModel) -> _GramModel:
        if intercept is None:
            return model
        db = intercept(block, model.g_b)
        return model._replace(b=model.b + db, g=model.g + u * db, g_b=model.g_b + total * db)

    def at(w, b) -> _GramModel:
        dw, db = w[index] - w0[index], b - b0
        return fitted(_GramModel(w, b, grad_w + gram @ dw + u * db, grad_b + u @ dw + total * db))

    def epoch(model: _GramModel):
        now = model.w[index]
        new, g = gram_sweep(gram, now, model.g, jnp.arange(widest), size, new_value)
        residual = jnp.max(diagonal * jnp.abs(new - now))
        g_b = model.g_b + u @ (new - now)
        return fitted(_GramModel(model.w.at[index].set(new), model.b, g, g_b)), residual

    def quadratic(model: _GramModel):
        dw, db = model.w[index] - w0[index], model.b - b0
        return (dw @ gram @ dw + jnp.sum(db * (2 * (u @ dw) + total * db))) / 2

    def dz(model: _GramModel):
        return linear(design, model.w - w0, model.b - b0)

    return _Form(_GramModel(w0, b0, grad_w, grad_b), epoch, at, quadratic, dz)


class _Newton(NamedTuple):
    w: jax.Array
    b: jax.Array
    evaluation: Evaluation  # at (w, b), with z
    objective: jax.Array
    gap: jax.Array
    residual: jax.Array
    n_iter: jax.Array
    progress: jax.Array  # the last step moved
    grams: _Grams | None  # the last model's in the Gram form (None: not compiled)


class NewtonWarm(NamedTuple):
    """What proximal Newton carries from one strength to the next: the datafit's evaluation at
    the solution and the last model's Gram matrix (None where no Gram form is compiled), which
    the next strength's first model reuses on the same terms as the others (:func:`_grams_for`)."""

    evaluation: Evaluation
    grams: _Grams | None


def _model_curvature(datafit, penalty: Penalty, y) -> Callable:
    """Proximal Newton's per-sample Hessians, ``z -> (d, q)`` (see :func:`prox_newton`): the
    datafit's, or for a non-convex penalty its curvature bound where it has one (the model
    then a majorizer, ``q`` None)."""

    def curvature(z):
        if not penalty.convex and datafit.curvature_bound is not None:
            return jnp.full_like(z, datafit.curvature_bound), None
        return datafit.curvature(z, y)

    return curvature


def _newton_widths(design: Design, datafit, penalty: Penalty) -> tuple[int, ...]:
    """The widths of proximal Newton's Gram forms for a problem (:func:`_gram_widths`)."""
    z = jax.ShapeDtypeStruct(design.y.shape, design.a.dtype)
    q = jax.eval_shape(_model_curvature(datafit, penalty, design.y), z)[1]  # None: diagonal
    return _gram_widths(design.rows, q, penalty.blocks is None, design.y.shape[1])


def newton_warm(design: Design, datafit, penalty: Penalty, evaluation: Evaluation) -> NewtonWarm:
    """:class:`NewtonWarm` at a path's start: ``evaluation``, and no Gram matrix yet."""
    widths = _newton_widths(design, datafit, penalty)
    p, n = design.rows.shape
    dtype = evaluation.loss.dtype
    return NewtonWarm(evaluation, _no_grams(p, n, widths[-1], dtype) if widths else None)


def _block_curvatures(rows, features, weighted):
    r"""Per group, a bound on the largest eigenvalue of its block of the model's Hessian:
    :math:`\max_k \lambda_{\max}(X_g^\top \operatorname{diag}(a d_k) X_g)` (``weighted`` is
    :math:`a d`, ``(n, m)``; a Hessian :math:`\operatorname{diag}(d_i) - q_i q_i^\top` is below
    its diagonal part), exact for one feature per group."""
    x = sparse.take(rows, features.reshape(-1)).reshape(features.shape + (-1,))  # (groups, size, n)
    if features.shape[1] == 1:
        return jnp.max(jnp.einsum("gn,nk->gk", x[:, 0] ** 2, weighted), axis=1)
    blocks = jnp.einsum("gsn,gtn,nk->gkst", x, x, weighted)
    return jnp.max(jnp.linalg.eigvalsh(blocks)[..., -1], axis=1)


def _dense_steps(rows, q) -> bool:
    """Whether :func:`_coordinate_epoch` steps on dense columns (see its sparse steps)."""
    return not sparse.is_sparse(rows) or q is not None


def _gram_widths(rows, q, coordinates: bool, m: int) -> tuple[int, ...]:
    """The widths of the Gram forms of proximal Newton's model (:func:`_gram_form`) compiled
    for a problem: for one output, a diagonal Hessian, dense coordinates and ``n >= 4 p``
    (:data:`_GRAM_SAMPLES`), each of ``_GRAM_WIDTHS`` at most ``p``; none otherwise. Each
    model's Gram matrix costs ``n w^2`` for a working set of ``w``, its steps ``O(w)``, against
    ``O(n)`` on ``X``: measured, logistic paths ran 1.3-1.7x faster on it at 2000 x 500, 5000 x
    500 and 5000 x 200, as fast at 3000 x 500 and 2000 x 1000, 1.2-1.8x slower at 1000 x 500,
    1000 x 1000 and breast cancer's 569 x 495; Poisson paths as fast or slower at every shape
    (1.5x at 2000 x 500). Each form left out also saves 0.3-0.6 s of compilation."""
    p, n = rows.shape
    few_samples = n < _GRAM_SAMPLES * p
    if sparse.is_sparse(rows) or q is not None or not coordinates or m != 1 or few_samples:
        return ()
    return tuple(sorted({min(width, p) for width in _GRAM_WIDTHS}))


def _model_curvatures(rows, order, size, diagonal) -> jax.Array:
    r"""The curvatures :math:`h_c = \sum_i \text{diagonal}_{ik} x_{ij}^2` of proximal Newton's
    model along the coordinates ``order[:size]`` (``c = j m + k``), by position (0 beyond):
    for dense steps, computed once per model rather than in each epoch."""
    m = diagonal.shape[1]

    def curvature(t, h):
        c = order[t]
        x = rows[c // m]
        return h.at[t].set((x * x) @ diagonal[:, c % m])

    return jax.lax.fori_loop(0, size, curvature, jnp.zeros(order.size, diagonal.dtype))


def _coordinate_epoch(rows, model: _Model, order, size, penalty: Penalty, lam, grad, hessians,
                      curvatures):  # fmt: skip
    r"""One epoch of coordinate descent on proximal Newton's quadratic model: coordinates
    ``order[:size]`` (each once) in turn to the model's minimizer along them, the penalty's prox
    with the model's curvature :math:`h_c = \sum_i (a d)_{ik} x_{ij}^2` as step (``hessians
    = (a d, a q, q)``, see :func:`prox_newton`; ``curvatures``: :func:`_model_curvatures` for
    dense rows, else None). Returns the model and the largest step in gradient units,
    :math:`h_c |\Delta w_c|`.

    As :func:`jreg.glm.sparse.coordinate_sweep`: values read from the epoch's start, written to a
    buffer never read; for a sparse ``X`` and a diagonal Hessian a step costs the column's
    non-zeros, :math:`dz = dz_{\text{stored}} + 1 c^\top` with ``c`` (per output) the centring's
    part, and :math:`t_k = \sum_i (a d)_{ik} dz_{\text{stored}, ik}` carried."""
    ad, aq, q = hessians
    m = model.dz.shape[1]
    start = model.w[order]

    def moved(c, now, h, correlation):
        return _coordinate_step(penalty, lam, c, now, h, grad[c] + correlation) - now

    # the dense steps read and write an output's samples as a contiguous row of (m, n) arrays,
    # the output by position from precomputed indices (a 3-class multinomial path: 10-15% faster)
    adT, aqT, qT = (None if v is None else v.T for v in (ad, aq, q))
    features, outputs = order // m, order % m

    def dense_step(t, carry):
        w, dzT, s, residual = carry
        c = order[t]
        j, k = (c, 0) if m == 1 else (features[t], outputs[t])  # static: no copies
        x = rows[j]
        h = curvatures[t]
        product = adT[k] * dzT[k] - (0 if q is None else aqT[k] * s)
        delta = moved(c, start[t], h, x @ product)
        s = s if q is None else s + delta * qT[k] * x
        residual = jnp.maximum(residual, h * jnp.abs(delta))
        dzT = jax.lax.dynamic_update_index_in_dim(dzT, dzT[k] + delta * x, k, 0)
        return w.at[t].add(delta), dzT, s, residual

    def sparse_step(t, carry):
        w, dz, (total, shift), residual = carry
        c = order[t]
        j, k = c // m, c % m
        values, index = rows.nonzeros(j)
        mean = rows.mean[j]
        weighted = ad[index, k]
        h = (values * (values - 2 * mean)) @ weighted + mean**2 * curvature_sums[k]
        dot = values @ weighted
        correlation = values @ (weighted * dz[index, k]) + shift[k] * dot
        correlation = correlation - mean * (total[k] + shift[k] * curvature_sums[k])
        delta = moved(c, start[t], h, correlation)
        carried = (total.at[k].add(delta * dot), shift.at[k].add(-delta * mean))
        residual = jnp.maximum(residual, h * jnp.abs(delta))
        return w.at[t].add(delta), dz.at[index, k].add(delta * values), carried, residual

    zero = jnp.zeros((), model.dz.dtype)
    if not _dense_steps(rows, q):
        curvature_sums = jnp.sum(ad, axis=0)
        carried = (jnp.sum(ad * model.dz, axis=0), jnp.zeros(m, zero.dtype))
        w, dz, (_, shift), residual = jax.lax.fori_loop(
            0, size, sparse_step, (start, model.dz, carried, zero)
        )
        dz = dz + shift[None, :]
        s = model.s
    else:
        w, dzT, s, residual = jax.lax.fori_loop(
            0, size, dense_step, (start, model.dz.T, model.s, zero)
        )
        dz = dzT.T
    return model._replace(w=model.w.at[order].set(w), dz=dz, s=s), residual


class _Hessians(NamedTuple):
    r"""Proximal Newton's per-sample Hessians :math:`H_i = \operatorname{diag}(d_i) - q_i
    q_i^\top` in ``z``, weighted by the samples' weights: ``ad`` :math:`= a d` and, for a
    rank-one part, ``aq`` :math:`= a q` and ``q`` (else None), each ``(n, m)``."""

    ad: jax.Array
    aq: jax.Array | None
    q: jax.Array | None


def _hessian_dz(hessians: _Hessians, model: _Model) -> jax.Array:
    """The weighted Hessians times the model's ``dz``, ``(n, m)``."""
    ad, aq, q = hessians
    return ad * model.dz - (0 if q is None else aq * model.s[:, None])


class _Groups(NamedTuple):
    """A block penalty's groups in proximal Newton: their ``features (groups, size)`` (``p``
    pads), the flat coordinates of those, all outputs (``p m`` pads), and a bound on the
    curvature of each group's block of the model (:func:`_block_curvatures`)."""

    features: jax.Array
    flat: jax.Array
    bounds: jax.Array


def _groups(rows, blocks, ad) -> _Groups:
    p, m = rows.shape[0], ad.shape[1]
    features = jnp.asarray(blocks)
    outputs = jnp.arange(m)[None, None, :]
    flat = jnp.where(features[:, :, None] < p, features[:, :, None] * m + outputs, p * m)
    bounds = _block_curvatures(rows, features, ad)  # H_i is below its diagonal part
    return _Groups(features, flat.reshape(features.shape[0], -1), bounds)


def _x_form(design: Design, hessians: _Hessians, grad, grad_b, w0, b0, order, size, *,
            penalty: Penalty, lam, groups: _Groups | None, intercept: Callable | None,
            ) -> _Form:  # fmt: skip
    r"""Proximal Newton's model on ``X`` (see :class:`_Form`) at ``(w0, b0)``, where the
    datafit has gradient ``(grad, grad_b)``: each epoch moves the coordinates ``order[:size]``
    (:func:`_coordinate_epoch`) or, for a block penalty, the ``groups`` ``order[:size]``, each
    by a proximal gradient step on the model with its block's curvature bound as step, then
    the intercept by ``intercept``, its Newton step ``(block, gradient) -> db`` on the
    model's ``(m, m)`` block (None: no intercept)."""
    rows = design.rows
    ad, aq, q = hessians
    m = ad.shape[1]
    padded = None if groups is None else jnp.append(grad, 0)  # the groups' padding reads 0
    block = jnp.diag(jnp.sum(ad, axis=0)) - (0 if q is None else aq.T @ q)  # the intercept's

    def intercept_step(model: _Model) -> _Model:
        if intercept is None:
            return model
        gradient = grad_b + jnp.sum(_hessian_dz(hessians, model), axis=0)
        db = intercept(block, gradient)
        s = model.s if q is None else model.s + q @ db
        return model._replace(b=model.b + db, dz=model.dz + db[None, :], s=s)

    def group(t, carry):
        model, residual = carry
        g = order[t]
        x = sparse.take(rows, groups.features[g])  # (size, n)
        index, bound = groups.flat[g], groups.bounds[g]
        now = model.w.at[index].get(mode="fill", fill_value=0)
        model_grad = padded[index] + (x @ _hessian_dz(hessians, model)).reshape(-1)
        step = 1 / jnp.where(bound > 0, bound, 1)
        new = penalty.block_prox(now - step * model_grad, lam[g], step, g)
        delta = jnp.where(bound > 0, new - now, 0)
        change = x.T @ delta.reshape(x.shape[0], m)  # (n, m)
        model = model._replace(
            w=model.w.at[index].set(jnp.where(bound > 0, new, now), mode="drop"),
            dz=model.dz + change,
            s=model.s if q is None else model.s + jnp.sum(q * change, axis=1),
        )
        return model, jnp.maximum(residual, bound * jnp.linalg.norm(delta))

    curvatures = None
    if groups is None and _dense_steps(rows, q):
        curvatures = _model_curvatures(rows, order, size, ad if q is None else ad - aq * q)

    def epoch(model: _Model):
        if groups is None:
            model, residual = _coordinate_epoch(rows, model, order, size, penalty, lam, grad,
                                                hessians, curvatures)  # fmt: skip
        else:
            zero = jnp.zeros((), model.dz.dtype)
            model, residual = jax.lax.fori_loop(0, size, group, (model, zero))
        return intercept_step(model), residual

    def at(w, b) -> _Model:
        """The model at ``(w, b)``, its ``dz`` computed afresh (from the rows of the
        coordinates that moved: the working set), its intercept re-fitted."""
        dz = linear(design, w - w0, b - b0)
        s = jnp.zeros_like(dz[:, 0]) if q is None else jnp.sum(q * dz, axis=1)
        return intercept_step(_Model(w, b, dz, s))

    def quadratic(model: _Model):
        return jnp.vdot(model.dz, _hessian_dz(hessians, model)) / 2

    start = _Model(w0, b0, jnp.zeros_like(ad), jnp.zeros(ad.shape[0], ad.dtype))
    return _Form(start, epoch, at, quadratic, lambda model: model.dz)


def _armijo(objective_at: Callable, objective, decrease):
    """The step ``t`` towards the model's minimizer, halved until the objective
    (``objective_at(t)``, ``objective`` at 0) falls by ``_ARMIJO`` of the model's predicted
    ``decrease`` (at most ``_LINE_SEARCH`` times), and whether one did: 0 where none. A
    decrease below the objective's rounding cannot be measured: such a step, second order in
    the gradient's error (which the gap is first order in), is taken in full where the
    objective does not rise by more than that rounding."""
    one = jnp.ones((), objective.dtype)
    full = objective_at(one)
    rounding = _UNMEASURABLE * jnp.finfo(objective.dtype).eps * objective
    unmeasurable = (-decrease <= rounding) & (full <= objective + rounding)

    def rejected(search):
        t, value, count = search
        sufficient = value <= objective + _ARMIJO * t * decrease
        return ~(sufficient | unmeasurable) & (count < _LINE_SEARCH)

    def halve(search):
        t = search[0] / 2
        return t, objective_at(t), search[2] + 1

    t, value, _ = jax.lax.while_loop(rejected, halve, (one, full, 0))
    accepted = unmeasurable | (value <= objective + _ARMIJO * t * decrease)
    return jnp.where(accepted, t, 0), accepted


def prox_newton(design: Design, datafit, evaluate: Callable, penalty: Penalty, lam, w, b, target,
                max_iter, warm: NewtonWarm, *, fit_intercept: bool,
                feasible: Callable | None = None) -> Solution:  # fmt: skip
    r"""Proximal Newton with working sets (as skglm's ``ProxNewton``, newGLMNET in liblinear).

    At ``(w, b)`` the datafit is replaced by its second-order model, the per-sample Hessians
    :math:`H_i = \operatorname{diag}(d_i) - q_i q_i^\top` in :math:`z` (for a non-convex
    penalty, the datafit's curvature bound where it has one: then the model is a majorizer and
    every step descends). Coordinate descent minimizes the model plus the penalty over a working
    set (the support and the violators of the optimality condition at zero,
    :func:`working_set`), each coordinate exactly (its prox with the model's curvature
    as step), the intercept by a Newton step on the model after each epoch, in blocks of
    ``_ANDERSON`` epochs extrapolated as in :func:`coordinate_descent`, until its largest step
    (in gradient units) is a tenth of the first epoch's, or after ``_INNER_EPOCHS``
    (:func:`_minimize_model`): on the working set's weighted Gram matrix where one is compiled
    (``n >= 4 p``: :func:`_gram_widths`) and holds it (:func:`_gram_form`; a 2000 x 500 logistic
    path 1.3x faster; the next models reuse it while it holds their working sets and their
    curvatures stay near its, :func:`_grams_for`), else on ``X``. The step to the model's
    minimizer is then shortened by halving until the objective falls by a fraction of the
    model's predicted decrease (Armijo; a full step keeps the coordinates' exact zeros), unless
    that decrease is below the objective's rounding (then it is taken in full: near the solution
    the gap still falls).
    ``n_iter`` counts epochs; a model whose minimizer is the current point, or a step that no
    halving makes acceptable, ends the solve (its gap says how far it got). ``feasible``: see
    :func:`gap_at`.
    """
    rows, y, a = design.rows, design.y, design.a
    p, m = rows.shape[0], y.shape[1]
    d = p * m
    curvature = _model_curvature(datafit, penalty, y)

    # the curvature of each coordinate is the gradient mapping's step where the gap needs it:
    # for a penalty without a duality gap, and for unpenalized coordinates (rarely present)
    every = not penalty.convex or penalty.dual_scale is None

    def scored(state: _Newton) -> _Newton:
        w, evaluation = state.w, state.evaluation
        dd, q = curvature(evaluation.z)  # the steps of coordinate descent's fixed points
        h = a[:, None] * (dd if q is None else dd - q * q)
        ones = lambda: jnp.ones(d, h.dtype)  # noqa: E731
        columns = lambda: sparse.squares_times(rows, h).reshape(-1)  # noqa: E731
        if penalty.blocks is not None:  # one step for the groups' gradient mapping
            coordinates = jnp.max(columns()) if every else jnp.ones((), h.dtype)
        else:
            coordinates = columns() if every else jax.lax.cond(jnp.any(lam == 0), columns, ones)
        coordinates = _steps(coordinates, penalty)
        intercept = jnp.sum(h, axis=0)
        intercept = jnp.where(intercept > 0, intercept, 1)
        objective = evaluation.loss + penalty.value(w, lam)
        gap, residual = gap_at(evaluation, coordinates, intercept, penalty, w, lam, feasible)
        return state._replace(objective=objective, gap=gap, residual=residual)

    def intercept_db(block, gradient):
        """The model's minimizer in ``b``: a Newton step on its ``(m, m)`` block."""
        return solve_psd(block, -gradient, datafit.shift_invariant)

    forms = {"penalty": penalty, "lam": lam, "intercept": intercept_db if fit_intercept else None}
    widths = _newton_widths(design, datafit, penalty)

    def outer(state: _Newton) -> _Newton:
        evaluation, z = state.evaluation, state.evaluation.z
        dd, q = curvature(z)
        hessians = _Hessians(a[:, None] * dd, None if q is None else a[:, None] * q, q)
        grad = evaluation.grad_w
        penalty_now = state.objective - evaluation.loss

        def first_order(model):
            """The model's value less its quadratic term, minus the objective's at ``w0``."""
            linear = jnp.vdot(grad, model.w - state.w) + jnp.vdot(
                evaluation.grad_b, model.b - state.b
            )
            return linear + penalty.value(model.w, lam) - penalty_now

        # choose the working set
        groups = None if penalty.blocks is None else _groups(rows, penalty.blocks, hessians.ad)
        if groups is None:
            active, units = state.w != 0, d
        else:
            active = jnp.any(jnp.append(state.w, 0)[groups.flat] != 0, axis=1)
            units = groups.features.shape[0]
        if penalty.violation is None:  # no zeros: every coordinate works
            order, size = jnp.arange(units), units
        else:
            violation = penalty.violation(grad, lam)
            order, size = working_set(active, violation)

        # solve the model on it, on X or on the working set's Gram matrix
        point = (grad, evaluation.grad_b, state.w, state.b)

        def solved(form: _Form, grams):
            """The model's minimizer ``(w, b, dz, the model's decrease, epochs, grams)``."""
            model, value, epochs = _minimize_model(form, first_order, penalty)
            return model.w, model.b, form.dz(model), value - form.quadratic(model), epochs, grams

        def x_solved():
            form = _x_form(design, hessians, *point, order, size, groups=groups, **forms)
            return solved(form, state.grams)

        def gram_solved():
            ordered = order if penalty.violation is None else _gram_order(order, size, violation)
            grams = _grams_for(design, hessians.ad[:, 0], ordered, size, widths, state.grams)
            return solved(_gram_form(design, grams, *point, ordered, size, **forms), grams)

        if widths and widths[-1] == d:  # every working set: X's program is not compiled
            found = gram_solved()
        elif widths:
            found = either(size <= widths[-1], gram_solved, x_solved)
        else:
            found = x_solved()
        w_min, b_min, dz, decrease, epochs, grams = found
        dw, db = w_min - state.w, b_min - state.b

        # accept a step towards the model's minimizer
        def objective_at(t):
            return a @ datafit.loss(z + t * dz, y) + penalty.value(state.w + t * dw, lam)

        t, accepted = _armijo(objective_at, state.objective, decrease)
        progress = accepted & (jnp.any(dw != 0) | jnp.any(db != 0))
        w_new = jnp.where(t == 1, w_min, state.w + t * dw)  # a full step keeps exact zeros
        b_new = state.b + t * db
        if fit_intercept:  # the best intercept for w_new (the dual point's constraint)
            b_new = b_new + best_shift(datafit, z + t * dz, y, a, POLISH_STEPS)
        n_iter = state.n_iter + epochs
        return state._replace(w=w_new, b=b_new, evaluation=evaluate(w_new, b_new), n_iter=n_iter,
                              progress=progress, grams=grams)  # fmt: skip

    def not_done(state: _Newton):
        return (
            short_of(state.gap, state.residual, target) & (state.n_iter < max_iter) & state.progress
        )

    unknown = jnp.full((), jnp.inf, warm.evaluation.loss.dtype)  # scored in the first pass
    start = _Newton(w, b, warm.evaluation, unknown, unknown, unknown, jnp.zeros((), jnp.int32),
                    jnp.ones((), bool), warm.grams)  # fmt: skip
    state = scored_loop(not_done, outer, scored, start)
    warm = NewtonWarm(state.evaluation, state.grams)
    return Solution(state.w, state.b, state.gap, state.residual, state.n_iter, warm)
