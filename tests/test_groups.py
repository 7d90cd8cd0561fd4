"""jreg.groups: group lasso over groups spanning leaves, its prox, the transforms, pruning.

References: the joint group vectors are sliced out in numpy and the penalty, block soft
thresholding and gradient computed there; the prox is also checked by its optimality condition;
pruning by the outputs of the rebuilt smaller flax model on scikit-learn's digits.
"""

import pathlib
import runpy
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from sklearn.datasets import load_digits

import jreg
from jreg import groups

NEURON = [("hidden/kernel", 1), ("hidden/bias", 0), ("out/kernel", 0)]


def mlp_params(seed=0, dtype=np.float64, n_in=5, n_hidden=4, n_out=3):
    rng = np.random.default_rng(seed)
    return {
        "hidden": {
            "kernel": rng.normal(size=(n_in, n_hidden)).astype(dtype),
            "bias": rng.normal(size=n_hidden).astype(dtype),
        },
        "out": {
            "kernel": rng.normal(size=(n_hidden, n_out)).astype(dtype),
            "bias": rng.normal(size=n_out).astype(dtype),
        },
    }


def numpy_groups(params):
    """Row j: the joint vector of neuron j (its column, its bias, its outgoing row)."""
    kernel, bias = params["hidden"]["kernel"], params["hidden"]["bias"]
    return np.concatenate([kernel.T, bias[:, None], params["out"]["kernel"]], axis=1)


def numpy_prox(params, threshold):
    """Block soft thresholding of each neuron's joint vector, written out in numpy."""
    norms = np.linalg.norm(numpy_groups(params).astype(np.float64), axis=1)
    factor = np.maximum(1 - threshold / np.where(norms > 0, norms, 1), 0)
    out = jax.tree.map(np.array, params)
    out["hidden"]["kernel"] = params["hidden"]["kernel"] * factor[None, :]
    out["hidden"]["bias"] = params["hidden"]["bias"] * factor
    out["out"]["kernel"] = params["out"]["kernel"] * factor[:, None]
    return out


def assert_trees_close(actual, expected, **tolerances):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), e, **tolerances)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("strength", [0.7, np.array([0.0, 1.0, 2.0, 0.5])])
def test_penalty_equals_numpy_under_jit(dtype, strength):
    params = mlp_params(dtype=dtype)
    neurons = groups.units(params, NEURON)
    # out/bias, outside the groups, adds nothing
    expected = np.sum(strength * np.linalg.norm(numpy_groups(params).astype(np.float64), axis=1))
    value = jax.jit(lambda p, s: groups.group_lasso(p, s, groups=neurons))(params, strength)
    assert value.dtype == dtype
    np.testing.assert_allclose(value, expected, rtol=1e-6 if dtype == np.float32 else 1e-13)


def test_penalty_norm_does_not_overflow():
    params = jax.tree.map(lambda w: w * 1e200, mlp_params())
    neurons = groups.units(params, NEURON)
    expected = np.linalg.norm(numpy_groups(mlp_params()), axis=1).sum() * 1e200
    np.testing.assert_allclose(groups.group_lasso(params, 1.0, groups=neurons), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prox_equals_numpy_block_soft_threshold_and_is_optimal(dtype):
    params = mlp_params(dtype=dtype)
    params["hidden"]["kernel"][:, 2] *= 0.1  # neuron 2 falls below the threshold
    params["hidden"]["bias"][2] *= 0.1
    params["out"]["kernel"][2] *= 0.1
    strength, scaling = 0.5, 2.0
    neurons = groups.units(params, NEURON)
    prox = jax.jit(lambda x, s, c: groups.prox_group_lasso(x, s, scaling=c, groups=neurons))
    out = prox(params, strength, scaling)
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12}
    assert_trees_close(out, numpy_prox(params, strength * scaling), **tolerance)
    assert jax.tree.map(jnp.result_type, out) == jax.tree.map(jnp.result_type, params)
    np.testing.assert_array_equal(out["out"]["bias"], params["out"]["bias"])  # not grouped
    # optimality of argmin 1/2||y - x||^2 + c s sum_j ||y_j||: x_j - y_j = c s y_j / ||y_j|| where
    # y_j != 0, and ||x_j|| <= c s where y_j == 0
    x, y = numpy_groups(params).astype(np.float64), numpy_groups(jax.tree.map(np.asarray, out))
    y_norms = np.linalg.norm(y, axis=1)
    assert np.all(y[2] == 0) and np.all(y_norms[[0, 1, 3]] > 0)
    assert np.linalg.norm(x[2]) <= strength * scaling
    active = y_norms > 0
    residual = x[active] - y[active] - strength * scaling * y[active] / y_norms[active, None]
    np.testing.assert_allclose(residual, 0, atol=1e-5 if dtype == np.float32 else 1e-12)


def test_prox_with_a_strength_per_group():
    params = mlp_params()
    strength = np.array([0.0, 10.0, 0.1, 0.2])
    out = groups.prox_group_lasso(params, strength, groups=groups.units(params, NEURON))
    assert_trees_close(out, numpy_prox(params, strength), rtol=1e-12)
    np.testing.assert_array_equal(out["hidden"]["bias"][0], params["hidden"]["bias"][0])
    assert np.all(np.asarray(out["hidden"]["kernel"][:, 1]) == 0)


def test_vmap_over_strength_matches_numpy():
    params = mlp_params()
    neurons = groups.units(params, NEURON)
    strengths = np.array([0.0, 0.5, 3.0])
    out = jax.jit(jax.vmap(lambda s: groups.prox_group_lasso(params, s, groups=neurons)))(strengths)
    for i, strength in enumerate(strengths):
        expected = numpy_prox(params, strength)
        assert_trees_close(jax.tree.map(lambda leaf, i=i: leaf[i], out), expected, rtol=1e-12)


def test_gradient_under_jit_and_zero_at_a_zero_group():
    params = mlp_params()
    params["hidden"]["kernel"][:, 1] = 0
    params["hidden"]["bias"][1] = 0
    params["out"]["kernel"][1] = 0
    neurons = groups.units(params, NEURON)
    grad = jax.jit(jax.grad(lambda p: groups.group_lasso(p, 0.3, groups=neurons)))(params)
    norms = np.linalg.norm(numpy_groups(params), axis=1)
    direction = 0.3 / np.where(norms > 0, norms, 1)  # d/dw s ||w_j|| = s w_j / ||w_j||, 0 at 0
    expected = jax.tree.map(np.zeros_like, params)
    expected["hidden"]["kernel"] = params["hidden"]["kernel"] * direction[None, :]
    expected["hidden"]["bias"] = params["hidden"]["bias"] * direction
    expected["out"]["kernel"] = params["out"]["kernel"] * direction[:, None]
    assert_trees_close(grad, expected, rtol=1e-12, atol=1e-300)


def test_add_penalty_gradient_adds_the_group_gradient():
    params = mlp_params()
    neurons = groups.units(params, NEURON)
    tx = jreg.add_penalty_gradient(groups.group_lasso, 0.3, penalty_kwargs={"groups": neurons})
    zeros = jax.tree.map(np.zeros_like, params)
    updates, _ = jax.jit(tx.update)(zeros, tx.init(params), params)
    norms = np.linalg.norm(numpy_groups(params), axis=1)
    np.testing.assert_allclose(updates["hidden"]["bias"], 0.3 * params["hidden"]["bias"] / norms)
    np.testing.assert_array_equal(updates["out"]["bias"], 0)


class MLP(nnx.Module):
    def __init__(self, n_in, n_hidden, n_out, *, rngs):
        self.hidden = nnx.Linear(n_in, n_hidden, rngs=rngs)
        self.out = nnx.Linear(n_hidden, n_out, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.hidden(x)))


def test_nnx_state_and_plain_dict_give_the_same_results():
    state = nnx.state(MLP(5, 4, 3, rngs=nnx.Rngs(0)), nnx.Param)
    plain = nnx.to_pure_dict(state)
    from_state, from_dict = groups.units(state, NEURON), groups.units(plain, NEURON)
    assert from_state == from_dict
    np.testing.assert_allclose(
        groups.group_lasso(state, 0.5, groups=from_state),
        np.linalg.norm(numpy_groups(jax.tree.map(np.asarray, plain)), axis=1).sum() * 0.5,
        rtol=1e-6,
    )
    out = groups.prox_group_lasso(state, 0.5, groups=from_state)
    assert isinstance(out, nnx.State)
    expected = numpy_prox(jax.tree.map(np.asarray, plain), 0.5)
    assert_trees_close(nnx.to_pure_dict(out), expected, rtol=1e-6)


def digits(n_train=1200):
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    return (X[:n_train], y[:n_train]), (X[n_train:], y[n_train:])


def train(model, transforms, X, y, *, steps=300, learning_rate=0.5):
    """``steps`` of full-batch SGD chained with ``transforms`` (the proxes); the trained params
    and the model's graphdef."""
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.chain(optax.sgd(learning_rate), *transforms)

    def loss(params):
        logits = nnx.merge(graphdef, params)(X)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def step(carry, _):
        params, state = carry
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        return (optax.apply_updates(params, updates), state), None

    run = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), length=steps)[0][0])
    return graphdef, run(params)


def group_prox(strength, groups_, learning_rate=0.5):
    return jreg.proximal(
        groups.prox_group_lasso, strength, learning_rate, prox_kwargs={"groups": groups_}
    )


def rebuild(make_smaller, pruned_state):
    """The smaller model (its structure only, not initialized) with the pruned parameters."""
    graphdef, _ = nnx.split(nnx.eval_shape(make_smaller))
    return nnx.merge(graphdef, pruned_state)


def test_proximal_training_zeroes_whole_neurons_and_pruning_keeps_the_outputs():
    (X, y), (X_test, y_test) = digits()
    model = MLP(64, 32, 10, rngs=nnx.Rngs(0))
    neurons = groups.units(nnx.state(model, nnx.Param), NEURON)
    graphdef, state = train(model, [group_prox(0.01, neurons)], X, y)
    model = nnx.merge(graphdef, state)
    joint = numpy_groups(jax.tree.map(np.asarray, nnx.to_pure_dict(state)))
    zero = np.all(joint == 0, axis=1)
    assert 0 < zero.sum() < 32  # whole neurons, every slice of them
    assert np.all(np.any(joint[~zero] != 0, axis=1))

    pruned, kept = groups.prune(state, neurons)
    np.testing.assert_array_equal(kept, np.flatnonzero(~zero))
    assert pruned["hidden"]["kernel"].shape == (64, len(kept))
    assert pruned["out"]["kernel"].shape == (len(kept), 10)
    np.testing.assert_array_equal(pruned["out"]["bias"], state["out"]["bias"])
    smaller = rebuild(lambda: MLP(64, len(kept), 10, rngs=nnx.Rngs(1)), pruned)
    full_logits, small_logits = model(X_test), smaller(X_test)
    np.testing.assert_allclose(small_logits, full_logits, rtol=1e-5, atol=1e-5)
    predictions = np.argmax(full_logits, axis=1)
    np.testing.assert_array_equal(np.argmax(small_logits, axis=1), predictions)
    assert np.mean(predictions == y_test) > 0.85


class DeepMLP(nnx.Module):
    def __init__(self, n_in, n_first, n_second, n_out, *, rngs):
        self.first = nnx.Linear(n_in, n_first, rngs=rngs)
        self.second = nnx.Linear(n_first, n_second, rngs=rngs)
        self.out = nnx.Linear(n_second, n_out, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.second(nnx.relu(self.first(x)))))


def test_two_hidden_layers_chained_proxes_then_pruned_with_dependents():
    """Each hidden layer's group is a neuron's incoming column and bias (disjoint across layers,
    one jreg.proximal each); pruning drops the next kernel's rows as dependents."""
    (X, y), (X_test, _) = digits()
    model = DeepMLP(64, 24, 16, 10, rngs=nnx.Rngs(0))
    state = nnx.state(model, nnx.Param)
    first = groups.units(state, [("first/kernel", 1), ("first/bias", 0)])
    second = groups.units(state, [("second/kernel", 1), ("second/bias", 0)])
    graphdef, trained = train(model, [group_prox(0.02, first), group_prox(0.02, second)], X, y)
    pruned, kept_first = groups.prune(trained, first, dependents=[("second/kernel", 0)])
    pruned, kept_second = groups.prune(pruned, second, dependents=[("out/kernel", 0)])
    assert 0 < len(kept_first) < 24 and 0 < len(kept_second) < 16
    weights = nnx.to_pure_dict(trained)
    removed = np.setdiff1d(np.arange(24), kept_first)
    assert np.all(weights["first"]["kernel"][:, removed] == 0)
    assert np.any(weights["second"]["kernel"][removed] != 0)  # dependents need not be zero
    smaller = rebuild(lambda: DeepMLP(64, len(kept_first), len(kept_second), 10,
                                      rngs=nnx.Rngs(1)), pruned)  # fmt: skip
    full_logits = nnx.merge(graphdef, trained)(X_test)
    np.testing.assert_allclose(smaller(X_test), full_logits, rtol=1e-5, atol=1e-5)


def test_pruning_every_group_leaves_empty_slices():
    params = jax.tree.map(np.zeros_like, mlp_params())
    neurons = groups.units(params, NEURON)
    pruned, kept = groups.prune(params, neurons)
    assert kept.shape == (0,) and pruned["hidden"]["kernel"].shape == (5, 0)
    assert pruned["out"]["kernel"].shape == (0, 3) and pruned["out"]["bias"].shape == (3,)


def test_no_groups_left_gives_zero_and_the_identity():
    pruned = groups.prune(
        jax.tree.map(np.zeros_like, mlp_params()), groups.units(mlp_params(), NEURON)
    )[0]
    empty = groups.units(pruned, NEURON)
    assert groups.group_lasso(pruned, 1.0, groups=empty) == 0
    assert groups.prox_group_lasso(pruned, 1.0, groups=empty)["hidden"]["bias"].shape == (0,)


class CNN(nnx.Module):
    def __init__(self, channels, *, rngs):
        init = {"kernel_init": nnx.initializers.normal(0.3), "bias_init": nnx.initializers.normal()}
        self.conv1 = nnx.Conv(1, channels, (3, 3), rngs=rngs, **init)
        self.conv2 = nnx.Conv(channels, 4, (3, 3), rngs=rngs, **init)
        self.out = nnx.Linear(8 * 8 * 4, 10, rngs=rngs, **init)

    def __call__(self, x):
        x = nnx.relu(self.conv2(nnx.relu(self.conv1(x[..., None]))))
        return self.out(x.reshape(x.shape[0], -1))


def test_cnn_channels_thresholded_then_pruned_keep_the_outputs():
    channel = [("conv1/kernel", -1), ("conv1/bias", 0), ("conv2/kernel", 2)]
    model = CNN(8, rngs=nnx.Rngs(0))
    state = nnx.state(model, nnx.Param)
    channels = groups.units(state, channel)
    assert channels.size == 8 and channels.slices[0] == ("conv1/kernel", 3)
    weights = jax.tree.map(np.asarray, nnx.to_pure_dict(state))
    joint = np.concatenate(  # row c: conv1's output channel c, its bias, conv2's input channel c
        [np.moveaxis(weights["conv1"]["kernel"], 3, 0).reshape(8, -1),
         weights["conv1"]["bias"][:, None],
         np.moveaxis(weights["conv2"]["kernel"], 2, 0).reshape(8, -1)], axis=1)  # fmt: skip
    norms = np.linalg.norm(joint, axis=1)
    threshold = np.median(norms)
    thresholded = groups.prox_group_lasso(state, threshold, groups=channels)
    pruned, kept = groups.prune(thresholded, channels)
    np.testing.assert_array_equal(kept, np.flatnonzero(norms > threshold))
    assert pruned["conv1"]["kernel"].shape == (3, 3, 1, len(kept))
    assert pruned["conv2"]["kernel"].shape == (3, 3, len(kept), 4)

    nnx.update(model, thresholded)
    smaller = rebuild(lambda: CNN(len(kept), rngs=nnx.Rngs(1)), pruned)
    images = load_digits().images[:200].astype(np.float32) / 16
    np.testing.assert_allclose(smaller(images), model(images), rtol=1e-5, atol=1e-6)


def test_bad_input_names_the_argument():
    params = mlp_params()
    with pytest.raises(ValueError, match=r"slices: no leaf at path 'hidden/kernal'.*hidden/kernel"):
        groups.units(params, [("hidden/kernal", 1)])
    with pytest.raises(ValueError, match="slices: the leaf 'out/kernel' of shape \\(4, 3\\) must"):
        groups.units(params, [("hidden/kernel", 1), ("out/kernel", 1)])
    with pytest.raises(ValueError, match="slices: axis 2 is out of range for 'hidden/bias'"):
        groups.units(params, [("hidden/bias", 2)])
    with pytest.raises(ValueError, match="slices must name each leaf once"):
        groups.units(params, [("hidden/bias", 0), ("hidden/bias", -1)])
    with pytest.raises(TypeError, match="slices must hold"):
        groups.units(params, [("hidden/bias", 0.0)])
    with pytest.raises(TypeError, match="slices must be a non-empty list"):
        groups.units(params, "hidden/bias")
    neurons = groups.units(params, NEURON)
    with pytest.raises(TypeError, match="groups must be made by jreg.groups.units"):
        groups.group_lasso(params, 1.0, groups=NEURON)
    with pytest.raises(ValueError, match="x: the leaf 'hidden/kernel' of shape \\(5, 6\\)"):
        groups.prox_group_lasso(mlp_params(n_hidden=6), 1.0, groups=neurons)
    with pytest.raises(ValueError, match="strength must be finite and non-negative"):
        groups.group_lasso(params, -1.0, groups=neurons)
    with pytest.raises(ValueError, match="scaling must be finite and non-negative"):
        groups.prox_group_lasso(params, 1.0, scaling=np.nan, groups=neurons)
    with pytest.raises(TypeError, match="scaling must be a scalar or an array of one per group"):
        groups.prox_group_lasso(params, 1.0, scaling=jax.tree.map(np.ones_like, params),
                                groups=neurons)  # fmt: skip
    with pytest.raises(ValueError, match="dependents: no leaf at path 'out/kernal'"):
        groups.prune(params, neurons, dependents=[("out/kernal", 0)])
    with pytest.raises(ValueError, match="dependents: the leaf 'out/bias' of shape \\(3,\\)"):
        groups.prune(params, neurons, dependents=[("out/bias", 0)])
    with pytest.raises(TypeError, match="params must be concrete to prune"):
        jax.jit(lambda p: groups.prune(p, neurons)[0])(params)


def test_prune_mlp_example_quick(monkeypatch, capsys):
    """The example's smaller models have the sparse models' held-out accuracy, and the largest
    strength removes neurons."""
    example = pathlib.Path(__file__).parent.parent / "examples" / "prune_mlp.py"
    monkeypatch.setattr(sys, "argv", ["prune_mlp.py", "--quick"])
    runpy.run_path(str(example), run_name="__main__")
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert len(rows) == 3
    kept = [int(row[1].split("/")[0]) for row in rows]
    assert kept == sorted(kept, reverse=True) and kept[-1] < 32
    for row in rows:
        assert row[3] == row[4] and float(row[3]) > 0.9 and float(row[5]) < 1e-4
