"""Whole neurons removed from an MLP on scikit-learn's digits, and the smaller model rebuilt.

A neuron's weights are spread over three leaves: its column of the hidden kernel, its bias and
its row of the output kernel. ``groups.units`` declares them as one group per neuron, and
proximal gradient descent with ``groups.prox_group_lasso`` sets whole neurons to exactly
zero; ``jreg.sweep`` trains one model per strength in a single compiled program. Then
``groups.prune`` drops the zero neurons and a smaller ``nnx`` model is built from what is
left: its held-out accuracy and logits are those of the sparse model.

    python examples/prune_mlp.py            # 6 strengths, 600 steps
    python examples/prune_mlp.py --quick    # 3 strengths, 200 steps (a few seconds)
"""

import argparse
import time

import jax
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits

import jreg
from jreg import groups

WIDTHS = (9, 8, 8, 9, 7, 13)  # the table's columns
NEURON = [("hidden/kernel", 1), ("hidden/bias", 0), ("out/kernel", 0)]


class MLP(nnx.Module):
    def __init__(self, n_in: int, n_hidden: int, n_out: int, *, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(n_in, n_hidden, rngs=rngs)
        self.out = nnx.Linear(n_hidden, n_out, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.hidden(x)))


def load_data(seed: int = 0):
    """Digits scaled to [0, 1], split 75/25 into training and held-out sets."""
    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    X, y = (X[order] / 16).astype(np.float32), y[order]
    n_train = 3 * len(y) // 4
    return (X[:n_train], y[:n_train]), (X[n_train:], y[n_train:])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small sweep, for tests")
    args = parser.parse_args(argv)
    n_strengths, steps, n_hidden, learning_rate = (
        (3, 200, 32, 0.5) if args.quick else (6, 600, 64, 0.5)
    )

    (X, y), (X_test, y_test) = load_data()
    graphdef, init_params = nnx.split(MLP(X.shape[1], n_hidden, 10, rngs=nnx.Rngs(0)))
    neurons = groups.units(init_params, NEURON)

    def loss(params):
        logits = nnx.merge(graphdef, params)(X)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def train(strength):
        tx = optax.chain(
            optax.sgd(learning_rate),
            jreg.proximal(
                groups.prox_group_lasso,
                strength,
                learning_rate,
                prox_kwargs={"groups": neurons},
            ),  # fmt: skip
        )

        def step(carry, _):
            params, state = carry
            updates, state = tx.update(jax.grad(loss)(params), state, params)
            return (optax.apply_updates(params, updates), state), None

        return jax.lax.scan(step, (init_params, tx.init(init_params)), length=steps)[0][0]

    strengths = np.geomspace(3e-3, 3e-2, n_strengths).astype(np.float32)
    start = time.perf_counter()
    trained = jax.block_until_ready(jreg.sweep(train, strengths))
    print(
        f"{n_strengths} trainings of {steps} full-batch steps: {time.perf_counter() - start:.1f} s"
    )
    header = ("strength", "neurons", "params", "accuracy", "pruned", "max |dlogit|")
    print(" ".join(f"{name:>{width}}" for name, width in zip(header, WIDTHS, strict=True)))
    for i, strength in enumerate(strengths):
        params = jax.tree.map(lambda leaf, i=i: leaf[i], trained)
        pruned, kept = groups.prune(params, neurons)
        smaller_graphdef = nnx.graphdef(
            nnx.eval_shape(lambda kept=kept: MLP(X.shape[1], len(kept), 10, rngs=nnx.Rngs(0)))
        )
        logits = nnx.merge(graphdef, params)(X_test)
        smaller_logits = nnx.merge(smaller_graphdef, pruned)(X_test)
        accuracy = np.mean(np.argmax(logits, axis=1) == y_test)
        pruned_accuracy = np.mean(np.argmax(smaller_logits, axis=1) == y_test)
        size = sum(leaf.size for leaf in jax.tree.leaves(pruned))
        difference = np.max(np.abs(smaller_logits - logits))
        row = (f"{strength:.1e}", f"{len(kept)}/{n_hidden}", size, f"{accuracy:.3f}",
               f"{pruned_accuracy:.3f}", f"{difference:.1e}")  # fmt: skip
        print(" ".join(f"{value:>{width}}" for value, width in zip(row, WIDTHS, strict=True)))


if __name__ == "__main__":
    main()
