"""The cost of a hypergradient: ``value_and_grad`` of a held-out loss through ``glm.fit``,
against the fit alone.

The held-out loss (mean squared error, or the logistic loss) of the solution fitted on the
training half, differentiated with respect to the strength and the p per-feature penalty
factors (implicit differentiation: one linear solve on the support). Both are jitted; times are
medians of warm runs, interleaved (fit, then value_and_grad, in each repeat); compilation is
reported apart. Goal: ratio <= 1.5.

    python benchmarks/hypergradient.py           # writes benchmarks/results/hypergradient.{json,md}
    python benchmarks/hypergradient.py --quick   # tiny problems (proves the script works)

Problems: Toeplitz-correlated Gaussian features (rho 0 and 0.7), a sparse truth, at a strength
of 0.1 times strength_max, in JAX's default float32 (as a user runs it).
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from _results import median_and_worst
from _results import write as write_results

from jreg import glm

SHAPES = [(1000, 100), (2000, 500), (500, 2000), (10000, 300)]
QUICK_SHAPES = [(100, 20)]


def problem(n, p, rho, datafit, seed=0):
    rng = np.random.default_rng(seed)
    X = (
        rng.standard_normal((2 * n, p))
        @ np.linalg.cholesky(scipy.linalg.toeplitz(rho ** np.arange(p))).T
    )
    coef = np.zeros(p)
    support = rng.choice(p, max(p // 20, 3), replace=False)
    coef[support] = rng.choice([-1.0, 1.0], support.size)
    z = X @ coef
    if datafit == "logistic":
        y = (rng.random(2 * n) < 1 / (1 + np.exp(-z))).astype(np.float32)
    else:
        y = (z + rng.standard_normal(2 * n) * np.std(z)).astype(np.float32)
    X = X.astype(np.float32)
    return X[:n], y[:n], X[n:], y[n:]


def held_out_loss(datafit, X_val, y_val, coef, intercept):
    z = X_val @ coef + intercept
    if datafit == "logistic":
        return jnp.mean(jnp.logaddexp(0, z) - y_val * z)
    return jnp.mean((y_val - z) ** 2)


def median_seconds(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(n, p, rho, datafit, repeats):
    X, y, X_val, y_val = problem(n, p, rho, datafit)
    strength = 0.1 * float(glm.strength_max(X, y, datafit=datafit))

    def fit(log_strength, log_factors, X, y):  # data as arguments: never constants folded
        return glm.fit(X, y, jnp.exp(log_strength), datafit=datafit,
                       penalty_factor=jnp.exp(log_factors))  # fmt: skip

    def objective(log_strength, log_factors, X, y, X_val, y_val):
        solution = fit(log_strength, log_factors, X, y)
        return held_out_loss(datafit, X_val, y_val, solution.coef, solution.intercept)

    hyper = (jnp.log(jnp.float32(strength)), jnp.zeros(p, jnp.float32))
    fit_jit = jax.jit(fit)
    grad_jit = jax.jit(jax.value_and_grad(objective, argnums=(0, 1)))
    fit_args, grad_args = (*hyper, X, y), (*hyper, X, y, X_val, y_val)
    compile_fit = median_seconds(lambda: fit_jit(*fit_args), 1)
    compile_grad = median_seconds(lambda: grad_jit(*grad_args), 1)
    fit_times, grad_times = [], []
    for _ in range(repeats):  # interleaved
        fit_times.append(median_seconds(lambda: fit_jit(*fit_args), 1))
        grad_times.append(median_seconds(lambda: grad_jit(*grad_args), 1))
    value, (d_strength, d_factors) = grad_jit(*grad_args)
    solution = fit_jit(*fit_args)
    return {
        "shape": f"{n}x{p}",
        "rho": rho,
        "datafit": datafit,
        "n_selected": int(jnp.sum(solution.coef != 0)),
        "fit_s": float(np.median(fit_times)),
        "value_and_grad_s": float(np.median(grad_times)),
        "ratio": float(np.median(np.array(grad_times) / np.array(fit_times))),
        "compile_fit_s": compile_fit,
        "compile_value_and_grad_s": compile_grad,
        "finite": bool(
            np.isfinite(value) and np.isfinite(d_strength) and np.all(np.isfinite(d_factors))
        ),  # fmt: skip
    }


def table(rows) -> str:
    lines = [
        "| problem | datafit | selected | fit | value_and_grad | ratio | compile fit / grad |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['shape']}, rho {r['rho']} | {r['datafit']} | {r['n_selected']} | "
            f"{1e3 * r['fit_s']:.1f} ms | {1e3 * r['value_and_grad_s']:.1f} ms | "
            f"{r['ratio']:.2f} | {r['compile_fit_s']:.1f} s / "
            f"{r['compile_value_and_grad_s']:.1f} s |"
        )
    ratios = np.array([r["ratio"] for r in rows])
    lines.append(f"\nratio value_and_grad / fit: {median_and_worst(ratios)} ({len(rows)} problems)")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny problems, no results file")
    args = parser.parse_args(argv)
    shapes, repeats = (QUICK_SHAPES, 3) if args.quick else (SHAPES, 7)
    rows = []
    for n, p in shapes:
        for rho in (0.0, 0.7):
            for datafit in ("squared", "logistic"):
                rows.append(measure(n, p, rho, datafit, repeats))
                print(json.dumps(rows[-1]), flush=True)
    report = table(rows)
    print(report)
    if not args.quick:
        write_results("hypergradient", rows, report)


if __name__ == "__main__":
    main()
