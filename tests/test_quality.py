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
    """Samples z ~ N(0, I), judged against real digits in pixel space by scikit-learn neighbours.

    Measured alternatives that must fail these checks (mnist-5k, 200 images each): uniform noise
    (nearest-digit distance 15.0, 3 digits ≥ 5 %), the mean digit plus noise (6.0, 4 digits) and
    shuffled test digits (10.0, 1 digit); real test digits score 4.96 with all 10 digits.
    """
    from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

    run = Run.create(tmp_path, make_run_config("vae", "mnist-5k", {}, {"seconds": 20}))
    metrics = train_run(run)
    assert math.isfinite(metrics["elbo"]) and metrics["elbo"] < 0
    model, _ = run.load_model()
    samples = model.sample(200, generator=torch.Generator().manual_seed(0)).flatten(1).numpy()

    data = load_dataset("mnist-5k")
    x_train, real = data.x_train.flatten(1).numpy(), data.x_test[:200].flatten(1).numpy()
    knn = KNeighborsClassifier(n_neighbors=10).fit(x_train, data.y_train.numpy())
    nearest = NearestNeighbors(n_neighbors=1).fit(x_train)

    def judge(x):
        probs = knn.predict_proba(x)
        return (probs.max(1).mean(),  # how many of the 10 nearest digits agree
                np.bincount(probs.argmax(1), minlength=10),  # which digit each looks like
                nearest.kneighbors(x)[0].mean())  # distance to the closest real digit

    agree, classes, dist = judge(samples)
    real_agree, _, real_dist = judge(real)
    print(f"vae 20 s: ELBO {metrics['elbo']:.1f} nats, KL {metrics['kl']:.1f}; samples: neighbour agreement "
          f"{agree:.3f} (real {real_agree:.3f}), nearest-digit distance {dist:.2f} (real {real_dist:.2f}), "
          f"digits {classes.tolist()}")
    assert dist < 1.15 * real_dist
    assert agree > 0.7 * real_agree
    assert (classes >= 10).sum() >= 8  # at least 8 digits each look like 5 % of the samples


def test_one_class_conv_ae_spots_the_other_digits(tmp_path):
    """Digit 0 normal, every other digit an anomaly; the score is the reconstruction MSE.

    Published convolutional-autoencoder results on full MNIST reach about 0.98. Measured here
    (mnist-5k, 60 epochs of the 400 zeros = 420 steps of 64, seeds 0/1): latent_dim 8 AUROC 0.994/0.996,
    16: 0.993/0.990, 32: 0.989/0.994, 16 with the BCE loss 0.991/0.991; latent 8 passes 0.98 after
    ~150 steps. The 60 epochs took 34-37 s on one core of a busy machine (0.9944 both times: one
    thread makes the run repeatable); the 60 s cap binds only when it is busier still (188 steps:
    0.985; starved to 45 steps: 0.90, a failure). Two threads on a busy 2-core machine managed 32
    steps in 30 s, hence threads=1.
    """
    from engine.anomaly import DEFAULT_LATENT_DIM, DEFAULT_LOSS

    config = make_run_config("conv_ae", "mnist-5k", {"latent_dim": DEFAULT_LATENT_DIM, "loss": DEFAULT_LOSS},
                             {"classes": [0], "epochs": 60, "seconds": 60, "threads": 1})
    run = Run.create(tmp_path, config)
    metrics = train_run(run)
    steps = run.status()["step"]
    print(f"one-class conv_ae (latent {DEFAULT_LATENT_DIM}, {DEFAULT_LOSS}, {steps} steps in "
          f"{run.metrics()[-1]['elapsed']:.0f} s), digit 0 normal: AUROC {metrics['anomaly_auroc']:.4f}, "
          f"average precision {metrics['anomaly_ap']:.4f}")
    assert metrics["anomaly_auroc"] >= 0.97, f"AUROC {metrics['anomaly_auroc']:.4f} after {steps} of 420 steps"
