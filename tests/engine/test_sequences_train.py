"""Training a sequence model through the CLI into the usual run folder, its scores, and the anomaly scores."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from engine.eval import sequences as ev
from engine.runs import Run, make_run_config
from engine.train import train_run


def test_cli_trains_a_gru_ae_on_italy_power_into_a_run_folder(tmp_path):
    out = subprocess.run([sys.executable, "-m", "engine", "train", "gru_ae", "--data", "italy-power", "--steps", "120",
                          "--latent-dim", "4", "--set", "threads=1", "--runs-dir", str(tmp_path), "--quiet"],
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    run = Run(result["path"])
    assert run.status().state == "done" and run.status().step == 120
    config = run.config
    assert config["model_config"]["length"] == 24 and config["model_config"]["channels"] == 1  # from the data
    assert run.checkpoints() and run.latest_checkpoint().suffix == ".safetensors"
    snaps = run.path / "snapshots"
    inputs = json.loads((snaps / "series_inputs.json").read_text())
    assert np.asarray(inputs["x"]).shape == (8, 24, 1) and len(set(inputs["y"][:2])) == 2  # one of each class first
    frames = sorted(snaps.glob("series_*[0-9].json"))
    assert len(frames) >= 2 and json.loads(frames[-1].read_text())["step"] == 120
    assert run.snapshots("recon") and (snaps / "inputs.png").read_bytes()[:4] == b"\x89PNG"
    final = result["metrics"]
    assert set(final) >= {"mse", "pca_mse", "mse_vs_pca", "knn_accuracy", "raw_1nn_accuracy"}
    # 120 steps learn the daily shape: well under the variance of the standardised data (a mean predictor's ≈ 1)
    assert final["mse"] < 0.4, final
    assert final["knn_accuracy"] > 0.75 and final["raw_1nn_accuracy"] == pytest.approx(0.955, abs=0.01)


def test_an_image_dataset_is_refused_before_a_run_is_made(tmp_path):
    out = subprocess.run([sys.executable, "-m", "engine", "train", "lstm_ae", "--data", "mnist-5k", "--steps", "5",
                          "--runs-dir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "holds images" in out.stderr and not list(tmp_path.iterdir())


def test_a_run_built_for_other_series_fails_saying_why(tmp_path):
    config = make_run_config("lstm_ae", "italy-power", {"length": 50, "channels": 1}, {"steps": 2})
    run = Run.create(tmp_path, config)
    with pytest.raises(ValueError, match="50 steps × 1 channels"):
        train_run(run)
    assert run.status().state == "failed" and "train a new one" in run.status().error


def test_seq_vae_reports_its_elbo(tmp_path):
    run = Run.create(tmp_path, make_run_config("seq_vae", "italy-power", {"length": 24, "channels": 1,
                                                                           "latent_dim": 2}, {"steps": 20}))
    final = train_run(run)
    assert final["elbo"] < 0 and final["kl"] >= 0 and np.isfinite(final["mse_vs_pca"])


# ---------------------------------------------------------------------------------------------
# anomaly scores


def test_step_scores_take_the_worst_window_covering_each_step():
    scores = ev.step_scores(np.array([1.0, 5.0, 2.0]), window=3, length=5)  # windows [0,3), [1,4), [2,5)
    assert scores.tolist() == [1.0, 5.0, 5.0, 5.0, 2.0]
    with pytest.raises(ValueError, match="one per start"):
        ev.step_scores(np.ones(4), window=3, length=5)


def test_auroc_and_the_ucr_top_window_against_sklearn_and_by_hand():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    labels = np.zeros(200, dtype=int)
    labels[120:140] = 1
    scores = rng.normal(size=200) + 2 * labels
    assert ev.auroc_over_steps(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert ev.auroc_over_steps(scores, np.zeros(200)) is None
    window_scores = np.zeros(191)
    window_scores[115] = 9  # window [115, 125) overlaps [120, 140)
    assert ev.ucr_hit(window_scores, labels, 10) == {"top_window": 115, "hit": True}
    window_scores[115], window_scores[40] = 0, 9
    assert not ev.ucr_hit(window_scores, labels, 10)["hit"]
    assert ev.ucr_hit(window_scores, np.zeros_like(labels), 10) == {"top_window": int(np.argmax(window_scores)),
                                                                    "hit": None}  # no labels: neither
    assert ev.labelled_regions(labels) == [(120, 140)]


def test_matrix_profile_matches_a_brute_force_discord_search():
    """stumpy's matrix profile against the definition: each window's z-normalised distance to its nearest window
    outside the exclusion zone (m/4, rounded up, either side)."""
    rng = np.random.default_rng(1)
    x = np.sin(np.arange(300) / 6) + 0.05 * rng.normal(size=300)
    x[200:210] += 1.5  # a discord
    m = 20
    w = np.lib.stride_tricks.sliding_window_view(x, m)
    w = (w - w.mean(1, keepdims=True)) / w.std(1, keepdims=True)
    d = np.sqrt(((w[:, None] - w[None]) ** 2).sum(-1))
    zone = int(np.ceil(m / 4))
    idx = np.arange(len(w))
    d[np.abs(idx[:, None] - idx[None]) <= zone] = np.inf
    mp = ev.matrix_profile(x, m)
    np.testing.assert_allclose(mp, d.min(1), rtol=1e-5, atol=1e-6)
    assert 200 - m < int(np.argmax(mp)) < 210
