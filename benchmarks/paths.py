"""Regularization paths: jreg against scikit-learn, celer, skglm and R's glmnet, side by side.

For each problem every solver computes the same path (same strengths, same tolerance) on the
same machine in one run; times are medians of warm runs (jreg's compilation is reported apart),
every repeat runs the solvers back to back, the ratio to the best peer is the median of the
repeats' ratios (robust to a machine whose speed drifts), and every solution's objective is
evaluated by one numpy function so that accuracy is compared too: ``excess`` is the largest
``(P_jreg - P_peer) / P(0)`` over the path (<= ~tol means jreg is at least as accurate as the
peer).

    python benchmarks/paths.py            # full run, writes benchmarks/results/paths.{json,md}
    python benchmarks/paths.py --quick    # tiny problems, proves the script works (CI)
    python benchmarks/paths.py --gpu      # batched CV (sharded over the devices) and a
                                          # sparse lasso path on large problems (for a GPU)

Data are centered and fitted without intercept, so that every peer solves the very same problem.
R's glmnet (where ``Rscript`` and the glmnet package are installed) is timed inside R, its fit
alone, after a warm-up fit in the same R process.
"""

import argparse
import json
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
import scipy.special

from jreg import glm

RESULTS = Path(__file__).parent / "results"
GLMNET = r"""
args <- commandArgs(TRUE)
read <- function(name, size) readBin(file.path(args[1], name), "double", size)
shape <- read("shape.bin", 4)  # n, p, number of strengths, thresh
n <- shape[1]; p <- shape[2]; k <- shape[3]
X <- matrix(read("X.bin", n * p), n, p)
y <- read("y.bin", n)
if (args[2] == "multinomial") y <- factor(y)
lambda <- read("lambda.bin", k)
suppressMessages(library(glmnet))
fit_path <- function() glmnet(X, y, family = args[2], lambda = lambda, standardize = FALSE,
                              intercept = FALSE, thresh = shape[4], maxit = 1e7)
invisible(fit_path())  # warm-up
seconds <- system.time(fit <- fit_path())[["elapsed"]]
beta <- if (is.list(fit$beta)) sapply(fit$beta, as.matrix) else as.matrix(fit$beta)
writeBin(c(seconds, as.vector(beta)), file.path(args[1], "out.bin"))
"""


class Timed(NamedTuple):
    """A peer's result with its own timing (measured inside another process)."""

    seconds: float
    value: np.ndarray


def _elapsed(fn):
    """Seconds of one call of ``fn`` and its result (a :class:`Timed` result: its own)."""
    start = time.perf_counter()
    result = jax.block_until_ready(fn())
    if isinstance(result, Timed):
        return result.seconds, result.value
    return time.perf_counter() - start, result


def _timed(runs, repeats):
    """Times every solver of ``runs`` (name -> function; jreg first), after one warm-up call
    each (jreg's is its compilation), back to back within each repeat, so that the ratios of
    one repeat share the machine's state. Returns (the medians, jreg's compilation time (its
    first call's excess over its median), the median over repeats of jreg's time over the best
    peer's (the one with the lowest median)) and each solver's result from the last repeat."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = {name: _elapsed(fn)[0] for name, fn in runs.items()}
        times, results = {name: [] for name in runs}, {}
        for _ in range(repeats):
            for name, fn in runs.items():
                seconds, results[name] = _elapsed(fn)
                times[name].append(seconds)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    peers = {name: value for name, value in medians.items() if name != "jreg"}
    best = min(peers, key=peers.get)
    ratio = float(np.median(np.divide(times["jreg"], times[best])))
    return (medians, first["jreg"] - medians["jreg"], ratio), results


def _row(name, X, n_strengths, tol, timed, excess, target):
    """A table row from :func:`_timed`'s results."""
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
        "target": target,
    }


def _objective(X, y, coef, strength, datafit):
    """The objective without intercept, evaluated in float64 numpy: the mean loss (squared:
    half the squared error, summed over outputs; Poisson: the negative log-likelihood up to a
    constant) plus the L1 norm, or for several outputs of ``"squared"`` the sum of the rows'
    Euclidean norms (``MultiTaskLasso``)."""
    z = X @ coef
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
    return peers


def _logistic_peers(X, y, strengths, tol):
    """L1 logistic path solvers (labels in {-1, 1}); sklearn's C = 1 / (n * strength)."""
    from sklearn.linear_model import LogisticRegression

    n = X.shape[0]

    def sklearn_path(solver):
        def run():
            model = LogisticRegression(
                l1_ratio=1.0,
                solver=solver,
                fit_intercept=False,
                tol=tol,
                max_iter=10_000,
                warm_start=True,
            )
            return np.array(
                [model.set_params(C=1 / (n * s)).fit(X, y).coef_[0].copy() for s in strengths]
            )

        return run

    peers = {"sklearn-liblinear": sklearn_path("liblinear"), "sklearn-saga": sklearn_path("saga")}
    try:
        from celer import celer_path

        peers["celer"] = lambda: celer_path(X, y, "logreg", alphas=n * strengths, tol=tol)[1].T
    except ImportError:
        pass
    return peers


def _glmnet_peer(X, y, strengths, family, thresh):
    """R's glmnet path (no intercept, no standardization), or None without ``Rscript``."""
    if shutil.which("Rscript") is None:
        return None
    n, p = X.shape

    def run():
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            np.array([n, p, len(strengths), thresh], float).tofile(folder / "shape.bin")
            np.asarray(X, float).T.tofile(folder / "X.bin")  # R's column-major order
            np.asarray(y, float).tofile(folder / "y.bin")
            np.asarray(strengths, float).tofile(folder / "lambda.bin")
            subprocess.run(["Rscript", "-e", GLMNET, str(folder), family], check=True)
            out = np.fromfile(folder / "out.bin")
        beta = out[1:].reshape(-1, len(strengths), p)  # (classes or 1, strengths, p)
        return Timed(float(out[0]), np.squeeze(beta.transpose(1, 2, 0), axis=-1 if family ==
                                               "poisson" else ()))  # fmt: skip

    return run


def _poisson_peers(X, y, strengths, tol):
    """Poisson L1 paths: skglm's proximal Newton and R's glmnet (each where installed)."""
    peers = {"glmnet": _glmnet_peer(X, y, strengths, "poisson", 1e-7)}
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
        "glmnet": _glmnet_peer(X, y, strengths, "multinomial", 1e-7),
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


def _path_problem(name, X, y, *, datafit, n_strengths, tol, repeats, target):
    """One path problem: ``datafit`` a key of :data:`PEERS` (``"multi-output"``: squared loss,
    ``y (n, m)``)."""
    penalty, peers_of = PEERS[datafit]
    loss = "squared" if datafit == "multi-output" else datafit
    X, y = _centered(X, y) if loss == "squared" else (np.asfortranarray(X), y)
    top = float(glm.strength_max(X, y, datafit=loss, penalty=penalty, fit_intercept=False))
    ratio = 1e-3 if X.shape[0] >= X.shape[1] else 1e-2
    strengths = top * np.logspace(0, np.log10(ratio), n_strengths)

    def run_jreg():
        return glm.path(
            X, y, datafit=loss, penalty=penalty, strengths=strengths, fit_intercept=False, tol=tol
        ).coef

    peers = peers_of(X, y, strengths, tol)
    timed, coefs = _timed({"jreg": run_jreg, **peers}, repeats)
    jreg_coef = np.asarray(coefs["jreg"], float)
    p0 = _objective(X, y, np.zeros(jreg_coef.shape[1:]), 0.0, loss)

    def excess(peer_coefs):
        ours = [_objective(X, y, c, s, loss) for c, s in zip(jreg_coef, strengths, strict=True)]
        theirs = [_objective(X, y, c, s, loss) for c, s in zip(peer_coefs, strengths, strict=True)]
        return float(np.max(np.subtract(ours, theirs)) / p0)

    excesses = {peer: excess(coefs[peer]) for peer in peers}
    return _row(name, X, int(strengths.size), tol, timed, excesses, target)


def _cv_problem(name, X, y, *, n_folds, n_strengths, tol, repeats, target):
    from sklearn.linear_model import LassoCV
    from sklearn.model_selection import KFold

    X, y = _centered(X, y)

    def run_jreg():
        return glm.cross_validate(
            X, y, n_folds=n_folds, n_strengths=n_strengths, fit_intercept=False, tol=tol
        ).scores

    folds = KFold(n_folds, shuffle=True, random_state=0)
    sklearn = LassoCV(cv=folds, alphas=n_strengths, fit_intercept=False, tol=tol)
    runs = {"jreg": run_jreg, "scikit-learn LassoCV": lambda: sklearn.fit(X, y)}
    return _row(name, X, n_strengths, tol, _timed(runs, repeats)[0], {}, target)


def _table(rows):
    lines = [
        "| problem | shape | jreg (s) | compile (s) | peers (s) | jreg / best peer | target "
        "| objective excess vs peers |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        peers = ", ".join(f"{k} {v:.3f}" for k, v in row["peers"].items())
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
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)  # the peers work in float64: compare alike
    repeats = 1 if args.quick else args.repeats
    scale = 10 if args.quick else 1
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
        from sparse import _path_row, _sparse_problem  # it imports this module

        n, p, nnz = (2000, 5000, 100_000) if args.quick else (20_000, 50_000, 1_000_000)
        X, y, _ = _sparse_problem(n, p, nnz)
        rows.append(
            _path_row("lasso path, sparse", X, y, datafit="squared", peers_of=_lasso_peers,
                      n_strengths=50, tol=1e-6, repeats=repeats)
        )  # fmt: skip
    else:
        problems = [
            ("lasso path, n >> p", _regression(2000 // scale, 500 // scale), "<= 1.0 (sklearn)"),
            ("lasso path, p >> n", _regression(500 // scale, 5000 // scale), "<= 1.0 (celer)"),
            ("lasso path, correlated", _regression(1000 // scale, 2000 // scale, rho=0.9), "-"),
            ("lasso path, diabetes x interactions", _diabetes_interactions(), "-"),
        ]
        for name, (X, y), target in problems:
            rows.append(
                _path_problem(
                    name,
                    X,
                    y,
                    datafit="squared",
                    n_strengths=100,
                    tol=1e-6,
                    repeats=repeats,
                    target=target,
                )
            )
        cv_problems = [
            ("5-fold CV lasso", _regression(1000 // scale, 300 // scale), "<= 0.5 (LassoCV)"),
            ("5-fold CV lasso, diabetes x interactions", _diabetes_interactions(), "-"),
        ]
        for name, (X, y), target in cv_problems:
            rows.append(
                _cv_problem(
                    name,
                    X,
                    y,
                    n_folds=5,
                    n_strengths=100,
                    tol=1e-6,
                    repeats=repeats,
                    target=target,
                )  # fmt: skip
            )
        X, y = _regression(5000 // scale, 200 // scale)
        labels = np.where(y > np.median(y), 1.0, -1.0)
        rows.append(
            _path_problem(
                "logistic L1 path",
                X,
                labels,
                datafit="logistic",
                n_strengths=20,
                tol=1e-6,
                repeats=repeats,
                target="<= 1.0 (best peer)",
            )
        )
        families = [  # name, datafit, (n, p), target
            ("Poisson L1 path", "poisson", (5000, 200), "<= 1.0 (best peer)"),
            ("Poisson L1 path, p >> n", "poisson", (500, 2000), "-"),
            ("multinomial L1 path, 3 classes", "multinomial", (2000, 100), "<= 1.0 (best peer)"),
            ("multi-output lasso path, 3 outputs", "multi-output", (2000, 300), "-"),
        ]
        for name, datafit, (n, p), target in families:
            X, counts, classes, outputs = _families(n // scale, p // scale)
            y = {"poisson": counts, "multinomial": classes, "multi-output": outputs}[datafit]
            rows.append(
                _path_problem(
                    name,
                    X,
                    y,
                    datafit=datafit,
                    n_strengths=20,
                    tol=1e-6,
                    repeats=repeats,
                    target=target,
                )  # fmt: skip
            )
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "paths_gpu" if args.gpu else "paths"
    stem += "_quick" if args.quick else ""
    meta = {"device": str(jax.devices()[0]), "platform": platform.platform(), "rows": rows}
    (args.out / f"{stem}.json").write_text(json.dumps(meta, indent=2))
    table = _table(rows)
    (args.out / f"{stem}.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
