"""Tuning p per-feature penalty factors and the strength by gradient on a held-out loss.

    python examples/hypergradient.py [--quick] [--out DIR]

A lasso has one strength, chosen by a grid; an adaptive lasso has one penalty factor per feature,
which no grid can search. With :func:`jreg.glm.fit` differentiable in its hyperparameters, the
validation error of the model fitted on the training set is a differentiable function of the
strength and of the p factors (implicit differentiation: one linear solve on the support per
gradient), so Adam can descend it, starting from the cross-validated strength with every factor 1.

Compared, every model fitted on the same training set: scikit-learn's ``LassoCV`` (its
cross-validated single strength), a random search over the same p + 1 hyperparameters with as
many fits as Adam's steps (keeping the best validation error), and Adam. Their validation and
test errors are printed; ``DIR/hypergradient.png`` shows the trajectories.
"""

import argparse
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.linalg
from matplotlib.figure import Figure
from sklearn.linear_model import LassoCV

from jreg import glm

N_TRAIN, N_VAL, N_TEST, N_FEATURES = 100, 100, 5000, 60


def problem(seed=0):
    """Correlated features (Toeplitz 0.6), 8 true ones of mixed sizes, noise of variance 1."""
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_VAL + N_TEST
    covariance = scipy.linalg.toeplitz(0.6 ** np.arange(N_FEATURES))
    X = rng.standard_normal((n, N_FEATURES)) @ np.linalg.cholesky(covariance).T
    coef = np.zeros(N_FEATURES)
    coef[rng.choice(N_FEATURES, 8, replace=False)] = [3, -2.5, 2, -1.5, 1, 1, -0.7, 0.5]
    y = X @ coef + rng.standard_normal(n)
    X, y = X.astype(np.float32), y.astype(np.float32)
    cut = np.cumsum([N_TRAIN, N_VAL])
    return np.split(X, cut), np.split(y, cut)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("jreg-out"))
    args = parser.parse_args(argv)
    n_steps = 20 if args.quick else 150
    (X, X_val, X_test), (y, y_val, y_test) = problem()

    def fitted(hyper, X, y):
        log_strength, log_factors = hyper
        return glm.fit(X, y, jnp.exp(log_strength), penalty_factor=jnp.exp(log_factors))

    def error(solution, X_, y_):
        return jnp.mean((X_ @ solution.coef + solution.intercept - y_) ** 2)

    @jax.jit  # the data are arguments (constants would be folded at compile time)
    def validation_error(hyper, X, y, X_val, y_val):
        return error(fitted(hyper, X, y), X_val, y_val)

    @jax.jit
    def tested(hyper, X, y, X_test, y_test):
        solution = fitted(hyper, X, y)
        return error(solution, X_test, y_test), jnp.sum(solution.coef != 0)

    def test_error(hyper):
        return tested(hyper, X, y, X_test, y_test)

    reference = LassoCV(cv=5, tol=1e-6).fit(X, y)
    start = (jnp.log(jnp.float32(reference.alpha_)), jnp.zeros(N_FEATURES, jnp.float32))

    optimizer = optax.adam(0.05)
    step_of = jax.jit(jax.value_and_grad(validation_error))
    data = (X, y, X_val, y_val)
    hyper, state = start, optimizer.init(start)
    trajectory = []
    for _ in range(n_steps):
        value, gradient = step_of(hyper, *data)
        trajectory.append((float(value), float(test_error(hyper)[0])))
        updates, state = optimizer.update(gradient, state)
        hyper = optax.apply_updates(hyper, updates)

    rng = np.random.default_rng(1)
    best_random, random_best_so_far = None, []
    for _ in range(n_steps):  # as many fits, the same p + 1 hyperparameters, log-uniform
        candidate = (start[0] + rng.uniform(-1.5, 1.5),
                     jnp.asarray(rng.uniform(-2, 2, N_FEATURES), jnp.float32))  # fmt: skip
        value = float(validation_error(candidate, *data))
        if best_random is None or value < best_random[0]:
            best_random = (value, candidate)
        random_best_so_far.append(best_random[0])

    rows = [
        ("LassoCV (one strength)", float(validation_error(start, *data)), *test_error(start)),
        ("random search", best_random[0], *test_error(best_random[1])),
        ("Adam on hypergradients", float(validation_error(hyper, *data)), *test_error(hyper)),
    ]
    print(f"{n_steps} fits per search; {N_TRAIN} training, {N_VAL} validation, {N_TEST} test rows")
    print(f"{'method':24s} {'validation':>10s} {'test':>8s} {'selected':>8s}")
    for name, val, test, selected in rows:
        print(f"{name:24s} {val:10.3f} {float(test):8.3f} {int(selected):8d}")

    figure = Figure(figsize=(6.5, 4))
    axes = figure.subplots()
    steps = np.arange(1, n_steps + 1)
    axes.plot(steps, [v for v, _ in trajectory], label="Adam: validation")
    axes.plot(steps, [t for _, t in trajectory], label="Adam: test")
    axes.plot(steps, random_best_so_far, label="random search: best validation")
    axes.axhline(rows[0][2], color="grey", linestyle="--", label="LassoCV: test")
    axes.set(xlabel="fits", ylabel="mean squared error", title="Tuning p + 1 penalties by gradient")
    axes.legend()
    args.out.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out / "hypergradient.png", dpi=120, bbox_inches="tight")


if __name__ == "__main__":
    main()
