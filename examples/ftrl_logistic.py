"""FTRL-Proximal on a sparse logistic regression: online, as in the paper, and to the optimum.

Data: 4000 examples of 200 features, 10 of which matter. Three runs of
``jreg.ftrl.ftrl_proximal``, each one ``jax.lax.scan`` under ``jit``:

* one online pass, one example per step, with the paper's L1 (McMahan et al. 2013): sparse
  weights in a single pass, the setting FTRL was made for;
* full-batch steps with ``regularize_each_step=True``: the iterates converge to the minimizer of
  ``sum_i loss_i(w) + l1 * ||w||_1``, compared with scikit-learn's liblinear (``C = 1 / l1``);
* the same full-batch steps with the paper's L1, whose effect fades over the steps.

    python examples/ftrl_logistic.py
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.linear_model import LogisticRegression

from jreg.ftrl import ftrl_proximal

jax.config.update("jax_enable_x64", True)


def make_data(n=4000, p=200, informative=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2 * n, p))
    w = np.zeros(p)
    w[:informative] = rng.choice([-1, 1], informative) * rng.uniform(0.5, 2, informative)
    y = np.where(rng.random(2 * n) < 1 / (1 + np.exp(-X @ w)), 1.0, -1.0)
    return (X[:n], y[:n]), (X[n:], y[n:]), w


def logistic_loss(w, X, y):
    return jnp.sum(jnp.logaddexp(0, -y * (X @ w)))


def train(tx, gradient, batches, w0):
    """``w`` after one step of ``tx`` per entry of ``batches`` (a pytree with a leading axis)."""

    def step(carry, batch):
        w, state = carry
        updates, state = tx.update(gradient(w, batch), state, w)
        return (optax.apply_updates(w, updates), state), None

    return jax.jit(lambda w: jax.lax.scan(step, (w, tx.init(w)), batches)[0][0])(w0)


def main() -> None:
    (X, y), (X_test, y_test), w_true = make_data()
    n, p = X.shape
    l1 = 60.0
    per_example = jax.grad(lambda w, b: logistic_loss(w, b[0][None], b[1][None]))
    full_batch = jax.grad(lambda w, _: logistic_loss(w, X, y))
    steps = jnp.arange(1000)

    reference = LogisticRegression(
        l1_ratio=1.0, C=1 / l1, solver="liblinear", fit_intercept=False, tol=1e-8, max_iter=10_000
    )
    runs = {"liblinear, C = 1 / l1": lambda: reference.fit(X, y).coef_[0]}
    runs["FTRL, one online pass"] = lambda: train(
        ftrl_proximal(0.2, l1), per_example, (X, y), jnp.zeros(p)
    )
    runs["FTRL, each step, 1000 steps"] = lambda: train(
        ftrl_proximal(0.2, l1, regularize_each_step=True), full_batch, steps, jnp.zeros(p)
    )
    runs["FTRL, paper's l1, 1000 steps"] = lambda: train(
        ftrl_proximal(0.2, l1), full_batch, steps, jnp.zeros(p)
    )

    header = ("nonzero", "true kept", "test loss", "max |w - w*|", "s")
    print(f"{'run':<28} " + " ".join(f"{h:>{max(len(h), 5)}}" for h in header))
    w_star = None
    for name, run in runs.items():
        start = time.perf_counter()
        w = np.asarray(run())
        elapsed = time.perf_counter() - start
        w_star = w if w_star is None else w_star
        test_loss = logistic_loss(w, X_test, y_test) / len(y_test)
        kept = np.sum((w != 0) & (w_true != 0))
        print(
            f"{name:<28} {np.sum(w != 0):>7} {kept:>6}/{np.sum(w_true != 0):<2} {test_loss:>9.4f} "
            f"{np.max(np.abs(w - w_star)):>12.2e} {elapsed:>5.1f}"
        )


if __name__ == "__main__":
    main()
