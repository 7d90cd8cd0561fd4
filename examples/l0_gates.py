"""L0 regularization with hard-concrete gates: a flax MLP on digits that drops pixels and neurons.

A gate per input pixel and per hidden neuron (Louizos, Welling and Kingma 2018): in training the
gates are drawn with ``jreg.hard_concrete.sample``, at test time they are
``jreg.hard_concrete.deterministic``, exactly 0 for a pruned pixel or neuron. The optimizer is
``optax.chain(jreg.hard_concrete.add_expected_l0_gradient(strength), optax.adam(...))``, which
adds the gradient of ``strength * expected_l0`` to the ``log_alpha`` parameters (found by name in
the ``nnx.State``). The table shows accuracy against the pixels and neurons kept.

    python examples/l0_gates.py
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits

from jreg import hard_concrete


class Gates(nnx.Module):
    """One hard-concrete gate per feature of its input, with a learned ``log_alpha``."""

    def __init__(self, n: int, log_alpha: float = 2.0):
        self.log_alpha = nnx.Param(jnp.full(n, log_alpha))

    def __call__(self, x, key=None):
        if key is None:
            gates = hard_concrete.deterministic(self.log_alpha[...])
        else:
            gates = hard_concrete.sample(key, self.log_alpha[...])
        return x * gates[None]


class GatedMLP(nnx.Module):
    def __init__(self, n_in: int, n_hidden: int, n_out: int, *, rngs: nnx.Rngs):
        self.pixels = Gates(n_in)
        self.hidden = nnx.Linear(n_in, n_hidden, rngs=rngs)
        self.neurons = Gates(n_hidden)
        self.out = nnx.Linear(n_hidden, n_out, rngs=rngs)

    def __call__(self, x, key=None):
        keys = (None, None) if key is None else jax.random.split(key)
        x = self.hidden(self.pixels(x, keys[0]))
        return self.out(self.neurons(nnx.relu(x), keys[1]))


def load_data(seed: int = 0):
    """Digits, standardized, split 75/25 into training and held-out sets."""
    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    X, y = X[order], y[order]
    n_train = 3 * len(y) // 4
    mean, std = X[:n_train].mean(0), X[:n_train].std(0) + 1e-8
    X = ((X - mean) / std).astype(np.float32)
    return (X[:n_train], y[:n_train]), (X[n_train:], y[n_train:])


def main() -> None:
    (X, y), (X_test, y_test) = load_data()
    n_hidden, steps = 64, 1000
    graphdef, init_params = nnx.split(GatedMLP(X.shape[1], n_hidden, 10, rngs=nnx.Rngs(0)))

    def loss(params, key):
        logits = nnx.merge(graphdef, params)(X, key)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def train(strength):
        tx = optax.chain(hard_concrete.add_expected_l0_gradient(strength), optax.adam(1e-2))

        def step(carry, key):
            params, state = carry
            updates, state = tx.update(jax.grad(loss)(params, key), state, params)
            return (optax.apply_updates(params, updates), state), None

        keys = jax.random.split(jax.random.key(0), steps)
        params = jax.lax.scan(step, (init_params, tx.init(init_params)), keys)[0][0]
        model = nnx.merge(graphdef, params)
        accuracy = jnp.mean(jnp.argmax(model(X_test), axis=-1) == y_test)
        pixels = hard_concrete.deterministic(model.pixels.log_alpha[...])
        neurons = hard_concrete.deterministic(model.neurons.log_alpha[...])
        return accuracy, jnp.sum(pixels > 0), jnp.sum(neurons > 0)

    n_weights = X.shape[1] * n_hidden + n_hidden * 10
    print(f"{'strength':>8} {'accuracy':>8} {'pixels':>7} {'neurons':>7} {'weights':>7} {'s':>4}")
    for strength in (0.0, 1e-3, 3e-3, 1e-2):
        start = time.perf_counter()
        accuracy, pixels, neurons = jax.device_get(train(jnp.float32(strength)))
        kept = (pixels * neurons + neurons * 10) / n_weights
        print(
            f"{strength:>8.0e} {accuracy:>8.3f} {pixels:>4}/{X.shape[1]} {neurons:>4}/{n_hidden} "
            f"{kept:>7.1%} {time.perf_counter() - start:>4.1f}"
        )


if __name__ == "__main__":
    main()
