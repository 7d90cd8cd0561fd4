"""Training and held-out error across strengths: under- and over-fitting on one lasso path.

    python examples/bias_variance.py [--quick] [--out DIR]

Draws several small training sets from one sparse linear model, fits each one's lasso path with
:func:`jreg.glm.path` on a shared grid (one compiled program, reused for every draw), and plots
the training error, which only falls as the strength decreases, against the error on a large
held-out set, which falls and then rises again: at large strengths the model underfits (bias),
at small ones it fits the noise of its training set (variance). Saves
``DIR/bias_variance.png``.
"""

import argparse
import pathlib

import numpy as np
from matplotlib.figure import Figure

from jreg import glm

N_TRAIN, N_TEST, N_FEATURES, N_INFORMATIVE, NOISE = 60, 2000, 50, 8, 1.0


def errors(fit: glm.Path, X, y) -> np.ndarray:
    """Mean squared error of every model on the path, ``(k,)``."""
    predictions = X @ np.asarray(fit.coef).T + np.asarray(fit.intercept)
    return np.mean((y[:, None] - predictions) ** 2, axis=0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer training sets")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("jreg-out"))
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    coef = np.zeros(N_FEATURES)
    coef[:N_INFORMATIVE] = rng.choice([-1.0, 1.0], N_INFORMATIVE) * rng.uniform(
        0.5, 1.5, N_INFORMATIVE
    )

    def sample(n):
        X = rng.standard_normal((n, N_FEATURES))
        return X, X @ coef + NOISE * rng.standard_normal(n)

    X_test, y_test = sample(N_TEST)
    draws = [sample(N_TRAIN) for _ in range(4 if args.quick else 20)]
    strengths = glm.strength_max(*draws[0]) * np.logspace(0, -3, 60)
    fits = [(glm.path(X, y, strengths=strengths), X, y) for X, y in draws]
    train = np.array([errors(fit, X, y) for fit, X, y in fits])  # (draws, k)
    test = np.array([errors(fit, X_test, y_test) for fit, _, _ in fits])

    best = np.argmin(test.mean(axis=0))
    print(
        f"{len(draws)} training sets of {N_TRAIN} rows, {N_FEATURES} features "
        f"({N_INFORMATIVE} informative), noise variance {NOISE**2:g}"
    )
    for name, at in [("largest", 0), ("best", best), ("smallest", -1)]:
        print(
            f"{name:>8} strength {strengths[at]:8.4f}: training MSE {train[:, at].mean():6.3f}, "
            f"held-out MSE {test[:, at].mean():6.3f}"
        )

    figure = Figure(figsize=(8, 5), layout="constrained")
    ax = figure.subplots()
    for error, color, label in [(train, "tab:blue", "training"), (test, "tab:red", "held-out")]:
        ax.plot(strengths, error.T, color=color, alpha=0.2, linewidth=0.8)
        ax.plot(strengths, error.mean(axis=0), color=color, linewidth=2.5, label=f"{label} error")
    ax.axhline(NOISE**2, color="gray", linestyle=":", label="noise variance")
    ax.axvline(strengths[best], color="black", linestyle="--", label="best held-out error")
    ax.set_xscale("log")
    ax.set_yscale("log")
    top = ax.get_ylim()[1]
    ax.text(strengths[0], top, "underfitting (bias)", ha="right", va="top")
    ax.text(strengths[-1], top, "overfitting (variance)", ha="left", va="top")
    ax.set(xlabel="lasso strength", ylabel="mean squared error", title="bias and variance")
    ax.legend(loc="lower right")
    args.out.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out / "bias_variance.png", dpi=100)
    print(f"wrote {args.out / 'bias_variance.png'}")


if __name__ == "__main__":
    main()
