"""Strict test configuration: 4 forced CPU devices, x64, rank promotion raises."""

import os

# LLVM does not optimize the compiled kernels (--xla_backend_optimization_level=0): the suite's
# small problems spend most of their time compiling, and this takes ~40 % off each program's
# backend compilation (its kernels run ~3x slower); XLA's own HLO optimizations still run.
_FLAGS = os.environ.get("XLA_FLAGS", "")
_FLAGS += " --xla_force_host_platform_device_count=4"
if "xla_backend_optimization_level" not in _FLAGS:
    _FLAGS += " --xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = _FLAGS.strip()

# the command line's persistent compilation cache is off in the tests (one test turns it on)
os.environ["JREG_CACHE_DIR"] = ""

# scikit-learn's array-API estimator checks run only where scipy was imported with this set
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import hypothesis  # noqa: E402
import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

hypothesis.settings.register_profile("jreg", deadline=None, max_examples=60, print_blob=True)
hypothesis.settings.load_profile("jreg")


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Each test module's compiled programs are dropped after it (the suite compiles hundreds)."""
    yield
    jax.clear_caches()


def _memory_maps() -> int:
    """The process's memory mappings (0 where /proc is absent)."""
    try:
        with open("/proc/self/maps") as maps:
            return sum(1 for _ in maps)
    except OSError:
        return 0


@pytest.fixture(autouse=True)
def _release_before_the_map_limit():
    """Every compiled program holds memory mappings, and Linux allows a process 65530 by
    default (``vm.max_map_count``): beyond, XLA's compiler fails with 'Cannot allocate memory'
    and aborts. A long test module drops its compiled programs well before that."""
    yield
    if _memory_maps() > 40_000:
        jax.clear_caches()
