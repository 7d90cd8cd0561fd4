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
