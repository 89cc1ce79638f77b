"""The Sequences and time-series anomaly back-ends on small real runs (an LSTM AE trained for a few seconds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.data import load_dataset
from engine.eval.sequences import matrix_profile
from engine.lab import sequences as lab
from engine.lab import ts_anomaly
from engine.runs import Run, make_run_config
from engine.train import train_run


def trained(parent, model: str, dataset: str, steps: int, latent: int = 4) -> Run:
    model_config, train = lab.run_settings(model, dataset, latent, steps)
    run = Run.create(parent, make_run_config(model, dataset, model_config, {**train, "snapshot_every_s": 0.1}))
    train_run(run)
    assert run.status().state == "done", run.status()
    return run


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory) -> Run:
    return trained(tmp_path_factory.mktemp("seq"), "lstm_ae", "italy-power", 80)


@pytest.fixture(scope="module")
def ecg_run(tmp_path_factory) -> Run:
    return trained(tmp_path_factory.mktemp("ecg"), "conv1d_ae", "ecg-mitdb", 60)


def test_the_page_offers_sequence_models_and_labelled_sets():
    assert lab.sequence_models() == ["rnn_ae", "lstm_ae", "gru_ae", "conv1d_ae", "seq_vae"]
    assert "gunpoint" in lab.page_datasets() and "seq-mnist" in lab.page_datasets()
    assert "ecg-mitdb" not in lab.page_datasets() and ts_anomaly.series_datasets() == ["ecg-mitdb", "yahoo"]
    model_config, train = lab.run_settings("gru_ae", "japanese-vowels", 6, 100, {"bidirectional": True})
    assert model_config == {"length": 29, "channels": 12, "latent_dim": 6, "bidirectional": True}
    assert train["steps"] == 100


def test_replay_frames_are_the_models_reconstructions_at_their_step(lstm_run):
    rep = lab.replay(lstm_run)
    data = load_dataset("italy-power")
    assert rep.steps[0] == 0 and rep.steps[-1] == 80 and len(rep.steps) >= 3
    np.testing.assert_allclose(rep.x, data.x_test[rep.indices].numpy(), atol=1e-4)
    model, _ = lstm_run.load_model()  # the newest checkpoint is the final step's
    with torch.no_grad():
        expected = model.eval()(data.x_test[rep.indices]).numpy()
    np.testing.assert_allclose(lab.frame(lstm_run, 80), expected, atol=1e-3)
    first = lab.frame(lstm_run, 0)
    assert np.abs(first - rep.x).mean() > np.abs(expected - rep.x).mean()  # training made them better
    assert lab.nearest_step(rep.steps, None) == 80 and lab.nearest_step([0, 40, 80], 61) == 80
    assert lab.frame(lstm_run, 12345) is None


def test_one_series_its_code_the_map_and_the_gates(lstm_run):
    model, _ = lstm_run.load_model()
    data = load_dataset("italy-power")
    one = lab.one_series(model, data, 5)
    assert one["x"].shape == (24, 1) and one["z"].shape == (4,)
    assert one["mse"] == pytest.approx(float(((one["x"] - one["x_hat"]) ** 2).mean()), rel=1e-5)
    z = lab.test_codes(model, data)
    np.testing.assert_allclose(z[5], one["z"], atol=1e-5)
    mp = lab.latent_map(z, data.y_test.numpy(), "pca")
    assert mp["xy"].shape == (len(z), 2) and 0.5 < mp["knn_z"] <= 1
    trace = lab.gates(model, data, 5)
    assert set(trace) >= {"input", "forget", "output", "cell"} and trace["forget"].shape == (24, 64)
    assert lab.clicked_series({"selection": {"points": [{"customdata": [17]}]}}) == 17
    assert lab.clicked_series({"selection": {"points": []}}) is None


def test_gates_are_only_an_lstms(ecg_run):
    model, _ = ecg_run.load_model()
    with pytest.raises(ValueError, match="only an LSTM"):
        lab.gates(model, load_dataset("ecg-mitdb"), 0)


def test_both_detectors_score_the_same_windows_the_same_way(ecg_run):
    model, _ = ecg_run.load_model()
    result = ts_anomaly.analyse(model.eval(), "ecg-mitdb")
    series = result["series"]
    n_windows = len(series.values) - series.window + 1
    for d in ts_anomaly.DETECTORS:
        r = result[d]
        assert r["window_scores"].shape == (n_windows,) and r["step_scores"].shape == series.values.shape
        assert 0 <= r["auroc"] <= 1 and r["top_window"] == int(np.argmax(r["window_scores"]))
    np.testing.assert_allclose(result["matrix profile"]["window_scores"], matrix_profile(series.values, series.window))
    loose, strict = (ts_anomaly.detect(result["autoencoder"], series, q) for q in (90, 99.5))
    assert loose["tau"] < strict["tau"] and loose["flagged"] > strict["flagged"]
    normal = result["autoencoder"]["step_scores"][:series.train_end]
    assert (normal > loose["tau"]).mean() <= 0.1 + 1e-9  # the 90th percentile of the normal start
    with pytest.raises(ValueError, match="not one long series"):
        ts_anomaly.series_of("gunpoint")
