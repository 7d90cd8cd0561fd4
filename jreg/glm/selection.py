r"""Model selection: :func:`cross_validate` and :func:`stability_selection`.

Folds and subsamples are sample weights (0 for the rows left out), so all of them run as one
compiled program with the full-data path, sharded over the devices of a mesh (``jax.shard_map``;
across hosts too), each device running its share vmapped on accelerators, a loop over them on
CPU (where vmapped members would wait at every strength for the slowest). Classifiers' folds and
subsamples are stratified by class.

Held-out scores (``scoring``, glmnet's ``type.measure``; lower is better), per fold and strength,
weighted by the sample weights of the held-out rows:

===================== =========================================================================
``"deviance"``        the mean held-out datafit loss (for ``poisson``, half the deviance)
``"mse"``             mean squared error of the mean response (probabilities for classifiers,
                      summed over outputs or classes, as glmnet)
``"mae"``             mean absolute error, likewise
``"misclassification"`` the share of misclassified rows (classifiers)
``"auc"``             ``1 - AUC``, the area under the ROC curve of the held-out rows (binary
                      ``logistic``; ties count one half), so that lower is better
===================== =========================================================================
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jreg._checks import check, check_batch_size, check_count, is_count, is_traced
from jreg._xla import Program
from jreg.glm import objectives, paths, sparse
from jreg.glm.objectives import Data
from jreg.glm.paths import Config, Options, Path, Settings
from jreg.sweep import batch_sharding

__all__ = ["SCORINGS", "CrossValidation", "StabilitySelection", "cross_validate",
           "stability_selection"]  # fmt: skip

SCORINGS = ("deviance", "mse", "mae", "misclassification", "auc")


class CrossValidation(NamedTuple):
    """The result of :func:`cross_validate`.

    Attributes:
      strengths: ``(k,)`` the grid (as :class:`~jreg.glm.Path`'s).
      scores: ``(n_folds, k)`` held-out scores (``scoring``); lower is better.
      best_strength: the strength with the lowest mean score.
      strength_1se: the largest strength whose mean score is within one standard error of the
        best mean score.
      path: the :class:`~jreg.glm.Path` fitted on all the data.
    """

    strengths: jax.Array
    scores: jax.Array
    best_strength: jax.Array
    strength_1se: jax.Array
    path: Path


class StabilitySelection(NamedTuple):
    """The result of :func:`stability_selection`.

    Attributes:
      strengths: ``(k,)`` the grid (as :class:`~jreg.glm.Path`'s).
      probabilities: ``(k, p)`` the fraction of subsamples in which each feature is selected
        (a non-zero coefficient, for any output or class) at each strength.
    """

    strengths: jax.Array
    probabilities: jax.Array


def _batched_paths(data: Data, weights, grid, options: Options, config: Config, sequential,
                   sharding=None, batch_size=None, dropped=None, total=None):  # fmt: skip
    """:func:`jreg.glm.paths.path_arrays` for a batch of sample weights ``(B, n)``, one program.
    ``dropped`` (where the problem is solved on its Gram matrix, :func:`objectives.on_gram`):
    the most rows of positive weight a member leaves out; each member's Gram matrix is then
    formed from the full data's (:func:`objectives.member_gram`: a 5-fold cross-validation's
    six Gram matrices cost two), ``total`` if given (:func:`objectives.host_gram`, centred).

    Each device runs its members (all of them without ``sharding``; else the batch, padded with
    copies of its last member to a multiple of the devices, is sharded over ``sharding``'s mesh
    with ``jax.shard_map``) as a loop (``sequential``; faster on CPU, where members that have
    converged would wait for the others at every strength: 1.2-2x on the cross-validations of
    ``benchmarks/paths.py``), else vmapped, ``ceil(batch_size / devices)`` at a time.
    """
    weights = weights / jnp.sum(weights, axis=1, keepdims=True)
    if sharding is None:
        return _device_paths(data, weights, grid, options, config, sequential, batch_size,
                             dropped, total)  # fmt: skip
    n_members, n_devices = weights.shape[0], sharding.mesh.size
    padding = jnp.repeat(weights[-1:], -n_members % n_devices, axis=0)
    per_device = None if batch_size is None else -(-batch_size // n_devices)

    def run(d, w, g, o, t):
        return _device_paths(d, w, g, o, config, sequential, per_device, dropped, t)

    replicated = PartitionSpec()
    batch = jax.shard_map(  # the solvers know nothing of the mesh: no varying-axis checks
        run, mesh=sharding.mesh, in_specs=(replicated, sharding.spec, replicated, replicated,
        replicated), out_specs=sharding.spec, check_vma=False,
    )(data, jnp.concatenate([weights, padding]), grid, options, total)  # fmt: skip
    return jax.tree.map(lambda x: x[:n_members], batch)


def _device_paths(data: Data, weights, grid, options: Options, config: Config, sequential,
                  batch_size: int | None, dropped: int | None, total):  # fmt: skip
    """The paths of normalized ``weights (B, n)`` on one device: a loop (``sequential``), else
    vmapped ``batch_size`` at a time (all of them for ``None``); ``dropped``, ``total``: see
    :func:`_batched_paths`."""
    gram = lambda a: None  # noqa: E731
    if dropped is not None:
        shared = objectives.shared_gram(data, total)
        gram = functools.partial(objectives.member_gram, shared, data.weights, dropped=dropped,
                                 fit_intercept=config.fit_intercept)  # fmt: skip

    def one(a):
        return paths.path_arrays(data._replace(weights=a), grid, options, config, gram=gram(a))

    if sequential:
        return jax.lax.map(one, weights)
    if batch_size is None:
        return jax.vmap(one)(weights)
    return jax.lax.map(one, weights, batch_size=batch_size)


batched_paths_jit = Program(
    _batched_paths, static_argnames=("config", "sequential", "sharding", "batch_size", "dropped")
)


def _placement(data: Data, mesh: Mesh | None, batch_size) -> tuple[bool, NamedSharding | None]:
    """Whether members run one after the other (on CPU), and the sharding of the batch axis:
    over ``mesh``, by default over every device where there are several (``None`` for one)."""
    check_batch_size(batch_size)
    if mesh is None and jax.device_count() == 1:
        return paths.on_cpu(data.X), None
    sharding = batch_sharding(mesh)
    return sharding.mesh.devices.flat[0].platform == "cpu", sharding


def _replicated(tree, sharding: NamedSharding | None):
    """``tree`` copied to every device of ``sharding``'s mesh: global arrays across hosts, so
    that every host holds the inputs and the results (inside ``jit``: a sharding constraint)."""
    if sharding is None:
        return tree
    return jax.device_put(tree, NamedSharding(sharding.mesh, PartitionSpec()))


def _strata(data: Data, datafit) -> list[np.ndarray]:
    """Row indices (of positive weight) per class for classifiers (so that every fold and
    subsample holds each), else all of them."""
    rows = np.flatnonzero(np.asarray(data.weights) > 0)
    if datafit.classify is None:
        return [rows]
    labels = np.asarray(datafit.classify(data.y))[rows]
    return [rows[labels == label] for label in np.unique(labels)]


def _auc_loss(score, positive, negative) -> jax.Array:
    """``1 - AUC`` of scores ``(n,)`` with weights of the positive and negative rows (ties
    count one half), from the ranks of the scores among the negatives."""
    order = jnp.argsort(score)
    ranked, below = score[order], jnp.concatenate([jnp.zeros(1, score.dtype),
                                                   jnp.cumsum(negative[order])])  # fmt: skip
    lower = below[jnp.searchsorted(ranked, score, side="left")]
    upper = below[jnp.searchsorted(ranked, score, side="right")]
    wins = positive @ ((lower + upper) / 2)
    return 1 - wins / (jnp.sum(positive) * jnp.sum(negative))


def _held_out_scores(data: Data, datafit, fit: Path, held_out, scoring: str) -> jax.Array:
    """Scores ``(B, k)`` of a batch of paths on the rows ``held_out (B, n)`` weighs."""
    coef = fit.coef if fit.coef.ndim == 4 else fit.coef[..., None]
    intercept = fit.intercept if fit.intercept.ndim == 3 else fit.intercept[..., None]
    z = jnp.moveaxis(sparse.linear_map(data.X, jnp.moveaxis(coef, 2, 0)), 0, 2)
    z = z + intercept[:, :, None, :]
    y = data.y[None, None]  # (1, 1, n, m): against (B, k, n, m)
    if scoring == "auc":
        labels = data.y[None, :, 0]
        positive, negative = held_out * labels, held_out * (1 - labels)
        per_member = jax.vmap(_auc_loss, in_axes=(0, None, None))
        return jax.vmap(per_member)(z[..., 0], positive, negative)
    if scoring == "deviance":
        row_losses = jax.vmap(jax.vmap(datafit.loss, (0, None)), (0, None))(z, data.y)
    else:
        response = datafit.mean(z)
        if scoring == "mse":
            row_losses = jnp.sum((y - response) ** 2, axis=-1)
        elif scoring == "mae":
            row_losses = jnp.sum(jnp.abs(y - response), axis=-1)
        else:  # misclassification
            predicted = jax.vmap(jax.vmap(datafit.classify))(response)
            row_losses = (predicted != datafit.classify(data.y)[None, None]).astype(z.dtype)
    return jnp.einsum("bn,bkn->bk", held_out, row_losses) / jnp.sum(held_out, 1)[:, None]


def _check_scoring(scoring, datafit, n_outputs: int) -> None:
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
    if scoring in ("misclassification", "auc") and datafit.classify is None:
        raise ValueError(f"scoring={scoring!r} needs a classifier datafit (logistic, multinomial)")
    if scoring == "auc" and n_outputs != 1:
        raise ValueError("scoring='auc' needs two classes (datafit='logistic')")


@paths.in_data_precision()
def cross_validate(
    X,
    y,
    *,
    n_folds=5,
    folds=None,
    seed=0,
    scoring="deviance",
    mesh=None,
    batch_size=None,
    **path_kwargs,
) -> CrossValidation:
    r"""K-fold cross-validated path: all folds and the full-data path in one program.

    The grid is computed on all the data (as scikit-learn's ``LassoCV`` and glmnet do); each
    fold's model is the path fitted with that fold's rows held out (weight 0). For classifiers
    the folds are stratified by class.

    Args:
      X: ``(n, p)`` features, dense or sparse (see :func:`jreg.glm.path`).
      y: targets or labels, as for :func:`~jreg.glm.path`.
      n_folds: number of folds (>= 2).
      folds: ``(n,)`` int fold ids ``0..K-1``, each present (glmnet's ``foldid``): the
        folds, given (then ``n_folds`` and ``seed`` are not used).
      seed: seed of the random assignment of rows to folds.
      scoring: the held-out score (glmnet's ``type.measure``): ``"deviance"`` (the mean
        held-out datafit loss), ``"mse"``, ``"mae"``, ``"misclassification"``, ``"auc"``
        (reported as ``1 - AUC``); lower is better (see the module docstring).
      mesh: a ``jax.sharding.Mesh`` whose devices share the folds (over all its axes, across
        hosts too, as :func:`jreg.sweep`); ``None``: every device where there are several.
      batch_size: the most members (folds and the full path) solved at once, rounded up to a
        multiple of the devices (on CPU each device solves one at a time); ``None``: all.
      **path_kwargs: any keyword of :func:`~jreg.glm.path` (``datafit``, ``penalty``,
        ``strengths``, ...).

    Returns:
      A :class:`CrossValidation` with ``scores (n_folds, k)``, ``best_strength``,
      ``strength_1se`` and ``path``.

    Examples:
      >>> import numpy as np
      >>> from jreg import glm
      >>> rng = np.random.default_rng(0)
      >>> X = rng.standard_normal((100, 8))
      >>> y = X[:, 0] - 2 * X[:, 1] + 0.5 * rng.standard_normal(100)
      >>> cv = glm.cross_validate(X, y, n_folds=5, n_strengths=30)
      >>> cv.scores.shape
      (5, 30)
      >>> bool(cv.strength_1se >= cv.best_strength)
      True
    """
    _check_concrete("cross_validate", (X, y, folds, path_kwargs))
    settings = Settings(**path_kwargs)
    data, options, config = paths.setup(X, y, settings, device=False)
    grid, relative = paths.grid_input(data, options, config, settings)
    datafit = paths.datafit_of(config, options, data)
    _check_scoring(scoring, datafit, data.y.shape[1])
    if folds is None:
        folds = _random_folds(data, datafit, n_folds, seed)
    else:
        folds = _given_folds(folds, data.X.shape[0])
    held_out = np.asarray(folds[None, :] == np.arange(folds.max() + 1)[:, None], data.X.dtype)
    weights = np.asarray(data.weights)
    held_out_weight = held_out @ weights
    if np.any(held_out_weight <= 0) or np.any(held_out_weight >= weights.sum()):
        raise ValueError(
            "folds must each hold out, and keep for training, rows of positive sample_weight"
        )
    dropped = total = None  # on the Gram form: each fold's Gram matrix from the full data's
    if objectives.on_gram(datafit, data):
        dropped = int(np.max(np.sum((held_out > 0) & (weights > 0), axis=1)))
        total = objectives.host_gram(data, centred=True)
    transposed = paths.by_features(data, options, config)
    data = paths.on_device(data, transposed)
    sequential, sharding = _placement(data, mesh, batch_size)
    *inputs, total = _replicated((data, held_out, grid, options, total), sharding)
    result, converged = _cross_validation_jit(
        *inputs, config=config, scoring=scoring, sequential=sequential, sharding=sharding,
        batch_size=batch_size, relative=relative, dropped=dropped, total=total,
        transposed=transposed,
    )  # fmt: skip
    if relative is not None:
        paths.check_strength_max(result.strengths)
    paths.warn_unconverged(
        converged, settings.max_iter, "solves (folds and the full path, per strength)"
    )
    return result._replace(path=result.path._replace(model=paths.model_of(y, data, settings)))


def _check_concrete(name: str, inputs) -> None:
    if is_traced(inputs):
        raise TypeError(
            f"{name} needs concrete inputs (its folds and subsamples are drawn and checked on the "
            "host): call it outside jax.jit / jax.vmap (glm.path and glm.fit work inside)"
        )


def _generator(seed) -> np.random.Generator:
    if not is_count(seed, 0):
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return np.random.default_rng(seed)


def _random_folds(data: Data, datafit, n_folds, seed) -> np.ndarray:
    """Fold ids ``(n,)`` drawn at random, stratified by class for classifiers."""
    strata = _strata(data, datafit)
    limit = min(rows.size for rows in strata)  # so that no fold holds out nothing of a stratum
    if not is_count(n_folds, 2) or n_folds > limit:
        what = "the smallest class" if datafit.classify else "n_samples"
        raise ValueError(f"n_folds must be an int in [2, {what} = {limit}], got {n_folds!r}")
    rng = _generator(seed)
    folds = np.full(data.X.shape[0], -1)  # rows of weight 0 are in no fold
    for rows in strata:
        folds[rng.permutation(rows)] = np.arange(rows.size) % n_folds
    return folds


def _given_folds(folds, n: int) -> np.ndarray:
    """The user's fold ids, checked: ``(n,)`` ints ``0..K-1``, each present, ``K >= 2``."""
    folds = np.asarray(folds)
    if folds.shape != (n,) or not np.issubdtype(folds.dtype, np.integer):
        raise ValueError(f"folds must be an int array of shape ({n},), got {folds.dtype} "
                         f"{folds.shape}")  # fmt: skip
    present = np.unique(folds)
    if present.size < 2 or not np.array_equal(present, np.arange(present.size)):
        raise ValueError(f"folds must hold the ids 0..K-1 (K >= 2), each present, got "
                         f"{present[:10]}")  # fmt: skip
    return folds


def _cross_validation(data: Data, held_out, grid, options: Options, config: Config,
                      scoring: str, sequential: bool, sharding, batch_size, relative,
                      dropped, total, transposed):  # fmt: skip
    """:func:`cross_validate` after the folds are drawn (``held_out``: ``(n_folds, n)``, 1 for
    the rows a fold holds out), one program; also returns whether each solve converged (copied
    to every device of ``sharding``'s mesh, so every host holds the whole result). The grid:
    see :func:`paths.resolve_grid`, on all the data; ``transposed``: ``data.X`` holds the
    transpose of the features (:func:`paths.by_features`)."""
    data = paths.untransposed(data, transposed)
    grid, options = paths.resolve_grid(data, grid, options, config, relative)
    n_folds = held_out.shape[0]
    weights = jnp.concatenate([data.weights[None, :] * (1 - held_out), data.weights[None]])
    batch, converged = _batched_paths(
        data, weights, grid, options, config, sequential, sharding, batch_size, dropped, total
    )
    folds = jax.tree.map(lambda x: x[:n_folds], batch)
    datafit = paths.datafit_of(config, options, data)
    scores = _held_out_scores(data, datafit, folds, held_out * data.weights[None, :], scoring)
    mean = jnp.mean(scores, axis=0)
    best = jnp.argmin(mean)
    standard_error = jnp.std(scores[:, best], ddof=1) / n_folds**0.5
    within = mean <= mean[best] + standard_error
    result = CrossValidation(
        strengths=grid,
        scores=scores,
        best_strength=grid[best],
        strength_1se=jnp.max(jnp.where(within, grid, -jnp.inf)),
        path=jax.tree.map(lambda x: x[n_folds], batch),
    )
    return _replicated((result, converged), sharding)


_cross_validation_jit = Program(
    _cross_validation,
    static_argnames=(
        "config",
        "scoring",
        "sequential",
        "sharding",
        "batch_size",
        "relative",
        "dropped",
        "transposed",
    ),
)


@paths.in_data_precision()
def stability_selection(
    X, y, *, n_subsamples=100, fraction=0.5, seed=0, mesh=None, batch_size=None, **path_kwargs
) -> StabilitySelection:
    r"""Stability selection (Meinshausen and Buhlmann, 2010), all subsamples in one program.

    Fits the path on ``n_subsamples`` random subsamples of ``fraction * n`` rows (without
    replacement; stratified by class for classifiers) and returns, per strength and feature,
    the fraction of subsamples in which the feature is selected (non-zero).

    Args:
      X: ``(n, p)`` features, dense or sparse (see :func:`jreg.glm.path`).
      y: targets or labels, as for :func:`~jreg.glm.path`.
      n_subsamples: number of subsamples.
      fraction: fraction of the rows in each subsample, in (0, 1].
      seed: seed of the subsampling.
      mesh: a ``jax.sharding.Mesh`` whose devices share the subsamples (over all its axes, across
        hosts too); ``None``: every device where there are several.
      batch_size: the most subsamples solved at once, rounded up to a multiple of the devices
        (on CPU each device solves one at a time); ``None``: all.
      **path_kwargs: any keyword of :func:`~jreg.glm.path`.

    Returns:
      A :class:`StabilitySelection` with ``probabilities (k, p)``.

    Examples:
      >>> import numpy as np
      >>> from jreg import glm
      >>> rng = np.random.default_rng(0)
      >>> X = rng.standard_normal((100, 8))
      >>> y = 3 * X[:, 0] + 0.5 * rng.standard_normal(100)
      >>> result = glm.stability_selection(X, y, n_subsamples=20, n_strengths=10)
      >>> result.probabilities.shape
      (10, 8)
      >>> float(result.probabilities[5, 0])
      1.0
    """
    _check_concrete("stability_selection", (X, y, path_kwargs))
    settings = Settings(**path_kwargs)
    data, options, config = paths.setup(X, y, settings, device=False)
    grid, relative = paths.grid_input(data, options, config, settings)
    check_count("n_subsamples", n_subsamples)
    check("fraction", fraction, lambda f: (f > 0) & (f <= 1), "in (0, 1]")
    datafit = paths.datafit_of(config, options, data)
    rng = _generator(seed)
    mask = np.zeros((n_subsamples, data.X.shape[0]))
    for rows in _strata(data, datafit):
        size = max(1, int(round(fraction * rows.size)))
        for subsample in mask:
            subsample[rng.choice(rows, size, replace=False)] = 1
    weights = np.asarray(data.weights)[None, :] * mask.astype(data.X.dtype)
    transposed = paths.by_features(data, options, config)
    data = paths.on_device(data, transposed)
    sequential, sharding = _placement(data, mesh, batch_size)
    grid, probabilities, converged = _selection_probabilities_jit(
        *_replicated((data, weights, grid, options), sharding), config=config,
        sequential=sequential, sharding=sharding, batch_size=batch_size, relative=relative,
        transposed=transposed,
    )  # fmt: skip
    if relative is not None:
        paths.check_strength_max(grid)
    paths.warn_unconverged(converged, settings.max_iter, "solves (subsamples, per strength)")
    return StabilitySelection(grid, probabilities)


def _selection_probabilities(data: Data, weights, grid, options: Options, config: Config,
                             sequential: bool, sharding, batch_size, relative,
                             transposed):  # fmt: skip
    """The grid (see :func:`paths.resolve_grid`, on all the data), per strength and feature
    the fraction of the paths of ``weights (B, n)`` that select it, and whether each solve
    converged (on every device of ``sharding``'s mesh); ``transposed``: see
    :func:`_cross_validation`."""
    data = paths.untransposed(data, transposed)
    grid, options = paths.resolve_grid(data, grid, options, config, relative)
    batch, converged = _batched_paths(
        data, weights, grid, options, config, sequential, sharding, batch_size
    )
    coef = batch.coef if batch.coef.ndim == 3 else jnp.any(batch.coef != 0, axis=-1)
    return _replicated((grid, jnp.mean(coef != 0, axis=0), converged), sharding)


_selection_probabilities_jit = Program(
    _selection_probabilities,
    static_argnames=("config", "sequential", "sharding", "batch_size", "relative", "transposed"),
)
