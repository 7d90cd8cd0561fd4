r"""Optax gradient transformations built from :mod:`jreg.penalties` and :mod:`jreg.prox`.

Three ways to put a penalty :math:`P` into an optax chain, and two optimizers:

* :func:`add_penalty_gradient` adds :math:`\nabla P(w)` to the gradients: the coupled form, as
  PyTorch's ``weight_decay``; put it first, before the optimizer's scaling.
* :func:`proximal` moves the parameters to :math:`\operatorname{prox}_{\eta_t P}(w + u)` after
  the step :math:`u`; put it last, after the learning rate :math:`\eta_t`. It gives exact zeros.
* :func:`projected` projects the parameters onto a constraint set (the constraint form).
* :func:`proximal_adam` and :func:`proximal_adagrad` take the prox in the adaptive optimizer's
  own diagonal metric. A Euclidean :func:`proximal` after ``optax.adam`` is not the right
  operator: its fixed points are not the minimizers of the regularized objective.

Every factory returns a plain ``optax.GradientTransformation`` that needs ``params`` in
``update``; they compose with ``optax.chain``, ``optax.masked``, ``optax.partition`` and flax.
A strength given as an array is traced, so a new value never recompiles a jitted step, and
concrete strengths and learning rates are validated when the transformation is built. The
options of a penalty (``l1_ratio``, ``axis``, ``gamma``, ...) pass in one dict
(``penalty_kwargs``, ``prox_kwargs``, ``projection_kwargs``) rather than ``**kwargs``, which
keeps ``optax.inject_hyperparams`` working: strengths and learning rates become injectable
hyperparameters, and a callable such as ``prox`` goes in its ``static_args``.
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from optax._src.base import NO_PARAMS_MSG

from jreg import prox as _prox
from jreg._checks import check, check_callable, check_strength

__all__ = [
    "ProximalAdaptiveState",
    "ProximalState",
    "add_penalty_gradient",
    "projected",
    "proximal",
    "proximal_adagrad",
    "proximal_adam",
]


class ProximalState(NamedTuple):
    """State of :func:`proximal`."""

    count: jax.Array  # int32 step count, the argument of the learning-rate schedule


class ProximalAdaptiveState(NamedTuple):
    """State of :func:`proximal_adam` and :func:`proximal_adagrad`."""

    count: jax.Array  # int32 step count, the argument of the learning-rate schedule
    preconditioner: optax.OptState  # the state of optax.scale_by_adam or optax.scale_by_rss


def _check_learning_rate(learning_rate: optax.ScalarOrSchedule) -> None:
    if not callable(learning_rate):
        check(
            "learning_rate",
            learning_rate,
            lambda lr: np.isfinite(lr) & (lr >= 0),
            "finite and non-negative, or a schedule",
        )


def _check_prox(prox, *, elementwise: bool) -> None:
    check_callable("prox", prox, "a function of jreg.prox, such as jreg.prox.l1")
    if elementwise and prox in (_prox.group_lasso, _prox.linf, _prox.nuclear):
        raise ValueError(
            f"prox must be elementwise (it gets a scaling per coordinate): prox.l1, l2, "
            f"elastic_net, l0, mcp or scad, got prox.{prox.__name__}"
        )


def _options(name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"{name} must be a dict of keyword arguments or None, got {options!r}")
    return dict(options)


def _require_params(updates: optax.Updates, params: optax.Params | None) -> None:
    """``params`` given, and ``updates`` of their structure and shapes."""
    if params is None:
        raise ValueError(NO_PARAMS_MSG)
    shapes = [jnp.shape(x) for x in jax.tree.leaves(updates)]
    expected = [jnp.shape(x) for x in jax.tree.leaves(params)]
    if jax.tree.structure(updates) != jax.tree.structure(params) or shapes != expected:
        raise ValueError(
            f"updates must have the structure and shapes of params, got {shapes} for {expected}"
        )


def _zero_count() -> jax.Array:
    return jnp.zeros([], jnp.int32)


def _value_at(learning_rate: optax.ScalarOrSchedule, count: jax.Array):
    return learning_rate(count) if callable(learning_rate) else learning_rate


def _move_to(new_params: Callable[[optax.Params], optax.Params], updates, params):
    """The updates that take ``params`` to ``new_params(params + updates)``, in their dtypes.

    A coordinate that ``new_params`` sets to zero is exactly zero after
    ``optax.apply_updates``, since ``w + (0 - w) == 0`` in floating point.
    """
    new = optax.tree.cast_like(new_params(optax.apply_updates(params, updates)), params)
    return optax.tree.sub(new, params)


def add_penalty_gradient(
    penalty: Callable[..., jax.Array],
    strength: Any,
    *,
    penalty_kwargs: Mapping[str, Any] | None = None,
) -> optax.GradientTransformation:
    r"""Adds the gradient of a penalty to the updates (coupled regularization).

    .. math:: u \leftarrow u + \nabla_w P(w; s)

    For ``penalties.l2`` this is ``optax.add_decayed_weights(s)`` and PyTorch's
    ``weight_decay=s``; for ``penalties.l1`` it adds the subgradient
    :math:`s \operatorname{sign}(w)`, which never gives exact zeros (use :func:`proximal` for
    that). Put it before the optimizer's scaling, so that the penalty's gradient is scaled like
    the loss's.

    Args:
      penalty: a function of :mod:`jreg.penalties` (or any ``penalty(params, strength, **kw)``).
      strength: non-negative scalar, array or pytree prefix of the params.
      penalty_kwargs: the penalty's options, e.g. ``{"l1_ratio": 0.5}``.

    Returns:
      An ``optax.GradientTransformation`` whose ``update`` needs ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jreg
      >>> tx = jreg.add_penalty_gradient(jreg.penalties.l1, 0.5)
      >>> params = jnp.array([2.0, -1.0])
      >>> updates, _ = tx.update(jnp.zeros(2), tx.init(params), params)
      >>> print(updates)
      [ 0.5 -0.5]
    """
    check_callable("penalty", penalty, "a function of jreg.penalties, such as jreg.penalties.l1")
    check_strength(strength)
    options = _options("penalty_kwargs", penalty_kwargs)
    gradient = jax.grad(penalty)

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        _require_params(updates, params)
        return optax.tree.add(updates, gradient(params, strength, **options)), state

    return optax.GradientTransformation(init_fn, update_fn)


def proximal(
    prox: Callable[..., optax.Params],
    strength: Any,
    learning_rate: optax.ScalarOrSchedule,
    *,
    prox_kwargs: Mapping[str, Any] | None = None,
) -> optax.GradientTransformation:
    r"""Proximal step: moves the parameters to the prox of the penalty after the update.

    With :math:`u` the incoming update (already scaled by :math:`-\eta_t`),

    .. math:: w_{t+1} = \operatorname{prox}_{\eta_t P}(w_t + u), \qquad
       \text{so the update becomes } \operatorname{prox}_{\eta_t P}(w_t + u) - w_t.

    After ``optax.sgd(eta)`` this is proximal gradient descent (ISTA for ``prox.l1``), which
    converges to a minimizer of :math:`f + P` for a step :math:`\eta \le 1/L`. Put it last in the
    chain, and give it the same learning rate (or schedule) as the optimizer: it counts its own
    steps, so a schedule is followed step by step. The prox sets coordinates to exactly zero.

    Args:
      prox: a function of :mod:`jreg.prox` (or any ``prox(x, strength, *, scaling, **kw)``).
      strength: non-negative scalar, array or pytree prefix of the params.
      learning_rate: the optimizer's learning rate :math:`\eta_t`, a float or an optax schedule.
      prox_kwargs: the prox's options, e.g. ``{"axis": 1}`` for ``prox.group_lasso``.

    Returns:
      An ``optax.GradientTransformation`` whose ``update`` needs ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import jreg
      >>> tx = optax.chain(optax.sgd(0.5), jreg.proximal(jreg.prox.l1, 1.0, 0.5))
      >>> params = jnp.array([2.0, 0.25, -1.0])
      >>> updates, _ = tx.update(jnp.zeros(3), tx.init(params), params)
      >>> print(optax.apply_updates(params, updates))
      [ 1.5  0.  -0.5]

      The strength can be injected, traced and vmapped:

      >>> tx = optax.inject_hyperparams(jreg.proximal, static_args=("prox",))(
      ...     jreg.prox.l1, strength=1.0, learning_rate=0.5)
    """
    _check_prox(prox, elementwise=False)
    check_strength(strength)
    _check_learning_rate(learning_rate)
    options = _options("prox_kwargs", prox_kwargs)

    def init_fn(params):
        del params
        return ProximalState(count=_zero_count())

    def update_fn(updates, state, params=None):
        _require_params(updates, params)
        scaling = _value_at(learning_rate, state.count)
        updates = _move_to(lambda w: prox(w, strength, scaling=scaling, **options), updates, params)
        return updates, ProximalState(count=optax.safe_int32_increment(state.count))

    return optax.GradientTransformation(init_fn, update_fn)


def projected(
    projection: Callable[..., optax.Params],
    *,
    projection_kwargs: Mapping[str, Any] | None = None,
) -> optax.GradientTransformation:
    r"""Projects the parameters onto a constraint set after the update.

    .. math:: w_{t+1} = \Pi_C(w_t + u)

    The constraint form of regularization (e.g. :math:`\|w\|_1 \le r` instead of a penalty
    :math:`s \|w\|_1`); put it last in the chain. ``optax.projections`` has the projections onto
    the L1, L2 and L-infinity balls, boxes, the simplex and the non-negative orthant. They act on
    the whole pytree at once; wrap the chain in ``optax.masked`` to constrain some leaves only.

    Args:
      projection: e.g. ``optax.projections.projection_l1_ball``, called as
        ``projection(params, **projection_kwargs)``.
      projection_kwargs: its options, e.g. ``{"scale": 2.0}`` for the ball's radius.

    Returns:
      An ``optax.GradientTransformation`` whose ``update`` needs ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import jreg
      >>> tx = jreg.projected(optax.projections.projection_box,
      ...                     projection_kwargs={"lower": -1.0, "upper": 1.0})
      >>> params = jnp.array([0.5, 0.0])
      >>> updates, _ = tx.update(jnp.array([2.0, -0.5]), tx.init(params), params)
      >>> print(optax.apply_updates(params, updates))
      [ 1.  -0.5]
    """
    check_callable("projection", projection, "a function such as optax.projections.projection_box")
    options = _options("projection_kwargs", projection_kwargs)

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        _require_params(updates, params)
        return _move_to(lambda w: projection(w, **options), updates, params), state

    return optax.GradientTransformation(init_fn, update_fn)


def _proximal_preconditioned(
    preconditioner: optax.GradientTransformation,
    inverse_metric: Callable[[optax.OptState], optax.Updates],
    learning_rate: optax.ScalarOrSchedule,
    strength: Any,
    prox: Callable[..., optax.Params],
    prox_kwargs: Mapping[str, Any] | None,
) -> optax.GradientTransformation:
    """A preconditioned step followed by the prox in the same diagonal metric.

    ``preconditioner`` maps gradients to the direction :math:`d = D^{-1} m`; ``inverse_metric``
    reads the diagonal of :math:`D^{-1}` from its updated state. The prox then gets the
    per-coordinate ``scaling`` :math:`\\eta_t D^{-1}`.
    """
    _check_prox(prox, elementwise=True)
    check_strength(strength)
    _check_learning_rate(learning_rate)
    options = _options("prox_kwargs", prox_kwargs)

    def init_fn(params):
        return ProximalAdaptiveState(_zero_count(), preconditioner.init(params))

    def update_fn(updates, state, params=None):
        _require_params(updates, params)
        direction, inner = preconditioner.update(updates, state.preconditioner, params)
        eta = _value_at(learning_rate, state.count)
        # a NaN gradient's coordinate: scaling 0, so that the prox keeps its NaN step
        scaling = jax.tree.map(lambda c: jnp.where(jnp.isnan(c), 0, eta * c), inverse_metric(inner))
        updates = _move_to(
            lambda w: prox(w, strength, scaling=scaling, **options),
            optax.tree.scale(-eta, direction),
            params,
        )
        return updates, ProximalAdaptiveState(optax.safe_int32_increment(state.count), inner)

    return optax.GradientTransformation(init_fn, update_fn)


def proximal_adam(
    learning_rate: optax.ScalarOrSchedule,
    strength: Any,
    *,
    prox: Callable[..., optax.Params] = _prox.l1,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    prox_kwargs: Mapping[str, Any] | None = None,
) -> optax.GradientTransformation:
    r"""Proximal Adam: the Adam step, then the prox in Adam's diagonal metric.

    With Adam's bias-corrected moments :math:`\hat m_t, \hat v_t` and
    :math:`D_t = \operatorname{diag}(\sqrt{\hat v_t} + \epsilon)`,

    .. math:: w_{t+1} = \operatorname*{argmin}_y \; \tfrac{1}{2 \eta_t} \|y - z\|_{D_t}^2 + P(y),
       \qquad z = w_t - \eta_t D_t^{-1} \hat m_t,

    i.e. the prox with the per-coordinate ``scaling`` :math:`\eta_t / (\sqrt{\hat v_t} +
    \epsilon)`; for ``prox.l1`` the threshold is :math:`\eta_t s / (\sqrt{\hat v_t} + \epsilon)`.
    Its fixed points are the minimizers of :math:`f + P` for any separable penalty, which
    ``optax.chain(optax.adam(eta), proximal(prox, s, eta))`` does not have: the Euclidean
    threshold :math:`\eta_t s` is compared with Adam's normalized step, so the effective strength
    depends on the gradients' scale. ``prox`` must accept a per-coordinate ``scaling``: ``l1``,
    ``l2``, ``elastic_net``, ``l0``, ``mcp`` or ``scad``.

    Args:
      learning_rate: :math:`\eta_t`, a float or an optax schedule.
      strength: non-negative scalar, array or pytree prefix of the params.
      prox: an elementwise function of :mod:`jreg.prox`.
      b1: decay rate of the first moment.
      b2: decay rate of the second moment.
      eps: :math:`\epsilon`, added to :math:`\sqrt{\hat v_t}`.
      prox_kwargs: the prox's options, e.g. ``{"gamma": 3.0}`` for ``prox.mcp``.

    Returns:
      An ``optax.GradientTransformation`` whose ``update`` needs ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import jreg
      >>> tx = jreg.proximal_adam(0.1, 1.0)
      >>> params = jnp.array([1.0, 0.05])
      >>> grads = jnp.array([-0.5, 0.5])  # threshold 0.1 * 1.0 / 0.5 = 0.2 on both
      >>> updates, _ = tx.update(grads, tx.init(params), params)
      >>> print(optax.apply_updates(params, updates).round(4))
      [0.9 0. ]

    References:
      Melchior, Joseph and Moolekamp, `Proximal Adam: robust adaptive update scheme for
      constrained optimization <https://arxiv.org/abs/1910.10094>`_, 2019.

      Yun, Lozano and Yang, `Adaptive proximal gradient methods for structured neural networks
      <https://openreview.net/forum?id=SaKO6z6Hl0c>`_, NeurIPS 2021.
    """

    for name, rate in (("b1", b1), ("b2", b2)):
        check(name, rate, lambda r: (r >= 0) & (r < 1), "in [0, 1)")
    check("eps", eps, lambda e: np.isfinite(e) & (e > 0), "finite and > 0")

    def inverse_metric(state):
        nu_hat = optax.tree.bias_correction(state.nu, b2, state.count)
        return jax.tree.map(lambda v: 1 / (jnp.sqrt(v) + eps), nu_hat)

    return _proximal_preconditioned(
        optax.scale_by_adam(b1, b2, eps), inverse_metric, learning_rate, strength, prox, prox_kwargs
    )


def proximal_adagrad(
    learning_rate: optax.ScalarOrSchedule,
    strength: Any,
    *,
    prox: Callable[..., optax.Params] = _prox.l1,
    initial_accumulator_value: float = 0.1,
    eps: float = 1e-7,
    prox_kwargs: Mapping[str, Any] | None = None,
) -> optax.GradientTransformation:
    r"""Proximal Adagrad: the Adagrad step, then the prox in Adagrad's diagonal metric.

    With the sum of squared gradients :math:`G_t` (``optax.scale_by_rss``) and
    :math:`D_t = \operatorname{diag}(\sqrt{G_t + \epsilon})`,

    .. math:: w_{t+1} = \operatorname*{argmin}_y \; \tfrac{1}{2 \eta_t} \|y - z\|_{D_t}^2 + P(y),
       \qquad z = w_t - \eta_t D_t^{-1} g_t,

    the composite mirror descent of Duchi, Hazan and Singer: for ``prox.l1`` the threshold is
    :math:`\eta_t s / \sqrt{G_t + \epsilon}`. ``prox`` must accept a per-coordinate ``scaling``:
    ``l1``, ``l2``, ``elastic_net``, ``l0``, ``mcp`` or ``scad``.

    Args:
      learning_rate: :math:`\eta_t`, a float or an optax schedule.
      strength: non-negative scalar, array or pytree prefix of the params.
      prox: an elementwise function of :mod:`jreg.prox`.
      initial_accumulator_value: the initial value of :math:`G`.
      eps: :math:`\epsilon`, added to :math:`G_t` under the square root.
      prox_kwargs: the prox's options, e.g. ``{"l1_ratio": 0.5}`` for ``prox.elastic_net``.

    Returns:
      An ``optax.GradientTransformation`` whose ``update`` needs ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import jreg
      >>> tx = jreg.proximal_adagrad(0.1, 1.0, initial_accumulator_value=0.0, eps=0.0)
      >>> params = jnp.array([1.0, 0.05])
      >>> grads = jnp.array([-0.5, 0.5])  # threshold 0.1 * 1.0 / 0.5 = 0.2 on both
      >>> updates, _ = tx.update(grads, tx.init(params), params)
      >>> print(optax.apply_updates(params, updates).round(4))
      [0.9 0. ]

    References:
      Duchi, Hazan and Singer, `Adaptive subgradient methods for online learning and stochastic
      optimization <https://jmlr.org/papers/v12/duchi11a.html>`_, JMLR 2011.
    """

    for name, value in (("initial_accumulator_value", initial_accumulator_value), ("eps", eps)):
        check(name, value, lambda v: np.isfinite(v) & (v >= 0), "finite and >= 0")

    def inverse_metric(state):
        return jax.tree.map(
            lambda g: jnp.where(g > 0, jax.lax.rsqrt(g + eps), 0), state.sum_of_squares
        )

    return _proximal_preconditioned(
        optax.scale_by_rss(initial_accumulator_value, eps),
        inverse_metric,
        learning_rate,
        strength,
        prox,
        prox_kwargs,
    )
