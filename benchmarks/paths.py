"""Regularization paths: jreg against scikit-learn, celer and skglm, side by side.

For each problem every solver computes the same path (same strengths, same tolerance) on the
same machine in one run; times are medians of warm runs (jreg's compilation is reported apart),
every repeat runs the solvers back to back, the ratio to the best peer is the median of the
repeats' ratios (robust to a machine whose speed drifts), and every solution's objective is
evaluated by one numpy function so that accuracy is compared too: ``excess`` is the largest
``(P_jreg - P_peer) / P(0)`` over the path (<= ~tol means jreg is at least as accurate as the
peer).

    python benchmarks/paths.py            # full run, writes benchmarks/results/paths.{json,md}
    python benchmarks/paths.py --quick    # tiny problems, proves the script works (CI)
    python benchmarks/paths.py --gpu      # batched CV on a large problem (run on a GPU)

Data are centered and fitted without intercept, so that every peer solves the very same problem.
"""

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import jax
import numpy as np

from jreg import glm

RESULTS = Path(__file__).parent / "results"


def _elapsed(fn):
    """Seconds of one call of ``fn`` and its result."""
    start = time.perf_counter()
    result = jax.block_until_ready(fn())
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
    """The (sklearn) objective without intercept, evaluated in float64 numpy."""
    z = X @ coef
    if datafit == "squared":
        loss = np.mean((y - z) ** 2) / 2
    else:
        loss = np.mean(np.logaddexp(0, -y * z))
    return loss + strength * np.abs(coef).sum()


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


def _centered(X, y):
    return np.asfortranarray(X - X.mean(0)), y - y.mean()


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


def _path_problem(name, X, y, *, datafit, n_strengths, tol, repeats, target):
    X, y = _centered(X, y) if datafit == "squared" else (np.asfortranarray(X), y)
    top = float(glm.strength_max(X, y, datafit=datafit, fit_intercept=False))
    ratio = 1e-3 if X.shape[0] >= X.shape[1] else 1e-2
    strengths = top * np.logspace(0, np.log10(ratio), n_strengths)

    def run_jreg():
        return glm.path(
            X, y, datafit=datafit, strengths=strengths, fit_intercept=False, tol=tol
        ).coef

    peers = (_lasso_peers if datafit == "squared" else _logistic_peers)(X, y, strengths, tol)
    timed, coefs = _timed({"jreg": run_jreg, **peers}, repeats)
    jreg_coef = np.asarray(coefs["jreg"], float)
    p0 = _objective(X, y, np.zeros(X.shape[1]), 0.0, datafit)

    def excess(peer_coefs):
        ours = [_objective(X, y, c, s, datafit) for c, s in zip(jreg_coef, strengths, strict=True)]
        theirs = [
            _objective(X, y, c, s, datafit) for c, s in zip(peer_coefs, strengths, strict=True)
        ]
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
    parser.add_argument("--gpu", action="store_true", help="batched CV on 10000 x 1000")
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
