r"""Hard-concrete gates: L0 regularization of neural networks by stochastic gates.

Louizos, Welling and Kingma (2018) multiply each weight (or group: a neuron, a channel, an input
feature) by a gate :math:`z \in [0, 1]` drawn from the *stretched hard-concrete* distribution
with a learned location :math:`\log \alpha`:

.. math:: u \sim \mathcal{U}(0, 1), \quad
   s = \sigma\!\left(\frac{\log u - \log(1 - u) + \log \alpha}{\beta}\right), \quad
   z = \min(1, \max(0, s (\zeta - \gamma) + \gamma)).

Stretching :math:`s` to :math:`(\gamma, \zeta) \supset [0, 1]` and clipping puts mass on
:math:`z = 0` and :math:`z = 1` exactly,

.. math:: P(z = 0) = \sigma\!\left(\beta \log\frac{-\gamma}{\zeta} - \log \alpha\right), \qquad
   P(z = 1) = \sigma\!\left(\log \alpha - \beta \log\frac{1 - \gamma}{\zeta - 1}\right),

while :math:`z` is a differentiable function of :math:`\log \alpha` (reparametrization), so the
expected number of non-zero gates, :math:`\sum_j P(z_j \ne 0)` (:func:`expected_l0`), is a smooth
penalty. At test time the gate is :func:`deterministic`. Defaults: :math:`\beta = 2/3`,
:math:`\gamma = -0.1`, :math:`\zeta = 1.1`, the paper's.

Use: keep ``log_alpha`` leaves among the model's params (e.g. an ``nnx.Param``), multiply the
weights by :func:`sample` gates in training and by :func:`deterministic` gates at test time, and
add ``expected_l0(log_alpha, strength)`` to the loss, or put
:func:`add_expected_l0_gradient` (which adds its gradient to the ``log_alpha`` leaves) before
the optimizer. Every function takes a single array or a pytree of ``log_alpha``.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jreg._checks import check, check_strength
from jreg.transforms import add_penalty_gradient

__all__ = ["add_expected_l0_gradient", "deterministic", "expected_l0", "sample"]


def _check_stretch(gamma, zeta) -> None:
    check("gamma", gamma, lambda g: np.isfinite(g) & (g < 0), "finite and < 0")
    check("zeta", zeta, lambda z: np.isfinite(z) & (z > 1), "finite and > 1")


def _check_temperature(beta) -> None:
    check("beta", beta, lambda b: np.isfinite(b) & (b > 0), "finite and > 0")


def _stretch_and_clip(s: jax.Array, gamma, zeta) -> jax.Array:
    return jnp.clip(s * (zeta - gamma) + gamma, 0, 1)


def sample(key: jax.Array, log_alpha, *, beta=2 / 3, gamma=-0.1, zeta=1.1):
    r"""Gates drawn from the stretched hard-concrete distribution, one per entry of ``log_alpha``.

    .. math:: z = \min\!\left(1, \max\!\left(0, \sigma\!\left(\frac{L + \log \alpha}{\beta}
       \right) (\zeta - \gamma) + \gamma\right)\right), \qquad L \sim \text{Logistic}(0, 1)

    (:math:`L = \log u - \log(1 - u)`). Differentiable in ``log_alpha``; exactly 0 with
    probability :math:`\sigma(\beta \log(-\gamma / \zeta) - \log \alpha)`. For a gate per example
    of a batch, broadcast ``log_alpha`` to the batch's shape first (or ``vmap`` over keys).

    Args:
      key: a ``jax.random`` key (split over the leaves).
      log_alpha: an array or a pytree of arrays, the gates' locations.
      beta: the temperature, > 0.
      gamma: the lower end of the stretch, < 0.
      zeta: the upper end of the stretch, > 1.

    Returns:
      Gates in [0, 1] of the structure, shapes and dtypes of ``log_alpha``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jreg import hard_concrete
      >>> gates = hard_concrete.sample(jax.random.key(0), jnp.array([-10.0, 0.0, 10.0]))
      >>> print(gates[0], gates[2])  # P(z = 0) = P(z = 1) = 1 - 2.2e-4
      0.0 1.0
    """
    _check_temperature(beta)
    _check_stretch(gamma, zeta)

    def leaf_gates(key, log_alpha):
        dtype = jnp.promote_types(jnp.result_type(log_alpha), jnp.float32)
        noise = jax.random.logistic(key, jnp.shape(log_alpha), dtype)
        s = jax.nn.sigmoid((noise + log_alpha) / beta)
        return _stretch_and_clip(s, gamma, zeta).astype(jnp.result_type(log_alpha))

    return jax.tree.map(leaf_gates, optax.tree.split_key_like(key, log_alpha), log_alpha)


def deterministic(log_alpha, *, gamma=-0.1, zeta=1.1):
    r"""The test-time gates of the paper (its eq. 13):

    .. math:: \hat z = \min(1, \max(0, \sigma(\log \alpha) (\zeta - \gamma) + \gamma)),

    exactly 0 where :math:`\log \alpha \le \log(-\gamma / \zeta)` (:math:`\approx -2.4`) and
    exactly 1 where :math:`\log \alpha \ge \log((1 - \gamma) / (\zeta - 1))` (:math:`\approx 2.4`).

    Args:
      log_alpha: an array or a pytree of arrays.
      gamma: the lower end of the stretch, < 0.
      zeta: the upper end of the stretch, > 1.

    Returns:
      Gates in [0, 1] of the structure of ``log_alpha``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import hard_concrete
      >>> print(hard_concrete.deterministic(jnp.array([-3.0, 0.0, 3.0])))
      [0.  0.5 1. ]
    """
    _check_stretch(gamma, zeta)
    return jax.tree.map(lambda a: _stretch_and_clip(jax.nn.sigmoid(a), gamma, zeta), log_alpha)


def expected_l0(log_alpha, strength=1.0, *, beta=2 / 3, gamma=-0.1, zeta=1.1) -> jax.Array:
    r"""The expected L0 penalty of the gates, ``strength`` times their expected number of non-zeros:

    .. math:: s \, \mathbb{E}\, \#\{j : z_j \ne 0\}
       = s \sum_j \sigma\!\left(\log \alpha_j - \beta \log\frac{-\gamma}{\zeta}\right),

    the expectation of ``jreg.penalties.l0(gates, strength)``. Its signature is a penalty's
    (``penalty(params, strength, **options)``), so it goes in ``jreg.add_penalty_gradient`` too.

    Args:
      log_alpha: an array or a pytree of arrays.
      strength: non-negative: a scalar, an array broadcastable to every leaf (a weight per gate,
        e.g. the size of each gate's group), or a pytree prefix of ``log_alpha``.
      beta: the temperature, > 0.
      gamma: the lower end of the stretch, < 0.
      zeta: the upper end of the stretch, > 1.

    Returns:
      A scalar.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jreg import hard_concrete
      >>> log_alpha = jnp.full(4, 2 / 3 * jnp.log(0.1 / 1.1))  # P(z != 0) = 1/2 each
      >>> print(hard_concrete.expected_l0(log_alpha, 0.5).round(6))
      1.0
    """
    check_strength(strength)
    _check_temperature(beta)
    _check_stretch(gamma, zeta)
    shift = beta * jnp.log(-gamma / zeta)
    try:
        strengths = jax.tree.leaves(jax.tree.broadcast(strength, log_alpha))
    except ValueError as error:
        raise ValueError(
            f"strength must be a scalar, an array or a pytree prefix of log_alpha, got "
            f"{jax.tree.structure(strength)} for {jax.tree.structure(log_alpha)}"
        ) from error

    def leaf_value(s, a):  # summed in at least float32, returned in the leaf's dtype
        p_nonzero = jax.nn.sigmoid(a.astype(jnp.promote_types(a.dtype, jnp.float32)) - shift)
        return jnp.sum(s * p_nonzero).astype(a.dtype)

    leaves = [jnp.asarray(a) for a in jax.tree.leaves(log_alpha)]
    terms = [leaf_value(s, a) for s, a in zip(strengths, leaves, strict=True)]
    return jnp.asarray(sum(terms, 0.0))


def _is_named(name: str) -> Callable[[optax.Params], Any]:
    """The mask of the leaves with a key ``name`` on their path (a dict key, an attribute)."""

    def mask(params):
        def named(path, _):
            return any(getattr(k, "key", getattr(k, "name", None)) == name for k in path)

        return jax.tree_util.tree_map_with_path(named, params)

    return mask


def add_expected_l0_gradient(
    strength: Any,
    *,
    beta: float = 2 / 3,
    gamma: float = -0.1,
    zeta: float = 1.1,
    mask: Any = None,
) -> optax.GradientTransformation:
    r"""Adds the gradient of ``strength * expected_l0`` to the ``log_alpha`` leaves' updates.

    .. math:: u_j \leftarrow u_j + s\, \sigma'\!\left(\log \alpha_j - \beta \log\frac{-\gamma}
       {\zeta}\right) \quad \text{for the gates' leaves; other updates unchanged.}

    The same as adding :func:`expected_l0` to the loss; put it first, before the optimizer
    (``optax.adam``, as in the paper). It is ``optax.masked(jreg.add_penalty_gradient(
    expected_l0, ...), mask)``.

    Args:
      strength: the L0 strength :math:`s \ge 0`, per expected non-zero gate (an array: one per
        gate).
      beta: the temperature, > 0.
      gamma: the lower end of the stretch, < 0.
      zeta: the upper end of the stretch, > 1.
      mask: which leaves of the params are ``log_alpha``: a pytree of bools or a function of the
        params, as ``optax.masked`` takes (give a function in ``optax.inject_hyperparams``'
        ``static_args``). Default: the leaves with a key ``log_alpha`` on their path (a dict key
        or an attribute, so flax ``nnx.Param`` attributes named so).

    Returns:
      An ``optax.GradientTransformation`` whose ``update`` needs ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> from jreg import hard_concrete
      >>> params = {"kernel": jnp.ones(2), "log_alpha": jnp.full(2, 2 / 3 * jnp.log(0.1 / 1.1))}
      >>> tx = hard_concrete.add_expected_l0_gradient(1.0)
      >>> updates, _ = tx.update(optax.tree.zeros_like(params), tx.init(params), params)
      >>> print(updates["kernel"], updates["log_alpha"])  # sigmoid'(0) = 1/4
      [0. 0.] [0.25 0.25]

      Before Adam, as in the paper:

      >>> tx = optax.chain(hard_concrete.add_expected_l0_gradient(1e-3), optax.adam(1e-2))
    """
    options = {"beta": beta, "gamma": gamma, "zeta": zeta}
    _check_temperature(beta)
    _check_stretch(gamma, zeta)
    penalty = add_penalty_gradient(expected_l0, strength, penalty_kwargs=options)
    return optax.masked(penalty, _is_named("log_alpha") if mask is None else mask)
