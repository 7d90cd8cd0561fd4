"""jreg's scikit-learn estimators in scikit-learn's workflows, against scikit-learn's own.

Three workflows a scikit-learn user runs, on the same data and folds (``KFold(5, shuffle)``),
side by side in one run:

- a ``GridSearchCV`` over 20 strengths x 5 folds (100 fits and a refit): ``GLMRegressor``
  against ``Lasso`` (``GLMClassifier`` against ``LogisticRegression(l1_ratio=1)``, liblinear,
  ``C = 1 / (n strength)``; liblinear also penalizes its intercept);
- the CV estimators on 100 strengths: ``GLMRegressorCV`` against ``LassoCV``.

``first`` is the problem's first run in the process (jreg compiles its programs then, unless
an earlier problem's padded shape was the same; scikit-learn has nothing to compile), ``warm``
the median of later runs; ``unconverged`` the most convergence warnings one run raised.
Float64 for both (``jax_enable_x64``), each at tol 1e-6 (jreg: duality gap <= 1e-6 F(0);
scikit-learn: gap <= 1e-6 ||y||^2 / n, a looser bound by 2x or more).

    python benchmarks/estimators.py           # writes benchmarks/results/estimators.{json,md}
    python benchmarks/estimators.py --quick   # tiny problems (proves the script works)
"""

import argparse
import json
import time
import warnings

import jax
import numpy as np
import scipy.linalg

jax.config.update("jax_enable_x64", True)

from _results import median_and_worst  # noqa: E402
from _results import write as write_results  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import Lasso, LassoCV, LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold  # noqa: E402
from sklearn.preprocessing import PolynomialFeatures, StandardScaler  # noqa: E402

from jreg import glm  # noqa: E402
from jreg.estimators import GLMClassifier, GLMRegressor, GLMRegressorCV  # noqa: E402

TOL = 1e-6


def synthetic(n, p, rho, classify=False, seed=0):
    rng = np.random.default_rng(seed)
    X = (
        rng.standard_normal((n, p))
        @ np.linalg.cholesky(scipy.linalg.toeplitz(rho ** np.arange(p))).T
    )
    coef = np.zeros(p)
    support = rng.choice(p, max(p // 10, 3), replace=False)
    coef[support] = rng.choice([-1.0, 1.0], support.size)
    z = X @ coef
    if classify:
        return X, (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return X, z + rng.standard_normal(n) * np.std(z)


def real(name):
    if name == "breast cancer":
        X, y = load_breast_cancer(return_X_y=True)
        return StandardScaler().fit_transform(X), y
    X, y = load_diabetes(return_X_y=True)
    if name == "diabetes x interactions":
        X = StandardScaler().fit_transform(X)
        X = PolynomialFeatures(2, include_bias=False).fit_transform(X)
    return StandardScaler().fit_transform(X), y


def seconds(fn, unconverged):
    """The time of ``fn()``; the convergence warnings it raised are counted in
    ``unconverged`` (a list)."""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    elapsed = time.perf_counter() - start
    kinds = (ConvergenceWarning, glm.ConvergenceWarning)
    unconverged.append(sum(issubclass(w.category, kinds) for w in caught))
    return elapsed


def strength_grid(X, y):
    """20 strengths from the lasso's largest useful one down 1000x (100x where p > n): glmnet's
    default range."""
    top = np.max(np.abs(X.T @ (y - y.mean()))) / len(y)
    return top * np.geomspace(1, 1e-3 if X.shape[0] >= X.shape[1] else 1e-2, 20)


def workflows(X, y, classify, repeats):
    """Seconds ``(first, warm)`` of each side of each workflow."""
    folds = KFold(5, shuffle=True, random_state=0)
    strengths = strength_grid(X, y)
    n = len(y)
    if classify:
        ours = GridSearchCV(GLMClassifier(tol=TOL), {"strength": strengths}, cv=folds)
        theirs = GridSearchCV(
            LogisticRegression(l1_ratio=1, solver="liblinear", tol=TOL, max_iter=10_000),
            {"C": 1 / (n * strengths)}, cv=folds,
        )  # fmt: skip
        pairs = {"grid search 20 x 5": (ours, theirs, "LogisticRegression (liblinear)")}
    else:
        ours = GridSearchCV(GLMRegressor(tol=TOL), {"strength": strengths}, cv=folds)
        theirs = GridSearchCV(Lasso(tol=TOL, max_iter=100_000), {"alpha": strengths}, cv=folds)
        pairs = {
            "grid search 20 x 5": (ours, theirs, "Lasso"),
            "CV estimator, 100 strengths": (
                GLMRegressorCV(
                    n_strengths=100, strength_min_ratio=1e-3, cv=folds, scoring="mse", tol=TOL
                ),  # LassoCV's grid (eps=1e-3)
                LassoCV(alphas=100, cv=folds, tol=TOL, max_iter=100_000),
                "LassoCV",
            ),
        }
    rows = []
    for workflow, (jreg_model, peer, peer_name) in pairs.items():
        unconverged = {"jreg": [], peer_name: []}
        first = {side: seconds(lambda m=model: m.fit(X, y), unconverged[side])
                 for side, model in (("jreg", jreg_model), (peer_name, peer))}  # fmt: skip
        warm = {"jreg": [], peer_name: []}
        for _ in range(repeats):  # interleaved
            for side, model in (("jreg", jreg_model), (peer_name, peer)):
                warm[side].append(seconds(lambda m=model: m.fit(X, y), unconverged[side]))
        rows.append({
            "workflow": workflow, "peer": peer_name,
            "jreg_unconverged": max(unconverged["jreg"]),
            "peer_unconverged": max(unconverged[peer_name]),
            "jreg_first_s": first["jreg"], "peer_first_s": first[peer_name],
            "jreg_s": float(np.median(warm["jreg"])), "peer_s": float(np.median(warm[peer_name])),
            "ratio": float(np.median(np.array(warm["jreg"]) / np.array(warm[peer_name]))),
        })  # fmt: skip
    return rows


def table(rows) -> str:
    lines = [
        "| data | workflow | jreg warm | peer warm | ratio | jreg first | peer first | "
        "unconverged jreg / peer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['workflow']} | {r['jreg_s']:.3f} s | {r['peer']} "
            f"{r['peer_s']:.3f} s | {r['ratio']:.2f} | {r['jreg_first_s']:.2f} s | "
            f"{r['peer_first_s']:.2f} s | {r['jreg_unconverged']} / {r['peer_unconverged']} |"
        )
    for workflow in dict.fromkeys(r["workflow"] for r in rows):
        ratios = np.array([r["ratio"] for r in rows if r["workflow"] == workflow])
        firsts = np.array([r["jreg_first_s"] / r["peer_first_s"] for r in rows
                           if r["workflow"] == workflow])  # fmt: skip
        lines.append(
            f"\n{workflow}: jreg / peer warm {median_and_worst(ratios)}; first run "
            f"{median_and_worst(firsts)} ({ratios.size} problems)"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny problems, no results file")
    args = parser.parse_args(argv)
    if args.quick:
        problems = {"100x10": (lambda: synthetic(100, 10, 0.0), False)}
        repeats = 1
    else:
        problems = {
            f"{n}x{p}, rho {rho}": (lambda n=n, p=p, rho=rho: synthetic(n, p, rho), False)
            for n, p in [(200, 50), (1000, 100), (5000, 200), (200, 1000)]
            for rho in (0.0, 0.7)
        }
        problems |= {name: (lambda name=name: real(name), False)
                     for name in ("diabetes", "diabetes x interactions")}  # fmt: skip
        problems |= {
            "logistic 1000x50, rho 0.5": (lambda: synthetic(1000, 50, 0.5, classify=True), True),
            "breast cancer": (lambda: real("breast cancer"), True),
        }
        repeats = 2
    rows = []
    for name, (make, classify) in problems.items():
        X, y = make()
        for row in workflows(X, y, classify, repeats):
            rows.append({"data": f"{name} ({X.shape[0]}x{X.shape[1]})", **row})
            print(json.dumps(rows[-1]), flush=True)
    report = table(rows)
    print(report)
    if not args.quick:
        write_results("estimators", rows, report)


if __name__ == "__main__":
    main()
