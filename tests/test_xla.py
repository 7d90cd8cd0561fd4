"""The compile options of jreg's programs (jreg._xla)."""

import math
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from glm_setup import setup_path

from jreg import _xla
from jreg.glm import paths


def _coordinate_loop(rows, v):
    """A loop of reductions, as the solvers' coordinate steps."""

    def step(t, carry):
        w, v = carry
        delta = rows[t] @ v / 1000
        return w.at[t].set(delta), v - delta * rows[t]

    return jax.lax.fori_loop(0, rows.shape[0], step, (jnp.zeros(rows.shape[0]), v))


def _library_fusions(compiled) -> int:
    return compiled.as_text().count("__ynn_fusion")


def test_programs_keep_reductions_out_of_library_calls():
    args = (jnp.ones((8, 4096)), jnp.ones(4096))
    default = jax.jit(_coordinate_loop).lower(*args).compile()
    if _library_fusions(default) == 0:
        pytest.skip("this jaxlib makes no YNNPACK fusions: nothing to turn off")
    program = _xla.Program(_coordinate_loop)
    assert _library_fusions(program.lower(*args).compile()) == 0
    np.testing.assert_allclose(program(*args)[0], jax.jit(_coordinate_loop)(*args)[0])


@pytest.fixture
def fresh_options():
    """``compiler_options`` computed anew in the test (its cache cleared), and after it."""
    _xla.compiler_options.cache_clear()
    yield
    _xla.compiler_options.cache_clear()


def test_unknown_options_fall_back_to_the_defaults(monkeypatch, fresh_options):
    monkeypatch.setattr(_xla, "CPU_OPTIONS", {"xla_cpu_option_no_jaxlib_has": "1"})
    assert _xla.compiler_options() == {}
    program = _xla.Program(lambda x: 2 * x, static_argnames=())
    assert float(program(1.5)) == 3.0


def test_options_apply_on_cpu_where_xla_flags_leave_them(monkeypatch, fresh_options):
    """An option the user's ``XLA_FLAGS`` sets is theirs; off CPU there are none."""
    monkeypatch.setenv("XLA_FLAGS", "")
    assert _xla.compiler_options() == _xla.CPU_OPTIONS
    assert _xla.compiler_options(float64=True) == _xla.CPU_OPTIONS | _xla.FLOAT64_OPTIONS
    own = "--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0"
    monkeypatch.setenv("XLA_FLAGS", own)
    _xla.compiler_options.cache_clear()
    left = {k: v for k, v in _xla.CPU_OPTIONS.items() if k != "xla_backend_optimization_level"}
    assert _xla.compiler_options() == left
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    _xla.compiler_options.cache_clear()
    assert _xla.compiler_options() == {}  # the options are XLA:CPU's


def test_float64_programs_reduce_in_plain_loops():
    """A sum over 4096 entries: a tree of windowed reductions in float32 (its rounding), one
    loop in float64, whose rounding (``n eps``) is still far below any tolerance."""
    program = _xla.Program(jnp.sum)
    x = np.random.default_rng(0).standard_normal(4096)
    wide, narrow = jnp.asarray(x), jnp.asarray(x, jnp.float32)
    assert "reduce-window" not in program.lower(wide).compile().as_text()
    assert "reduce-window" in program.lower(narrow).compile().as_text()
    assert program._cache_size() == 0  # lowered, not called
    np.testing.assert_allclose(program(wide), math.fsum(x), rtol=4096 * np.finfo(float).eps)
    np.testing.assert_allclose(program(narrow), math.fsum(x), rtol=1e-5)
    assert program._cache_size() == 2


def _emitted_apart(compiled) -> int:
    """Operations XLA:CPU's fusion emitters wrap into a fusion of their own (the previous
    emitters compile them as they are)."""
    return compiled.as_text().count("%wrapped_")


def test_glm_programs_use_the_options():
    """A logistic path's reductions over 5000 samples: library calls by default, not in jreg's
    program (its dots stay); and its operations go through XLA's previous emitters."""
    X = np.random.default_rng(0).standard_normal((5000, 5))
    settings = paths.Settings(datafit="logistic", n_strengths=3)
    data, options, config, grid = setup_path(X, (X @ np.arange(5.0) > 0) * 1.0, settings)
    args = (data, grid, options)
    plain = jax.jit(paths.path_arrays, static_argnames="config").lower(*args, config=config)
    plain = plain.compile()
    ours = paths.path_jit.lower(*args, config=config).compile()
    assert _emitted_apart(plain) > 0
    assert _emitted_apart(ours) == 0
    if _library_fusions(plain) == 0:
        pytest.skip("this jaxlib makes no YNNPACK fusions: nothing to turn off")
    assert _library_fusions(ours) < _library_fusions(plain)


def test_importing_jreg_starts_no_backend():
    code = "import jreg; from jax._src import xla_bridge; assert not xla_bridge._backends"
    subprocess.run([sys.executable, "-c", code], check=True)


_HOISTED = """
import os
import jax, jax.numpy as jnp
{before}
def loop(v):  # ~500 KB a step: above XLA's 1 KB (and 100 KB), below jreg's 1 MB
    return jax.lax.fori_loop(0, 100, lambda t, v: v - jnp.sin(v[t % 7]) * v / 1000, v)
compiled = jax.jit(loop).lower(jnp.ones(20000)).compile()
print("xla_cpu_small_call" in compiled.as_text(), os.environ.get("XLA_FLAGS", ""))
"""


def _hoisted(before: str, **env) -> tuple[bool, str]:
    """Whether a small loop compiled into one function in a new process that ran ``before``,
    and its ``XLA_FLAGS`` then."""
    environment = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | env
    run = subprocess.run([sys.executable, "-c", _HOISTED.format(before=before)], check=True,
                         capture_output=True, text=True, env=environment)  # fmt: skip
    hoisted, _, flags = run.stdout.strip().partition(" ")
    return hoisted == "True", flags


def test_importing_jreg_compiles_small_loops_whole():
    assert _hoisted("import jreg") == (True, f"--xla_backend_extra_options={_xla._SMALL_LOOPS}")
    assert _hoisted("") == (False, "")  # XLA's default: the loop's operations one by one


def test_small_loops_leave_the_users_flags_and_started_backends():
    own = "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1024"
    assert _hoisted("import jreg", XLA_FLAGS=own) == (False, own)
    assert _hoisted("jax.devices(); import jreg") == (False, "")


def test_programs_run_lapack_on_one_thread():
    """A program's call runs with the BLAS libraries (LAPACK's) on one thread, to its end, and
    leaves their threads as it found them; a call under the caller's trace leaves them."""
    from threadpoolctl import ThreadpoolController, threadpool_limits

    blas = lambda: ThreadpoolController().select(user_api="blas")  # noqa: E731
    seen = []

    def record(x):
        seen.append({lib["num_threads"] for lib in blas().info()})
        return x

    def fun(x):
        x = jnp.linalg.cholesky(x * jnp.eye(3)).sum()  # scipy's LAPACK loaded
        return jax.pure_callback(record, jax.ShapeDtypeStruct(x.shape, x.dtype), x)

    program = _xla.Program(fun)
    with threadpool_limits(limits=2, user_api="blas"):
        before = [lib["num_threads"] for lib in blas().info()]
        assert program(jnp.float32(4.0)) == pytest.approx(6.0)
        assert [lib["num_threads"] for lib in blas().info()] == before
        jax.jit(program)(jnp.float32(4.0)).block_until_ready()
    assert 2 in before
    assert seen == [{1}, set(before)]


def _scaled(x, y=None, *, factor, how):
    """A program with two static arguments and an optional dynamic keyword argument."""
    _TRACES.append(how)
    function = {"sin": jnp.sin, "cos": jnp.cos}.get(how, how)
    return {"value": function(x) * factor + (0 if y is None else jnp.sum(y))}


_TRACES = []


class _Named:
    def __repr__(self):
        return "_Named()"

    def __call__(self, x):
        return x


def test_kept_executables_keys_hold_the_meshs_device_order():
    """Two meshes over the same devices in another order print alike: their keys differ."""
    x = jnp.ones(4)
    keys = []
    for order in ([0, 1], [1, 0]):
        mesh = jax.sharding.Mesh(np.array(jax.devices()[:2])[order], ("batch",))
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
        keys.append(_xla._executable_key(_scaled, {"sharding": sharding}, (x,)))
    assert None not in keys and keys[0] != keys[1]


def test_kept_executables_run_without_tracing_in_a_later_program(monkeypatch, tmp_path):
    """With :func:`_xla.keep_executables`, a program's first call compiles and keeps its
    executable; a new :class:`_xla.Program` of the same function (as in a new process) runs it
    from the file, never tracing, with the same result. Another static argument, shape or
    dtype is another executable; a static function named by its address is not kept (a new
    process would never find it); under a trace the plain jit runs; a damaged file is compiled
    again and replaced."""
    monkeypatch.setitem(_xla._KEPT, "directory", tmp_path)
    _TRACES.clear()
    x, y = jnp.arange(3.0), jnp.ones(2)
    run = lambda: _xla.Program(_scaled, static_argnames=("factor", "how"))  # noqa: E731
    expected = run()(x, y=y, factor=2.0, how="sin")["value"]
    assert len(_TRACES) == 1 and len(list(tmp_path.iterdir())) == 1
    again = run()(x, y=y, factor=2.0, how="sin")["value"]
    assert len(_TRACES) == 1  # loaded: not traced
    np.testing.assert_array_equal(again, expected)
    np.testing.assert_allclose(expected, 2 * np.sin(np.arange(3.0)) + 2)
    run()(x, factor=3.0, how="sin")  # another factor, no y
    run()(jnp.arange(4.0), y=y, factor=2.0, how="sin")
    run()(x.astype(jnp.float32), y=y, factor=2.0, how="sin")
    assert len(_TRACES) == 4 and len(list(tmp_path.iterdir())) == 4
    run()(x, y=y, factor=2.0, how=lambda v: v)  # a function: its text may stay as it changes
    run()(x, y=y, factor=2.0, how=_Named())  # so may any other object's
    assert len(list(tmp_path.iterdir())) == 4 and len(_TRACES) == 6
    program = run()
    np.testing.assert_array_equal(
        jax.jit(lambda x: program(x, y=y, factor=2.0, how="sin")["value"])(x), expected
    )
    for path in tmp_path.iterdir():
        path.write_bytes(b"not an executable")
    np.testing.assert_array_equal(run()(x, y=y, factor=2.0, how="sin")["value"], expected)
    assert sum(path.stat().st_size > 100 for path in tmp_path.iterdir()) == 1
    # a file unused for UNUSED_DAYS is removed when another is written; a recent one stays
    unused, recent = tmp_path / "unused.executable", tmp_path / "recent.123"
    unused.write_bytes(b""), recent.write_bytes(b"")
    long_ago = time.time() - (_xla.UNUSED_DAYS + 1) * 86400
    os.utime(unused, (long_ago, long_ago))
    run()(x, factor=5.0, how="cos")
    assert not unused.exists() and recent.exists()
