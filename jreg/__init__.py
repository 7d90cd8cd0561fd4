"""jreg: regularization for JAX.

Penalties are pure functions on pytrees (:mod:`jreg.penalties`), each with its proximal operator
(:mod:`jreg.prox`).
"""

from jreg import penalties, prox

__version__ = "0.1.0"

__all__ = ["__version__", "penalties", "prox"]
