"""jreg: regularization for JAX.

Penalties are pure functions on pytrees (:mod:`jreg.penalties`), each with its proximal operator
(:mod:`jreg.prox`).
"""

from jreg import _xla, glm, groups, hard_concrete, penalties, plot, prox
from jreg.ftrl import FtrlState, ftrl_proximal
from jreg.sweep import sweep
from jreg.transforms import (
    ProximalAdaptiveState,
    ProximalState,
    add_penalty_gradient,
    inject_hyperparams,
    projected,
    proximal,
    proximal_adagrad,
    proximal_adam,
)

__version__ = "0.1.0"

_xla.compile_small_loops_whole()  # before JAX starts a backend: importing jreg starts none

__all__ = [
    "FtrlState",
    "ProximalAdaptiveState",
    "ProximalState",
    "__version__",
    "add_penalty_gradient",
    "ftrl_proximal",
    "glm",
    "groups",
    "hard_concrete",
    "inject_hyperparams",
    "penalties",
    "plot",
    "projected",
    "proximal",
    "proximal_adagrad",
    "proximal_adam",
    "prox",
    "sweep",
]
