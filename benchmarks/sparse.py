"""Sparse design matrices: jreg's paths on scipy.sparse input against scikit-learn, celer, skglm
and R's glmnet.

Every solver gets the same CSC matrix (never densified; glmnet R's sparse matrix of it), the same
strengths and accuracy, no intercept (so that every peer solves the very same problem); the
timing, ratios, accuracy matching and objective comparison are those of
``benchmarks/paths.py``. A last row fits a 10-strength path on a matrix whose dense form would
not fit in memory, and reports jreg's time and peak resident memory.

    python benchmarks/sparse.py            # writes benchmarks/results/sparse.{json,md}
    python benchmarks/sparse.py --quick    # small problems, one repeat (CI)
"""

import argparse
import json
import resource
import time
from pathlib import Path

import jax
import numpy as np
import scipy.sparse
from paths import (
    RESULTS,
    _accuracy_matched,
    _lasso_peers,
    _logistic_peers,
    _objective,
    _row,
    _table,
)

from jreg import glm


def _sparse_problem(n, p, nnz, *, seed=0):
    """``nnz`` Gaussian entries at uniform positions (duplicates summed), a truth on 50
    features, noise at a third of the signal; labels in {-1, 1} from the same predictor."""
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(0, n, nnz), rng.integers(0, p, nnz)
    X = scipy.sparse.csc_matrix((rng.standard_normal(nnz), (rows, cols)), shape=(n, p))
    coef = np.zeros(p)
    coef[rng.choice(p, min(50, p), replace=False)] = rng.standard_normal(min(50, p))
    signal = X @ coef
    noise = rng.standard_normal(n) * signal.std() / 3
    return X, signal + noise, np.where(signal + noise > 0, 1.0, -1.0)


def _path_row(name, X, y, *, datafit, peers_of, n_strengths, tol, repeats):
    top = float(glm.strength_max(X, y, datafit=datafit, fit_intercept=False))
    strengths = top * np.logspace(0, -2, n_strengths)

    def run_jreg():
        return glm.path(X, y, datafit=datafit, strengths=strengths, fit_intercept=False,
                        tol=tol).coef  # fmt: skip

    p0 = _objective(X, y, np.zeros(X.shape[1]), 0.0, datafit)

    def objectives(path_coefs):
        pairs = zip(np.asarray(path_coefs), strengths, strict=True)
        return [_objective(X, y, c, s, datafit) for c, s in pairs]

    matched = _accuracy_matched({"jreg": run_jreg}, lambda t: peers_of(X, y, strengths, t),
                                objectives, tol=tol, scale=p0, repeats=repeats)  # fmt: skip
    return _row(name, X, n_strengths, tol, matched.timed, matched.excess, "<= 1.0",
                matched.tightened)  # fmt: skip


def _liblinear_and_celer(X, y, strengths, tol):
    """The logistic peers but saga (minutes per path here: out of the race)."""
    peers = _logistic_peers(X, y, strengths, tol)
    return {name: run for name, run in peers.items() if name != "sklearn-saga"}


def _large_row(n, p, nnz):
    """A 10-strength lasso path on a matrix too large to densify: seconds and peak memory."""
    X, y, _ = _sparse_problem(n, p, nnz)
    start = time.perf_counter()
    fit = glm.path(X, y, n_strengths=10, fit_intercept=True)
    jax.block_until_ready(fit.coef)
    seconds = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    dense_gb = n * p * 8 / 2**30
    return (f"| 10-strength lasso path, intercept | {n}x{p}, {nnz} non-zeros (dense: "
            f"{dense_gb:.0f} GiB) | {seconds:.1f} s, compilation included | peak memory "
            f"{peak_gb:.1f} GiB (the whole process) | {int(fit.n_nonzero[-1])} features at the "
            "end |")  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small problems, one repeat (CI)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)  # the peers work in float64: compare alike
    repeats = 1 if args.quick else args.repeats
    n, p, nnz = (2000, 5000, 100_000) if args.quick else (20_000, 50_000, 1_000_000)
    X, y, labels = _sparse_problem(n, p, nnz)
    rows = [
        _path_row("lasso path, sparse", X, y, datafit="squared", peers_of=_lasso_peers,
                  n_strengths=50, tol=1e-6, repeats=repeats),
        _path_row("L1 logistic path, sparse", X, labels, datafit="logistic",
                  peers_of=_liblinear_and_celer, n_strengths=20, tol=1e-6, repeats=repeats),
    ]  # fmt: skip
    large = (20_000, 10_000, 20_000) if args.quick else (200_000, 100_000, 200_000)
    report = "\n\n".join([_table(rows), "| large | shape | time | memory | support |\n"
                          "|---|---|---|---|---|\n" + _large_row(*large)])  # fmt: skip
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sparse.md").write_text(report + "\n")
    (args.out / "sparse.json").write_text(json.dumps({"rows": rows, "large": large}))


if __name__ == "__main__":
    main()
