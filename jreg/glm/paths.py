r"""The path driver: checked inputs, the configuration, :func:`path` and :func:`strength_max`.

Configuration is split by what it is: the structure (which datafit and penalty, the intercept,
the groups, the shapes) is static, a compiled program's key; every number (``tol``,
``max_iter``, ``l1_ratio``, ``gamma``, ``a``, ``delta``, penalty factors, group weights, bounds)
is a traced argument, so that a new value runs the same program.
"""

import functools
import warnings
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jreg._checks import (
    as_array,
    check,
    check_a,
    check_count,
    check_gamma,
    check_l1_ratio,
    check_real,
    check_strength,
    host_array,
    is_count,
    is_traced,
)
from jreg._xla import Program
from jreg.glm import datafits as _datafits
from jreg.glm import implicit, objectives, solvers, sparse
from jreg.glm import penalties as _penalties
from jreg.glm.objectives import Data, on_cpu

__all__ = ["ConvergenceWarning", "Fit", "Model", "Path", "fit", "path", "strength_max"]

_INT32_MAX = 2**31 - 1


@jax.tree_util.register_static  # no array: a static part of the pytrees that hold it
class Model(NamedTuple):
    """What predicting from a fit needs beyond its coefficients (:func:`jreg.glm.predict`).

    Attributes:
      datafit: the datafit's name, or the user's loss.
      labels: the class labels in the order of the classes (``(0, 1)`` or ``(-1, 1)`` for
        ``"logistic"``, ``(0, ..., C-1)`` for ``"multinomial"``); None for regressions.
      offset: whether the fit had an offset (predictions then need one).
    """

    datafit: str | Callable
    labels: tuple | None = None
    offset: bool = False


class Path(NamedTuple):
    """A regularization path.

    Attributes:
      strengths: ``(k,)`` the strengths, in the order fitted (the default grid's: from largest
        to smallest; given ones: as given).
      coef: ``(k, p)`` coefficients; ``(k, p, m)`` for ``m`` outputs or classes.
      intercept: ``(k,)`` intercepts (0 when ``fit_intercept=False``); ``(k, m)``.
      gap: ``(k,)`` duality gap (convex penalties) or squared gradient mapping (a KKT residual:
        ``mcp``, ``scad``, user-defined parts, bounded group lasso) at the returned solution, in
        objective units.
      n_iter: ``(k,)`` solver iterations spent at each strength (FISTA iterations; coordinate
        descent epochs, proximal Newton's included; Newton steps).
      deviance_ratio: ``(k,)`` the fraction of the null deviance explained, :math:`1 -
        L(W, b) / L_0` with :math:`L` the weighted mean loss (half the deviance) and
        :math:`L_0` its value at :math:`W = 0` (with the best intercept, if fitted): glmnet's
        ``dev.ratio``.
      n_nonzero: ``(k,)`` the number of features with a non-zero coefficient (for any output
        or class): glmnet's ``df``.
      model: the :class:`Model` (datafit, labels) that :func:`jreg.glm.predict` reads.
    """

    strengths: jax.Array
    coef: jax.Array
    intercept: jax.Array
    gap: jax.Array
    n_iter: jax.Array
    deviance_ratio: jax.Array | None = None
    n_nonzero: jax.Array | None = None
    model: Model | None = None


class Fit(NamedTuple):
    """The solution at one strength (see :class:`Path` for the shapes, without the leading
    strength axis)."""

    coef: jax.Array
    intercept: jax.Array
    gap: jax.Array
    n_iter: jax.Array


class ConvergenceWarning(UserWarning):
    """Some solves stopped at ``max_iter`` before reaching ``tol`` (the gap, and every
    coordinate's optimality residual: see :func:`path`): their solutions are approximate (each
    strength's gap is in :attr:`Path.gap`)."""


TOL_FLOOR_EPS = 100  # the smallest tol in float32, in ulps (see _target)
SNAP_EPS = 1000  # strengths this many ulps below strength_max are solved at it (see _snapped)


def warn_unconverged(converged, max_iter: int, what: str) -> None:
    if is_traced(converged):
        return
    converged = np.asarray(converged)
    stopped = int(np.sum(~converged))
    if stopped:
        message = (
            f"{stopped} of {converged.size} {what} stopped at max_iter={max_iter} before the "
            "gap and residuals reached tol (their solutions are approximate): raise max_iter, "
            "or tol"
        )
        warnings.warn(message, ConvergenceWarning, stacklevel=4)  # past in_data_precision


# --------------------------------------------------------------------------------------------
# Precision.


def _float64_data(X) -> bool:
    """Whether ``X`` is float64 data that x64 off would compute in float32: numpy, lists,
    data frames, ``scipy.sparse``."""
    if isinstance(X, jax.Array) or isinstance(getattr(X, "data", None), jax.Array):
        return False  # a jax array or BCOO: in the precision of its making
    dtype = X.dtype if hasattr(X, "dtype") else np.asarray(X).dtype
    return dtype == np.float64


def in_data_precision(position: int = 0) -> Callable:
    """The entry point decorated computes in its data's precision: where x64 is off and the
    argument at ``position`` (``X``) is concrete float64 data, it runs with x64 on for its
    duration, and its arrays come back as numpy arrays (float64 jax arrays would not survive the
    switch back). Float32 data, jax arrays, and any traced argument: unchanged."""

    def decorate(entry: Callable) -> Callable:
        @functools.wraps(entry)
        def run(*args, **kwargs):
            if jax.config.jax_enable_x64 or is_traced((args, kwargs)):
                return entry(*args, **kwargs)
            if len(args) <= position or not _float64_data(args[position]):
                return entry(*args, **kwargs)
            with jax.enable_x64(True):
                result = entry(*args, **kwargs)
                return jax.tree.map(
                    lambda leaf: np.asarray(leaf) if isinstance(leaf, jax.Array) else leaf, result
                )

        return run

    return decorate


# --------------------------------------------------------------------------------------------
# Configuration.


class Settings(NamedTuple):
    """The keywords of :func:`path` (the defaults of its signature; a test keeps them equal),
    which :func:`jreg.glm.cross_validate` and :func:`jreg.glm.stability_selection` forward."""

    datafit: str | Callable = "squared"
    penalty: str | tuple = "l1"
    strengths: object = None
    n_strengths: int = 100
    strength_min_ratio: float | None = None
    l1_ratio: float = 1.0
    fit_intercept: bool = True
    standardize: bool = False
    tol: float = 1e-6
    max_iter: int = 10_000
    bounds: tuple | None = None
    sample_weight: object = None
    offset: object = None
    penalty_factor: object = None
    groups: object = None
    group_weights: object = None
    gamma: float = 3.0
    a: float = 3.7
    delta: float = 1.35


class Config(NamedTuple):
    """The static configuration of a path computation (hashable, a jit static argument)."""

    datafit: str | Callable  # a name of DATAFITS, or a user's loss
    penalty: str | tuple  # a name of PENALTIES, or a user's (value, prox)
    fit_intercept: bool
    groups: tuple | None
    squeeze: bool  # one output reported as (k, p) coefficients
    standardize: bool = False  # solved on features scaled to unit weighted variance
    newton: bool = True  # active-set Newton steps where the penalty has them
    coordinate_descent: bool = True  # the squared loss's (else FISTA): on the CPU


class Options(NamedTuple):
    """The traced numbers of a path computation."""

    tol: jax.Array
    max_iter: jax.Array
    l1_ratio: jax.Array
    gamma: jax.Array
    a: jax.Array
    delta: jax.Array
    penalty_factor: jax.Array  # (p,)
    group_weights: jax.Array | None
    lower: jax.Array | None  # (p,) bounds
    upper: jax.Array | None


def datafit_family(datafit) -> _datafits.Family:
    if callable(datafit):
        loss = _datafits.from_loss(datafit)
        return _datafits.Family(lambda options: loss)
    if datafit not in _datafits.DATAFITS:
        names = tuple(_datafits.DATAFITS)
        raise ValueError(f"datafit must be one of {names} or a loss(z, y), got {datafit!r}")
    return _datafits.DATAFITS[datafit]


def _is_pair(penalty) -> bool:
    return isinstance(penalty, tuple) and len(penalty) == 2 and all(map(callable, penalty))


def _penalty_family(penalty) -> _datafits.Family:
    if _is_pair(penalty):
        return _penalties.from_pair(penalty)
    if not isinstance(penalty, str) or penalty not in _penalties.PENALTIES:
        names = tuple(_penalties.PENALTIES)
        raise ValueError(f"penalty must be one of {names} or a pair (value, prox), got {penalty!r}")
    return _penalties.PENALTIES[penalty]


def datafit_of(config: Config, options: Options, data: Data):
    """The datafit of a configuration, of the linear predictor plus ``data.offset`` (if any)."""
    datafit = datafit_family(config.datafit).build(options)
    if data.offset is not None:
        datafit = _datafits.with_offset(datafit, data.offset)
    return datafit


def parts(config: Config, options: Options, data: Data):
    """The datafit (:func:`datafit_of`) and the penalty of a configuration on ``data`` (its
    outputs and dtype), built from the traced options (outside a trace, the penalty's
    per-coordinate arrays are eager operations, each compiled: :func:`datafit_of` alone
    where only the datafit is asked)."""
    layout = (data.y.shape[1], data.X.dtype)
    penalty = _penalty_family(config.penalty).build(options, layout, config.groups)
    return datafit_of(config, options, data), penalty


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _check_options(settings: Settings, datafit, penalty) -> None:
    """Options given to a datafit or penalty that does not read them raise."""
    defaults = Settings()
    reads = set(datafit.options) | set(penalty.options)
    for name in ("l1_ratio", "gamma", "a", "delta", "group_weights"):
        value, default = getattr(settings, name), getattr(defaults, name)
        if default is None or is_traced(value):  # a traced value is given
            given = value is not None
        else:
            given = bool(np.any(value != default))
        if name not in reads and given:
            owner = "datafit" if name == "delta" else "penalty"
            raise ValueError(f"{name} does not apply to {owner}={getattr(settings, owner)!r}")
    check_l1_ratio(settings.l1_ratio)
    check_gamma(settings.gamma)
    check_a(settings.a)
    check("delta", settings.delta, lambda d: np.isfinite(d) & (d > 0), "finite and > 0")
    if settings.penalty in ("elastic_net", "group_lasso"):
        tiny = np.finfo(np.float32).tiny  # smaller: flushed to zero (a ridge) on some devices
        check("l1_ratio", settings.l1_ratio, lambda r: r >= tiny,
              f">= {tiny:.3g} (l1_ratio=0 is penalty='l2')")  # fmt: skip
    check("tol", settings.tol, lambda t: np.isfinite(t) & (t > 0), "finite and > 0")
    _check_bool("fit_intercept", settings.fit_intercept)
    if not is_count(settings.max_iter):
        raise ValueError(f"max_iter must be a positive int, got {settings.max_iter!r}")
    grouped = settings.penalty == "group_lasso"
    if settings.groups is not None and not grouped:
        raise ValueError("groups applies to penalty='group_lasso' only")
    if settings.groups is not None:
        groups = np.asarray(settings.groups)
        if not np.issubdtype(groups.dtype, np.integer):
            raise ValueError(f"groups must hold integer ids, got {settings.groups!r}")
    if settings.bounds is not None and settings.penalty not in _penalties.CONVEX:
        raise ValueError(
            f"bounds apply to the convex penalties {_penalties.CONVEX}, got penalty="
            f"{settings.penalty!r}"
        )


def _check_finite_scale(name: str, values: jax.Array) -> None:
    """Finite, with the largest ``|value|`` (where concrete and not all zero) where its square,
    and a tolerance's share of it, are normal numbers of the dtype: the solvers work with both.
    From the two extremes (NaN and inf reach them), on the host: no dispatch, no temporary
    array (``X`` is the largest input: ``np.abs`` and ``np.isfinite`` of 20000 x 300 took 18
    of the 65 ms of a path's set-up)."""
    if is_traced(values):
        return
    host = np.asarray(values)
    extremes = np.array([np.min(host, initial=0), np.max(host, initial=0)], np.float64)
    if not np.all(np.isfinite(extremes)):
        check(name, host, np.isfinite, "finite (no NaN or inf)")  # raises, naming the values
    largest = float(np.max(np.abs(extremes)))
    info = jnp.finfo(values.dtype)
    low, high = float(np.sqrt(info.tiny) / info.eps), float(np.sqrt(info.max * info.eps))
    if largest > 0 and not low <= largest <= high:
        raise ValueError(
            f"{name} must have its largest |value| in [{low:.1e}, {high:.1e}] in {values.dtype}"
            f" (its squares are computed), got {largest:.3g}: rescale it (e.g. by a power of 10)"
        )


def _normalized_weights(sample_weight, n: int, dtype) -> jax.Array:
    """Checked ``sample_weight`` divided by their sum (on the host where concrete: no eager
    device operations)."""
    check_real("sample_weight", sample_weight)
    weights = host_array(sample_weight, dtype)
    xp = jnp if is_traced(weights) else np
    if weights.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {weights.shape}")
    check("sample_weight", weights, lambda s: np.isfinite(s) & (s >= 0), "finite, >= 0")
    check("sample_weight", xp.any(weights > 0), lambda s: s, "not all zero")
    weights = xp.where(xp.all(weights >= 0), weights, xp.nan)  # traced: see _valid
    # scaled by a power of two below 1 first (exactly; no reciprocal of a huge maximum, which
    # would be subnormal, flushed to 0): then the sum cannot overflow
    weights = xp.ldexp(weights, -xp.frexp(xp.max(weights))[1])
    return as_array(weights / xp.sum(weights), dtype)


def _prepare(X, y, sample_weight, offset, datafit, *, device: bool) -> Data:
    """Validates and converts the data; the dtype is X's (at least float32). An offset is
    taken off ``y`` where the loss is a function of the residual. ``device``: a dense ``X``
    given on the host is put on the device (else left there, as numpy: see :func:`setup`)."""
    if sparse.is_sparse_input(X):
        X = sparse.from_input(X)
    else:
        check_real("X", X)
        X = X if isinstance(X, jax.Array) else np.asarray(X)
        dtype = jnp.promote_types(X.dtype, jnp.float32)
        on_host = not device and isinstance(X, np.ndarray)
        X = np.asarray(X, jax.dtypes.canonicalize_dtype(dtype)) if on_host else as_array(X, dtype)
    check_real("y", y, " (text labels: to 0..C-1 by np.unique(y, return_inverse=True))")
    dtype = X.dtype
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array (n_samples, n_features), got shape {X.shape}")
    n = X.shape[0]
    if n == 0 or X.shape[1] == 0:
        raise ValueError(f"X must have at least one sample and one feature, got shape {X.shape}")
    _check_finite_scale("X", sparse.values(X))
    if np.shape(y)[:1] != (n,):
        raise ValueError(f"y must have {n} rows to match X, got shape {np.shape(y)}")
    if sample_weight is None:
        weights = as_array(np.full(n, 1 / n), dtype)
    else:
        weights = _normalized_weights(sample_weight, n, dtype)
    y = datafit.prepare(y, weights)
    if datafit.residual:
        _check_finite_scale("y", y)
    if offset is None:
        return Data(X, y, weights)
    check_real("offset", offset)
    offset = as_array(offset, dtype)
    if offset.shape not in ((n,), y.shape):
        shapes = f"({n},)" if y.shape[1] == 1 else f"({n},) or {y.shape}"
        raise ValueError(f"offset must have shape {shapes}, got {offset.shape}")
    check("offset", offset, np.isfinite, "finite (no NaN or inf)")
    offset = jnp.broadcast_to(offset.reshape(n, -1), y.shape)
    if datafit.residual:
        return Data(X, y - offset, weights)
    return Data(X, y, weights, offset)


def _vector(name: str, value, p: int, dtype, requirement: str, ok) -> jax.Array:
    check_real(name, value)
    array = as_array(value, dtype)
    if array.shape != (p,):
        raise ValueError(f"{name} must have shape ({p},), got {array.shape}")
    check(name, array, ok, requirement)
    return array


def setup(X, y, settings: Settings, *, device: bool = True) -> tuple[Data, Options, Config]:
    """Validated data, traced options and static configuration of ``settings``; ``device``
    false: a dense ``X`` given on the host stays there (numpy) for :func:`solve_path`, which
    may never need it on the device."""
    family = datafit_family(settings.datafit)
    penalty_family = _penalty_family(settings.penalty)
    _check_options(settings, family, penalty_family)
    datafit = family.build(settings)  # its label checks (no number is used)
    data = _prepare(X, y, settings.sample_weight, settings.offset, datafit, device=device)
    n, p = data.X.shape
    dtype = data.X.dtype
    grouped = settings.penalty == "group_lasso"
    n_outputs = data.y.shape[1]
    if grouped and settings.groups is None and n_outputs == 1:
        raise ValueError("groups must be given for penalty='group_lasso' with one output")
    groups = None if settings.groups is None else np.asarray(settings.groups)
    if groups is not None and groups.shape != (p,):
        raise ValueError(f"groups must be an int array of shape ({p},), got {settings.groups!r}")
    group_weights = None
    if grouped:  # given or not, an array (traced: new weights do not recompile)
        sizes = np.unique(np.arange(p) if groups is None else groups, return_counts=True)[1]
        given = np.sqrt(sizes) if settings.group_weights is None else settings.group_weights
        group_weights = _vector("group_weights", given, sizes.size, dtype, "finite, > 0",
                                lambda g: np.isfinite(g) & (g > 0))  # fmt: skip
    if settings.penalty_factor is None:
        factor = np.ones(p, dtype)
    elif grouped:
        raise ValueError("penalty_factor does not apply to group_lasso: use group_weights")
    else:
        factor = _vector("penalty_factor", settings.penalty_factor, p, dtype,
                         ">= 0 (inf excludes a feature), not NaN",
                         lambda f: ~np.isnan(f) & (f >= 0))  # fmt: skip
        if not is_traced(factor) and np.any(np.isinf(factor)):
            # an excluded feature: a column of zeros, penalized, stays at exactly 0
            excluded = jnp.isinf(factor)
            data = data._replace(X=sparse.zero_columns(data.X, excluded))
            factor = jnp.where(excluded, 1, factor)
    lower = upper = None
    if settings.bounds is not None:
        lower, upper = _penalties.check_bounds(settings.bounds, p, dtype)
    scalar = lambda x: host_array(x, dtype)  # noqa: E731
    options = Options(
        tol=scalar(settings.tol),
        max_iter=np.asarray(min(int(settings.max_iter), _INT32_MAX), np.int32),
        l1_ratio=scalar(settings.l1_ratio),
        gamma=scalar(settings.gamma),
        a=scalar(settings.a),
        delta=scalar(settings.delta),
        penalty_factor=factor,
        group_weights=group_weights,
        lower=lower,
        upper=upper,
    )
    config = Config(
        datafit=settings.datafit,
        penalty=settings.penalty,
        fit_intercept=bool(settings.fit_intercept),
        groups=None if groups is None else tuple(groups.tolist()),
        squeeze=np.ndim(y) == 1 and n_outputs == 1,
        standardize=_check_bool("standardize", settings.standardize),
        coordinate_descent=on_cpu(data.X),
    )
    return data, options, config


# --------------------------------------------------------------------------------------------
# The computations (jitted; ``config`` static).


def _target(problem: objectives.Problem, options: Options, lam, gradient) -> solvers.Target:
    r"""Where the solvers stop at the strengths ``lam`` (the strength times the penalty
    factors): a gap of ``tol`` times the objective at :math:`w = 0`, and every coordinate's
    optimality residual at most :math:`\max(10 \sqrt{tol}, 10^{-3})` times the largest finite
    ``lam`` (1e-2 of it at the default ``tol``, 1e-3 at ``tol <= 1e-8``: the gap alone bounds a
    residual only by :math:`\sqrt{\text{gap}}`, far above the strength's scale at the small end
    of a path), or times 1e-3 of the largest
    ``gradient`` at zero (``strength_max``'s scale) for a strength below that (negligible).
    In float32 (and narrower) ``tol`` is at least ``TOL_FLOOR_EPS`` ulps (1.2e-5): a gap much
    smaller cannot be measured."""
    value_at_zero = jnp.abs(problem.value_at_zero)
    info = jnp.finfo(value_at_zero.dtype)
    tol = jnp.maximum(options.tol, TOL_FLOOR_EPS * info.eps) if info.bits < 64 else options.tol
    top = jnp.max(jnp.where(jnp.isfinite(lam), lam, 0))
    scale = jnp.maximum(top, 1e-3 * jnp.max(jnp.abs(gradient)))
    residual = jnp.where(top > 0, jnp.maximum(10 * jnp.sqrt(tol), 1e-3) * scale, jnp.inf)
    return solvers.Target(tol * value_at_zero, residual)


def standardized(data: Data, options: Options, config: Config):
    r"""With ``config.standardize``, the data with every feature divided by its standard
    deviation under the sample weights, :math:`s_j = (\sum_i a_i (x_{ij} - \bar x_j)^2)^{1/2}`
    (glmnet's ``standardize=TRUE``; a constant feature is left as it is), and the bounds
    times :math:`s`: the scaled problem's coefficients are :math:`s_j w_j`, its intercept the
    same. Returns ``(data, options, s)`` (``s`` ones without ``standardize``)."""
    X, a = data.X, data.weights
    if not config.standardize:
        return data, options, jnp.ones(X.shape[1], X.dtype)
    if objectives.is_moments(X):
        variance = X.variance
    elif sparse.is_sparse(X):
        variance = sparse.squares_times(sparse.centred(X, a @ X).T, a)
    else:  # a reduction over the samples: neither X^T nor the squares written out
        variance = jnp.sum(a[:, None] * sparse.centred(X, a @ X) ** 2, axis=0)
    rounding = (100 * jnp.finfo(X.dtype).eps * objectives.column_max_abs(X)) ** 2
    varies = variance > rounding  # else constant up to rounding
    scale = jnp.where(varies, jnp.sqrt(jnp.where(varies, variance, 1)), 1)
    if options.lower is not None:
        options = options._replace(lower=options.lower * scale, upper=options.upper * scale)
    scaled = X.scaled(scale) if objectives.is_moments(X) else sparse.scaled(X, scale)
    return data._replace(X=scaled), options, scale


def _valid(data: Data, strengths, options: Options) -> jax.Array:
    """Whether the inputs are valid, as their concrete checks would find: where traced, an
    invalid input makes every result NaN rather than a plausible number."""
    positive = [options.tol, options.delta, options.a - 2, options.gamma - 1]
    positive += [] if options.group_weights is None else [options.group_weights]
    at_least_zero = [strengths, options.penalty_factor, options.l1_ratio, 1 - options.l1_ratio]
    if options.lower is not None:
        at_least_zero += [-options.lower, options.upper]
    finite = [data.y, strengths, options.penalty_factor, *positive]
    finite += [] if data.offset is None else [data.offset]
    ok = [jnp.isfinite(objectives.largest_abs(data.X))] + [jnp.all(jnp.isfinite(x)) for x in finite]
    ok += [jnp.all(x > 0) for x in positive] + [jnp.all(x >= 0) for x in at_least_zero]
    ok += [jnp.all(data.weights >= 0) & (jnp.sum(data.weights) > 0)]
    return jnp.all(jnp.stack(ok))


def resolve_grid(data: Data, strengths, options: Options, config: Config, relative):
    """The strengths of a program's ``(strengths, relative)`` (see :func:`grid_input`): where
    ``relative`` (static) is not None, ``strengths`` are ratios of :func:`strength_max`,
    computed here (held fixed under differentiation; ``relative``: with the fit of the
    unpenalized features, see :func:`strength_max_jit`), and ``options`` get no solver
    iterations where it is not finite and > 0 (an error after the run:
    :func:`check_strength_max`)."""
    if relative is None:
        return strengths, options
    top = jax.lax.stop_gradient(strength_max_arrays(data, options, config, relative))
    usable = jnp.isfinite(top) & (top > 0)
    return top * strengths, options._replace(max_iter=jnp.where(usable, options.max_iter, 0))


def _snapped(strength, top):
    r"""``top``, the strength from which the solution is 0 (:func:`strength_max`'s, as this
    program rounds it), where ``strength`` is below it by at most :data:`SNAP_EPS` ulps, else
    ``strength``. The same top rounded another way (a cross-validation's program sums over
    ``X``, :func:`fit` over the host's moments) then gives the zero solution, not one
    coefficient of 1e-16: ``fit(X, y, cv.strengths[0])`` did on 26 of 48 data sets. The
    solution moves by that share of the strength, far below any tolerance."""
    if top is None:
        return strength
    close = (strength < top) & (strength >= top * (1 - SNAP_EPS * jnp.finfo(top.dtype).eps))
    return jnp.where(close, top, strength)


def path_arrays(data: Data, strengths, options: Options, config: Config, *, relative=None,
                gram=None, transposed=False):  # fmt: skip
    """The path for one data set (weights included), batched over folds and subsamples, and
    whether each strength reached ``tol`` (a NaN gap did not); all NaN for invalid inputs.
    ``relative``: see :func:`resolve_grid`; ``gram``: the Gram matrix of the data's Gram form
    (before standardization), if known (:func:`objectives.member_gram`); ``transposed``:
    ``data.X`` holds the transpose ``(p, n)`` of the features (:func:`by_features`)."""
    data = untransposed(data, transposed)
    valid = _valid(data, strengths, options)
    strengths, options = resolve_grid(data, strengths, options, config, relative)
    data, options, scale = standardized(data, options, config)
    datafit, penalty = parts(config, options, data)
    if gram is not None:
        gram = gram / (scale[:, None] * scale[None, :])
    problem = objectives.problem(
        datafit, penalty, data, fit_intercept=config.fit_intercept, newton=config.newton,
        coordinate_descent=config.coordinate_descent, gram=gram,
    )  # fmt: skip
    gradient = objectives.gradient_at_zero(datafit, data, fit_intercept=config.fit_intercept)
    top = None  # a user's penalty has no threshold: its strengths are solved as given
    if penalty.zero_threshold is not None:
        top = _zero_threshold(penalty, gradient, datafit, data)

    p, m = data.X.shape[1], data.y.shape[1]

    def at_strength(carry, strength):
        w, b, warm = carry
        lam = _snapped(strength, top) * penalty.factor
        target = _target(problem, options, lam, gradient)
        it = problem.solve(lam, w, b, target, options.max_iter, warm)
        loss = problem.smooth.evaluate(it.w, it.b).loss
        reached = ~solvers.short_of(it.gap, it.residual, target)
        # in the data's units here: the stacked coefficients are then the program's output
        # itself, not a temporary copied to it (n_strengths p more bytes of fresh memory a call)
        coef = it.w.reshape(p, m) / scale[:, None]
        results = (coef, problem.intercept(it.w, it.b), it.gap, loss)
        out = (*(jnp.where(valid, x, jnp.nan) for x in results), it.n_iter, reached)
        return (it.w, it.b, it.warm), out

    w, b = jnp.zeros(p * m, data.X.dtype), problem.intercept_at_zero
    init = (w, b, problem.warm_start(w, b))
    _, (coef, intercept, gap, loss, n_iter, reached) = jax.lax.scan(at_strength, init, strengths)
    null = problem.value_at_zero
    deviance_ratio = jnp.where(null > 0, 1 - loss / jnp.where(null > 0, null, 1), 0)
    n_nonzero = jnp.sum(jnp.any(coef != 0, axis=2), axis=1)
    if config.squeeze:
        coef, intercept = coef[..., 0], intercept[:, 0]
    path = Path(strengths, coef, intercept, gap, n_iter, deviance_ratio, n_nonzero)
    return path, reached & valid


def _above_rounding(grad: jax.Array, datafit, data: Data) -> jax.Array:
    r"""The gradient at the zero solution with its rounding errors set to 0: entries below
    :math:`10^3 \epsilon \max|X| \max|y|` (``max|y|`` for the residual datafits, else 1), such
    as a constant ``y``'s or a constant feature's (with an intercept), which are 0 exactly."""
    y_scale = jnp.max(jnp.abs(data.y)) if datafit.residual else 1
    floor = 1000 * jnp.finfo(data.X.dtype).eps * objectives.largest_abs(data.X) * y_scale
    return jnp.where(jnp.abs(grad) > floor, grad, 0)


def _zero_threshold(penalty, grad: jax.Array, datafit, data: Data) -> jax.Array:
    """The smallest strength at which 0 is the solution where the datafit's gradient there is
    ``grad`` (its rounding errors set to 0: :func:`_above_rounding`), the penalty's factors
    applied: :func:`strength_max`'s value."""
    return penalty.zero_threshold(_above_rounding(grad, datafit, data), penalty.factor)


def strength_max_arrays(data: Data, options: Options, config: Config,
                        unpenalized: bool = True) -> jax.Array:  # fmt: skip
    """:func:`strength_max`'s value; ``unpenalized`` false: no penalty factor is 0 (the fit of
    the unpenalized features, a whole solver, is left out of the program)."""
    valid = _valid(data, jnp.zeros(1, data.X.dtype), options)
    return jnp.where(valid, _strength_max(data, options, config, unpenalized), jnp.nan)


def _strength_max(data: Data, options: Options, config: Config, unpenalized: bool) -> jax.Array:
    data, options, _ = standardized(data, options, config)
    datafit, penalty = parts(config, options, data)
    factor = penalty.factor
    grad = objectives.gradient_at_zero(datafit, data, fit_intercept=config.fit_intercept)
    top = _zero_threshold(penalty, grad, datafit, data)
    if factor.shape != grad.shape or not unpenalized:  # per group: every group is penalized
        return top

    def after_unpenalized_fit(_):
        """glmnet's rule: the threshold at the fit of the unpenalized features alone (every
        penalized feature held at zero by a strength far above ``top``); its solver's set-up
        (the Gram matrix, its top eigenvalue) stays in this branch."""
        problem = objectives.problem(datafit, penalty, data, fit_intercept=config.fit_intercept,
                                     newton=False,  # one rare solve: no Newton systems
                                     coordinate_descent=config.coordinate_descent)  # fmt: skip
        lam = factor * (1e6 * (top + 1))
        w, b = jnp.zeros_like(factor), problem.intercept_at_zero
        tight = 100 * jnp.finfo(w.dtype).eps * jnp.abs(problem.value_at_zero)
        target = solvers.Target(tight, jnp.asarray(jnp.inf, tight.dtype))
        fit = problem.solve(lam, w, b, target, options.max_iter, problem.warm_start(w, b))
        grad = problem.smooth.evaluate(fit.w, fit.b).grad_w
        return _zero_threshold(penalty, grad, datafit, data)

    return jax.lax.cond(jnp.any(factor == 0), after_unpenalized_fit, lambda _: top, None)


path_jit = Program(path_arrays, static_argnames=("config", "relative", "transposed"))


def _differentiable_arrays(data: Data, strengths, options: Options, coef, intercept,
                           config: Config):  # fmt: skip
    """``coef (k, d)`` and ``intercept (k, m)`` made differentiable by
    :mod:`~jreg.glm.implicit` (one program: a derivative reuses its compilation), on the
    standardized problem where ``config.standardize``."""
    data, options, scale = standardized(data, options, config)
    m = data.y.shape[1]
    build = functools.partial(parts, config, data=data)
    scales = jnp.repeat(scale, m)  # of the flat coefficients, feature-major

    def at_strength(strength, w, b):
        w, b = implicit.with_derivatives(build, data, options, strength, w * scales, b,
                                         fit_intercept=config.fit_intercept)  # fmt: skip
        return w / scales, b

    return jax.vmap(at_strength)(strengths, coef, intercept)


differentiable_jit = Program(_differentiable_arrays, static_argnames="config")


def by_features(data: Data, options: Options, config: Config) -> bool:
    """Whether the path's program takes ``X`` as its transpose ``(p, n)``: where the host holds
    ``X`` column by column (Fortran order: ``np.asfortranarray``, many data frames' arrays)
    its transpose is transferred as it is, and a program that reads ``X`` by features (its X
    form: all but the squared loss on the Gram matrix) then forms its rows without a transpose
    (500 x 5000 and 300 x 10000 lasso and logistic paths 0.89-0.95x); in C order ``X`` itself
    is transferred without a copy. The programs of :func:`path`, :func:`fit` and
    :mod:`~jreg.glm.selection`'s take it so."""
    X = data.X
    by_columns = isinstance(X, np.ndarray) and X.flags.f_contiguous and not X.flags.c_contiguous
    return by_columns and not objectives.on_gram(datafit_of(config, options, data), data)


def _placed(data: Data, options: Options, config: Config, *, moments: bool = True,
            transposed: bool = False) -> tuple[Data, np.ndarray | None]:  # fmt: skip
    """``data`` with ``X`` as a program reads it: its :class:`objectives.Moments` where the host
    forms them (:func:`objectives.host_moments`; not without ``moments``), else on the device
    (``transposed``: its transpose, :func:`by_features`); and the Gram matrix where only that
    is formed on the host (:func:`objectives.host_gram`), else ``None``."""
    gram = None
    if objectives.on_gram(datafit_of(config, options, data), data):
        products = objectives.host_products(data, centred=config.fit_intercept)
        if moments:
            found = objectives.host_moments(data, products, centred=config.fit_intercept,
                                            standardized=config.standardize)  # fmt: skip
            if found is not None:
                return data._replace(X=found), None
        gram = None if products is None else products[1]  # host_gram's, formed once
    return on_device(data, transposed), gram


def untransposed(data: Data, transposed: bool) -> Data:
    """``data`` with ``X`` ``(n, p)`` again, inside a program that took its transpose
    (``transposed``: :func:`by_features`)."""
    return data._replace(X=data.X.T) if transposed else data


def on_device(data: Data, transposed: bool = False) -> Data:
    """``data`` with an ``X`` that :func:`setup` left on the host transferred to the default
    device (``transposed``: its transpose, :func:`by_features`)."""
    if not isinstance(data.X, np.ndarray):
        return data
    X = data.X.T if transposed else data.X
    return data._replace(X=as_array(X, X.dtype))


def solve_path(data: Data, strengths, options: Options, config: Config, *,
               relative=None) -> tuple[Path, jax.Array]:  # fmt: skip
    """:func:`path_arrays` on values with their derivatives held off, then coefficients and
    intercepts differentiable by :mod:`~jreg.glm.implicit` (where anything is traced: a
    concrete call has nothing to differentiate)."""
    traced = is_traced((data, strengths, options))  # then differentiated: X is read
    if not traced:
        transposed = by_features(data, options, config)
        data, gram = _placed(data, options, config, transposed=transposed)
        return path_jit(data, strengths, options, config=config, relative=relative, gram=gram,
                        transposed=transposed)  # fmt: skip
    data, gram = _placed(data, options, config, moments=False)
    inputs = jax.lax.stop_gradient((data, strengths, options))
    result, converged = path_jit(*inputs, config=config, relative=relative, gram=gram)
    strengths = strengths if relative is None else result.strengths  # a default grid's: fixed
    k, m = strengths.shape[0], data.y.shape[1]
    flat = (result.coef.reshape(k, -1), result.intercept.reshape(k, m))
    coef, intercept = differentiable_jit(data, strengths, options, *flat, config=config)
    coef, intercept = coef.reshape(result.coef.shape), intercept.reshape(result.intercept.shape)
    return result._replace(strengths=strengths, coef=coef, intercept=intercept), converged


_strength_max_jit = Program(strength_max_arrays, static_argnames=("config", "unpenalized"))


def _unpenalized(options: Options) -> bool:
    """Whether :func:`strength_max` needs the fit of the unpenalized features (it doubles the
    compilation time): where a penalty factor is 0 or traced."""
    factor = options.penalty_factor
    return is_traced(factor) or bool(np.any(np.asarray(factor) == 0))


def strength_max_jit(data: Data, options: Options, config: Config) -> jax.Array:
    """:func:`strength_max_arrays` compiled, with the fit of the unpenalized features only where
    it is needed."""
    return _strength_max_jit(data, options, config=config, unpenalized=_unpenalized(options))


_first = jax.jit(lambda arrays: [x[0] for x in arrays])  # one dispatch, not one per array


def default_strength_min_ratio(n: int, p: int) -> float:
    """The bottom of the default grid relative to its top: 1e-3 when ``n >= p``, else 1e-2
    (glmnet's ``lambda.min.ratio``)."""
    return 1e-3 if n >= p else 1e-2


def grid_input(data: Data, options: Options, config: Config,
               settings: Settings) -> tuple[jax.Array | np.ndarray, bool | None]:  # fmt: skip
    """The grid as a program takes it, ``(strengths, relative)``: the given strengths in their
    order (``relative`` None), or the ratios of glmnet's default grid to its top, which the
    program computes (see :func:`resolve_grid`; check it after with
    :func:`check_strength_max`)."""
    if settings.strengths is None:
        return strength_ratios(data, config, settings), _unpenalized(options)
    check_real("strengths", settings.strengths)
    strengths = as_array(settings.strengths, data.X.dtype)
    if strengths.ndim != 1 or strengths.size == 0:
        raise ValueError(f"strengths must be a non-empty 1-D array, got shape {strengths.shape}")
    check("strengths", strengths, lambda s: np.isfinite(s) & (s >= 0), "finite and >= 0")
    return strengths, None  # in the given order, never re-sorted


def strength_ratios(data: Data, config: Config, settings: Settings) -> np.ndarray:
    """glmnet's default grid over its top, :func:`strength_max`: ``n_strengths`` ratios
    log-spaced from 1 to ``strength_min_ratio``."""
    if _is_pair(config.penalty):
        raise ValueError("strengths must be given for a user-defined penalty (value, prox)")
    check_count("n_strengths", settings.n_strengths)
    ratio = settings.strength_min_ratio
    if ratio is None:
        ratio = default_strength_min_ratio(*data.X.shape)
    check("strength_min_ratio", ratio, lambda r: (r > 0) & (r < 1), "in (0, 1)")
    dtype = np.dtype(data.X.dtype)
    return np.logspace(0, np.log10(ratio), settings.n_strengths, dtype=dtype)


def check_strength_max(top) -> None:
    """That ``top``, :func:`strength_max` (or a default grid: its first strength, the ratio 1),
    is finite and positive."""
    if not is_traced(top):
        top = np.ravel(top)[0]
    check(
        "strength_max",
        top,
        lambda t: np.isfinite(t) & (t > 0),
        "finite and > 0 for a default grid (0: the solution at strength 0 is already all "
        "zeros: constant X or y, or every penalty_factor 0?; inf: l1_ratio too small?)",
    )


def model_of(y, data: Data, settings: Settings) -> Model:
    """The :class:`Model` of a fit (logistic labels read where ``y`` is concrete; (0, 1) where
    it is traced)."""
    labels = None
    if settings.datafit == "logistic":
        negative = not is_traced(y) and bool(np.any(np.asarray(y) < 0))
        labels = (-1, 1) if negative else (0, 1)
    elif settings.datafit == "multinomial":
        labels = tuple(range(data.y.shape[1]))
    return Model(settings.datafit, labels, settings.offset is not None)


# --------------------------------------------------------------------------------------------
# Public API.


@in_data_precision()
def strength_max(
    X,
    y,
    *,
    datafit="squared",
    penalty="l1",
    l1_ratio=1.0,
    fit_intercept=True,
    standardize=False,
    bounds=None,
    sample_weight=None,
    offset=None,
    penalty_factor=None,
    groups=None,
    group_weights=None,
    delta=1.35,
) -> jax.Array:
    r"""The smallest strength whose solution is all zeros.

    For the lasso :math:`\max_j |\nabla_j F(0)| / \text{pf}_j` (:math:`F` the datafit with its
    best intercept, pf the penalty factors; with bounds, only the directions they allow count);
    divided by ``l1_ratio`` for the elastic net; group norms over group weights for the group
    lasso; the same as the lasso for ``mcp`` and ``scad`` (their slope at 0 is the strength). With
    unpenalized features (factor 0), at the fit of those alone (glmnet's rule). Ridge has no
    such strength; for ``l2`` this returns glmnet's convention, the elastic-net value at
    ``l1_ratio = 1e-3``. A user-defined penalty has none (it raises).

    Examples:
      >>> import numpy as np
      >>> from jreg import glm
      >>> X, y = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), np.array([1.0, 0.0, -1.0])
      >>> print(glm.strength_max(X, y))
      0.6666...
    """
    settings = Settings(
        datafit=datafit, penalty=penalty, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
        standardize=standardize, bounds=bounds, sample_weight=sample_weight, offset=offset,
        penalty_factor=penalty_factor, groups=groups, group_weights=group_weights, delta=delta,
    )  # fmt: skip
    if _is_pair(penalty):
        raise ValueError("strength_max is not known for a user-defined penalty (value, prox)")
    data, options, config = setup(X, y, settings, device=False)
    # as the path's program reads X (the top strength's solution exactly zero there)
    data = _placed(data, options, config)[0]
    return strength_max_jit(data, options, config=config)


@in_data_precision()
def path(
    X,
    y,
    *,
    datafit="squared",
    penalty="l1",
    strengths=None,
    n_strengths=100,
    strength_min_ratio=None,
    l1_ratio=1.0,
    fit_intercept=True,
    standardize=False,
    tol=1e-6,
    max_iter=10_000,
    bounds=None,
    sample_weight=None,
    offset=None,
    penalty_factor=None,
    groups=None,
    group_weights=None,
    gamma=3.0,
    a=3.7,
    delta=1.35,
) -> Path:
    r"""Regularization path of a penalized linear model, warm-started from large strengths.

    Minimizes, for each strength :math:`s`, :math:`\sum_i a_i f(x_i^\top W + b, y_i) +
    P(W; s \cdot \text{penalty\_factor})` (see :mod:`jreg.glm`) until the duality gap (or a
    KKT residual, the squared gradient mapping, where no gap is known) is at most ``tol`` times
    the objective at :math:`w = 0` and every coefficient meets its optimality condition within
    :math:`\max(10 \sqrt{tol}, 10^{-3})\, s \max_j \text{pf}_j` (a zero's gradient exceeds its
    threshold, a non-zero's gradient differs from the penalty's slope, by at most that: 1e-2 of
    the strength at the default ``tol``, 1e-3 at ``tol <= 1e-8``).
    The coefficients are those of a proximal or coordinate step (or of a Newton or extrapolated
    step kept on their signs): a zero is exactly zero.

    Args:
      X: ``(n, p)`` features, numpy or jax, float32 or float64; or sparse (``scipy.sparse``,
        ``jax.experimental.sparse.BCOO``), never densified: solved by coordinate descent or
        proximal Newton on its columns, the intercept by implicit centring (see
        :mod:`jreg.glm.sparse`).
      y: ``(n,)`` targets (``(n, m)`` for ``m`` outputs of ``"squared"``), labels in {0, 1} or
        {-1, 1} (``"logistic"``), integer labels ``0..C-1`` (``"multinomial"``) or counts
        (``"poisson"``).
      datafit: ``"squared"``, ``"logistic"``, ``"multinomial"``, ``"poisson"``, ``"huber"``,
        or a smooth convex loss ``loss(z, y) -> (n,)`` of the linear predictor.
      penalty: ``"l1"``, ``"elastic_net"``, ``"group_lasso"``, ``"mcp"``, ``"scad"``,
        ``"l2"``, or a pair ``(value, prox)`` with the signatures of ``jreg.penalties.X`` and
        ``jreg.prox.X`` (then ``strengths`` is required).
      strengths: the grid; default: ``n_strengths`` log-spaced from :func:`strength_max` down
        to ``strength_min_ratio`` times it (glmnet's grid). Fitted in the given order, each
        warm-started from the previous one (from largest to smallest is the fastest), and
        returned in that order.
      n_strengths: size of the default grid.
      strength_min_ratio: bottom of the default grid; 1e-3 when ``n >= p``, else 1e-2.
      l1_ratio: elastic-net mixing (scikit-learn's ``l1_ratio``, glmnet's ``alpha``).
      fit_intercept: fit an unpenalized intercept.
      standardize: solve with every feature scaled to unit standard deviation under the
        sample weights (glmnet's ``standardize=TRUE``; constant features are left as they are,
        bounds scale with them); coefficients are returned in the data's units.
      tol: stopping tolerance, relative to the objective at :math:`w = 0` (in float32 at least
        1.2e-5: a smaller gap cannot be measured there).
      max_iter: the most solver iterations per strength (checked between blocks of 10 FISTA
        iterations, 5 coordinate-descent epochs or one proximal Newton step); a strength that
        stops there before ``tol`` warns :class:`ConvergenceWarning` (its gap is in ``gap``).
      bounds: ``(lower, upper)``, scalars or ``(p,)`` arrays with ``lower <= 0 <= upper``,
        infinities allowed (glmnet's ``lower.limits``, ``upper.limits``; ``(0, inf)`` is
        scikit-learn's ``positive=True``); convex penalties only.
      sample_weight: ``(n,)`` non-negative weights (normalized to sum to one).
      offset: ``(n,)`` (or ``(n, m)``) known terms added to the linear predictor, :math:`z =
        X W + b + \text{offset}` (glmnet's ``offset``: the log exposure of counts for
        ``"poisson"``); pass the new rows' offset to :func:`predict`.
      penalty_factor: ``(p,)`` non-negative per-feature factors (glmnet's ``penalty.factor``);
        0 leaves a feature unpenalized, ``inf`` excludes it (glmnet's ``exclude``: its
        coefficient is exactly 0; ``penalty_factor`` must then be concrete).
      groups: ``(p,)`` int group ids, for ``penalty="group_lasso"`` (with several outputs or
        classes a group holds all of its features' coefficients; without ``groups`` each
        feature's coefficients are a group).
      group_weights: one weight per group (sorted by id); default :math:`\sqrt{\text{size}}`.
      gamma: MCP concavity (> 1).
      a: SCAD shape (> 2).
      delta: the Huber threshold (> 0), in the units of ``y``.

    Returns:
      A :class:`Path`.

    Examples:
      >>> import numpy as np
      >>> from jreg import glm
      >>> rng = np.random.default_rng(0)
      >>> X = rng.standard_normal((50, 5))
      >>> y = X @ np.array([2.0, 0, 0, -1.0, 0]) + 0.1 * rng.standard_normal(50)
      >>> fit = glm.path(X, y, n_strengths=20)
      >>> fit.coef.shape
      (20, 5)
      >>> n_selected = (fit.coef != 0).sum(axis=1)
      >>> int(n_selected[0]), int(n_selected[10]), int(n_selected[-1])
      (0, 2, 5)
    """
    settings = Settings(
        datafit=datafit, penalty=penalty, strengths=strengths, n_strengths=n_strengths,
        strength_min_ratio=strength_min_ratio, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
        standardize=standardize, tol=tol, max_iter=max_iter, bounds=bounds,
        sample_weight=sample_weight, offset=offset, penalty_factor=penalty_factor,
        groups=groups, group_weights=group_weights, gamma=gamma, a=a, delta=delta,
    )  # fmt: skip
    data, options, config = setup(X, y, settings, device=False)
    strengths, relative = grid_input(data, options, config, settings)
    result, converged = solve_path(data, strengths, options, config, relative=relative)
    if relative is not None:
        check_strength_max(result.strengths)
    warn_unconverged(converged, max_iter, "strengths")
    return result._replace(model=model_of(y, data, settings))


@in_data_precision()
def fit(
    X,
    y,
    strength,
    *,
    datafit="squared",
    penalty="l1",
    l1_ratio=1.0,
    fit_intercept=True,
    standardize=False,
    tol=1e-6,
    max_iter=10_000,
    bounds=None,
    sample_weight=None,
    offset=None,
    penalty_factor=None,
    groups=None,
    group_weights=None,
    gamma=3.0,
    a=3.7,
    delta=1.35,
) -> Fit:
    r"""The solution at one strength, differentiable in its hyperparameters and data.

    The keywords are :func:`path`'s. Works under :func:`jax.jit` and :func:`jax.vmap` (over
    ``strength``, ``sample_weight``, ``y``, ...), and :func:`jax.grad`, :func:`jax.jacfwd` and
    :func:`jax.jacrev` differentiate ``coef`` and ``intercept`` with respect to ``strength``,
    ``penalty_factor``, ``group_weights``, ``l1_ratio``, ``sample_weight``, ``X`` and ``y`` by
    implicit differentiation of the optimality conditions on the support
    (:mod:`jreg.glm.implicit`): one linear solve, never the solver's iterations. Off the
    support (and so above :func:`strength_max`) the derivative is exactly 0. Labels (logistic,
    multinomial) have no derivative; multinomial labels must be concrete.

    Solved from :math:`w = 0` as the first strength of a path (warm starts are
    :func:`path`'s); values are checked where they are concrete (under :func:`jax.jit` a traced
    NaN is not caught).

    Returns:
      A :class:`Fit`: ``coef (p,)`` (``(p, m)``), ``intercept`` (scalar or ``(m,)``), ``gap``
      and ``n_iter`` as in :class:`Path`.

    Examples:
      >>> import jax
      >>> import numpy as np
      >>> from jreg import glm
      >>> rng = np.random.default_rng(0)
      >>> X = rng.standard_normal((50, 5))
      >>> y = X @ np.array([2.0, 0, 0, -1.0, 0]) + 0.1 * rng.standard_normal(50)
      >>> print(np.asarray(glm.fit(X, y, 0.1).coef).round(2))
      [ 1.84  0.    0.   -0.93  0.  ]
      >>> slope = jax.jacfwd(lambda s: glm.fit(X, y, s).coef)(0.1)  # d coef / d strength
      >>> print(np.asarray(slope).round(2) + 0.0)
      [-1.48  0.    0.    0.81  0.  ]
    """
    check_strength(strength)
    settings = Settings(
        datafit=datafit, penalty=penalty, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
        standardize=standardize, tol=tol, max_iter=max_iter, bounds=bounds,
        sample_weight=sample_weight, offset=offset, penalty_factor=penalty_factor,
        groups=groups, group_weights=group_weights, gamma=gamma, a=a, delta=delta,
    )  # fmt: skip
    data, options, config = setup(X, y, settings, device=False)
    strength = host_array(strength, data.X.dtype)
    if strength.ndim != 0:
        raise ValueError(
            f"strength must be a scalar, got shape {strength.shape} (several: path or vmap)"
        )
    result, converged = solve_path(data, strength[None], options, config)
    warn_unconverged(converged, max_iter, "fits")
    return Fit(*_first((result.coef, result.intercept, result.gap, result.n_iter)))
