"""The command line: ``python -m jreg`` (also installed as the ``jreg`` command).

``jreg [--out DIR] [--quick]`` runs the demo: a sparse regression problem with a known support,
cross-validated L1, elastic-net and MCP paths, a table of the chosen strength, support recovery,
held-out error and time per penalty, and the figures ``paths.png`` and ``cv.png`` in DIR. The
penalty is static configuration of the :mod:`jreg.glm` solver, so the three penalties are three
compiled programs: the demo makes one :func:`jreg.glm.cross_validate` call per penalty, each of
which runs all its folds and the full-data path as one compiled program.

``jreg fit DATA.csv --target COLUMN`` encodes the columns of a CSV file (categorical ones
one-hot, missing values an error, dropped or imputed), standardizes the features,
cross-validates a path and reports the chosen model in the data's units (also in
``DIR/result.json``, with what ``jreg predict`` needs to encode new rows the same way). ``jreg
predict DIR NEW.csv`` applies it. Bad input is one line on stderr and exit status 2; DIR is
written only once everything has succeeded.

Progress on stderr, per compiled program with its elapsed time: a bar on a terminal, else lines.
"""

import argparse
import contextlib
import csv
import functools
import importlib.util
import json
import os
import pathlib
import re
import sys
import threading
import time
import types
import warnings
from typing import NamedTuple

import jax
import numpy as np

from jreg import _xla, glm, plot
from jreg._checks import MAX_COUNT
from jreg._tables import (
    InputError,
    as_text,
    encode,
    is_missing,
    is_number,
    learn,
    locate,
    numbers_of,
    read_csv,
    read_header,
    reason,
)

DEMO_PENALTIES = {"l1": {}, "elastic_net": {"l1_ratio": 0.5}, "mcp": {}}
FIT_PENALTIES = tuple(p for p in glm.PENALTIES if p != "group_lasso")
# the held-out score per datafit (glm.cross_validate's ``scoring``) and its name
SCORES = {
    "squared": ("mse", "mean squared error"),
    "logistic": ("deviance", "log-loss"),
    "multinomial": ("deviance", "cross-entropy"),
    "poisson": ("deviance", "half Poisson deviance"),
    "huber": ("deviance", "Huber loss"),
}
DEFAULT_SCORE = ("deviance", "mean loss")  # a datafit registered in glm.DATAFITS by a user
CLASSIFIERS = ("logistic", "multinomial")
FEW_VALUES = 10  # a numeric target with at most this many integer values may be classes
DEMO_COLUMNS = {
    "penalty": "",
    "strength": ".4g",
    "selected": "d",
    "precision": ".2f",
    "recall": ".2f",
    "test MSE": ".3f",
    "time (s)": ".1f",
    "rerun (s)": ".2f",
}
FIGSIZE = (8, 5)  # inches; figures are saved at 100 dpi
PROGRESS_EVERY = 5.0  # seconds between progress lines when stderr is not a terminal


def _timed(thunk):
    """``thunk()`` run to completion (not only dispatched) and its wall time in seconds."""
    start = time.perf_counter()
    result = jax.block_until_ready(thunk())
    return result, time.perf_counter() - start


@contextlib.contextmanager
def _every(seconds: float, report):
    """While the block runs, calls ``report(elapsed seconds)`` every ``seconds`` on a thread."""
    stop, start = threading.Event(), time.perf_counter()

    def loop():
        while not stop.wait(seconds):
            report(time.perf_counter() - start)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _run_stages(stages, *, terminal: bool):
    """Runs ``(label, thunk)`` stages in order; returns ``[(result, seconds)]``.

    Each stage is one compiled program (compilation included), so progress is per stage, with
    its elapsed time: on a terminal, a bar on stderr redrawn every second; otherwise a line on
    stderr at the start and the end of each stage and every ``PROGRESS_EVERY`` seconds.
    """

    def draw(done, label):
        bar = "#" * round(20 * done / len(stages))
        print(f"\r[{bar:<20}] {done}/{len(stages)} {label}\033[K", end="", file=sys.stderr)

    def say(done, label, text):
        print(f"jreg: [{done + 1}/{len(stages)}] {label}: {text}", file=sys.stderr, flush=True)

    def tick(done, label, elapsed):
        if terminal:
            draw(done, f"{label} ({elapsed:.0f} s)")
        else:
            say(done, label, f"{elapsed:.0f} s")

    timed = []
    for done, (label, thunk) in enumerate(stages):
        if terminal:
            draw(done, label)
        else:
            say(done, label, "started")
        with _every(1.0 if terminal else PROGRESS_EVERY, functools.partial(tick, done, label)):
            timed.append(_timed(thunk))
        if not terminal:
            say(done, label, f"done in {timed[-1][1]:.1f} s")
    if terminal:
        draw(len(stages), "done")
        print(file=sys.stderr)
    return timed


def _best_index(cv: glm.CrossValidation) -> int:
    return int(np.argmin(np.asarray(cv.scores).mean(axis=0)))


def _write(out: pathlib.Path, figures: dict, texts: dict) -> list[pathlib.Path]:
    """Writes figures (PNG, 100 dpi) and text files into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    for name, figure in figures.items():
        figure.savefig(out / name, dpi=100)
    for name, text in texts.items():
        (out / name).write_text(text)
    return [out / name for name in [*figures, *texts]]


def _check_out(out: pathlib.Path) -> None:
    """Checks, before any work, that the figures and files can be written to ``out``."""
    if importlib.util.find_spec("matplotlib") is None:
        raise InputError('the figures need matplotlib: pip install "jreg[plot]"')
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a directory")


# --------------------------------------------------------------------------------------------
# The demo.


class Problem(NamedTuple):
    """A regression problem with a training and a test split and its true coefficients."""

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    coef: np.ndarray


def sparse_regression(
    *, n_samples=200, n_test=1000, n_features=100, n_informative=10, noise=1.0, seed=0
) -> Problem:
    """Gaussian features; ``n_informative`` random features have coefficients ±[0.5, 2]."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples + n_test, n_features))
    coef = np.zeros(n_features)
    support = rng.choice(n_features, n_informative, replace=False)
    coef[support] = rng.choice([-1.0, 1.0], n_informative) * rng.uniform(0.5, 2, n_informative)
    y = X @ coef + noise * rng.standard_normal(n_samples + n_test)
    return Problem(X[:n_samples], y[:n_samples], X[n_samples:], y[n_samples:], coef)


def _demo_row(name, cv, seconds, rerun_seconds, problem: Problem) -> dict:
    at = _best_index(cv)
    coef, intercept = np.asarray(cv.path.coef)[at], float(np.asarray(cv.path.intercept)[at])
    selected, true = coef != 0, problem.coef != 0
    test_error = np.mean((problem.y_test - problem.X_test @ coef - intercept) ** 2)
    return {
        "penalty": name,
        "strength": float(cv.best_strength),
        "selected": int(selected.sum()),
        "precision": (selected & true).sum() / max(selected.sum(), 1),
        "recall": (selected & true).sum() / true.sum(),
        "test MSE": test_error,
        "time (s)": seconds,
        "rerun (s)": rerun_seconds,
    }


def _table(rows: list[dict], formats: dict[str, str]) -> str:
    """A text table: a header line, then one line per row, each column in its format."""
    cells = [list(formats)] + [[format(row[c], f) for c, f in formats.items()] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(formats))]
    align = ["<", *">" * (len(formats) - 1)]
    return "\n".join(
        "  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(line, align, widths, strict=True))
        for line in cells
    )


def _demo(args) -> int:
    _check_out(args.out)
    n_folds, n_strengths = (3, 30) if args.quick else (5, 100)
    problem = sparse_regression()
    stages = [
        (
            f"cross-validating {name} ({n_folds} folds x {n_strengths} strengths)",
            functools.partial(
                glm.cross_validate,
                problem.X,
                problem.y,
                penalty=name,
                n_folds=n_folds,
                n_strengths=n_strengths,
                scoring="mse",
                **options,
            ),
        )
        for name, options in DEMO_PENALTIES.items()
    ]
    fits = _run_stages(stages, terminal=sys.stderr.isatty())
    reruns = [_timed(thunk)[1] for _, thunk in stages]
    rows = [
        _demo_row(name, cv, seconds, rerun, problem)
        for name, (cv, seconds), rerun in zip(DEMO_PENALTIES, fits, reruns, strict=True)
    ]
    n, p = problem.X.shape
    print(
        f"jreg demo: {n} training rows, {len(problem.y_test)} test rows, {p} features of which "
        f"{np.count_nonzero(problem.coef)} informative\n"
        f"{n_folds}-fold cross-validation over {n_strengths} strengths; each penalty at its best "
        "strength\ntime: the first call, compilation included; rerun: the same call, compiled\n"
    )
    print(_table(rows, DEMO_COLUMNS))
    oracle = np.mean((problem.y_test - problem.X_test @ problem.coef) ** 2)
    print(f"\ntest MSE of the true coefficients (the noise level): {oracle:.4g}")
    true = problem.coef != 0
    path_figure, path_axes = plot._figure(figsize=FIGSIZE, ncols=len(fits))
    cv_figure, cv_axes = plot._figure(figsize=FIGSIZE, ncols=len(fits))
    for name, (cv, _), path_ax, cv_ax in zip(DEMO_PENALTIES, fits, path_axes, cv_axes, strict=True):
        strength = float(cv.best_strength)
        plot.plot_path(cv.path, ax=path_ax, strength=strength, highlight=true, title=name)
        plot.plot_cv(cv, ax=cv_ax, ylabel="held-out MSE", yscale="log", title=name)
    path_figure.suptitle("coefficient paths (in color: the true support)")
    cv_figure.suptitle(f"{n_folds}-fold cross-validation")
    written = _write(args.out, {"paths.png": path_figure, "cv.png": cv_figure}, {})
    print("wrote " + ", ".join(map(str, written)))
    return 0


# --------------------------------------------------------------------------------------------
# Fitting a CSV file.


def _names(text: str | None) -> list[str]:
    return [] if text is None else [name.strip() for name in text.split(",") if name.strip()]


def _check_columns(names, header, option, source) -> None:
    for name in names:
        if name not in header:
            raise InputError(
                f"{option}: column {name!r} not found in {source} (columns: {', '.join(header)})"
            )


def _target(column, args, rows) -> tuple[np.ndarray, str, list[str] | None]:
    """The target (class indices ``0..C-1`` for classifiers, in the sorted order of the labels),
    the datafit and the class labels (None for a regression). Without --datafit, text labels
    are classes (two: logistic, more: multinomial) and numbers a regression (squared)."""
    numbers = numbers_of(column)
    if numbers is None and args.datafit not in (None, *CLASSIFIERS):
        text = np.array([not is_number(v) for v in column])
        where = locate(args.data, args.target, column, rows, text)
        raise InputError(f"{where}: --datafit {args.datafit} needs numbers")
    if numbers is not None and np.isinf(numbers).any():
        where = locate(args.data, args.target, numbers, rows, np.isinf(numbers))
        raise InputError(f"{where} (every value must be a finite number)")
    classes, y = np.unique(column.astype(str) if numbers is None else numbers, return_inverse=True)
    labels = as_text(classes.astype(object if numbers is None else float)).tolist()
    if classes.size == 1:
        raise InputError(f"target {args.target!r} is constant ({labels[0]}): nothing to fit")
    text_datafit = "logistic" if classes.size == 2 else "multinomial"
    datafit = args.datafit or ("squared" if numbers is not None else text_datafit)
    if datafit == "logistic" and classes.size != 2:
        raise InputError(
            f"--datafit logistic needs a target with two classes; {args.target!r} has "
            f"{classes.size} distinct values"
        )
    if datafit == "poisson" and not np.all((numbers >= 0) & (numbers == np.round(numbers))):
        raise InputError(f"--datafit poisson needs non-negative integer counts in {args.target!r}")
    if datafit in CLASSIFIERS:
        return y.astype(float), datafit, labels
    return numbers, datafit, None


def _penalty_factor(text: str | None, names: list[str], learned) -> np.ndarray | None:
    """--penalty-factor NAME=VALUE,...: NAME a feature as named in the output or a categorical
    column (all its dummies); 0 leaves it unpenalized, inf excludes it."""
    if text is None:
        return None
    indices = {name: [j] for j, name in enumerate(names)}
    for feature in learned:
        if "levels" in feature:
            prefix = feature["column"] + "="
            indices[feature["column"]] = [j for j, n in enumerate(names) if n.startswith(prefix)]
    factor = np.ones(len(names))
    for item in _names(text):
        name, _, value = item.rpartition("=")
        if name not in indices:
            shown = ", ".join(list(indices)[:10]) + (", ..." if len(indices) > 10 else "")
            raise InputError(f"--penalty-factor: unknown feature {name!r} (features: {shown})")
        if not (is_number(value) and float(value) >= 0):
            raise InputError(f"--penalty-factor {item}: the factor must be a number >= 0 or inf")
        factor[indices[name]] = float(value)
    return factor


def _check_options(args) -> None:
    if args.n_folds < 2:
        raise InputError(f"--n-folds must be at least 2, got {args.n_folds}")
    if not 2 <= args.n_strengths <= MAX_COUNT:
        raise InputError(f"--n-strengths must be in [2, {MAX_COUNT}], got {args.n_strengths}")
    if not 0 < args.l1_ratio <= 1:
        raise InputError(f"--l1-ratio must be in (0, 1], got {args.l1_ratio}")
    if args.strength_min_ratio is not None and not 0 < args.strength_min_ratio < 1:
        raise InputError(f"--strength-min-ratio must be in (0, 1), got {args.strength_min_ratio}")
    if args.delta is not None and not 0 < args.delta < np.inf:
        raise InputError(f"--delta must be a finite number > 0, got {args.delta}")
    if not 0 < args.tol < 1:
        raise InputError(f"--tol must be in (0, 1), got {args.tol}")
    if args.max_iter < 1:
        raise InputError(f"--max-iter must be at least 1, got {args.max_iter}")
    if args.seed < 0:
        raise InputError(f"--seed must be a non-negative integer, got {args.seed}")
    _check_out(args.out)


def _rows(args) -> tuple[dict[str, np.ndarray], list[str], np.ndarray, int]:
    """The target's and the features' columns on the training rows, the feature columns, the
    training rows' numbers, and the number of data rows in the file."""
    columns = read_csv(args.data)
    header = list(columns)
    if args.target not in header:
        raise InputError(
            f"column {args.target!r} not found in {args.data} (columns: {', '.join(header)})"
        )
    drop, categorical = _names(args.drop), _names(args.categorical)
    _check_columns(drop, header, "--drop", args.data)
    if args.target in drop:
        raise InputError(f"--drop: column {args.target!r} is the target")
    if args.categorical != "auto":
        _check_columns(categorical, header, "--categorical", args.data)
    features = [name for name in header if name != args.target and name not in drop]
    if not features:
        raise InputError(f"{args.data} has no feature columns besides the target")
    target, n = columns[args.target], len(columns[args.target])
    keep = ~is_missing(target)
    if args.missing == "error" and not keep.all():
        where = locate(args.data, args.target, target, np.arange(1, n + 1), ~keep)
        raise InputError(f"{where} (--missing drop or mean leaves such rows out)")
    if args.missing == "drop":
        keep &= ~np.any([is_missing(columns[name]) for name in features], axis=0)
    if not keep.any():
        raise InputError(f"{args.data} has no rows without missing values")
    kept = {name: columns[name][keep] for name in [args.target, *features]}
    return kept, features, np.flatnonzero(keep) + 1, n


def _fit(args) -> int:
    _check_options(args)
    columns, features, rows, n_rows = _rows(args)
    categorical = None if args.categorical == "auto" else _names(args.categorical)
    learned = learn(columns, features, categorical=categorical, source=args.data, rows=rows)
    X, names = encode(columns, learned, missing=args.missing, source=args.data, rows=rows)
    y, datafit, classes = _target(columns[args.target], args, rows)
    smallest = np.bincount(y.astype(int)).min() if classes else y.size
    if smallest < args.n_folds:
        raise InputError(
            f"--n-folds {args.n_folds} needs at least {args.n_folds} rows"
            + (" per class" if classes else "")
            + f", {args.data} has {smallest}"
        )
    penalty_factor = _penalty_factor(args.penalty_factor, names, learned)
    mean, scale = X.mean(axis=0), _standard_deviations(X)
    scale = np.where(scale > 0, scale, 1.0)  # a constant feature stays 0 after centering
    options = {"l1_ratio": args.l1_ratio} if args.penalty == "elastic_net" else {}
    if datafit == "huber":  # default: 1.35 times a robust scale of the target (as sklearn)
        spread = 1.4826 * np.median(np.abs(y - np.median(y)))
        options["delta"] = args.delta or 1.35 * (spread if spread > 0 else np.std(y))
    warning = _classes_warning(y, args.target) if args.datafit is None and not classes else None
    if warning:
        print(f"jreg: warning: {warning}", file=sys.stderr)
    settings = _settings(args, datafit=datafit, l1_ratio=options.get("l1_ratio"))
    model = {
        "features": learned,
        "missing": args.missing,
        "names": names,
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "datafit": datafit,
        "delta": float(options["delta"]) if "delta" in options else None,
        "classes": classes,
    }
    label = (
        f"cross-validating {args.penalty} ({args.n_folds} folds x {args.n_strengths} strengths, "
        f"{X.shape[0]} rows x {X.shape[1]} features)"
    )
    thunk = functools.partial(
        glm.cross_validate,
        (X - mean) / scale,
        y,
        datafit=datafit,
        penalty=args.penalty,
        n_folds=args.n_folds,
        n_strengths=args.n_strengths,
        strength_min_ratio=args.strength_min_ratio,
        seed=args.seed,
        tol=args.tol,
        max_iter=args.max_iter,
        penalty_factor=penalty_factor,
        scoring=SCORES.get(datafit, DEFAULT_SCORE)[0],
        **options,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", glm.ConvergenceWarning)
        try:
            [(cv, _)] = _run_stages([(label, thunk)], terminal=sys.stderr.isatty())
        except ValueError as error:  # glm's checks of the data (X: the features, y: the target)
            raise InputError(f"{args.data}, target {args.target!r}: {error}") from None
    for warning in caught:  # one line each, naming the options
        message = re.sub(r"\b(max_iter|tol)\b", lambda m: "--" + m[1].replace("_", "-"),
                         str(warning.message))  # fmt: skip
        print(f"jreg: warning: {message}", file=sys.stderr)
    result = _result(cv, names, mean, scale, settings, model)
    path_figure = _path_figure(cv, result, names, classes, args.penalty)
    ylabel = f"held-out {result['cv_score_name']}"
    cv_figure = plot.plot_cv(cv, ylabel=ylabel, title=args.penalty)
    print(_fit_summary(result, X.shape, n_rows))
    if result["strength"] == float(np.asarray(cv.strengths)[-1]):
        print(
            "jreg: warning: the best strength is the smallest of the grid; the held-out score "
            "may improve below it (lower --strength-min-ratio)",
            file=sys.stderr,
        )
    written = _write(
        args.out,
        {"paths.png": path_figure, "cv.png": cv_figure},
        {"result.json": json.dumps(result, indent=2) + "\n"},
    )
    print("wrote " + ", ".join(map(str, written)))
    return 0


def _standard_deviations(X: np.ndarray) -> np.ndarray:
    """Per column, computed on the column over its largest |value| (its squares neither
    overflow nor underflow for values of 1e200 or 1e-200)."""
    top = np.max(np.abs(X), axis=0)
    top = np.where(top > 0, top, 1.0)
    return top * (X / top).std(axis=0)


def _classes_warning(y: np.ndarray, target: str) -> str | None:
    """For a regression target that may be classes: at most FEW_VALUES distinct integers."""
    values = np.unique(y)
    if values.size > FEW_VALUES or not np.all(values == np.round(values)):
        return None
    datafit = "logistic" if values.size == 2 else "multinomial"
    return (
        f"target {target!r} has {values.size} distinct integer values, fitted as a regression; "
        f"for classes pass --datafit {datafit}"
    )


def _settings(args, *, datafit: str, l1_ratio: float | None) -> dict:
    """The options of the fit, for ``result.json``."""
    return {
        "data": str(args.data),
        "target": args.target,
        "datafit": datafit,
        "penalty": args.penalty,
        "l1_ratio": l1_ratio,
        "n_folds": args.n_folds,
        "n_strengths": args.n_strengths,
        "strength_min_ratio": args.strength_min_ratio,
        "seed": args.seed,
        "tol": args.tol,
        "max_iter": args.max_iter,
        "penalty_factor": args.penalty_factor,
        "categorical": args.categorical,
        "missing": args.missing,
        "drop": _names(args.drop),
    }


def _result(cv: glm.CrossValidation, names, mean, scale, settings: dict, model: dict) -> dict:
    """The model at the best strength, fitted on standardized features, in the data's units
    (for several classes, coefficients and intercepts per class, keyed by its label), and what
    ``jreg predict`` needs in ``model``."""
    at = _best_index(cv)
    coef = np.asarray(cv.path.coef, dtype=float)[at]  # (indexing a jax array compiles)
    coef = coef / scale.reshape(-1, *[1] * (coef.ndim - 1)) + 0.0  # + 0.0: -0.0 becomes 0.0
    intercept = np.asarray(cv.path.intercept, dtype=float)[at] - mean @ coef
    scores = np.asarray(cv.scores)[:, at]
    if coef.ndim == 2:
        coefficients = {
            label: dict(zip(names, column.tolist(), strict=True))
            for label, column in zip(model["classes"], coef.T, strict=True)
        }
        intercepts = dict(zip(model["classes"], intercept.tolist(), strict=True))
    else:
        coefficients, intercepts = dict(zip(names, coef.tolist(), strict=True)), float(intercept)
    return {
        "strength": float(cv.best_strength),
        "strength_1se": float(cv.strength_1se),
        "coefficients": coefficients,
        "intercept": intercepts,
        "cv_score": float(scores.mean()),
        "cv_score_se": float(scores.std(ddof=1) / np.sqrt(scores.size)),
        "cv_score_name": SCORES.get(settings["datafit"], DEFAULT_SCORE)[1],
        "settings": settings,
        "model": model,
    }


def _path_figure(cv: glm.CrossValidation, result: dict, names, classes, title: str):
    """The coefficient paths (standardized features): one panel, or one per class."""
    if np.ndim(cv.path.coef) == 2:
        figure = plot.plot_path(cv.path, strength=result["strength"], feature_names=names,
                                title=title)  # fmt: skip
        figure.axes[0].set_ylabel("coefficient (standardized features)")
        return figure
    figure, axes = plot._figure(figsize=FIGSIZE, ncols=len(classes))
    for c, (label, ax) in enumerate(zip(classes, axes, strict=True)):
        one = cv.path._replace(coef=np.asarray(cv.path.coef)[..., c])
        plot.plot_path(one, ax=ax, strength=result["strength"], feature_names=names,
                       title=f"{title}: class {label}")  # fmt: skip
    axes[0].set_ylabel("coefficient (standardized features)")
    return figure


def _fit_summary(result: dict, shape: tuple[int, int], n_rows: int) -> str:
    settings, model = result["settings"], result["model"]
    dropped = f" ({n_rows - shape[0]} dropped: missing values)" if shape[0] < n_rows else ""
    lines = [
        f"{settings['data']}: {shape[0]} rows{dropped}, {shape[1]} features, target "
        f"{settings['target']!r} ({settings['datafit']}, {settings['penalty']})",
        f"chosen strength: {result['strength']:.6g} (1se strength: {result['strength_1se']:.6g})",
        f"held-out {result['cv_score_name']} ({settings['n_folds']}-fold CV): "
        f"{result['cv_score']:.6g} ± {result['cv_score_se']:.3g}",
    ]
    if model["classes"]:
        lines.append(
            "classes: " + ", ".join(f"{c} = {label}" for c, label in enumerate(model["classes"]))
        )
    per_class = isinstance(result["intercept"], dict)
    tables = (
        [
            (f" of class {label}", result["coefficients"][label], result["intercept"][label])
            for label in result["intercept"]
        ]  # fmt: skip
        if per_class
        else [("", result["coefficients"], result["intercept"])]
    )
    for which, coefficients, intercept in tables:
        selected = {name: c for name, c in coefficients.items() if c != 0}
        width = max(map(len, [*selected, "intercept"]))
        lines += [
            f"selected features{which}: {len(selected)} of {shape[1]}, coefficients in the data's "
            "units:",
            *(f"  {name:<{width}}  {c:+.6g}" for name, c in selected.items()),
            f"  {'intercept':<{width}}  {intercept:+.6g}",
        ]
    if settings["datafit"] == "logistic":
        lines.append(f"(log-odds of {settings['target']} = {model['classes'][1]})")
    if per_class:
        lines.append("(log-odds of each class, up to a common shift)")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Applying a fitted model to new rows.


def _load_model(directory: pathlib.Path) -> dict:
    """The ``result.json`` that ``jreg fit --out DIRECTORY`` wrote."""
    path = directory / "result.json"
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read {path}: {reason(error)}") from None
    if "model" not in result:
        raise InputError(f"{path} has no model: fit again with this version of jreg")
    return result


def _responses(X: np.ndarray, result: dict) -> dict[str, np.ndarray]:
    """The prediction columns: ``prediction`` (the class label for classifiers, else the mean
    response) and, for classifiers, ``probability_LABEL`` per class; NaN rows give NaN."""
    model = result["model"]
    names, classes = model["names"], model["classes"]
    if isinstance(result["intercept"], dict):
        coef = np.array([[result["coefficients"][c][n] for c in classes] for n in names])
        intercept = np.array([result["intercept"][c] for c in classes])
    else:
        coef = np.array([[result["coefficients"][n]] for n in names])
        intercept = np.array([result["intercept"]])
    z = X @ coef.reshape(len(names), -1) + intercept
    options = types.SimpleNamespace(delta=model["delta"])
    datafit = glm.DATAFITS[model["datafit"]].build(options)
    response = np.asarray(datafit.mean(z), dtype=float)
    if not classes:
        return {"prediction": response[:, 0]}
    labels = np.array(classes, dtype=object)[np.asarray(datafit.classify(response))]
    labels[np.isnan(z).any(axis=1)] = None
    if response.shape[1] == 1:  # logistic: the probability of the second class
        response = np.hstack([1 - response, response])
    probabilities = {f"probability_{c}": p for c, p in zip(classes, response.T, strict=True)}
    return {"prediction": labels, **probabilities}


def _write_csv(out, columns: dict[str, np.ndarray]) -> None:
    """The columns as a CSV file (``out`` None: stdout); missing values (None, NaN) empty."""

    def cell(value):
        if value is None or value != value:
            return ""
        return format(value, ".10g") if isinstance(value, float) else value

    rows = zip(*(column.tolist() for column in columns.values()), strict=True)
    try:
        with open(out, "w", newline="") if out else contextlib.nullcontext(sys.stdout) as file:
            writer = csv.writer(file, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows([cell(value) for value in row] for row in rows)
    except OSError as error:
        raise InputError(f"cannot write {out}: {reason(error)}") from None


def _predict(args) -> int:
    result = _load_model(args.model)
    model = result["model"]
    features = [feature["column"] for feature in model["features"]]
    header = read_header(args.data)
    _check_columns(features, header, "the model's features", args.data)
    others = [name for name in header if name not in features]
    columns = read_csv(args.data, text=others)
    rows = np.arange(1, len(columns[header[0]]) + 1)
    X, _ = encode(columns, model["features"], missing=model["missing"], source=args.data, rows=rows)
    responses = _responses(X, result)
    if np.isnan(X).any():
        print(
            f"jreg: note: {np.isnan(X).any(axis=1).sum()} rows with missing values have no "
            "prediction (the model was fitted with --missing drop)",
            file=sys.stderr,
        )
    _write_csv(args.predictions, {**{name: as_text(columns[name]) for name in others}, **responses})
    if args.predictions:
        print(f"wrote {args.predictions}: {len(rows)} predictions", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------------
# Arguments.


def _add_out(parser: argparse.ArgumentParser, *, what: str, default: pathlib.Path | str) -> None:
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=default,
        help=f"directory for {what} (default: jreg-out)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jreg",
        description="Regularization paths with jreg. Without a command: the demo on built-in data.",
    )
    parser.set_defaults(run=_demo)
    _add_out(parser, what="the figures", default=pathlib.Path("jreg-out"))
    parser.add_argument("--quick", action="store_true", help="fewer folds and strengths")
    commands = parser.add_subparsers(title="commands")
    fit = commands.add_parser(
        "fit",
        help="cross-validate a penalized linear model on a CSV file",
        description="Encodes and standardizes the features, cross-validates the path and "
        "reports the model at the strength with the best held-out score, in the data's units. "
        "The target: text labels (yes/no, True/False, ...) are classes, mapped to 0..C-1 in "
        "sorted order (two: --datafit logistic, more: multinomial); numbers are a regression "
        "(squared) unless --datafit says otherwise (a warning suggests logistic or multinomial "
        f"for at most {FEW_VALUES} distinct integers).",
    )
    fit.set_defaults(run=_fit)
    fit.add_argument("data", type=pathlib.Path, help="CSV file with a header line")
    fit.add_argument("--target", required=True, help="the column to predict")
    fit.add_argument(
        "--datafit",
        choices=list(glm.DATAFITS),
        help="default: logistic or multinomial for text labels (two or more classes), else squared",
    )
    fit.add_argument("--penalty", choices=FIT_PENALTIES, default="l1", help="default: l1")
    fit.add_argument(
        "--l1-ratio", type=float, default=0.5, help="mixing of --penalty elastic_net (default: 0.5)"
    )
    fit.add_argument(
        "--delta",
        type=float,
        help="threshold of --datafit huber in the target's units (default: 1.35 times its "
        "robust standard deviation)",
    )
    fit.add_argument(
        "--categorical",
        default="auto",
        metavar="auto|COL,...",
        help="the columns to one-hot encode, one dummy per level but the first in sorted order, "
        "named COL=LEVEL; a column with one level is left out (default: auto, the columns of "
        "text)",
    )
    fit.add_argument(
        "--missing",
        choices=["error", "drop", "mean"],
        default="error",
        help="missing values (empty, NA, NaN, null): an error; drop the rows with any; or "
        "impute each feature with its mean (a categorical one with its most frequent level) "
        "over the rows fitted; rows with a missing target are dropped by drop and mean "
        "(default: error)",
    )
    fit.add_argument("--drop", metavar="COL,...", help="columns to leave out (such as an ID)")
    fit.add_argument(
        "--penalty-factor",
        metavar="NAME=VALUE,...",
        help="per feature, as named in the output (or a categorical column: all its dummies): "
        "0 leaves it unpenalized, inf excludes it (default: 1)",
    )
    fit.add_argument("--n-folds", type=int, default=5, help="default: 5")
    fit.add_argument("--n-strengths", type=int, default=100, help="grid size (default: 100)")
    fit.add_argument(
        "--strength-min-ratio",
        type=float,
        help="bottom of the grid over its top (default: 1e-3 when rows >= features, else 1e-2)",
    )
    fit.add_argument("--seed", type=int, default=0, help="seed of the fold assignment (default: 0)")
    fit.add_argument(
        "--tol", type=float, default=1e-6, help="solver tolerance, relative (default: 1e-6)"
    )
    fit.add_argument(
        "--max-iter",
        type=int,
        default=10_000,
        help="solver iterations per strength (default: 10000)",
    )
    # SUPPRESS: no default of its own, so that `jreg --out D fit ...` keeps D
    _add_out(fit, what="the figures and result.json", default=argparse.SUPPRESS)
    predict = commands.add_parser(
        "predict",
        help="apply a model fitted by jreg fit to the rows of a CSV file",
        description="Encodes the rows as jreg fit did (levels not seen in fitting: all dummies "
        "0, with a warning) and writes a CSV file: the columns that are not features (an ID, "
        "the target if present) and a prediction column (class label, mean count or value); "
        "for classifiers a probability_LABEL column per class.",
    )
    predict.set_defaults(run=_predict)
    predict.add_argument("model", type=pathlib.Path, help="the --out directory of jreg fit")
    predict.add_argument("data", type=pathlib.Path, help="CSV file with a header line")
    predict.add_argument(
        "--out", dest="predictions", type=pathlib.Path, help="CSV file to write (default: stdout)"
    )
    return parser


def _keep_compiled_programs() -> None:
    """Keeps compiled programs on disk, so that a new process on data of the same shapes
    skips compilation: in ``$JREG_CACHE_DIR`` (default ``~/.cache/jreg``; empty: off), jreg's
    programs whole (:func:`jreg._xla.keep_executables`: no tracing either), and JAX's
    persistent cache (the rest; unless JAX's own ``JAX_COMPILATION_CACHE_DIR`` is set), where
    programs that took over 0.1 s to compile are kept (JAX's default, 1 s, left out an MCP
    path's 0.6 s)."""
    directory = os.environ.get("JREG_CACHE_DIR", str(pathlib.Path.home() / ".cache" / "jreg"))
    if not directory:
        return
    _xla.keep_executables(pathlib.Path(directory) / "executables")
    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", directory)
        if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)


def main(argv=None) -> int:
    """Runs the command line on ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = _parser().parse_args(argv)
    _keep_compiled_programs()
    # a CSV file's numbers are float64, solved in float64: the default tol is within reach
    jax.config.update("jax_enable_x64", True)
    try:
        return args.run(args)
    except InputError as error:
        print(f"jreg: error: {error}", file=sys.stderr)
        return 2
    finally:  # called in a process of the caller's (a notebook, a test): its glm calls are theirs
        _xla.keep_executables(None)


if __name__ == "__main__":
    sys.exit(main())
