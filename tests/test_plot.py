"""jreg.plot: figures of paths and CV curves, drawn on given or new axes, without pyplot."""

import sys

import numpy as np
import pytest
from matplotlib.figure import Figure

from jreg import glm, plot

STRENGTHS = np.logspace(0, -2, 5)


@pytest.fixture
def fit() -> glm.Path:
    coef = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, -0.5, 0.0], [3, -1, 0.1], [4, -2, 1]])
    return glm.Path(STRENGTHS, coef, np.zeros(5), np.zeros(5), np.ones(5, int))


@pytest.fixture
def cv(fit) -> glm.CrossValidation:
    scores = np.array(
        [[5.0, 3.0, 1.0, 1.5, 2.0], [6.0, 3.5, 1.4, 1.2, 2.5], [5.5, 2.5, 1.2, 1.6, 3]]
    )
    return glm.CrossValidation(STRENGTHS, scores, STRENGTHS[2], STRENGTHS[1], fit)


def test_plot_path(fit):
    figure = plot.plot_path(fit, strength=STRENGTHS[2], feature_names=["a", "b", "c"])
    [ax] = figure.axes
    assert isinstance(figure, Figure) and ax.get_xscale() == "log"
    marker = [line for line in ax.lines if line.get_label() == "chosen strength"]
    assert [line.get_xdata()[0] for line in marker] == [STRENGTHS[2]]
    # only the features selected at the marked strength get a legend entry
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "chosen strength"]
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), fit.coef[:, 1])


def test_plot_path_highlight_and_max_labels(fit):
    ax = plot.plot_path(fit, highlight=[0], feature_names=["a", "b", "c"], max_labels=2).axes[0]
    assert ax.lines[0].get_color() != "lightgray"
    assert ax.lines[1].get_color() == ax.lines[2].get_color() == "lightgray"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]


def test_plot_cv(cv):
    ax = plot.plot_cv(cv, ylabel="MSE", yscale="log").axes[0]
    assert (ax.get_xscale(), ax.get_yscale(), ax.get_ylabel()) == ("log", "log", "MSE")
    marks = {line.get_label(): line.get_xdata()[0] for line in ax.lines}
    assert marks["best"] == STRENGTHS[2] and marks["1se"] == STRENGTHS[1]
    np.testing.assert_allclose(marks and ax.lines[0].get_ydata(), cv.scores.mean(axis=0))
    [band] = ax.collections
    lower, upper = (
        band.get_paths()[0].vertices[:, 1].min(),
        band.get_paths()[0].vertices[:, 1].max(),
    )
    error = cv.scores.std(axis=0, ddof=1) / np.sqrt(3)
    np.testing.assert_allclose([lower, upper], [1.2 - error[2], 5.5 + error[0]])


def test_draws_on_given_axes(fit, cv):
    figure = Figure()
    left, right = figure.subplots(ncols=2)
    assert plot.plot_path(fit, ax=left) is figure
    assert plot.plot_cv(cv, ax=right) is figure
    assert len(left.lines) == 4 and right.get_legend() is not None


def test_missing_matplotlib_says_how_to_install(fit, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r'pip install "jreg\[plot\]"'):
        plot.plot_path(fit)
