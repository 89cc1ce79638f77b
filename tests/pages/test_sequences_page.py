"""The Sequences and Time-series anomalies pages without a browser (streamlit's AppTest), on small real runs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from engine.lab import sequences as lab
from engine.lab import ts_anomaly
from engine.runs import Run, make_run_config
from engine.train import train_run
from tests.apptest import plotly_values, render_page, rerun, texts

pytestmark = pytest.mark.usefixtures("fresh_data_cache")


def trained(parent, run_id: str, model: str, dataset: str, steps: int) -> Run:
    model_config, train = lab.run_settings(model, dataset, 4, steps)
    run = Run.create(parent, make_run_config(model, dataset, model_config, {**train, "snapshot_every_s": 0.1}),
                     run_id=run_id)
    train_run(run)
    assert run.status().state == "done"
    return run


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    parent = tmp_path_factory.mktemp("seq-page")
    return {"lstm": trained(parent, "lstm-italy", "lstm_ae", "italy-power", 60).path,
            "conv": trained(parent, "conv-italy", "conv1d_ae", "italy-power", 30).path,
            "ecg": trained(parent, "conv-ecg", "conv1d_ae", "ecg-mitdb", 40).path}


def trace_types(at) -> list[set]:
    """The trace types of each plotly chart on the page (the spec's template mentions every type: read "data")."""
    return [{t.get("type") for t in json.loads(c.proto.spec)["data"]} for c in at.get("plotly_chart")]


def test_without_a_run_the_page_explains_and_offers_training(runs_dir):
    at = render_page("pages/sequences.py")
    assert texts(at.title) == "Sequences"
    assert r"h_t = \mathrm{Cell}(x_t, h_{t-1})" in texts(at.latex)
    assert "No sequence run" in texts(at.info)
    assert at.selectbox(key="seq_data").value == "gunpoint" and at.selectbox(key="seq_model").value == "lstm_ae"


def test_a_trained_lstm_shows_replay_z_map_and_gates_and_keeps_its_state_in_the_url(runs_dir, finished):
    shutil.copytree(finished["lstm"], runs_dir / "lstm-italy")
    at = render_page("pages/sequences.py", {"data": "italy-power", "i": "7"})
    assert [s.value for s in at.subheader] == ["Reconstructions over training", "One series and its context vector z",
                                              "Latent map of the test series", "Inside the LSTM: gates and cell state"]
    assert at.number_input(key="seq_i").value == 7
    steps = lab.replay(Run(runs_dir / "lstm-italy")).steps
    slider = at.select_slider(key="seq_step_lstm-italy")
    assert slider.options == [str(s) for s in steps] and slider.value == steps[-1]
    assert "i_t" in texts(at.latex) and "forget" in texts(at.markdown)
    assert at.query_params["run"] == "lstm-italy" and at.query_params["step"] == str(steps[-1])
    slider.set_value(steps[0])
    at = rerun(at)
    assert at.query_params["step"] == str(steps[0])
    at.number_input(key="seq_i").set_value(11)
    at = rerun(at)
    assert at.query_params["i"] == "11"
    assert {"heatmap"} in trace_types(at), "no gate heatmap"
    bars = next(json.loads(c.proto.spec) for c, kinds in zip(at.get("plotly_chart"), trace_types(at))
                if kinds == {"bar"})
    model, _ = Run(runs_dir / "lstm-italy").load_model()
    z = lab.one_series(model, lab.test_split("italy-power"), 11)["z"]
    np.testing.assert_allclose(plotly_values(bars["data"][0]["y"]), z, rtol=1e-5)


def test_a_conv_run_has_no_gates_and_says_so(runs_dir, finished):
    for name in ("lstm", "conv", "ecg"):
        shutil.copytree(finished[name], runs_dir / Run(finished[name]).id)
    at = render_page("pages/sequences.py", {"data": "italy-power", "run": "conv-italy"})
    assert sorted(at.selectbox(key="seq_run").options) == ["conv-italy · conv1d_ae · latent 4",
                                                            "lstm-italy · lstm_ae · latent 4"]  # not the ECG's
    assert at.selectbox(key="seq_run").value == "conv-italy"
    assert "Gates belong to an LSTM" in texts(at.info)
    assert {"heatmap"} not in trace_types(at) and {"bar"} in trace_types(at)


def test_anomaly_page_scores_both_detectors_and_moves_the_threshold(runs_dir, finished):
    shutil.copytree(finished["ecg"], runs_dir / "conv-ecg")
    at = render_page("pages/ts_anomaly.py", {"q": "95"})
    assert texts(at.title) == "Time-series anomalies" and "AUROC" in texts(at.markdown)
    assert at.slider(key="tsa_q").value == 95
    model, _ = Run(runs_dir / "conv-ecg").load_model()
    result = ts_anomaly.analyse(model.eval(), "ecg-mitdb")
    aurocs = [m.value for m in at.metric if m.label == "AUROC over steps"]
    assert aurocs == [f"{result[d]['auroc']:.3f}" for d in ts_anomaly.DETECTORS]
    flagged = [m.value for m in at.metric if m.label == "Steps flagged"]
    at.slider(key="tsa_q").set_value(99.5)
    at = rerun(at)
    assert at.query_params["q"] == "99.5"
    after = [m.value for m in at.metric if m.label == "Steps flagged"]
    expect = [f"{ts_anomaly.detect(result[d], result['series'], 99.5)['flagged']:,}" for d in ts_anomaly.DETECTORS]
    assert after == expect and after != flagged
