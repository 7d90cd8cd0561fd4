"""Odd, extreme and wrong inputs, organised by the classes of defects they once exposed: each
gives a clear error that names the argument, or a right answer (NaN in, NaN out) — never a
plausible wrong number."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jreg
from jreg import glm, penalties, prox

rng = np.random.default_rng(0)
X = rng.standard_normal((30, 5))
Y = X @ np.arange(5.0) + rng.standard_normal(30)

ELEMENTWISE_PENALTIES = ("l1", "l2", "elastic_net", "l0", "mcp", "scad")
GROUP_PENALTIES = ("group_lasso", "linf", "nuclear")


# --------------------------------------------------------------------------------------------
# NaN in, NaN out: every penalty and every prox.


@pytest.mark.parametrize("name", ELEMENTWISE_PENALTIES + GROUP_PENALTIES)
def test_a_nan_parameter_gives_a_nan_penalty(name):
    params = jnp.array([[np.nan, 1.0], [-2.0, 0.5]])
    assert np.isnan(getattr(penalties, name)(params, 1.0))


@pytest.mark.parametrize("name", ELEMENTWISE_PENALTIES)
def test_elementwise_prox_keeps_a_nan_where_it_was(name):
    x = jnp.array([np.nan, 3.0, 0.1])
    out = np.asarray(getattr(prox, name)(x, 0.5))
    assert np.isnan(out[0]) and np.all(np.isfinite(out[1:]))


@pytest.mark.parametrize("name", GROUP_PENALTIES)
def test_group_prox_carries_a_nan_into_its_group(name):
    x = jnp.array([[np.nan, 3.0], [0.1, 2.0]])
    assert np.isnan(np.asarray(getattr(prox, name)(x, 0.5))).any()


def test_infinite_parameters_have_the_bounded_penalties_value():
    """MCP and SCAD are constant beyond ``gamma s`` (``a s``): their value at inf is finite and
    right, and L0 counts an infinite entry once."""
    w = jnp.array([np.inf, -np.inf])
    np.testing.assert_allclose(penalties.mcp(w, 1.0, gamma=3.0), 2 * 3.0 / 2)
    np.testing.assert_allclose(penalties.scad(w, 1.0, a=3.7), 2 * 4.7 / 2)
    assert float(penalties.l0(w, 1.0)) == 2.0


# --------------------------------------------------------------------------------------------
# Optimizer options.


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: jreg.proximal_adam(prox.l1, 0.1, 0.1, b1=1.5), r"b1 must be in \[0, 1\)"),
        (lambda: jreg.proximal_adam(prox.l1, 0.1, 0.1, b2=-0.1), r"b2 must be in \[0, 1\)"),
        (lambda: jreg.proximal_adam(prox.l1, 0.1, 0.1, eps=0.0), "eps must be finite and > 0"),
        (
            lambda: jreg.proximal_adagrad(prox.l1, 0.1, 0.1, initial_accumulator_value=-1.0),
            "initial_accumulator_value must be finite and >= 0",
        ),  # fmt: skip
        (
            lambda: jreg.proximal_adagrad(prox.l1, 0.1, 0.1, eps=np.nan),
            "eps must be finite and >= 0",
        ),
        (lambda: jreg.proximal_adam(0.1, 0.1, 0.1, 0.1), r"\(prox, strength, learning_rate\)"),
        (lambda: jreg.proximal_adagrad(None, 0.1, 0.1), "prox must be a function of jreg.prox"),
        (lambda: jreg.proximal("l1", 0.1, 0.1), "prox must be a function of jreg.prox"),
        (lambda: jreg.proximal(prox.l1, 0.1, None), "learning_rate must be .* got None"),
        (lambda: jreg.proximal(prox.l1, None, 0.1), "strength must be .* got None"),
        (lambda: jreg.add_penalty_gradient(penalties.l1, None), "strength must be .* got None"),
        (lambda: jreg.sweep("abc", jnp.ones(3)), "fn must be a function"),
    ],
)
def test_bad_transform_options_name_the_argument(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_proximal_adam_and_adagrad_on_zero_gradients_stay_finite_under_jit():
    params = jnp.array([1.0, 0.0, -2.0])
    adagrad = jreg.proximal_adagrad(prox.l1, 0.1, 0.1, eps=0.0, initial_accumulator_value=0.0)
    for tx in (jreg.proximal_adam(prox.l1, 0.1, 0.1), adagrad):
        state = tx.init(params)
        updates, _ = jax.jit(tx.update)(jnp.zeros(3), state, params)
        assert np.all(np.isfinite(np.asarray(optax.apply_updates(params, updates))))


# --------------------------------------------------------------------------------------------
# Extreme scales: squares must be representable, else a clear error.


@pytest.mark.parametrize(
    "features, targets, name",
    [(1e-200, 1.0, "X"), (1e200, 1.0, "X"), (1.0, 1e-200, "y"), (1.0, 1e200, "y")],
)
def test_extreme_scales_are_an_error_naming_the_array(features, targets, name):
    with pytest.raises(ValueError, match=f"{name} must have its largest \\|value\\| in"):
        glm.path(X * features, Y * targets, n_strengths=3)


def test_scales_within_range_give_the_rescaled_solution():
    """``X / c`` and ``c y`` with ``c = 1e100`` (squares of 1e200 and 1e-200): the lasso's
    objective is ``c^2`` times the unscaled one in ``w / c^2``, so ``w(X / c, c y, s) = c^2
    w(X, y, s)``."""
    c = 1e100
    base = glm.path(X, Y, strengths=[0.1, 0.01], tol=1e-12)
    scaled = glm.path(X / c, Y * c, strengths=[0.1, 0.01], tol=1e-12)
    np.testing.assert_allclose(np.asarray(scaled.coef) / c**2, base.coef, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Errors that name the argument.


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: glm.cross_validate(X, Y, seed=-1, n_strengths=3), "seed must be a non-negative"),
        (
            lambda: glm.stability_selection(X, Y, seed=1.5, n_strengths=3),
            "seed must be a non-negative",
        ),  # fmt: skip
    ],
)
def test_glm_errors_name_the_argument(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


@pytest.mark.parametrize(
    "features, targets, message",
    [
        (X + 0j, Y, "X must hold real numbers, got dtype complex128"),
        (X.astype(object), Y, "X must hold real numbers, got dtype object"),
        (X, np.array(["a", "b"] * 15), "y must hold real numbers, got dtype <U1 .*np.unique"),
    ],
)
def test_data_of_the_wrong_kind_is_named(features, targets, message):
    with pytest.raises(TypeError, match=message):
        glm.path(features, targets, n_strengths=3)


# --------------------------------------------------------------------------------------------
# Degenerate data: a gradient that is zero up to rounding is zero.


@pytest.mark.parametrize(
    "features, targets",
    [(X, np.full(30, 0.1)), (np.full((30, 5), 0.3), Y), (X, np.full(30, 1e100))],
)
def test_constant_data_has_strength_max_zero_and_no_default_grid(features, targets):
    assert float(glm.strength_max(features, targets)) == 0.0
    with pytest.raises(ValueError, match="strength_max must be finite and > 0.*constant X or y"):
        glm.path(features, targets, n_strengths=3)


# --------------------------------------------------------------------------------------------
# Traced inputs that fail their checks give NaN, never a plausible number.


@pytest.mark.parametrize(
    "run",
    [
        lambda X, y: glm.path(X.at[0, 0].set(jnp.nan), y, strengths=[0.1]).coef,
        lambda X, y: glm.path(X, y.at[3].set(jnp.inf), strengths=[0.1]).intercept,
        lambda X, y: glm.path(X, (y > 0) + 1.0, datafit="logistic", strengths=[0.01]).coef,
        lambda X, y: glm.path(X, -jnp.abs(jnp.round(y)), datafit="poisson", strengths=[0.1]).coef,
        lambda X, y: glm.fit(X, y, -jnp.abs(y[0])).coef,
        lambda X, y: glm.fit(X, y, 0.1, sample_weight=-jnp.abs(y)).coef,
        lambda X, y: glm.fit(X, y, 0.1, offset=y * jnp.nan).coef,
        # a default grid (its top computed in the path's program): NaN strengths, no solve
        lambda X, y: glm.path(X, y, sample_weight=-jnp.abs(y), n_strengths=3).strengths,
        lambda X, y: glm.path(X.at[0, 0].set(jnp.nan), y, n_strengths=3).coef,
    ],
)
def test_invalid_traced_inputs_give_nan(run):
    assert np.all(np.isnan(np.asarray(jax.jit(run)(jnp.asarray(X), jnp.asarray(Y)))))


def test_valid_traced_inputs_match_concrete_ones():
    traced = jax.jit(lambda X, y: glm.path(X, (y > 0) * 2.0 - 1, datafit="logistic",
                                           strengths=[0.01]).coef)(X, Y)  # fmt: skip
    concrete = glm.path(X, (Y > 0) * 2.0 - 1, datafit="logistic", strengths=[0.01]).coef
    np.testing.assert_allclose(traced, concrete, rtol=1e-10)


# --------------------------------------------------------------------------------------------
# Integer options: out of range is an error (never an overflow, a crash or 0 iterations).


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: glm.path(X, Y, n_strengths=2**62), r"n_strengths must be an int in \[1, 100000\]"),
        (lambda: glm.path(X, Y, n_strengths=5.0), "n_strengths must be an int"),
        (
            lambda: glm.stability_selection(X, Y, n_subsamples=2**62, n_strengths=3),
            "n_subsamples must be an int",
        ),  # fmt: skip
        (lambda: glm.cross_validate(X, Y, n_folds=2**62, n_strengths=3), "n_folds must be an int"),
        (lambda: glm.path(X, Y, max_iter=0, n_strengths=3), "max_iter must be a positive int"),
    ],
)
def test_integer_options_out_of_range_are_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_huge_max_iter_is_as_good_as_the_default():
    huge = glm.path(X, Y, max_iter=2**40, n_strengths=5)
    np.testing.assert_allclose(huge.coef, glm.path(X, Y, n_strengths=5).coef, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# The duality gap bounds the suboptimality, whatever the penalty factors: unpenalized features
# constrain the dual point, which the gap moves to meet them.


def _objective(X, y, keywords, coef, intercept, strength):
    """The objective of ``glm.path``'s problem at a returned ``(coef, intercept)``."""
    data, options, config = glm.paths.setup(X, y, glm.paths.Settings(**keywords))
    datafit, penalty = glm.paths.parts(config, options, data)
    w = np.asarray(coef).reshape(X.shape[1], -1)
    z = X @ w + np.asarray(intercept).reshape(1, -1)  # the datafit adds the offset
    loss = data.weights @ datafit.loss(z, data.y)
    return float(loss + penalty.value(w.reshape(-1), strength * penalty.factor))


def _labels(score, datafit):
    noisy = score + np.random.default_rng(1).standard_normal(score.shape)
    if datafit == "logistic":
        return (noisy > 0).astype(float)
    if datafit == "poisson":
        return np.random.default_rng(1).poisson(np.exp(0.3 * score)).astype(float)
    if datafit == "multinomial":
        return np.digitize(noisy, [-1.0, 1.0])
    return noisy


@pytest.mark.parametrize(
    "datafit, n, p, extra",
    [
        ("squared", 80, 6, {}),  # Gram form
        ("squared", 30, 60, {}),  # residual form (coordinate descent)
        ("squared", 80, 6, {"y_columns": 2}),  # several outputs
        ("logistic", 80, 6, {}),
        ("logistic", 80, 6, {"offset": True, "zero_weights": True}),
        ("poisson", 80, 6, {}),
        ("multinomial", 80, 6, {}),
        ("huber", 80, 6, {"delta": 0.5}),
    ],
)
def test_gap_bounds_the_suboptimality_with_unpenalized_features(datafit, n, p, extra):
    rng = np.random.default_rng(3)
    correlation = 0.9 ** np.abs(np.subtract.outer(np.arange(p), np.arange(p)))
    features = rng.standard_normal((n, p)) @ np.linalg.cholesky(correlation).T
    score = features[:, :4] @ np.array([1.0, -0.5, 0.0, 0.8])
    targets = _labels(score, datafit)
    if extra.get("y_columns"):
        targets = np.stack([targets, _labels(-score, datafit)], axis=1)
    keywords = {"datafit": datafit, "penalty_factor": np.r_[0.0, 0.0, 2.0, np.ones(p - 3)]}
    if "delta" in extra:
        keywords["delta"] = extra["delta"]
    if extra.get("offset"):
        keywords["offset"] = 0.3 * rng.standard_normal(n)
    if extra.get("zero_weights"):
        keywords["sample_weight"] = np.r_[np.zeros(n // 4), np.ones(n - n // 4)]
    loose = glm.path(features, targets, tol=1e-4, n_strengths=8, **keywords)
    exact = glm.path(features, targets, tol=1e-14, max_iter=100_000, strengths=loose.strengths,
                     **keywords)  # fmt: skip
    for k, strength in enumerate(np.asarray(loose.strengths)):
        true = _objective(features, targets, keywords, loose.coef[k], loose.intercept[k], strength)
        true -= _objective(features, targets, keywords, exact.coef[k], exact.intercept[k], strength)
        assert true <= float(loose.gap[k]) * (1 + 1e-6) + 1e-12, (k, true, float(loose.gap[k]))


@pytest.mark.parametrize("strength", [0.0, 1e-200, 1e-12])
def test_a_negligible_strength_converges_to_least_squares(strength):
    """Its dual constraints would be met by scaling only near 0: the gap treats the coefficient
    as unpenalized, converges (no ConvergenceWarning, which the suite turns into an error) and
    bounds the distance to least squares in objective."""
    fit = glm.path(X, Y, strengths=np.array([strength]), tol=1e-12)
    design = np.column_stack([X, np.ones(len(Y))])
    least_squares = np.linalg.lstsq(design, Y, rcond=None)[0]

    def objective(w, b):
        return 0.5 * np.mean((Y - X @ w - b) ** 2) + strength * np.sum(np.abs(w))

    true = objective(fit.coef[0], fit.intercept[0]) - objective(
        least_squares[:-1], least_squares[-1]
    )
    assert true <= float(fit.gap[0]) + 1e-15
    np.testing.assert_allclose(fit.coef[0], least_squares[:-1], atol=1e-4)
