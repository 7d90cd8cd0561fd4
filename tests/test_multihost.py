"""Two processes x two CPU devices (``jax.distributed``, gloo collectives) equal one process."""

import importlib.util
import os
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

EXAMPLE = pathlib.Path(__file__).parent.parent / "examples" / "multihost_sweep.py"
TIMEOUT_S = 120  # a hung coordinator fails the test instead of hanging it


def _example():
    spec = importlib.util.spec_from_file_location("multihost_sweep", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run_two_processes(out: pathlib.Path) -> None:
    """The example in 2 processes of 2 CPU devices each; fails on an error or a timeout."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    coordinator = f"127.0.0.1:{_free_port()}"
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                str(EXAMPLE),
                "--coordinator",
                coordinator,
                "--num-processes",
                "2",
                "--process-id",
                str(i),
                "--out",
                str(out),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    try:
        logs = [process.communicate(timeout=TIMEOUT_S)[0] for process in processes]
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
        pytest.fail(f"the 2 processes did not finish within {TIMEOUT_S} s")
    for process, log in zip(processes, logs, strict=True):
        assert process.returncode == 0, log[-3000:]


def test_two_hosts_equal_one_process(tmp_path):
    out = tmp_path / "gathered.npz"
    _run_two_processes(out)
    gathered = np.load(out)
    example = _example()
    assert len(jax.devices()) == 4  # the suite's forced CPU devices: the same 4-device mesh
    single = example.run(Mesh(np.asarray(jax.devices()), ("hosts",)))
    assert gathered["sweep"].shape == (example.STRENGTHS.size, 5)
    assert gathered["scores"].shape == (5, 10)
    for name, value in single.items():
        np.testing.assert_allclose(gathered[name], value, rtol=0, atol=1e-10, err_msg=name)
    # the sweep against its definition: the ridge normal equations at each strength
    X, y = example.problem()
    for strength, coef in zip(example.STRENGTHS, gathered["sweep"], strict=True):
        np.testing.assert_allclose(X.T @ (X @ coef - y) + strength * coef, 0, atol=1e-9)
