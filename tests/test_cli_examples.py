"""Each example runs in quick mode, writes its figure and prints its claim.

The examples start together (module fixture) and run as concurrent subprocesses, since most of
their time is single-threaded compilation; each test waits for its own.
"""

import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"
CLAIMS = {
    "lasso_path": "l1: features enter in the order bmi, s5, bp, s3, sex, s6, s1, s4",
    "l1_vs_l2_geometry": "the L1 solution has an exact zero: w[1] == 0.0",
    "bias_variance": "best strength",
    "stability_selection": "): [0, 10, 20, 30, 40]",
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("examples")
    processes = {
        name: subprocess.Popen(
            [sys.executable, str(EXAMPLES / f"{name}.py"), "--quick", "--out", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in CLAIMS
    }
    yield out, processes
    for process in processes.values():
        process.kill()
        process.communicate()


@pytest.mark.parametrize("name", list(CLAIMS))
def test_example(name, runs):
    out, processes = runs
    stdout, stderr = processes[name].communicate(timeout=300)
    assert processes[name].returncode == 0, stderr
    assert CLAIMS[name] in stdout
    assert (out / f"{name}.png").stat().st_size > 10_000
