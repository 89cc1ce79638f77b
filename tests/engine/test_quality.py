"""Quality bars on real data (marked slow: each trains for tens of seconds on a 2-core CPU)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.data import load_dataset
from engine.runs import Run, make_run_config
from engine.train import train_run

pytestmark = pytest.mark.slow

# Step budgets, not seconds: a test on a loaded CI machine then checks the same model, later (issue 10).
VAE_STEPS = 1500  # what 20 s gave on a quiet 2-core machine


def test_the_starter_beats_half_the_pca_error_whatever_the_machine_is_doing(tmp_path):
    """Home's one-click starter (engine.lab.demos): a step budget, so a busy machine gives the same model."""
    from engine.lab.demos import demo_settings

    model, model_config, train = demo_settings("starter", scale=1.0)
    run = Run.create(tmp_path, make_run_config(model, "mnist-5k", model_config, train))
    metrics = train_run(run)
    print(f"starter ({train['steps']} steps): test MSE {metrics['mse']:.5f}, PCA(32) {metrics['pca_mse']:.5f}, "
          f"ratio {metrics['mse_vs_pca']:.3f}, kNN {metrics['knn_accuracy']:.3f}")
    assert run.status().step == train["steps"]
    assert metrics["mse"] <= 0.5 * metrics["pca_mse"]


KERAS_LECTURE_MSE = 0.0397  # the course's Keras code on the same split: median of 5 seeds (0.0394–0.0409),
# python bench/bench_lecture.py --keras-python … (2026-12-01, 2-core CPU); Keras is no dependency of ours


def test_the_lectures_example_does_at_least_as_well_as_the_lectures_code(tmp_path):
    """Issue 11: 784 → Dense(64, relu) → Dense(784, sigmoid), Adam, MSE, 10 epochs of 256, as the course trains it."""
    config = make_run_config("ae", "mnist-5k", {"hidden": (), "latent_dim": 64, "latent_activation": "relu"},
                             {"epochs": 10, "batch_size": 256})
    metrics = train_run(Run.create(tmp_path, config))
    print(f"lecture example, 10 epochs: test MSE {metrics['mse']:.5f} (Keras {KERAS_LECTURE_MSE})")
    assert metrics["mse"] <= KERAS_LECTURE_MSE


def test_vae_prior_samples_are_recognisable_digits(tmp_path):
    """Samples z ~ N(0, I), judged against real digits in pixel space by scikit-learn neighbours.

    Measured alternatives that must fail these checks (mnist-5k, 200 images each): uniform noise
    (nearest-digit distance 15.0, 3 digits ≥ 5 %), the mean digit plus noise (6.0, 4 digits) and
    shuffled test digits (10.0, 1 digit); real test digits score 4.96 with all 10 digits.
    """
    from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

    run = Run.create(tmp_path, make_run_config("vae", "mnist-5k", {}, {"steps": VAE_STEPS}))
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
    print(f"vae {VAE_STEPS} steps: ELBO {metrics['elbo']:.1f} nats, KL {metrics['kl']:.1f}; samples: neighbour "
          f"agreement {agree:.3f} (real {real_agree:.3f}), nearest-digit distance {dist:.2f} (real {real_dist:.2f}), "
          f"digits {classes.tolist()}")
    assert dist < 1.15 * real_dist
    assert agree > 0.7 * real_agree
    assert (classes >= 10).sum() >= 8  # at least 8 digits each look like 5 % of the samples


def test_one_class_conv_ae_spots_the_other_digits(tmp_path):
    """Digit 0 normal, every other digit an anomaly; the score is the reconstruction MSE.

    Published convolutional-autoencoder results on full MNIST reach about 0.98. Measured here
    (mnist-5k, 60 epochs of the 400 zeros = 420 steps of 64, seeds 0/1): latent_dim 8 AUROC 0.994/0.996,
    16: 0.993/0.990, 32: 0.989/0.994, 16 with the BCE loss 0.991/0.991; latent 8 passes 0.98 after
    ~150 steps, and a time budget on a starved machine gave 45 steps and 0.90. The Anomaly page's
    default is a step budget (engine.lab.anomaly.DEFAULT_STEPS): this is that run, one thread.
    """
    from engine.lab.anomaly import DEFAULT_LATENT_DIM, DEFAULT_LOSS, DEFAULT_STEPS, one_class_settings

    model_config, train = one_class_settings("conv_ae", [0], DEFAULT_LATENT_DIM, DEFAULT_STEPS, DEFAULT_LOSS)
    config = make_run_config("conv_ae", "mnist-5k", model_config, {**train, "threads": 1})
    run = Run.create(tmp_path, config)
    metrics = train_run(run)
    steps = run.status().step
    print(f"one-class conv_ae (latent {DEFAULT_LATENT_DIM}, {DEFAULT_LOSS}, {steps} steps in "
          f"{run.metrics()[-1]['elapsed']:.0f} s), digit 0 normal: AUROC {metrics['anomaly_auroc']:.4f}, "
          f"average precision {metrics['anomaly_ap']:.4f}")
    assert steps == DEFAULT_STEPS
    assert metrics["anomaly_auroc"] >= 0.97, f"AUROC {metrics['anomaly_auroc']:.4f} after {steps} steps"


# -- GANs, scored by the judge classifier (engine/eval/judge.py) ------------------------------------------------


def _with_judge(mnist_judge, runs_dir):
    """A runs folder that holds the session's mnist-5k judge, so the run does not train its own."""
    import shutil

    from engine.eval.judge import judge_path

    shutil.copytree(mnist_judge.path, judge_path("mnist-5k", runs_dir))
    return runs_dir


def test_the_dcgan_demo_is_on_its_way(tmp_path, mnist_judge):
    """The GAN studio's one-click DCGAN (engine.lab.demos), the CI-sized version of the 5-minute bar below."""
    from engine.lab.demos import demo_settings

    model, model_config, train = demo_settings("dcgan", scale=1.0)
    run = Run.create(_with_judge(mnist_judge, tmp_path), make_run_config(model, "mnist-5k", model_config, train))
    m = train_run(run)
    print(f"dcgan demo: {run.status().step} steps, FID {m['fid']:.1f} (untrained {m['fid_untrained']:.1f}, "
          f"ratio {m['fid_ratio']:.3f}), IS {m['inception_score']:.2f}, classes {m['class_hist']}")
    assert run.status().step == train["steps"]
    assert m["fid_ratio"] <= 0.5
    assert m["classes_covered"] >= 6
    judged = [r for r in run.metrics() if "judge/fid" in r]
    assert len(judged) >= 2 and judged[-1]["judge/fid"] < judged[0]["judge/fid"]


@pytest.mark.bar
@pytest.mark.timeout(900)
def test_dcgan_bar(tmp_path, mnist_judge):
    """The issue's bar: dcgan on mnist-5k, 5 minutes on a 2-core CPU."""
    run = Run.create(_with_judge(mnist_judge, tmp_path), make_run_config("dcgan", "mnist-5k", {}, {"seconds": 300}))
    m = train_run(run)
    snaps = run.snapshots("samples")
    print(f"dcgan 300 s: {run.status().step} steps, FID {m['fid']:.1f} (untrained {m['fid_untrained']:.1f}, "
          f"ratio {m['fid_ratio']:.3f}), IS {m['inception_score']:.2f}, classes ≥ 4 %: {m['classes_covered']}, "
          f"shares {m['class_hist']}, snapshots {len(snaps)}, judge accuracy {m['judge_accuracy']:.3f}")
    assert m["fid_ratio"] <= 0.3
    assert sum(share >= 0.04 for share in m["class_hist"]) >= 9
    assert len(snaps) >= 20
    assert m["judge_accuracy"] >= 0.95


@pytest.mark.bar
@pytest.mark.timeout(900)
def test_cgan_bar(tmp_path, mnist_judge):
    """The issue's bar: samples of a requested class are judged to be of it ≥ 80 % of the time."""
    run = Run.create(_with_judge(mnist_judge, tmp_path), make_run_config("cgan", "mnist-5k", {}, {"seconds": 300}))
    m = train_run(run)
    print(f"cgan 300 s: {run.status().step} steps, class agreement {m['class_agreement']:.3f}, "
          f"FID ratio {m['fid_ratio']:.3f}, classes {m['class_hist']}")
    assert m["class_agreement"] >= 0.8
