"""XLA compile options for jreg's programs, and the compiled programs that use them.

XLA:CPU (jaxlib 0.10) hands reductions over more than a few thousand elements to YNNPACK by
default. Each such library call costs 10-35 us, several times the loop XLA emits itself, and the
solvers' coordinate loops make one per coordinate step: on a 20000 x 300 logistic path (20
strengths), 3.2 s with them, 1.6 s without; on 5000 x 200, 0.55 s and 0.21 s. Matrix products
stay with YNNPACK.

Each operation in a compiled loop also costs a dispatch (~0.5 us) in XLA:CPU's runtime, unless the
loop is small enough to be compiled into one function: by default, loops that touch under 1 KB.
A coordinate step on 300-500 samples touches about 30 KB in ~10 operations, so the p > n
logistic paths spent most of their time in dispatches. Importing jreg raises that threshold to
:data:`SMALL_LOOP_BYTES` (:func:`compile_small_loops_whole`), 1 MB: the coordinate loops of
proximal Newton on a few thousand samples compile whole too (a 3-class multinomial path on 2000 x
100: 170-190 -> 115-130 ms). Not more: a loop compiled whole emits its matrix products itself,
naively, where XLA's runtime calls a library; at 64 MB the squared loss's Gram matrix, summed over
blocks of 2048 x 300 samples in a loop, made a 20000 x 300 path 135 ms -> 2.35 s. (Loops with
operations that only a library runs, YNNPACK's products and LAPACK's factorizations among them,
are never compiled whole.)

Compilation is most of the time to a first result: XLA took 3.0-4.0 s for a default ``glm.path``
(2.2 s of a 200 x 2000 lasso path's 3.2 s in XLA:CPU's MLIR fusion emitters, which make a kernel
of each fusion and each lone operation, on 2 threads, then LLVM). With XLA's previous emitters
and LLVM's optimization level 1 (of 0-3) it took 2.2-2.3 s where n >= p and for logistic paths,
3.1-3.4 s for p > n lasso paths, and the paths run as fast (level 0: 1.0-1.4 s, 4x slower).
XLA:CPU also rewrites each reduction over more than 32 elements as a tree of windowed
reductions (three kernels for one) for pairwise-like rounding: float64 programs
(:data:`FLOAT64_OPTIONS`) keep plain loops, whose rounding, ``n eps``, is 2e-11 of the result at
10^5 terms, and compile 0.4-0.5 s faster (logistic paths 0.5-1.2 s), the paths as fast; float32
programs keep the trees (``n eps`` would be 1e-2 there). XLA's compile was then 1.3-1.7 s where
n >= p and for logistic paths, 2.0-2.3 s for p > n lasso paths; the solvers have grown since:
on 2026-12-06, 2.5-3.3 s for lasso paths in Gram form and logistic paths, 3.9-4.4 s for a 500 x
5000 lasso path (LLVM's passes and instruction selection 80% of it: ``perf``). LLVM compiles
the program's kernels in parts, on 2 threads here: 16 parts (XLA's default 32) compiled 600 x
300 and 300 x 10000 lasso paths and a 5000 x 200 logistic one 0.05-0.2 s faster (alternating
processes, 3 rounds; 128 parts: 0.4 s slower).
"""

import contextlib
import functools
import hashlib
import os
import pathlib
import pickle
import tempfile
import time
from collections.abc import Callable

import jax
import numpy as np
from jax._src import xla_bridge
from jax.experimental import serialize_executable

CPU_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
    "xla_cpu_use_fusion_emitters": False,
    "xla_backend_optimization_level": 1,
    "xla_cpu_parallel_codegen_split_count": 16,
}
FLOAT64_OPTIONS = {"xla_disable_hlo_passes": "tree_reduction_rewriter"}


SMALL_LOOP_BYTES = 1_000_000
# a process-wide XLA option: XLA:CPU takes it from ``XLA_FLAGS`` only, not per program
_SMALL_LOOPS = f"xla_cpu_small_while_loop_byte_threshold={SMALL_LOOP_BYTES}"


def compile_small_loops_whole() -> None:
    """Add ``--xla_backend_extra_options=`` :data:`_SMALL_LOOPS` to ``XLA_FLAGS``: loops that
    touch under :data:`SMALL_LOOP_BYTES` compile into one function (p > n logistic paths ran
    about 1.6x faster, multinomial paths on a few thousand samples 1.4x, the rest within
    noise). XLA reads its flags when its first backend starts, so nothing is changed once one
    has, nor where ``XLA_FLAGS`` already sets
    ``xla_backend_extra_options`` (the user's choice, and the way to opt out)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_extra_options" not in flags and not xla_bridge.backends_are_initialized():
        os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_extra_options={_SMALL_LOOPS}".strip()


@functools.cache
def compiler_options(float64: bool = False) -> dict:
    """:data:`CPU_OPTIONS` (and :data:`FLOAT64_OPTIONS` for a program on ``float64`` arrays) but
    those ``XLA_FLAGS`` sets (the user's choice), where the backend is a CPU that takes them, else
    none (a GPU's LLVM has its own optimization levels; another jaxlib may not know them:
    programs then compile with XLA's defaults)."""
    if jax.default_backend() != "cpu":
        return {}
    flags = os.environ.get("XLA_FLAGS", "")
    wanted = CPU_OPTIONS | (FLOAT64_OPTIONS if float64 else {})
    options = {name: value for name, value in wanted.items() if name not in flags}
    try:
        jax.jit(lambda x: x + 1, compiler_options=options).lower(1.0).compile()
    except jax.errors.JaxRuntimeError:
        return {}
    return options


def _in_float64(arguments) -> bool:
    """Whether a program on ``arguments`` (a pytree) computes in float64: x64 is on and an
    array among them holds float64 numbers."""
    wide = (np.float64, np.complex128)
    leaves = jax.tree.leaves(arguments)
    return jax.config.jax_enable_x64 and any(getattr(x, "dtype", None) in wide for x in leaves)


@functools.cache
def _blas_libraries():
    """threadpoolctl's controller of the BLAS libraries loaded, once scipy's is: jaxlib's CPU
    factorizations and triangular solves call scipy's LAPACK (loaded by the first of them)."""
    import scipy.linalg  # noqa: F401  (loads it)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def on_one_lapack_thread(run: Callable):
    """``run()``, on CPU to its end (its results ready) with LAPACK's calls on the calling
    thread, the BLAS libraries' threads then as they were. In a compiled program they are made
    from one of XLA's threads while the others hold the cores (they spin a while after each
    operation), and OpenBLAS splits a factorization of 128 or more rows between its
    own threads, which then wait for a core: inside a 20000 x 300 lasso path a 128 x 128
    Cholesky factorization took 0.6-2.7 ms (50-70 us on one thread), and the path 0.14-0.19 s
    against 0.10-0.11 s on one thread (2000 x 500: 0.09-0.10 -> 0.08 s). Elsewhere: ``run()``
    as it is (dispatched asynchronously)."""
    if jax.default_backend() != "cpu":
        return run()
    with _blas_libraries().limit(limits=1, user_api="blas"):
        return jax.block_until_ready(run())


_KEPT = {"directory": None}  # where keep_executables keeps them (None: nowhere)


def keep_executables(directory: str | os.PathLike | None) -> None:
    """Keep every :class:`Program`'s compiled executables in ``directory`` (None: stop), each
    under a key of everything its trace depends on (the function, its static arguments, the
    shapes, dtypes and shardings of the others, jax's and jaxlib's versions and configuration,
    ``XLA_FLAGS``, the devices, jreg's source), and load them from there in a later process:
    a call then neither traces, lowers nor compiles. JAX's persistent cache skips only the
    compilation: tracing and lowering a cross-validation's program took ~1.1 s of a cached
    ``jreg fit`` on diabetes. Programs whose static arguments hold anything but plain values
    (a user's function: :func:`_static_text`) are not kept. Only an executable of a directory
    that others cannot write is safe to load."""
    _KEPT["directory"] = None if directory is None else pathlib.Path(directory)


@functools.cache
def _source_digest() -> str:
    """A digest of jreg's source files."""
    digest = hashlib.sha256()
    for path in sorted(pathlib.Path(__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _sharding_text(sharding) -> str:
    """A sharding's text with its devices in order (a mesh's text has none)."""
    mesh = getattr(sharding, "mesh", None)
    order = [] if mesh is None else [device.id for device in mesh.devices.flat]
    return f"{sharding!r}{order}"


def _static_text(value) -> str | None:
    """The text of a static argument built of plain values (None, numbers, strings, dtypes,
    shardings, and tuples of them: jreg's configurations), else None (a function, or any other
    object, whose text could stay the same while it changes)."""
    if value is None or isinstance(value, bool | int | float | str | np.dtype):
        return repr(value)
    if isinstance(value, jax.sharding.Sharding):
        return _sharding_text(value)
    if isinstance(value, tuple):
        parts = [_static_text(part) for part in value]
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        return None if None in parts else f"{kind}({', '.join(parts)})"
    return None


def _executable_key(fun, static: dict, dynamic) -> str | None:
    """The file name of the executable of ``fun`` on ``dynamic`` (a pytree of arrays) with
    ``static``, or None where a static argument is not plain (:func:`_static_text`)."""
    static_text = [(name, _static_text(value)) for name, value in sorted(static.items())]
    if any(text is None for _, text in static_text):
        return None
    leaves, tree = jax.tree.flatten(dynamic)
    signature = [(str(jax.typeof(x)), _sharding_text(getattr(x, "sharding", None)))
                 for x in leaves]  # fmt: skip
    devices = [(d.platform, d.device_kind, d.id, d.process_index) for d in jax.devices()]
    text = repr((fun.__module__, fun.__qualname__, static_text, str(tree), signature, devices,
                 sorted(jax.config.values.items()), os.environ.get("XLA_FLAGS", ""),
                 jax.__version__, jax.lib.__version__, _source_digest()))  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest() + ".executable"


@functools.cache
def _lapack_ready() -> None:
    """jaxlib finds its LAPACK functions (scipy's) when it first lowers a call of one on the
    CPU: an executable loaded before that crashes at its first factorization. One lowering,
    once, on the CPU (where there is one)."""
    try:
        on_cpu = jax.device_put(np.eye(2), jax.devices("cpu")[0])
    except RuntimeError:  # no CPU backend: no LAPACK
        return
    jax.jit(jax.numpy.linalg.cholesky).lower(on_cpu)


def _kept_executable(key: str, compile_it: Callable):
    """The executable kept under ``key``, else ``compile_it()``, then kept (written whole or
    not at all: a file that does not load is compiled again and replaced)."""
    path = _KEPT["directory"] / key
    _lapack_ready()
    try:
        *parts, device_ids = pickle.loads(path.read_bytes())
        devices = {device.id: device for device in jax.devices()}
        loaded = serialize_executable.deserialize_and_load(
            *parts, execution_devices=[devices[i] for i in device_ids]
        )
    except Exception:  # noqa: BLE001 (absent, partly written, or from another jaxlib)
        loaded = None
    if loaded is not None:
        with contextlib.suppress(OSError):  # a read-only directory: loaded all the same
            path.touch()  # used: not pruned
        return loaded
    compiled = compile_it()
    try:
        device_ids = [device.id for device in compiled.runtime_executable().local_devices()]
        payload = pickle.dumps((*serialize_executable.serialize(compiled), device_ids))
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".partial",
                                         delete=False) as partial:  # fmt: skip
            partial.write(payload)
        os.replace(partial.name, path)
        _prune(path.parent)
    except (OSError, ValueError, NotImplementedError, pickle.PicklingError):
        pass  # not kept: this process runs it all the same
    return compiled


UNUSED_DAYS = 30  # a kept executable neither written nor loaded for longer is removed


def _prune(directory: pathlib.Path) -> None:
    """Removes the files of ``directory`` unused for :data:`UNUSED_DAYS` (those of an older
    jreg or jax, of shapes no longer run, a crashed process's partial writes)."""
    oldest = time.time() - UNUSED_DAYS * 86400
    for path in directory.iterdir():
        if path.stat().st_mtime < oldest:
            path.unlink(missing_ok=True)


class Program:
    """``jax.jit(fun, **jit_kwargs)`` with :func:`compiler_options` (those of its arguments'
    precision), built at its first use: the options depend on the backend, which importing jreg
    must not start (``jax.distributed`` and the platform are chosen after imports). A call runs
    under :func:`on_one_lapack_thread`. Called under another trace (a caller's ``jit``,
    ``grad``), where JAX takes no options, it is the plain ``jax.jit``: the caller's options
    apply. Where :func:`keep_executables` has a directory, a call outside a trace runs the
    executable kept there for it."""

    def __init__(self, fun, **jit_kwargs):
        self._fun, self._jit_kwargs = fun, jit_kwargs
        self._jitted = {}  # float64 -> the jitted function
        static = jit_kwargs.get("static_argnames", ())
        self._static = {static} if isinstance(static, str) else set(static)
        self._executables = {}  # key -> a kept executable

    def jitted(self, *args, **kwargs):
        """The jitted function for these arguments' precision."""
        float64 = _in_float64((args, kwargs))
        if float64 not in self._jitted:
            options = compiler_options(float64)
            self._jitted[float64] = jax.jit(self._fun, compiler_options=options, **self._jit_kwargs)
        return self._jitted[float64]

    @functools.cached_property
    def nested(self):
        return jax.jit(self._fun, **self._jit_kwargs)

    def __call__(self, *args, **kwargs):
        if _KEPT["directory"] is not None:
            executable, dynamic = self._kept(args, kwargs)
            if executable is not None:
                return on_one_lapack_thread(lambda: executable(*args, **dynamic))
        try:
            return on_one_lapack_thread(lambda: self.jitted(*args, **kwargs)(*args, **kwargs))
        except ValueError as error:  # "compiler_options can only be passed to top-level jit"
            if "compiler_options" not in str(error):
                raise
            return self.nested(*args, **kwargs)

    def _kept(self, args, kwargs):
        """The kept executable for this call (None under a trace, or where not kept) and the
        keyword arguments it takes (the dynamic ones)."""
        dynamic = {name: value for name, value in kwargs.items() if name not in self._static}
        if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((args, dynamic))):
            return None, dynamic
        static = {name: value for name, value in kwargs.items() if name in self._static}
        key = _executable_key(self._fun, static, (args, dynamic))
        if key is not None and key not in self._executables:
            compile_it = lambda: self.lower(*args, **kwargs).compile()  # noqa: E731
            self._executables[key] = _kept_executable(key, compile_it)
        return self._executables.get(key), dynamic

    def lower(self, *args, **kwargs):
        return self.jitted(*args, **kwargs).lower(*args, **kwargs)

    def _cache_size(self) -> int:
        """Programs compiled, in either precision."""
        return sum(jitted._cache_size() for jitted in self._jitted.values())
