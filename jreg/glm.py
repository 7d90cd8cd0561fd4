r"""Regularization paths for linear models: :func:`path`, :func:`cross_validate`,
:func:`stability_selection`.

Objectives are scikit-learn's, so results compare one to one (:math:`a_i` are the sample weights
normalized to sum to one; without ``sample_weight`` :math:`a_i = 1/n`):

.. math::
   \text{squared:}\quad & \tfrac12 \textstyle\sum_i a_i (y_i - x_i^\top w - b)^2 + P(w) \\
   \text{logistic:}\quad & \textstyle\sum_i a_i \log(1 + e^{-y_i (x_i^\top w + b)}) + P(w),
   \quad y_i \in \{-1, 1\} \text{ (labels } \{0, 1\} \text{ are mapped)}

with :math:`P` = ``jreg.penalties.<penalty>(w, strength * penalty_factor)``; the intercept
:math:`b` is never penalized. ``strength`` is scikit-learn's ``alpha`` (``Lasso``,
``ElasticNet``) and glmnet's ``lambda``; ``LogisticRegression(C)`` is ``strength = 1/(n C)``.

Solvers: for the squared loss with :math:`n \ge p`, accelerated proximal gradient (FISTA with
gradient restart) on the Gram matrix; for the squared loss with :math:`p > n` and a sparse
penalty (``l1``, ``elastic_net``, ``mcp``, ``scad``), coordinate descent on working sets with
Anderson acceleration; otherwise (logistic, ``l2``, ``group_lasso``) FISTA on :math:`X` (for
logistic with an intercept, on centred features, the intercept with its own step). For the
squared loss with ``l1`` or ``elastic_net``, Newton steps of an active-set method (the support
and the worst violators, signs held, solved by Cholesky in padded static sizes) finish what
those find (p > n), or replace FISTA's iterations where the system is small or where they are
slow (n >= p; for the lasso with p > 128 and a well-conditioned Gram matrix, a large support's
system is solved on its complement from the inverse Gram matrix). All are warm-started down the
path and stop when the duality gap (convex penalties) or the squared gradient mapping
:math:`\tfrac{L}{2}\|w - \operatorname{prox}(w - \nabla F(w)/L)\|^2` (``mcp``, ``scad``;
coordinate descent uses each coordinate's curvature for :math:`L`) falls below ``tol`` times the
objective at :math:`w = 0`; unpenalized features add their squared gradient mapping. Strengths
that stop at ``max_iter`` first warn :class:`ConvergenceWarning`. Cross-validation folds and
stability-selection subsamples are sample weights (0 for held-out rows), so all of them run as
one program: vmapped on accelerators (whose members solve their Newton systems one after the
other), a loop over them on CPU.
"""

import functools
import inspect
import numbers
import warnings
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jreg import penalties, prox
from jreg.penalties import _check
from jreg.prox import _safe_divide

__all__ = [
    "ConvergenceWarning",
    "CrossValidation",
    "Path",
    "StabilitySelection",
    "cross_validate",
    "path",
    "stability_selection",
    "strength_max",
]

DATAFITS = ("squared", "logistic")
PENALTIES = ("l1", "elastic_net", "group_lasso", "mcp", "scad", "l2")
_RIDGE_L1_RATIO = 1e-3  # glmnet's convention for the top of a ridge path


class Path(NamedTuple):
    """A regularization path, strengths from largest to smallest.

    Attributes:
      strengths: ``(k,)`` the strengths.
      coef: ``(k, p)`` coefficients.
      intercept: ``(k,)`` intercepts (0 when ``fit_intercept=False``).
      gap: ``(k,)`` duality gap (convex penalties) or squared gradient mapping (``mcp``,
        ``scad``) at the returned solution, in objective units.
      n_iter: ``(k,)`` solver iterations spent at each strength (FISTA iterations; coordinate
        descent epochs; Newton steps).
    """

    strengths: jax.Array
    coef: jax.Array
    intercept: jax.Array
    gap: jax.Array
    n_iter: jax.Array


class CrossValidation(NamedTuple):
    """The result of :func:`cross_validate`.

    Attributes:
      strengths: ``(k,)`` the grid, from largest to smallest.
      scores: ``(n_folds, k)`` held-out loss (mean squared error, or mean log-loss); lower is
        better.
      best_strength: the strength with the lowest mean score.
      strength_1se: the largest strength whose mean score is within one standard error of the
        best mean score.
      path: the :class:`Path` fitted on all the data.
    """

    strengths: jax.Array
    scores: jax.Array
    best_strength: jax.Array
    strength_1se: jax.Array
    path: Path


class StabilitySelection(NamedTuple):
    """The result of :func:`stability_selection`.

    Attributes:
      strengths: ``(k,)`` the grid, from largest to smallest.
      probabilities: ``(k, p)`` the fraction of subsamples in which each feature is selected
        (non-zero) at each strength.
    """

    strengths: jax.Array
    probabilities: jax.Array


class ConvergenceWarning(UserWarning):
    """Some solves stopped at ``max_iter`` before their gap reached ``tol``: their solutions
    are approximate (each strength's gap is in :attr:`Path.gap`)."""


def _warn_unconverged(converged, max_iter: int, what: str) -> None:
    if isinstance(converged, jax.core.Tracer):
        return
    converged = np.asarray(converged)
    stopped = int(np.sum(~converged))
    if stopped:
        message = (
            f"{stopped} of {converged.size} {what} stopped at max_iter={max_iter} before the "
            "gap reached tol (their solutions are approximate): raise max_iter, or tol"
        )
        warnings.warn(message, ConvergenceWarning, stacklevel=3)


# --------------------------------------------------------------------------------------------
# Input validation.


class _Data(NamedTuple):
    X: jax.Array
    y: jax.Array  # squared: targets; logistic: labels in {-1, 1}
    weights: jax.Array  # non-negative, summing to one


def _is_count(value, minimum: int = 1) -> bool:
    """An integer (numpy's too, not a bool) of at least ``minimum``."""
    integral = isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)
    return integral and value >= minimum


def _prepare(X, y, sample_weight, datafit: str) -> _Data:
    """Validates and converts the data; the dtype is X's (at least float32)."""
    if datafit not in DATAFITS:
        raise ValueError(f"datafit must be one of {DATAFITS}, got {datafit!r}")
    X = jnp.asarray(X)
    dtype = jnp.promote_types(X.dtype, jnp.float32)
    X = X.astype(dtype)
    y = jnp.asarray(y, dtype)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array (n_samples, n_features), got shape {X.shape}")
    n = X.shape[0]
    if n == 0 or X.shape[1] == 0:
        raise ValueError(f"X must have at least one sample and one feature, got shape {X.shape}")
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},) to match X, got {y.shape}")
    _check("X", X, np.isfinite, "finite (no NaN or inf)")
    _check("y", y, np.isfinite, "finite (no NaN or inf)")
    if sample_weight is None:
        weights = jnp.full(n, 1 / n, dtype)
    else:
        weights = jnp.asarray(sample_weight, dtype)
        if weights.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), got {weights.shape}")
        _check("sample_weight", weights, lambda s: np.isfinite(s) & (s >= 0), "finite, >= 0")
        _check("sample_weight", jnp.sum(weights), lambda s: s > 0, "not all zero")
        # scaled by a power of two below 1 first (exactly; no reciprocal of a huge maximum,
        # which would be subnormal, flushed to 0): then the sum cannot overflow
        weights = jnp.ldexp(weights, -jnp.frexp(jnp.max(weights))[1])
        weights = weights / jnp.sum(weights)
    if datafit == "logistic":
        y = _signed_labels(y, weights)
    return _Data(X, y, weights)


def _signed_labels(y: jax.Array, weights: jax.Array) -> jax.Array:
    """Maps labels {0, 1} or {-1, 1} to {-1, 1}; checks both classes have weight."""
    if not isinstance(y, jax.core.Tracer) and not isinstance(weights, jax.core.Tracer):
        classes = np.unique(np.asarray(y)[np.asarray(weights) > 0])
        if not (set(classes) <= {0.0, 1.0} or set(classes) <= {-1.0, 1.0}):
            raise ValueError(f"y must hold labels in {{0, 1}} or {{-1, 1}}, got {classes[:5]}")
        if classes.size < 2:
            raise ValueError(f"y must hold both classes for logistic, got only {classes}")
    return jnp.where(y > 0, 1, -1).astype(y.dtype)


# --------------------------------------------------------------------------------------------
# Datafits. Each returns the loss, its gradient and the datafit part of the dual objective as a
# function of the scaling kappa of the dual point theta = -kappa * dF/dz.


class _Evaluation(NamedTuple):
    loss: jax.Array
    grad_w: jax.Array
    grad_b: jax.Array
    dual: Callable[[jax.Array], jax.Array]  # a Partial where it is carried across strengths
    dual_point: jax.Array | None = None  # X^T theta at kappa = 1; None: -grad_w


class _Hessians(NamedTuple):
    """The last Hessian block computed (X form), for the next one to reuse."""

    index: jax.Array  # (K,) its features, ascending; p pads
    block: jax.Array  # (K, K), meaningful on the features of ``index``


class _Smooth(NamedTuple):
    """What the solver needs of a datafit: its evaluation, a Lipschitz constant and, for a
    quadratic datafit, its Hessian on a set of indices (``p`` pads: zero rows and columns),
    ``hessian_block(hessian_data, index, hessians) -> (block, hessians)``, a function of the
    arrays it reads (so that a batch of Newton systems can be solved one after the other, see
    :func:`_newton`) and of the last block computed (``hessians``, None: not kept)."""

    evaluate: Callable[[jax.Array, jax.Array], _Evaluation]
    lipschitz: jax.Array
    hessian_block: Callable[..., tuple[jax.Array, _Hessians | None]] | None = None
    hessian_data: tuple = ()
    newton_size: int = 0  # the largest support a Newton step solves on (static)
    # Lipschitz constant of the gradient in the intercept b, which takes its own step (the
    # bound on the Hessian being block-diagonal; unused where b is not a variable, grad_b = 0)
    intercept_lipschitz: jax.Array | float = 1.0
    # > 0: ``hessian_data`` ends with the inverse Hessian and whether it is accurate, and
    # Newton systems on large supports solve on the complement of the support, up to this size
    # (static; see :func:`_newton`)
    complement_size: int = 0
    hessians: _Hessians | None = None  # before the first block


class _Datafit(NamedTuple):
    smooth: _Smooth
    # a solver for sparse penalties, (penalty, lam, w, b, target, max_iter) -> solution, or
    # None: then FISTA on ``smooth`` solves
    sparse_solver: Callable | None
    intercept: Callable[[jax.Array, jax.Array], jax.Array]  # the intercept reported for (w, b)
    value_at_zero: jax.Array
    grad_at_zero: jax.Array  # gradient in w at w = 0 and the best intercept
    intercept_at_zero: jax.Array


def _top_eigenvalue(matvec: Callable, size: int, dtype, *, n_iter: int = 64) -> jax.Array:
    """Upper estimate of the largest eigenvalue of a PSD operator by power iteration."""
    v = jnp.ones(size, dtype) / float(np.sqrt(size)) + 0.01 * jnp.sin(jnp.arange(size, dtype=dtype))

    def step(v, _):
        u = matvec(v)
        u = u / jnp.maximum(jnp.max(jnp.abs(u)), jnp.finfo(dtype).tiny)  # its norm cannot overflow
        return u / jnp.maximum(jnp.linalg.norm(u), jnp.finfo(dtype).tiny), None

    v = jax.lax.scan(step, v / jnp.linalg.norm(v), length=n_iter)[0]
    return 1.1 * jnp.vdot(v, matvec(v)) + jnp.finfo(dtype).tiny


def _squared_dual(r_y, r_r, kappa):
    """The squared loss's part of the dual objective, from ``<r, y_c>_a`` and ``||r||_a^2``."""
    return kappa * r_y - kappa**2 * r_r / 2


def _squared_on_gram(gram: jax.Array, corr: jax.Array, y_sq: jax.Array, *, complement) -> _Smooth:
    """Squared loss in Gram form: every evaluation is one p x p matrix-vector product.
    ``complement``: with the inverse Gram matrix, for Newton steps on large supports; it is
    used where ``lipschitz * trace(inverse)``, at least the condition number (and at most p
    times it), is at most ``1 / sqrt(eps)``."""
    zero = jnp.zeros((), gram.dtype)
    p = corr.size

    def evaluate(w, b):
        grad = gram @ w - corr
        r_y = y_sq - corr @ w  # <r, y_c>_a
        r_r = r_y + grad @ w  # ||r||_a^2 = y_sq - 2 corr.w + w.G.w
        return _Evaluation(r_r / 2, grad, zero, jax.tree_util.Partial(_squared_dual, r_y, r_r))

    def hessian_block(data, index, hessians):
        gram = data[0]
        return gram.at[index[:, None], index[None, :]].get(mode="fill", fill_value=0), hessians

    lipschitz = _top_eigenvalue(lambda v: gram @ v, p, gram.dtype)
    size = min(_NEWTON_MAX, p)
    if not complement:
        return _Smooth(evaluate, lipschitz, hessian_block, (gram,), size)
    eps = jnp.finfo(gram.dtype).eps
    identity = jnp.eye(p, dtype=gram.dtype)
    factor = jax.scipy.linalg.cho_factor(gram + 10 * eps * jnp.trace(gram) * identity)
    inverse = jax.scipy.linalg.cho_solve(factor, identity)
    # trace(inverse) bounds its top eigenvalue: lipschitz * trace bounds the condition number
    accurate = lipschitz * jnp.trace(inverse) <= 1 / np.sqrt(eps)
    data = (gram, inverse, accurate)
    largest = min(_NEWTON_MAX, (p - 1) // 2)  # a complement is the smaller part: < p / 2
    return _Smooth(evaluate, lipschitz, hessian_block, data, size, complement_size=largest)


def _support_product(w, rows, size: int) -> jax.Array:
    """``w @ rows`` from the rows of the support of ``w`` only, when it holds at most ``size``
    (static) features."""
    support = w != 0
    index = jnp.nonzero(support, size=size, fill_value=rows.shape[0])[0]
    take = lambda x: x.at[index].get(mode="fill", fill_value=0)  # noqa: E731
    return _maybe(jnp.sum(support) > size, lambda _: w @ rows, take(w) @ take(rows))


def _squared_on_rows(rows, yc, a, lipschitz) -> _Smooth:
    """Squared loss through the residual; ``rows`` are the centred features transposed,
    ``(p, n)``."""
    zero = jnp.zeros((), yc.dtype)
    # a lasso solution has at most n non-zeros (Tibshirani, 2013): larger systems are singular
    size = min(_NEWTON_MAX, rows.shape[0], rows.shape[1] + _NEWTON_ENTERING)

    def evaluate(w, b):
        r = yc - _support_product(w, rows, size)
        r_y, r_r = a @ (r * yc), a @ r**2
        grad = -(rows @ (a * r))
        return _Evaluation(r_r / 2, grad, zero, jax.tree_util.Partial(_squared_dual, r_y, r_r))

    def hessian_block(data, index, last: _Hessians):
        """The block from the last one where their features overlap (along a path, all but the
        few that enter), computing only the rows of the others, up to ``_FRESH_ROWS``."""
        rows, a = data
        p, m = rows.shape[0], index.size
        taken = rows.at[index].get(mode="fill", fill_value=0)
        position = jnp.minimum(jnp.searchsorted(last.index, index), last.index.size - 1)
        known = (last.index[position] == index) & (index < p)
        fresh = ~known & (index < p)

        def update():
            slots = jnp.nonzero(fresh, size=_FRESH_ROWS, fill_value=m)[0]
            cross = (taken.at[slots].get(mode="fill", fill_value=0) * a[None, :]) @ taken.T
            block = last.block.at[position[:, None], position[None, :]].get()
            block = jnp.where(known[:, None] & known[None, :], block, 0)
            return block.at[slots].set(cross, mode="drop").at[:, slots].set(cross.T, mode="drop")

        full = lambda: (taken * a[None, :]) @ taken.T  # noqa: E731
        block = jax.lax.cond(jnp.sum(fresh) <= _FRESH_ROWS, update, full)
        kept = _Hessians(
            jnp.full_like(last.index, p).at[:m].set(index), last.block.at[:m, :m].set(block)
        )
        return block, kept

    empty = _Hessians(jnp.full(size, rows.shape[0]), jnp.zeros((size, size), rows.dtype))
    return _Smooth(evaluate, lipschitz, hessian_block, (rows, a), size, hessians=empty)


def _weighted_gram(X, a) -> jax.Array:
    """``X^T diag(a) X``, its lower-left block the transpose of its upper-right one (3/4 of the
    products of ``X.T @ (a X)``)."""
    half = X.shape[1] // 2
    left, right = X[:, :half], X[:, half:]
    weighted = a[:, None] * X
    upper = left.T @ weighted[:, :half]
    corner = left.T @ weighted[:, half:]
    lower = right.T @ weighted[:, half:]
    return jnp.block([[upper, corner], [corner.T, lower]])


def _squared(data: _Data, *, fit_intercept: bool, complement: bool) -> _Datafit:
    X, y, a = data
    n, p = X.shape
    x_mean = a @ X if fit_intercept else jnp.zeros(p, X.dtype)
    y_mean = a @ y if fit_intercept else jnp.zeros((), X.dtype)
    Xc, yc = X - x_mean[None, :], y - y_mean  # centred explicitly: no float32 cancellation
    y_sq = a @ yc**2
    grad_at_zero = -(Xc.T @ (a * yc))

    if n >= p:  # Gram form: one p x p matrix-vector product per FISTA iteration
        gram = _weighted_gram(Xc, a)
        smooth = _squared_on_gram(gram, -grad_at_zero, y_sq, complement=complement)
        sparse_solver = None
    else:  # X form: coordinate descent on working sets
        rows = Xc.T  # (p, n): a feature's column is a contiguous row
        lipschitz = _top_eigenvalue(lambda v: rows @ (a * (v @ rows)), p, X.dtype)
        smooth = _squared_on_rows(rows, yc, a, lipschitz)
        sparse_solver = functools.partial(_coordinate_descent, smooth, rows, a @ Xc**2, yc, a)

    return _Datafit(
        smooth=smooth,
        sparse_solver=sparse_solver,
        intercept=lambda w, b: y_mean - x_mean @ w,
        value_at_zero=y_sq / 2,
        grad_at_zero=grad_at_zero,
        intercept_at_zero=y_mean,
    )


def _logistic_smooth(X, y, a, *, fit_intercept: bool) -> _Smooth:
    r"""Logistic loss on features ``X`` with the intercept as a variable when fitted; then
    ``X`` must be centred (``a @ X = 0``), which makes the bound on the Hessian,
    :math:`\tfrac14 [X\ 1]^\top \operatorname{diag}(a) [X\ 1]`, block-diagonal: the
    intercept's step (4, as the weights sum to one) is independent of the features' scale."""
    p = X.shape[1]

    def evaluate(w, b):
        margin = y * (X @ w + b)
        u = jax.nn.sigmoid(-margin)  # in (0, 1); theta_i = a_i y_i u_i
        grad_z = -a * y * u
        grad_b = jnp.sum(grad_z) if fit_intercept else jnp.zeros((), X.dtype)
        if fit_intercept:  # a dual point must satisfy sum_i theta_i = 0 (b is unpenalized):
            # shrink the heavier class's u (stays in [0, 1]); exact at the optimum (grad_b = 0)
            mass_pos, mass_neg = a @ jnp.where(y > 0, u, 0), a @ jnp.where(y > 0, 0, u)
            u = u * jnp.where(
                y > 0,
                jnp.minimum(1, _ratio(mass_neg, mass_pos)),
                jnp.minimum(1, _ratio(mass_pos, mass_neg)),
            )

        def dual(kappa):
            v = kappa * u
            return -(a @ (jax.scipy.special.xlogy(v, v) + jax.scipy.special.xlog1py(1 - v, -v)))

        loss = a @ jnp.logaddexp(0, -margin)
        return _Evaluation(loss, X.T @ grad_z, grad_b, dual, X.T @ (a * y * u))

    lipschitz = _top_eigenvalue(lambda v: X.T @ (a * (X @ v)), p, X.dtype) / 4
    return _Smooth(evaluate, lipschitz, intercept_lipschitz=jnp.sum(a) / 4)


def _logistic(data: _Data, *, fit_intercept: bool) -> _Datafit:
    """With an intercept, the solver works on centred features: ``X w + b = Xc w + (b + x_mean
    @ w)``, the intercept unpenalized, so the problems are the same (reported: ``b``)."""
    X, y, a = data
    positive = a @ (y > 0)
    b0 = jnp.log(positive) - jnp.log1p(-positive) if fit_intercept else jnp.zeros((), X.dtype)
    x_mean = a @ X if fit_intercept else jnp.zeros(X.shape[1], X.dtype)
    smooth = _logistic_smooth(X - x_mean[None, :], y, a, fit_intercept=fit_intercept)
    at_zero = smooth.evaluate(jnp.zeros(X.shape[1], X.dtype), b0)
    return _Datafit(
        smooth=smooth,
        sparse_solver=None,
        intercept=lambda w, b: b - x_mean @ w,
        value_at_zero=at_zero.loss,
        grad_at_zero=at_zero.grad_w,
        intercept_at_zero=b0,
    )


# --------------------------------------------------------------------------------------------
# Penalties: value, prox and the dual pieces, per coordinate strengths lam (p,) = strength * pf.


class _Penalty(NamedTuple):
    value: Callable[[jax.Array, jax.Array], jax.Array]
    prox: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
    convex: bool
    dual_scale: Callable[[jax.Array, jax.Array], jax.Array]  # kappa making kappa*v feasible
    conjugate: Callable[[jax.Array, jax.Array], jax.Array]  # R*(v), finite part
    zero_threshold: Callable[[jax.Array, jax.Array], jax.Array]  # strength_max from grad at 0
    violation: Callable[[jax.Array, jax.Array], jax.Array] | None  # > 0: 0 is not optimal
    # on an orthant, a quadratic: (w, signs, lam) -> (gradient, curvature or None: 0); None if
    # the penalty is not quadratic on orthants
    on_orthant: Callable[..., tuple[jax.Array, jax.Array | None]] | None


def _ratio(numerator, denominator):
    """``numerator / denominator`` with 0 where the denominator is 0 (or negative)."""
    return _safe_divide(numerator, denominator, denominator > 0, 0)


def _feasible_scale(v_norms, lam):
    """Largest kappa <= 1 with kappa * |v_g| <= lam_g for every penalized group."""
    excess = _ratio(v_norms, lam)
    return 1 / jnp.maximum(1, jnp.max(excess, initial=0))


def _elementwise_penalty(name: str, *, l1_ratio: float, gamma: float, a: float) -> _Penalty:
    if name == "elastic_net" and l1_ratio == 1:
        name = "l1"
    options = {"elastic_net": {"l1_ratio": l1_ratio}, "mcp": {"gamma": gamma}, "scad": {"a": a}}
    kw = options.get(name, {})
    value_fn, prox_fn = getattr(penalties, name), getattr(prox, name)

    def zero_threshold(v, lam_factor):
        scale = {"elastic_net": l1_ratio, "l2": _RIDGE_L1_RATIO}.get(name, 1.0)
        return jnp.max(_ratio(jnp.abs(v), lam_factor), initial=0) / scale

    if name == "elastic_net":

        def conjugate(v, lam):
            soft = jnp.maximum(jnp.abs(v) - lam * l1_ratio, 0)
            return jnp.sum(_ratio(soft**2, 2 * lam * (1 - l1_ratio)))

        dual_scale = lambda v, lam: jnp.ones((), v.dtype)  # noqa: E731
    elif name == "l2":
        conjugate = lambda v, lam: jnp.sum(_ratio(v**2, 2 * lam))  # noqa: E731
        dual_scale = lambda v, lam: jnp.ones((), v.dtype)  # noqa: E731
    else:  # l1 (and the non-convex ones, whose dual pieces are unused)
        conjugate = lambda v, lam: jnp.zeros((), v.dtype)  # noqa: E731
        dual_scale = lambda v, lam: _feasible_scale(jnp.abs(v), lam)  # noqa: E731
    slope_at_zero = l1_ratio if name == "elastic_net" else 1.0
    ridge_part = 1 - l1_ratio if name == "elastic_net" else 0.0

    def on_orthant(w, signs, lam):
        if ridge_part == 0:  # no curvature
            return lam * signs, None
        return slope_at_zero * lam * signs + ridge_part * lam * w, ridge_part * lam

    return _Penalty(
        value=lambda w, lam: value_fn(w, lam, **kw),
        prox=lambda w, lam, step: prox_fn(w, lam, scaling=step, **kw),
        convex=name not in ("mcp", "scad"),
        dual_scale=dual_scale,
        conjugate=conjugate,
        zero_threshold=zero_threshold,
        violation=None if name == "l2" else lambda g, lam: jnp.abs(g) - slope_at_zero * lam,
        on_orthant=on_orthant if name in ("l1", "elastic_net") else None,
    )


def _group_penalty(groups, group_weights, p: int) -> tuple[_Penalty, np.ndarray]:
    """The group lasso on a padded ``(n_groups, max_size)`` index; returns it and the weights."""
    groups = np.asarray(groups)
    if groups.shape != (p,):
        raise ValueError(f"groups must be an int array of shape ({p},), got {groups!r}")
    ids, sizes = np.unique(groups, return_counts=True)
    index = np.full((ids.size, sizes.max()), p)  # p points at a padding zero
    for row, gid in enumerate(ids):
        members = np.flatnonzero(groups == gid)
        index[row, : members.size] = members
    if group_weights is None:
        group_weights = np.sqrt(sizes)
    group_weights = np.asarray(group_weights, float)
    if group_weights.shape != ids.shape:
        raise ValueError(
            f"group_weights must have one weight per group ({ids.size}), got {group_weights.shape}"
        )
    _check("group_weights", group_weights, lambda g: np.isfinite(g) & (g > 0), "finite, > 0")

    def gather(w):
        return jnp.append(w, 0)[index]

    def scatter(w_groups):
        return jnp.zeros(p + 1, w_groups.dtype).at[index].set(w_groups)[:p]

    def norms(v):
        return jnp.linalg.norm(gather(v), axis=1)

    penalty = _Penalty(
        value=lambda w, lam: penalties.group_lasso(gather(w), lam, axis=1),
        prox=lambda w, lam, step: scatter(prox.group_lasso(gather(w), lam, scaling=step, axis=1)),
        convex=True,
        dual_scale=lambda v, lam: _feasible_scale(norms(v), lam),
        conjugate=lambda v, lam: jnp.zeros((), v.dtype),
        zero_threshold=lambda v, lam_factor: jnp.max(_ratio(norms(v), lam_factor), initial=0),
        violation=None,
        on_orthant=None,
    )
    return penalty, group_weights


class _Config(NamedTuple):
    """Static configuration of one path computation (hashable, a jit static argument)."""

    datafit: str
    penalty: str
    fit_intercept: bool
    tol: float
    max_iter: int
    l1_ratio: float
    gamma: float
    a: float
    groups: tuple | None
    group_weights: tuple | None
    newton: bool = True  # Newton steps (squared loss, l1 and elastic net)


def _make_penalty(config: _Config, p: int, dtype):
    """The penalty and its per-coordinate (or per-group) strength factors."""
    if config.penalty == "group_lasso":
        penalty, weights = _group_penalty(config.groups, config.group_weights, p)
        return penalty, jnp.asarray(weights, dtype)
    penalty = _elementwise_penalty(
        config.penalty, l1_ratio=config.l1_ratio, gamma=config.gamma, a=config.a
    )
    return (penalty if config.newton else penalty._replace(on_orthant=None)), None


# --------------------------------------------------------------------------------------------
# The solver.

_CHECK_EVERY = 10  # FISTA iterations between two gap evaluations


class _Solution(NamedTuple):
    w: jax.Array
    b: jax.Array
    gap: jax.Array
    n_iter: jax.Array
    warm: "_Warm | None" = None  # what the solver carries to the next strength


def _gap(smooth: _Smooth, penalty: _Penalty, w, b, lam) -> jax.Array:
    """Duality gap (convex) or squared gradient mapping (non-convex) at ``(w, b)``."""
    evaluation = smooth.evaluate(w, b)
    return _gap_at(evaluation, smooth.lipschitz, smooth.intercept_lipschitz, penalty, w, lam)


def _gap_at(evaluation: _Evaluation, curvature, intercept_curvature, penalty: _Penalty, w, lam):
    """:func:`_gap` from an evaluation of the datafit at ``(w, b)``; ``curvature`` is the
    Lipschitz constant of the gradient in ``w``, or per-coordinate curvatures (coordinate
    descent), the inverse step of the gradient mapping (``intercept_curvature``: in ``b``)."""
    if penalty.convex:
        v = -evaluation.grad_w if evaluation.dual_point is None else evaluation.dual_point
        kappa = penalty.dual_scale(v, lam)
        primal = evaluation.loss + penalty.value(w, lam)
        dual = evaluation.dual(kappa) - penalty.conjugate(kappa * v, lam)
        # unpenalized features (factor 0) constrain the dual point (X_j^T theta = 0), which the
        # scaling above cannot meet: count their squared gradient mapping instead
        unpenalized = lam == 0 if lam.shape == w.shape else jnp.zeros(w.shape, bool)
        free = jnp.sum(jnp.where(unpenalized, evaluation.grad_w, 0) ** 2 / (2 * curvature))
        return jnp.maximum(primal - dual, 0) + free
    step = 1 / curvature
    mapped = penalty.prox(w - step * evaluation.grad_w, lam, step)
    intercept = evaluation.grad_b**2 / (2 * intercept_curvature)
    return jnp.sum((w - mapped) ** 2 * curvature / 2) + intercept


_NEWTON_MAX = 1024  # the largest support a Newton step solves on
_NEWTON_BUCKETS = (32, 48, 64, 96, 128, 192, 256, 384, 512, 768)  # smaller systems solve faster
_NEWTON_ENTERING = 5  # the most features a Newton step lets into the support
_NEWTON_AFTER = 30  # FISTA iterations at one strength after which Newton steps are tried
_NEWTON_CHEAP = 4  # (FISTA) below m^3 <= _NEWTON_CHEAP p^2, a Newton step is tried first
_COMPLEMENT_FROM = 128  # (Gram form) more features: Newton systems on the complement
_COMPLEMENT_CHEAP = 16  # _NEWTON_CHEAP for those (late in a path, their steps land: measured)
_FRESH_ROWS = 16  # the most Hessian rows computed anew (X form); more: the whole block


def _kth_largest(v: jax.Array, k: int) -> jax.Array:
    """The ``k``-th largest entry of ``v`` for a small ``k`` (faster than a sort on CPU)."""
    drop_largest = lambda _, v: v.at[jnp.argmax(v)].set(-jnp.inf)  # noqa: E731
    return jnp.max(jax.lax.fori_loop(0, k - 1, drop_largest, v))


def _newton(smooth: _Smooth, penalty: _Penalty, w, grad, lam, worth=True, hessians=None):
    r"""Newton step of an active-set method (squared loss; ``l1``, ``elastic_net``).

    The active set is the support of ``w`` and the ``_NEWTON_ENTERING`` zero features that
    most violate the optimality condition at 0; on the orthant of the signs of ``w`` (of
    :math:`-\nabla F` for the entering features) the objective restricted to the active set is
    a convex quadratic. The step goes to its minimizer, with every coordinate that leaves its
    orthant set to 0: when the active set and the signs are the solution's, that is the
    solution. Not a descent method: callers keep the step only if it lowers the objective. The
    system is solved in the smallest static size that holds the active set, or, where the datafit
    has an accurate inverse Hessian (the lasso in Gram form) and the complement of the active
    set is the smaller, in the size of the complement; a larger system, a singular one, or
    ``worth`` false gives no step. Under ``vmap`` the systems of a batch
    are solved one after the other, each in its own size (a batched ``lax.switch`` would solve
    every size for every member). Returns the new point and the Hessian block kept for the next
    step (``hessians``, see :class:`_Smooth`).
    """
    p = w.size
    hessians = smooth.hessians if hessians is None else hessians
    support = w != 0
    violation = jnp.where(support, -jnp.inf, penalty.violation(grad, lam))
    entering = _kth_largest(violation, min(_NEWTON_ENTERING, p))
    active = support | ((violation > 0) & (violation >= entering))
    signs = jnp.where(support, jnp.sign(w), -jnp.sign(grad))
    penalty_grad, penalty_curvature = penalty.on_orthant(w, signs, lam)
    grad = jnp.where(active, grad + penalty_grad, 0)
    sizes = _newton_sizes(smooth.newton_size)
    complement_sizes = _newton_sizes(smooth.complement_size) if penalty_curvature is None else ()
    count = jnp.sum(active)
    system, complement = _newton_system(smooth, count, p, complement_sizes != ())
    branch = jnp.searchsorted(jnp.asarray(sizes), count) + 1
    if complement_sizes:
        outside = jnp.searchsorted(jnp.asarray(complement_sizes), system) + 1 + len(sizes)
        branch = jnp.where(complement, outside, branch)
    solvable = complement | (count <= sizes[-1])
    branch = jnp.where(worth & (count > 0) & solvable, branch, 0)

    def step_in(m):
        def step(active, grad, curvature, data, hessians):
            index = jnp.nonzero(active, size=m, fill_value=p)[0]
            take = lambda v: v.at[index].get(mode="fill", fill_value=0)  # noqa: E731
            block, hessians = smooth.hessian_block(data, index, hessians)
            hessian = block + jnp.diag(take(curvature))
            hessian = hessian + jnp.diag(jnp.where(index == p, 1, 0).astype(w.dtype))
            # a relative jitter lets the factorization through singular (duplicated) features
            jitter = 10 * jnp.finfo(w.dtype).eps * jnp.trace(hessian)
            factor = jax.scipy.linalg.cho_factor(hessian + jitter * jnp.eye(m, dtype=w.dtype))
            direction = jax.scipy.linalg.cho_solve(factor, -take(grad))
            return jnp.zeros(p, w.dtype).at[index].set(direction, mode="drop"), hessians

        return step

    def complement_in(q):
        r"""The step from the inverse Hessian :math:`H`, where the complement :math:`T` of the
        active set :math:`S` is the smaller: :math:`(H^{-1})_{SS}^{-1} = H_{SS} - H_{ST}
        H_{TT}^{-1} H_{TS}`, two products with :math:`H` and a system in :math:`q` variables."""

        def step(active, grad, curvature, data, hessians):
            inverse = data[1]
            outside = jnp.nonzero(~active, size=q, fill_value=p)[0]
            u = inverse @ grad  # grad is 0 outside the active set
            block = inverse.at[outside[:, None], outside[None, :]].get(mode="fill", fill_value=0)
            block = block + jnp.diag(jnp.where(outside == p, 1, 0).astype(w.dtype))
            factor = jax.scipy.linalg.cho_factor(block)
            z = jax.scipy.linalg.cho_solve(factor, u.at[outside].get(mode="fill", fill_value=0))
            correction = inverse.at[:, outside].get(mode="fill", fill_value=0) @ z
            return jnp.where(active, correction - u, 0), hessians

        return step

    def solve(branch, operands, batched, member, out):
        """Writes the direction and the kept Hessians of one member of a batch (``member``;
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

        steps = [step_in(m) for m in sizes] + [complement_in(q) for q in complement_sizes]
        return jax.lax.switch(branch, [lambda out: out, *map(in_size, steps)], out)

    @jax.custom_batching.custom_vmap
    def direction_of(branch, *operands):
        out = (jnp.zeros(p, w.dtype), operands[-1])
        return solve(branch, operands, jax.tree.map(lambda _: False, operands), None, out)

    @direction_of.def_vmap
    def _(batch_size, batched, branch, *operands):
        batched = jax.tree.unflatten(
            jax.tree.structure((branch, operands)), jax.tree.leaves(batched)
        )
        stacked = lambda x, b: x if b else jnp.broadcast_to(x, (batch_size, *x.shape))  # noqa: E731
        out = (
            jnp.zeros((batch_size, p), w.dtype),
            jax.tree.map(stacked, operands[-1], batched[1][-1]),
        )
        pick = lambda i: branch[i] if batched[0] else branch  # noqa: E731
        member = lambda i, out: solve(pick(i), operands, batched[1], i, out)  # noqa: E731
        out = jax.lax.fori_loop(0, batch_size, member, out)
        return out, jax.tree.map(lambda _: True, out)

    no_curvature = penalty_curvature is None
    curvature = jnp.zeros_like(w) if no_curvature else jnp.broadcast_to(penalty_curvature, w.shape)
    data = smooth.hessian_data
    direction, hessians = direction_of(branch, active, grad, curvature, data, hessians)
    target = w + jnp.where(jnp.all(jnp.isfinite(direction)), direction, 0)
    return jnp.where((jnp.sign(target) == signs) | (lam == 0), target, 0), hessians


def _newton_sizes(largest: int) -> tuple[int, ...]:
    """The static sizes of Newton systems up to ``largest`` (0: none), each a branch of
    :func:`_newton`."""
    return tuple(m for m in _NEWTON_BUCKETS if m < largest) + (largest,) if largest else ()


def _newton_system(smooth: _Smooth, count, p: int, complement: bool = True):
    """The size of the Newton system on ``count`` active features of ``p``, and whether it is
    solved on the complement (``complement``: if the penalty allows it)."""
    if not (smooth.complement_size and complement):
        return count, jnp.zeros((), bool)
    outside = (p - count < count) & (p - count <= smooth.complement_size) & smooth.hessian_data[-1]
    return jnp.where(outside, p - count, count), outside


def _has_newton(smooth: _Smooth, penalty: _Penalty) -> bool:
    return smooth.hessian_block is not None and penalty.on_orthant is not None


def _pick(condition, if_true, if_false):
    """``if_true`` where ``condition`` holds, else ``if_false`` (pytrees of arrays)."""
    return jax.tree.map(lambda x, y: jnp.where(condition, x, y), if_true, if_false)


def _maybe(condition, f, operand):
    """``f(operand)`` if ``condition`` else ``operand``. Unlike ``lax.cond``, which under
    ``vmap`` runs ``f`` for every member, ``f`` runs only when some member's condition holds (a
    while loop of at most one trip; members whose condition is false keep ``operand``)."""
    body = lambda state: (jnp.zeros_like(state[0]), f(state[1]))  # noqa: E731
    return jax.lax.while_loop(lambda state: state[0], body, (condition, operand))[1]


class _Fista(NamedTuple):
    w: jax.Array
    b: jax.Array
    w_prev: jax.Array
    b_prev: jax.Array
    grad: jax.Array  # at w (quadratic datafits only)
    grad_prev: jax.Array
    objective: jax.Array  # at w (quadratic datafits only)
    momentum: jax.Array
    n_iter: jax.Array
    gap: jax.Array


def _fista(smooth: _Smooth, penalty: _Penalty, lam, w, b, target, max_iter) -> _Solution:
    """FISTA with gradient restart from ``(w, b)`` until the gap is at most ``target``.

    For a quadratic datafit the gradient is affine, so the gradient at the extrapolated point
    is the same combination of the last two gradients: each iteration evaluates the datafit
    once, at its new iterate, and checks the gap there. When the penalty has Newton steps
    (:func:`_newton`), each block of ``_CHECK_EVERY`` iterations is preceded by a Newton step,
    and replaced by it when it lowers the objective, where the step is cheap (a small system:
    a small support, or a large one solved on its complement) or the iterations are slow (more
    than ``_NEWTON_AFTER`` at one strength: an ill-conditioned problem). Otherwise the gap is
    checked every ``_CHECK_EVERY`` iterations.
    """
    step = 1 / smooth.lipschitz
    quadratic = smooth.hessian_block is not None
    p = w.size

    def fista_step(it: _Fista) -> _Fista:
        momentum = (1 + jnp.sqrt(1 + 4 * it.momentum**2)) / 2
        beta = (it.momentum - 1) / momentum
        w_ex = it.w + beta * (it.w - it.w_prev)
        b_ex = it.b + beta * (it.b - it.b_prev)
        if quadratic:  # the intercept is fixed (centred data): its gradient is 0
            grad_w, grad_b = it.grad + beta * (it.grad - it.grad_prev), jnp.zeros_like(b_ex)
        else:
            evaluation = smooth.evaluate(w_ex, b_ex)
            grad_w, grad_b = evaluation.grad_w, evaluation.grad_b
        w_new = penalty.prox(w_ex - step * grad_w, lam, step)
        b_new = b_ex - grad_b / smooth.intercept_lipschitz
        # gradient restart: the gradient mapping, in each block's own step, opposes the move
        restart = (
            smooth.lipschitz * jnp.vdot(w_ex - w_new, w_new - it.w)
            + smooth.intercept_lipschitz * (b_ex - b_new) * (b_new - it.b)
            > 0
        )
        momentum = jnp.where(restart, 1, momentum).astype(it.momentum.dtype)
        it = it._replace(w=w_new, b=b_new, w_prev=it.w, b_prev=it.b, grad_prev=it.grad,
                         momentum=momentum, n_iter=it.n_iter + 1)  # fmt: skip
        return at(it.w, it.b, it) if quadratic else it

    def at(w, b, it: _Fista) -> _Fista:
        """``it`` moved to ``(w, b)`` with its gradient, objective and gap there."""
        evaluation = smooth.evaluate(w, b)
        objective = evaluation.loss + penalty.value(w, lam)
        gap = _gap_at(evaluation, smooth.lipschitz, smooth.intercept_lipschitz, penalty, w, lam)
        return it._replace(w=w, b=b, grad=evaluation.grad_w, objective=objective, gap=gap)

    def newton(it: _Fista, worth) -> _Fista:
        candidate, _ = _newton(smooth, penalty, it.w, it.grad, lam, worth)
        moved = at(candidate, it.b, it)
        moved = moved._replace(
            w_prev=candidate,
            grad_prev=moved.grad,
            momentum=jnp.ones_like(it.momentum),
            n_iter=it.n_iter + 1,
        )
        return _pick(moved.objective < it.objective, moved, it)

    def iterations(it: _Fista, count=_CHECK_EVERY) -> _Fista:
        stop = it.n_iter + count
        return jax.lax.while_loop(lambda it: not_done(it) & (it.n_iter < stop), fista_step, it)

    def block(it: _Fista) -> _Fista:
        if not quadratic:
            it = jax.lax.fori_loop(0, _CHECK_EVERY, lambda _, it: fista_step(it), it)
            return it._replace(gap=_gap(smooth, penalty, it.w, it.b, lam))
        if not _has_newton(smooth, penalty):
            return iterations(it)
        # a Newton step costs ~m^3 / 3 for m active features, an iteration ~2 p^2
        active = jnp.sum(it.w != 0) + _NEWTON_ENTERING
        system, outside = _newton_system(smooth, active, p)
        bound = jnp.where(outside, _COMPLEMENT_CHEAP, _NEWTON_CHEAP) * float(p) ** 2
        cheap = system.astype(w.dtype) ** 3 <= bound  # in floats: int32 would overflow
        worth = (it.n_iter >= _NEWTON_AFTER) | cheap
        tried = _maybe(worth, lambda it: newton(it, worth), it)
        failed = tried.n_iter == it.n_iter  # no step, or one that did not lower the objective
        return iterations(tried, jnp.where(failed, _CHECK_EVERY, 0))

    def not_done(it: _Fista):
        return (it.gap > target) & (it.n_iter < max_iter)

    one, zero = jnp.ones((), w.dtype), jnp.zeros((), jnp.int32)
    start = at(w, b, _Fista(w, b, w, b, w, w, one, one, zero, one))
    start = start._replace(grad_prev=start.grad)
    it = jax.lax.while_loop(not_done, block, start)
    return _Solution(it.w, it.b, it.gap, it.n_iter)


_ANDERSON = 5  # coordinate-descent epochs between two Anderson extrapolations


def _anderson(iterates: jax.Array) -> jax.Array:
    """Anderson extrapolation of a sequence ``(m + 1, k)``: the affine combination of its last
    ``m`` members that minimizes the norm of the combined differences."""
    diffs = jnp.diff(iterates, axis=0)
    gram = diffs @ diffs.T
    gram = gram + (1e-10 * jnp.trace(gram) + jnp.finfo(gram.dtype).tiny) * jnp.eye(len(gram))
    weights = jnp.linalg.solve(gram, jnp.ones(len(gram), gram.dtype))
    return (weights / jnp.sum(weights)) @ iterates[1:]


class _Warm(NamedTuple):
    """What coordinate descent carries from one strength to the next, at the solution."""

    evaluation: _Evaluation
    hessians: _Hessians | None


class _Sweep(NamedTuple):
    w: jax.Array
    evaluation: _Evaluation
    objective: jax.Array
    gap: jax.Array
    n_iter: jax.Array
    hessians: _Hessians | None


def _coordinate_descent(
    smooth: _Smooth, rows, curvature, yc, a, penalty: _Penalty, lam, w, b, target, max_iter,
    warm: _Warm,
):  # fmt: skip
    r"""Coordinate descent on working sets with Anderson acceleration (squared loss, X form).

    Each coordinate moves to the exact minimizer along it: the penalty's prox with scaling
    :math:`1 / h_j`, :math:`h_j = \sum_i a_i (x_{ij} - \bar x_j)^2`, the residual updated in
    place. Each block of epochs visits only the working set, the non-zero features and the worst
    violators of the optimality condition at zero, twice as many as the non-zero ones (as in
    celer and skglm), in a dynamic loop so that the shapes stay static; then the iterates are
    extrapolated (Anderson, kept if it lowers the objective) and the full gap is checked. For
    ``l1`` and ``elastic_net`` a Newton step on the active set (:func:`_newton`) comes first
    and the epochs run only when it does not lower the objective: the epochs find the support,
    the Newton steps solve on it.
    ``rows`` are the centred features transposed, ``(p, n)``; ``curvature`` their weighted
    squared norms; ``warm`` the datafit's evaluation at ``w`` and the last Hessian block.
    ``n_iter`` counts epochs and Newton steps.
    """
    p = w.size
    curvature = jnp.where(curvature > 0, curvature, 1)

    def coordinate(t, state):
        w, r, order = state
        j = order[t]
        x_j = rows[j]
        new = penalty.prox(w[j] + x_j @ (a * r) / curvature[j], lam[j], 1 / curvature[j])
        return w.at[j].set(new), r - (new - w[j]) * x_j, order

    def scored(w, evaluation, n_iter, hessians) -> _Sweep:
        objective = evaluation.loss + penalty.value(w, lam)
        gap = _gap_at(evaluation, curvature, smooth.intercept_lipschitz, penalty, w, lam)
        return _Sweep(w, evaluation, objective, gap, n_iter, hessians)

    def evaluated(w, n_iter, hessians) -> _Sweep:
        return scored(w, smooth.evaluate(w, b), n_iter, hessians)

    def newton_or_epochs(sweep: _Sweep) -> _Sweep:
        candidate, hessians = _newton(
            smooth, penalty, sweep.w, sweep.evaluation.grad_w, lam, hessians=sweep.hessians
        )
        newton = evaluated(candidate, sweep.n_iter + 1, hessians)
        improved = newton.objective < sweep.objective
        sweep = _pick(improved, newton, sweep)._replace(hessians=hessians)
        return _maybe(not_done(sweep) & ~improved, block, sweep)

    def block(sweep: _Sweep) -> _Sweep:
        violation = penalty.violation(sweep.evaluation.grad_w, lam)
        score = jnp.where(sweep.w != 0, jnp.inf, violation)
        order = jnp.argsort(-score)
        size = jnp.minimum(p, jnp.maximum(2 * jnp.sum(sweep.w != 0), 10))

        def epoch(state, _):
            w, r = jax.lax.fori_loop(0, size, coordinate, (*state, order))[:2]
            return (w, r), w

        residual = yc - _support_product(sweep.w, rows, smooth.newton_size)
        (w, _), iterates = jax.lax.scan(epoch, (sweep.w, residual), length=_ANDERSON)
        extrapolated = _anderson(jnp.concatenate([sweep.w[None], iterates]))
        n_iter = sweep.n_iter + _ANDERSON
        plain = evaluated(w, n_iter, sweep.hessians)
        accelerated = evaluated(extrapolated, n_iter, sweep.hessians)
        return _pick(accelerated.objective < plain.objective, accelerated, plain)

    def not_done(sweep: _Sweep):
        return (sweep.gap > target) & (sweep.n_iter < max_iter)

    step = newton_or_epochs if _has_newton(smooth, penalty) else block
    start = scored(w, warm.evaluation, jnp.zeros((), jnp.int32), warm.hessians)
    sweep = jax.lax.while_loop(not_done, step, start)
    return _Solution(sweep.w, b, sweep.gap, sweep.n_iter, _Warm(sweep.evaluation, sweep.hessians))


def _warm_start(datafit: _Datafit, penalty: _Penalty, w, b) -> _Warm | None:
    """What the solver carries across strengths, at ``(w, b)``: None for FISTA."""
    if penalty.violation is None or datafit.sparse_solver is None:
        return None
    return _Warm(datafit.smooth.evaluate(w, b), datafit.smooth.hessians)


def _target(datafit: _Datafit, config: _Config) -> jax.Array:
    """The gap at which the solvers stop: ``tol`` times the objective at :math:`w = 0`."""
    return config.tol * datafit.value_at_zero


def _solve(datafit: _Datafit, penalty: _Penalty, lam, w, b, config: _Config, warm=None):
    """Minimizes at one strength from ``(w, b)``: coordinate descent where the datafit has it
    and the penalty is sparse, FISTA otherwise; ``warm`` from the last strength (None: from
    scratch)."""
    target = _target(datafit, config)
    warm = _warm_start(datafit, penalty, w, b) if warm is None else warm
    if warm is None:
        return _fista(datafit.smooth, penalty, lam, w, b, target, config.max_iter)
    return datafit.sparse_solver(penalty, lam, w, b, target, config.max_iter, warm)


def _datafit(data: _Data, config: _Config) -> _Datafit:
    if config.datafit == "logistic":
        return _logistic(data, fit_intercept=config.fit_intercept)
    # Newton steps on the complement need the Hessian's inverse, which the lasso's is (a
    # constant); below _COMPLEMENT_FROM features every system is small: not worth inverting
    lasso = config.penalty == "l1" or (config.penalty == "elastic_net" and config.l1_ratio == 1)
    complement = config.newton and lasso and data.X.shape[1] > _COMPLEMENT_FROM
    return _squared(data, fit_intercept=config.fit_intercept, complement=complement)


def _path_arrays(data: _Data, strengths, penalty_factor, config: _Config):
    """The path for one data set (weights included), batched over folds and subsamples, and
    whether each strength reached ``tol`` (a NaN gap did not)."""
    datafit = _datafit(data, config)
    p = data.X.shape[1]
    penalty, group_factor = _make_penalty(config, p, data.X.dtype)
    factor = penalty_factor if group_factor is None else group_factor

    def at_strength(carry, strength):
        w, b, warm = carry
        it = _solve(datafit, penalty, strength * factor, w, b, config, warm)
        out = (it.w, datafit.intercept(it.w, it.b), it.gap, it.n_iter)
        return (it.w, it.b, it.warm), out

    w, b = jnp.zeros(p, data.X.dtype), datafit.intercept_at_zero
    init = (w, b, _warm_start(datafit, penalty, w, b))
    _, (coef, intercept, gap, n_iter) = jax.lax.scan(at_strength, init, strengths)
    converged = gap <= _target(datafit, config)
    return Path(strengths, coef, intercept, gap, n_iter), converged


def _strength_max_arrays(data: _Data, penalty_factor, config: _Config) -> jax.Array:
    config = config._replace(newton=False)  # one rare solve: not worth compiling Newton systems
    # only the gradient at zero is used out of the branch below: the rest (the Gram matrix in
    # Gram form) is dead code there, removed by XLA
    grad_at_zero = _datafit(data, config).grad_at_zero
    penalty, group_factor = _make_penalty(config, data.X.shape[1], data.X.dtype)
    if group_factor is not None:
        return penalty.zero_threshold(grad_at_zero, group_factor)
    top = penalty.zero_threshold(grad_at_zero, penalty_factor)

    def after_unpenalized_fit(_):
        """glmnet's rule: the threshold at the fit of the unpenalized features alone (every
        penalized feature held at zero by a strength far above ``top``)."""
        datafit = _datafit(data, config)
        lam = penalty_factor * (1e6 * (top + 1))
        w = jnp.zeros_like(penalty_factor)
        tight = config._replace(tol=float(100 * jnp.finfo(w.dtype).eps))
        fit = _solve(datafit, penalty, lam, w, datafit.intercept_at_zero, tight)
        return penalty.zero_threshold(datafit.smooth.evaluate(fit.w, fit.b).grad_w, penalty_factor)

    return jax.lax.cond(jnp.any(penalty_factor == 0), after_unpenalized_fit, lambda _: top, None)


# --------------------------------------------------------------------------------------------
# Public API.


def _config(
    *, datafit, penalty, fit_intercept, tol, max_iter, l1_ratio, gamma, a, groups, group_weights
) -> _Config:
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}, got {penalty!r}")
    penalties._check_l1_ratio(l1_ratio)
    penalties._check_gamma(gamma)
    penalties._check_a(a)
    if penalty == "elastic_net" and l1_ratio == 0:
        raise ValueError("l1_ratio=0 is ridge: use penalty='l2'")
    defaults = inspect.signature(path).parameters
    for name, value, used in (("l1_ratio", l1_ratio, "elastic_net"), ("gamma", gamma, "mcp"),
                              ("a", a, "scad")):  # fmt: skip
        if value != defaults[name].default and penalty != used:
            raise ValueError(f"{name} applies to penalty={used!r} only, got penalty={penalty!r}")
    _check("tol", tol, lambda t: np.isfinite(t) & (t > 0), "finite and > 0")
    if not isinstance(fit_intercept, bool | np.bool_):
        raise TypeError(f"fit_intercept must be a bool, got {fit_intercept!r}")
    if not _is_count(max_iter):
        raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
    if (penalty == "group_lasso") != (groups is not None):
        raise ValueError("groups must be given exactly when penalty='group_lasso'")
    if group_weights is not None and groups is None:
        raise ValueError("group_weights applies to penalty='group_lasso' only")
    if groups is not None and not np.issubdtype(np.asarray(groups).dtype, np.integer):
        raise ValueError(f"groups must hold integer ids, got {groups!r}")
    as_tuple = lambda x: None if x is None else tuple(np.asarray(x).tolist())  # noqa: E731
    return _Config(
        datafit, penalty, bool(fit_intercept), float(tol), int(max_iter), float(l1_ratio),
        float(gamma), float(a), as_tuple(groups), as_tuple(group_weights),
    )  # fmt: skip


def _penalty_factor(penalty_factor, config: _Config, p: int, dtype) -> jax.Array:
    if penalty_factor is None:
        return jnp.ones(p, dtype)
    if config.penalty == "group_lasso":
        raise ValueError("penalty_factor does not apply to group_lasso: use group_weights")
    factor = jnp.asarray(penalty_factor, dtype)
    if factor.shape != (p,):
        raise ValueError(f"penalty_factor must have shape ({p},), got {factor.shape}")
    _check("penalty_factor", factor, lambda f: np.isfinite(f) & (f >= 0), "finite and >= 0")
    return factor


_path_jit = jax.jit(_path_arrays, static_argnames="config")
_strength_max_jit = jax.jit(_strength_max_arrays, static_argnames="config")


def _grid(data, factor, config, strengths, n_strengths, strength_min_ratio) -> jax.Array:
    """The strengths to fit, from largest to smallest (glmnet's default grid if not given)."""
    if strengths is not None:
        strengths = jnp.asarray(strengths, data.X.dtype)
        if strengths.ndim != 1 or strengths.size == 0:
            raise ValueError(
                f"strengths must be a non-empty 1-D array, got shape {strengths.shape}"
            )
        _check("strengths", strengths, lambda s: np.isfinite(s) & (s >= 0), "finite and >= 0")
        return -jnp.sort(-strengths)
    if not _is_count(n_strengths):
        raise ValueError(f"n_strengths must be a positive int, got {n_strengths!r}")
    if strength_min_ratio is None:
        n, p = data.X.shape
        strength_min_ratio = 1e-3 if n >= p else 1e-2
    _check("strength_min_ratio", strength_min_ratio, lambda r: (r > 0) & (r < 1), "in (0, 1)")
    top = _strength_max_jit(data, factor, config=config)
    _check(
        "strength_max",
        top,
        lambda t: np.isfinite(t) & (t > 0),
        "finite and > 0 for a default grid (0: the solution at strength 0 is already all "
        "zeros: constant X or y, or every penalty_factor 0?; inf: l1_ratio too small?)",
    )
    return top * jnp.logspace(0, np.log10(strength_min_ratio), n_strengths, dtype=data.X.dtype)


def _setup(X, y, **kwargs):
    """Validated data, penalty factors, static config and the arguments of :func:`path` (its
    defaults filling in what ``kwargs`` leaves out; an unknown keyword is a ``TypeError``)."""
    bound = inspect.signature(path).bind(X, y, **kwargs)
    bound.apply_defaults()
    args = bound.arguments
    config = _config(**{field: args[field] for field in _Config._fields if field in args})
    data = _prepare(X, y, args["sample_weight"], config.datafit)
    factor = _penalty_factor(args["penalty_factor"], config, data.X.shape[1], data.X.dtype)
    return data, factor, config, args


def _setup_path(X, y, **kwargs):
    """:func:`_setup` and the grid of strengths of the path."""
    data, factor, config, args = _setup(X, y, **kwargs)
    grid = _grid(
        data, factor, config, args["strengths"], args["n_strengths"], args["strength_min_ratio"]
    )
    return data, factor, config, grid


def strength_max(
    X,
    y,
    *,
    datafit="squared",
    penalty="l1",
    l1_ratio=1.0,
    fit_intercept=True,
    sample_weight=None,
    penalty_factor=None,
    groups=None,
    group_weights=None,
) -> jax.Array:
    r"""The smallest strength whose solution is all zeros.

    For the lasso :math:`\max_j |\nabla_j F(0)| / \text{pf}_j` (:math:`F` the datafit with its
    best intercept, pf the penalty factors); divided by ``l1_ratio`` for the elastic net; group
    norms over group weights for the group lasso; the same as the lasso for ``mcp`` and ``scad``
    (their slope at 0 is the strength). Ridge has no such strength; for ``l2`` this returns
    glmnet's convention, the elastic-net value at ``l1_ratio = 1e-3``.

    Examples:
      >>> import numpy as np
      >>> from jreg import glm
      >>> X, y = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), np.array([1.0, 0.0, -1.0])
      >>> print(glm.strength_max(X, y))
      0.6666...
    """
    data, factor, config, _ = _setup(**locals())  # the arguments above; path's other defaults
    return _strength_max_jit(data, factor, config=config)


def path(
    X,
    y,
    *,
    datafit="squared",
    penalty="l1",
    strengths=None,
    n_strengths=100,
    strength_min_ratio=None,
    l1_ratio=1.0,
    fit_intercept=True,
    tol=1e-6,
    max_iter=10_000,
    sample_weight=None,
    penalty_factor=None,
    groups=None,
    group_weights=None,
    gamma=3.0,
    a=3.7,
) -> Path:
    r"""Regularization path of a penalized linear model, warm-started from large strengths.

    Minimizes, for each strength :math:`s`, ``datafit(X w + b, y) + P(w; s * penalty_factor)``
    (see the module docstring), until the duality gap (or, for ``mcp``/``scad``, the squared
    gradient mapping) is at most ``tol`` times the objective at :math:`w = 0`.

    Args:
      X: ``(n, p)`` features, numpy or jax, float32 or float64.
      y: ``(n,)`` targets (squared) or labels in {0, 1} or {-1, 1} (logistic).
      datafit: ``"squared"`` or ``"logistic"``.
      penalty: one of ``"l1"``, ``"elastic_net"``, ``"group_lasso"``, ``"mcp"``, ``"scad"``,
        ``"l2"``.
      strengths: the grid; default: ``n_strengths`` log-spaced from :func:`strength_max` down
        to ``strength_min_ratio`` times it (glmnet's grid). Fitted from largest to smallest.
      n_strengths: size of the default grid.
      strength_min_ratio: bottom of the default grid; 1e-3 when ``n >= p``, else 1e-2.
      l1_ratio: elastic-net mixing (scikit-learn's ``l1_ratio``, glmnet's ``alpha``).
      fit_intercept: fit an unpenalized intercept.
      tol: stopping tolerance, relative to the objective at :math:`w = 0`.
      max_iter: the most solver iterations per strength (checked between blocks of 10 FISTA
        iterations or 5 coordinate-descent epochs); a strength that stops there before ``tol``
        warns :class:`ConvergenceWarning` (its gap is in the returned ``gap``).
      sample_weight: ``(n,)`` non-negative weights (normalized to sum to one).
      penalty_factor: ``(p,)`` non-negative per-feature factors (glmnet's ``penalty.factor``);
        0 leaves a feature unpenalized.
      groups: ``(p,)`` int group ids, for ``penalty="group_lasso"``.
      group_weights: one weight per group (sorted by id); default :math:`\sqrt{\text{size}}`.
      gamma: MCP concavity (> 1).
      a: SCAD shape (> 2).

    Returns:
      A :class:`Path`.

    Examples:
      >>> import numpy as np
      >>> from jreg import glm
      >>> rng = np.random.default_rng(0)
      >>> X = rng.standard_normal((50, 5))
      >>> y = X @ np.array([2.0, 0, 0, -1.0, 0]) + 0.1 * rng.standard_normal(50)
      >>> fit = glm.path(X, y, n_strengths=20)
      >>> fit.coef.shape
      (20, 5)
      >>> n_selected = (fit.coef != 0).sum(axis=1)
      >>> int(n_selected[0]), int(n_selected[10]), int(n_selected[-1])
      (0, 2, 5)
    """
    data, factor, config, grid = _setup_path(**locals())  # exactly the arguments above
    fit, converged = _path_jit(data, grid, factor, config=config)
    _warn_unconverged(converged, config.max_iter, "strengths")
    return fit


def _batched_paths(data: _Data, weights, grid, factor, config: _Config, sequential: bool):
    """:func:`_path_arrays` for a batch of sample weights ``(B, n)``, one program: vmapped, or
    a loop over the batch (``sequential``; faster on CPU, where members that have converged
    would wait for the others at every strength: 1.2-2x on the cross-validations of
    ``benchmarks/paths.py``)."""
    weights = weights / jnp.sum(weights, axis=1, keepdims=True)
    one = lambda a: _path_arrays(data._replace(weights=a), grid, factor, config)  # noqa: E731
    return jax.lax.map(one, weights) if sequential else jax.vmap(one)(weights)


_batched_paths_jit = jax.jit(_batched_paths, static_argnames=("config", "sequential"))


def _sequential(data: _Data) -> bool:
    """Whether batches of paths on ``data`` run one member after the other: on CPU."""
    return all(device.platform == "cpu" for device in data.X.devices())


def _strata(data: _Data, config: _Config) -> list[np.ndarray]:
    """Row indices per class for logistic (so every fold and subsample keeps both), else all."""
    rows = np.flatnonzero(np.asarray(data.weights) > 0)
    if config.datafit == "squared":
        return [rows]
    labels = np.asarray(data.y)[rows]
    return [rows[labels < 0], rows[labels > 0]]


def _held_out_loss(data: _Data, fit: Path, held_out, config: _Config) -> jax.Array:
    """Weighted mean held-out loss ``(B, k)`` of a batch of paths; ``held_out`` is ``(B, n)``."""
    z = jnp.einsum("np,bkp->bnk", data.X, fit.coef) + fit.intercept[:, None, :]
    y = data.y[None, :, None]
    loss = (y - z) ** 2 if config.datafit == "squared" else jnp.logaddexp(0, -y * z)
    return jnp.einsum("bn,bnk->bk", held_out, loss) / jnp.sum(held_out, axis=1)[:, None]


def cross_validate(X, y, *, n_folds=5, seed=0, **path_kwargs) -> CrossValidation:
    r"""K-fold cross-validated path: all folds and the full-data path in one program.

    The grid is computed on all the data (as scikit-learn's ``LassoCV`` and glmnet do); each
    fold's model is the path fitted with that fold's rows held out (weight 0). For logistic
    the folds are stratified by class.

    Args:
      X: ``(n, p)`` features.
      y: ``(n,)`` targets or labels.
      n_folds: number of folds (>= 2).
      seed: seed of the random assignment of rows to folds.
      **path_kwargs: any keyword of :func:`path` (``datafit``, ``penalty``, ``strengths``, ...).

    Returns:
      A :class:`CrossValidation` with ``scores (n_folds, k)`` the held-out mean squared error
      (squared) or mean log-loss (logistic), ``best_strength``, ``strength_1se`` and ``path``.

    Examples:
      >>> import numpy as np
      >>> from jreg import glm
      >>> rng = np.random.default_rng(0)
      >>> X = rng.standard_normal((100, 8))
      >>> y = X[:, 0] - 2 * X[:, 1] + 0.5 * rng.standard_normal(100)
      >>> cv = glm.cross_validate(X, y, n_folds=5, n_strengths=30)
      >>> cv.scores.shape
      (5, 30)
      >>> bool(cv.strength_1se >= cv.best_strength)
      True
    """
    data, factor, config, grid = _setup_path(X, y, **path_kwargs)
    strata = _strata(data, config)
    limit = min(rows.size for rows in strata)  # so that no fold holds out nothing of a stratum
    if not _is_count(n_folds, 2) or n_folds > limit:
        what = "the smallest class" if config.datafit == "logistic" else "n_samples"
        raise ValueError(f"n_folds must be an int in [2, {what} = {limit}], got {n_folds!r}")
    rng = np.random.default_rng(seed)
    fold = np.full(data.X.shape[0], -1)
    for rows in strata:
        fold[rng.permutation(rows)] = np.arange(rows.size) % n_folds
    held_out = np.asarray(fold[None, :] == np.arange(n_folds)[:, None], data.X.dtype)
    sequential = _sequential(data)
    result, converged = _cross_validation_jit(
        data, held_out, grid, factor, config=config, sequential=sequential
    )
    _warn_unconverged(converged, config.max_iter, "solves (folds and the full path, per strength)")
    return result


def _cross_validation(data: _Data, held_out, grid, factor, config: _Config, sequential: bool):
    """:func:`cross_validate` after the folds are drawn (``held_out``: ``(n_folds, n)``, 1 for
    the rows a fold holds out), one program; also returns whether each solve converged."""
    n_folds = held_out.shape[0]
    weights = jnp.concatenate([data.weights[None, :] * (1 - held_out), data.weights[None]])
    batch, converged = _batched_paths(data, weights, grid, factor, config, sequential)
    folds = jax.tree.map(lambda x: x[:n_folds], batch)
    scores = _held_out_loss(data, folds, held_out * data.weights[None, :], config)
    mean = jnp.mean(scores, axis=0)
    best = jnp.argmin(mean)
    standard_error = jnp.std(scores[:, best], ddof=1) / n_folds**0.5
    within = mean <= mean[best] + standard_error
    result = CrossValidation(
        strengths=grid,
        scores=scores,
        best_strength=grid[best],
        strength_1se=jnp.max(jnp.where(within, grid, -jnp.inf)),
        path=jax.tree.map(lambda x: x[n_folds], batch),
    )
    return result, converged


_cross_validation_jit = jax.jit(_cross_validation, static_argnames=("config", "sequential"))


def stability_selection(
    X, y, *, n_subsamples=100, fraction=0.5, seed=0, **path_kwargs
) -> StabilitySelection:
    r"""Stability selection (Meinshausen and Buhlmann, 2010), all subsamples in one program.

    Fits the path on ``n_subsamples`` random subsamples of ``fraction * n`` rows (without
    replacement; stratified by class for logistic) and returns, per strength and feature, the
    fraction of subsamples in which the feature is selected (non-zero).

    Args:
      X: ``(n, p)`` features.
      y: ``(n,)`` targets or labels.
      n_subsamples: number of subsamples.
      fraction: fraction of the rows in each subsample, in (0, 1].
      seed: seed of the subsampling.
      **path_kwargs: any keyword of :func:`path`.

    Returns:
      A :class:`StabilitySelection` with ``probabilities (k, p)``.

    Examples:
      >>> import numpy as np
      >>> from jreg import glm
      >>> rng = np.random.default_rng(0)
      >>> X = rng.standard_normal((100, 8))
      >>> y = 3 * X[:, 0] + 0.5 * rng.standard_normal(100)
      >>> result = glm.stability_selection(X, y, n_subsamples=20, n_strengths=10)
      >>> result.probabilities.shape
      (10, 8)
      >>> float(result.probabilities[5, 0])
      1.0
    """
    data, factor, config, grid = _setup_path(X, y, **path_kwargs)
    if not _is_count(n_subsamples):
        raise ValueError(f"n_subsamples must be a positive int, got {n_subsamples!r}")
    _check("fraction", fraction, lambda f: (f > 0) & (f <= 1), "in (0, 1]")
    rng = np.random.default_rng(seed)
    mask = np.zeros((n_subsamples, data.X.shape[0]))
    for rows in _strata(data, config):
        size = max(1, int(round(fraction * rows.size)))
        for subsample in mask:
            subsample[rng.choice(rows, size, replace=False)] = 1
    weights = data.weights[None, :] * jnp.asarray(mask, data.X.dtype)
    sequential = _sequential(data)
    batch, converged = _batched_paths_jit(
        data, weights, grid, factor, config=config, sequential=sequential
    )
    _warn_unconverged(converged, config.max_iter, "solves (subsamples, per strength)")
    return StabilitySelection(grid, jnp.mean(batch.coef != 0, axis=0))
