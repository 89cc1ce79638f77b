"""The Draw page's engine (engine/lab/draw.py): every model's reconstruction of one image, its code, its class."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from engine.data.preprocess import SIZE
from engine.lab.draw import analyse


@pytest.fixture(scope="module")
def tiny_models():
    from engine.models import build_model
    from engine.runs.loaded import LoadedRun

    torch.manual_seed(0)
    return [LoadedRun(f"run-{i}", 0, build_model("ae", latent_dim=4).eval(), {"model": "ae", "dataset": "mnist-5k"},
                      {}) for i in range(2)]


def test_analyse_matches_references(mnist, tiny_models):
    from scipy.stats import percentileofscore

    from engine.eval.codes import encode, reconstruct

    x = mnist.x_test[0, 0].numpy()
    rng = np.random.default_rng(0)
    errors = [rng.uniform(0, 0.2, 500), rng.uniform(0, 0.2, 300)]
    z_train = encode(tiny_models[0], mnist.x_train[:400])
    y_train = mnist.y_train[:400].numpy()
    a = analyse(x, tiny_models, errors, z_train, y_train, 10, k=7)
    for model, rec, err in zip(tiny_models, a.reconstructions, errors):
        x_hat = reconstruct(model, x)[0]
        np.testing.assert_allclose(rec.x_hat, x_hat, atol=1e-6)
        np.testing.assert_allclose(rec.error, np.abs(x - x_hat), atol=1e-6)
        assert rec.mse == pytest.approx(float(torch.nn.functional.mse_loss(torch.tensor(x_hat), torch.tensor(x))))
        assert rec.percentile == pytest.approx(percentileofscore(err, rec.mse, kind="strict"))
    np.testing.assert_allclose(a.z, encode(tiny_models[0], x)[0], atol=1e-6)
    brute = np.argsort(np.linalg.norm(z_train - a.z, axis=1), kind="stable")[:7]
    assert list(a.neighbours) == list(brute)
    np.testing.assert_allclose(a.distances, np.linalg.norm(z_train[brute] - a.z, axis=1), rtol=1e-5)
    counts = Counter(y_train[brute].tolist())
    assert a.votes.sum() == pytest.approx(1.0) and a.votes[a.predicted] * 7 == pytest.approx(max(counts.values()))


def test_a_tied_vote_goes_to_the_nearest_neighbours_class(tiny_models):
    x = np.zeros((SIZE, SIZE), np.float32)
    z = encode_one(tiny_models[0], x)
    z_train = z + np.array([[0.1, 0, 0, 0], [0.2, 0, 0, 0], [0.3, 0, 0, 0], [0.4, 0, 0, 0]], np.float32)
    for labels, nearest_class in (([5, 2, 2, 5], 5), ([2, 5, 5, 2], 2)):
        a = analyse(x, tiny_models[:1], [None], z_train, np.array(labels), 10, k=4)
        assert a.votes[2] == a.votes[5] == 0.5 and a.predicted == nearest_class
        assert math.isnan(a.reconstructions[0].percentile)
    unlabelled = analyse(x, tiny_models[:1], [None], z_train, np.full(4, -1), 0, k=4)
    assert unlabelled.votes is None and unlabelled.predicted is None


def encode_one(model, x):
    from engine.eval.codes import encode

    return encode(model, x)[0]
