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


def test_ftrl_logistic(capsys):
    """Per-step FTRL reaches liblinear's L1 optimum on its support; the paper's L1 fades."""
    runpy.run_path(str(EXAMPLES / "ftrl_logistic.py"), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()[1:]
    rows = {line[:28].strip(): line[28:].split() for line in lines}
    reference, each_step = rows["liblinear, C = 1 / l1"], rows["FTRL, each step, 1000 steps"]
    assert each_step[:2] == reference[:2] == ["10", "10/10"]
    assert float(each_step[3]) < 1e-6
    assert int(rows["FTRL, one online pass"][0]) < 20 < int(rows["FTRL, paper's l1, 1000 steps"][0])


def test_l0_gates(capsys):
    """Stronger L0 closes more gates; accuracy stays high; no gate closes without it."""
    runpy.run_path(str(EXAMPLES / "l0_gates.py"), run_name="__main__")
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert len(rows) == 4 and min(float(row[1]) for row in rows) > 0.95
    kept = [float(row[4].rstrip("%")) for row in rows]
    assert kept[0] == 100 and kept == sorted(kept, reverse=True) and kept[-1] < 60
