r"""Derivatives of solutions by implicit differentiation of their optimality conditions.

At a solution :math:`(w^\star, b^\star)` of :math:`\min_{w, b} L(w, b; \theta) + P(w;
\theta)` (:math:`L` the weighted datafit, :math:`\theta` the data, weights, strength, penalty
factors or group weights, ``l1_ratio``, bounds), let :math:`S` be the free coordinates: where
the penalty is differentiable (off 0 for ``l1``-like penalties, in a non-zero group for the group
lasso, everywhere for ``l2`` and unpenalized coordinates) and strictly inside the bounds. Where
:math:`S` is locally constant (no coordinate about to enter or leave) the solution is the root of

.. math::
   F_S(w, b) = \nabla_{w_S} \bigl(L + P\bigr) = 0, \quad
   F_{\bar S}(w, b) = w_{\bar S} - h_{\bar S}, \quad
   F_b(w, b) = \nabla_b L \;(+\; \bar b \mathbf{1} \text{ for a shift-invariant loss}),

with :math:`h` the held values (0, or the bound a coefficient sits at) and :math:`L + P`
evaluated at :math:`w` on :math:`S` and :math:`h` elsewhere, so that :math:`J = \partial F /
\partial (w, b) = \operatorname{diag}(H_{SS}, I)` with :math:`H` the Hessian of :math:`L + P`
(the intercept's rows included): symmetric. The returned point is
:math:`x^\star - J^{-1} (F - \operatorname{sg}(F))` (sg: stop gradient), whose value is
:math:`x^\star` exactly and whose derivative is :math:`-J^{-1} \partial_\theta F \,
d\theta`: one conjugate-gradient solve on the support (preconditioned by the datafit's Hessian
diagonal), in forward and reverse mode; the solver's iterations are never differentiated, and
:math:`J` is held at the solution (first derivatives only: second derivatives are not
supported). Off :math:`S` the derivative is exactly 0 (above ``strength_max``, every
coefficient's), and a coefficient at a bound follows the bound.

The derivative exists where the solution is a strict local minimum on :math:`S`,
:math:`H_{SS}` positive definite: for a strictly convex datafit, when :math:`X_S` has full
column rank (the lasso's support generically does); for MCP and SCAD also where the penalty's
negative curvature does not cancel the datafit's. Elsewhere (collinear free features, a Huber
fit with free features seen only by samples on its linear part) the solve returns what
conjugate gradients reach, not a derivative. The multinomial loss is unchanged by a shift of
all classes: the intercepts are centred (the :math:`\bar b \mathbf{1}` term fixes that root),
while an unpenalized feature's coefficients have no fixed shift, so only their differences
across classes (and the predictions) have a meaningful derivative.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jreg.glm import sparse
from jreg.glm.objectives import Data
from jreg.glm.penalties import coordinate_bounds

__all__ = ["with_derivatives"]


class _Structure(NamedTuple):
    """The static part: ``build(options) -> (datafit, penalty)`` and the intercept."""

    build: Callable
    fit_intercept: bool


class _Solution(NamedTuple):
    """A solution and what its optimality conditions need of it (held constant)."""

    w: jax.Array  # (d,) flat coefficients
    b: jax.Array  # (m,) intercepts of the uncentred X
    free: jax.Array  # (d,) bool: the penalty differentiable there, strictly inside the bounds
    side: jax.Array  # (d,) -1 at the lower bound, 1 at the upper, else 0
    no_gradient: jax.Array  # (d,) bool: where the penalty's gradient is not finite


def _linear(X, w, b):
    return X @ w.reshape(X.shape[1], -1) + b[None, :]


def with_derivatives(build: Callable, data: Data, options, strength, w, b, *,
                     fit_intercept: bool):  # fmt: skip
    r"""``(w, b)`` (flat coefficients ``(d,)``, intercepts ``(m,)`` of the uncentred ``X``),
    a solution at ``strength``, returned unchanged but differentiable in ``data``,
    ``options`` (bounds included) and ``strength`` through the optimality conditions above.

    ``build(options) -> (datafit, penalty)`` (a static function: the problem's structure).
    """
    structure = _Structure(build, fit_intercept)
    w, b = jax.lax.stop_gradient((w, b))
    fixed_options = jax.lax.stop_gradient(options)
    _, penalty = build(fixed_options)
    lam = jax.lax.stop_gradient(strength * penalty.factor)
    no_gradient = ~jnp.isfinite(jax.grad(penalty.value)(w, lam))
    free = w != 0 if penalty.differentiable is None else penalty.differentiable(w, lam)
    side = jnp.zeros(w.shape, jnp.int8)
    bounds = coordinate_bounds(fixed_options, b.shape[0], w.dtype)
    if bounds is not None:
        lower, upper = bounds
        free &= (w > lower) & (w < upper)
        side = jnp.where(w <= lower, -1, jnp.where(w >= upper, 1, 0)).astype(jnp.int8)
    solution = _Solution(w, b, free, side, no_gradient)
    params = (data, options, strength)
    # the value of F's change is 0, its derivative dF: the solve returns (w, b) exactly, and
    # the derivative -(dF/dx)^{-1} dF/dtheta dtheta, the Jacobian held at the solution
    residual = _optimality(structure, solution, (w, b), params)
    change = jax.tree.map(lambda r: r - jax.lax.stop_gradient(r), residual)
    step = _solve(structure, solution, jax.lax.stop_gradient(params), change)
    return jax.tree.map(jnp.subtract, (w, b), step)


def _optimality(structure: _Structure, solution: _Solution, x, params):
    """:math:`F(x)` of the module docstring at ``x = (w, b)``."""
    data, options, strength = params
    datafit, penalty = structure.build(options)
    X, y, a = data.X, data.y, data.weights
    free = solution.free
    lam = strength * penalty.factor
    held = solution.w  # the coordinates that are not free: at 0, or at a bound
    # traced: the derivative follows a coefficient held at a bound
    bounds = coordinate_bounds(options, solution.b.shape[0], solution.w.dtype)
    if bounds is not None:
        at_upper = jnp.where(solution.side > 0, bounds.upper, held)
        held = jnp.where(solution.side < 0, bounds.lower, at_upper)

    def objective(v, c):
        # where the penalty's gradient is not finite (a user's penalty at 0), it is evaluated
        # at 1 instead: those coordinates are not free, and (for a separable penalty) the
        # substitution keeps every derivative finite
        v_penalized = jnp.where(solution.no_gradient, 1, v)
        return a @ datafit.loss(_linear(X, v, c), y) + penalty.value(v_penalized, lam)

    v, c = x
    c_fitted = c if structure.fit_intercept else solution.b  # F_w then independent of c
    grad_v, grad_c = jax.grad(objective, argnums=(0, 1))(jnp.where(free, v, held), c_fitted)
    if not structure.fit_intercept:
        grad_c = c - solution.b
    elif datafit.shift_invariant:
        grad_c = grad_c + jnp.mean(c)
    return jnp.where(free, grad_v, v - held), grad_c


def _solve(structure: _Structure, solution: _Solution, params, rhs):
    r""":math:`(\partial_x F)^{-1}` ``rhs`` by conjugate gradients (the Jacobian is symmetric,
    positive definite at a strict minimum), preconditioned by the Hessian's diagonal."""
    x = (solution.w, solution.b)

    def linear(v):
        return jax.jvp(lambda u: _optimality(structure, solution, u, params), (x,), (v,))[1]

    inverse_diagonal = _inverse_diagonal(structure, solution, params)
    return jax.scipy.sparse.linalg.cg(
        linear,
        rhs,
        tol=jnp.finfo(solution.w.dtype).eps ** 0.75,
        maxiter=2 * (solution.w.size + solution.b.size) + 10,
        M=lambda r: jax.tree.map(jnp.multiply, inverse_diagonal, r),
    )[0]


def _inverse_diagonal(structure: _Structure, solution: _Solution, params):
    r"""A preconditioner: the inverse of the datafit's Hessian diagonal in ``(w, b)``,
    :math:`\sum_i a_i (d_{ik} - q_{ik}^2) x_{ij}^2` (its per-sample curvature
    :math:`\operatorname{diag}(d_i) - q_i q_i^\top`) on the free coordinates (floored at
    :math:`\sqrt{\epsilon}` of the largest), 1 elsewhere."""
    data, options, _ = params
    datafit, _ = structure.build(options)
    X, y, a = data.X, data.y, data.weights
    d, q = datafit.curvature(_linear(X, solution.w, solution.b), y)
    d = jnp.broadcast_to(d, y.shape)
    per_sample = a[:, None] * (d if q is None else d - q**2)
    diag_w = sparse.squares_times(X.T, per_sample).reshape(-1)
    diag_b = jnp.sum(per_sample, axis=0)
    # floored relative to the largest (a zero column's is 0 while its ridge curvature is not)
    largest = jnp.maximum(jnp.max(jnp.where(solution.free, diag_w, 0), initial=0), jnp.max(diag_b))
    floor = jnp.maximum(jnp.sqrt(jnp.finfo(X.dtype).eps) * largest, jnp.finfo(X.dtype).tiny)
    diag_w, diag_b = jnp.maximum(diag_w, floor), jnp.maximum(diag_b, floor)
    return (
        jnp.where(solution.free, 1 / diag_w, 1),
        1 / diag_b if structure.fit_intercept else jnp.ones_like(diag_b),
    )
