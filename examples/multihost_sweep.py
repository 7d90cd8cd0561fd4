r"""One sweep and one cross-validation over the devices of several hosts (``jax.distributed``).

Every process runs this same script; together they see the devices of all hosts, and
:func:`jreg.sweep` and :func:`jreg.glm.cross_validate` shard their values and folds over them.
Two processes with two CPU devices each on one machine (CPU collectives through gloo)::

    XLA_FLAGS=--xla_force_host_platform_device_count=2 python examples/multihost_sweep.py \
        --coordinator 127.0.0.1:12355 --num-processes 2 --process-id 0 &
    XLA_FLAGS=--xla_force_host_platform_device_count=2 python examples/multihost_sweep.py \
        --coordinator 127.0.0.1:12355 --num-processes 2 --process-id 1

Process 0 prints the ridge coefficients per strength (the sweep, gathered from all hosts) and
the cross-validated best strength; ``--out FILE.npz`` saves them.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

import jreg
from jreg import glm

STRENGTHS = np.geomspace(1e-2, 1e2, 10)


def problem() -> tuple[np.ndarray, np.ndarray]:
    """The same regression data in every process (a fixed seed)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    return X, X @ np.array([1.0, -2.0, 0.0, 0.0, 0.5]) + 0.3 * rng.standard_normal(60)


def ridge(strength):
    r"""Closed-form ridge :math:`(X^T X + s I)^{-1} X^T y` of :func:`problem`."""
    X, y = problem()
    return jnp.linalg.solve(X.T @ X + strength * jnp.eye(X.shape[1]), X.T @ y)


def run(mesh: Mesh) -> dict[str, np.ndarray]:
    """The sweep and the cross-validation over ``mesh``, gathered on every host."""
    X, y = problem()
    coefs = jreg.sweep(ridge, STRENGTHS, mesh=mesh)
    cv = glm.cross_validate(X, y, n_folds=5, n_strengths=10, mesh=mesh)
    gathered = multihost_utils.process_allgather(
        {"sweep": coefs, "scores": cv.scores, "best_strength": cv.best_strength,
         "coef": cv.path.coef},
        tiled=True,
    )  # fmt: skip
    return {name: np.asarray(value) for name, value in gathered.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coordinator", required=True, help="HOST:PORT of process 0")
    parser.add_argument("--num-processes", type=int, required=True)
    parser.add_argument("--process-id", type=int, required=True)
    parser.add_argument("--out", help="save the gathered results (process 0) to this .npz")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=args.coordinator,
        num_processes=args.num_processes,
        process_id=args.process_id,
    )
    results = run(Mesh(np.asarray(jax.devices()), ("hosts",)))
    if args.process_id == 0:
        print("ridge coefficients per strength:\n", results["sweep"])
        print("cross-validated best strength:", results["best_strength"])
        if args.out:
            np.savez(args.out, **results)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
