"""The prepared inputs of jreg.glm's internal programs, with an absolute grid of strengths (the
programs of the public entry points compute a default grid's top themselves)."""

import jax

from jreg.glm import paths


def setup_path(X, y, settings: paths.Settings):
    """:func:`jreg.glm.paths.setup` and the strengths of the path: the given ones, or glmnet's
    default grid from :func:`jreg.glm.paths.strength_max`."""
    data, options, config = paths.setup(X, y, settings)
    strengths, relative = paths.grid_input(data, options, config, settings)
    if relative is not None:
        top = paths.strength_max_jit(data, options, config=config)
        paths.check_strength_max(top)
        strengths = jax.lax.stop_gradient(top) * strengths
    return data, options, config, strengths
