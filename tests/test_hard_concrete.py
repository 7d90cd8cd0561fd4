"""jreg.hard_concrete against the closed forms of the stretched hard-concrete distribution
(Louizos, Welling and Kingma 2018), finite differences, and a tiny model that prunes."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from scipy.special import expit, logit

from jreg import penalties
from jreg.hard_concrete import add_expected_l0_gradient, deterministic, expected_l0, sample

SHAPES = [dict(beta=2 / 3, gamma=-0.1, zeta=1.1), dict(beta=0.3, gamma=-0.5, zeta=1.2)]


def closed_form(log_alpha, threshold, *, beta, gamma, zeta):
    """P(z <= t) for t in [0, 1): the binary concrete CDF at the unstretched point."""
    return expit(beta * logit((threshold - gamma) / (zeta - gamma)) - log_alpha)


@pytest.mark.parametrize("shape", SHAPES)
def test_sampled_gates_follow_the_distribution(shape):
    """Gates lie in [0, 1]; the frequencies of z == 0, z == 1 and z <= t match the closed forms
    within 5 standard errors (Monte Carlo, 100000 draws per location)."""
    log_alpha = np.array([-3.0, -1.0, 0.0, 1.0, 3.0])
    beta, gamma, zeta = shape["beta"], shape["gamma"], shape["zeta"]
    draws = 100_000
    broadcast = jnp.broadcast_to(jnp.asarray(log_alpha)[:, None], (5, draws))
    gates = np.asarray(jax.jit(lambda k: sample(k, broadcast, **shape))(jax.random.key(0)))
    assert gates.min() == 0 and gates.max() == 1
    expected = {
        "zero": closed_form(log_alpha, 0.0, **shape),
        "one": expit(log_alpha - beta * np.log((1 - gamma) / (zeta - 1))),
        "below 0.3": closed_form(log_alpha, 0.3, **shape),
        "below 0.7": closed_form(log_alpha, 0.7, **shape),
    }
    observed = {
        "zero": np.mean(gates == 0, axis=1),
        "one": np.mean(gates == 1, axis=1),
        "below 0.3": np.mean(gates <= 0.3, axis=1),
        "below 0.7": np.mean(gates <= 0.7, axis=1),
    }
    for name, p in expected.items():
        error = np.abs(observed[name] - p)
        assert np.all(error <= 5 * np.sqrt(p * (1 - p) / draws)), (name, observed[name], p)


def test_expected_l0_is_the_expectation_of_the_l0_penalty():
    """expected_l0 = strength * sum P(z != 0), the closed form, and the Monte Carlo mean of
    penalties.l0(gates, strength) agrees, on a pytree."""
    log_alpha = {"a": jnp.linspace(-4.0, 4.0, 9), "b": jnp.array([[-1.0, 0.5]])}
    strength = 0.3
    p_zero = [closed_form(np.asarray(leaf), 0.0, **SHAPES[0]) for leaf in log_alpha.values()]
    expected = strength * sum(np.sum(1 - p) for p in p_zero)
    np.testing.assert_allclose(jax.jit(expected_l0)(log_alpha, strength), expected, rtol=1e-12)
    keys = jax.random.split(jax.random.key(1), 20_000)
    counts = jax.jit(jax.vmap(lambda k: penalties.l0(sample(k, log_alpha), strength)))(keys)
    assert abs(np.mean(counts) - expected) < 5 * np.std(counts) / np.sqrt(len(keys))


@pytest.mark.parametrize("shape", SHAPES)
def test_expected_l0_gradient_matches_finite_differences(shape):
    rng = np.random.default_rng(0)
    log_alpha = {"a": jnp.asarray(rng.normal(size=4) * 2), "b": jnp.asarray(rng.normal(size=3))}
    strength = {"a": jnp.asarray(rng.uniform(0.5, 2, size=4)), "b": 0.7}
    value = lambda la: expected_l0(la, strength, **shape)  # noqa: E731
    gradient = jax.jit(jax.grad(value))(log_alpha)
    step = 1e-6
    for name, leaf in log_alpha.items():
        for i in range(leaf.size):
            shifted = [{**log_alpha, name: leaf.at[i].add(sign * step)} for sign in (1, -1)]
            difference = (value(shifted[0]) - value(shifted[1])) / (2 * step)
            np.testing.assert_allclose(gradient[name][i], difference, rtol=1e-7)


def test_deterministic_gates_are_the_clipped_stretched_sigmoid():
    """Exactly 0 below log(-gamma / zeta), exactly 1 above log((1 - gamma) / (zeta - 1)), and
    sigmoid(log_alpha) (zeta - gamma) + gamma between."""
    log_alpha = np.linspace(-5, 5, 101)
    gates = np.asarray(deterministic(jnp.asarray(log_alpha)))
    np.testing.assert_array_equal(gates == 0, log_alpha <= np.log(0.1 / 1.1))
    np.testing.assert_array_equal(gates == 1, log_alpha >= np.log(1.1 / 0.1))
    np.testing.assert_allclose(gates, np.clip(expit(log_alpha) * 1.2 - 0.1, 0, 1), rtol=1e-12)


def test_gates_keep_dtypes_and_gradients_flow():
    """float32 and bfloat16 gates and penalties; the reparametrized gradient is 0 on clipped
    gates and positive on the others."""
    log_alpha = {"f32": jnp.zeros(1000, jnp.float32), "bf16": jnp.zeros(10, jnp.bfloat16)}
    gates = sample(jax.random.key(0), log_alpha)
    assert gates["f32"].dtype == jnp.float32 and gates["bf16"].dtype == jnp.bfloat16
    assert expected_l0(log_alpha["bf16"]).dtype == jnp.bfloat16
    z, vjp = jax.vjp(lambda a: sample(jax.random.key(0), a), log_alpha["f32"])
    (grad,) = vjp(jnp.ones_like(z))
    clipped = (z == 0) | (z == 1)
    assert 0 < clipped.sum() < 1000
    assert np.all(grad[clipped] == 0) and np.all(grad[~clipped] > 0)


def test_transform_adds_the_penalty_gradient_to_log_alpha_leaves():
    """add_expected_l0_gradient adds grad(strength * expected_l0) on the leaves named log_alpha
    (default mask) or chosen by a mask, nothing elsewhere; jitted and under inject_hyperparams."""
    params = {
        "dense": {"kernel": jnp.ones((2, 3)), "log_alpha": jnp.linspace(-2.0, 2.0, 3)},
        "gates": jnp.array([0.5, -0.5]),
    }
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.1), params)
    strength = 0.05
    penalty_grad = jax.grad(expected_l0)(params["dense"]["log_alpha"], strength)
    tx = add_expected_l0_gradient(strength)
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["dense"]["log_alpha"], 0.1 + penalty_grad, rtol=1e-12)
    np.testing.assert_array_equal(updates["dense"]["kernel"], grads["dense"]["kernel"])
    np.testing.assert_array_equal(updates["gates"], grads["gates"])

    mask = {"dense": {"kernel": False, "log_alpha": False}, "gates": True}
    injected = optax.inject_hyperparams(add_expected_l0_gradient)(strength=strength, mask=mask)
    updates, _ = jax.jit(injected.update)(grads, injected.init(params), params)
    expected = 0.1 + jax.grad(expected_l0)(params["gates"], strength)
    np.testing.assert_allclose(updates["gates"], expected, rtol=1e-12)
    np.testing.assert_array_equal(updates["dense"]["log_alpha"], grads["dense"]["log_alpha"])


def test_default_mask_finds_log_alpha_in_a_flax_model():
    """In nnx.Optimizer, the gradient goes to the nnx.Param attributes named log_alpha only."""

    class Gated(nnx.Module):
        def __init__(self, rngs):
            self.linear = nnx.Linear(3, 2, rngs=rngs)
            self.log_alpha = nnx.Param(jnp.linspace(-1.0, 1.0, 3))

    model = Gated(nnx.Rngs(0))
    kernel, log_alpha = model.linear.kernel[...], model.log_alpha[...]
    tx = optax.chain(add_expected_l0_gradient(0.5), optax.sgd(1.0))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    optimizer.update(model, jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param)))
    np.testing.assert_array_equal(model.linear.kernel[...], kernel)
    expected = log_alpha - jax.grad(expected_l0)(log_alpha, 0.5)
    np.testing.assert_allclose(model.log_alpha[...], expected, rtol=1e-6)


def test_a_tiny_model_prunes_while_fitting():
    """Linear regression with a gate per feature, trained with Adam on the squared error plus
    the expected L0 penalty: at test time the 15 irrelevant features' gates are exactly 0, the 5
    relevant ones are open, and the gated model fits held-out data. Without the penalty (the
    gates' noise alone closes some) fewer close."""
    rng = np.random.default_rng(0)
    n, p = 300, 20
    X = rng.normal(size=(2 * n, p))
    w_true = np.zeros(p)
    w_true[:5] = [1.5, -2.0, 1.0, 0.8, -1.2]
    y = X @ w_true + 0.1 * rng.normal(size=2 * n)
    (X_train, y_train), (X_test, y_test) = (X[:n], y[:n]), (X[n:], y[n:])

    def loss(params, key):
        gates = sample(key, params["log_alpha"])
        return jnp.mean((X_train @ (params["w"] * gates) - y_train) ** 2)

    @jax.jit
    def train(strength):
        tx = optax.chain(add_expected_l0_gradient(strength), optax.adam(0.05))

        def step(carry, key):
            params, state = carry
            updates, state = tx.update(jax.grad(loss)(params, key), state, params)
            return (optax.apply_updates(params, updates), state), None

        params = {"w": jnp.zeros(p), "log_alpha": jnp.full(p, 2.0)}
        keys = jax.random.split(jax.random.key(0), 1500)
        params = jax.lax.scan(step, (params, tx.init(params)), keys)[0][0]
        return params["w"], params["log_alpha"]

    w, log_alpha = train(0.02)
    gates = deterministic(log_alpha)
    assert np.all(gates[5:] == 0) and np.all(gates[:5] > 0.9)
    assert expected_l0(log_alpha) < 5.1  # the training gates too: 15 almost always closed
    residual = np.mean((X_test @ np.asarray(w * gates) - y_test) ** 2)
    assert residual < 0.005 * np.var(y_test)
    _, log_alpha = train(0.0)
    assert np.sum(deterministic(log_alpha) == 0) < 14 and expected_l0(log_alpha) > 7


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(beta=0.0), "beta"),
        (dict(beta=-1.0), "beta"),
        (dict(gamma=0.0), "gamma"),
        (dict(zeta=1.0), "zeta"),
        (dict(zeta=float("inf")), "zeta"),
    ],
)
def test_bad_shape_options_are_named(kwargs, name):
    log_alpha = jnp.zeros(3)
    for call in (
        lambda: sample(jax.random.key(0), log_alpha, **kwargs),
        lambda: expected_l0(log_alpha, 1.0, **kwargs),
        lambda: add_expected_l0_gradient(1.0, **kwargs),
    ):
        with pytest.raises(ValueError, match=name):
            call()
    if name != "beta":
        with pytest.raises(ValueError, match=name):
            deterministic(log_alpha, **kwargs)


def test_bad_strength_is_named():
    with pytest.raises(ValueError, match="strength"):
        expected_l0(jnp.zeros(3), -1.0)
    with pytest.raises(ValueError, match="strength"):
        add_expected_l0_gradient(-1.0)
    with pytest.raises(ValueError, match="strength must be .* a pytree prefix of log_alpha"):
        expected_l0({"a": jnp.zeros(2)}, {"b": 1.0})
