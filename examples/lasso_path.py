"""Lasso, elastic-net and MCP paths on scikit-learn's diabetes data.

    python examples/lasso_path.py [--quick] [--out DIR]

Standardizes the ten features, fits the three regularization paths with :func:`jreg.glm.path`,
prints the order in which the features enter each model and saves the paths side by side to
``DIR/lasso_path.png``.
"""

import argparse
import pathlib

import numpy as np
from matplotlib.figure import Figure
from sklearn.datasets import load_diabetes

from jreg import glm, plot

PENALTIES = {"l1": {}, "elastic_net": {"l1_ratio": 0.5}, "mcp": {}}


def entry_order(fit: glm.Path, names) -> list[str]:
    """Feature names in the order they first become non-zero as the strength decreases."""
    nonzero = np.asarray(fit.coef) != 0
    first = np.where(nonzero.any(axis=0), nonzero.argmax(axis=0), len(nonzero))
    return [names[j] for j in np.argsort(first, kind="stable") if nonzero[:, j].any()]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a coarser grid")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("jreg-out"))
    args = parser.parse_args(argv)

    data = load_diabetes()
    X = (data.data - data.data.mean(axis=0)) / data.data.std(axis=0)
    figure = Figure(figsize=(12, 4), layout="constrained")
    for ax, (penalty, options) in zip(figure.subplots(ncols=3), PENALTIES.items(), strict=True):
        n_strengths = 30 if args.quick else 100
        fit = glm.path(X, data.target, penalty=penalty, n_strengths=n_strengths, **options)
        order = ", ".join(entry_order(fit, data.feature_names))
        print(f"{penalty:>11}: features enter in the order {order}")
        plot.plot_path(fit, ax=ax, feature_names=data.feature_names, title=penalty)
    args.out.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out / "lasso_path.png", dpi=100)
    print(f"wrote {args.out / 'lasso_path.png'}")


if __name__ == "__main__":
    main()
