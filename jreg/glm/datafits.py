r"""Datafits of :mod:`jreg.glm`: per-sample losses of the linear predictor.

A :class:`Datafit` is a NamedTuple of pure functions of the linear predictor ``z (n, m)`` and the
prepared targets ``y (n, m)`` (``m`` outputs or classes; 1 for a single response). The solvers
ask a datafit for what they need and never for its name: its loss and gradient, the per-sample
Hessian :math:`\operatorname{diag}(d_i) - q_i q_i^\top` that proximal Newton needs, a bound on
that Hessian where one exists (fixed gradient steps), the convex conjugate where a duality gap is
known, the best intercept at :math:`w = 0` where it has a closed form, and how to read labels.

=============== ====================================================== =========================
name            per-sample loss :math:`f(z, y)`                        matches
=============== ====================================================== =========================
``squared``     :math:`\tfrac12 \|y - z\|^2` (``m`` outputs)           sklearn ``Lasso``,
                                                                       ``MultiTaskLasso``;
                                                                       glmnet gaussian/mgaussian
``logistic``    :math:`\log(1 + e^{-s z})`, :math:`s = \pm 1`          sklearn
                (labels {0, 1} or {-1, 1})                             ``LogisticRegression``
``multinomial`` :math:`\log \sum_c e^{z_c} - z_y` (labels ``0..C-1``)  glmnet multinomial
``poisson``     :math:`e^z - y z - (y - y \log y)` (the half deviance) glmnet poisson, sklearn
                                                                       ``PoissonRegressor``
``huber``       :math:`r^2/2` if :math:`|r| \le \delta` else           skglm ``Huber(delta)``
                :math:`\delta |r| - \delta^2/2`, :math:`r = y - z`
=============== ====================================================== =========================

Every loss is at least 0, its infimum over ``z``, so that ``tol`` (relative to the objective at
:math:`w = 0`) and the deviance scores mean the same for all of them. ``from_loss(loss)`` makes a
datafit of a user's smooth convex loss ``loss(z, y) -> (n,)`` (gradient and curvature by
autodiff; no conjugate: its solves stop on a KKT residual).

Adding a datafit is one definition (a function of the traced options returning a
:class:`Datafit`) and one entry of :data:`DATAFITS`.
"""

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jreg._checks import as_array, check, is_traced

__all__ = ["DATAFITS", "Datafit", "Family", "from_loss", "with_offset"]


class Datafit(NamedTuple):
    """What the solvers need of a datafit; ``z`` and ``y`` are ``(n, m)``.

    Attributes:
      loss: ``(z, y) -> (n,)`` per-sample losses, each at least 0.
      gradient: ``(z, y) -> (n, m)``, the loss's derivative in ``z``.
      curvature: ``(z, y) -> (d, q)``: the per-sample Hessian in ``z`` is
        :math:`\\operatorname{diag}(d_i) - q_i q_i^\\top` (``q`` None: diagonal), positive
        definite (a datafit may floor it where the loss is flat).
      prepare: ``(y, weights) -> (n, m)`` targets in the encoding of the functions above, from
        the user's ``y``; checks the labels where they are concrete.
      mean: ``z (..., m) -> (..., m)`` the model's mean response (the inverse link).
      curvature_bound: an upper bound on the Hessian's eigenvalues over all ``z``, or None.
      conjugate: ``(u, y) -> (n,)`` the loss's convex conjugate :math:`f^*(u)`, inf outside
        its domain (the duality gap scales its dual point into it), or None (no duality gap is
        known).
      intercept_at_zero: ``(y, a) -> (m,)`` the best intercept when ``w = 0``, or None (fitted).
      classify: ``(response (..., m)) -> (...)`` class indices, for classifiers (of ``mean(z)``
        or ``y``).
      quadratic: the squared loss (curvature 1 everywhere): solved on its Gram matrix.
      shift_invariant: the loss is unchanged by one shift of every output of ``z``
        (multinomial): the intercepts are reported centred, their sum 0 (as glmnet's).
      residual: the loss is a function of ``z - y`` (squared, Huber): an offset is taken
        off ``y``.
    """

    loss: Callable
    gradient: Callable
    curvature: Callable
    prepare: Callable
    mean: Callable
    curvature_bound: float | None = None
    conjugate: Callable | None = None
    intercept_at_zero: Callable | None = None
    classify: Callable | None = None
    quadratic: bool = False
    shift_invariant: bool = False
    residual: bool = False


class Family(NamedTuple):
    """A registry entry: ``build(options) -> value`` (``options`` the traced numbers of
    :func:`jreg.glm.path`) and the keywords of ``path`` it reads (giving any other raises)."""

    build: Callable
    options: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# Label checks (concrete values raise; traced ones that would fail are NaN, which the path
# carries into every result).


def _finite(y, dtype) -> jax.Array:
    y = as_array(y, dtype)
    check("y", y, np.isfinite, "finite (no NaN or inf)")
    return y


def _single(y, dtype) -> jax.Array:
    """A single response ``(n,)`` as a column ``(n, 1)``."""
    y = _finite(y, dtype)
    if y.ndim != 1:
        raise ValueError(f"y must have shape (n_samples,) for this datafit, got {y.shape}")
    return y[:, None]


def _responses(y, weights) -> jax.Array:
    """Regression targets ``(n,)`` or ``(n, m)``, as ``(n, m)``."""
    shape = np.shape(y)
    if len(shape) not in (1, 2) or shape[1:] == (0,):
        raise ValueError(f"y must have shape (n_samples,) or (n_samples, n_outputs), got {shape}")
    host = y if isinstance(y, jax.Array) else np.asarray(y)  # reshaped on the host
    return _finite(host.reshape(shape[0], -1), weights.dtype)


def _binary_labels(y, weights) -> jax.Array:
    """Labels {0, 1} or {-1, 1} as {0, 1}; both classes must have weight."""
    y = _single(y, weights.dtype)
    if not is_traced((y, weights)):
        classes = np.unique(np.asarray(y)[np.asarray(weights) > 0])
        if not (set(classes) <= {0.0, 1.0} or set(classes) <= {-1.0, 1.0}):
            raise ValueError(f"y must hold labels in {{0, 1}} or {{-1, 1}}, got {classes[:5]}")
        if classes.size < 2:
            raise ValueError(f"y must hold both classes for logistic, got only {classes}")
    zero, minus = jnp.any(y == 0), jnp.any(y == -1)
    valid = (y == 1) | ((y == 0) & ~minus) | ((y == -1) & ~zero)
    return jnp.where(valid, y > 0, jnp.nan).astype(weights.dtype)


def _class_labels(y, weights) -> jax.Array:
    """Integer labels ``0..C-1`` (each class with weight, where the weights are concrete) as
    one-hot rows ``(n, C)``."""
    if is_traced(y):
        raise ValueError("y must be concrete for datafit='multinomial': its classes are a shape")
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ValueError(f"y must hold one integer label per sample, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.number) or not np.all(np.isfinite(labels)):
        raise ValueError(f"y must hold integer labels 0..C-1, got {labels[:5]}")
    if not np.all(labels == np.round(labels)) or labels.min(initial=0) < 0:
        raise ValueError(f"y must hold integer labels 0..C-1, got {np.unique(labels)[:5]}")
    labels = labels.astype(np.int64)
    weighted = np.asarray(weights) > 0 if not is_traced(weights) else slice(None)
    present = np.unique(labels[weighted])
    n_classes = int(labels.max()) + 1
    if present.size < 2 or present.size != n_classes:
        raise ValueError(
            f"y must hold labels 0..C-1 with every class present (C >= 2), got classes {present}"
        )
    return jax.nn.one_hot(labels, n_classes, dtype=weights.dtype)


def _counts(y, weights) -> jax.Array:
    """Non-negative integer counts, not all zero."""
    y = _single(y, weights.dtype)
    check("y", y, lambda c: (c >= 0) & (c == np.round(c)), "non-negative integer counts")
    if not is_traced((y, weights)):
        check("y", jnp.sum(weights * y[:, 0]), lambda s: s > 0, "not all zero (counts)")
    return jnp.where((y >= 0) & (y == jnp.round(y)), y, jnp.nan)


# --------------------------------------------------------------------------------------------
# The datafits.


def _entropy(v):
    """:math:`\\sum v \\log v` over the last axis (``0 log 0 = 0``; inf where some
    ``v < 0``, outside the domain)."""
    return jnp.sum(jnp.where(v >= 0, jax.scipy.special.xlogy(v, v), jnp.inf), axis=-1)


def squared(options=None) -> Datafit:
    return Datafit(
        loss=lambda z, y: jnp.sum((z - y) ** 2, axis=1) / 2,
        gradient=lambda z, y: z - y,
        curvature=lambda z, y: (jnp.ones_like(z), None),
        prepare=_responses,
        mean=lambda z: z,
        curvature_bound=1.0,
        conjugate=lambda u, y: jnp.sum(u**2 / 2 + u * y, axis=1),
        intercept_at_zero=lambda y, a: a @ y,
        quadratic=True,
        residual=True,
    )


def logistic(options=None) -> Datafit:
    r"""Labels ``y`` in {0, 1}, signs :math:`s = 2y - 1`; :math:`f^*(u) = h(|u|)` with
    :math:`h(t) = t \log t + (1 - t) \log(1 - t)` (``|u| = kappa * sigmoid(-s z)`` <= 1)."""

    def gradient(z, y):
        sign = 2 * y - 1
        return -sign * jax.nn.sigmoid(-sign * z)  # no cancellation where the fit is good

    def conjugate(u, y):  # inf outside its domain, -u (2 y - 1) in [0, 1]
        t = -(2 * y - 1) * u
        entropy = jax.scipy.special.xlogy(t, t) + jax.scipy.special.xlog1py(1 - t, -t)
        return jnp.sum(jnp.where((t >= 0) & (t <= 1), entropy, jnp.inf), 1)

    def intercept_at_zero(y, a):
        q = a @ y
        return jnp.log(q) - jnp.log1p(-q)

    def curvature(z, y):
        p = jax.nn.sigmoid(z)
        return p * (1 - p), None

    return Datafit(
        loss=lambda z, y: jnp.sum(jnp.logaddexp(0, -(2 * y - 1) * z), axis=1),
        gradient=gradient,
        curvature=curvature,
        prepare=_binary_labels,
        mean=jax.nn.sigmoid,
        curvature_bound=0.25,
        conjugate=conjugate,
        intercept_at_zero=intercept_at_zero,
        classify=lambda response: (response[..., 0] > 0.5).astype(jnp.int32),
    )


def multinomial(options=None) -> Datafit:
    r"""One-hot ``y (n, C)``; Hessian :math:`\operatorname{diag}(p) - p p^\top` (at most 1/2);
    :math:`f^*(u) = \sum_c v_c \log v_c` with :math:`v = u + y` in the simplex. The intercepts
    are defined up to a common shift."""

    def intercept_at_zero(y, a):
        log_share = jnp.log(a @ y)
        return log_share - jnp.mean(log_share)

    def curvature(z, y):
        p = jax.nn.softmax(z, axis=1)
        return p, p

    return Datafit(
        loss=lambda z, y: jax.nn.logsumexp(z, axis=1) - jnp.sum(y * z, axis=1),
        gradient=lambda z, y: jax.nn.softmax(z, axis=1) - y,
        curvature=curvature,
        prepare=_class_labels,
        mean=lambda z: jax.nn.softmax(z, axis=-1),
        curvature_bound=0.5,
        conjugate=lambda u, y: _entropy(u + y),
        intercept_at_zero=intercept_at_zero,
        classify=lambda response: jnp.argmax(response, axis=-1),
        shift_invariant=True,
    )


def poisson(options=None) -> Datafit:
    r"""Counts ``y``, log link; the loss is the half deviance (its minimum 0 at ``z = log y``);
    :math:`f^*(u) = v \log v - v - (y \log y - y)`, :math:`v = u + y \ge 0`."""

    def saturated(y):  # the loss's constant: y log y - y
        return jnp.sum(jax.scipy.special.xlogy(y, y) - y, axis=1)

    def loss(z, y):
        return jnp.sum(jnp.exp(z) - y * z, axis=1) + saturated(y)

    return Datafit(
        loss=loss,
        gradient=lambda z, y: jnp.exp(z) - y,
        curvature=lambda z, y: (jnp.exp(z), None),
        prepare=_counts,
        mean=jnp.exp,
        conjugate=lambda u, y: _entropy(u + y) - jnp.sum(u + y, axis=1) - saturated(y),
        intercept_at_zero=lambda y, a: jnp.log(a @ y),
    )


_HUBER_FLOOR = 1e-2  # the curvature proximal Newton gives a sample on the loss's linear part


def huber(options) -> Datafit:
    r"""Residuals :math:`r = z - y`; gradient :math:`\operatorname{clip}(r, \pm\delta)`;
    :math:`f^*(u) = u^2/2 + u y` on :math:`|u| \le \delta`. The curvature is 1 on the quadratic
    part and floored at 1e-2 on the linear part (where it is 0), so that proximal Newton's models
    stay strictly convex; its line search and stopping rule use the exact loss."""
    delta = options.delta

    def loss(z, y):
        r = z - y  # not |z - y| squared: its second derivative at r = 0 would be 0, not 1
        quadratic = jnp.abs(r) <= delta
        return jnp.sum(jnp.where(quadratic, r**2 / 2, delta * jnp.abs(r) - delta**2 / 2), axis=1)

    return Datafit(
        loss=loss,
        gradient=lambda z, y: jnp.clip(z - y, -delta, delta),
        curvature=lambda z, y: (jnp.where(jnp.abs(z - y) <= delta, 1.0, _HUBER_FLOOR), None),
        prepare=lambda y, weights: _single(y, weights.dtype),
        mean=lambda z: z,
        curvature_bound=1.0,
        conjugate=lambda u, y: jnp.sum(jnp.where(abs(u) <= delta, u**2 / 2 + u * y, jnp.inf), 1),
        residual=True,
    )


def with_offset(datafit: Datafit, offset: jax.Array) -> Datafit:
    r"""The datafit of the linear predictor ``z + offset`` (``offset (n, m)``, fixed: glmnet's
    ``offset``): :math:`f_o(z) = f(z + o)`, whose conjugate is :math:`f^*(u) - u^\top o`; the
    best intercept at :math:`w = 0` has no closed form any more (it is fitted)."""
    shifted = lambda function: lambda z, y: function(z + offset, y)  # noqa: E731
    conjugate = None
    if datafit.conjugate is not None:
        conjugate = lambda u, y: datafit.conjugate(u, y) - jnp.sum(u * offset, axis=1)  # noqa: E731
    return datafit._replace(
        loss=shifted(datafit.loss),
        gradient=shifted(datafit.gradient),
        curvature=shifted(datafit.curvature),
        mean=lambda z: datafit.mean(z + jnp.broadcast_to(offset, z.shape)),  # z (..., n, m)
        conjugate=conjugate,
        intercept_at_zero=None,
    )


@functools.cache  # the same loss gives the same datafit: compiled programs are reused
def from_loss(loss: Callable) -> Datafit:
    """A datafit from a user's loss ``loss(z, y) -> (n,)`` (``z``, ``y`` of shape ``(n,)``),
    smooth and convex in ``z``: the gradient by autodiff, the per-sample curvature as the
    derivative of the gradient along a vector of ones (exact for per-sample losses), floored
    at 1e-6 of its largest value. No conjugate: solves stop on a KKT residual."""

    def column(z, y):
        losses = loss(z[:, 0], y[:, 0])
        if jnp.shape(losses) != z.shape[:1]:
            raise ValueError(
                f"datafit: a loss(z, y) must return one loss per sample, shape {z.shape[:1]}, "
                f"got {jnp.shape(losses)}"
            )
        return losses

    def gradient(z, y):
        return jax.grad(lambda z: jnp.sum(column(z, y)))(z)

    def curvature(z, y):
        h = jax.jvp(lambda z: gradient(z, y), (z,), (jnp.ones_like(z),))[1]
        h = jnp.maximum(h, 0)
        return jnp.maximum(h, 1e-6 * jnp.max(h) + jnp.finfo(z.dtype).tiny), None

    return Datafit(
        loss=column,
        gradient=gradient,
        curvature=curvature,
        prepare=lambda y, weights: _single(y, weights.dtype),
        mean=lambda z: z,
    )


DATAFITS: dict[str, Family] = {
    "squared": Family(squared),
    "logistic": Family(logistic),
    "multinomial": Family(multinomial),
    "poisson": Family(poisson),
    "huber": Family(huber, ("delta",)),
}
