"""A sparse MLP on scikit-learn's digits: a sweep of L1 strengths as one compiled program.

Each strength trains a flax MLP with proximal gradient descent (``optax.sgd`` followed by
``jreg.proximal(jreg.prox.l1, ...)`` on the weight matrices; the biases are masked out), and
``jreg.sweep`` runs all the trainings as one ``jit(vmap(...))`` program. The table shows the
trade-off between held-out accuracy and the fraction of weights that are exactly zero.

    python examples/sparse_mlp.py            # 16 strengths, 1000 steps
    python examples/sparse_mlp.py --quick    # 4 strengths, 100 steps (a few seconds)
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits

import jreg


class MLP(nnx.Module):
    def __init__(self, n_in: int, n_hidden: int, n_out: int, *, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(n_in, n_hidden, rngs=rngs)
        self.out = nnx.Linear(n_hidden, n_out, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.hidden(x)))


def load_data(seed: int = 0):
    """Digits, standardized, split 75/25 into training and held-out sets."""
    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    X, y = X[order], y[order]
    n_train = 3 * len(y) // 4
    mean, std = X[:n_train].mean(0), X[:n_train].std(0) + 1e-8
    X = ((X - mean) / std).astype(np.float32)
    return (X[:n_train], y[:n_train]), (X[n_train:], y[n_train:])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small sweep, for tests")
    args = parser.parse_args(argv)
    n_strengths, steps, n_hidden = (4, 100, 32) if args.quick else (16, 1000, 64)
    learning_rate = 0.5

    (X, y), (X_test, y_test) = load_data()
    graphdef, init_params = nnx.split(MLP(X.shape[1], n_hidden, 10, rngs=nnx.Rngs(0)))
    is_weight = jax.tree.map(lambda p: p.ndim == 2, init_params)

    def loss(params):
        logits = nnx.merge(graphdef, params)(X)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def train(strength):
        tx = optax.chain(
            optax.sgd(learning_rate),
            optax.masked(jreg.proximal(jreg.prox.l1, strength, learning_rate), is_weight),
        )

        def step(carry, _):
            params, state = carry
            updates, state = tx.update(jax.grad(loss)(params), state, params)
            return (optax.apply_updates(params, updates), state), None

        params = jax.lax.scan(step, (init_params, tx.init(init_params)), length=steps)[0][0]
        predictions = jnp.argmax(nnx.merge(graphdef, params)(X_test), axis=-1)
        weights = [w for w in jax.tree.leaves(params) if w.ndim == 2]
        zeros = sum(jnp.sum(w == 0) for w in weights) / sum(w.size for w in weights)
        return {"accuracy": jnp.mean(predictions == y_test), "zero_fraction": zeros}

    strengths = np.geomspace(1e-5, 3e-2, n_strengths).astype(np.float32)
    start = time.perf_counter()
    results = jax.block_until_ready(jreg.sweep(train, strengths, progress=True))
    elapsed = time.perf_counter() - start
    print(f"{n_strengths} trainings of {steps} full-batch steps in one program: {elapsed:.1f} s")
    print(f"{'L1 strength':>12} {'accuracy':>9} {'zero weights':>13}")
    for strength, accuracy, zeros in zip(
        strengths, results["accuracy"], results["zero_fraction"], strict=True
    ):
        print(f"{strength:12.2e} {accuracy:9.3f} {zeros:13.1%}")


if __name__ == "__main__":
    main()
