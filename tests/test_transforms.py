"""Tests of jreg.transforms: the optax transformations, against scikit-learn and optax."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from flax.training import train_state
from optax._src.base import NO_PARAMS_MSG
from sklearn.linear_model import Lasso, lasso_path

import jreg
from jreg import penalties, prox

# ------------------------------------------------------------------------------------------------
# One shared battery over every transformation, each built from an array strength ``s``.

TRANSFORMS = {
    "add_penalty_gradient": lambda s: jreg.add_penalty_gradient(penalties.l1, s),
    "proximal": lambda s: jreg.proximal(prox.l1, s, 0.1),
    "proximal_elastic_net": lambda s: jreg.proximal(
        prox.elastic_net, s, 0.1, prox_kwargs={"l1_ratio": 0.3}
    ),
    "proximal_adam": lambda s: jreg.proximal_adam(prox.l1, s, 0.1),
    "proximal_adagrad": lambda s: jreg.proximal_adagrad(prox.l1, s, 0.1),
    "projected": lambda s: jreg.projected(
        optax.projections.projection_l2_ball, projection_kwargs={"scale": s}
    ),
}
# The factories for optax.inject_hyperparams, with their static (callable) arguments.
INJECTABLE = {
    "add_penalty_gradient": (jreg.add_penalty_gradient, ("penalty",), (penalties.l1,), {}),
    "proximal": (jreg.proximal, ("prox",), (prox.l1,), {"learning_rate": 0.1}),
    "proximal_adam": (jreg.proximal_adam, ("prox",), (prox.l1,), {"learning_rate": 0.1}),
    "proximal_adagrad": (jreg.proximal_adagrad, ("prox",), (prox.l1,), {"learning_rate": 0.1}),
}


def _params(dtype=jnp.float64):
    return {
        "w": jnp.asarray([[0.5, -0.02, 1.5], [0.01, -2.0, 0.3]], dtype),
        "b": jnp.asarray([0.05, -0.8, 0.2], dtype),
    }


def _grads(dtype=jnp.float64):
    return jax.tree.map(lambda p: jnp.cos(3 * p).astype(dtype), _params(dtype))


def _stack(trees):
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def _assert_tree_allclose(actual, expected, **kwargs):
    jax.tree.map(lambda a, e: np.testing.assert_allclose(a, e, **kwargs), actual, expected)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_params_none_raises_optax_error(name):
    tx = TRANSFORMS[name](0.1)
    with pytest.raises(ValueError, match=re.escape(NO_PARAMS_MSG)):
        tx.update(_grads(), tx.init(_params()), None)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_new_strength_does_not_recompile_and_vmaps(name):
    @jax.jit
    def step(strength, params, grads):
        tx = TRANSFORMS[name](strength)
        updates, _ = tx.update(grads, tx.init(params), params)
        return optax.apply_updates(params, updates)

    strengths = jnp.asarray([0.0, 0.05, 0.3, 2.0])
    looped = [step(s, _params(), _grads()) for s in strengths]
    assert step._cache_size() == 1
    vmapped = jax.vmap(step, in_axes=(0, None, None))(strengths, _params(), _grads())
    _assert_tree_allclose(vmapped, _stack(looped))


@pytest.mark.parametrize("name", TRANSFORMS)
def test_keeps_float32_and_works_in_chain_masked_and_partition(name):
    params, grads = _params(jnp.float32), _grads(jnp.float32)
    mask = {"w": True, "b": False}
    chained = optax.chain(optax.sgd(0.1), optax.masked(TRANSFORMS[name](0.2), mask))
    partitioned = optax.chain(
        optax.sgd(0.1),
        optax.partition(
            {"reg": TRANSFORMS[name](0.2), "free": optax.identity()},
            {"w": "reg", "b": "free"},
        ),
    )
    outputs = []
    for tx in (chained, partitioned):
        state = tx.init(params)
        for _ in range(2):
            updates, state = jax.jit(tx.update)(grads, state, params)
        outputs.append(updates)
        assert jax.tree.map(lambda u: u.dtype, updates) == {"b": jnp.float32, "w": jnp.float32}
        np.testing.assert_allclose(updates["b"], -0.1 * grads["b"], rtol=1e-6)
    _assert_tree_allclose(*outputs)


@pytest.mark.parametrize("name", INJECTABLE)
def test_inject_hyperparams_strength_is_traced_and_vmappable(name):
    factory, static_args, args, kwargs = INJECTABLE[name]
    injected = optax.inject_hyperparams(factory, static_args=static_args)
    tx = injected(*args, strength=0.1, **kwargs)
    params, grads = _params(), _grads()

    @jax.jit
    def step(strength):
        state = tx.init(params)
        state.hyperparams["strength"] = strength
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates)

    strengths = jnp.asarray([0.0, 0.1, 1.0])
    looped = [step(s) for s in strengths]
    assert step._cache_size() == 1
    _assert_tree_allclose(jax.vmap(step)(strengths), _stack(looped))
    for s, result in zip(strengths, looped, strict=True):
        tx_s = factory(*args, strength=float(s), **kwargs)
        updates, _ = tx_s.update(grads, tx_s.init(params), params)
        _assert_tree_allclose(result, optax.apply_updates(params, updates))


def test_inject_hyperparams_passes_prox_kwargs_and_schedules():
    schedule = optax.linear_schedule(0.5, 0.1, 4)
    tx = optax.inject_hyperparams(jreg.proximal, static_args=("prox",))(
        prox.group_lasso, 0.3, schedule, prox_kwargs={"axis": -1}
    )
    params, grads = _params(), _grads()
    state, update = tx.init(params), jax.jit(tx.update)
    for t in range(3):
        updates, state = update(grads, state, params)
        point = optax.apply_updates(params, grads)
        expected = prox.group_lasso(point, 0.3, scaling=schedule(t), axis=-1)
        _assert_tree_allclose(optax.apply_updates(params, updates), expected)


# ------------------------------------------------------------------------------------------------
# Against references: scikit-learn's Lasso and lasso_path, optax.add_decayed_weights.


@pytest.fixture(scope="module")
def lasso_problem():
    rng = np.random.default_rng(0)
    n, p = 60, 12
    X = rng.standard_normal((n, p))
    coef = np.zeros(p)
    coef[:4] = [2.0, -1.5, 1.0, 0.5]
    y = X @ coef + 0.5 * rng.standard_normal(n)
    return X, y


def _lasso_objective(X, y, w, strength):
    return 0.5 / len(y) * np.sum((y - X @ w) ** 2) + strength * np.abs(w).sum()


def _train(X, y, tx, steps):
    """Full-batch training of least squares, sklearn's 1/(2n) scaling, from w = 0."""
    X, y = jnp.asarray(X), jnp.asarray(y)

    def loss(w):
        return 0.5 * jnp.mean((y - X @ w) ** 2)

    def step(carry, _):
        w, state = carry
        updates, state = tx.update(jax.grad(loss)(w), state, w)
        return (optax.apply_updates(w, updates), state), None

    w = jnp.zeros(X.shape[1])
    return jax.lax.scan(step, (w, tx.init(w)), length=steps)[0][0]


def _step_size(X):
    return 1.0 / (np.linalg.norm(X, 2) ** 2 / len(X))


def test_proximal_sgd_reproduces_sklearn_lasso(lasso_problem):
    X, y = lasso_problem
    strength, lr = 0.2, _step_size(X)
    w = np.asarray(
        jax.jit(_train, static_argnums=(2, 3))(
            X, y, optax.chain(optax.sgd(lr), jreg.proximal(prox.l1, strength, lr)), 2000
        )
    )
    reference = Lasso(alpha=strength, fit_intercept=False, tol=1e-12, max_iter=100_000).fit(X, y)
    np.testing.assert_allclose(w, reference.coef_, atol=1e-9)
    np.testing.assert_array_equal(w == 0, reference.coef_ == 0)
    assert 0 < np.sum(w == 0) < len(w)


def test_vmapped_training_reproduces_lasso_path(lasso_problem):
    X, y = lasso_problem
    lr = _step_size(X)
    strengths = np.max(np.abs(X.T @ y)) / len(y) * np.logspace(0, -2, 8)
    _, coefs, _ = lasso_path(X, y, alphas=strengths, tol=1e-12, max_iter=100_000)

    def fit(strength):
        return _train(X, y, optax.chain(optax.sgd(lr), jreg.proximal(prox.l1, strength, lr)), 2000)

    w = np.asarray(jax.jit(jax.vmap(fit))(jnp.asarray(strengths)))
    np.testing.assert_allclose(w, coefs.T, atol=1e-8)
    np.testing.assert_array_equal(w == 0, coefs.T == 0)


@pytest.mark.parametrize(
    ("optimizer", "lr"), [(jreg.proximal_adam, 0.05), (jreg.proximal_adagrad, 0.3)]
)
def test_proximal_adaptive_reaches_lasso_optimum_where_adam_then_prox_does_not(
    lasso_problem, optimizer, lr
):
    X, y = lasso_problem
    strength = 0.2
    reference = Lasso(alpha=strength, fit_intercept=False, tol=1e-12, max_iter=100_000).fit(X, y)
    best = _lasso_objective(X, y, reference.coef_, strength)
    train = jax.jit(_train, static_argnums=(2, 3))
    w = np.asarray(train(X, y, optimizer(prox.l1, strength, lr), 3000))
    np.testing.assert_allclose(_lasso_objective(X, y, w, strength), best, rtol=1e-10)
    np.testing.assert_allclose(w, reference.coef_, atol=1e-7)
    np.testing.assert_array_equal(w == 0, reference.coef_ == 0)
    # Adam followed by a Euclidean prox has another fixed point: worse objective, no zeros.
    euclidean = optax.chain(optax.adam(0.05), jreg.proximal(prox.l1, strength, 0.05))
    w_euclidean = np.asarray(train(X, y, euclidean, 3000))
    assert _lasso_objective(X, y, w_euclidean, strength) > best * 1.05
    assert not np.any(w_euclidean == 0)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_add_penalty_gradient_l2_equals_add_decayed_weights(dtype):
    params, grads = _params(dtype), _grads(dtype)
    for strength in [0.0, 0.1, 0.37]:
        ours, _ = jreg.add_penalty_gradient(penalties.l2, strength).update(grads, (), params)
        theirs, _ = optax.add_decayed_weights(strength).update(grads, (), params)
        jax.tree.map(np.testing.assert_array_equal, ours, theirs)
        assert jax.tree.map(lambda u: u.dtype, ours) == jax.tree.map(lambda u: u.dtype, theirs)


def test_add_penalty_gradient_l1_is_strength_times_sign():
    params = _params()
    updates, _ = jreg.add_penalty_gradient(penalties.l1, 0.3).update(_grads(), (), params)
    _assert_tree_allclose(
        updates, jax.tree.map(lambda g, w: g + 0.3 * jnp.sign(w), _grads(), params)
    )


def test_add_penalty_gradient_l1_is_zero_at_zero():
    params = jnp.zeros(3)
    updates, _ = jreg.add_penalty_gradient(penalties.l1, 0.3).update(jnp.zeros(3), (), params)
    np.testing.assert_array_equal(updates, 0.0)


def test_add_penalty_gradient_passes_penalty_kwargs():
    params = _params()
    tx = jreg.add_penalty_gradient(penalties.group_lasso, 0.5, penalty_kwargs={"axis": 0})
    updates, _ = jax.jit(tx.update)(_grads(), (), params)
    gradient = jax.jit(jax.grad(penalties.group_lasso), static_argnames="axis")(params, 0.5, axis=0)
    _assert_tree_allclose(updates, optax.tree.add(_grads(), gradient))


# ------------------------------------------------------------------------------------------------
# Schedules, projections, flax.


def _report_scaling(x, strength, *, scaling):
    """A stand-in prox that returns its ``scaling``, to observe it."""
    del strength
    return jax.tree.map(lambda leaf, c: jnp.broadcast_to(c, leaf.shape), x, scaling)


def test_proximal_follows_the_schedule_step_by_step():
    schedule = optax.cosine_decay_schedule(0.5, decay_steps=5)
    tx = optax.chain(optax.sgd(schedule), jreg.proximal(_report_scaling, 1.0, schedule))
    params = jnp.zeros(2)
    state = tx.init(params)
    for t in range(7):
        updates, state = tx.update(jnp.ones(2), state, params)
        np.testing.assert_allclose(updates, schedule(t))


def test_proximal_adam_scaling_is_lr_over_root_second_moment():
    schedule = optax.linear_schedule(0.2, 0.05, 3)
    tx = jreg.proximal_adam(_report_scaling, 1.0, schedule, eps=1e-3)
    params, grads = jnp.zeros(2), jnp.asarray([2.0, -0.5])
    state = tx.init(params)
    for t in range(4):
        updates, state = tx.update(grads, state, params)  # constant grads: v_hat = grads**2
        np.testing.assert_allclose(updates, schedule(t) / (jnp.abs(grads) + 1e-3))


@pytest.mark.parametrize(
    ("projection", "kwargs", "norm"),
    [
        (optax.projections.projection_l1_ball, {"scale": 0.5}, lambda w: jnp.abs(w).sum()),
        (optax.projections.projection_l2_ball, {"scale": 0.5}, lambda w: jnp.sqrt(jnp.sum(w**2))),
        (optax.projections.projection_linf_ball, {"scale": 0.5}, lambda w: jnp.abs(w).max()),
    ],
)
def test_projected_gradient_descent_stays_in_the_ball(projection, kwargs, norm):
    target = jnp.asarray([2.0, -1.0, 0.1])
    tx = optax.chain(optax.sgd(0.1), jreg.projected(projection, projection_kwargs=kwargs))

    def step(carry, _):
        w, state = carry
        updates, state = tx.update(w - target, state, w)
        w = optax.apply_updates(w, updates)
        return (w, state), norm(w)

    w = jnp.zeros(3)
    (w, _), norms = jax.jit(lambda w: jax.lax.scan(step, (w, tx.init(w)), length=50))(w)
    assert np.all(norms <= 0.5 + 1e-12)
    np.testing.assert_allclose(w, projection(w, **kwargs))
    np.testing.assert_allclose(norm(w), 0.5)


class _MLP(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(6, 16, rngs=rngs)
        self.out = nnx.Linear(16, 1, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.hidden(x)))


def test_flax_nnx_model_trained_with_proximal_l1_has_exact_zeros():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((64, 6)), jnp.float32)
    y = x[:, :1] - 0.5 * x[:, 1:2]
    model = _MLP(nnx.Rngs(0))
    lr = 0.1
    tx = optax.chain(optax.sgd(lr), jreg.proximal(prox.l1, 0.05, lr))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(train_step(model, optimizer)) for _ in range(100)]
    kernel = model.hidden.kernel[...]
    assert kernel.dtype == jnp.float32
    assert 0.2 < float(jnp.mean(kernel == 0)) < 1.0
    assert losses[-1] < losses[0]


def test_flax_train_state_with_proximal_adam_and_per_leaf_strength():
    params = {"w": jnp.asarray([1.0, 0.01, -0.5]), "b": jnp.asarray(0.3)}
    state = train_state.TrainState.create(
        apply_fn=lambda p, x: x @ p["w"] + p["b"],
        params=params,
        tx=jreg.proximal_adam(prox.l1, {"w": 0.5, "b": 0.0}, 0.05),
    )
    grads = {"w": jnp.asarray([0.1, 0.1, 0.1]), "b": jnp.asarray(0.1)}
    for _ in range(3):
        state = state.apply_gradients(grads=grads)
    # Constant gradients: each Adam step is lr * sign(g), then w is thresholded at lr * 0.5 / 0.1.
    np.testing.assert_allclose(state.params["w"], [1.0 - 3 * 0.3, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(state.params["b"], 0.3 - 3 * 0.05, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Bad input, named when the value is concrete.


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: jreg.proximal(prox.l1, -1.0, 0.1), "strength"),
        (lambda: jreg.proximal(prox.l1, {"w": 0.1, "b": jnp.nan}, 0.1), "strength"),
        (lambda: jreg.proximal(prox.l1, 0.1, -0.1), "learning_rate"),
        (lambda: jreg.proximal_adam(prox.l1, 0.1, jnp.inf), "learning_rate"),
        (lambda: jreg.proximal_adagrad(prox.l1, -2.0, 0.1), "strength"),
        (lambda: jreg.add_penalty_gradient(penalties.l2, jnp.asarray([0.1, -0.1])), "strength"),
    ],
)
def test_bad_hyperparameters_raise_value_error_naming_them(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize(
    "build",
    [
        lambda: jreg.proximal(prox.elastic_net, 0.1, 0.1, prox_kwargs=0.5),
        lambda: jreg.add_penalty_gradient(penalties.l1, 0.1, penalty_kwargs=[1]),
        lambda: jreg.projected(optax.projections.projection_l1_ball, projection_kwargs="x"),
    ],
)
def test_options_must_be_a_dict(build):
    with pytest.raises(TypeError, match="_kwargs must be a dict"):
        build()


def test_bad_prox_kwargs_raise_when_the_prox_runs():
    tx = jreg.proximal(prox.elastic_net, 0.1, 0.1, prox_kwargs={"l1_ratio": 1.5})
    with pytest.raises(ValueError, match="l1_ratio"):
        tx.update(_grads(), tx.init(_params()), _params())


# ------------------------------------------------------------------------------------------------
# Flax nnx as users write it, group penalties in the adaptive metrics, one argument order.


_KERNELS_ONLY = {"hidden": {"kernel": 0.5, "bias": 0.0}, "out": {"kernel": 0.5, "bias": 0.0}}


@pytest.mark.parametrize(
    "strength", [_KERNELS_ONLY, lambda path, leaf: 0.5 if path[-1] == "kernel" else 0.0]
)
def test_nnx_optimizer_takes_per_leaf_strengths_as_a_plain_dict_or_a_function(strength):
    """``nnx.Optimizer`` hands ``nnx.State`` trees: a nested dict is matched by names, a
    function gets each leaf's path. Biases (strength 0) keep moving, kernels get exact zeros,
    and the step equals the one on plain dicts of arrays."""
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((64, 6)))
    y = x[:, :1] - 0.5 * x[:, 1:2]
    model = _MLP(nnx.Rngs(0))
    plain = jax.tree.map(jnp.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    tx = optax.chain(optax.sgd(0.1), jreg.proximal(prox.l1, strength, 0.1))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    grads = nnx.grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
    optimizer.update(model, grads)
    reference_tx = optax.chain(optax.sgd(0.1), jreg.proximal(prox.l1, _KERNELS_ONLY, 0.1))
    plain_grads = nnx.to_pure_dict(grads)
    updates, _ = reference_tx.update(plain_grads, reference_tx.init(plain), plain)
    expected = optax.apply_updates(plain, updates)
    np.testing.assert_allclose(model.hidden.kernel[...], expected["hidden"]["kernel"], atol=1e-12)
    np.testing.assert_allclose(model.out.bias[...], expected["out"]["bias"], atol=1e-12)
    assert np.any(model.hidden.kernel[...] == 0)
    np.testing.assert_allclose(  # the bias is unpenalized: a plain SGD step
        model.hidden.bias[...], plain["hidden"]["bias"] - 0.1 * plain_grads["hidden"]["bias"]
    )


def test_a_strength_dict_naming_no_leaf_or_a_negative_function_value_is_an_error():
    params = {"a": {"kernel": jnp.ones(2), "bias": jnp.ones(1)}}
    state = nnx.State(params)
    with pytest.raises(ValueError, match="strength has no entry for params' leaf a/bias"):
        penalties.l1(state, {"a": {"kernel": 1.0}})
    with pytest.raises(ValueError, match="strength of a/bias must be finite and non-negative"):
        penalties.l1(params, lambda path, leaf: -1.0)


@pytest.mark.parametrize("factory", [jreg.proximal_adam, jreg.proximal_adagrad])
def test_the_previous_argument_order_warns_and_gives_the_same_steps(factory):
    params, grads = jnp.array([1.0, 0.05, -2.0]), jnp.array([-0.5, 0.5, 0.1])
    new = factory(prox.mcp, 0.3, 0.1, prox_kwargs={"gamma": 3.0})
    with pytest.warns(DeprecationWarning, match=r"\(prox, strength, learning_rate\)"):
        old = factory(0.1, 0.3, prox=prox.mcp, prox_kwargs={"gamma": 3.0})
    with pytest.warns(DeprecationWarning):
        default = factory(learning_rate=0.1, strength=0.3)
    for tx, reference in ((old, new), (default, factory(prox.l1, 0.3, 0.1))):
        steps = [t.update(grads, t.init(params), params)[0] for t in (tx, reference)]
        np.testing.assert_array_equal(*steps)


def _group_lasso_objective(X, y, w, strength):
    return 0.5 / len(y) * np.sum((y - X @ w.reshape(-1)) ** 2) + strength * np.sum(
        np.linalg.norm(w, axis=1)
    )


def _minimize(loss, tx, w0, steps):
    """``steps`` full-batch steps of ``tx`` on ``loss`` from ``w0``."""

    def step(carry, _):
        w, state = carry
        updates, state = tx.update(jax.grad(loss)(w), state, w)
        return (optax.apply_updates(w, updates), state), None

    return np.asarray(jax.jit(lambda: jax.lax.scan(step, (w0, tx.init(w0)), length=steps)[0][0])())


@pytest.mark.parametrize(
    ("optimizer", "lr"), [(jreg.proximal_adam, 0.02), (jreg.proximal_adagrad, 0.3)]
)
def test_adaptive_group_lasso_reaches_the_group_lasso_optimum(optimizer, lr):
    """One metric per group (its largest Adam/Adagrad diagonal entry): the iterates reach the
    minimizer (proximal gradient's, long run), which meets the group lasso's optimality
    conditions, with whole groups at 0."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((80, 12)) * np.repeat([1.0, 3.0, 0.3, 1.0], 3)[None, :]
    y = X[:, :3] @ np.array([1.0, -1.0, 0.5]) + 0.1 * rng.standard_normal(80)
    strength, Xj, yj, w0 = 0.1, jnp.asarray(X), jnp.asarray(y), jnp.zeros((4, 3))

    def loss(w):
        return 0.5 * jnp.mean((yj - Xj @ w.reshape(-1)) ** 2)

    grouped = {"prox_kwargs": {"axis": 1}}
    w = _minimize(loss, optimizer(prox.group_lasso, strength, lr, **grouped), w0, 4000)
    grad = np.asarray(jax.grad(loss)(jnp.asarray(w)))
    norms = np.linalg.norm(w, axis=1)
    assert np.sum(norms == 0) >= 1 and np.sum(norms > 0) >= 1
    for g, wg, norm in zip(grad, w, norms, strict=True):
        if norm > 0:  # grad_g + s w_g / |w_g| = 0
            np.testing.assert_allclose(g, -strength * wg / norm, atol=1e-6)
        else:  # |grad_g| <= s
            assert np.linalg.norm(g) <= strength * (1 + 1e-9)
    step = _step_size(X)
    ista = optax.chain(optax.sgd(step), jreg.proximal(prox.group_lasso, strength, step, **grouped))
    best = _group_lasso_objective(X, y, _minimize(loss, ista, w0, 20000), strength)
    np.testing.assert_allclose(_group_lasso_objective(X, y, w, strength), best, rtol=1e-9)


@pytest.mark.parametrize("name", ["linf", "nuclear"])
def test_adaptive_transforms_take_every_group_prox(name):
    """The step of a group prox uses one metric per group: for constant gradients Adam's first
    step is lr * sign(g) per coordinate, here lr * g / max|g| over the group, then the prox."""
    params = jnp.array([[1.0, 0.5], [-2.0, 0.3]])
    grads = jnp.array([[0.4, -0.1], [0.2, 0.2]])
    tx = jreg.proximal_adam(getattr(prox, name), 0.2, 0.1)
    updates, _ = tx.update(grads, tx.init(params), params)
    scale = 0.1 / (np.max(np.abs(np.asarray(grads))) + 1e-8)  # one group: the whole leaf
    expected = getattr(prox, name)(params - scale * grads, 0.2, scaling=scale)
    np.testing.assert_allclose(optax.apply_updates(params, updates), expected, rtol=1e-6)


def test_inject_hyperparams_rejects_concrete_negative_strength_and_traces_nan():
    """A negative injected strength is an error where concrete and gives NaN parameters (never a
    plausible step) under jit."""
    params, grads = jnp.array([1.0, -0.5]), jnp.array([0.1, 0.1])
    tx = optax.inject_hyperparams(jreg.proximal_adam, static_args=("prox",))(
        prox.l1, strength=0.1, learning_rate=0.1
    )
    state = tx.init(params)
    state.hyperparams["strength"] = jnp.asarray(-1.0)
    updates, _ = jax.jit(tx.update)(grads, state, params)
    assert np.all(np.isnan(np.asarray(updates)))
    with pytest.raises(ValueError, match="strength must be finite and non-negative"):
        tx.update(grads, state, params)  # concrete: checked


@pytest.mark.parametrize("name", INJECTABLE)
def test_jreg_inject_hyperparams_injects_a_pytree_strength(name):
    """Every leaf of a per-leaf strength is injected: ``state.hyperparams["strength"]`` is the
    pytree; a new value under jit does not recompile, vmaps, and equals the transformation
    built with that strength."""
    factory, static_args, args, kwargs = INJECTABLE[name]
    params, grads = _params(), _grads()
    tx = jreg.inject_hyperparams(factory, static_args=static_args)(
        *args, strength={"w": 0.1, "b": 0.0}, **kwargs
    )
    assert set(tx.init(params).hyperparams["strength"]) == {"w", "b"}

    @jax.jit
    def step(w_strength):
        state = tx.init(params)
        state.hyperparams["strength"]["w"] = w_strength
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state.hyperparams["strength"]["w"]

    values = jnp.asarray([0.0, 0.3, 1.0])
    looped = [step(v)[0] for v in values]
    assert step._cache_size() == 1
    _assert_tree_allclose(jax.vmap(step)(values)[0], _stack(looped))
    for value, result in zip(values, looped, strict=True):
        direct = factory(*args, strength={"w": float(value), "b": 0.0}, **kwargs)
        updates, _ = direct.update(grads, direct.init(params), params)
        _assert_tree_allclose(result, optax.apply_updates(params, updates))
    assert float(step(jnp.asarray(0.3))[1]) == pytest.approx(0.3)


def test_jreg_inject_hyperparams_is_optax_for_numbers_and_nan_for_negative_leaves():
    params, grads = _params(), _grads()
    ours = jreg.inject_hyperparams(jreg.proximal, static_args="prox")(prox.l1, 0.2, 0.1)
    theirs = optax.inject_hyperparams(jreg.proximal, static_args=("prox",))(prox.l1, 0.2, 0.1)
    steps = [tx.update(grads, tx.init(params), params)[0] for tx in (ours, theirs)]
    _assert_tree_allclose(*steps)
    tx = jreg.inject_hyperparams(jreg.proximal, static_args="prox")(
        prox.l1, {"w": 0.1, "b": 0.0}, 0.1
    )
    state = tx.init(params)
    state.hyperparams["strength"]["w"] = jnp.asarray(-1.0)
    updates, _ = jax.jit(tx.update)(grads, state, params)
    assert np.all(np.isnan(np.asarray(updates["w"])))
    with pytest.raises(ValueError, match="strength must be finite and non-negative"):
        tx.update(grads, state, params)
