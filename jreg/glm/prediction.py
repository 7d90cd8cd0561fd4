r"""Using a fitted path: :func:`coef_at` and :func:`predict`, at the grid's strengths or between
them as glmnet's ``coef(fit, s=)`` and ``predict(fit, newx, s=)`` (``exact=FALSE``): linear
interpolation in the strength between the two nearest grid strengths, the nearest end outside
the grid."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jreg._checks import check, check_real
from jreg.glm import paths, sparse
from jreg.glm.paths import Path
from jreg.glm.selection import CrossValidation

__all__ = ["OUTPUTS", "Coefficients", "coef_at", "predict"]

OUTPUTS = ("link", "response", "class")


class Coefficients(NamedTuple):
    """Coefficients at given strengths: ``coef`` and ``intercept`` shaped as a :class:`Path`'s,
    with the strengths' shape in front (none for one strength)."""

    coef: jax.Array
    intercept: jax.Array


def _path_of(fit) -> Path:
    if isinstance(fit, CrossValidation):
        return fit.path
    if isinstance(fit, Path):
        return fit
    raise TypeError(f"fit must be a Path or a CrossValidation, got {type(fit).__name__}")


def _strengths(fit, strength, dtype) -> jax.Array:
    """The requested strengths: numbers, or ``"best"`` / ``"1se"`` of a cross-validation."""
    if isinstance(strength, str):
        chosen = {"best": "best_strength", "1se": "strength_1se"}
        if not isinstance(fit, CrossValidation) or strength not in chosen:
            raise ValueError(
                f'strength must be a number, an array, or "best" / "1se" for a '
                f"CrossValidation, got {strength!r}"
            )
        return getattr(fit, chosen[strength])
    check("strength", strength, lambda s: np.isfinite(s) & (s >= 0), "finite and >= 0")
    return jnp.asarray(strength, dtype)


def coef_at(fit, strength) -> Coefficients:
    r"""The coefficients and intercepts at ``strength`` (a number, an array of them, or for a
    :class:`~jreg.glm.CrossValidation` ``"best"`` or ``"1se"``), interpolated between grid
    points as glmnet's ``coef(fit, s=)``: for :math:`s_{i+1} \le s \le s_i`,
    :math:`W(s) = t W_i + (1 - t) W_{i+1}` with :math:`t = (s - s_{i+1}) / (s_i - s_{i+1})`;
    beyond the grid, its nearest end. A grid strength gives its coefficients exactly.

    Examples:
      >>> import numpy as np
      >>> from jreg import glm
      >>> X, y = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), np.array([1.0, 0.0, -1.0])
      >>> fit = glm.path(X, y, strengths=[0.5, 0.1])
      >>> print(np.asarray(glm.coef_at(fit, 0.3).coef).round(3))  # the lasso's, exactly here
      [0.55 0.  ]
      >>> print(np.asarray(glm.fit(X, y, 0.3).coef).round(3))
      [0.55 0.  ]
    """
    path = _path_of(fit)
    strength = _strengths(fit, strength, path.strengths.dtype)
    order = jnp.argsort(path.strengths)
    grid = path.strengths[order]
    position = jnp.interp(strength, grid, jnp.arange(grid.size, dtype=grid.dtype))
    low = jnp.floor(position).astype(jnp.int32)
    high = jnp.minimum(low + 1, grid.size - 1)
    share = position - low

    valid = jnp.isfinite(strength) & (strength >= 0)  # else (traced): NaN

    def between(values):
        values = values[order]
        t = share.reshape(share.shape + (1,) * (values.ndim - 1))
        ok = valid.reshape(t.shape)
        return jnp.where(ok, (1 - t) * values[low] + t * values[high], jnp.nan)

    return Coefficients(between(path.coef), between(path.intercept))


@paths.in_data_precision(1)
def predict(fit, X, *, strength=None, offset=None, output="response") -> jax.Array:
    r"""Predictions of a fitted path on the rows of ``X``.

    Args:
      fit: a :class:`~jreg.glm.Path` or a :class:`~jreg.glm.CrossValidation` (its full-data
        path).
      X: ``(n, p)`` new rows (dense, or sparse as in :func:`jreg.glm.path`).
      strength: None (every grid strength), or as :func:`coef_at` (interpolated).
      offset: ``(n,)`` (or ``(n, m)``) the new rows' offset; required when the fit had one.
      output: ``"link"`` (the linear predictor :math:`X W + b + \text{offset}`),
        ``"response"`` (the mean: the link for ``"squared"``, ``"huber"`` and user losses,
        probabilities for ``"logistic"`` and ``"multinomial"``, :math:`e^z` for
        ``"poisson"``) or ``"class"`` (the most probable class's label, for classifiers).

    Returns:
      ``(n,)`` per strength (in front: ``(k, n)`` for the grid, the strengths' shape
      otherwise); ``(..., n, m)`` for ``m`` outputs, and class probabilities ``(..., n, C)``
      for ``"multinomial"``.

    Examples:
      >>> import numpy as np
      >>> from jreg import glm
      >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
      >>> y = np.array([1, 1, 0, 0])
      >>> fit = glm.path(X, y, datafit="logistic", strengths=[0.1])
      >>> print(np.asarray(glm.predict(fit, X, strength=0.1)).round(3))
      [0.8 0.8 0.2 0.2]
      >>> print(np.asarray(glm.predict(fit, X, strength=0.1, output="class")))
      [1 1 0 0]
    """
    path = _path_of(fit)
    model = path.model
    if model is None:
        raise ValueError("fit carries no model: pass a Path from glm.path, or glm.cross_validate's")
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    dtype = path.coef.dtype
    if sparse.is_sparse_input(X):
        X = sparse.from_input(X)
    else:
        check_real("X", X)
        X = jnp.asarray(X, dtype)
    p = path.coef.shape[1]
    if X.ndim != 2 or X.shape[1] != p:
        raise ValueError(f"X must have shape (n_samples, {p}), got {X.shape}")
    check("X", sparse.values(X), np.isfinite, "finite (no NaN or inf)")
    if strength is None:
        coef, intercept = path.coef, path.intercept
    else:
        coef, intercept = coef_at(fit, strength)
    several = path.coef.ndim == 3
    if not several:  # one output: as a column
        coef, intercept = coef[..., None], intercept[..., None]
    z = jnp.moveaxis(sparse.linear_map(X, jnp.moveaxis(coef, -2, 0)), 0, -2)
    z = z + intercept[..., None, :]
    if offset is not None:
        check_real("offset", offset)
        offset = jnp.asarray(offset, dtype)
        if offset.shape not in ((X.shape[0],), z.shape[-2:]):
            raise ValueError(f"offset must have shape ({X.shape[0]},), got {offset.shape}")
        check("offset", offset, np.isfinite, "finite (no NaN or inf)")
        z = z + jnp.broadcast_to(offset.reshape(X.shape[0], -1), z.shape)
    elif model.offset:
        raise ValueError("offset must be given: the fit had one (glmnet's newoffset)")
    datafit = paths.datafit_family(model.datafit).build(paths.Settings())  # mean, classify
    if output == "link":
        result = z
    elif output == "response":
        result = datafit.mean(z)
    else:
        if model.labels is None:
            raise ValueError(f'output="class" needs a classifier, not datafit={model.datafit!r}')
        return jnp.asarray(model.labels)[datafit.classify(datafit.mean(z))]
    return result if several or model.datafit == "multinomial" else result[..., 0]
