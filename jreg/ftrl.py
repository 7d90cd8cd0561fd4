r"""FTRL-Proximal: per-coordinate learning rates with L1 and L2 regularization and exact zeros.

McMahan et al.'s algorithm for sparse online learning (Google's ad click prediction), as an
optax ``GradientTransformation``. Per coordinate it keeps :math:`z` (the sum of the gradients,
re-centred on the past iterates) and :math:`n` (the sum of the squared gradients); the next
iterate is the closed-form minimizer

.. math:: w_{t+1} = \operatorname*{argmin}_w \; z_t w + \tfrac{1}{2} q_t w^2 + \lambda_1 |w|
   = \begin{cases} 0 & |z_t| \le \lambda_1 \\
   -(z_t - \operatorname{sign}(z_t) \lambda_1) / q_t & \text{otherwise} \end{cases},
   \qquad q_t = \frac{\beta + \sqrt{n_t}}{\alpha} + \lambda_2,

so a coordinate is exactly zero while :math:`|z| \le \lambda_1` (with
``regularize_each_step=True``, :math:`t \lambda_1` and :math:`t \lambda_2` at step :math:`t`, so
that the iterates minimize :math:`f + \lambda_1 \|w\|_1 + \tfrac{\lambda_2}{2} \|w\|^2`).

Conventions: ``l1`` is :math:`\lambda_1 \sum |w|` and ``l2`` is
:math:`\tfrac{\lambda_2}{2} \sum w^2`, as in the paper and in :mod:`jreg.penalties`
(TensorFlow's ``l2_regularization_strength`` and ``l2_shrinkage_regularization_strength`` are
half of jreg's ``l2`` and ``l2_shrinkage``).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jreg._checks import check, check_strength, is_traced, require_params

__all__ = ["FtrlState", "ftrl_proximal"]


class FtrlState(NamedTuple):
    """State of :func:`ftrl_proximal`: the step count and, per coordinate of the params, z and n."""

    count: jax.Array  # int32 number of steps taken
    z: optax.Updates  # sum of the gradients minus sigma_s * w_s, the paper's z
    n: optax.Updates  # sum of the squared gradients, the paper's n


def _check_options(learning_rate, l1, l2, beta, l2_shrinkage, initial_accumulator_value) -> None:
    check("learning_rate", learning_rate, lambda lr: np.isfinite(lr) & (lr > 0), "finite and > 0")
    for name, value in (
        ("l1", l1),
        ("l2", l2),
        ("beta", beta),
        ("l2_shrinkage", l2_shrinkage),
        ("initial_accumulator_value", initial_accumulator_value),
    ):
        check_strength(value, name)
    curvature = (beta, initial_accumulator_value, l2)
    if not is_traced((curvature, l2_shrinkage)) and l2_shrinkage > 0 and not any(curvature):
        # a coordinate whose gradients are all 0 would minimize z w + l1 |w| with z != 0
        raise ValueError(
            "l2_shrinkage > 0 needs beta, initial_accumulator_value or l2 > 0 (else the step of a "
            "coordinate with zero gradients is unbounded)"
        )


def ftrl_proximal(
    learning_rate: float,
    l1: float = 0.0,
    l2: float = 0.0,
    *,
    beta: float = 1.0,
    l2_shrinkage: float = 0.0,
    initial_accumulator_value: float = 0.0,
    regularize_each_step: bool = False,
) -> optax.GradientTransformation:
    r"""FTRL-Proximal (McMahan et al., 2013): per-coordinate learning rates, L1 and L2.

    With the gradient :math:`g_t` at the current params :math:`w_t` (``g`` below also includes
    ``l2_shrinkage * w_t``; ``n`` does not),

    .. math:: \sigma_t = \frac{\sqrt{n_{t-1} + g_t^2} - \sqrt{n_{t-1}}}{\alpha}, \quad
       z_t = z_{t-1} + g_t - \sigma_t w_t, \quad n_t = n_{t-1} + g_t^2,

    then :math:`w_{t+1}` is the closed form of the module docstring (exactly 0 where
    :math:`|z_t| \le \lambda_1`), i.e. the minimizer of

    .. math:: \sum_{s \le t} g_s w + \tfrac{1}{2} \sum_{s \le t} \sigma_s (w - w_s)^2
       + \tfrac{\beta + \sqrt{n_0}}{2 \alpha} w^2 + \lambda_1 |w| + \tfrac{\lambda_2}{2} w^2.

    The update is :math:`w_{t+1} - w_t`; use it alone (it is the whole optimizer). Without
    regularization (``l1 = l2 = beta = initial_accumulator_value = 0``) it is Adagrad,
    :math:`w_{t+1} = w_t - \alpha g_t / \sqrt{n_t}`, from any initial params (a coordinate
    whose gradients have all been 0 is set to 0, the minimizer of the terms centred at 0);
    ``beta`` and ``initial_accumulator_value`` add a proximal term centred at 0, which shrinks
    non-zero initial params.

    Two readings of ``l1`` and ``l2``:

    * ``regularize_each_step=False`` (the paper's Algorithm 1 and TensorFlow's ``Ftrl``):
      :math:`\lambda_1, \lambda_2` enter the minimization once, as a regularizer of the online
      learner. Over many steps on the same loss their effect fades: the iterates do not approach
      the minimizer of :math:`f + \lambda_1 \|w\|_1`.
    * ``regularize_each_step=True`` (McMahan 2011's FTRL-Proximal with the regularizer of every
      round): :math:`t \lambda_1` and :math:`t \lambda_2` after :math:`t` steps, so for a fixed
      loss :math:`f` the iterates converge to the minimizer of
      :math:`f + \lambda_1 \|w\|_1 + \tfrac{\lambda_2}{2} \|w\|^2`, jreg's meaning of strengths.

    ``l2_shrinkage`` is TensorFlow's per-step L2 penalty :math:`\tfrac{\lambda}{2} \|w\|^2`: its
    gradient :math:`\lambda w_t` is added to :math:`g_t` in :math:`z` (not in :math:`n`).

    Args:
      learning_rate: :math:`\alpha > 0`, the per-coordinate rate is
        :math:`\alpha / (\beta + \sqrt{n})`.
      l1: :math:`\lambda_1 \ge 0`.
      l2: :math:`\lambda_2 \ge 0`, the stabilizing L2 term.
      beta: :math:`\beta \ge 0` (the paper uses 1, TensorFlow 0).
      l2_shrinkage: the per-step L2 penalty, :math:`\ge 0`.
      initial_accumulator_value: :math:`n_0 \ge 0` (TensorFlow's default is 0.1).
      regularize_each_step: whether ``l1`` and ``l2`` apply at every step (see above).

    Returns:
      An ``optax.GradientTransformation`` whose ``update`` needs ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> from jreg.ftrl import ftrl_proximal
      >>> tx = ftrl_proximal(0.5, l1=1.0)
      >>> params = jnp.zeros(2)
      >>> grads = jnp.array([3.0, 0.5])  # |z| = 3 > l1, |z| = 0.5 <= l1
      >>> updates, state = tx.update(grads, tx.init(params), params)
      >>> print(optax.apply_updates(params, updates))  # -(3 - 1) / ((1 + 3) / 0.5)
      [-0.25  0.  ]

    References:
      McMahan, `Follow-the-regularized-leader and mirror descent: equivalence theorems and L1
      regularization <https://proceedings.mlr.press/v15/mcmahan11b.html>`_, AISTATS 2011.

      McMahan et al., `Ad click prediction: a view from the trenches
      <https://doi.org/10.1145/2487575.2488200>`_, KDD 2013 (Algorithm 1).
    """
    _check_options(learning_rate, l1, l2, beta, l2_shrinkage, initial_accumulator_value)

    def init_fn(params):
        return FtrlState(
            count=jnp.zeros([], jnp.int32),
            z=optax.tree.zeros_like(params),
            n=optax.tree.full_like(params, initial_accumulator_value),
        )

    def coordinate(l1, l2, g, w, z, n):
        w = jnp.asarray(w, z.dtype)
        n_new = n + jnp.square(g)
        sigma = (jnp.sqrt(n_new) - jnp.sqrt(n)) / learning_rate
        z = z + g + l2_shrinkage * w - sigma * w
        quadratic = (beta + jnp.sqrt(n_new)) / learning_rate + l2
        active = jnp.abs(z) > l1
        new_w = jnp.where(active, (jnp.sign(z) * l1 - z) / jnp.where(active, quadratic, 1), 0)
        return new_w, z, n_new

    def update_fn(updates, state, params=None):
        require_params(updates, params)
        count = optax.safe_int32_increment(state.count)
        rounds = count if regularize_each_step else 1
        step = functools.partial(coordinate, rounds * l1, rounds * l2)
        per_leaf = jax.tree.map(step, updates, params, state.z, state.n)
        triple = jax.tree.structure((0, 0, 0))
        new_w, z, n = jax.tree.transpose(jax.tree.structure(updates), triple, per_leaf)
        updates = optax.tree.sub(optax.tree.cast_like(new_w, params), params)
        return updates, FtrlState(count=count, z=z, n=n)

    return optax.GradientTransformation(init_fn, update_fn)
