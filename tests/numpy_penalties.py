"""The penalties' values in numpy, independent of jreg: shared by the glm tests."""

import numpy as np


def concave_values(aw, lam, penalty, *, gamma, a):
    """MCP (``gamma``) or SCAD (``a``) per coordinate, at magnitudes ``aw``, strengths ``lam``."""
    if penalty == "mcp":
        return np.where(aw <= gamma * lam, lam * aw - aw**2 / (2 * gamma), gamma * lam**2 / 2)
    middle = (2 * a * lam * aw - aw**2 - lam**2) / (2 * (a - 1))
    return np.where(aw <= lam, lam * aw, np.where(aw <= a * lam, middle, (a + 1) * lam**2 / 2))


def concave_slopes(aw, lam, penalty, *, gamma, a):
    """Their derivatives in ``|w|`` at ``aw > 0`` (at 0 the subdifferential is ``[-lam, lam]``)."""
    if penalty == "mcp":
        return np.maximum(lam - aw / gamma, 0)
    return np.where(aw <= lam, lam, np.maximum(a * lam - aw, 0) / (a - 1))
