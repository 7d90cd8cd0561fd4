"""Stability paths: how often each feature is selected across subsamples, against strength.

    python examples/stability_selection.py [--quick] [--out DIR]

A synthetic sparse regression with a known support, whose noise features are correlated with
the true ones. :func:`jreg.glm.stability_selection` fits the lasso path on many random halves
of the data (all of them one compiled program) and returns each feature's selection probability
per strength (Meinshausen and Buhlmann, 2010). The true features are selected in nearly every
subsample over a wide range of strengths; the noise features only at small strengths, where
the lasso lets almost everything in. Saves ``DIR/stability_selection.png``.
"""

import argparse
import pathlib

import numpy as np
from matplotlib.figure import Figure

from jreg import glm

N_SAMPLES, N_FEATURES, N_INFORMATIVE = 200, 50, 5
THRESHOLD, FALSE_SELECTIONS = 0.8, 1.0  # the bound on the expected number of false selections


def problem(*, seed=0):
    """Features with correlation 0.5 between neighbours; the support is every tenth feature."""
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((N_SAMPLES, N_FEATURES))
    X = (Z + np.roll(Z, 1, axis=1)) / np.sqrt(2)
    coef = np.zeros(N_FEATURES)
    support = np.arange(0, N_FEATURES, N_FEATURES // N_INFORMATIVE)
    coef[support] = rng.choice([-1.0, 1.0], N_INFORMATIVE) * rng.uniform(0.5, 1.0, N_INFORMATIVE)
    return X, X @ coef + rng.standard_normal(N_SAMPLES), support


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer subsamples")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("jreg-out"))
    args = parser.parse_args(argv)

    X, y, support = problem()
    n_subsamples = 20 if args.quick else 100
    result = glm.stability_selection(X, y, n_subsamples=n_subsamples, n_strengths=40)
    strengths, probabilities = np.asarray(result.strengths), np.asarray(result.probabilities)
    q_max = np.sqrt(FALSE_SELECTIONS * (2 * THRESHOLD - 1) * N_FEATURES)
    region = probabilities.sum(axis=1) <= q_max
    stable = np.flatnonzero(probabilities[region].max(axis=0) >= THRESHOLD)
    print(f"true support: {support.tolist()}")
    print(
        f"stable set (selected in >= {THRESHOLD:.0%} of {n_subsamples} half-samples at a "
        f"strength where at most {q_max:.1f} features are selected on average, so at most "
        f"{FALSE_SELECTIONS:g} false selection is expected): {stable.tolist()}"
    )

    figure = Figure(figsize=(8, 5), layout="constrained")
    ax = figure.subplots()
    noise = np.setdiff1d(np.arange(N_FEATURES), support)
    ax.plot(strengths, probabilities[:, noise], color="lightgray", linewidth=1)
    ax.plot(strengths, probabilities[:, support], linewidth=2)
    ax.plot([], [], color="lightgray", label="noise features")
    ax.plot([], [], color="tab:blue", linewidth=2, label="true features")
    ax.axhline(THRESHOLD, color="black", linestyle="--", label=f"threshold {THRESHOLD}")
    ax.axvspan(
        strengths[region].min(),
        strengths[0],
        color="tab:green",
        alpha=0.1,
        label=f"region: at most {q_max:.1f} selected on average",
    )
    ax.set_xscale("log")
    ax.set(xlabel="lasso strength", ylabel="selection probability", title="stability paths")
    ax.legend()
    args.out.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out / "stability_selection.png", dpi=100)
    print(f"wrote {args.out / 'stability_selection.png'}")


if __name__ == "__main__":
    main()
