"""The examples run (in their --quick form) and print what they promise."""

import pathlib
import runpy
import sys

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def test_sparse_mlp_quick(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["sparse_mlp.py", "--quick"])
    runpy.run_path(str(EXAMPLES / "sparse_mlp.py"), run_name="__main__")
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert len(rows) == 4
    accuracy = [float(row[1]) for row in rows]
    zeros = [float(row[2].rstrip("%")) for row in rows]
    assert min(accuracy) > 0.8
    assert zeros == sorted(zeros) and zeros[-1] > 50


def test_hypergradient_quick(monkeypatch, capsys, tmp_path):
    """Adam on the hypergradients lowers the validation error below LassoCV's strength (its
    starting point), and the figure is written."""
    argv = ["hypergradient.py", "--quick", "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(EXAMPLES / "hypergradient.py"), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    rows = {line[:24].strip(): line[24:].split() for line in lines[2:]}
    assert set(rows) == {"LassoCV (one strength)", "random search", "Adam on hypergradients"}
    validation = {name: float(row[0]) for name, row in rows.items()}
    assert validation["Adam on hypergradients"] < 0.95 * validation["LassoCV (one strength)"]
    assert (tmp_path / "hypergradient.png").stat().st_size > 10_000
