"""A loaded run applied to images and codes (engine/runs/loaded.py, engine/eval/codes.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.data import load_dataset
from engine.eval.codes import (as_batch, class_votes, decode, encode, interpolate, nearest, percentile_of, reconstruct,
                               split_codes, split_errors)
from engine.eval.metrics import encode_all
from engine.runs import Run, RunError, make_run_config
from engine.runs.loaded import load_run
from engine.train import train_run


@pytest.fixture(scope="module")
def pca_loaded(finished_pca_run):
    return load_run(Run(finished_pca_run))


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist-5k")


def test_load_run_gives_the_checkpoint_model_in_eval_mode(pca_loaded, finished_pca_run):
    assert pca_loaded.run_id == "pca-finished" and pca_loaded.model_name == "pca"
    assert pca_loaded.latent_dim == 8 and not pca_loaded.conditional and not pca_loaded.model.training
    assert pca_loaded.step == Run(finished_pca_run).checkpoints()[-1][0]
    assert pca_loaded.dataset == "mnist-5k" and pca_loaded.train_classes is None


def test_a_run_without_checkpoint_says_so(tmp_path):
    run = Run.create(tmp_path, make_run_config("pca", "mnist-5k", {"latent_dim": 4}))
    with pytest.raises(RunError, match="no checkpoint"):
        load_run(run)


def test_encode_decode_reconstruct_agree_with_the_model(pca_loaded, data):
    x = data.x_test[:5]
    z = encode(pca_loaded, x)
    assert z.shape == (5, 8)
    np.testing.assert_allclose(z, encode_all(pca_loaded.model, x).numpy(), atol=1e-6)
    x_hat = reconstruct(pca_loaded, x)
    assert x_hat.shape == (5, 28, 28)
    np.testing.assert_allclose(decode(pca_loaded, z), x_hat, atol=1e-5)
    assert decode(pca_loaded, z[0]).shape == (1, 28, 28)  # one code
    assert encode(pca_loaded, x[0, 0].numpy()).shape == (1, 8)  # one (28, 28) image


def test_as_batch_rejects_wrong_shapes():
    assert as_batch(np.zeros((28, 28))).shape == (1, 1, 28, 28)
    with pytest.raises(ValueError, match="28×28"):
        as_batch(np.zeros((32, 32)))


def test_split_codes_and_errors(pca_loaded, data):
    z = split_codes(pca_loaded, data, "test")
    errors = split_errors(pca_loaded, data, "test")
    assert z.shape == (len(data.x_test), 8) and errors.shape == (len(data.x_test),)
    assert float(errors.mean()) == pytest.approx(Run(pca_loaded.path).status().final_metrics["mse"], rel=1e-4)
    with pytest.raises(ValueError, match="split"):
        split_codes(pca_loaded, data, "valid")


def test_interpolation_ends_and_the_slerp_arc():
    z0, z1 = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    for method in ("linear", "slerp"):
        path = interpolate(z0, z1, 7, method)
        np.testing.assert_allclose(path[0], z0, atol=1e-12)
        np.testing.assert_allclose(path[-1], z1, atol=1e-12)
    linear = interpolate(z0, z1, 5, "linear")
    np.testing.assert_allclose(linear[2], (z0 + z1) / 2)
    # slerp between orthogonal unit vectors stays on the unit circle
    arc = interpolate(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 9, "slerp")
    np.testing.assert_allclose(np.linalg.norm(arc, axis=1), 1.0, atol=1e-12)
    assert np.linalg.norm(interpolate(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 3, "linear")[1]) < 0.75
    with pytest.raises(ValueError, match="slerp"):
        interpolate(z0, z1, 3, "cubic")


def test_nearest_and_class_votes():
    z_ref = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0], [5.0, 5.2]])
    y_ref = np.array([0, 0, 1, 1, 1])
    idx, dist = nearest(z_ref, [[5.0, 5.05]], k=3)
    assert sorted(idx[0]) == [2, 3, 4] and dist[0][0] <= dist[0][-1]
    votes = class_votes(y_ref, idx, 2)
    np.testing.assert_allclose(votes, [[0.0, 1.0]])


def test_percentile_of():
    ref = np.arange(100)
    assert percentile_of(50, ref) == 50.0
    assert percentile_of(1000, ref) == 100.0 and percentile_of(-1, ref) == 0.0


def test_one_class_training_uses_only_those_classes(tmp_path):
    run = Run.create(tmp_path, make_run_config("pca", "mnist-5k", {"latent_dim": 4}, {"classes": [3]}))
    train_run(run)
    assert run.status().n_train == int((load_dataset("mnist-5k").y_train == 3).sum())
    loaded = load_run(run)
    assert loaded.train_classes == [3]
    errors = split_errors(loaded, load_dataset("mnist-5k"))
    y = load_dataset("mnist-5k").y_test.numpy()
    assert errors[y == 3].mean() < errors[y != 3].mean()  # a model of threes rebuilds threes best


def test_bad_classes_are_refused():
    with pytest.raises(ValueError, match="classes"):
        make_run_config("pca", "mnist-5k", {}, {"classes": []})
    data = load_dataset("mnist-5k")
    with pytest.raises(ValueError, match="no class"):
        data.only_classes([12])
    assert torch.equal(data.only_classes([1, 2]).x_test, data.x_test)
