r"""Why the L1 penalty gives exact zeros and the L2 penalty does not: the classic picture.

    python examples/l1_vs_l2_geometry.py [--quick] [--out DIR]

A 2-D least-squares problem :math:`\tfrac{1}{2n}\|y - Xw\|^2` with correlated features. The
penalized solution at a strength is also the constrained solution on the ball whose radius is
its norm. The expanding loss contours first meet the L1 diamond at a corner, where a coordinate
is exactly zero, and the L2 disc at a point where neither is. Both solutions are computed with
:func:`jreg.glm.path` (no intercept), at matching constraint levels (the disc's radius is the
diamond's), marked on the figure ``DIR/l1_vs_l2_geometry.png``.
"""

import argparse
import pathlib

import numpy as np
from matplotlib.figure import Figure

from jreg import glm


def problem(*, n=100, correlation=0.5, seed=0):
    """Correlated 2-D features and a target whose least-squares fit is about (1.5, 0.25)."""
    rng = np.random.default_rng(seed)
    cov = np.array([[1.0, correlation], [correlation, 1.0]])
    X = rng.standard_normal((n, 2)) @ np.linalg.cholesky(cov).T
    return X, X @ np.array([1.5, 0.25]) + 0.3 * rng.standard_normal(n)


def loss(X, y, w):
    """The least-squares loss at each point of ``w (..., 2)``."""
    return np.mean((y - w @ X.T) ** 2, axis=-1) / 2


def l1_solution(X, y, *, n_strengths):
    """A lasso solution with exactly one non-zero coordinate, two thirds into that range."""
    fit = glm.path(X, y, n_strengths=n_strengths, fit_intercept=False)
    one = np.flatnonzero((np.asarray(fit.coef) != 0).sum(axis=1) == 1)
    return np.asarray(fit.coef[one[2 * one.size // 3]])


def l2_solution(X, y, radius, *, n_strengths):
    """The ridge solution with Euclidean norm ``radius`` (its strength found on the path)."""
    wide = np.logspace(2, -4, n_strengths)  # the default ridge grid stays at large strengths
    fit = glm.path(X, y, penalty="l2", strengths=wide, fit_intercept=False)
    norms, strengths = np.linalg.norm(fit.coef, axis=1), np.asarray(fit.strengths)
    strength = np.exp(np.interp(radius, norms, np.log(strengths)))  # norms increase along it
    exact = glm.path(X, y, penalty="l2", strengths=[strength], fit_intercept=False)
    return np.asarray(exact.coef[0])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="coarser grids")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("jreg-out"))
    args = parser.parse_args(argv)

    X, y = problem()
    n_strengths, n_grid = (50, 120) if args.quick else (200, 400)
    w_l1 = l1_solution(X, y, n_strengths=n_strengths)
    radius = np.abs(w_l1).sum()
    w_l2 = l2_solution(X, y, radius, n_strengths=n_strengths)
    w_ls = np.linalg.lstsq(X, y)[0]
    print(f"least squares: w = ({w_ls[0]:.4f}, {w_ls[1]:.4f})")
    print(f"L1, |w|_1 = {radius:.4f}: w = ({w_l1[0]:.4f}, {w_l1[1]:.4f})")
    print(f"L2, |w|_2 = {np.linalg.norm(w_l2):.4f}: w = ({w_l2[0]:.4f}, {w_l2[1]:.4f})")
    zeros = np.flatnonzero(w_l1 == 0)
    assert zeros.size == 1 and np.all(w_l2 != 0)
    print(f"the L1 solution has an exact zero: w[{zeros[0]}] == 0.0; the L2 solution has none")

    grid = np.linspace(-2, 2, n_grid)
    W = np.stack(np.meshgrid(grid, grid), axis=-1)
    L = loss(X, y, W)
    angle = np.linspace(0, 2 * np.pi, 400)
    balls = {
        "L1": (radius * np.array([1, 0, -1, 0, 1]), radius * np.array([0, 1, 0, -1, 0]), w_l1),
        "L2": (radius * np.cos(angle), radius * np.sin(angle), w_l2),
    }
    contours = np.linspace(L.min(), np.quantile(L, 0.4), 12)
    figure = Figure(figsize=(9, 4.5), layout="constrained")
    for ax, (name, (ball_x, ball_y, w)) in zip(
        figure.subplots(ncols=2), balls.items(), strict=True
    ):
        ax.contour(grid, grid, L, levels=contours, colors="lightgray", linewidths=0.8)
        ax.contour(grid, grid, L, levels=[loss(X, y, w)], colors="tab:blue")
        ax.fill(ball_x, ball_y, color="tab:orange", alpha=0.4)
        ax.plot(*w_ls, "k+", markersize=10, label="least squares")
        ax.plot(*w, "o", color="tab:red", label=f"{name} solution ({w[0]:.2f}, {w[1]:.2f})")
        ax.axhline(0, color="black", linewidth=0.5)
        ax.axvline(0, color="black", linewidth=0.5)
        title = f"{name} ball of radius {radius:.2f} meets a loss contour"
        ax.set(aspect="equal", xlabel="$w_0$", ylabel="$w_1$", title=title)
        ax.legend(fontsize="small", loc="lower left")
    args.out.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out / "l1_vs_l2_geometry.png", dpi=100)
    print(f"wrote {args.out / 'l1_vs_l2_geometry.png'}")


if __name__ == "__main__":
    main()
