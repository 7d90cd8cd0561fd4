"""The command line, ``python -m jreg``: for now a short lasso demo on built-in data."""

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jreg import prox


def _sparse_regression(*, n_samples=200, n_features=50, n_informative=5, seed=0):
    """A regression problem with a known support: the first ``n_informative`` features."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    coef = np.zeros(n_features)
    coef[:n_informative] = rng.choice([-1.0, 1.0], n_informative) * rng.uniform(1, 3, n_informative)
    y = X @ coef + 0.5 * rng.standard_normal(n_samples)
    return X, y, coef


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="jreg", description=__doc__)
    parser.add_argument("--strength", type=float, default=0.1, help="L1 strength (sklearn alpha)")
    args = parser.parse_args(argv)
    X, y, true_coef = _sparse_regression()
    X, y = jnp.asarray(X), jnp.asarray(y)
    step = 1.0 / (jnp.linalg.norm(X, 2) ** 2 / X.shape[0])

    @jax.jit
    def fit(strength):
        def ista_step(w, _):
            grad = X.T @ (X @ w - y) / X.shape[0]
            return prox.l1(w - step * grad, strength, scaling=step), None

        return jax.lax.scan(ista_step, jnp.zeros(X.shape[1]), length=2000)[0]

    coef = np.asarray(fit(args.strength))
    found, truth = set(np.flatnonzero(coef)), set(np.flatnonzero(true_coef))
    print(f"lasso at strength {args.strength}: {len(found)} non-zero coefficients")
    print(
        f"true support recovered: {len(found & truth)}/{len(truth)}, false positives: "
        f"{len(found - truth)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
