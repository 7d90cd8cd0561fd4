r"""Regularization paths for linear models: :func:`path`, :func:`cross_validate`,
:func:`stability_selection`.

Objectives are scikit-learn's and glmnet's, so results compare one to one (:math:`a_i` are the
sample weights normalized to sum to one; without ``sample_weight`` :math:`a_i = 1/n`):

.. math::
   \min_{W, b} \; \sum_i a_i f(x_i^\top W + b, y_i) + P(W; s \cdot \text{penalty\_factor})

with :math:`f` the datafit's per-sample loss (:mod:`jreg.glm.datafits`: ``squared``,
``logistic``, ``multinomial``, ``poisson``, ``huber``, or a user's loss) and :math:`P` the
penalty (:mod:`jreg.glm.penalties`: ``l1``, ``elastic_net``, ``group_lasso``, ``mcp``,
``scad``, ``l2``, or a user's ``(value, prox)``); the intercept :math:`b` is never penalized.
``W`` is ``(p,)``, or ``(p, m)`` for ``m`` outputs (``y (n, m)``) or classes. ``strength`` is
scikit-learn's ``alpha`` (``Lasso``, ``ElasticNet``) and glmnet's ``lambda``;
``LogisticRegression(C)`` is ``strength = 1/(n C)``.

The package by role: :mod:`~jreg.glm.datafits` and :mod:`~jreg.glm.penalties` (values of pure
functions, registries from names), :mod:`~jreg.glm.solvers` (FISTA, coordinate descent, active-set
Newton steps, proximal Newton), :mod:`~jreg.glm.objectives` (a datafit on data; where the solver
is chosen), :mod:`~jreg.glm.sparse` (sparse design matrices, never densified),
:mod:`~jreg.glm.paths` (the driver) and :mod:`~jreg.glm.selection` (cross-validation, stability
selection). Every solve stops when its duality gap, or a KKT
residual where no gap is known, falls below ``tol`` times the objective at :math:`w = 0`;
strengths that stop at ``max_iter`` first warn :class:`ConvergenceWarning`.
"""

from jreg.glm.datafits import DATAFITS, Datafit
from jreg.glm.paths import ConvergenceWarning, Fit, Model, Path, fit, path, strength_max
from jreg.glm.penalties import PENALTIES, Penalty
from jreg.glm.prediction import OUTPUTS, Coefficients, coef_at, predict
from jreg.glm.selection import (
    SCORINGS,
    CrossValidation,
    StabilitySelection,
    cross_validate,
    stability_selection,
)

__all__ = [
    "DATAFITS",
    "OUTPUTS",
    "PENALTIES",
    "SCORINGS",
    "Coefficients",
    "ConvergenceWarning",
    "CrossValidation",
    "Datafit",
    "Fit",
    "Model",
    "Path",
    "Penalty",
    "coef_at",
    "StabilitySelection",
    "cross_validate",
    "fit",
    "path",
    "predict",
    "stability_selection",
    "strength_max",
]
