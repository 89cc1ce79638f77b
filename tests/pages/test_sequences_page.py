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


def test_while_the_matrix_profile_is_prepared_the_page_says_so_and_shows_the_autoencoder(runs_dir, finished,
                                                                                          monkeypatch):
    shutil.copytree(finished["ecg"], runs_dir / "conv-ecg")
    monkeypatch.setattr(ts_anomaly, "matrix_profile_state", lambda: ("preparing", 42.0))
    monkeypatch.setattr(ts_anomaly, "analyse_matrix_profile", lambda name: pytest.fail("the page waited for stumpy"))
    at = render_page("pages/ts_anomaly.py")
    assert ("The matrix profile is being prepared (first use on this server, about 42 s more)"
            in texts(at.info))
    assert len([m for m in at.metric if m.label == "AUROC over steps"]) == 1  # the autoencoder's, at once
    assert "**Autoencoder**" in [m.value for m in at.markdown] and "**Matrix profile**" not in texts(at.markdown)


def test_anomaly_page_scores_both_detectors_and_moves_the_threshold(runs_dir, finished):
    shutil.copytree(finished["ecg"], runs_dir / "conv-ecg")
    ts_anomaly.prepare_matrix_profile().join()  # the page shows it once stumpy is ready (the test above: before)
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


# -- the visitor's own CSV ----------------------------------------------------------------------------------------


@pytest.fixture
def uploads_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_UPLOADS", str(tmp_path / "uploads"))
    monkeypatch.delenv("LATENT_LAB_MAX_UPLOADS", raising=False)
    return tmp_path / "uploads"


def upload_csv(at, key: str, filename: str, data: bytes):
    round_ = at.session_state[f"{key}_round"] if f"{key}_round" in at.session_state else 0  # a fresh uploader each
    at.file_uploader(key=f"{key}_file_{round_}").set_value((filename, data, "text/csv")).run()
    at.button(key=f"{key}_save").click()
    return rerun(at)


def test_an_uploaded_csv_is_offered_and_picked_and_a_bad_one_is_refused_with_its_reason(runs_dir, uploads_dir):
    from tests.engine.test_uploads import long_csv, series_csv

    at = render_page("pages/sequences.py")
    at = upload_csv(at, "seq_uploads", "my waves.csv", series_csv())
    picker = at.selectbox(key="seq_data")
    assert picker.options[-1] == "upload:local/my-waves" and picker.value == "upload:local/my-waves"
    assert "Kept **30** series of 20 steps in 2 classes (24 to train on, 6 to test) as 'my-waves'" in texts(at.success)
    assert "30 series of 20 steps in 2 classes" in texts(at.caption)  # its description under the picker
    assert at.query_params["data"] == "upload:local/my-waves"
    assert at.button(key="seq_uploads_delete_my-waves")  # listed, with its Delete button

    at = upload_csv(at, "seq_uploads", "ragged.csv", b"1,2,3,4\n5,6,7\n")
    assert "ragged.csv was not stored: ragged.csv row 2 has 3 values" in texts(at.error)
    assert at.selectbox(key="seq_data").options[-1] == "upload:local/my-waves"
    assert sorted(p.name for p in (uploads_dir / "local").iterdir()) == [".lock", "my-waves.csv", "my-waves.json"]

    # one long series belongs to the anomaly page: said so here, offered there
    at = upload_csv(at, "seq_uploads", "ecg.csv", long_csv())
    assert "offered on the **Time-series anomalies** page" in texts(at.success)
    assert "upload:local/ecg" not in at.selectbox(key="seq_data").options
    anomalies = render_page("pages/ts_anomaly.py", {"series": "upload:local/ecg"})
    assert anomalies.selectbox(key="tsa_series").options[-1] == "upload:local/ecg"
    assert anomalies.selectbox(key="tsa_series").value == "upload:local/ecg"
    assert "one series of 1,000 steps in windows of 64" in texts(anomalies.caption)


def test_hosted_a_link_names_no_path_and_no_other_workspaces_upload(runs_dir, uploads_dir, monkeypatch, tmp_path):
    from engine.data.uploads import save_series_upload
    from engine.runs import workspace as ws
    from tests.engine.test_uploads import series_csv

    monkeypatch.setenv("LATENT_LAB_MODE", "hosted")
    monkeypatch.delenv("LATENT_LAB_SECRET", raising=False)
    mine, theirs = ws.new_key(), ws.new_key()
    (tmp_path / "series.csv").write_bytes(series_csv())
    theirs_name = save_series_upload(ws.workspace_of_key(theirs), "waves.csv", series_csv()).dataset
    for data in (f"csv:{tmp_path / 'series.csv'}", theirs_name, str(tmp_path / "series.csv")):
        at = render_page("pages/sequences.py", {"ws": mine, "data": data})
        assert at.selectbox(key="seq_data").value == "gunpoint", data
        assert all(not o.startswith("csv:") and o != theirs_name for o in at.selectbox(key="seq_data").options)
    anomalies = render_page("pages/ts_anomaly.py", {"ws": mine, "series": f"csv:{tmp_path / 'series.csv'}"})
    assert anomalies.selectbox(key="tsa_series").value == "ecg-mitdb"
    at = upload_csv(at, "seq_uploads", "waves.csv", series_csv())  # the visitor's own goes into their workspace
    own = f"upload:{ws.workspace_of_key(mine)}/waves"
    assert at.selectbox(key="seq_data").value == own
    assert (uploads_dir / ws.workspace_of_key(mine) / "waves.csv").is_file()
    assert str(uploads_dir) not in texts(at.markdown) + texts(at.caption) + texts(at.success)
