"""The command line: the demo, ``jreg fit`` on real CSV files, and one-line errors on bad input."""

import csv
import io
import json
import re

import numpy as np
import pytest
from sklearn import datasets

from jreg import __main__ as cli
from jreg import glm

FAST = ["--n-folds", "3", "--n-strengths", "20"]


def write_csv(path, header, rows):
    with open(path, "w", newline="") as file:
        csv.writer(file).writerows([header, *rows])
    return path


def png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


@pytest.fixture(scope="module", params=["diabetes", "breast_cancer"])
def dataset(request, tmp_path_factory):
    """A real data set as a CSV file: features and target, the datafit and the options."""
    if request.param == "diabetes":
        bunch = datasets.load_diabetes(scaled=False)  # the original units
        options = ["--penalty", "l1"]
    else:
        bunch = datasets.load_breast_cancer()
        options = ["--datafit", "logistic", "--penalty", "elastic_net", "--l1-ratio", "0.7"]
    names = list(bunch.feature_names)
    path = tmp_path_factory.mktemp("data") / f"{request.param}.csv"
    write_csv(path, [*names, "target"], np.column_stack([bunch.data, bunch.target]).tolist())
    return path, bunch.data, bunch.target.astype(float), names, options


def test_demo(tmp_path, capsys):
    assert cli.main(["--quick", "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # no progress bar when stderr is not a terminal
    lines = captured.out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("penalty"))
    assert re.split(r"\s{2,}", lines[header]) == list(cli.DEMO_COLUMNS)
    table = {line.split()[0]: line.split()[1:] for line in lines[header + 1 : header + 4]}
    assert list(table) == ["l1", "elastic_net", "mcp"]
    for strength, _, precision, recall, test_error, seconds, _ in table.values():
        assert float(strength) > 0 and float(seconds) > 0
        assert float(recall) == 1.0  # an easy problem: every true feature is found
        assert 0 < float(precision) <= 1 and 1 <= float(test_error) < 2  # noise variance: 1
    assert float(table["mcp"][2]) > float(table["l1"][2])  # MCP: fewer false positives
    for name in ["paths.png", "cv.png"]:
        assert png_size(tmp_path / "out" / name) == (800, 500)


@pytest.mark.parametrize(
    "argv, out",
    [
        (["--out", "D", "fit", "x.csv", "--target", "t"], "D"),  # before the command: kept
        (["fit", "x.csv", "--target", "t", "--out", "D"], "D"),
        (["fit", "x.csv", "--target", "t"], "jreg-out"),
        (["--out", "D"], "D"),
        ([], "jreg-out"),
    ],
)
def test_out_is_read_before_or_after_the_command(argv, out):
    assert str(cli._parser().parse_args(argv).out) == out


def test_progress_bar_on_a_terminal(monkeypatch):
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    timed = cli._run_stages([("one", lambda: 1), ("two", lambda: 2)], show=True)
    assert [result for result, _ in timed] == [1, 2]
    assert stderr.getvalue().count("\r") == 3 and stderr.getvalue().endswith("2/2 done\033[K\n")


def test_fit(dataset, tmp_path, capsys):
    path, X, y, names, options = dataset
    out = tmp_path / "out"
    assert (
        cli.main(["fit", str(path), "--target", "target", *FAST, *options, "--out", str(out)]) == 0
    )
    result = json.loads((out / "result.json").read_text())
    logistic = "logistic" in options

    # the same cross-validation on the same standardized data
    mean, scale = X.mean(axis=0), X.std(axis=0)
    penalty = "elastic_net" if logistic else "l1"
    kwargs = {"datafit": "logistic", "l1_ratio": 0.7} if logistic else {"scoring": "mse"}
    cv = glm.cross_validate(
        (X - mean) / scale, y, n_folds=3, n_strengths=20, penalty=penalty, **kwargs
    )
    at = int(np.argmin(np.mean(cv.scores, axis=0)))
    assert result["strength"] == pytest.approx(float(cv.best_strength))
    assert result["strength_1se"] == pytest.approx(float(cv.strength_1se))
    assert result["cv_score"] == pytest.approx(float(np.mean(cv.scores[:, at])))
    coef = np.array([result["coefficients"][name] for name in names])
    np.testing.assert_allclose(coef * scale, cv.path.coef[at], rtol=1e-9, atol=1e-12)
    # in the data's units: predictions from the raw features are the standardized model's
    standardized = (X - mean) / scale @ cv.path.coef[at] + cv.path.intercept[at]
    np.testing.assert_allclose(X @ coef + result["intercept"], standardized, rtol=1e-9, atol=1e-9)
    assert np.count_nonzero(coef) > 0

    assert result["settings"] == {
        "data": str(path),
        "target": "target",
        "datafit": kwargs.get("datafit", "squared"),
        "penalty": penalty,
        "l1_ratio": kwargs.get("l1_ratio"),
        "n_folds": 3,
        "n_strengths": 20,
        "strength_min_ratio": None,
        "seed": 0,
        "positive_class": 1.0 if logistic else None,
    }
    printed = capsys.readouterr().out
    listed = [line.split("  ")[1].strip() for line in printed.splitlines() if line[:2] == "  "]
    assert listed == [name for name, c in zip(names, coef, strict=True) if c != 0] + ["intercept"]
    assert f"chosen strength: {result['strength']:.6g}" in printed
    assert sorted(p.name for p in out.iterdir()) == ["cv.png", "paths.png", "result.json"]


def other_family(datafit, rng):
    """Features and a target of ``datafit`` (multinomial: three classes labelled 2, 5, 7)."""
    X = rng.standard_normal((150, 4))
    z = X @ np.array([1.0, -1.0, 0.0, 0.0])
    if datafit == "multinomial":
        return X, np.array([2.0, 5.0, 7.0])[
            np.digitize(z + 0.3 * rng.standard_normal(150), [-0.7, 0.7])
        ]
    if datafit == "poisson":
        return X, rng.poisson(np.exp(0.5 * z)).astype(float)
    return X, z + rng.standard_t(2, 150)  # huber: heavy tails


@pytest.mark.parametrize("datafit", ["multinomial", "poisson", "huber"])
def test_fit_other_families(datafit, tmp_path, capsys):
    """The result is the cross-validation's fit at the chosen strength, in the data's units:
    for several classes one column of coefficients and one intercept per class, keyed by label."""
    X, y = other_family(datafit, np.random.default_rng(0))
    names = ["a", "b", "c", "d"]
    data = write_csv(tmp_path / "data.csv", [*names, "y"], np.column_stack([X, y]).tolist())
    out = tmp_path / "out"
    argv = ["fit", str(data), "--target", "y", "--datafit", datafit, *FAST, "--out", str(out)]
    assert cli.main(argv) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["cv_score_name"] == cli.SCORES[datafit][1]
    mean, scale = X.mean(axis=0), X.std(axis=0)
    target, options = y, {}
    if datafit == "multinomial":
        assert result["settings"]["classes"] == [2.0, 5.0, 7.0]
        target = np.searchsorted([2.0, 5.0, 7.0], y)
    if datafit == "huber":
        options["delta"] = result["settings"]["delta"]
        assert options["delta"] > 0
    cv = glm.cross_validate((X - mean) / scale, target, datafit=datafit, n_folds=3,
                            n_strengths=20, **options)  # fmt: skip
    at = int(np.argmin(np.mean(cv.scores, axis=0)))
    assert result["strength"] == pytest.approx(float(cv.best_strength))
    coef_std, intercept_std = np.asarray(cv.path.coef[at]), np.asarray(cv.path.intercept[at])
    if datafit == "multinomial":
        coef = np.array([[result["coefficients"][c][n] for n in names] for c in ["2", "5", "7"]]).T
        intercept = np.array([result["intercept"][c] for c in ["2", "5", "7"]])
        assert "selected features of class 5" in capsys.readouterr().out
    else:
        coef = np.array([result["coefficients"][n] for n in names])
        intercept = result["intercept"]
    np.testing.assert_allclose(coef * scale.reshape(-1, *[1] * (coef.ndim - 1)), coef_std,
                               rtol=1e-9, atol=1e-12)  # fmt: skip
    np.testing.assert_allclose(X @ coef + intercept, (X - mean) / scale @ coef_std + intercept_std,
                               rtol=1e-9, atol=1e-9)  # fmt: skip
    assert np.count_nonzero(coef[:2]) > 0 and png_size(out / "paths.png")[1] == 500


HEADER = ["a", "b", "y"]
GOOD = [HEADER, *[[1, 2, 0], [2, 1, 1], [3, 5, 0]] * 4]
LOGISTIC = ["--target", "y", "--datafit", "logistic"]
BAD_INPUTS = {  # name: (the CSV's rows, None for no file; the options; the message's start)
    "missing file": (None, ["--target", "y"], "cannot read"),
    "unknown column": (GOOD, ["--target", "foo"], "column 'foo' not found in"),
    "missing value": ([HEADER, [1, "", 3], *[[1, 2, 3]] * 9], ["--target", "y"], "column 'b'"),
    "non-numeric": ([HEADER, *[[1, 2, 3]] * 9, ["x", 2, 3]], ["--target", "y"], "column 'a'"),
    "ragged row": ([HEADER, *[[1, 2, 3]] * 9, [1, 2]], ["--target", "y"], ""),
    "constant target": (
        [HEADER, *[[i, -i, 4] for i in range(10)]],
        ["--target", "y"],
        "target 'y' is constant",
    ),
    "non-binary target": (
        [HEADER, *[[i, -i, i % 3] for i in range(10)]],
        LOGISTIC,
        "--datafit logistic needs a target with two classes",
    ),
    "one class for multinomial": (
        [HEADER, *[[i, -i, 3] for i in range(10)]],
        ["--target", "y", "--datafit", "multinomial"],
        "target 'y' is constant",
    ),
    "negative counts": (
        [HEADER, *[[i, -i, i - 2] for i in range(10)]],
        ["--target", "y", "--datafit", "poisson"],
        "--datafit poisson needs non-negative integer counts",
    ),
    "huber delta": (GOOD, ["--target", "y", "--datafit", "huber", "--delta", "0"], "--delta"),
    "fewer rows than folds": (GOOD, ["--target", "y", "--n-folds", "20"], "--n-folds 20"),
    "fewer rows per class than folds": (
        [HEADER, *[[i, -i, int(i == 0)] for i in range(10)]],
        [*LOGISTIC, "--n-folds", "3"],
        "--n-folds 3 needs at least 3 rows per class",
    ),
    "no features": ([["y"], [1], [2]], ["--target", "y"], ""),
    "l1 ratio": (GOOD, ["--target", "y", "--l1-ratio", "1.5"], "--l1-ratio"),
    "one fold": (GOOD, ["--target", "y", "--n-folds", "1"], "--n-folds"),
    "grid ratio": (GOOD, ["--target", "y", "--strength-min-ratio", "2"], "--strength-min-ratio"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, capsys):
    rows, options, message = BAD_INPUTS[case]
    data = tmp_path / "data.csv"
    if rows is not None:
        write_csv(data, rows[0], rows[1:])
    out = tmp_path / "out"
    assert cli.main(["fit", str(data), *options, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith(f"jreg: error: {message}")
    assert not out.exists()


def test_unknown_column_lists_the_columns(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default --out, jreg-out, stays unwritten
    data = write_csv(tmp_path / "data.csv", ["a", "b", "c"], [[1, 2, 3]] * 6)
    assert cli.main(["fit", str(data), "--target", "foo"]) == 2
    assert capsys.readouterr().err == (
        f"jreg: error: column 'foo' not found in {data} (columns: a, b, c)\n"
    )
    assert not (tmp_path / "jreg-out").exists()


def test_missing_matplotlib_is_an_error_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    assert cli.main(["--out", str(tmp_path / "out")]) == 2
    assert (
        capsys.readouterr().err
        == 'jreg: error: the figures need matplotlib: pip install "jreg[plot]"\n'
    )
    assert not (tmp_path / "out").exists()
