"""Regularization paths: jreg against scikit-learn, celer, skglm and R's glmnet, side by side.

For each problem every solver computes the same path (same strengths) to the same accuracy on
the same machine in one run. Accuracy: jreg stops where its duality gap is at most ``tol *
P(0)`` (``P(0)`` the objective at zero), so every peer is held to the same: it first runs at
``tol`` (its own stopping rule; glmnet's ``thresh`` is ``tol / 10``), and where its objective is
above the best any solver found by more than ``tol * P(0)`` at some strength it runs again at a
tolerance 10x tighter (at most 6 times) and is timed at the loosest that reached it; the table
says which peers were and their time and shortfall at ``tol``. Times are medians of warm runs
(jreg's compilation is reported apart), every repeat runs the solvers back to back, the ratio to
the best peer is the median of the repeats' ratios (robust to a machine whose speed drifts), and
every solution's objective is evaluated by one numpy function: ``excess`` is the largest
``(P_jreg - P_peer) / P(0)`` over the path (<= ~tol means jreg is at least as accurate as the
peer).

    python benchmarks/paths.py            # the whole matrix, writes results/paths.{json,md}
    python benchmarks/paths.py --sections lasso real   # a part of it
    python benchmarks/paths.py --quick    # tiny problems, proves the script works (CI)
    python benchmarks/paths.py --gpu      # batched CV (sharded over the devices) and a
                                          # sparse lasso path on large problems (for a GPU)

The matrix: lasso (100 strengths) and L1 logistic (20) paths on every shape of ``SHAPES`` x
Toeplitz correlation ``RHOS`` x with and without an intercept; diabetes x interactions (lasso)
and breast cancer x interactions (logistic), standardized, with and without an intercept; 5-fold
CV on four data sets against ``LassoCV`` and ``cv.glmnet`` (the same folds and strengths);
Poisson, multinomial and multi-output paths. Every solver solves the very same problem:
without an intercept the raw data; with one, jreg fits it on the raw data (features of mean 1)
while the squared loss's peers fit the centred data (the same problem) and the logistic peers
their own unpenalized intercept (skglm, glmnet; liblinear penalizes its intercept and celer fits
none, so they run only without). R's glmnet (where ``Rscript`` and the glmnet package are
installed) is timed inside R, its fit alone, after a warm-up fit in the same R process.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import scipy.sparse
import scipy.special

from jreg import glm

RESULTS = Path(__file__).parent / "results"
GLMNET = r"""
args <- commandArgs(TRUE)
read <- function(name, size) readBin(file.path(args[1], name), "double", size)
shape <- read("shape.bin", 6)  # n, p, number of strengths, thresh, intercept, non-zeros
n <- shape[1]; p <- shape[2]; k <- shape[3]; nnz <- shape[6]
X <- if (nnz < 0) matrix(read("X.bin", n * p), n, p) else
  Matrix::sparseMatrix(i = read("rows.bin", nnz), j = read("cols.bin", nnz),
                       x = read("X.bin", nnz), dims = c(n, p))
y <- read("y.bin", n)
if (args[2] == "multinomial") y <- factor(y)
lambda <- read("lambda.bin", k)
foldid <- if (file.exists(file.path(args[1], "foldid.bin"))) read("foldid.bin", n)
suppressMessages(library(glmnet))
glmnet.control(fdev = 0, devmax = 1)  # every strength given (no early end of the path)
fit_path <- function() {
  fit <- if (is.null(foldid)) glmnet else function(...) cv.glmnet(..., foldid = foldid)
  fit(X, y, family = args[2], lambda = lambda, standardize = FALSE, intercept = shape[5] > 0,
      thresh = shape[4], maxit = 1e7)
}
invisible(fit_path())  # warm-up
seconds <- system.time(fit <- fit_path())[["elapsed"]]
if (!is.null(foldid)) fit <- fit$glmnet.fit  # cv.glmnet: the full data's path
beta <- if (is.list(fit$beta)) sapply(fit$beta, as.matrix) else as.matrix(fit$beta)
writeBin(c(seconds, as.vector(beta), as.vector(fit$a0)), file.path(args[1], "out.bin"))
"""


class Timed(NamedTuple):
    """A peer's result with its own timing (measured inside another process)."""

    seconds: float
    value: np.ndarray


SETTLE = 0.2  # seconds of pause before each timed call


def _elapsed(fn):
    """Seconds of one call of ``fn`` (warnings silenced) and its result (a :class:`Timed`
    result: its own), after a pause of ``SETTLE``: on a 2-core machine the threads of the call
    before (XLA's pool, OpenBLAS's) keep spinning for a while and take a core from the next (a
    20000 x 300 lasso path: 0.165 s back to back, 0.120 s after 0.15 s of pause)."""
    time.sleep(SETTLE)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = jax.block_until_ready(fn())
    if isinstance(result, Timed):
        return result.seconds, result.value
    return time.perf_counter() - start, result


SLOW = 3.0  # seconds: a peer whose first call takes longer is timed by that call alone


def _first_calls(runs):
    """One call of every solver of ``runs`` (name -> function): their seconds and results."""
    seconds, results = {}, {}
    for name, fn in runs.items():
        seconds[name], results[name] = _elapsed(fn)
    return seconds, results


def _timed(runs, repeats, first=None):
    """Times every solver of ``runs`` (name -> function; jreg first), after one warm-up call
    each (jreg's is its compilation; ``first``: their seconds, where already made), back to
    back within each repeat, so that the ratios of one repeat share the machine's state; a peer
    slower than ``SLOW`` seconds (never the best one) only once. Returns the medians, jreg's
    compilation time (its first call's excess over its median) and the median over repeats of
    jreg's time over the best peer's (the one with the lowest median)."""
    first = first or _first_calls(runs)[0]
    repeated = [name for name in runs if name == "jreg" or first[name] <= SLOW]
    times = {name: [] if name in repeated else [first[name]] for name in runs}
    for _ in range(repeats):
        for name in repeated:
            times[name].append(_elapsed(runs[name])[0])
    medians = {name: float(np.median(t)) for name, t in times.items()}
    peers = {name: value for name, value in medians.items() if name != "jreg"}
    best = min(peers, key=peers.get)
    ratio = float(np.median(np.divide(times["jreg"], times[best])))
    return medians, first["jreg"] - medians["jreg"], ratio


TIGHTER = 10  # a peer short of jreg's accuracy runs again with its tolerance divided by this,
TIGHTENINGS = 6  # at most this many times


class Matched(NamedTuple):
    """:func:`_accuracy_matched`'s result."""

    timed: tuple  # :func:`_timed`'s
    excess: dict  # peer -> jreg's largest objective above the peer's, over ``scale``
    # peer -> {"tol": the tolerance it was timed at, "seconds_at_tol" and "shortfall_at_tol":
    # its time and shortfall at ``tol``, "shortfall": at the tolerance timed} (a shortfall: the
    # largest objective above the best, over ``scale``)
    tightened: dict


def _accuracy_matched(runs, peers_at, objectives, *, tol, scale, repeats, unchecked=None):
    """Times jreg (``runs``: ``{"jreg": fn}``) against peers that reach its accuracy. jreg stops
    where its duality gap is at most ``tol * scale``, so a peer is held to the same: every peer
    first runs at ``tol`` (``peers_at(tol)``: name -> function); one whose objective is above the
    best found (any solver's, strength by strength; ``objectives(fits) -> (k,)``) by more than
    ``tol * scale`` at some strength runs again at ``tol / TIGHTER``, up to ``TIGHTENINGS``
    times, and is timed at the loosest tolerance that reached it (else the tightest tried: its
    shortfall stays in ``tightened``). ``unchecked`` (name -> function): peers timed beside
    them at their own tolerance, whose results hold no path to check (``LassoCV``)."""
    runs = {**runs, **peers_at(tol)}
    first, fits = _first_calls(runs)
    values = {name: np.asarray(objectives(fit)) for name, fit in fits.items()}

    def shortfall(name):
        return float(np.max(values[name] - np.min([*values.values()], axis=0)) / scale)

    tolerances = {name: tol for name in runs if name != "jreg"}
    at_tol = {}
    for _ in range(TIGHTENINGS):
        short = [name for name in tolerances if shortfall(name) > tol]
        at_tol |= {name: (first[name], shortfall(name)) for name in short if name not in at_tol}
        for name in short:
            tolerances[name] /= TIGHTER
            runs[name] = peers_at(tolerances[name])[name]
            first[name], fits[name] = _elapsed(runs[name])
            values[name] = np.asarray(objectives(fits[name]))
    excess = {name: float(np.max(values["jreg"] - values[name]) / scale) for name in tolerances}
    tightened = {
        name: {"tol": tolerances[name], "seconds_at_tol": seconds, "shortfall_at_tol": short,
               "shortfall": shortfall(name)}
        for name, (seconds, short) in at_tol.items()
    }  # fmt: skip
    unchecked = unchecked or {}
    first |= _first_calls(unchecked)[0]
    return Matched(_timed({**runs, **unchecked}, repeats, first), excess, tightened)


def _row(name, X, n_strengths, tol, timed, excess, target, tightened=None):
    """A table row from :func:`_timed`'s results (and :attr:`Matched.tightened`)."""
    medians, compile_time, ratio = timed
    return {
        "problem": name,
        "shape": list(X.shape),
        "n_strengths": n_strengths,
        "tol": tol,
        "jreg": medians.pop("jreg"),
        "jreg_compile": compile_time,
        "peers": medians,
        "ratio": ratio,
        "excess": excess,
        "tightened": tightened or {},
        "target": target,
    }


def _objective(X, y, coef, strength, datafit):
    """The objective, evaluated in float64 numpy: the mean loss (squared: half the squared
    error, summed over outputs; Poisson: the negative log-likelihood up to a constant) plus the
    L1 norm, or for several outputs of ``"squared"`` the sum of the rows' Euclidean norms
    (``MultiTaskLasso``). ``coef`` may be a pair ``(coef, intercept)``."""
    coef, intercept = coef if isinstance(coef, tuple) else (coef, 0.0)
    z = X @ coef + intercept
    if datafit == "squared":
        loss = np.sum((y.reshape(z.shape) - z) ** 2) / (2 * len(y))
    elif datafit == "logistic":
        loss = np.mean(np.logaddexp(0, -y * z))
    elif datafit == "poisson":
        loss = np.mean(np.exp(z) - y * z)
    else:  # multinomial, integer labels
        loss = np.mean(scipy.special.logsumexp(z, axis=1) - z[np.arange(len(y)), y.astype(int)])
    grouped = datafit == "squared" and coef.ndim == 2
    return loss + strength * (np.linalg.norm(coef, axis=1).sum() if grouped else np.abs(coef).sum())


def _regression(n, p, *, rho=0.0, seed=0, n_informative=None):
    """Gaussian features (Toeplitz correlation ``rho``), a sparse truth, SNR about 3."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    if rho:
        for j in range(1, p):
            X[:, j] = rho * X[:, j - 1] + np.sqrt(1 - rho**2) * X[:, j]
    k = n_informative or max(1, min(n, p) // 10)
    coef = np.zeros(p)
    coef[rng.choice(p, k, replace=False)] = rng.standard_normal(k)
    signal = X @ coef
    y = signal + rng.standard_normal(n) * signal.std() / 3
    return X, y


def _families(n, p, *, seed=0):
    """Gaussian features and, from one sparse linear predictor per output, Poisson counts (mean
    about 1.6), three classes and three noisy outputs."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    k = max(1, min(n, p) // 10)
    coef = np.zeros((p, 3))
    coef[rng.choice(p, k, replace=False)] = rng.standard_normal((k, 3))
    Z = X @ coef
    Z /= Z.std(axis=0)
    counts = rng.poisson(np.exp(0.5 * Z[:, 0] + 0.3)).astype(float)
    classes = np.argmax(Z + rng.gumbel(size=Z.shape), axis=1)
    outputs = Z + rng.standard_normal(Z.shape) / 3
    return X, counts, classes, outputs


def _centered(X, y):
    return np.asfortranarray(X - X.mean(0)), y - y.mean(axis=0)


def _diabetes_interactions():
    from sklearn.datasets import load_diabetes
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(PolynomialFeatures(2, include_bias=False).fit_transform(X))
    return X, y


def _lasso_peers(X, y, strengths, tol):
    """Lasso path solvers: name -> function returning coefs (k, p)."""
    from sklearn.linear_model import lasso_path

    peers = {"scikit-learn": lambda: lasso_path(X, y, alphas=strengths, tol=tol)[1].T}
    try:
        from celer import celer_path

        peers["celer"] = lambda: celer_path(X, y, "lasso", alphas=strengths, tol=tol)[1].T
    except ImportError:
        pass
    try:
        from skglm import Lasso

        def skglm_path():
            model, coefs = Lasso(fit_intercept=False, tol=tol, warm_start=True), []
            for strength in strengths:
                coefs.append(model.set_params(alpha=strength).fit(X, y).coef_.copy())
            return np.array(coefs)

        peers["skglm"] = skglm_path
    except ImportError:
        pass
    peers["glmnet"] = _glmnet_peer(X, y, strengths, "gaussian", tol / 10)
    return {name: run for name, run in peers.items() if run is not None}


def _logistic_peers(X, y, strengths, tol, *, fit_intercept=False, saga=False):
    """L1 logistic path solvers (labels in {-1, 1}); sklearn's C = 1 / (n * strength). With
    ``fit_intercept`` (unpenalized), those that fit one: saga, skglm, glmnet (liblinear
    penalizes its intercept, celer fits none); they return ``(coefs, intercepts)``. saga only
    where asked: 3.5x liblinear's time on 5000 x 200, minutes on breast cancer x interactions,
    never the fastest."""
    from sklearn.linear_model import LogisticRegression

    n = X.shape[0]

    def fitted(model):
        return (model.coef_.ravel().copy(), float(np.ravel(model.intercept_)[0]))

    def path_of(model, set_strength):
        fits = [fitted(set_strength(model, s).fit(X, y)) for s in strengths]
        coefs = np.array([coef for coef, _ in fits])
        return (coefs, np.array([b for _, b in fits])) if fit_intercept else coefs

    def sklearn_path(solver):
        model = LogisticRegression(l1_ratio=1.0, solver=solver, fit_intercept=fit_intercept,
                                   tol=tol, max_iter=10_000, warm_start=True)  # fmt: skip
        return lambda: path_of(model, lambda m, s: m.set_params(C=1 / (n * s)))

    peers = {} if fit_intercept else {"sklearn-liblinear": sklearn_path("liblinear")}
    if saga:
        peers["sklearn-saga"] = sklearn_path("saga")
    try:
        from celer import celer_path

        if not fit_intercept:
            peers["celer"] = lambda: celer_path(X, y, "logreg", alphas=n * strengths, tol=tol)[1].T
    except ImportError:
        pass
    try:
        from skglm import SparseLogisticRegression

        model = SparseLogisticRegression(fit_intercept=fit_intercept, tol=tol, warm_start=True)
        peers["skglm"] = lambda: path_of(model, lambda m, s: m.set_params(alpha=s))
    except ImportError:
        pass
    peers["glmnet"] = _glmnet_peer(X, y, strengths, "binomial", tol / 10, fit_intercept)
    return {name: run for name, run in peers.items() if run is not None}


def _glmnet_peer(X, y, strengths, family, thresh, fit_intercept=False, folds=None):
    """R's glmnet path (no standardization; with ``fit_intercept`` the coefficients and the
    intercepts), or None without ``Rscript``; given ``folds`` (ids 0..K-1), ``cv.glmnet``'s
    cross-validation on them (the time of all of it; the full data's path)."""
    if shutil.which("Rscript") is None:
        return None
    n, p = X.shape
    k = len(strengths)

    def run():
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            if scipy.sparse.issparse(X):  # glmnet takes R's sparse matrices as they are
                coo = scipy.sparse.coo_matrix(X)
                np.asarray(coo.row + 1, float).tofile(folder / "rows.bin")
                np.asarray(coo.col + 1, float).tofile(folder / "cols.bin")
                np.asarray(coo.data, float).tofile(folder / "X.bin")
                nnz = coo.nnz
            else:
                np.asarray(X, float).T.tofile(folder / "X.bin")  # R's column-major order
                nnz = -1
            shape = [n, p, k, thresh, float(fit_intercept), nnz]
            np.array(shape, float).tofile(folder / "shape.bin")
            np.asarray(y, float).tofile(folder / "y.bin")
            np.asarray(strengths, float).tofile(folder / "lambda.bin")
            if folds is not None:
                np.asarray(folds + 1, float).tofile(folder / "foldid.bin")
            subprocess.run(["Rscript", "-e", GLMNET, str(folder), family], check=True)
            out = np.fromfile(folder / "out.bin")
        classes = (out.size - 1) // (k * (p + 1))
        beta = out[1 : 1 + classes * k * p].reshape(classes, k, p).transpose(1, 2, 0)
        coef = beta if family == "multinomial" else beta[..., 0]
        return Timed(float(out[0]), (coef, out[1 + classes * k * p :]) if fit_intercept else coef)

    return run


def _poisson_peers(X, y, strengths, tol):
    """Poisson L1 paths: skglm's proximal Newton and R's glmnet (each where installed)."""
    peers = {"glmnet": _glmnet_peer(X, y, strengths, "poisson", tol / 10)}
    try:
        from skglm import GeneralizedLinearEstimator
        from skglm.datafits import Poisson
        from skglm.penalties import L1
        from skglm.solvers import ProxNewton

        def skglm_path():
            solver = ProxNewton(fit_intercept=False, tol=tol, warm_start=True, max_iter=100)
            model, coefs = GeneralizedLinearEstimator(Poisson(), L1(1.0), solver), []
            for strength in strengths:
                model.penalty = L1(strength)
                coefs.append(model.fit(X, y).coef_.copy())
            return np.array(coefs)

        peers["skglm"] = skglm_path
    except ImportError:
        pass
    return {name: run for name, run in peers.items() if run is not None}


def _multinomial_peers(X, y, strengths, tol):
    """Multinomial L1 paths (every class its own coefficients): scikit-learn's saga and R's
    glmnet (``type.multinomial="ungrouped"``)."""
    from sklearn.linear_model import LogisticRegression

    n = X.shape[0]

    def saga_path():
        model = LogisticRegression(l1_ratio=1.0, solver="saga", fit_intercept=False, tol=tol,
                                   max_iter=10_000, warm_start=True)  # fmt: skip
        return np.array(
            [model.set_params(C=1 / (n * s)).fit(X, y).coef_.T.copy() for s in strengths]
        )

    peers = {
        "sklearn-saga": saga_path,
        "glmnet": _glmnet_peer(X, y, strengths, "multinomial", tol / 10),
    }
    return {name: run for name, run in peers.items() if run is not None}


def _multitask_peers(X, Y, strengths, tol):
    """Several outputs, each feature's coefficients a group: scikit-learn's ``MultiTaskLasso``
    path (``lasso_path`` on a 2-D target)."""
    from sklearn.linear_model import lasso_path

    return {
        "scikit-learn MultiTaskLasso": lambda: lasso_path(X, Y, alphas=strengths, tol=tol)[
            1
        ].transpose(2, 1, 0)
    }


PEERS = {  # datafit -> (jreg's penalty, the peers)
    "squared": ("l1", _lasso_peers),
    "logistic": ("l1", _logistic_peers),
    "poisson": ("l1", _poisson_peers),
    "multinomial": ("l1", _multinomial_peers),
    "multi-output": ("group_lasso", _multitask_peers),
}


def _path_problem(name, X, y, *, datafit, n_strengths, tol, repeats, target,
                  fit_intercept=False, peers=None, **peer_options):  # fmt: skip
    """One path problem: ``datafit`` a key of :data:`PEERS` (``"multi-output"``: squared loss,
    ``y (n, m)``), against ``peers`` of them (names; None: all). With ``fit_intercept``, jreg
    fits the raw data with an intercept; for the squared loss the peers fit the centred data
    (the same problem), for the logistic loss the raw data with their own intercept (those that
    fit one)."""
    penalty, peers_of = PEERS[datafit]
    loss = "squared" if datafit == "multi-output" else datafit
    raw = np.asfortranarray(X), y
    X, y = _centered(X, y) if loss == "squared" and fit_intercept else raw
    intercept = fit_intercept and loss != "squared"  # the peers' and the objective's
    top = float(glm.strength_max(*raw, datafit=loss, penalty=penalty, fit_intercept=fit_intercept))
    ratio = glm.paths.default_strength_min_ratio(*X.shape)
    strengths = top * np.logspace(0, np.log10(ratio), n_strengths)

    def run_jreg():
        fit = glm.path(*raw, datafit=loss, penalty=penalty, strengths=strengths,
                       fit_intercept=fit_intercept, tol=tol)  # fmt: skip
        return (fit.coef, fit.intercept) if intercept else fit.coef

    outputs = {"multinomial": np.unique(y).size, "multi-output": np.shape(y)[-1]}.get(datafit)
    p0 = _objective(X, y, np.zeros(X.shape[1:] + ((outputs,) if outputs else ())), 0.0, loss)

    def objectives(fits):
        pairs = [((fits[0][k], fits[1][k]) if intercept else fits[k], s)
                 for k, s in enumerate(strengths)]  # fmt: skip
        return [_objective(X, y, coef, s, loss) for coef, s in pairs]

    options = {"fit_intercept": True} if intercept else {}

    def peers_at(t):
        return _only(peers_of(X, y, strengths, t, **options, **peer_options), peers)

    matched = _accuracy_matched(
        {"jreg": run_jreg}, peers_at, objectives, tol=tol, scale=p0, repeats=repeats,
    )  # fmt: skip
    return _row(name, X, int(strengths.size), tol, matched.timed, matched.excess, target,
                matched.tightened)  # fmt: skip


def _cv_problem(name, X, y, *, n_folds, n_strengths, tol, repeats, target):
    """K-fold cross-validated lasso paths on the same folds and strengths (``LassoCV``'s
    default grid: down to 1e-3 of the largest) against ``LassoCV`` (at ``tol``) and
    ``cv.glmnet`` (where installed; held to jreg's accuracy on the full data's path)."""
    from sklearn.linear_model import LassoCV
    from sklearn.model_selection import KFold

    X, y = _centered(X, y)
    split = KFold(n_folds, shuffle=True, random_state=0)
    folds = np.zeros(len(y), int)
    for fold, (_, held_out) in enumerate(split.split(X)):
        folds[held_out] = fold
    top = float(glm.strength_max(X, y, fit_intercept=False))
    strengths = top * np.geomspace(1, 1e-3, n_strengths)

    def run_jreg():
        return glm.cross_validate(
            X, y, folds=folds, strengths=strengths, fit_intercept=False, tol=tol
        ).path.coef

    def objectives(coefs):  # of the full data's paths (LassoCV refits one strength: unchecked)
        return [_objective(X, y, c, s, "squared") for c, s in zip(coefs, strengths, strict=True)]

    def peers_at(t):
        run = _glmnet_peer(X, y, strengths, "gaussian", t / 10, folds=folds)
        return {} if run is None else {"cv.glmnet": run}

    sklearn = LassoCV(cv=split, alphas=strengths, fit_intercept=False, tol=tol)
    p0 = _objective(X, y, np.zeros(X.shape[1]), 0.0, "squared")
    matched = _accuracy_matched(
        {"jreg": run_jreg}, peers_at, objectives, tol=tol, scale=p0, repeats=repeats,
        unchecked={"scikit-learn LassoCV": lambda: sklearn.fit(X, y)},
    )  # fmt: skip
    return _row(name, X, n_strengths, tol, matched.timed, matched.excess, target,
                matched.tightened)  # fmt: skip


SHAPES = [(20_000, 300), (5000, 200), (2000, 500), (1000, 1000), (500, 5000), (300, 10_000)]
RHOS = (0.0, 0.5, 0.9)  # Toeplitz feature correlation
SECTIONS = ("lasso", "logistic", "real", "cv", "families")


def _only(runs: dict, names) -> dict:
    """The peers ``runs`` (name -> function) among ``names``; all of them where ``names`` is
    None or names none of them (a problem has no such peer)."""
    kept = {name: run for name, run in runs.items() if name in (names or ())}
    return kept or runs


def _cell_data(n, p, rho, datafit, fit_intercept):
    """A cell's data: labels in {-1, 1}, 40% positive, for the logistic loss; with an
    intercept, features and targets off zero (means 1 and 3) so that it matters."""
    X, y = _regression(n, p, rho=rho)
    y = np.where(y > np.quantile(y, 0.6), 1.0, -1.0) if datafit == "logistic" else y
    shift = float(fit_intercept)
    return X + shift, y + (3 * shift if datafit == "squared" else 0)


def _matrix_cells(datafit, scale, repeats, shapes, peers):
    """Every shape (of ``shapes``) x correlation x intercept cell of ``datafit`` (quick: two
    small shapes, rho 0.5), against ``peers`` (names; None: all)."""
    shapes = [(2000, 50), (50, 400)] if scale > 1 else shapes
    rows = []
    for n, p in shapes:
        for rho in (0.5,) if scale > 1 else RHOS:
            for fit_intercept in (False, True):
                X, y = _cell_data(n, p, rho, datafit, fit_intercept)
                name = f"{datafit} rho={rho}" + (" +intercept" if fit_intercept else "")
                rows.append(
                    _path_problem(name, X, y, datafit=datafit, tol=1e-6, repeats=repeats,
                                  n_strengths=100 if datafit == "squared" else 20, target="<= 1.0",
                                  fit_intercept=fit_intercept, peers=peers)
                )  # fmt: skip
                print(_table(rows[-1:]).splitlines()[-1], flush=True)
    return rows


def _breast_cancer_interactions():
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    X = StandardScaler().fit_transform(PolynomialFeatures(2, include_bias=False).fit_transform(X))
    return X, np.where(y > 0, 1.0, -1.0)


def _matrix(sections, scale, repeats, shapes, peers=None):
    """The rows of the sections asked for (see :data:`SECTIONS`), the matrices' on ``shapes``,
    the path problems' against ``peers`` (names; None: all)."""
    rows = []
    for datafit in ("squared", "logistic"):
        if ("lasso" if datafit == "squared" else "logistic") in sections:
            rows += _matrix_cells(datafit, scale, repeats, shapes, peers)
    if "real" in sections:
        X, y = _diabetes_interactions()
        for fit_intercept in (False, True):  # without: the target centred
            rows.append(
                _path_problem("lasso, diabetes x interactions" + " +intercept" * fit_intercept,
                              X, y - (0 if fit_intercept else y.mean()), datafit="squared",
                              n_strengths=100, tol=1e-6, repeats=repeats, target="<= 1.0",
                              fit_intercept=fit_intercept, peers=peers)
            )  # fmt: skip
        X, y = _breast_cancer_interactions()
        for fit_intercept in (False, True):
            rows.append(
                _path_problem("logistic, breast cancer x interactions" + " +intercept" *
                              fit_intercept, X, y, datafit="logistic", n_strengths=30, tol=1e-6,
                              repeats=repeats, target="<= 1.0", fit_intercept=fit_intercept,
                              peers=peers)
            )  # fmt: skip
    if "cv" in sections:
        for name, (X, y) in [
            ("5-fold CV lasso", _regression(1000 // scale, 300 // scale)),
            ("5-fold CV lasso, rho 0.5", _regression(5000 // scale, 200 // scale, rho=0.5)),
            ("5-fold CV lasso, p > n", _regression(200 // scale, 1000 // scale)),
            ("5-fold CV lasso, diabetes x interactions", _diabetes_interactions()),
        ]:
            rows.append(_cv_problem(name, X, y, n_folds=5, n_strengths=100, tol=1e-6,
                                    repeats=repeats, target="<= 0.5"))  # fmt: skip
    if "families" in sections:
        families = [  # name, datafit, (n, p)
            ("Poisson L1 path", "poisson", (5000, 200)),
            ("Poisson L1 path, p >> n", "poisson", (500, 2000)),
            ("multinomial L1 path, 3 classes", "multinomial", (2000, 100)),
            ("multi-output lasso path, 3 outputs", "multi-output", (2000, 300)),
        ]
        for name, datafit, (n, p) in families:
            X, counts, classes, outputs = _families(n // scale, p // scale)
            y = {"poisson": counts, "multinomial": classes, "multi-output": outputs}[datafit]
            rows.append(_path_problem(name, X, y, datafit=datafit, n_strengths=20, tol=1e-6,
                                      repeats=repeats, target="<= 1.0", peers=peers))  # fmt: skip
    return rows


def _summary(rows):
    """The matrix's cells, jreg / best peer (and which), one line per shape, with the geometric
    mean and the worst cell per datafit; empty without matrix rows."""
    cells = {}
    for row in rows:
        datafit, _, rest = row["problem"].partition(" rho=")
        if not rest:
            continue
        rho, intercept = rest.split(" ")[0], "+intercept" in rest
        best = min(row["peers"], key=row["peers"].get)
        cells.setdefault(datafit, {})[tuple(row["shape"]), rho, intercept] = (row["ratio"], best)
    text = ""
    for datafit, grid in cells.items():
        rhos = sorted({rho for _, rho, _ in grid}, key=float)
        head = [f"rho {rho}{' +b' * b}" for rho in rhos for b in (False, True)]
        text += (
            f"\n\n{datafit}: jreg / best peer (the best peer)\n\n| shape | {' | '.join(head)} |\n"
        )
        text += "|---" * (len(head) + 1) + "|\n"
        for shape in dict.fromkeys(key[0] for key in grid):
            entries = [grid.get((shape, rho, b)) for rho in rhos for b in (False, True)]
            text += (
                f"| {'x'.join(map(str, shape))} | "
                + " | ".join("-" if e is None else f"{e[0]:.2f} ({e[1]})" for e in entries)
                + " |\n"
            )
        ratios = [ratio for ratio, _ in grid.values()]
        worst = max(grid, key=lambda key: grid[key][0])
        best = min(grid, key=lambda key: grid[key][0])
        text += (
            f"\ngeometric mean {np.exp(np.mean(np.log(ratios))):.2f} over {len(ratios)} "
            f"cells; worst {_cell(grid, worst)}, best {_cell(grid, best)}; "
            f"{sum(ratio > 1 for ratio in ratios)} cells above 1.0"
        )
    return text


def _cell(grid, key):
    """A cell of :func:`_summary`'s ``grid``: its ratio, where, and against which peer."""
    shape, rho, intercept = key
    where = f"{'x'.join(map(str, shape))}, rho {rho}{', intercept' * intercept}"
    return f"{grid[key][0]:.2f} ({where}, vs {grid[key][1]})"


def _tightened(row, peer):
    """A peer's note where it was timed at a tighter tolerance than the row's."""
    if peer not in row["tightened"]:
        return ""
    t = row["tightened"][peer]
    short = f", still {t['shortfall']:.0e} short" if t["shortfall"] > row["tol"] else ""
    return (f" at tol {t['tol']:.0e} ({t['seconds_at_tol']:.3f} s at {row['tol']:.0e}: "
            f"{t['shortfall_at_tol']:.0e} above the best{short})")  # fmt: skip


def _table(rows):
    lines = [
        "| problem | shape | jreg (s) | compile (s) | peers (s) | jreg / best peer | target "
        "| objective excess vs peers |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        peers = ", ".join(f"{k} {v:.3f}{_tightened(row, k)}" for k, v in row["peers"].items())
        excess = ", ".join(f"{k} {v:.1e}" for k, v in row["excess"].items()) or "-"
        shape = "x".join(map(str, row["shape"]))
        lines.append(
            f"| {row['problem']} | {shape} | {row['jreg']:.3f} | {row['jreg_compile']:.1f} | "
            f"{peers} | {row['ratio']:.2f} | {row['target']} | {excess} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny problems, one repeat (CI)")
    parser.add_argument("--gpu", action="store_true", help="batched CV, sparse path (GPU)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="parts of the matrix to run (default: all)")  # fmt: skip
    parser.add_argument("--shapes", nargs="+", default=[f"{n}x{p}" for n, p in SHAPES],
                        help="the matrices' shapes, as NxP (default: all six)")  # fmt: skip
    parser.add_argument("--peers", nargs="+", default=None,
                        help="time the path problems against these peers only, by name (for "
                        "example glmnet; default: all; a problem with none of them: all its "
                        "own)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)  # the peers work in float64: compare alike
    repeats = 1 if args.quick else args.repeats
    scale = 10 if args.quick else 1
    shapes = tuple(tuple(map(int, shape.split("x"))) for shape in args.shapes)
    rows = []
    if args.gpu:
        X, y = _regression(1000 if args.quick else 10_000, 100 if args.quick else 1000)
        rows.append(
            _cv_problem(
                "10-fold CV lasso (batched)",
                X,
                y,
                n_folds=10,
                n_strengths=100,
                tol=1e-6,
                repeats=repeats,
                target="GPU",
            )
        )
        import sparse  # it imports this file as the module paths: use that module's peers

        n, p, nnz = (2000, 5000, 100_000) if args.quick else (20_000, 50_000, 1_000_000)
        X, y, _ = sparse._sparse_problem(n, p, nnz)
        rows.append(
            sparse._path_row("lasso path, sparse", X, y, datafit="squared",
                             peers_of=sparse._lasso_peers, n_strengths=50, tol=1e-6,
                             repeats=repeats)
        )  # fmt: skip
    else:
        rows += _matrix(args.sections, scale, repeats, shapes, args.peers)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "paths_gpu" if args.gpu else "paths"
    stem += "_quick" if args.quick else ""
    partial = not args.gpu and set(args.sections) != set(SECTIONS)
    stem += "_" + "_".join(args.sections) if partial else ""
    stem += "_" + "_".join(args.shapes) if shapes != tuple(SHAPES) else ""
    stem += "_vs_" + "_".join(args.peers) if args.peers else ""
    meta = {"device": str(jax.devices()[0]), "platform": platform.platform(),
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "rows": rows}  # fmt: skip
    (args.out / f"{stem}.json").write_text(json.dumps(meta, indent=2))
    table = _table(rows) + _summary(rows)
    (args.out / f"{stem}.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
