r"""Penalties of :mod:`jreg.glm`: :mod:`jreg.penalties` and :mod:`jreg.prox` with what the
solvers need around them.

A :class:`Penalty` is built for one problem (its shapes, options and bounds) and acts on the
flat coefficients ``w (d,)``, ``d = p m`` (``m`` outputs or classes, coefficient ``(j, k)`` at
``j m + k``), with strengths ``lam = strength * factor`` per coordinate, or per group for the
group lasso. Besides the value and the prox (within the bounds), it says what the solvers may
use: a coordinate-wise prox (separable penalties: coordinate descent), the pieces of a duality
gap (the conjugate; else solves stop on a KKT residual), the smallest strength at which
:math:`w = 0` is optimal, and the quadratic on each orthant that active-set Newton steps need.

================ =================================== ========== ============================
name             value                               separable  stopping rule
================ =================================== ========== ============================
``l1``           ``strength * sum |w|``              yes        duality gap
``elastic_net``  ``l1_ratio * l1 + (1 - l1_ratio)``  yes        duality gap
                 ``* l2``
``l2``           ``strength / 2 * sum w^2``          yes        duality gap
``mcp``          minimax concave, ``gamma``          yes        gradient mapping
``scad``         clipped absolute deviation, ``a``   yes        gradient mapping
``group_lasso``  ``strength * sum_g weight_g ||w_g||`` no       duality gap (unbounded)
``(value, prox)`` the user's pair                    no         gradient mapping
================ =================================== ========== ============================

Bounds ``lower <= w <= upper`` (``lower <= 0 <= upper``, as glmnet) apply to the convex
penalties: for the separable ones the 1-D prox clipped to the bounds (exact: a convex 1-D
problem), for the group lasso a prox found by bisection (see :func:`_bounded_group_prox`).

Adding a penalty is one definition (a function of the traced options and the problem's layout
returning a :class:`Penalty`) and one entry of :data:`PENALTIES`.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jreg import penalties as _values
from jreg import prox as _prox
from jreg._checks import check, safe_divide
from jreg.glm.datafits import Family

__all__ = ["PENALTIES", "Penalty", "from_pair"]

_RIDGE_L1_RATIO = 1e-3  # glmnet's convention for the top of a ridge path


class Penalty(NamedTuple):
    r"""What the solvers need of a penalty on the flat coefficients ``w (d,)``.

    Attributes:
      value: ``(w, lam) -> scalar``.
      prox: ``(w, lam, step) -> argmin_v 1/2 ||v - w||^2 + step * value(v, lam)`` within the
        bounds (``step`` a scalar, or per coordinate for separable penalties).
      factor: strengths are ``strength * factor``: ``(d,)`` per coordinate, or one per group.
      coordinate_prox: ``(x, lam_c, step, c) -> coordinate c's prox`` (scalars), for separable
        penalties (coordinate descent); None otherwise.
      convex: convex (else solves stop on the squared gradient mapping).
      dual_scale: ``(v, lam) -> kappa``, the largest :math:`\kappa \le 1` with
        :math:`\kappa v` in the conjugate's domain; None: no duality gap (a KKT residual).
      conjugate: ``(v, lam) -> R^*(v)`` (finite part).
      zero_threshold: ``(grad, factor) -> strength``: the smallest strength at which ``w = 0``
        is optimal when the datafit's gradient there is ``grad``; None: ``strengths`` needed.
      violation: ``(grad, lam) -> (d,)``: > 0 where 0 violates its optimality condition
        (working sets); None: coordinates are never 0 (``l2``).
      on_orthant: on the orthant of signs ``s`` a quadratic, ``(w, s, lam) -> (gradient,
        curvature or None: 0)``, for active-set Newton steps; None: no Newton steps.
      blocks: for a penalty separable by groups of features (all their outputs), the features
        of each group ``(n_groups, size)`` padded with ``p`` (block coordinate descent); then
        ``violation`` is per group.
      block_prox: ``(x, lam_g, step, g) -> group g's prox``, ``x`` its flat coefficients
        (padded as ``blocks``, with zeros).
      differentiable: ``(w, lam) -> (d,) bool``, where the value is differentiable in ``w`` (its
        optimality condition there is an equation: implicit derivatives); None: where
        ``w != 0``.
      concavity: the penalty's largest negative curvature (MCP :math:`1/\gamma`, SCAD
        :math:`1/(a - 1)`): coordinate steps use a curvature of at least twice it, so that each
        coordinate's problem is strictly convex and its prox moves continuously (no jump to
        another stationary point, e.g. away from 0 at ``strength_max``).
    """

    value: Callable
    prox: Callable
    factor: jax.Array
    coordinate_prox: Callable | None = None
    convex: bool = True
    dual_scale: Callable | None = None
    conjugate: Callable | None = None
    zero_threshold: Callable | None = None
    violation: Callable | None = None
    on_orthant: Callable | None = None
    blocks: np.ndarray | None = None
    block_prox: Callable | None = None
    differentiable: Callable | None = None
    concavity: object = 0.0


def _off_kink(w, slope_lam):
    """Separable penalties with slope ``slope_lam`` at 0: differentiable off 0, or without a
    kink there (``l2``, unpenalized coordinates)."""
    return (w != 0) | (slope_lam == 0)


def ratio(numerator, denominator):
    """``numerator / denominator`` with 0 where the denominator is 0 (or negative)."""
    return safe_divide(numerator, denominator, denominator > 0, 0)


def feasible_scale(norms, lam):
    """Largest kappa <= 1 with kappa * norms <= lam wherever lam > 0."""
    return 1 / jnp.maximum(1, jnp.max(ratio(norms, lam), initial=0))


class _Bounds(NamedTuple):
    """Per-coordinate bounds ``(d,)`` (infinite where unbounded)."""

    lower: jax.Array
    upper: jax.Array

    def tangent(self, v):
        """``v`` restricted to the directions that leave 0 inside the bounds."""
        inf = jnp.asarray(jnp.inf, v.dtype)
        return jnp.clip(v, jnp.where(self.lower < 0, -inf, 0), jnp.where(self.upper > 0, inf, 0))


def coordinate_bounds(options, m: int, dtype) -> _Bounds | None:
    """The bounds per coordinate ``(d,)`` (each feature's repeated over its ``m`` outputs), or
    None."""
    if options.lower is None:
        return None
    return _Bounds(*(jnp.repeat(jnp.asarray(x, dtype), m) for x in (options.lower, options.upper)))


def _per_coordinate(options, m: int) -> jax.Array:
    return jnp.repeat(options.penalty_factor, m)


def _smooth_l1(options, layout, *, slope, value, prox, newton: bool) -> Penalty:
    r"""The convex separable penalties, :math:`s |w| + \tfrac{c}{2} w^2` per coordinate with
    :math:`s = \text{slope} \cdot \lambda`, :math:`c = (1 - \text{slope}) \lambda` (l1: slope
    1, l2: 0, elastic net: ``l1_ratio``), clipped to the bounds.

    Their conjugate over the bounds is :math:`v w^\star - s|w^\star| - \tfrac{c}{2} w^{\star 2}`,
    :math:`w^\star` the unconstrained maximizer (:math:`\operatorname{soft}(v, s)/c`, or
    :math:`\pm\infty` where :math:`c = 0 < |v| - s`) clipped to the bounds; it is finite unless
    :math:`c = 0`, :math:`|v| > s` and the bound in the direction of :math:`v` is infinite,
    which the dual scaling excludes.
    """
    n_outputs, dtype = layout
    factor = _per_coordinate(options, n_outputs)
    bounds = coordinate_bounds(options, n_outputs, dtype)
    box = bounds or _Bounds(
        jnp.full(factor.shape, -jnp.inf, dtype), jnp.full(factor.shape, jnp.inf, dtype)
    )
    curvature = 1 - slope

    def dual_scale(v, lam):
        s, c = slope * lam, curvature * lam
        unbounded = jnp.where(v > 0, box.upper == jnp.inf, box.lower == -jnp.inf)
        capped = (c == 0) & (lam > 0) & unbounded
        return feasible_scale(jnp.where(capped, jnp.abs(v), 0), jnp.where(capped, s, 1))

    def conjugate(v, lam):
        s, c = slope * lam, curvature * lam
        soft = jnp.maximum(jnp.abs(v) - s, 0)
        free = jnp.where(c > 0, ratio(soft, c), jnp.where(soft > 0, jnp.inf, 0))
        w = jnp.clip(jnp.sign(v) * free, box.lower, box.upper)
        terms = v * w - s * jnp.abs(w) - c / 2 * w**2
        return jnp.sum(jnp.where((lam > 0) & jnp.isfinite(w), terms, 0))

    def on_orthant(w, signs, lam):
        if isinstance(curvature, float) and curvature == 0:  # l1: no curvature
            return lam * signs, None
        return slope * lam * signs + curvature * lam * w, curvature * lam

    def zero_threshold(grad, factor):
        top = jnp.max(ratio(jnp.abs(box.tangent(-grad)), factor), initial=0)
        return top / jnp.where(slope > 0, slope, _RIDGE_L1_RATIO)

    return Penalty(
        value=value,
        prox=lambda w, lam, step: jnp.clip(prox(w, lam, step), box.lower, box.upper),
        factor=factor,
        coordinate_prox=lambda x, lam, step, c: jnp.clip(
            prox(x, lam, step), box.lower[c], box.upper[c]
        ),
        dual_scale=dual_scale,
        conjugate=conjugate,
        zero_threshold=zero_threshold,
        violation=(
            None
            if isinstance(slope, float) and slope == 0
            else lambda grad, lam: jnp.abs(box.tangent(-grad)) - slope * lam
        ),
        on_orthant=on_orthant if newton and bounds is None else None,
        differentiable=lambda w, lam: _off_kink(w, slope * lam),
    )


def l1(options, layout, groups=None) -> Penalty:
    return _smooth_l1(options, layout, slope=1.0, value=_values.l1, prox=_l1_prox, newton=True)


def _l1_prox(w, lam, step):
    return _prox.l1(w, lam, scaling=step)


def elastic_net(options, layout, groups=None) -> Penalty:
    rho = options.l1_ratio
    return _smooth_l1(
        options,
        layout,
        slope=rho,
        value=lambda w, lam: _values.elastic_net(w, lam, l1_ratio=rho),
        prox=lambda w, lam, step: _prox.elastic_net(w, lam, scaling=step, l1_ratio=rho),
        newton=True,
    )


def l2(options, layout, groups=None) -> Penalty:
    return _smooth_l1(
        options,
        layout,
        slope=0.0,
        value=_values.l2,
        prox=lambda w, lam, step: _prox.l2(w, lam, scaling=step),
        newton=False,
    )


def _concave(value, prox, keyword: str, concavity: Callable):
    """MCP (``keyword="gamma"``) or SCAD (``"a"``): non-convex, their slope at 0 the strength
    (as the lasso's), their largest negative curvature ``concavity(option)``."""

    def build(options, layout, groups=None) -> Penalty:
        option = getattr(options, keyword)
        shape = {keyword: option}
        one = lambda w, lam, step: prox(w, lam, scaling=step, **shape)  # noqa: E731
        return Penalty(
            value=lambda w, lam: value(w, lam, **shape),
            prox=one,
            factor=_per_coordinate(options, layout[0]),
            coordinate_prox=lambda x, lam, step, c: one(x, lam, step),
            convex=False,
            zero_threshold=lambda grad, factor: jnp.max(ratio(jnp.abs(grad), factor), initial=0),
            violation=lambda grad, lam: jnp.abs(grad) - lam,
            differentiable=_off_kink,
            concavity=concavity(option),
        )

    return build


def group_index(groups, p: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The features of each group ``(n_groups, size)`` padded with ``p``, their flat coefficients
    (all outputs of each feature) ``(n_groups, size * m)`` padded with ``d = p m``, and the number
    of features in each group (groups sorted by id; ``groups`` None: each feature a group)."""
    groups = np.arange(p) if groups is None else np.asarray(groups)
    ids, sizes = np.unique(groups, return_counts=True)
    features = np.full((ids.size, sizes.max()), p)
    for row, gid in enumerate(ids):
        members = np.flatnonzero(groups == gid)
        features[row, : members.size] = members
    flat = features[:, :, None] * m + np.arange(m)
    flat = np.where(features[:, :, None] < p, flat, p * m).reshape(ids.size, -1)
    return features, flat, sizes


def _bounded_group_prox(x, threshold, lower, upper, n_steps: int):
    r"""The prox of :math:`\tau \|y\|_2` within the box :math:`[l, u] \ni 0`, per group (rows).

    Where :math:`y \ne 0` the optimality condition is that of the separable problem with the
    norm's gradient frozen, so :math:`y = \operatorname{clip}(t x, l, u)` with
    :math:`t = r / (r + \tau)`, :math:`r = \|y\|`: ``t`` is the root in (0, 1) of
    :math:`\psi(t) = (1 - t)\|\operatorname{clip}(t x)\| - \tau t`, unique since the problem is
    strongly convex, and found by bisection (:math:`\psi > 0` below it). :math:`y = 0` is optimal
    iff the part of ``x`` along the directions the box allows from 0 has norm at most
    :math:`\tau`. Without bounds this is group soft thresholding.
    """
    inf = jnp.asarray(jnp.inf, x.dtype)
    allowed = jnp.clip(x, jnp.where(lower < 0, -inf, 0), jnp.where(upper > 0, inf, 0))
    zero = jnp.linalg.norm(allowed, axis=1, keepdims=True) <= threshold

    def halve(_, interval):
        low, high = interval
        t = (low + high) / 2
        below = (1 - t) * jnp.linalg.norm(jnp.clip(t * x, lower, upper), axis=1, keepdims=True)
        beyond = below < threshold * t
        return jnp.where(beyond, low, t), jnp.where(beyond, t, high)

    start = (jnp.zeros_like(threshold), jnp.ones_like(threshold))
    t = jax.lax.fori_loop(0, n_steps, halve, start)[1]
    return jnp.where(zero, 0, jnp.clip(t * x, lower, upper))


def group_lasso(options, layout, groups) -> Penalty:
    r"""Groups of features (``groups`` ids, all outputs of a feature in its group; None: each
    feature across its outputs), :math:`\lambda_g (\rho \|w_g\| + \frac{1 - \rho}{2}
    \|w_g\|^2)` with :math:`\lambda_g` the strength times ``group_weights`` (default: the square
    root of the number of features in the group) and :math:`\rho` = ``l1_ratio`` (1: the group
    lasso; below, glmnet's ``mgaussian`` and grouped ``multinomial`` elastic net, scikit-learn's
    ``MultiTaskElasticNet``). Its prox shrinks by the ridge part after the group soft
    thresholding (within bounds, :func:`_bounded_group_prox` on the shrunk point)."""
    n_outputs, dtype = layout
    p = options.penalty_factor.shape[0]
    features, index, sizes = group_index(groups, p, n_outputs)
    d = p * n_outputs
    rho = options.l1_ratio
    weights = options.group_weights
    factor = jnp.asarray(np.sqrt(sizes) if weights is None else weights, dtype)
    bounds = coordinate_bounds(options, n_outputs, dtype)
    n_steps = 2 * jnp.finfo(dtype).nmant + 8  # bisection to rounding

    def gather(w, fill=0):
        return jnp.append(w, jnp.asarray(fill, w.dtype))[index]

    def scatter(w_groups):
        return jnp.zeros(d + 1, w_groups.dtype).at[index].set(w_groups)[:d]

    def tangent(v):
        return v if bounds is None else bounds.tangent(v)

    def group_prox(x, lam, step, lower, upper):
        """The prox of rows ``x (G, s)`` with their strengths ``lam (G,)`` and bounds."""
        shrink = (1 + step * (1 - rho) * lam)[:, None]
        threshold = (step * rho * lam)[:, None] / shrink
        if bounds is None:
            return _prox.group_lasso(x / shrink, threshold[:, 0], axis=1)
        return _bounded_group_prox(x / shrink, threshold, lower, upper, n_steps)

    def prox(w, lam, step):
        lower, upper = (
            (None, None) if bounds is None else (gather(bounds.lower), gather(bounds.upper))
        )
        return scatter(group_prox(gather(w), lam, step, lower, upper))

    def block_prox(x, lam, step, g):
        lower, upper = (
            (None, None)
            if bounds is None
            else (gather(bounds.lower)[g][None], gather(bounds.upper)[g][None])
        )
        return group_prox(x[None], lam[None], step, lower, upper)[0]

    def norms(v):
        return jnp.linalg.norm(gather(v), axis=1)

    def value(w, lam):
        groups_of_w = gather(w)
        ridge = jnp.sum(lam * jnp.sum(groups_of_w**2, axis=1)) * (1 - rho) / 2
        return rho * _values.group_lasso(groups_of_w, lam, axis=1) + ridge

    def dual_scale(v, lam):
        return jnp.where(rho < 1, jnp.ones((), v.dtype), feasible_scale(norms(v), lam))

    def conjugate(v, lam):
        excess = jnp.maximum(norms(v) - rho * lam, 0)
        return jnp.sum(ratio(excess**2, 2 * (1 - rho) * lam))

    def slack(grad, lam):
        return norms(tangent(-grad)) - rho * lam

    def differentiable(w, lam):
        """Every coordinate of a group off 0 (its zeros too), or unpenalized."""
        smooth = ((norms(w) > 0) | (lam == 0)).astype(w.dtype)
        return scatter(jnp.broadcast_to(smooth[:, None], index.shape)) > 0

    return Penalty(
        value=value,
        prox=prox,
        factor=factor,
        dual_scale=None if bounds else dual_scale,
        conjugate=None if bounds else conjugate,
        zero_threshold=lambda grad, factor: (
            jnp.max(ratio(norms(tangent(-grad)), factor), initial=0) / rho
        ),
        violation=slack,
        blocks=features,
        block_prox=block_prox,
        differentiable=differentiable,
    )


def from_pair(pair) -> Family:
    """A penalty from a user's ``(value, prox)`` with the signatures of ``jreg.penalties.X`` and
    ``jreg.prox.X``: per-coordinate strengths, no structure known (solved by proximal gradient,
    stopping on the gradient mapping), ``strengths`` required."""
    value, prox = pair

    def build(options, layout, groups=None) -> Penalty:
        return Penalty(
            value=value,
            prox=lambda w, lam, step: prox(w, lam, scaling=step),
            factor=_per_coordinate(options, layout[0]),
            convex=False,
        )

    return Family(build)


PENALTIES: dict[str, Family] = {
    "l1": Family(l1),
    "elastic_net": Family(elastic_net, ("l1_ratio",)),
    "group_lasso": Family(group_lasso, ("groups", "group_weights", "l1_ratio")),
    "mcp": Family(_concave(_values.mcp, _prox.mcp, "gamma", lambda g: 1 / g), ("gamma",)),
    "scad": Family(_concave(_values.scad, _prox.scad, "a", lambda a: 1 / (a - 1)), ("a",)),
    "l2": Family(l2),
}
CONVEX = ("l1", "elastic_net", "group_lasso", "l2")  # the penalties that take bounds


def check_bounds(bounds, p: int, dtype) -> tuple[jax.Array, jax.Array]:
    """``(lower, upper)``: scalars or ``(p,)``, ``lower <= 0 <= upper`` (infinities allowed), as
    glmnet's ``lower.limits`` and ``upper.limits``."""
    if not isinstance(bounds, tuple | list) or len(bounds) != 2:
        raise ValueError(f"bounds must be a pair (lower, upper), got {bounds!r}")
    try:
        lower, upper = (jnp.broadcast_to(jnp.asarray(x, dtype), (p,)) for x in bounds)
    except (TypeError, ValueError) as error:
        raise ValueError(f"bounds must be scalars or arrays of shape ({p},): {error}") from None
    check("bounds", upper - lower, lambda gap: gap >= 0, "(lower, upper) with lower <= upper")
    check("bounds", lower, lambda x: x <= 0, "(lower, upper) with lower <= 0 (as glmnet)")
    check("bounds", upper, lambda x: x >= 0, "(lower, upper) with upper >= 0 (as glmnet)")
    return lower, upper
