"""jreg.ftrl.ftrl_proximal against an independent scalar implementation of the paper's
Algorithm 1, Adagrad, and scikit-learn's L1-regularized logistic regression."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.linear_model import LogisticRegression

from jreg.ftrl import FtrlState, ftrl_proximal


def numpy_ftrl(gradient, w, steps, *, alpha, l1, l2, beta, l2_shrinkage, n0, each_step=False):
    """McMahan et al. (2013), Algorithm 1, one coordinate at a time in Python floats (with
    TensorFlow's l2_shrinkage: its gradient enters z, not n; each_step: t * l1 and t * l2 at
    step t, McMahan 2011)."""
    w = [float(v) for v in w]
    z, n = [0.0] * len(w), [float(n0)] * len(w)
    for t in range(steps):
        g = gradient(np.array(w), t)
        rounds = t + 1 if each_step else 1
        for i, g_i in enumerate(g):
            sigma = (math.sqrt(n[i] + g_i**2) - math.sqrt(n[i])) / alpha
            z[i] += g_i + l2_shrinkage * w[i] - sigma * w[i]
            n[i] += g_i**2
            if abs(z[i]) <= rounds * l1:
                w[i] = 0.0
            else:
                shrunk = z[i] - math.copysign(rounds * l1, z[i])
                w[i] = -shrunk / ((beta + math.sqrt(n[i])) / alpha + rounds * l2)
    return np.array(w), np.array(z)


def quadratic_problem(p=6, steps=8, seed=0):
    """Gradients A w + b_t of a sequence of quadratics (each step its own b_t)."""
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(p, p))
    A = M @ M.T / p + np.eye(p)
    b = rng.normal(size=(steps, p)) * 2
    return A, b


def jax_gradient(A, b):
    A, b = jnp.asarray(A), jnp.asarray(b)
    return lambda w, t: A @ w + b[t]


def run(tx, gradient, params, steps):
    def step(carry, t):
        params, state = carry
        updates, state = tx.update(gradient(params, t), state, params)
        return (optax.apply_updates(params, updates), state), None

    return jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), jnp.arange(steps))[0])(params)


OPTIONS = [
    dict(alpha=0.5, l1=0.0, l2=0.0, beta=1.0, l2_shrinkage=0.0, n0=0.0),
    dict(alpha=0.5, l1=6.5, l2=0.0, beta=1.0, l2_shrinkage=0.0, n0=0.0),
    dict(alpha=0.3, l1=9.0, l2=0.7, beta=0.5, l2_shrinkage=0.0, n0=0.0),
    dict(alpha=1.0, l1=4.0, l2=0.2, beta=0.0, l2_shrinkage=0.3, n0=0.1),
    dict(alpha=0.5, l1=1.0, l2=0.3, beta=1.0, l2_shrinkage=0.0, n0=0.0, each_step=True),
]


@pytest.mark.parametrize("options", OPTIONS)
def test_matches_the_papers_algorithm(options):
    """Several steps under jit equal the scalar implementation of Algorithm 1, from zero and from
    non-zero initial params; the state's z is the paper's z."""
    steps = 8
    A, b = quadratic_problem(steps=steps)
    o = options
    tx = ftrl_proximal(
        o["alpha"],
        o["l1"],
        o["l2"],
        beta=o["beta"],
        l2_shrinkage=o["l2_shrinkage"],
        initial_accumulator_value=o["n0"],
        regularize_each_step=o.get("each_step", False),
    )
    for w0 in (np.zeros(6), np.linspace(-1, 1, 6)):
        expected, z = numpy_ftrl(lambda w, t: A @ w + b[t], w0, steps, **o)
        params, state = run(tx, jax_gradient(A, b), w0, steps)
        np.testing.assert_allclose(params, expected, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(state.z, z, rtol=1e-12, atol=1e-12)
    if o["l1"] > 0:  # the problem's options give some zeros and some non-zeros
        assert 0 < np.sum(expected == 0) < len(expected)


def test_exact_zeros_exactly_where_z_is_within_l1():
    """float32 params are exactly 0 after apply_updates where |z| <= l1, and only there."""
    l1 = 1.0
    tx = ftrl_proximal(0.1, l1)
    keys = jax.random.split(jax.random.key(0), 5)
    params = jax.random.normal(jax.random.key(1), (500,), jnp.float32)
    state = tx.init(params)
    for key in keys:
        grads = jax.random.normal(key, (500,), jnp.float32) * 0.6
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        inside = np.abs(state.z) <= l1
        assert params.dtype == jnp.float32 and state.z.dtype == jnp.float32
        np.testing.assert_array_equal(params == 0, inside)
    assert 50 < inside.sum() < 450


def test_without_regularization_it_is_adagrad():
    """l1 = l2 = beta = n0 = 0: w - alpha g / sqrt(n), as optax.adagrad, from non-zero params."""
    A, b = quadratic_problem(steps=10)
    gradient = jax_gradient(A, b)
    w0 = jnp.linspace(-1.0, 2.0, 6)
    params, _ = run(ftrl_proximal(0.3, beta=0.0), gradient, w0, 10)
    adagrad = optax.adagrad(0.3, initial_accumulator_value=0.0, eps=0.0)
    reference, _ = run(adagrad, gradient, w0, 10)
    np.testing.assert_allclose(params, reference, rtol=1e-12)


def logistic_data(n=300, p=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    w = np.zeros(p)
    w[:4] = [2.0, -1.5, 1.0, 0.5]
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-X @ w)), 1.0, -1.0)
    return X, y


def test_approaches_the_l1_logistic_optimum():
    """With regularize_each_step, the iterates on the logistic loss F (summed over samples)
    converge to the minimizer of F + s ||w||_1: scikit-learn's liblinear with C = 1 / s, on its
    exact support."""
    X, y = logistic_data()
    strength = 20.0
    reference = LogisticRegression(
        l1_ratio=1.0, C=1 / strength, solver="liblinear", fit_intercept=False, tol=1e-10
    ).fit(X, y)
    w_star = reference.coef_[0]
    assert 0 < np.sum(w_star == 0) < len(w_star)
    loss = lambda w: jnp.sum(jnp.logaddexp(0, -y * (X @ w)))  # noqa: E731
    tx = ftrl_proximal(0.1, strength, regularize_each_step=True)
    errors = []
    for steps in (100, 1000):
        w, _ = run(tx, lambda w, t: jax.grad(loss)(w), jnp.zeros(X.shape[1]), steps)
        np.testing.assert_array_equal(w == 0, w_star == 0)
        errors.append(np.max(np.abs(w - w_star)))
    assert errors[1] < 1e-3 * np.max(np.abs(w_star)) and errors[1] < errors[0] / 10


def test_pytree_params_are_per_coordinate():
    """A dict of leaves gives the same iterates as the flat vector of their coordinates."""
    A, b = quadratic_problem(p=7, steps=6)
    tx = ftrl_proximal(0.5, 1.0, 0.1)
    gradient = jax_gradient(A, b)
    flat, _ = run(tx, gradient, jnp.zeros(7), 6)

    def tree_gradient(tree, t):
        g = gradient(jnp.concatenate([tree["a"], tree["b"].ravel()]), t)
        return {"a": g[:3], "b": g[3:].reshape(2, 2)}

    tree = {"a": jnp.zeros(3), "b": jnp.zeros((2, 2))}
    tree, state = run(tx, tree_gradient, tree, 6)
    np.testing.assert_allclose(jnp.concatenate([tree["a"], tree["b"].ravel()]), flat, rtol=1e-12)
    assert isinstance(state, FtrlState) and state.n["b"].shape == (2, 2)


def test_inject_hyperparams():
    """Injected hyperparameters give the plain transformation's updates, and a new l1 in the
    state takes effect."""
    params, grads = jnp.zeros(2), jnp.array([3.0, 0.5])
    tx = optax.inject_hyperparams(ftrl_proximal)(learning_rate=0.5, l1=1.0)
    state = tx.init(params)
    updates, _ = jax.jit(tx.update)(grads, state, params)
    np.testing.assert_allclose(updates, [-0.25, 0.0])
    state.hyperparams["l1"] = jnp.asarray(0.0)
    updates, _ = jax.jit(tx.update)(grads, state, params)
    np.testing.assert_allclose(updates, [-3 / 8, -0.5 / 3])


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(learning_rate=-1.0), "learning_rate"),
        (dict(learning_rate=0.1, l1=-1.0), "l1"),
        (dict(learning_rate=0.1, l2=-0.5), "l2"),
        (dict(learning_rate=0.1, beta=-1.0), "beta"),
        (dict(learning_rate=0.1, l2_shrinkage=-1.0), "l2_shrinkage"),
        (dict(learning_rate=0.1, initial_accumulator_value=-1.0), "initial_accumulator_value"),
        (dict(learning_rate=0.1, l1=float("nan")), "l1"),
        (dict(learning_rate=0.1, beta=0.0, l2_shrinkage=1.0), "l2_shrinkage"),
    ],
)
def test_bad_options_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ftrl_proximal(**kwargs)


def test_needs_params_of_the_updates_shapes():
    tx = ftrl_proximal(0.1)
    with pytest.raises(ValueError, match="params"):
        tx.update(jnp.ones(2), tx.init(jnp.zeros(2)))
    with pytest.raises(ValueError, match="updates must have the structure and shapes of params"):
        tx.update(jnp.ones(1), tx.init(jnp.zeros(2)), jnp.zeros(2))
    with pytest.raises(ValueError, match="updates must have the structure and shapes of params"):
        tx.update({"a": jnp.ones(2)}, tx.init(jnp.zeros(2)), jnp.zeros(2))
