"""The command line: the demo, ``jreg fit`` on real CSV files, and one-line errors on bad input."""

import csv
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from sklearn import datasets

from jreg import __main__ as cli
from jreg import glm

FAST = ["--n-folds", "3", "--n-strengths", "20"]
ROOT = pathlib.Path(__file__).parents[1]
NUMBER = r"([-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?)"


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
    # not a terminal: progress lines, a start and an end per stage
    progress = captured.err.splitlines()
    assert all(re.match(r"jreg: \[[123]/3\] cross-validating ", line) for line in progress)
    assert progress[0].endswith("(3 folds x 30 strengths): started")
    assert re.search(r"mcp .*: done in [0-9.]+ s$", progress[-1])
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
    timed = cli._run_stages([("one", lambda: 1), ("two", lambda: 2)], terminal=True)
    assert [result for result, _ in timed] == [1, 2]
    assert stderr.getvalue().count("\r") == 3 and stderr.getvalue().endswith("2/2 done\033[K\n")


def test_progress_lines_when_not_a_terminal(monkeypatch, capsys):
    """A line at the start and end of each stage, and every PROGRESS_EVERY seconds."""
    monkeypatch.setattr(cli, "PROGRESS_EVERY", 0.1)
    stages = [("slow", lambda: time.sleep(0.45) or 1), ("fast", lambda: 2)]
    assert [result for result, _ in cli._run_stages(stages, terminal=False)] == [1, 2]
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "jreg: [1/2] slow: started"
    assert re.fullmatch(r"jreg: \[1/2\] slow: 0 s", lines[1]) and len(lines) >= 6
    assert re.fullmatch(r"jreg: \[1/2\] slow: done in 0\.[45] s", lines[-3])
    assert lines[-2:] == ["jreg: [2/2] fast: started", lines[-1]]


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
        "tol": 1e-6,
        "max_iter": 10_000,
        "penalty_factor": None,
        "categorical": "auto",
        "missing": "error",
        "drop": [],
    }
    assert result["model"]["classes"] == (["0", "1"] if logistic else None)
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
        assert result["model"]["classes"] == ["2", "5", "7"]
        target = np.searchsorted([2.0, 5.0, 7.0], y)
    if datafit == "huber":
        options["delta"] = result["model"]["delta"]
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
    # the command line scales by its own standard deviations (numpy's to rounding): the two
    # solves agree to the solver's accuracy, the multinomial intercepts to about 1e-8
    np.testing.assert_allclose(X @ coef + intercept, (X - mean) / scale @ coef_std + intercept_std,
                               rtol=1e-7, atol=1e-7)  # fmt: skip
    assert np.count_nonzero(coef[:2]) > 0 and png_size(out / "paths.png")[1] == 500

    # jreg predict: the mean response (multinomial: the probabilities and the likeliest class)
    capsys.readouterr()
    assert cli.main(["predict", str(out), str(data)]) == 0
    rows = read_predictions(capsys.readouterr().out)
    z = X @ coef + intercept
    if datafit == "multinomial":
        probabilities = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        got = [[float(row[f"probability_{c}"]) for c in ["2", "5", "7"]] for row in rows]
        np.testing.assert_allclose(got, probabilities, rtol=1e-7)
        labels = np.array(["2", "5", "7"])[probabilities.argmax(axis=1)]
        assert [row["prediction"] for row in rows] == labels.tolist()
    else:
        mean = np.exp(z) if datafit == "poisson" else z
        np.testing.assert_allclose([float(row["prediction"]) for row in rows], mean, rtol=1e-7)
    assert [row["y"] for row in rows] == [str(t) for t in y]  # as written in the file


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
    "tol": (GOOD, ["--target", "y", "--tol", "0"], "--tol must be in (0, 1)"),
    "max iter": (GOOD, ["--target", "y", "--max-iter", "0"], "--max-iter must be at least 1"),
    "infinite value": ([HEADER, [1, "inf", 0], *GOOD[1:]], ["--target", "y"], "column 'b'"),
    "unknown column to drop": (GOOD, ["--target", "y", "--drop", "id"], "--drop: column 'id'"),
    "dropped target": (GOOD, ["--target", "y", "--drop", "y"], "--drop: column 'y' is the target"),
    "unknown categorical": (GOOD, ["--target", "y", "--categorical", "z"], "--categorical: "),
    "text not listed as categorical": (
        [HEADER, ["east", 1, 0], *GOOD[1:]],
        ["--target", "y", "--categorical", "b"],
        "column 'a' of ",
    ),
    "text target for a regression": (
        [HEADER, *[[i, -i, "no" if i % 2 else "yes"] for i in range(10)]],
        ["--target", "y", "--datafit", "squared"],
        "column 'y' of ",
    ),
    "missing target": ([HEADER, [1, 2, ""], *GOOD[1:]], ["--target", "y"], "column 'y' of "),
    "nothing to impute from": (
        [HEADER, *[[i, "", i % 2] for i in range(10)]],
        ["--target", "y", "--missing", "mean"],
        "column 'b' of ",
    ),
    "nothing left after dropping": (
        [HEADER, *[[i, "", i % 2] for i in range(10)]],
        ["--target", "y", "--missing", "drop"],
        "",
    ),
    "unknown penalty factor": (
        GOOD,
        ["--target", "y", "--penalty-factor", "z=0"],
        "--penalty-factor: unknown feature 'z'",
    ),
    "negative penalty factor": (GOOD, ["--target", "y", "--penalty-factor", "a=-1"], "--penalty"),
    "negative seed": (GOOD, ["--target", "y", "--seed", "-1"], "--seed must be a non-negative"),
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


# --------------------------------------------------------------------------------------------
# Real-looking files (an ID column, categoricals, missing values, text labels) and jreg predict.


def customers(n=240, seed=0) -> pd.DataFrame:
    """A churn table: an ID, age, income (some missing), region (some missing), plan, and
    whether the customer churned (yes or no)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(20, 70, n)
    region = rng.choice(["east", "north", "south", "west"], n)
    plan = rng.choice(["basic", "premium"], n)
    z = 0.08 * (age - 45) + 1.5 * (region == "south") - 1.2 * (plan == "premium")
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{1000 + i}" for i in range(n)],
            "age": age,
            "income": rng.lognormal(3, 0.5, n).round(1),
            "region": region,
            "plan": plan,
            "churned": np.where(rng.uniform(size=n) < 1 / (1 + np.exp(-z)), "yes", "no"),
        }
    )
    frame.loc[::17, "income"] = np.nan
    frame.loc[3::29, "region"] = None
    return frame


def encoded(frame: pd.DataFrame) -> pd.DataFrame:
    """The test's own encoding, with pandas: missing values imputed (mean, most frequent level),
    one-hot with the first level dropped, named as jreg names them."""
    X = frame[["age", "income", "region", "plan"]].copy()
    X["income"] = X["income"].fillna(X["income"].mean())
    X["region"] = X["region"].fillna(X["region"].mode()[0])
    X = pd.get_dummies(X, columns=["region", "plan"], drop_first=True, dtype=float)
    return X.rename(columns=lambda name: name.replace("_", "="))


def read_predictions(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("reader", ["pandas", "plain"])
def test_fit_and_predict_a_real_looking_file(reader, tmp_path, capsys, monkeypatch):
    """``jreg predict`` on the training file gives the in-sample probabilities of the
    cross-validated path at the chosen strength, on the test's own encoding of the file; the
    plain reader (without pandas) reads the file as pandas does."""
    frame = customers()
    data, out, predictions = tmp_path / "customers.csv", tmp_path / "model", tmp_path / "p.csv"
    frame.to_csv(data, index=False)
    X = encoded(frame)
    names, X = list(X.columns), X.to_numpy()
    mean, scale = X.mean(axis=0), X.std(axis=0)
    y = (frame["churned"] == "yes").to_numpy(float)
    cv = glm.cross_validate((X - mean) / scale, y, datafit="logistic", n_folds=3, n_strengths=20)
    at = int(np.argmin(np.mean(cv.scores, axis=0)))
    z = (X - mean) / scale @ np.asarray(cv.path.coef[at]) + float(cv.path.intercept[at])
    probability = 1 / (1 + np.exp(-z))

    if reader == "plain":  # import pandas fails: the csv module reads
        monkeypatch.setitem(sys.modules, "pandas", None)
    argv = ["fit", str(data), "--target", "churned", "--drop", "customer_id", "--missing", "mean"]
    assert cli.main([*argv, *FAST, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "target 'churned' (logistic, l1)" in printed and "classes: 0 = no, 1 = yes" in printed
    assert cli.main(["predict", str(out), str(data), "--out", str(predictions)]) == 0
    assert capsys.readouterr().err == f"wrote {predictions}: {len(frame)} predictions\n"
    monkeypatch.undo()

    model = json.loads((out / "result.json").read_text())["model"]
    assert model["names"] == names
    assert (model["datafit"], model["classes"], model["missing"]) == (
        "logistic",
        ["no", "yes"],
        "mean",
    )
    assert model["features"][2] == {
        "column": "region",
        "levels": ["east", "north", "south", "west"],
        "fill": frame["region"].mode()[0],
    }
    assert model["features"][1]["fill"] == pytest.approx(frame["income"].mean())
    rows = read_predictions(predictions.read_text())
    assert list(rows[0]) == [
        "customer_id",
        "churned",
        "prediction",
        "probability_no",
        "probability_yes",
    ]
    assert [row["customer_id"] for row in rows] == list(frame["customer_id"])
    got = np.array([float(row["probability_yes"]) for row in rows])
    np.testing.assert_allclose(got, probability, rtol=1e-7)
    assert [row["prediction"] for row in rows] == list(np.where(probability > 0.5, "yes", "no"))


def test_missing_drop_leaves_rows_out_and_predict_leaves_them_empty(tmp_path, capsys):
    frame = customers()
    data, out = tmp_path / "customers.csv", tmp_path / "model"
    frame.drop(columns="customer_id").to_csv(data, index=False)
    argv = ["fit", str(data), "--target", "churned", "--missing", "drop", *FAST, "--out", str(out)]
    assert cli.main(argv) == 0
    complete = frame[["income", "region"]].notna().all(axis=1).to_numpy()
    assert f"{complete.sum()} rows ({(~complete).sum()} dropped: missing values)" in (
        capsys.readouterr().out
    )
    new = frame.drop(columns=["customer_id", "churned"])
    new.to_csv(tmp_path / "new.csv", index=False)
    assert cli.main(["predict", str(out), str(tmp_path / "new.csv")]) == 0  # to stdout
    captured = capsys.readouterr()
    rows = read_predictions(captured.out)
    assert list(rows[0]) == ["prediction", "probability_no", "probability_yes"]
    assert [row["prediction"] != "" for row in rows] == complete.tolist()
    assert captured.err.startswith(f"jreg: note: {(~complete).sum()} rows with missing values")


def test_text_labels_of_several_classes_are_multinomial(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 3))
    species = np.array(["setosa", "versicolor", "virginica"])[np.digitize(X[:, 0], [-0.5, 0.5])]
    data = write_csv(tmp_path / "iris.csv", ["a", "b", "c", "species"],
                     [[*x, s] for x, s in zip(X.tolist(), species, strict=True)])  # fmt: skip
    out = tmp_path / "model"
    assert cli.main(["fit", str(data), "--target", "species", *FAST, "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["settings"]["datafit"] == "multinomial"
    assert list(result["intercept"]) == ["setosa", "versicolor", "virginica"]
    assert "selected features of class virginica" in capsys.readouterr().out
    assert cli.main(["predict", str(out), str(data)]) == 0
    rows = read_predictions(capsys.readouterr().out)
    labels = ["setosa", "versicolor", "virginica"]
    probabilities = np.array([[float(row[f"probability_{s}"]) for s in labels] for row in rows])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-9)
    predicted = np.array(labels)[probabilities.argmax(axis=1)]
    assert [row["prediction"] for row in rows] == predicted.tolist()
    assert np.mean(predicted == species) > 0.8


def test_a_few_integer_values_warn_that_they_may_be_classes(tmp_path, capsys):
    rows = [[i, (i * 7) % 5, i % 3] for i in range(30)]
    data = write_csv(tmp_path / "data.csv", HEADER, rows)
    assert cli.main(["fit", str(data), "--target", "y", *FAST, "--out", str(tmp_path / "o")]) == 0
    assert (
        "jreg: warning: target 'y' has 3 distinct integer values, fitted as a regression; for "
        "classes pass --datafit multinomial\n"
    ) in capsys.readouterr().err


def test_penalty_factor_and_unknown_levels_in_predict(tmp_path, capsys):
    """inf excludes a feature, 0 on a categorical column leaves all its dummies unpenalized;
    a level not seen in fitting gets dummies 0 (and a warning)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 3))
    color = rng.choice(["blue", "green", "red"], 120)
    y = X @ [2.0, -1.0, 0.0] + 0.1 * (color == "red") + 0.3 * rng.standard_normal(120)
    header = ["a", "b", "c", "color", "y"]
    rows = [[*x, k, t] for x, k, t in zip(X.tolist(), color, y, strict=True)]
    data = write_csv(tmp_path / "data.csv", header, rows)
    out = tmp_path / "model"
    argv = ["fit", str(data), "--target", "y", "--penalty-factor", "a=inf,color=0", *FAST]
    assert cli.main([*argv, "--out", str(out)]) == 0
    coefficients = json.loads((out / "result.json").read_text())["coefficients"]
    assert coefficients["a"] == 0 and coefficients["b"] < 0
    assert coefficients["color=green"] != 0 and coefficients["color=red"] != 0
    new = write_csv(tmp_path / "new.csv", ["id", "c", "b", "a", "color"],
                    [[1, 0.5, 1.0, 3.0, "purple"], [2, 0.5, 1.0, 3.0, "red"]])  # fmt: skip
    capsys.readouterr()
    assert cli.main(["predict", str(out), str(new)]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(
        f"jreg: warning: column 'color' of {new} has the value 'purple' on data row 1, a level"
    )
    rows = read_predictions(captured.out)
    base = json.loads((out / "result.json").read_text())["intercept"]
    base += coefficients["b"] + 0.5 * coefficients["c"]
    assert [row["id"] for row in rows] == ["1", "2"]
    np.testing.assert_allclose([float(row["prediction"]) for row in rows],
                               [base, base + coefficients["color=red"]], rtol=1e-8)  # fmt: skip


def test_predict_bad_input(tmp_path, capsys):
    assert cli.main(["predict", str(tmp_path / "none"), str(tmp_path / "x.csv")]) == 2
    assert capsys.readouterr().err.startswith("jreg: error: cannot read ")
    data = write_csv(tmp_path / "data.csv", HEADER, GOOD[1:])
    assert cli.main(["fit", str(data), "--target", "y", *FAST, "--out", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    new = write_csv(tmp_path / "new.csv", ["a"], [[1]])
    assert cli.main(["predict", str(tmp_path / "m"), str(new)]) == 2
    assert capsys.readouterr().err.startswith(
        "jreg: error: the model's features: column 'b' not found in "
    )


def test_paths_png_gives_each_selected_feature_its_own_color(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 30))
    y = X[:, :15] @ rng.uniform(1, 2, 15) + 0.5 * rng.standard_normal(200)
    names = [f"x{j}" for j in range(30)]
    data = write_csv(tmp_path / "data.csv", [*names, "y"], np.column_stack([X, y]).tolist())
    figures = {}
    write = cli._write
    monkeypatch.setattr(cli, "_write", lambda out, f, t: figures.update(f) or write(out, f, t))
    out = tmp_path / "out"
    assert cli.main(["fit", str(data), "--target", "y", *FAST, "--out", str(out)]) == 0
    selected = [
        n
        for n, c in json.loads((out / "result.json").read_text())["coefficients"].items()
        if c != 0
    ]
    ax = figures["paths.png"].axes[0]
    paths = ax.lines[:30]
    labelled = [line for line in paths if not line.get_label().startswith("_")]
    assert len(selected) > 10 and sorted(line.get_label() for line in labelled) == sorted(selected)
    assert len({to_hex(line.get_color()) for line in labelled}) == len(labelled)
    assert all(line.get_color() == "lightgray" for line in paths if line not in labelled)
    assert len(ax.get_legend().get_texts()) == len(selected) + 1  # and the chosen strength


def test_readme_command_line_example(tmp_path):
    """Each command of the README's console block, run in a directory with its data file,
    prints what the README shows (numbers within 1%: float32 may differ in its last digits)."""
    [block] = re.findall(r"```console\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "customers.csv", tmp_path / "examples")
    parts = re.split(r"^\$ (.*)\n", block, flags=re.M)[1:]
    for command, shown in zip(parts[::2], parts[1::2], strict=True):
        command = re.sub(r"^python ", f"{sys.executable} ", command)
        run = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert len(run.stdout.splitlines()) == len(shown.splitlines()), run.stdout
        for got, expected in zip(run.stdout.splitlines(), shown.splitlines(), strict=True):
            got, expected = re.split(NUMBER, got), re.split(NUMBER, expected)
            assert got[::2] == expected[::2]
            np.testing.assert_allclose(np.array(got[1::2], float), np.array(expected[1::2], float),
                                       rtol=1e-2, atol=1e-3)  # fmt: skip


def test_compiled_programs_are_kept_on_disk_for_the_next_process(tmp_path):
    """With ``JREG_CACHE_DIR`` set, the first process writes its compiled programs there and a
    second one, reading them (every cross-validation program whole: not traced, lowered nor
    compiled again), prints the same result."""
    cache = tmp_path / "cache"
    argv = [sys.executable, "-m", "jreg", "fit", str(ROOT / "examples" / "customers.csv"),
            "--target", "churned", "--drop", "customer_id", "--missing", "mean", *FAST]  # fmt: skip
    env = {**os.environ, "JREG_CACHE_DIR": str(cache), "JAX_LOG_COMPILES": "1"}
    runs = [
        subprocess.run(
            [*argv, "--out", str(tmp_path / f"out{i}")],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )  # fmt: skip
        for i in range(2)
    ]
    assert any((cache / "executables").iterdir())
    assert runs[0].stdout.replace("out0", "out1") == runs[1].stdout
    assert runs[0].stderr.count("Finished XLA compilation of jit(_cross_validation)") > 0
    assert "_cross_validation" not in runs[1].stderr  # nor traced, nor lowered


def test_data_glm_rejects_is_one_error_line(tmp_path, capsys):
    """A target of 1e200 (its squares overflow): glm's error, as one line naming the file and
    the target, exit status 2."""
    data = tmp_path / "data.csv"
    write_csv(data, HEADER, [[i, i % 3, (i + 1.5) * 1e200] for i in range(10)])
    argv = ["fit", str(data), "--target", "y", "--datafit", "squared", "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"jreg: error: {data}, target 'y': y must have its largest |value|")
