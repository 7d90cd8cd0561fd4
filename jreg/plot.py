"""Figures of regularization paths and cross-validation curves (needs matplotlib).

Install the extra with ``pip install "jreg[plot]"``; matplotlib is imported only when a function
here is called. The functions draw on ``ax`` when given, else on a new
:class:`matplotlib.figure.Figure` that is not registered with pyplot (so nothing opens a window,
and ``fig.savefig`` renders with the non-interactive Agg backend), and return the figure.

Examples:
  >>> import numpy as np
  >>> from jreg import glm, plot
  >>> rng = np.random.default_rng(0)
  >>> X = rng.standard_normal((100, 8))
  >>> y = X[:, 0] - 2 * X[:, 1] + 0.5 * rng.standard_normal(100)
  >>> cv = glm.cross_validate(X, y, n_folds=5, n_strengths=30)
  >>> figure = plot.plot_path(cv.path, strength=cv.best_strength)
  >>> figure.axes[0].get_xscale()
  'log'
  >>> plot.plot_cv(cv, yscale="log").savefig("cv.png")  # doctest: +SKIP
"""

import numpy as np

__all__ = ["plot_cv", "plot_path"]


def _figure(*, figsize, ncols=1):
    """A new pyplot-free figure and its axes (an array when ``ncols > 1``)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError('jreg.plot needs matplotlib: pip install "jreg[plot]"') from error
    figure = Figure(figsize=figsize, layout="constrained")
    return figure, figure.subplots(ncols=ncols)


def _colors(n: int) -> list:
    """``n`` distinct colors: tab10, tab20, else evenly spaced along turbo."""
    from matplotlib import colormaps

    if n <= 20:
        return list(colormaps["tab10" if n <= 10 else "tab20"].colors[:n])
    return [tuple(color) for color in colormaps["turbo"](np.linspace(0, 1, n))]


def plot_path(
    path,
    *,
    ax=None,
    strength=None,
    feature_names=None,
    highlight=None,
    max_labels=None,
    title=None,
    figsize=(8, 5),
):
    """Coefficient paths against strength, on a log axis.

    The features in color have colors of their own (no color drawn twice); the others are
    light gray.

    Args:
      path: a :class:`jreg.glm.Path` (anything with ``strengths (k,)`` and ``coef (k, p)``).
      ax: matplotlib axes to draw on; default: those of a new figure.
      strength: a strength to mark with a vertical line (e.g. the cross-validated choice).
      feature_names: ``p`` names; the features selected at ``strength`` (at the smallest
        strength if none is marked) get a legend entry (outside the axes beyond 12 entries).
      highlight: indices or a boolean mask of features to draw in color (e.g. a known true
        support). Default: the features with a legend entry when ``feature_names`` is given,
        else all.
      max_labels: the most legend entries for features (those with the largest coefficients);
        default: all the selected features.
      title: the axes title.
      figsize: size of a new figure, in inches.

    Returns:
      The :class:`matplotlib.figure.Figure`.
    """
    if ax is None:
        _, ax = _figure(figsize=figsize)
    strengths, coef = np.asarray(path.strengths), np.asarray(path.coef)
    strength = None if strength is None else float(strength)
    at = -1 if strength is None else int(np.argmin(np.abs(strengths - strength)))
    labelled = np.zeros(coef.shape[1], bool)
    if feature_names is not None:
        largest = np.argsort(-np.abs(coef[at]), kind="stable")[:max_labels]
        labelled[largest[coef[at, largest] != 0]] = True
    if highlight is not None:
        colored = np.zeros(coef.shape[1], bool)
        colored[highlight] = True
    else:
        colored = labelled if feature_names is not None else np.ones(coef.shape[1], bool)
    lines = ax.plot(strengths, coef, linewidth=1, color="lightgray", zorder=1)
    for j, color in zip(np.flatnonzero(colored), _colors(colored.sum()), strict=True):
        lines[j].set(color=color, zorder=2)
    for j in np.flatnonzero(labelled):
        lines[j].set_label(feature_names[j])
    ax.set_xscale("log")
    ax.axhline(0, color="black", linewidth=0.5)
    if strength is not None:
        ax.axvline(strength, color="black", linestyle="--", linewidth=1, label="chosen strength")
    if labelled.sum() > 12:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1),
                  ncols=-(-labelled.sum() // 30))  # fmt: skip
    elif strength is not None or feature_names is not None:
        ax.legend(fontsize="small")
    ax.set(xlabel="strength", ylabel="coefficient", title=title)
    return ax.figure


def plot_cv(cv, *, ax=None, ylabel="held-out loss", yscale="linear", title=None, figsize=(8, 5)):
    """Cross-validation curve: mean held-out loss ± one standard error across folds.

    Args:
      cv: a :class:`jreg.glm.CrossValidation`.
      ax: matplotlib axes to draw on; default: those of a new figure.
      ylabel: the y-axis label (the score: mean squared error, log-loss, ...).
      yscale: ``"linear"``, or ``"log"`` for scores that span decades (ticks labelled as plain
        numbers).
      title: the axes title.
      figsize: size of a new figure, in inches.

    Returns:
      The :class:`matplotlib.figure.Figure`, with the best and the one-standard-error strengths
      marked.
    """
    if ax is None:
        _, ax = _figure(figsize=figsize)
    strengths, scores = np.asarray(cv.strengths), np.asarray(cv.scores)
    mean = scores.mean(axis=0)
    error = scores.std(axis=0, ddof=1) / np.sqrt(scores.shape[0])
    ax.fill_between(strengths, mean - error, mean + error, alpha=0.3, label="± 1 standard error")
    ax.plot(strengths, mean, marker=".", label="mean over folds")
    ax.axvline(float(cv.best_strength), color="black", linestyle="--", label="best")
    ax.axvline(float(cv.strength_1se), color="gray", linestyle=":", label="1se")
    ax.set_xscale("log")
    ax.set_yscale(yscale)
    if yscale == "log":
        from matplotlib.ticker import LogFormatter

        ax.yaxis.set_major_formatter(LogFormatter())
        ax.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(2, 0.4)))
    ax.legend(fontsize="small")
    ax.set(xlabel="strength", ylabel=ylabel, title=title)
    return ax.figure
