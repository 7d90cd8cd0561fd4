"""Odd inputs that the battery of ``test_odd_inputs_battery.py`` found mishandled (issue 15),
each with its right outcome: traced invalid values give NaN, extreme scales are computed
without overflow, and errors name the argument."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_odd_inputs_battery import (
    ROWS,
    Error,
    S,
    W,
    X,
    Y,
    _scaled,
    all_nan,
    close,
    expect,
    jreg_fit,
    shape_is,
    step,
)

import jreg
from jreg import glm, penalties, prox

NAMES = ("l1", "l2", "elastic_net", "group_lasso", "l0", "linf", "nuclear", "mcp", "scad")


def inject(factory, **kw):
    return optax.inject_hyperparams(factory, static_args=("prox",))(**kw)


DEFECTS = [
    # class 7: traced invalid values give a plausible number
    *[(f"penalties.{n}-jit-strength-negative",
       lambda n=n: jax.jit(lambda s: getattr(penalties, n)(W, s))(-1.0), all_nan) for n in NAMES],
    *[(f"prox.{n}-jit-strength-negative",
       lambda n=n: jax.jit(lambda s: getattr(prox, n)(W, s))(-1.0), all_nan) for n in NAMES],
    *[(f"prox.{n}-jit-scaling-nan",
       lambda n=n: jax.jit(lambda c: getattr(prox, n)(W, 0.5, scaling=c))(jnp.nan), all_nan)
      for n in NAMES],
    ("proximal-jit-strength-nan", lambda: jax.jit(lambda s: step(inject(
        jreg.proximal, prox=prox.l1, strength=s, learning_rate=0.1), jnp.zeros(3)))(jnp.nan),
     all_nan),
    ("proximal-jit-strength-negative", lambda: jax.jit(lambda s: step(inject(
        jreg.proximal, prox=prox.l1, strength=s, learning_rate=0.1), jnp.zeros(3)))(-1.0),
     all_nan),
    ("proximal-jit-learning_rate-nan", lambda: jax.jit(lambda lr: step(inject(
        jreg.proximal, prox=prox.l1, strength=0.1, learning_rate=lr), jnp.ones(3)))(jnp.nan),
     all_nan),
    ("proximal_adam-jit-learning_rate-negative", lambda: jax.jit(lambda lr: step(inject(
        jreg.proximal_adam, prox=prox.l1, learning_rate=lr, strength=0.1), jnp.ones(3)))(-1.0),
     all_nan),
    ("strength_max-jit-X-nan",
     lambda: jax.jit(glm.strength_max)(jnp.asarray(X).at[0, 0].set(jnp.nan), Y), all_nan),
    ("strength_max-jit-y-inf",
     lambda: jax.jit(glm.strength_max)(X, jnp.asarray(Y).at[0].set(jnp.inf)), all_nan),
    ("fit-jit-gamma-0.5", lambda: jax.jit(
        lambda g: glm.fit(X, Y, 0.1, penalty="mcp", gamma=g).coef)(0.5), all_nan),
    ("fit-jit-l1_ratio-2", lambda: jax.jit(
        lambda r: glm.fit(X, Y, 0.1, penalty="elastic_net", l1_ratio=r).coef)(2.0), all_nan),
    ("fit-jit-tol-nan", lambda: jax.jit(lambda t: glm.fit(X, Y, 0.1, tol=t).coef)(jnp.nan),
     all_nan),
    ("coef_at-jit-strength-negative", lambda: (lambda p: jax.jit(
        lambda s: glm.coef_at(p, s).coef)(-1.0))(glm.path(X, Y, strengths=S)), all_nan),
    ("coef_at-jit-strength-inf", lambda: (lambda p: jax.jit(
        lambda s: glm.coef_at(p, s).coef)(jnp.inf))(glm.path(X, Y, strengths=S)), all_nan),
    # class 3: extreme scales give a plausible wrong number, a NaN from finite input, or a crash
    ("penalties.group_lasso-params-times-1e200",
     lambda: penalties.group_lasso(W * 1e200, 1.0), close(1e200 * float(jnp.linalg.norm(W)))),
    ("penalties.group_lasso-params-times-1e-200",
     lambda: penalties.group_lasso(W * 1e-200, 1.0), close(1e-200 * float(jnp.linalg.norm(W)))),
    ("prox.group_lasso-x-times-1e200", lambda: prox.group_lasso(W * 1e200, 0.5e200) / 1e200,
     close(lambda: prox.group_lasso(W, 0.5))),
    ("prox.group_lasso-x-times-1e-200", lambda: prox.group_lasso(W * 1e-200, 0.5e-200) / 1e-200,
     close(lambda: prox.group_lasso(W, 0.5))),
    ("prox.linf-x-empty", lambda: prox.linf(jnp.zeros((0, 2)), 0.5), shape_is((0, 2))),
    # class 8: errors naming the wrong thing or nothing
    ("penalties.l1-strength-complex", lambda: penalties.l1(W, 1j), Error("strength must")),
    *[(f"prox.{n}-x-complex", lambda n=n: getattr(prox, n)(W + 0j, 0.5), Error(r"\bx must"))
      for n in NAMES],
    ("proximal-strength-complex", lambda: jreg.proximal(prox.l1, 1j, 0.1), Error("strength")),
    ("add_penalty_gradient-penalty-string", lambda: jreg.add_penalty_gradient("l1", 0.1),
     Error("penalty must be")),
    ("projected-projection-string", lambda: jreg.projected("abc"), Error("projection must be")),
    ("sweep-jit", lambda: jax.jit(lambda h: jreg.sweep(lambda x: x, h))(jnp.ones(3)),
     Error("hyperparams")),
    ("sweep-strings", lambda: jreg.sweep(lambda x: x, np.array(["a", "b"])), Error("hyperparams")),
    ("strength_max-sample_weight-strings",
     lambda: glm.strength_max(X, Y, sample_weight=["a"] * 20), Error("sample_weight")),
    ("strength_max-penalty_factor-strings",
     lambda: glm.strength_max(X, Y, penalty_factor=["a"] * 4), Error("penalty_factor")),
    ("strength_max-penalty_factor-complex",
     lambda: glm.strength_max(X, Y, penalty_factor=np.ones(4) + 1j), Error("penalty_factor")),
    ("strength_max-sample_weight-complex",
     lambda: glm.strength_max(X, Y, sample_weight=np.ones(20) + 1j), Error("sample_weight")),
    ("path-strengths-strings", lambda: glm.path(X, Y, strengths=["a", "b"]), Error("strengths")),
    ("path-strengths-none-inside", lambda: glm.path(X, Y, strengths=[0.1, None]),
     Error("strengths")),
    ("fit-strength-complex", lambda: glm.fit(X, Y, 0.1 + 1j), Error("strength must")),
    ("coef_at-strength-none", lambda: glm.coef_at(glm.path(X, Y, strengths=S), None),
     Error("strength")),
    ("predict-X-strings", lambda: glm.predict(glm.path(X, Y, strengths=S), [["a"] * 4]),
     Error("X must")),
    ("predict-X-complex", lambda: glm.predict(glm.path(X, Y, strengths=S), X + 1j),
     Error("X must")),
    ("cross_validate-jit", lambda: jax.jit(lambda X: glm.cross_validate(
        X, Y, n_strengths=3).scores)(X), Error("concrete")),
    ("stability_selection-jit", lambda: jax.jit(lambda X: glm.stability_selection(
        X, Y, n_strengths=3).probabilities)(X), Error("concrete")),
]  # fmt: skip


@pytest.mark.parametrize("call, outcome", [pytest.param(c, o, id=n) for n, c, o in DEFECTS])
def test_defect(call, outcome):
    expect(call, outcome)


@pytest.mark.parametrize("factor", [1e-200, 1e200])
def test_cli_keeps_a_feature_of_extreme_scale(factor, tmp_path, capsys):
    """A feature times 1e-200 or 1e200 (whose squares leave float64) is standardized as it
    is at scale 1: its coefficient is the unscaled one over the factor."""
    _, reference = jreg_fit(tmp_path / "r", ROWS, [])
    status, scaled = jreg_fit(tmp_path / "s", _scaled(0, factor), [])
    assert status == 0
    np.testing.assert_allclose(scaled["coefficients"]["a"] * factor,
                               reference["coefficients"]["a"], rtol=1e-6)  # fmt: skip


def test_cli_n_strengths_named_as_the_option(tmp_path, capsys):
    status, _ = jreg_fit(tmp_path, ROWS, ["--n-strengths", "200000"])
    assert status == 2 and "--n-strengths" in capsys.readouterr().err


def test_a_nan_gradient_gives_nan_where_it_is_in_proximal_adam():
    params = jnp.array([1.0, -2.0, 0.5])
    tx = jreg.proximal_adam(prox.l1, 0.1, 0.1)
    updates, _ = tx.update(jnp.array([jnp.nan, 1.0, 0.0]), tx.init(params), params)
    np.testing.assert_array_equal(np.isnan(optax.apply_updates(params, updates)),
                                  [True, False, False])  # fmt: skip


@pytest.mark.parametrize("shape", [(2,), (1,)])
def test_updates_of_another_shape_are_named(shape):
    params = jnp.ones(3)
    for tx in (jreg.proximal(prox.l1, 0.1, 0.1), jreg.proximal_adagrad(prox.l1, 0.1, 0.1),
               jreg.projected(optax.projections.projection_box,
                              projection_kwargs={"lower": -1.0, "upper": 1.0})):  # fmt: skip
        with pytest.raises(ValueError, match="updates must have the structure and shapes"):
            tx.update(jnp.ones(shape), tx.init(params), params)
