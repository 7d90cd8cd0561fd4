"""The command line: ``python -m jreg`` (also installed as the ``jreg`` command).

``jreg [--out DIR] [--quick]`` runs the demo: a sparse regression problem with a known support,
cross-validated L1, elastic-net and MCP paths, a table of the chosen strength, support recovery,
held-out error and time per penalty, and the figures ``paths.png`` and ``cv.png`` in DIR. The
penalty is static configuration of the :mod:`jreg.glm` solver, so the three penalties are three
compiled programs: the demo makes one :func:`jreg.glm.cross_validate` call per penalty, each of
which runs all its folds and the full-data path as one compiled program.

``jreg fit DATA.csv --target COLUMN`` standardizes the features of a CSV file, cross-validates a
path and reports the chosen model in the data's units (also in ``DIR/result.json``). Bad input
is one line on stderr and exit status 2; DIR is written only once everything has succeeded.

On a terminal, a progress bar on stderr advances per compiled program.
"""

import argparse
import csv
import functools
import importlib.util
import json
import pathlib
import sys
import time
from typing import NamedTuple

import jax
import numpy as np

from jreg import glm, plot

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


class InputError(Exception):
    """Bad input: reported as one ``jreg: error: ...`` line on stderr, exit status 2."""


def _timed(thunk):
    """``thunk()`` run to completion (not only dispatched) and its wall time in seconds."""
    start = time.perf_counter()
    result = jax.block_until_ready(thunk())
    return result, time.perf_counter() - start


def _run_stages(stages, *, show):
    """Runs ``(label, thunk)`` stages in order; returns ``[(result, seconds)]``.

    With ``show``, draws a bar over the stages on stderr: each stage is one compiled program,
    so the bar moves per stage, not per fold or strength.
    """

    def draw(done, label):
        bar = "#" * round(20 * done / len(stages))
        print(f"\r[{bar:<20}] {done}/{len(stages)} {label}\033[K", end="", file=sys.stderr)

    timed = []
    for done, (label, thunk) in enumerate(stages):
        if show:
            draw(done, label)
        timed.append(_timed(thunk))
    if show:
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
    coef, intercept = np.asarray(cv.path.coef[at]), float(cv.path.intercept[at])
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
    fits = _run_stages(stages, show=sys.stderr.isatty())
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


def _read_csv(source: pathlib.Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the non-empty rows, each with its line number."""
    try:
        with open(source, newline="", encoding="utf-8-sig") as file:  # -sig: skip a BOM
            reader = csv.reader(file)
            header = [name.strip() for name in next(reader, [])]
            numbered = [(reader.line_num, row) for row in reader if row]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        reason = getattr(error, "strerror", None) or error
        raise InputError(f"cannot read {source}: {reason}") from None
    if not numbered:
        raise InputError(f"{source} has no data rows (a header line, then one row per sample)")
    if len(set(header)) != len(header):
        raise InputError(f"{source} has duplicate column names: {', '.join(header)}")
    for line, row in numbered:
        if len(row) != len(header):
            raise InputError(
                f"{source}, line {line}: {len(row)} fields, the header has {len(header)}"
            )
    return header, numbered


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return np.nan


def _numeric(header, numbered, source) -> np.ndarray:
    """The rows as floats; an error names the first missing or non-numeric cell."""
    table = np.array([[_to_float(text) for text in row] for _, row in numbered])
    bad = np.argwhere(~np.isfinite(table))
    if bad.size:
        i, j = bad[0]
        line, row = numbered[i]
        text = row[j].strip()
        problem = "a missing value" if text.lower() in ("", "nan", "na") else f"the value {text!r}"
        raise InputError(
            f"column {header[j]!r} of {source} has {problem} on line {line} "
            "(every value must be a finite number)"
        )
    return table


def _load(args) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features, target and feature names of the CSV file; checks them against the options."""
    header, numbered = _read_csv(args.data)
    if args.target not in header:
        raise InputError(
            f"column {args.target!r} not found in {args.data} (columns: {', '.join(header)})"
        )
    if len(header) < 2:
        raise InputError(f"{args.data} has no feature columns besides the target")
    table = _numeric(header, numbered, args.data)
    target = header.index(args.target)
    y = table[:, target]
    X = np.delete(table, target, axis=1)
    names = [name for name in header if name != args.target]
    classes, counts = np.unique(y, return_counts=True)
    if classes.size == 1:
        raise InputError(f"target {args.target!r} is constant ({classes[0]:g}): nothing to fit")
    if args.datafit == "logistic" and classes.size != 2:
        raise InputError(
            f"--datafit logistic needs a target with two classes; {args.target!r} has "
            f"{classes.size} distinct values"
        )
    if args.datafit == "poisson" and not np.all((y >= 0) & (y == np.round(y))):
        raise InputError(f"--datafit poisson needs non-negative integer counts in {args.target!r}")
    classifier = args.datafit in CLASSIFIERS
    smallest = counts.min() if classifier else y.size
    if smallest < args.n_folds:
        raise InputError(
            f"--n-folds {args.n_folds} needs at least {args.n_folds} rows"
            + (" per class" if classifier else "")
            + f", {args.data} has {smallest}"
        )
    return X, y, names


def _check_options(args) -> None:
    if args.n_folds < 2:
        raise InputError(f"--n-folds must be at least 2, got {args.n_folds}")
    if args.n_strengths < 2:
        raise InputError(f"--n-strengths must be at least 2, got {args.n_strengths}")
    if not 0 < args.l1_ratio <= 1:
        raise InputError(f"--l1-ratio must be in (0, 1], got {args.l1_ratio}")
    if args.strength_min_ratio is not None and not 0 < args.strength_min_ratio < 1:
        raise InputError(f"--strength-min-ratio must be in (0, 1), got {args.strength_min_ratio}")
    if args.delta is not None and not 0 < args.delta < np.inf:
        raise InputError(f"--delta must be a finite number > 0, got {args.delta}")
    _check_out(args.out)


def _result(cv: glm.CrossValidation, names, mean, scale, settings: dict, classes) -> dict:
    """The model at the best strength, fitted on standardized features, in the data's units
    (for several classes, coefficients and intercepts per class, keyed by its label)."""
    at = _best_index(cv)
    coef = np.asarray(cv.path.coef[at])
    coef = coef / scale.reshape(-1, *[1] * (coef.ndim - 1)) + 0.0  # + 0.0: -0.0 becomes 0.0
    intercept = np.asarray(cv.path.intercept[at]) - mean @ coef
    scores = np.asarray(cv.scores)[:, at]
    if coef.ndim == 2:
        labels = [format(label, "g") for label in classes]
        coefficients = {
            label: dict(zip(names, column.tolist(), strict=True))
            for label, column in zip(labels, coef.T, strict=True)
        }
        intercepts = dict(zip(labels, intercept.tolist(), strict=True))
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
    }


def _fit(args) -> int:
    _check_options(args)
    X, y, names = _load(args)
    logistic, elastic_net = args.datafit == "logistic", args.penalty == "elastic_net"
    classes = np.unique(y)
    positive = classes[-1]
    if logistic:
        y = (y == positive).astype(float)
    elif args.datafit == "multinomial":
        y = np.searchsorted(classes, y)  # labels 0..C-1, in the order of the classes' values
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)  # a constant feature stays 0 after centering
    options = {"l1_ratio": args.l1_ratio} if elastic_net else {}
    if args.datafit == "huber":  # default: 1.35 times a robust scale of the target (as sklearn)
        spread = 1.4826 * np.median(np.abs(y - np.median(y)))
        options["delta"] = args.delta or 1.35 * (spread if spread > 0 else np.std(y))
    settings = {
        "data": str(args.data),
        "target": args.target,
        "datafit": args.datafit,
        "penalty": args.penalty,
        "l1_ratio": options.get("l1_ratio"),
        "n_folds": args.n_folds,
        "n_strengths": args.n_strengths,
        "strength_min_ratio": args.strength_min_ratio,
        "seed": args.seed,
        "positive_class": float(positive) if logistic else None,
    }
    if args.datafit == "multinomial":
        settings["classes"] = classes.tolist()
    if "delta" in options:
        settings["delta"] = float(options["delta"])
    label = f"cross-validating {args.penalty} ({args.n_folds} folds x {args.n_strengths} strengths)"
    thunk = functools.partial(
        glm.cross_validate,
        (X - mean) / scale,
        y,
        datafit=args.datafit,
        penalty=args.penalty,
        n_folds=args.n_folds,
        n_strengths=args.n_strengths,
        strength_min_ratio=args.strength_min_ratio,
        seed=args.seed,
        scoring=SCORES.get(args.datafit, DEFAULT_SCORE)[0],
        **options,
    )
    [(cv, _)] = _run_stages([(label, thunk)], show=sys.stderr.isatty())
    result = _result(cv, names, mean, scale, settings, classes)
    path_figure = _path_figure(cv, result, names, classes, args.penalty)
    ylabel = f"held-out {result['cv_score_name']}"
    cv_figure = plot.plot_cv(cv, ylabel=ylabel, title=args.penalty)
    print(_fit_summary(result, X.shape))
    if result["strength"] == float(cv.strengths[-1]):
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


def _path_figure(cv: glm.CrossValidation, result: dict, names, classes, title: str):
    """The coefficient paths (standardized features): one panel, or one per class."""
    if np.ndim(cv.path.coef) == 2:
        figure = plot.plot_path(cv.path, strength=result["strength"], feature_names=names,
                                title=title)  # fmt: skip
        figure.axes[0].set_ylabel("coefficient (standardized features)")
        return figure
    figure, axes = plot._figure(figsize=FIGSIZE, ncols=len(classes))
    for c, (label, ax) in enumerate(zip(classes, axes, strict=True)):
        one = cv.path._replace(coef=cv.path.coef[..., c])
        plot.plot_path(one, ax=ax, strength=result["strength"], feature_names=names,
                       title=f"{title}: class {label:g}")  # fmt: skip
    axes[0].set_ylabel("coefficient (standardized features)")
    return figure


def _fit_summary(result: dict, shape: tuple[int, int]) -> str:
    settings = result["settings"]
    lines = [
        f"{settings['data']}: {shape[0]} rows, {shape[1]} features, target "
        f"{settings['target']!r} ({settings['datafit']}, {settings['penalty']})",
        f"chosen strength: {result['strength']:.6g} (1se strength: {result['strength_1se']:.6g})",
        f"held-out {result['cv_score_name']} ({settings['n_folds']}-fold CV): "
        f"{result['cv_score']:.6g} ± {result['cv_score_se']:.3g}",
    ]
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
    if settings["positive_class"] is not None:
        lines.append(f"(log-odds of target = {settings['positive_class']:g})")
    if per_class:
        lines.append("(log-odds of each class, up to a common shift)")
    return "\n".join(lines)


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
        description="Standardizes the features, cross-validates the path and reports the model "
        "at the strength with the best held-out score, in the data's units.",
    )
    fit.set_defaults(run=_fit)
    fit.add_argument("data", type=pathlib.Path, help="CSV file with a header line")
    fit.add_argument("--target", required=True, help="the column to predict")
    fit.add_argument(
        "--datafit",
        choices=list(glm.DATAFITS),
        default="squared",
        help="default: squared; multinomial for a target with several classes",
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
    fit.add_argument("--n-folds", type=int, default=5, help="default: 5")
    fit.add_argument("--n-strengths", type=int, default=100, help="grid size (default: 100)")
    fit.add_argument(
        "--strength-min-ratio",
        type=float,
        help="bottom of the grid over its top (default: 1e-3 when rows >= features, else 1e-2)",
    )
    fit.add_argument("--seed", type=int, default=0, help="seed of the fold assignment (default: 0)")
    # SUPPRESS: no default of its own, so that `jreg --out D fit ...` keeps D
    _add_out(fit, what="the figures and result.json", default=argparse.SUPPRESS)
    return parser


def main(argv=None) -> int:
    """Runs the command line on ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except InputError as error:
        print(f"jreg: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
