"""Tests of jreg.sweep: one compiled program, equal to a Python loop, chunked and sharded."""

import contextlib
import io
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import jreg
from jreg import prox
from jreg.sweep import _compiled


def _features(h):
    """A pytree-valued function of a pytree of hyperparameters."""
    x = jnp.linspace(-1.0, 1.0, 5)
    return {"curve": jnp.tanh(h["scale"] * x) + h["shift"], "norm": jnp.sum((h["scale"] * x) ** 2)}


def _hyperparams(k, seed=0):
    rng = np.random.default_rng(seed)
    return {"scale": rng.uniform(0.1, 3.0, k), "shift": rng.standard_normal(k)}


def _loop(fn, hyperparams):
    k = len(jax.tree.leaves(hyperparams)[0])
    results = [fn(jax.tree.map(lambda leaf, i=i: leaf[i], hyperparams)) for i in range(k)]
    return jax.tree.map(lambda *leaves: np.stack(leaves), *results)


def _assert_tree_allclose(actual, expected):
    jax.tree.map(lambda a, e: np.testing.assert_allclose(a, e, rtol=1e-12), actual, expected)


def _mesh_2x2():
    return Mesh(np.asarray(jax.devices()[:4]).reshape(2, 2), ("a", "b"))


def _one_device_mesh():
    return Mesh(np.asarray(jax.devices()[:1]), ("x",))


@pytest.mark.parametrize("k", [1, 7, 8])
@pytest.mark.parametrize("batch_size", [None, 1, 3, 100])
@pytest.mark.parametrize("mesh", [None, _mesh_2x2, _one_device_mesh])
def test_sweep_equals_python_loop(k, batch_size, mesh):
    hyperparams = _hyperparams(k)
    result = jreg.sweep(_features, hyperparams, batch_size=batch_size, mesh=mesh and mesh())
    assert jax.tree.map(jnp.shape, result) == {"curve": (k, 5), "norm": (k,)}
    _assert_tree_allclose(result, _loop(_features, hyperparams))


@contextlib.contextmanager
def _counting_compilations():
    """Counts XLA compilations (jax's backend-compile events) inside the block."""
    count = [0]

    def listener(event, duration, **kwargs):
        count[0] += event == "/jax/core/compile/backend_compile_duration"

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield count
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def test_chunks_share_one_compiled_program_and_new_values_do_not_recompile():
    traces = []

    def fn(h):  # a fresh function object: compiled anew
        traces.append(h)
        return _features(h)

    before = _compiled._cache_size()
    first = jreg.sweep(fn, _hyperparams(10), batch_size=3)  # 3 chunks of 4 over 4 devices
    assert _compiled._cache_size() == before + 1 and len(traces) == 1
    with _counting_compilations() as compilations:
        second = jreg.sweep(fn, _hyperparams(10, seed=1), batch_size=3)
    assert compilations == [0] and len(traces) == 1
    _assert_tree_allclose(second, _loop(fn, _hyperparams(10, seed=1)))
    assert not np.allclose(first["norm"], second["norm"])


def test_batch_sizes_giving_as_many_chunks_run_one_program():
    traces = []

    def fn(h):
        traces.append(h)
        return _features(h)

    hyperparams = _hyperparams(32)
    expected = _loop(fn, hyperparams)
    whole = jreg.sweep(fn, hyperparams)
    with _counting_compilations() as compilations:
        for batch_size in [32, 33, 1000]:  # one chunk of 32: the program of None
            _assert_tree_allclose(jreg.sweep(fn, hyperparams, batch_size=batch_size), whole)
    assert compilations == [0] and len(traces) == 1 + 32  # _loop traced fn 32 times
    for batch_size in [16, 20, 31]:  # two balanced chunks of 16, one program
        _assert_tree_allclose(jreg.sweep(fn, hyperparams, batch_size=batch_size), expected)
    assert len(traces) == 1 + 32 + 1


def test_a_list_of_numbers_is_one_sweep_axis():
    values = [0.5, 1, np.float32(2.0), jnp.asarray(3.0)]
    result = jreg.sweep(lambda s: s**2 * jnp.ones(2), values)
    np.testing.assert_array_equal(result, np.square(np.asarray(values, float))[:, None] * [1, 1])
    pair = (np.ones(3), np.zeros(3))  # a tuple of arrays stays a pytree
    np.testing.assert_array_equal(jreg.sweep(lambda h: h[0] - h[1], pair), np.ones(3))


def test_leading_axis_is_sharded_over_the_mesh():
    mesh = _mesh_2x2()
    result = jreg.sweep(jnp.sin, np.linspace(0.0, 1.0, 8), mesh=mesh)
    expected = NamedSharding(mesh, PartitionSpec(("a", "b")))
    assert result.sharding.is_equivalent_to(expected, 1)
    assert len(jax.devices()) == 4  # tests/conftest.py forces 4 CPU devices


def test_sweep_of_proximal_training_over_strength_and_learning_rate():
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.standard_normal((40, 8)))
    y = X @ jnp.asarray([1.5, -1.0, 0.5, 0, 0, 0, 0, 0]) + 0.3 * jnp.asarray(
        rng.standard_normal(40)
    )

    def loss(w):
        return 0.5 * jnp.mean((y - X @ w) ** 2)

    def fit(h):
        tx = optax.chain(optax.sgd(h["lr"]), jreg.proximal(prox.l1, h["strength"], h["lr"]))

        def step(carry, _):
            w, state = carry
            updates, state = tx.update(jax.grad(loss)(w), state, w)
            return (optax.apply_updates(w, updates), state), None

        w = jnp.zeros(8)
        return jax.lax.scan(step, (w, tx.init(w)), length=200)[0][0]

    hyperparams = {"strength": np.geomspace(10.0, 1e-3, 6), "lr": np.linspace(0.1, 0.3, 6)}
    coef = jreg.sweep(fit, hyperparams, batch_size=4)
    np.testing.assert_allclose(coef, _loop(jax.jit(fit), hyperparams), rtol=1e-10, atol=1e-12)
    assert np.all(coef[0] == 0) and np.all(coef[-1] != 0)  # strength 10 zeroes all


@pytest.mark.parametrize(
    ("hyperparams", "kwargs", "error", "match"),
    [
        ({"a": np.ones(3), "b": np.ones(4)}, {}, ValueError, "leading axis"),
        (np.ones(0), {}, ValueError, "empty sweep"),
        (np.float64(1.0), {}, ValueError, "leading sweep axis"),
        ({}, {}, ValueError, "at least one array"),
        ([], {}, ValueError, "at least one array"),
        (["a", "b"], {}, TypeError, "numbers"),
        ([{"a": 1.0}, {"a": 2.0}], {}, ValueError, "leading sweep axis"),
        (np.ones(3), {"batch_size": 0}, ValueError, "batch_size"),
        (np.ones(3), {"batch_size": 2.5}, TypeError, "batch_size"),
        (np.ones(3), {"mesh": "devices"}, TypeError, "mesh"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(hyperparams, kwargs, error, match):
    with pytest.raises(error, match=match):
        jreg.sweep(jnp.sin, hyperparams, **kwargs)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("stderr", [_Terminal, io.StringIO])
def test_progress_bar_only_on_a_terminal(monkeypatch, stderr):
    monkeypatch.setattr(sys, "stderr", stderr())
    jreg.sweep(jnp.sin, np.linspace(0.0, 1.0, 10), batch_size=4, progress=True)
    shown = sys.stderr.getvalue()
    if stderr is _Terminal:
        assert "3/3 chunks" in shown and shown.endswith("\n")
    else:
        assert shown == ""
