"""Folds and subsamples sharded over the suite's 4 forced CPU devices equal one device."""

import jax
import numpy as np
import pytest
from glm_setup import setup_path
from jax.sharding import Mesh

from jreg import glm
from jreg.glm import paths, selection

DEVICES = np.asarray(jax.devices())
ONE_DEVICE = Mesh(DEVICES[:1], ("folds",))
MESHES = {
    "default": None,
    "4 devices": Mesh(DEVICES, ("folds",)),
    "2x2 devices": Mesh(DEVICES.reshape(2, 2), ("a", "b")),
    "batch_size=2": None,
}


def _regression(n=60, p=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    return X, X @ np.array([1.0, -2.0, 0.0, 0.0, 0.5]) + 0.3 * rng.standard_normal(n)


def test_the_suite_has_4_devices():
    assert DEVICES.size == 4


@pytest.mark.parametrize("name", list(MESHES))
def test_cross_validation_over_devices_equals_one_device(name):
    X, y = _regression()
    batch_size = 2 if name == "batch_size=2" else None
    kwargs = dict(n_folds=5, n_strengths=8, scoring="mse")
    sharded = glm.cross_validate(X, y, mesh=MESHES[name], batch_size=batch_size, **kwargs)
    single = glm.cross_validate(X, y, mesh=ONE_DEVICE, **kwargs)
    assert len(sharded.scores.devices()) == 4 and len(single.scores.devices()) == 1
    for field in ("strengths", "scores", "best_strength", "strength_1se"):
        np.testing.assert_allclose(getattr(sharded, field), getattr(single, field), atol=1e-10)
    np.testing.assert_allclose(sharded.path.coef, single.path.coef, atol=1e-10)
    np.testing.assert_allclose(sharded.path.intercept, single.path.intercept, atol=1e-10)


def test_sharded_fold_scores_are_held_out_errors_of_paths_without_the_fold():
    """The definition: fold f's score is the mean squared error, on its rows, of the path
    fitted with its rows left out (sample weight 0)."""
    X, y = _regression()
    folds = np.arange(y.size) % 3
    cv = glm.cross_validate(X, y, folds=folds, n_strengths=6, scoring="mse", tol=1e-12)
    for fold in range(3):
        kept = (folds != fold).astype(float)
        fit = glm.path(X, y, strengths=cv.strengths, sample_weight=kept, tol=1e-12)
        errors = (glm.predict(fit, X[folds == fold]) - y[folds == fold][None, :]) ** 2
        np.testing.assert_allclose(cv.scores[fold], errors.mean(axis=1), rtol=1e-8)


def test_stability_selection_over_devices_equals_one_device():
    X, y = _regression()
    kwargs = dict(n_subsamples=7, n_strengths=6, seed=3)
    single = glm.stability_selection(X, y, mesh=ONE_DEVICE, **kwargs)
    for mesh, batch_size in ((None, None), (Mesh(DEVICES, ("s",)), 3)):
        sharded = glm.stability_selection(X, y, mesh=mesh, batch_size=batch_size, **kwargs)
        np.testing.assert_array_equal(sharded.probabilities, single.probabilities)
    assert single.probabilities[2, 1] == 1  # the strong feature is always selected


def test_vmapped_members_in_batches_over_devices_equal_the_loop_on_one_device():
    """The accelerators' program (each device vmaps ``batch_size / devices`` members at a time)
    on the CPU devices: equal to one device's loop over the members."""
    X, y = _regression()
    data, options, config, grid = setup_path(X, y, paths.Settings(n_strengths=5))
    weights = np.asarray(np.random.default_rng(1).uniform(size=(5, y.size)) > 0.3, float)
    loop, _ = selection.batched_paths_jit(
        data, weights, grid, options, config=config, sequential=True
    )
    sharding = selection.batch_sharding(Mesh(DEVICES, ("members",)))
    for batch_size in (None, 4, 8):
        vmapped, converged = selection.batched_paths_jit(
            data, weights, grid, options, config=config, sequential=False, sharding=sharding,
            batch_size=batch_size,
        )  # fmt: skip
        assert converged.shape == (5, grid.size) and bool(np.all(converged))
        np.testing.assert_allclose(vmapped.coef, loop.coef, atol=1e-10)


def test_bad_mesh_or_batch_size():
    X, y = _regression()
    with pytest.raises(TypeError, match="mesh"):
        glm.cross_validate(X, y, mesh=jax.devices(), n_strengths=3)
    with pytest.raises(ValueError, match="batch_size"):
        glm.stability_selection(X, y, batch_size=0, n_strengths=3)
    with pytest.raises(TypeError, match="batch_size"):
        glm.cross_validate(X, y, batch_size=2.5, n_strengths=3)
