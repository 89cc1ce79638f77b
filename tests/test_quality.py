"""Quality bars on real data (marked slow: each trains for tens of seconds on a 2-core CPU)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.data import load_dataset
from engine.runs import Run
from engine.train import make_run_config, train_run

pytestmark = pytest.mark.slow


def test_conv_ae_beats_half_the_pca_error_in_15_seconds(tmp_path):
    run = Run.create(tmp_path, make_run_config("conv_ae", "mnist-5k", {"latent_dim": 32}, {"seconds": 15}))
    metrics = train_run(run)
    print(f"conv_ae 15 s: test MSE {metrics['mse']:.5f}, PCA(32) {metrics['pca_mse']:.5f}, "
          f"ratio {metrics['mse_vs_pca']:.3f}, kNN {metrics['knn_accuracy']:.3f}")
    assert metrics["mse"] <= 0.5 * metrics["pca_mse"]


def test_vae_prior_samples_are_recognisable_digits(tmp_path):
    """Samples z ~ N(0, I) are judged by a classifier trained on real digits: confident and varied."""
    from sklearn.linear_model import LogisticRegression

    run = Run.create(tmp_path, make_run_config("vae", "mnist-5k", {}, {"seconds": 20}))
    metrics = train_run(run)
    assert math.isfinite(metrics["elbo"]) and metrics["elbo"] < 0
    model, _ = run.load_model()
    samples = model.sample(200, generator=torch.Generator().manual_seed(0)).flatten(1).numpy()

    data = load_dataset("mnist-5k")
    judge = LogisticRegression(max_iter=300).fit(data.x_train.flatten(1).numpy(), data.y_train.numpy())
    real_conf = judge.predict_proba(data.x_test.flatten(1).numpy()).max(1).mean()
    probs = judge.predict_proba(samples)
    noise = np.random.default_rng(0).random(samples.shape)
    noise_conf = judge.predict_proba(noise).max(1).mean()
    classes = np.bincount(probs.argmax(1), minlength=10)
    print(f"vae 20 s: ELBO {metrics['elbo']:.1f} nats, KL {metrics['kl']:.1f}; judge confidence on samples "
          f"{probs.max(1).mean():.3f}, on real test digits {real_conf:.3f}, on noise {noise_conf:.3f}; "
          f"classes {classes.tolist()}")
    assert probs.max(1).mean() > 0.75 * real_conf
    assert (classes >= 5).sum() >= 8  # at least 8 digits each appear in 5 % of the samples
