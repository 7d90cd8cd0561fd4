"""Input checks and NaN-safe arithmetic shared by the modules of jreg.

A check raises a ``ValueError`` (or ``TypeError``) that names the argument and says what it must
be, where the value is concrete; a traced value passes unchecked (the caller's jit boundary is
where a concrete value was checked).
"""

import numbers
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from optax._src.base import NO_PARAMS_MSG


def is_traced(tree) -> bool:
    """Whether any leaf of ``tree`` is a tracer (under ``jit``, ``vmap``, ``grad``...)."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(tree))


def as_array(value, dtype) -> jax.Array:
    """``jnp.asarray(value, dtype)`` for numeric data (checked before), host data (numpy,
    lists, numbers) converted on the host and transferred: ``jnp.asarray`` compiles a
    conversion for each new shape. Unlike it, float64 without x64 becomes float32 silently."""
    if isinstance(value, jax.Array):  # tracers included
        return jnp.asarray(value, dtype)
    host = np.asarray(value, dtype)
    if host.nbytes >= _LARGE and jax.default_backend() == "cpu":
        host = _aligned(host)
    return jax.device_put(host)


def host_array(value, dtype):
    """``value`` as a numpy array of ``dtype`` where concrete, which a program then takes as an
    argument (no transfer of its own: ``jax.device_put`` costs ~70 us a scalar); traced, as
    :func:`as_array` gives it."""
    return as_array(value, dtype) if is_traced(value) else np.asarray(value, dtype)


_ALIGNMENT = 64  # bytes: XLA:CPU uses a C-contiguous host buffer so aligned without a copy
_LARGE = 2**20  # bytes: from here on numpy's copy costs no more than XLA:CPU's (see _aligned)


def _aligned(host: np.ndarray) -> np.ndarray:
    """``host`` where it is C-contiguous and :data:`_ALIGNMENT`-aligned, else numpy's copy so
    aligned, which XLA:CPU then takes as it is. XLA:CPU's own copy of an unaligned buffer of a
    megabyte or more is slower, and erratic: 20000 x 300 float64 (48 MB) 41 ms against 10 ms for
    numpy's copy, 5000 x 200 (8 MB) 0.8-10 ms from one process to the next against 0.9 ms, 4 MB
    1.0 against 0.3 ms; 16-22 MB the same. The copy is private: nothing else writes to the memory
    the array uses."""
    if host.flags.c_contiguous and host.ctypes.data % _ALIGNMENT == 0:
        return host
    buffer = np.empty(host.nbytes + _ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % _ALIGNMENT
    aligned = buffer[start : start + host.nbytes].view(host.dtype).reshape(host.shape)
    np.copyto(aligned, host)
    return aligned


def check(name: str, value, ok: Callable[[np.ndarray], np.ndarray], requirement: str) -> None:
    """Raises ``ValueError`` naming ``name`` when a concrete ``value`` fails ``ok`` (and
    ``TypeError`` when it is None or not numeric)."""
    if value is None:
        raise TypeError(f"{name} must be {requirement}, got None")
    for leaf in jax.tree.leaves(value):
        if is_traced(leaf):
            continue
        array = np.asarray(leaf)
        if not jnp.issubdtype(array.dtype, jnp.number) and array.dtype != np.bool_:
            raise TypeError(f"{name} must be numeric, got dtype {array.dtype}")
        if np.iscomplexobj(array):
            raise TypeError(f"{name} must be real, got dtype {array.dtype}")
        with np.errstate(invalid="ignore"):
            if not np.all(ok(array.astype(np.float64, copy=False))):
                raise ValueError(f"{name} must be {requirement}, got {array}")


def check_real(name: str, value, hint: str = "") -> None:
    """Real numbers (bool, int or float), else a ``TypeError`` naming ``name`` (before any
    conversion, whose errors would not)."""
    dtype = value.dtype if isinstance(value, jax.Array) else np.asarray(value).dtype
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)
            or dtype == np.bool_):  # fmt: skip
        raise TypeError(f"{name} must hold real numbers, got dtype {dtype}{hint}")


def is_function(value) -> bool:
    """A function (such as a strength given per leaf), not an array."""
    return callable(value) and not hasattr(value, "shape")


def check_strength(strength, name: str = "strength") -> None:
    """Finite and non-negative where concrete; a function of (path, leaf) is checked per leaf
    where it is called."""
    if is_function(strength):
        return
    check(name, strength, lambda s: np.isfinite(s) & (s >= 0), "finite and non-negative")


def check_l1_ratio(l1_ratio) -> None:
    check("l1_ratio", l1_ratio, lambda r: (r >= 0) & (r <= 1), "in [0, 1]")


def check_gamma(gamma) -> None:
    check("gamma", gamma, lambda g: np.isfinite(g) & (g > 1), "finite and > 1")


def check_a(a) -> None:
    check("a", a, lambda a: np.isfinite(a) & (a > 2), "finite and > 2")


def check_callable(name: str, value, what: str) -> None:
    if not callable(value):
        raise TypeError(f"{name} must be {what} (a callable), got {value!r}")


MAX_COUNT = 100_000  # the most strengths or subsamples: their arrays' sizes must not overflow


def check_count(name: str, value) -> None:
    """An int in ``[1, MAX_COUNT]``, a number of strengths or subsamples."""
    if not is_count(value) or value > MAX_COUNT:
        raise ValueError(f"{name} must be an int in [1, {MAX_COUNT}], got {value!r}")


def is_count(value, minimum: int = 1) -> bool:
    """An integer (numpy's too, not a bool) of at least ``minimum``."""
    integral = isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)
    return integral and value >= minimum


def safe_divide(numerator: jax.Array, denominator: jax.Array, where: jax.Array, otherwise):
    """``numerator / denominator`` where ``where`` holds, else ``otherwise``; NaN-free grads."""
    return jnp.where(where, numerator / jnp.where(where, denominator, 1), otherwise)


def require_params(updates, params) -> None:
    """``params`` given, and ``updates`` of their structure and shapes."""
    if params is None:
        raise ValueError(NO_PARAMS_MSG)
    shapes = [jnp.shape(x) for x in jax.tree.leaves(updates)]
    expected = [jnp.shape(x) for x in jax.tree.leaves(params)]
    if jax.tree.structure(updates) != jax.tree.structure(params) or shapes != expected:
        raise ValueError(
            f"updates must have the structure and shapes of params, got {shapes} for {expected}"
        )


def check_batch_size(batch_size: int | None) -> None:
    if batch_size is None:
        return
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise TypeError(f"batch_size must be a positive int or None, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size}")
