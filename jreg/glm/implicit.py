r"""Derivatives of solutions by implicit differentiation of their optimality conditions.

At a solution :math:`(w^\star, b^\star)` of :math:`\min_{w, b} L(w, b; \theta) + P(w;
\theta)` (:math:`L` the weighted datafit, :math:`\theta` the data, weights, strength, penalty
factors, ``l1_ratio``), let :math:`S` be the free coordinates: non-zero and strictly inside
the bounds. Where :math:`S` is locally constant (no coordinate is about to enter or leave) and
the penalty is twice differentiable on :math:`S`, the solution is the root of

.. math::
   F_S(w, b) = \nabla_{w_S} \bigl(L + P\bigr) = 0, \quad
   F_{\bar S}(w, b) = w_{\bar S} - w^\star_{\bar S}, \quad
   F_b(w, b) = \nabla_b L \;(+\; \bar b \mathbf{1} \text{ for a shift-invariant loss}),

with :math:`L + P` evaluated at :math:`w` on :math:`S` and :math:`w^\star` elsewhere, so that
:math:`\partial F / \partial (w, b)` is block diagonal, :math:`\operatorname{diag}(H_{SS}, I)`
with :math:`H` the Hessian of :math:`L + P` (the intercept's rows included), and
symmetric. :func:`jax.lax.custom_root` then gives
:math:`\partial w^\star = -(\partial F / \partial (w, b))^{-1} \partial_\theta F`: one linear
solve on the support, by conjugate gradients preconditioned by the datafit's Hessian diagonal,
in both forward and reverse mode (the solver's iterations are never differentiated). Off
:math:`S` the derivative is exactly 0 (above ``strength_max``, every coefficient's). The
solution must be a strict local minimum on :math:`S` (:math:`H_{SS}` positive definite: always
for convex penalties with a strictly convex datafit on the support; for MCP and SCAD where the
penalty's negative curvature does not cancel the datafit's); elsewhere the derivative is not
defined and the solve returns what conjugate gradients reach.

For a shift-invariant loss (multinomial) the intercepts are centred, and the term
:math:`\bar b \mathbf{1}` (their mean) makes that choice the unique root.
"""

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jreg.glm.objectives import Data

__all__ = ["with_derivatives"]


class _Solution(NamedTuple):
    """A solution and what its optimality conditions need of it (held constant)."""

    w: jax.Array  # (d,) flat coefficients
    b: jax.Array  # (m,) intercepts of the uncentred X
    free: jax.Array  # (d,) bool: non-zero and strictly inside the bounds
    no_gradient: jax.Array  # (d,) bool: where the penalty has no gradient (a group at 0)


def _linear(X, w, b):
    return X @ w.reshape(X.shape[1], -1) + b[None, :]


def with_derivatives(build: Callable, data: Data, options, strength, w, b, *,
                     fit_intercept: bool):  # fmt: skip
    r"""``(w, b)`` (flat coefficients ``(d,)``, intercepts ``(m,)`` of the uncentred ``X``),
    a solution at ``strength``, returned unchanged but differentiable in ``data``,
    ``options`` and ``strength`` through the optimality conditions above.

    ``build(options) -> (datafit, penalty)`` (a static function: the problem's structure).
    """
    w, b = jax.lax.stop_gradient((w, b))
    _, penalty = build(jax.lax.stop_gradient(options))
    lam = jax.lax.stop_gradient(strength * penalty.factor)
    no_gradient = ~jnp.isfinite(jax.grad(penalty.value)(w, lam))
    free = w != 0
    if options.lower is not None:
        m = b.shape[0]
        lower, upper = (
            jnp.repeat(jax.lax.stop_gradient(x), m) for x in (options.lower, options.upper)
        )
        free &= (w > lower) & (w < upper)
    solution = _Solution(w, b, free, no_gradient)
    optimality = functools.partial(_optimality, build, fit_intercept, solution)
    params = (data, options, strength)
    # the value of F's change is 0, its derivative dF: the solve returns (w, b) exactly, and
    # the derivative -(dF/dx)^{-1} dF/dtheta dtheta, the Jacobian held at the solution
    residual = optimality((w, b), params)
    change = jax.tree.map(lambda r: r - jax.lax.stop_gradient(r), residual)
    step = _solve(optimality, solution, jax.lax.stop_gradient(params), change)
    return jax.tree.map(jnp.subtract, (w, b), step)


def _optimality(build, fit_intercept: bool, solution: _Solution, x, params):
    """:math:`F(x)` of the module docstring at ``x = (w, b)``."""
    data, options, strength = params
    datafit, penalty = build(options)
    X, y, a = data
    free = solution.free
    lam = strength * penalty.factor

    def objective(v, c):
        # where the penalty has no gradient, it is evaluated at 1 instead: those coordinates
        # are not free, and the substitution keeps every derivative finite
        v_penalized = jnp.where(solution.no_gradient, 1, v)
        return a @ datafit.loss(_linear(X, v, c), y) + penalty.value(v_penalized, lam)

    v, c = x
    c_fitted = c if fit_intercept else solution.b  # no intercept: F_w does not depend on c
    grad_v, grad_c = jax.grad(objective, argnums=(0, 1))(jnp.where(free, v, solution.w), c_fitted)
    if not fit_intercept:
        grad_c = c - solution.b
    elif datafit.shift_invariant:
        grad_c = grad_c + jnp.mean(c)
    return jnp.where(free, grad_v, v - solution.w), grad_c


def _solve(optimality, solution: _Solution, params, rhs):
    r""":math:`(\partial_x F)^{-1}` ``rhs`` by conjugate gradients (the Jacobian is symmetric,
    positive definite at a strict minimum), preconditioned by the Hessian's diagonal."""
    x = (solution.w, solution.b)

    def linear(v):
        return jax.jvp(lambda u: optimality(u, params), (x,), (v,))[1]

    inverse_diagonal = _inverse_diagonal(optimality.args[:2], solution, params)
    return jax.scipy.sparse.linalg.cg(
        linear,
        rhs,
        tol=jnp.finfo(solution.w.dtype).eps ** 0.75,
        maxiter=2 * (solution.w.size + solution.b.size) + 10,
        M=lambda r: jax.tree.map(jnp.multiply, inverse_diagonal, r),
    )[0]


def _inverse_diagonal(structure, solution: _Solution, params):
    r"""A preconditioner: the inverse of the datafit's Hessian diagonal in ``(w, b)``,
    :math:`\sum_i a_i (d_{ik} - q_{ik}^2) x_{ij}^2` (its per-sample curvature
    :math:`\operatorname{diag}(d_i) - q_i q_i^\top`) on the free coordinates, 1 elsewhere."""
    build, fit_intercept = structure
    data, options, _ = params
    datafit, _ = build(options)
    X, y, a = data
    d, q = datafit.curvature(_linear(X, solution.w, solution.b), y)
    d = jnp.broadcast_to(d, y.shape)
    per_sample = a[:, None] * (d if q is None else d - q**2)
    floor = jnp.finfo(X.dtype).tiny ** 0.5
    diag_w = jnp.maximum((X**2).T @ per_sample, floor).reshape(-1)
    diag_b = jnp.maximum(jnp.sum(per_sample, axis=0), floor)
    return (
        jnp.where(solution.free, 1 / diag_w, 1),
        1 / diag_b if fit_intercept else jnp.ones_like(diag_b),
    )
