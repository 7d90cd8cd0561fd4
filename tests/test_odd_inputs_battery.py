"""One battery of odd inputs over every public entry point (issue 15), in the manner of optax's
shared tests over every transform: NaN and inf in each array argument, empty arrays, degenerate
data, extreme scales (1e-200, 1e200), wrong types, wrong shapes and traced values, through each
penalty, each prox, the five transforms, ``sweep``, ``glm``, the four estimators and ``jreg fit``.

Every case declares its outcome: an :class:`Error` (a ``ValueError`` or ``TypeError`` whose
message names the argument), or a check of the result against a closed form or an unperturbed
reference (NaN exactly where NaN went in). The cases of ``tests/test_odd_inputs.py`` are not
repeated here.
"""

import csv
import functools
import json
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jreg
from jreg import __main__ as cli
from jreg import glm, penalties, prox
from jreg.estimators import GLMClassifier, GLMClassifierCV, GLMRegressor, GLMRegressorCV

rng = np.random.default_rng(15)
X = rng.standard_normal((20, 4))
Y = X @ np.array([1.0, -2.0, 0.0, 0.5]) + 0.1 * rng.standard_normal(20)
LABELS = (Y > 0).astype(float)
S = [0.5, 0.1]  # strengths of the small paths
W = jnp.array([[0.5, -2.0], [0.0, 1.5]])  # params of the penalties and prox: |W|_1 = 4, 3 nonzero
W_NAN = W.at[0, 0].set(jnp.nan)
W_INF = W.at[0, 1].set(-jnp.inf)
NAN_AT = np.array([[True, False], [False, False]])

PENALTIES = ("l1", "l2", "elastic_net", "group_lasso", "l0", "linf", "nuclear", "mcp", "scad")
ELEMENTWISE = ("l1", "l2", "elastic_net", "l0", "mcp", "scad")


class Error(NamedTuple):
    """The expected outcome "a clear error": its type and a pattern naming the argument."""

    match: str
    kind: type | tuple = (ValueError, TypeError)


def expect(call, outcome):
    """Runs ``call``: an :class:`Error` must be raised, else ``outcome(result)`` checks it."""
    if isinstance(outcome, Error):
        with pytest.raises(outcome.kind, match=outcome.match):
            call()
    else:
        outcome(call())


def close(reference, rtol=1e-12, atol=0.0):
    """The result equals ``reference`` (a value, or a thunk computing the unperturbed one)."""

    def check(out):
        ref = reference() if callable(reference) else reference
        for o, r in zip(jax.tree.leaves(out), jax.tree.leaves(ref), strict=True):
            np.testing.assert_allclose(np.asarray(o), np.asarray(r), rtol=rtol, atol=atol)

    return check


def nan_exactly_where(mask, reference):
    """NaN exactly at ``mask`` (where NaN went in); elsewhere the unperturbed ``reference``."""

    def check(out):
        out, mask_ = np.asarray(out), np.asarray(mask)
        np.testing.assert_array_equal(np.isnan(out), mask_)
        np.testing.assert_allclose(out[~mask_], np.asarray(reference())[~mask_], rtol=1e-12)

    return check


def all_nan(out):
    assert np.all(np.isnan(np.asarray(out))), out


def some_nan(out):
    assert np.any(np.isnan(np.asarray(out))), out


def shape_is(shape):
    def check(out):
        assert np.shape(out) == shape

    return check


def cases(*rows):
    return [pytest.param(call, outcome, id=name) for name, call, outcome in rows]


# --------------------------------------------------------------------------------------------
# Penalty values.


def _penalty_rows(name):
    f = getattr(penalties, name)
    value = float(f(W, 1.0))
    rows = [
        ("strength-nan", lambda: f(W, np.nan), Error("strength must be finite")),
        ("strength-inf", lambda: f(W, np.inf), Error("strength must be finite")),
        ("strength-none", lambda: f(W, None), Error("strength must be .* got None")),
        ("strength-string", lambda: f(W, "a"), Error("strength must be numeric")),
        ("strength-strings", lambda: f(W, ["a", "b"]), Error("strength must be numeric")),
        ("strength-shape", lambda: f(W, jnp.ones(3)), Error(r"strength of shape \(3,\)")),
        ("params-complex", lambda: f(W + 0j, 1.0), Error("params must have floating-point")),
        ("params-int", lambda: f(jnp.ones((2, 2), int), 1.0), Error("params must have float")),
        ("params-strings", lambda: f(["a", "b"], 1.0), Error("params must have floating-point")),
        ("params-empty", lambda: f(jnp.zeros((0, 2)), 1.0), close(0.0)),
        ("params-none", lambda: f(None, 1.0), close(0.0)),  # None: JAX's empty pytree
        ("jit-params-nan", lambda: jax.jit(f)(W_NAN, 1.0), all_nan),
        ("jit-strength-nan", lambda: jax.jit(lambda s: f(W, s))(jnp.nan), all_nan),
    ]
    if name in ("l1", "l2", "elastic_net", "group_lasso", "linf", "nuclear"):
        rows.append(("params-inf", lambda: f(W_INF, 1.0), close(np.inf)))
    homogeneous = ("l1", "group_lasso", "linf", "nuclear")
    scaled = {  # closed forms of P(c W, 1) at c = 1e-200 and 1e200
        "l2": (0.0, np.inf),  # c^2 |W|^2 / 2 under- and overflows: rounded right
        "elastic_net": (0.5 * 4e-200, np.inf),  # the quadratic term underflows
        "l0": (3.0, 3.0),
        "mcp": (4e-200, 3 * 3.0 / 2),  # s|w| near 0; gamma s^2 / 2 per entry beyond gamma s
        "scad": (4e-200, 3 * 4.7 / 2),
    }
    for i, c in enumerate((1e-200, 1e200)):
        reference = c * value if name in homogeneous else scaled.get(name, (None, None))[i]
        if reference is not None:
            rows.append((f"params-times-{c:g}", lambda c=c: f(W * c, 1.0), close(reference)))
    return [(f"penalties.{name}-{case}", call, outcome) for case, call, outcome in rows]


PENALTY_CASES = cases(*[row for name in PENALTIES for row in _penalty_rows(name)])


@pytest.mark.parametrize("call, outcome", PENALTY_CASES)
def test_penalties(call, outcome):
    expect(call, outcome)


# --------------------------------------------------------------------------------------------
# Proximal operators.


def _prox_rows(name):
    f = getattr(prox, name)
    group = name not in ELEMENTWISE
    rows = [
        ("scaling-nan", lambda: f(W, 0.5, scaling=np.nan), Error("scaling must be finite")),
        ("scaling-none", lambda: f(W, 0.5, scaling=None), Error("scaling must be .* got None")),
        ("scaling-negative", lambda: f(W, 0.5, scaling=-1.0), Error("scaling must be finite")),
        ("scaling-string", lambda: f(W, 0.5, scaling="a"), Error("scaling must be numeric")),
        ("strength-nan", lambda: f(W, np.nan), Error("strength must be finite")),
        ("strength-string", lambda: f(W, "a"), Error("strength must be numeric")),
        ("strength-shape", lambda: f(W, jnp.ones(3)), Error(r"strength of shape \(3,\)")),
        (
            "jit-x-nan",
            lambda: jax.jit(f)(W_NAN, 0.5),
            some_nan if group else nan_exactly_where(NAN_AT, lambda: f(W.at[0, 0].set(0.5), 0.5)),
        ),
    ]
    if name != "linf":
        rows.append(("x-empty", lambda: f(jnp.zeros((0, 2)), 0.5), shape_is((0, 2))))
    if not group:  # the infinite entry stays infinite, the others are untouched
        inf_at = np.array([[False, True], [False, False]])

        def infinite_kept(out):
            assert np.asarray(out)[0, 1] == -np.inf
            np.testing.assert_allclose(np.asarray(out)[~inf_at], np.asarray(f(W, 0.5))[~inf_at])

        rows.append(("x-inf", lambda: f(W_INF, 0.5), infinite_kept))
    for c in (1e-200, 1e200):  # closed forms: positive homogeneity of the thresholds
        if name in ("l1", "group_lasso", "linf", "nuclear", "mcp", "scad"):  # c prox(x, s)
            call, reference = (lambda c=c: f(W * c, 0.5 * c) / c), (lambda: f(W, 0.5))
        elif name == "l0":  # hard threshold sqrt(2 s): prox(c x, c^2 s) = c prox(x, s)
            c = np.sqrt(c)
            call, reference = (lambda c=c: f(W * c, 0.5 * c**2) / c), (lambda: f(W, 0.5))
        elif name == "l2":  # x / (1 + s)
            call, reference = (lambda c=c: f(W * c, 1.0) / c), W / 2
        elif name == "elastic_net":  # threshold s/2 negligible at 1e200, everything at 1e-200
            call, reference = (lambda c=c: f(W * c, 1.0) / c), (W / 1.5 if c > 1 else W * 0)
        rows.append((f"x-times-{c:g}", call, close(reference, atol=1e-12)))
    return [(f"prox.{name}-{case}", call, outcome) for case, call, outcome in rows]


PROX_CASES = cases(*[row for name in PENALTIES for row in _prox_rows(name)])


@pytest.mark.parametrize("call, outcome", PROX_CASES)
def test_prox(call, outcome):
    expect(call, outcome)


# --------------------------------------------------------------------------------------------
# The five transforms: construction, then one update.

PARAMS = jnp.array([0.5, -2.0, 0.0])
GRADS = jnp.array([0.3, 1.0, 0.0])
TRANSFORMS = {
    "add_penalty_gradient": lambda: jreg.add_penalty_gradient(penalties.l1, 0.1),
    "proximal": lambda: jreg.proximal(prox.l1, 0.1, 0.1),
    "projected": lambda: jreg.projected(optax.projections.projection_l1_ball),
    "proximal_adam": lambda: jreg.proximal_adam(prox.l1, 0.1, 0.1),
    "proximal_adagrad": lambda: jreg.proximal_adagrad(prox.l1, 0.1, 0.1),
}


def step(tx, grads, params=PARAMS):
    updates, _ = tx.update(grads, tx.init(params), params)
    return optax.apply_updates(params, updates)


def stepped(name, grads, params=PARAMS, *, jit=False):
    run = jax.jit(lambda g, p: step(TRANSFORMS[name](), g, p)) if jit else None
    return lambda: run(grads, params) if jit else step(TRANSFORMS[name](), grads, params)


def _soft(z, threshold):
    return np.sign(z) * np.maximum(np.abs(z) - threshold, 0)


def _closed_form(name, grads, lr=0.1, s=0.1):
    """One step from PARAMS, in numpy (the transforms' docstrings)."""
    w, g = np.asarray(PARAMS), np.asarray(grads)
    if name == "add_penalty_gradient":
        return w + g + s * np.sign(w)
    if name == "proximal":  # after raw updates g (no optimizer before it in the chain)
        return _soft(w + g, lr * s)
    if name == "proximal_adam":  # first step: m_hat = g, v_hat = g^2
        d = np.abs(g) + 1e-8
        return _soft(w - lr * g / d, lr * s / d)
    if name == "proximal_adagrad":  # G = 0.1 + g^2, D = sqrt(G + eps)
        d = np.sqrt(0.1 + g**2 + 1e-7)
        return _soft(w - lr * g / d, lr * s / d)
    return optax.projections.projection_l1_ball(w + g)  # projected: onto the unit L1 ball


def _transform_rows(name):
    nan_grads, first = GRADS.at[0].set(jnp.nan), np.array([True, False, False])
    coupled = name == "projected"  # the L1-ball projection couples every coordinate
    nan_outcome = all_nan if coupled else nan_exactly_where(first, stepped(name, GRADS))
    nan_params = PARAMS.at[0].set(jnp.nan)
    rows = [
        ("jit-grads-nan", stepped(name, nan_grads, jit=True), nan_outcome),
        (
            "params-nan",
            stepped(name, GRADS, nan_params),
            all_nan if coupled else nan_exactly_where(first, stepped(name, GRADS)),
        ),
        ("params-none", lambda: TRANSFORMS[name]().update(GRADS, None, None), Error("params")),
        ("grads-times-1e-200", stepped(name, GRADS * 1e-200), close(_closed_form(name, 0 * GRADS))),
    ]
    rows.append(("grads-nan", stepped(name, nan_grads), nan_outcome))
    if name in ("proximal_adam", "proximal_adagrad"):  # squares that overflow: NaN, not 0
        overflow = nan_exactly_where(GRADS != 0, stepped(name, GRADS))
        rows.append(("grads-times-1e200", stepped(name, GRADS * 1e200), overflow))
    if name != "projected":  # the empty L1 ball projection fails in optax
        rows.append(("empty", stepped(name, jnp.zeros(0), jnp.zeros(0)), shape_is((0,))))
    if name in ("add_penalty_gradient", "proximal"):
        inf_grads = GRADS.at[0].set(jnp.inf)

        def infinite_kept(out):
            assert np.asarray(out)[0] == np.inf
            np.testing.assert_allclose(np.asarray(out)[1:], _closed_form(name, GRADS)[1:])

        big = GRADS * 1e200
        rows += [
            ("grads-inf", stepped(name, inf_grads), infinite_kept),
            ("grads-times-1e200", stepped(name, big), close(big)),
        ]
    if name in ("proximal", "proximal_adam", "proximal_adagrad"):
        grads = jnp.array([1.0, -1.0, 0.0])
        make = {
            "proximal": lambda: jreg.proximal(prox.l1, 0.1, 1e200),
            "proximal_adam": lambda: jreg.proximal_adam(prox.l1, 0.1, 1e200),
            "proximal_adagrad": lambda: jreg.proximal_adagrad(prox.l1, 0.1, 1e200),
        }[name]
        rows.append(
            (
                "learning-rate-1e200",
                lambda: step(make(), grads),
                close(_closed_form(name, grads, lr=1e200)),
            )
        )
    return [(f"{name}-{case}", call, outcome) for case, call, outcome in rows]


CONSTRUCTION = [
    ("add_penalty_gradient-strength-nan", lambda: jreg.add_penalty_gradient(penalties.l1, np.nan),
     Error("strength must be finite")),
    ("add_penalty_gradient-strength-strings",
     lambda: jreg.add_penalty_gradient(penalties.l1, ["a"]), Error("strength must be numeric")),
    ("add_penalty_gradient-penalty_kwargs-list",
     lambda: jreg.add_penalty_gradient(penalties.l1, 0.1, penalty_kwargs=[1]),
     Error("penalty_kwargs must be a dict")),
    ("proximal-strength-string", lambda: jreg.proximal(prox.l1, "a", 0.1),
     Error("strength must be numeric")),
    ("proximal-learning_rate-nan", lambda: jreg.proximal(prox.l1, 0.1, np.nan),
     Error("learning_rate must be finite")),
    ("proximal-learning_rate-inf", lambda: jreg.proximal(prox.l1, 0.1, np.inf),
     Error("learning_rate must be finite")),
    ("proximal-learning_rate-negative", lambda: jreg.proximal(prox.l1, 0.1, -1.0),
     Error("learning_rate must be finite and non-negative")),
    ("proximal-learning_rate-string", lambda: jreg.proximal(prox.l1, 0.1, "a"),
     Error("learning_rate must be numeric")),
    ("proximal-prox-none", lambda: jreg.proximal(None, 0.1, 0.1), Error("prox must be a function")),
    ("proximal-prox_kwargs-string", lambda: jreg.proximal(prox.l1, 0.1, 0.1, prox_kwargs="axis"),
     Error("prox_kwargs must be a dict")),
    ("projected-projection_kwargs-list",
     lambda: jreg.projected(optax.projections.projection_l1_ball, projection_kwargs=[1]),
     Error("projection_kwargs must be a dict")),
    ("proximal_adam-strength-nan", lambda: jreg.proximal_adam(prox.l1, np.nan, 0.1),
     Error("strength must be finite")),
    ("proximal_adam-learning_rate-inf", lambda: jreg.proximal_adam(prox.l1, 0.1, np.inf),
     Error("learning_rate must be finite")),
    ("proximal_adam-b1-nan", lambda: jreg.proximal_adam(prox.l1, 0.1, 0.1, b1=np.nan),
     Error(r"b1 must be in \[0, 1\)")),
    ("proximal_adam-b2-one", lambda: jreg.proximal_adam(prox.l1, 0.1, 0.1, b2=1.0),
     Error(r"b2 must be in \[0, 1\)")),
    ("proximal_adam-b1-string", lambda: jreg.proximal_adam(prox.l1, 0.1, 0.1, b1="a"),
     Error("b1 must be numeric")),
    ("proximal_adam-eps-inf", lambda: jreg.proximal_adam(prox.l1, 0.1, 0.1, eps=np.inf),
     Error("eps must be finite and > 0")),
    ("proximal_adam-prox-none", lambda: jreg.proximal_adam(None, 0.1, 0.1),
     Error("prox must be a function")),
    ("proximal_adagrad-strength-string", lambda: jreg.proximal_adagrad(prox.l1, "a", 0.1),
     Error("strength must be numeric")),
    ("proximal_adagrad-learning_rate-negative", lambda: jreg.proximal_adagrad(prox.l1, 0.1, -1.0),
     Error("learning_rate must be finite and non-negative")),
    ("proximal_adagrad-eps-negative", lambda: jreg.proximal_adagrad(prox.l1, 0.1, 0.1, eps=-1.0),
     Error("eps must be finite and >= 0")),
    ("proximal_adagrad-initial_accumulator_value-inf",
     lambda: jreg.proximal_adagrad(prox.l1, 0.1, 0.1, initial_accumulator_value=np.inf),
     Error("initial_accumulator_value must be finite")),
    ("proximal_adagrad-initial_accumulator_value-none",
     lambda: jreg.proximal_adagrad(prox.l1, 0.1, 0.1, initial_accumulator_value=None),
     Error("initial_accumulator_value must be .* got None")),
    ("proximal_adam-jit-learning_rate-nan",
     lambda: jax.jit(lambda lr: step(
         optax.inject_hyperparams(jreg.proximal_adam, static_args=("prox",))(prox.l1, 0.1, lr),
         GRADS)
     )(jnp.nan), all_nan),
    ("proximal_adagrad-jit-learning_rate-nan",
     lambda: jax.jit(lambda lr: step(
         optax.inject_hyperparams(jreg.proximal_adagrad, static_args=("prox",))(prox.l1, 0.1, lr),
         GRADS)
     )(jnp.nan), all_nan),
]  # fmt: skip

TRANSFORM_CASES = cases(*CONSTRUCTION, *[row for n in TRANSFORMS for row in _transform_rows(n)])


@pytest.mark.parametrize("call, outcome", TRANSFORM_CASES)
def test_transforms(call, outcome):
    expect(call, outcome)


# --------------------------------------------------------------------------------------------
# sweep.


def double(h):
    return h * 2


SWEEP_CASES = cases(
    ("nan", lambda: jreg.sweep(double, jnp.array([jnp.nan, 1.0])), close(jnp.array([np.nan, 2]))),
    ("complex", lambda: jreg.sweep(double, jnp.array([1j, 2.0])), close(jnp.array([2j, 4.0]))),
    (
        "extreme-scales",
        lambda: jreg.sweep(lambda h: h * 1e100, jnp.array([1e100, 1e-300, 2.0])),
        close(jnp.array([1e200, 1e-200, 2e100])),
    ),
    ("batch_size-huge", lambda: jreg.sweep(double, jnp.ones(3), batch_size=2**70), close(2.0)),
    ("none", lambda: jreg.sweep(double, None), Error("hyperparams must contain at least one")),
    ("scalar", lambda: jreg.sweep(double, 3.0), Error("hyperparams: every leaf needs a leading")),
    ("list", lambda: jreg.sweep(double, [1.0, 2.0]), close(jnp.array([2.0, 4.0]))),
    ("empty", lambda: jreg.sweep(double, jnp.zeros(0)), Error("hyperparams: empty sweep")),
    (
        "leading-axes-differ",
        lambda: jreg.sweep(double, {"a": jnp.ones(2), "b": jnp.ones(3)}),
        Error("hyperparams: leaves must share their leading axis"),
    ),
    ("batch_size-zero", lambda: jreg.sweep(double, jnp.ones(3), batch_size=0), Error("batch_size")),
    ("batch_size-float", lambda: jreg.sweep(double, jnp.ones(3), batch_size=1.5), Error("batch_")),
    ("batch_size-bool", lambda: jreg.sweep(double, jnp.ones(3), batch_size=True), Error("batch_")),
    ("mesh-string", lambda: jreg.sweep(double, jnp.ones(3), mesh="x"), Error("mesh must be a")),
    ("fn-none", lambda: jreg.sweep(None, jnp.ones(3)), Error("fn must be a function")),
)


@pytest.mark.parametrize("call, outcome", SWEEP_CASES)
def test_sweep(call, outcome):
    expect(call, outcome)


# --------------------------------------------------------------------------------------------
# glm: errors before any solve.


def _with(array, index, value):
    array = np.array(array, dtype=float)
    array[index] = value
    return array


GLM_ERRORS = [
    ("strength_max-X-none", lambda: glm.strength_max(None, Y), "X must hold real numbers"),
    ("strength_max-y-strings", lambda: glm.strength_max(X, ["a"] * 20), "y must hold real"),
    ("strength_max-y-nan", lambda: glm.strength_max(X, _with(Y, 0, np.nan)), "y must be finite"),
    ("strength_max-X-inf", lambda: glm.strength_max(_with(X, (1, 2), np.inf), Y),
     "X must be finite"),
    ("strength_max-y-times-1e200", lambda: glm.strength_max(X, Y * 1e200),
     r"y must have its largest \|value\|"),
    ("strength_max-X-no-features", lambda: glm.strength_max(X[:, :0], Y),
     "X must have at least one sample and one feature"),
    ("strength_max-logistic-one-class",
     lambda: glm.strength_max(X, np.ones(20), datafit="logistic"), "y must hold both classes"),
    ("strength_max-logistic-labels-0-2",
     lambda: glm.strength_max(X, 2 * LABELS, datafit="logistic"), "y must hold labels in"),
    ("strength_max-penalty-none", lambda: glm.strength_max(X, Y, penalty=None),
     "penalty must be one of"),
    ("strength_max-datafit-none", lambda: glm.strength_max(X, Y, datafit=None),
     "datafit must be one of"),
    ("strength_max-sample_weight-nan",
     lambda: glm.strength_max(X, Y, sample_weight=np.full(20, np.nan)),
     "sample_weight must be finite"),
    ("strength_max-penalty_factor-shape",
     lambda: glm.strength_max(X, Y, penalty_factor=np.ones(3)),
     r"penalty_factor must have shape \(4,\)"),
    ("strength_max-offset-nan", lambda: glm.strength_max(X, Y, offset=np.full(20, np.nan)),
     "offset must be finite"),
    ("path-strengths-2d", lambda: glm.path(X, Y, strengths=[[0.1]]), "strengths must be a non-"),
    ("path-strengths-empty", lambda: glm.path(X, Y, strengths=[]), "strengths must be a non-"),
    ("path-strengths-nan", lambda: glm.path(X, Y, strengths=[0.1, np.nan]),
     "strengths must be finite"),
    ("path-tol-none", lambda: glm.path(X, Y, strengths=S, tol=None), "tol must be .* got None"),
    ("path-tol-string", lambda: glm.path(X, Y, strengths=S, tol="a"), "tol must be numeric"),
    ("path-X-1d", lambda: glm.path(X[:, 0], Y, strengths=S), "X must be a 2-D array"),
    ("path-X-minus-inf", lambda: glm.path(_with(X, (3, 1), -np.inf), Y, strengths=S),
     "X must be finite"),  # the lowest value: the check reads the extremes
    ("path-X-empty", lambda: glm.path(X[:0], Y[:0], strengths=S), "X must have at least one"),
    ("path-y-short", lambda: glm.path(X, Y[:19], strengths=S), "y must have 20 rows"),
    ("path-y-3d", lambda: glm.path(X, Y[:, None, None], strengths=S), "y must have shape"),
    ("path-fit_intercept-string", lambda: glm.path(X, Y, strengths=S, fit_intercept="yes"),
     "fit_intercept must be a bool"),
    ("path-standardize-int", lambda: glm.path(X, Y, strengths=S, standardize=1),
     "standardize must be a bool"),
    ("path-strength_min_ratio-nan",
     lambda: glm.path(X, Y, n_strengths=3, strength_min_ratio=np.nan),
     r"strength_min_ratio must be in \(0, 1\)"),
    ("path-n_strengths-none", lambda: glm.path(X, Y, n_strengths=None), "n_strengths must be"),
    ("path-max_iter-none", lambda: glm.path(X, Y, strengths=S, max_iter=None), "max_iter must"),
    ("path-l1_ratio-nan",
     lambda: glm.path(X, Y, strengths=S, penalty="elastic_net", l1_ratio=np.nan),
     r"l1_ratio must be in \[0, 1\]"),
    ("path-gamma-string", lambda: glm.path(X, Y, strengths=S, penalty="mcp", gamma="a"),
     "gamma must be numeric"),
    ("path-a-two", lambda: glm.path(X, Y, strengths=S, penalty="scad", a=2.0),
     "a must be finite and > 2"),
    ("path-delta-nan", lambda: glm.path(X, Y, strengths=S, datafit="huber", delta=np.nan),
     "delta must be finite"),
    ("path-bounds-string", lambda: glm.path(X, Y, strengths=S, bounds="a"), "bounds must be a"),
    ("path-bounds-nan", lambda: glm.path(X, Y, strengths=S, bounds=(np.nan, 1.0)), "bounds must"),
    ("path-groups-strings",
     lambda: glm.path(X, Y, strengths=S, penalty="group_lasso", groups=["a"] * 4),
     "groups must hold integer ids"),
    ("path-group_weights-nan",
     lambda: glm.path(X, Y, strengths=S, penalty="group_lasso", groups=[0, 0, 1, 1],
                      group_weights=[np.nan, 1.0]), "group_weights must be finite"),
    ("path-offset-strings", lambda: glm.path(X, Y, strengths=S, offset=["a"] * 20),
     "offset must hold real numbers"),
    ("path-offset-nones", lambda: glm.path(X, Y, strengths=S, offset=[None] * 20),
     "offset must hold real numbers"),
    ("path-offset-shape", lambda: glm.path(X, Y, strengths=S, offset=np.ones(19)),
     "offset must have shape"),
    ("path-poisson-negative", lambda: glm.path(X, -np.ones(20), datafit="poisson", strengths=S),
     "y must be non-negative integer counts"),
    ("path-poisson-fractions",
     lambda: glm.path(X, np.full(20, 0.5), datafit="poisson", strengths=S),
     "y must be non-negative integer counts"),
    ("path-multinomial-one-class",
     lambda: glm.path(X, np.zeros(20), datafit="multinomial", strengths=S),
     "y must hold labels 0..C-1 with every class present"),
    ("path-logistic-halves", lambda: glm.path(X, np.full(20, 0.5), datafit="logistic",
                                              strengths=S), "y must hold labels in"),
    ("fit-strength-string", lambda: glm.fit(X, Y, "0.1"), "strength must be numeric"),
    ("fit-strength-none", lambda: glm.fit(X, Y, None), "strength must be .* got None"),
    ("fit-strength-inf", lambda: glm.fit(X, Y, np.inf), "strength must be finite"),
    ("fit-strength-array", lambda: glm.fit(X, Y, [0.1, 0.2]), "strength must be a scalar"),
    ("fit-X-complex", lambda: glm.fit(X + 1j, Y, 0.1), "X must hold real numbers"),
    ("fit-sample_weight-zeros", lambda: glm.fit(X, Y, 0.1, sample_weight=np.zeros(20)),
     "sample_weight must be not all zero"),
    ("fit-sample_weight-shape", lambda: glm.fit(X, Y, 0.1, sample_weight=np.ones(19)),
     r"sample_weight must have shape \(20,\)"),
    ("cross_validate-y-nan", lambda: glm.cross_validate(X, _with(Y, 3, np.nan), n_strengths=3),
     "y must be finite"),
    ("cross_validate-y-constant", lambda: glm.cross_validate(X, np.ones(20), n_strengths=3),
     "strength_max must be finite and > 0 .*constant X or y"),
    ("cross_validate-n_folds-too-many", lambda: glm.cross_validate(X, Y, n_folds=21,
                                                                   n_strengths=3),
     r"n_folds must be an int in \[2, n_samples = 20\]"),
    ("cross_validate-n_folds-none", lambda: glm.cross_validate(X, Y, n_folds=None, n_strengths=3),
     "n_folds must be an int"),
    ("cross_validate-folds-strings", lambda: glm.cross_validate(X, Y, folds=["a"] * 20,
                                                                n_strengths=3),
     "folds must be an int array"),
    ("cross_validate-folds-shape", lambda: glm.cross_validate(X, Y, folds=[0, 1] * 9,
                                                              n_strengths=3),
     r"folds must be an int array of shape \(20,\)"),
    ("cross_validate-folds-one", lambda: glm.cross_validate(X, Y, folds=np.zeros(20, int),
                                                            n_strengths=3),
     r"folds must hold the ids 0..K-1 \(K >= 2\)"),
    ("cross_validate-scoring-unknown", lambda: glm.cross_validate(X, Y, scoring="r2",
                                                                  n_strengths=3),
     "scoring must be one of"),
    ("cross_validate-scoring-none", lambda: glm.cross_validate(X, Y, scoring=None,
                                                               n_strengths=3),
     "scoring must be one of"),
    ("cross_validate-scoring-auc-regression",
     lambda: glm.cross_validate(X, Y, scoring="auc", n_strengths=3), "needs a classifier"),
    ("cross_validate-seed-string", lambda: glm.cross_validate(X, Y, seed="a", n_strengths=3),
     "seed must be a non-negative int"),
    ("cross_validate-unknown-keyword", lambda: glm.cross_validate(X, Y, n_strength=3),
     "unexpected keyword argument 'n_strength'"),
    ("stability_selection-X-nan",
     lambda: glm.stability_selection(_with(X, (0, 0), np.nan), Y, n_strengths=3),
     "X must be finite"),
    ("stability_selection-fraction-nan",
     lambda: glm.stability_selection(X, Y, fraction=np.nan, n_strengths=3),
     r"fraction must be in \(0, 1\]"),
    ("stability_selection-fraction-zero",
     lambda: glm.stability_selection(X, Y, fraction=0, n_strengths=3),
     r"fraction must be in \(0, 1\]"),
    ("stability_selection-fraction-string",
     lambda: glm.stability_selection(X, Y, fraction="a", n_strengths=3),
     "fraction must be numeric"),
    ("stability_selection-fraction-none",
     lambda: glm.stability_selection(X, Y, fraction=None, n_strengths=3),
     "fraction must be .* got None"),
    ("stability_selection-n_subsamples-zero",
     lambda: glm.stability_selection(X, Y, n_subsamples=0, n_strengths=3),
     "n_subsamples must be an int"),
    ("stability_selection-y-constant",
     lambda: glm.stability_selection(X, np.full(20, 2.0), n_strengths=3),
     "strength_max must be finite and > 0"),
    ("stability_selection-y-short", lambda: glm.stability_selection(X, Y[:5], n_strengths=3),
     "y must have 20 rows"),
]  # fmt: skip


@pytest.mark.parametrize(
    "call, match", [pytest.param(call, match, id=name) for name, call, match in GLM_ERRORS]
)
def test_glm_errors(call, match):
    expect(call, Error(match))


# --------------------------------------------------------------------------------------------
# glm: right answers (few compiled programs, each shared by several cases).

C = 1e100  # X / C and C y: squares of 1e-200 and 1e200, within range
FOLDS = np.arange(20) % 4


@functools.cache
def _path():
    return glm.path(X, Y, strengths=S)


def _coef(index=slice(None)):
    return np.asarray(_path().coef)[index]


@jax.jit
def fit_traced(X, y, strength, penalty_factor, sample_weight):
    return glm.fit(X, y, strength, penalty_factor=penalty_factor, sample_weight=sample_weight).coef


@jax.jit
def path_traced(strengths):
    return glm.path(X, Y, strengths=strengths).coef


def coef_at_traced(strength):
    fit = _path()  # concrete, outside the trace
    return jax.jit(lambda s: glm.coef_at(fit, s).coef)(strength)


def predict_traced(X):
    fit = _path()
    return jax.jit(lambda X: glm.predict(fit, X))(X)


ONES4 = np.ones(4)


def traced_fit(**changes):
    arguments = dict(X=X, y=Y, strength=0.1, penalty_factor=np.ones(4), sample_weight=np.ones(20))
    return lambda: fit_traced(**{**arguments, **changes})


X_CONSTANT = np.column_stack([X[:, :3], np.full(20, 3.0)])

GLM_ANSWERS = cases(
    (
        "strength_max-rescaled-data",
        lambda: glm.strength_max(X / C, Y * C),
        close(lambda: glm.strength_max(X, Y)),
    ),
    (
        "path-constant-feature",
        lambda: glm.path(X_CONSTANT, Y, strengths=S).coef,
        close(lambda: np.column_stack([glm.path(X[:, :3], Y, strengths=S).coef, np.zeros(2)]),
              rtol=1e-4, atol=1e-6),
    ),  # fmt: skip
    (
        "fit-strength-1e200",
        lambda: glm.fit(X, Y, 1e200)[:2],
        close((np.zeros(4), np.mean(Y)), atol=1e-15),
    ),
    ("fit-jit-valid", traced_fit(), close(lambda: glm.fit(X, Y, 0.1).coef, rtol=1e-10)),
    ("fit-jit-strength-nan", traced_fit(strength=np.nan), all_nan),
    ("fit-jit-X-inf", traced_fit(X=_with(X, (2, 1), np.inf)), all_nan),
    ("fit-jit-y-nan", traced_fit(y=_with(Y, 5, np.nan)), all_nan),
    ("fit-jit-penalty_factor-nan", traced_fit(penalty_factor=_with(ONES4, 1, np.nan)), all_nan),
    ("fit-jit-penalty_factor-negative", traced_fit(penalty_factor=-np.ones(4)), all_nan),
    ("fit-jit-sample_weight-nan", traced_fit(sample_weight=_with(np.ones(20), 0, np.nan)), all_nan),
    ("fit-jit-sample_weight-zeros", traced_fit(sample_weight=np.zeros(20)), all_nan),
    ("path-jit-strengths-nan", lambda: path_traced(jnp.array([0.5, jnp.nan])), all_nan),
    ("path-jit-strengths-negative", lambda: path_traced(jnp.array([0.5, -0.1])), all_nan),
    ("path-jit-strengths-inf", lambda: path_traced(jnp.array([jnp.inf, 0.1])), all_nan),
    (
        "cross_validate-rescaled-data",
        lambda: glm.cross_validate(X / C, Y * C, strengths=S, folds=FOLDS).scores / C**2,
        close(lambda: glm.cross_validate(X, Y, strengths=S, folds=FOLDS).scores, rtol=1e-4),
    ),
    (
        "stability_selection-rescaled-X",  # X c with strengths s c: the same problem in w / c
        lambda: glm.stability_selection(X / C, Y, strengths=np.array(S) / C, n_subsamples=4)[1],
        close(lambda: glm.stability_selection(X, Y, strengths=S, n_subsamples=4)[1]),
    ),
    # beyond the grid: its nearest end (the largest strength first)
    ("coef_at-strength-1e200", lambda: glm.coef_at(_path(), 1e200).coef, close(lambda: _coef(0))),
    ("coef_at-strength-1e-200", lambda: glm.coef_at(_path(), 1e-200).coef, close(lambda: _coef(1))),
    ("coef_at-strength-empty", lambda: glm.coef_at(_path(), []).coef, shape_is((0, 4))),
    ("coef_at-jit-strength-nan", lambda: coef_at_traced(jnp.nan), all_nan),
    ("predict-X-empty", lambda: glm.predict(_path(), X[:0]), shape_is((2, 0))),
    (
        "predict-X-times-1e200",
        lambda: glm.predict(_path(), X * 1e200),
        close(lambda: 1e200 * (_coef() @ X.T) + np.asarray(_path().intercept)[:, None]),
    ),
    (
        "predict-jit-X-nan",
        lambda: predict_traced(jnp.asarray(X).at[3, 0].set(jnp.nan)),
        nan_exactly_where(np.arange(20)[None, :] == [[3], [3]], lambda: glm.predict(_path(), X)),
    ),
)  # fmt: skip


@pytest.mark.parametrize("call, outcome", GLM_ANSWERS)
def test_glm_answers(call, outcome):
    expect(call, outcome)


PREDICTION_ERRORS = [
    ("coef_at-strength-nan", lambda p: glm.coef_at(p, np.nan), "strength must be finite"),
    ("coef_at-strength-negative", lambda p: glm.coef_at(p, -1.0), "strength must be finite and"),
    ("coef_at-strength-best-of-a-path", lambda p: glm.coef_at(p, "best"),
     'strength must be a number, an array, or "best"'),
    ("coef_at-fit-none", lambda p: glm.coef_at(None, 0.1), "fit must be a Path"),
    ("predict-fit-none", lambda p: glm.predict(None, X), "fit must be a Path"),
    ("predict-X-nan", lambda p: glm.predict(p, np.full((2, 4), np.nan)), "X must be finite"),
    ("predict-X-shape", lambda p: glm.predict(p, X[:, :3]), r"X must have shape \(n_samples, 4\)"),
    ("predict-output-unknown", lambda p: glm.predict(p, X, output="prob"), "output must be one of"),
    ("predict-output-class-of-regression", lambda p: glm.predict(p, X, output="class"),
     'output="class" needs a classifier'),
    ("predict-strength-nan", lambda p: glm.predict(p, X, strength=np.nan), "strength must be"),
    ("predict-offset-nan", lambda p: glm.predict(p, X, offset=np.full(20, np.nan)),
     "offset must be finite"),
    ("predict-offset-shape", lambda p: glm.predict(p, X, offset=np.ones(3)),
     r"offset must have shape \(20,\)"),
]  # fmt: skip


@pytest.mark.parametrize(
    "call, match", [pytest.param(c, m, id=name) for name, c, m in PREDICTION_ERRORS]
)
def test_prediction_errors(call, match):
    expect(lambda: call(_path()), Error(match))


# --------------------------------------------------------------------------------------------
# The estimators' fit.

ESTIMATORS = {
    "GLMRegressor": (lambda: GLMRegressor(strength=0.1), Y),
    "GLMClassifier": (lambda: GLMClassifier(strength=0.01), LABELS),
    "GLMRegressorCV": (lambda: GLMRegressorCV(n_strengths=3, n_folds=3), Y),
    "GLMClassifierCV": (lambda: GLMClassifierCV(n_strengths=3, n_folds=3), LABELS),
}


def _estimator_rows(name):
    make, y = ESTIMATORS[name]
    classifier = "Classifier" in name
    rows = [
        ("X-nan", lambda: make().fit(_with(X, (0, 0), np.nan), y), "Input X contains NaN"),
        ("y-inf", lambda: make().fit(X, _with(y, 0, np.inf)), "Input y contains infinity"),
        ("X-empty", lambda: make().fit(X[:0], y[:0]), r"0 sample\(s\)"),
        ("X-times-1e-200", lambda: make().fit(X * 1e-200, y), r"X must have its largest \|value"),
        ("sample_weight-nan", lambda: make().fit(X, y, sample_weight=np.full(20, np.nan)),
         "Input sample_weight contains NaN"),
        ("X-complex", lambda: make().fit(X + 1j, y), "X must hold real numbers"),
    ]  # fmt: skip
    if name != "GLMRegressor":  # GLMRegressor: the right answer below
        message = "y must hold at least 2 classes" if classifier else "constant X or y"
        rows.append(("y-constant", lambda: make().fit(X, np.ones(20)), message))
    if "CV" in name:
        rows += [
            ("rule-unknown", lambda: make().set_params(rule="worst").fit(X, y), "rule must be"),
            ("scoring-unknown", lambda: make().set_params(scoring="r2").fit(X, y), "scoring must"),
            ("n_folds-1", lambda: make().set_params(n_folds=1).fit(X, y), r"n_folds must be .*1"),
            ("n_folds-float", lambda: make().set_params(n_folds=2.5).fit(X, y), "n_folds must"),
            ("n_folds-too-many", lambda: make().set_params(n_folds=21).fit(X, y), "n_folds must"),
        ]
    else:
        rows += [
            ("strength-nan", lambda: make().set_params(strength=np.nan).fit(X, y), "strength must"),
            ("strength-string", lambda: make().set_params(strength="a").fit(X, y), "strength must"),
        ]
    if name == "GLMRegressor":
        return [(f"{name}-{case}", call, Error(m)) for case, call, m in rows] + [
            (
                f"{name}-y-constant",
                lambda: (lambda e: (e.coef_, e.intercept_))(make().fit(X, np.full(20, 3.5))),
                close((np.zeros(4), 3.5)),
            )
        ]
    return [(f"{name}-{case}", call, Error(m)) for case, call, m in rows]


ESTIMATOR_CASES = cases(*[row for name in ESTIMATORS for row in _estimator_rows(name)])


@pytest.mark.parametrize("call, outcome", ESTIMATOR_CASES)
def test_estimators(call, outcome):
    expect(call, outcome)


# --------------------------------------------------------------------------------------------
# The command line: `jreg fit` on CSV files.

HEADER = ["a", "b", "c", "y"]
X3 = X[:, :3]
Y3 = X3 @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.standard_normal(20)
ROWS = np.column_stack([X3, Y3]).tolist()
FAST = ["--n-folds", "3", "--n-strengths", "5"]


def _scaled(column, factor):
    rows = np.column_stack([X3, Y3])
    rows[:, column] *= factor
    return rows.tolist()


CLI_ERRORS = {  # name: (rows, options, the error line's pattern)
    "header-only": ([], [], "has no data rows"),
    "feature-nan": ([["nan", 1, 2, 3], *ROWS], [], "column 'a' of .* missing value"),
    "feature-complex": ([["1+2j", 1, 2, 3], *ROWS], [], "column 'a' of .*not a number"),
    "target-minus-inf": ([[1, 2, 3, "-inf"], *ROWS], [], "column 'y' of .* finite number"),
    "target-times-1e-200": (_scaled(3, 1e-200), [], r"target 'y': y must have its largest \|"),
    "tol-nan": (ROWS, ["--tol", "nan"], r"--tol must be in \(0, 1\)"),
    "l1-ratio-nan": (ROWS, ["--penalty", "elastic_net", "--l1-ratio", "nan"], "--l1-ratio must"),
    "delta-inf": (ROWS, ["--datafit", "huber", "--delta", "inf"], "--delta must be a finite"),
    "strength-min-ratio-nan": (ROWS, ["--strength-min-ratio", "nan"], "--strength-min-ratio"),
}


def jreg_fit(tmp_path, rows, options):
    tmp_path.mkdir(exist_ok=True)
    data, out = tmp_path / "data.csv", tmp_path / "out"
    with open(data, "w", newline="") as file:
        csv.writer(file).writerows([HEADER, *rows])
    status = cli.main(["fit", str(data), "--target", "y", *FAST, *options, "--out", str(out)])
    result = json.loads((out / "result.json").read_text()) if status == 0 else None
    return status, result


@pytest.mark.parametrize("case", list(CLI_ERRORS))
def test_command_line_errors(case, tmp_path, capsys):
    rows, options, pattern = CLI_ERRORS[case]
    status, _ = jreg_fit(tmp_path, rows, options)
    err = capsys.readouterr().err
    assert status == 2 and err.count("jreg: error:") == 1, err
    assert re.search(pattern, err.splitlines()[-1]), err


def test_command_line_answers(tmp_path, capsys):
    """A feature times 1e-100 (standardized: the same fit) has its coefficient times 1e100, the
    others unchanged; a constant feature has coefficient exactly 0."""
    _, reference = jreg_fit(tmp_path / "reference", ROWS, [])
    _, scaled = jreg_fit(tmp_path / "scaled", _scaled(0, 1e-100), [])
    expected = dict(reference["coefficients"], a=reference["coefficients"]["a"] * 1e100)
    for name, value in expected.items():
        np.testing.assert_allclose(scaled["coefficients"][name], value, rtol=1e-9)
    np.testing.assert_allclose(scaled["strength"], reference["strength"], rtol=1e-12)
    status, constant = jreg_fit(tmp_path / "constant", _scaled(0, 0.0), [])
    assert status == 0 and constant["coefficients"]["a"] == 0.0
