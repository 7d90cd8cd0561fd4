"""XLA compile options for jreg's programs, and the compiled programs that use them.

XLA:CPU (jaxlib 0.10) hands reductions over more than a few thousand elements to YNNPACK by
default. Each such library call costs 10-35 us, several times the loop XLA emits itself, and the
solvers' coordinate loops make one per coordinate step: on a 20000 x 300 logistic path (20
strengths), 3.2 s with them, 1.6 s without; on 5000 x 200, 0.55 s and 0.21 s. Matrix products
stay with YNNPACK.
"""

import functools

import jax

CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


@functools.cache
def compiler_options() -> dict:
    """:data:`CPU_OPTIONS` where the backend takes them, else none (another jaxlib may not know
    them: programs then compile with XLA's defaults)."""
    try:
        jax.jit(lambda x: x + 1, compiler_options=CPU_OPTIONS).lower(1.0).compile()
    except jax.errors.JaxRuntimeError:
        return {}
    return CPU_OPTIONS


class Program:
    """``jax.jit(fun, **jit_kwargs)`` with :func:`compiler_options`, built at its first use: the
    options depend on the backend, which importing jreg must not start (``jax.distributed``
    and the platform are chosen after imports). Called under another trace (a caller's
    ``jit``, ``grad``), where JAX takes no options, it is the plain ``jax.jit``: the caller's
    options apply. Attributes are the jitted function's (``lower``, ...)."""

    def __init__(self, fun, **jit_kwargs):
        self._fun, self._jit_kwargs = fun, jit_kwargs

    @functools.cached_property
    def jitted(self):
        return jax.jit(self._fun, compiler_options=compiler_options(), **self._jit_kwargs)

    @functools.cached_property
    def nested(self):
        return jax.jit(self._fun, **self._jit_kwargs)

    def __call__(self, *args, **kwargs):
        try:
            return self.jitted(*args, **kwargs)
        except ValueError as error:  # "compiler_options can only be passed to top-level jit"
            if "compiler_options" not in str(error):
                raise
            return self.nested(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.jitted, name)
