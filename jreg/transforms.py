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
hyperparameters, and a callable such as ``prox`` goes in its ``static_args``;
:func:`inject_hyperparams` injects per-leaf (pytree) strengths too.
"""

import functools
import inspect
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jreg import prox as _prox
from jreg._checks import check, check_callable, check_strength, is_function, require_params
from jreg.penalties import _all_axes, _axes_of, _matrix_axes

__all__ = [
    "ProximalAdaptiveState",
    "ProximalState",
    "add_penalty_gradient",
    "inject_hyperparams",
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


def _check_prox(prox) -> None:
    check_callable("prox", prox, "a function of jreg.prox, such as jreg.prox.l1")


def _group_axes(prox, options: Mapping[str, Any]) -> Callable | None:
    """The axes a group prox of :mod:`jreg.prox` reduces (a function of the leaf), None for an
    elementwise one; any other prox must be elementwise."""
    if prox is _prox.group_lasso:
        return _axes_of(options.get("axis"))
    return {_prox.linf: _all_axes, _prox.nuclear: _matrix_axes}.get(prox)


def _is_prox(value) -> bool:
    """A prox function (it takes a ``scaling``), not a learning rate or a schedule."""
    if not is_function(value):
        return False
    try:
        return "scaling" in inspect.signature(value).parameters
    except (TypeError, ValueError):  # no signature: a builtin
        return False


def _one_order(factory: Callable) -> Callable:
    """``factory(prox, strength, learning_rate, ...)``, the order of every proximal factory. The
    previous order ``(learning_rate, strength, *, prox=prox.l1)`` still works for one release,
    with a ``DeprecationWarning``. The signature is the new one (``optax.inject_hyperparams``
    binds it)."""

    @functools.wraps(factory)
    def with_one_order(*args, **kwargs):
        old = bool(args) and args[0] is not None and not _is_prox(args[0])
        if old or (not args and "prox" not in kwargs):
            if len(args) > 2:
                raise TypeError(f"{factory.__name__}: the arguments are (prox, strength, "
                                f"learning_rate), got {len(args)} positional ones")  # fmt: skip
            warnings.warn(
                f"{factory.__name__}(learning_rate, strength, prox=...) is deprecated: write "
                f"{factory.__name__}(prox, strength, learning_rate), as jreg.proximal",
                DeprecationWarning,
                stacklevel=2,
            )
            named = dict(zip(("learning_rate", "strength"), args, strict=False))
            kwargs = {"prox": _prox.l1, **named, **kwargs}
            args = ()
        return factory(*args, **kwargs)

    return with_one_order


def _options(name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"{name} must be a dict of keyword arguments or None, got {options!r}")
    return dict(options)


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
        require_params(updates, params)
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
    _check_prox(prox)
    check_strength(strength)
    _check_learning_rate(learning_rate)
    options = _options("prox_kwargs", prox_kwargs)

    def init_fn(params):
        del params
        return ProximalState(count=_zero_count())

    def update_fn(updates, state, params=None):
        require_params(updates, params)
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
        require_params(updates, params)
        return _move_to(lambda w: projection(w, **options), updates, params), state

    return optax.GradientTransformation(init_fn, update_fn)


def _proximal_preconditioned(
    preconditioner: optax.GradientTransformation,
    moment: Callable[[optax.Updates, optax.OptState], optax.Updates],
    inverse_metric: Callable[[optax.OptState], optax.Updates],
    learning_rate: optax.ScalarOrSchedule,
    strength: Any,
    prox: Callable[..., optax.Params],
    prox_kwargs: Mapping[str, Any] | None,
) -> optax.GradientTransformation:
    r"""A preconditioned step followed by the prox in the same diagonal metric.

    ``preconditioner`` keeps the statistics; from its updated state, ``moment(updates, state)``
    is the step's numerator :math:`m` and ``inverse_metric(state)`` the diagonal of
    :math:`D^{-1}` (NaN where the statistics are NaN or overflowed). The step is
    :math:`-\eta_t D^{-1} m` and the prox gets the ``scaling`` :math:`\eta_t D^{-1}`. For a
    group prox the metric is one number per group, its largest entry of :math:`D`.
    """
    _check_prox(prox)
    check_strength(strength)
    _check_learning_rate(learning_rate)
    options = _options("prox_kwargs", prox_kwargs)
    axes_of = _group_axes(prox, options)
    per_group = (lambda c: c) if axes_of is None else (lambda c: jnp.min(c, axes_of(c)))  # noqa: E731
    spread = (
        (lambda c, g: g)
        if axes_of is None
        # noqa: E731
        else (lambda c, g: jnp.broadcast_to(jnp.expand_dims(g, axes_of(c)), c.shape))
    )

    def init_fn(params):
        return ProximalAdaptiveState(_zero_count(), preconditioner.init(params))

    def update_fn(updates, state, params=None):
        require_params(updates, params)
        _, inner = preconditioner.update(updates, state.preconditioner, params)
        eta = _value_at(learning_rate, state.count)
        metric = inverse_metric(inner)
        grouped = jax.tree.map(per_group, metric)  # per coordinate, or per group
        step = jax.tree.map(lambda m, c, g: -eta * m * spread(c, g), moment(updates, inner), metric,
                            grouped)  # fmt: skip
        # where the metric is NaN the step is NaN, and the scaling 0 keeps it
        scaling = jax.tree.map(lambda g: jnp.where(jnp.isnan(g), 0, eta * g), grouped)
        updates = _move_to(lambda w: prox(w, strength, scaling=scaling, **options), step, params)
        return updates, ProximalAdaptiveState(optax.safe_int32_increment(state.count), inner)

    return optax.GradientTransformation(init_fn, update_fn)


@_one_order
def proximal_adam(
    prox: Callable[..., optax.Params],
    strength: Any,
    learning_rate: optax.ScalarOrSchedule,
    *,
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
    depends on the gradients' scale.

    The group proxes (``group_lasso``, ``linf``, ``nuclear``) take one metric per group,
    :math:`d_g = \max_{j \in g} (D_t)_{jj}`, for the step and the prox alike: the metric is
    then :math:`d_g I` on each group, in which the group's prox is the Euclidean one with scaling
    :math:`\eta_t / d_g`, so the fixed points are still the minimizers of :math:`f + P`, and no
    coordinate steps further than Adam's own step. Any other ``prox`` gets a per-coordinate
    ``scaling`` (``l1``, ``l2``, ``elastic_net``, ``l0``, ``mcp``, ``scad``).

    Args:
      prox: a function of :mod:`jreg.prox`.
      strength: non-negative scalar, array or pytree prefix of the params.
      learning_rate: :math:`\eta_t`, a float or an optax schedule.
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
      >>> tx = jreg.proximal_adam(jreg.prox.l1, 1.0, 0.1)
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
        return jax.tree.map(
            lambda v: jnp.where(v < jnp.inf, 1 / (jnp.sqrt(v) + eps), jnp.nan), nu_hat
        )

    def moment(updates, state):
        return optax.tree.bias_correction(state.mu, b1, state.count)

    return _proximal_preconditioned(optax.scale_by_adam(b1, b2, eps), moment, inverse_metric,
                                    learning_rate, strength, prox, prox_kwargs)  # fmt: skip


@_one_order
def proximal_adagrad(
    prox: Callable[..., optax.Params],
    strength: Any,
    learning_rate: optax.ScalarOrSchedule,
    *,
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
    :math:`\eta_t s / \sqrt{G_t + \epsilon}`. The group proxes take one metric per group, its
    largest entry of :math:`D_t`, as in :func:`proximal_adam`.

    Args:
      prox: a function of :mod:`jreg.prox`.
      strength: non-negative scalar, array or pytree prefix of the params.
      learning_rate: :math:`\eta_t`, a float or an optax schedule.
      initial_accumulator_value: the initial value of :math:`G`.
      eps: :math:`\epsilon`, added to :math:`G_t` under the square root.
      prox_kwargs: the prox's options, e.g. ``{"l1_ratio": 0.5}`` for ``prox.elastic_net``.

    Returns:
      An ``optax.GradientTransformation`` whose ``update`` needs ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import jreg
      >>> tx = jreg.proximal_adagrad(jreg.prox.l1, 1.0, 0.1, initial_accumulator_value=0.0,
      ...                             eps=0.0)
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
            lambda g: jnp.where(g < jnp.inf, jnp.where(g > 0, jax.lax.rsqrt(g + eps), 0), jnp.nan),
            state.sum_of_squares,
        )

    return _proximal_preconditioned(
        optax.scale_by_rss(initial_accumulator_value, eps),
        lambda updates, state: updates,
        inverse_metric,
        learning_rate,
        strength,
        prox,
        prox_kwargs,
    )


def _is_number_tree(value) -> bool:
    """A pytree of several numbers or arrays (such as per-leaf strengths), not one of them."""
    leaves, treedef = jax.tree.flatten(value)
    numbers = all(isinstance(x, int | float | np.ndarray | jax.Array) and not isinstance(x, bool)
                  for x in leaves)  # fmt: skip
    return not jax.tree_util.treedef_is_leaf(treedef) and bool(leaves) and numbers


def inject_hyperparams(
    factory: Callable[..., optax.GradientTransformation],
    *,
    static_args: str | tuple[str, ...] = (),
    hyperparam_dtype=None,
) -> Callable[..., optax.GradientTransformationExtraArgs]:
    """``optax.inject_hyperparams``, where a hyperparameter may also be a pytree of numbers.

    optax injects numbers and arrays only: a per-leaf strength such as ``{"w": 0.1, "b": 0.0}``
    would be fixed when the transformation is built. Here every leaf of such a pytree is
    injected, and ``state.hyperparams[name]`` holds the pytree, to read or replace (traced
    values included: a new value never recompiles). Everything else is optax's.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jreg
      >>> tx = jreg.inject_hyperparams(jreg.proximal, static_args="prox")(
      ...     jreg.prox.l1, {"w": 0.1, "b": 0.0}, 1.0)
      >>> params = {"w": jnp.array([0.5, 0.05]), "b": jnp.array(0.05)}
      >>> state = tx.init(params)
      >>> state.hyperparams["strength"]["w"] = jnp.array(0.01)
      >>> updates, state = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
      >>> print(updates["w"].round(4), updates["b"])
      [-0.01 -0.01] 0.0
    """
    static = (static_args,) if isinstance(static_args, str) else tuple(static_args)
    signature = inspect.signature(factory)

    def build(*args, **kwargs) -> optax.GradientTransformationExtraArgs:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        trees = {name: value for name, value in bound.arguments.items()
                 if name not in static and _is_number_tree(value)}  # fmt: skip
        names = {name: [f"{name}__{i}" for i in range(len(jax.tree.leaves(tree)))]
                 for name, tree in trees.items()}  # fmt: skip

        def grouped(flat: dict) -> dict:
            out = {key: value for key, value in flat.items()
                   if not any(key in keys for keys in names.values())}  # fmt: skip
            for name, tree in trees.items():
                leaves = [flat[key] for key in names[name]]
                out[name] = jax.tree.unflatten(jax.tree.structure(tree), leaves)
            return out

        def flattened(hyperparams: dict) -> dict:
            out = {key: value for key, value in hyperparams.items() if key not in trees}
            for name in trees:
                out.update(zip(names[name], jax.tree.leaves(hyperparams[name]), strict=True))
            return out

        def inner(**arguments):
            return factory(**grouped(arguments))

        parameters = [inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY)
                      for key in flattened(bound.arguments)]  # fmt: skip
        inner.__signature__ = inspect.Signature(parameters)
        injected = optax.inject_hyperparams(
            inner, static_args=static, hyperparam_dtype=hyperparam_dtype
        )(**flattened(bound.arguments))

        def init_fn(params):
            state = injected.init(params)
            return state._replace(hyperparams=grouped(state.hyperparams))

        def update_fn(updates, state, params=None, **extra_args):
            state = state._replace(hyperparams=flattened(state.hyperparams))
            updates, state = injected.update(updates, state, params, **extra_args)
            return updates, state._replace(hyperparams=grouped(state.hyperparams))

        return optax.GradientTransformationExtraArgs(init_fn, update_fn)

    return build
