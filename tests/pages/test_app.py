"""The app without a browser: streamlit's AppTest runs app.py (and its home page) in-process.

AppTest draws each page once (fragments draw, but `run_every` never ticks); the browser tests
in tests/browser/ cover the live panel.
"""

from __future__ import annotations

import json
import re
import shutil
import time

import pytest
from streamlit.testing.v1 import AppTest

from engine.data import list_datasets
from engine.runs import FINISHED, Run
from tests.apptest import add_run, render_page, texts

pytestmark = pytest.mark.usefixtures("fresh_data_cache")


def render(query: dict | None = None) -> AppTest:
    return render_page(None, query)


# -- the home page ---------------------------------------------------------------------------------


def test_home_without_runs(runs_dir):
    at = render()
    assert "Latent Lab" in texts(at.title)
    assert "x = f(x)" not in texts(at.latex)  # sanity: the formula is z = f(x)
    assert r"z = f(x)" in texts(at.latex) and r"\hat{x} = g(z)" in texts(at.latex)
    assert "No runs yet" in texts(at.info)
    assert not at.error
    assert at.button(key="home_starter").label == "Train a starter model"
    assert "run" not in at.query_params


def test_sidebar_lists_every_dataset_and_the_device(runs_dir):
    at = render()
    picker = at.selectbox(key="dataset")
    assert picker.value == "mnist-5k"
    assert picker.options == [picker.format_func(d.name) for d in list_datasets()]
    assert "Device:" in texts(at.sidebar.markdown) and "cpu" in texts(at.sidebar.markdown)


def test_unavailable_dataset_says_why_and_how(runs_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_MNIST", str(tmp_path / "no-mnist-here"))
    at = render({"dataset": "mnist"})
    assert at.selectbox(key="dataset").value == "mnist"
    warning = texts(at.sidebar.warning)
    assert "not available" in warning and "fetch-mnist" in warning
    assert at.button(key="home_starter").disabled


def test_a_link_naming_a_dataset_the_server_does_not_offer_says_so(runs_dir, tmp_path):
    """Issue 10: `?dataset=folder:…` was silently ignored and the page fell back to mnist-5k."""
    at = render({"dataset": f"folder:{tmp_path}"})
    assert at.selectbox(key="dataset").value == "mnist-5k" and not at.exception
    warning = texts(at.sidebar.warning)
    shown = re.sub(r"\\(.)", r"\1", warning)  # the link's text is escaped (issue 16): shown as text, never Markdown
    assert f"folder:{tmp_path}" in shown and "does not offer" in warning and "mnist-5k" in warning
    assert "dataset" not in at.query_params  # the link no longer claims what is not shown
    at.run()
    assert "does not offer" in texts(at.sidebar.warning)  # it stays while the fallback is shown
    at.selectbox(key="dataset").set_value(list_datasets()[1].name).run()
    at.selectbox(key="dataset").set_value("mnist-5k").run()
    assert "does not offer" not in texts(at.sidebar.warning)  # once another was picked, it is forgotten
    long = render({"dataset": "x" * 500})
    assert "…" in texts(long.sidebar.warning) and "x" * 100 not in texts(long.sidebar.warning)


def test_home_shows_a_finished_run(runs_dir, finished_pca_run):
    add_run(runs_dir, finished_pca_run, "pca-finished")
    at = render()
    assert not at.error
    table = at.dataframe[0].value
    assert list(table["id"]) == ["pca-finished"]
    row = table.iloc[0]
    assert row["model"] == "pca" and row["latent"] == 8 and "done" in row["state"]
    assert 0 < row["test MSE"] < 0.1 and row["PSNR (dB)"] > 10 and 0 < row["kNN acc"] <= 1
    assert at.selectbox(key="home_run").value == "pca-finished"
    assert at.query_params["run"] == "pca-finished"
    assert "pca-finished" in texts(at.markdown)
    assert "State:** done" in texts(at.markdown)
    assert len(at.get("image")) == 2  # the inputs and the reconstructions (PCA has no samples)
    labels = [m.label for m in at.metric]
    assert "test MSE" in labels and "kNN accuracy" in labels
    assert at.button(key="run_panel_cancel").disabled and at.button(key="run_panel_resume").disabled


def test_a_link_restores_the_selected_run(runs_dir, finished_pca_run):
    for run_id in ("20250101-older", "20250102-newer"):
        add_run(runs_dir, finished_pca_run, run_id)
    assert render().selectbox(key="home_run").value == "20250102-newer"  # the latest by default
    at = render({"run": "20250101-older"})
    assert at.selectbox(key="home_run").value == "20250101-older"
    assert "20250101-older" in texts(at.markdown)
    assert not at.error


def test_a_stale_link_says_so(runs_dir, finished_pca_run):
    add_run(runs_dir, finished_pca_run, "pca-finished")
    at = render({"run": "deleted-long-ago"})
    assert "no run 'deleted-long-ago'" in texts(at.error)
    assert at.selectbox(key="home_run").value == "pca-finished"


def test_a_stale_link_without_any_run(runs_dir):
    at = render({"run": "deleted-long-ago"})
    assert "no run 'deleted-long-ago'" in texts(at.error)
    assert "No runs yet" in texts(at.info)


def test_a_damaged_run_does_not_break_the_page(runs_dir, finished_pca_run):
    garbage = runs_dir / "20250103-garbage"
    garbage.mkdir()
    (garbage / "config.json").write_text("{this is not json")
    at = render()
    assert "20250103-garbage" in list(at.dataframe[0].value["id"])
    assert "is not valid JSON" in texts(at.error)
    assert at.button(key="run_panel_delete") and at.button(key="run_panel_resume").disabled

    # a readable config whose other files are damaged: status, metrics and snapshots
    damaged = add_run(runs_dir, finished_pca_run, "20250104-damaged")
    (damaged / "status.json").write_text("[1, 2")
    (damaged / "metrics.jsonl").write_text('{"step": 1, "train/loss": 0.5}\n{"step": 2, "train/lo')
    (damaged / "snapshots" / "inputs.png").unlink()
    shutil.rmtree(damaged / "checkpoints")
    at = render({"run": "20250104-damaged"})
    assert "status.json is not valid JSON" in texts(at.error)
    assert "not written yet" in texts(at.caption)

    # valid JSON with the wrong types in it
    (damaged / "status.json").write_text(json.dumps({"state": "done", "step": "many", "progress": "all",
                                                     "final_metrics": {"mse": "low"}}))
    at = render({"run": "20250104-damaged"})
    assert "State:** done · step 0" in texts(at.markdown)  # a step that is not a number reads as 0
    assert [m.value for m in at.metric][0] == "–"


def test_a_run_folder_deleted_while_listed(runs_dir, finished_pca_run):
    add_run(runs_dir, finished_pca_run, "pca-finished")
    at = render()
    shutil.rmtree(runs_dir / "pca-finished")
    at.run()
    assert not at.exception
    assert "No runs yet" in texts(at.info)


def test_delete_asks_first(runs_dir, finished_pca_run):
    add_run(runs_dir, finished_pca_run, "pca-finished")
    at = render()
    at.button(key="run_panel_delete").click().run()
    assert "Delete run pca-finished" in texts(at.warning)
    at.button(key="run_panel_delete_no").click().run()
    assert not at.warning and (runs_dir / "pca-finished").exists()
    at.button(key="run_panel_delete").click().run()
    at.button(key="run_panel_delete_yes").click().run()
    assert not at.exception
    assert not (runs_dir / "pca-finished").exists()
    assert "No runs yet" in texts(at.info) and not at.error


def test_bad_demo_scale_is_a_warning(runs_dir, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_DEMO_SCALE", "soon")
    at = render()
    assert "LATENT_LAB_DEMO_SCALE" in texts(at.warning)
    assert not at.exception and "800 steps" in texts(at.markdown)  # the demo's own budget instead


def test_train_a_starter_model(runs_dir, monkeypatch):
    """The button submits the starter demo: a step budget (scaled by LATENT_LAB_DEMO_SCALE), named "starter"."""
    monkeypatch.setenv("LATENT_LAB_DEMO_SCALE", "0.05")
    at = render()
    assert "conv_ae, latent 32, 40 steps" in texts(at.markdown)
    at.button(key="home_starter").click().run()
    assert not at.exception and not at.error
    (run,) = [Run(p) for p in runs_dir.iterdir()]
    assert run.config["model"] == "conv_ae" and run.config["model_config"]["latent_dim"] == 32
    assert run.config["train"]["steps"] == 40 and run.config["train"]["schedule"] == "one_cycle"
    assert run.config["name"] == "starter" and run.summary()["name"] == "starter"
    assert at.selectbox(key="home_run").value == run.id
    assert at.query_params["run"] == run.id
    deadline = time.monotonic() + 120  # the worker is a real process: let it finish before tmp goes
    while run.status().state not in FINISHED and time.monotonic() < deadline:
        time.sleep(0.3)
    assert run.status().state == "done", run.status()
    at.run()
    assert not at.exception
    assert "State:** done" in texts(at.markdown) and len(at.get("image")) >= 2


# -- helpers ---------------------------------------------------------------------------------------


def test_run_row_prefers_final_metrics():
    from engine.lab.home import gallery_row as run_row

    done = run_row({"id": "a", "model": "ae", "dataset": "mnist-5k", "latent_dim": 4, "state": "done",
                    "progress": 1.0, "metrics": {"mse": 0.01, "psnr": 20.0, "knn_accuracy": 0.9}})
    assert (done["test MSE"], done["PSNR (dB)"], done["kNN acc"]) == (0.01, 20.0, 0.9)
    running = run_row({"id": "b", "state": "running", "progress": 0.5, "metrics": {"test/mse": 0.03}})
    assert running["test MSE"] == 0.03 and running["PSNR (dB)"] is None and running["model"] == "?"


def test_loss_figure():
    from ui.charts.losses import loss_figure

    assert loss_figure([]) is None
    assert loss_figure([{"step": 1, "eval/mse": 0.1}]) is None
    fig = loss_figure([{"step": s, "train/loss": 1 / s, "test/mse": 2 / s} for s in (1, 2, 3)]
                      + [{"step": 4, "train/loss": float("nan")}])
    assert [t.name for t in fig.data] == ["train loss", "test MSE"]
    assert list(fig.data[0].x) == [1, 2, 3]
    assert fig.data[1].yaxis == "y"  # same units, one axis
    vae = loss_figure([{"step": s, "train/loss": 150 / s, "test/mse": 0.1 / s} for s in (1, 2, 3)])
    assert vae.data[1].yaxis == "y2"  # nats per image vs per-pixel MSE: an axis each


def test_demo_scale(monkeypatch):
    from engine.lab.demos import DEMOS, demo_scale, demo_settings

    monkeypatch.delenv("LATENT_LAB_DEMO_SCALE", raising=False)
    assert demo_scale() == 1.0 and demo_settings("starter")[2]["steps"] == DEMOS["starter"].train["steps"]
    monkeypatch.setenv("LATENT_LAB_DEMO_SCALE", "0.5")
    assert demo_scale() == 0.5 and demo_settings("dcgan")[2]["steps"] == DEMOS["dcgan"].train["steps"] // 2
    assert demo_settings("starter", scale=0.0001)[2]["steps"] == 10  # never fewer than 10 steps
    for bad in ("0", "-1", "inf", "nan", "four"):
        monkeypatch.setenv("LATENT_LAB_DEMO_SCALE", bad)
        with pytest.raises(ValueError, match="LATENT_LAB_DEMO_SCALE"):
            demo_scale()


def test_every_demo_makes_a_valid_run_config():
    from engine.lab.demos import DEMOS
    from engine.runs import make_run_config

    for name, demo in DEMOS.items():
        model, model_config, train = demo.settings()
        config = make_run_config(model, "mnist-5k", model_config, train)
        assert config["train"]["steps"] == demo.train["steps"] and config["train"]["epochs"] is None, name


def test_run_summary_json_garbage_config_is_a_failed_row(tmp_path):
    (tmp_path / "config.json").write_text("not json")
    row = Run(tmp_path).summary()
    assert row["state"] == "failed" and "not valid JSON" in row["error"]
    json.dumps(row)


def test_the_servers_streamlit_settings():
    """.streamlit/config.toml (read by `streamlit run` from the repository root): only options Streamlit knows
    (it ignores a misspelt one silently), the upload limit the engine checks again, no forced GC per run."""
    from pathlib import Path

    import streamlit.config
    import tomllib

    from engine.runs.transfer import MAX_IMPORT_BYTES

    path = Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml"
    settings = tomllib.loads(path.read_text())
    names = {f"{section}.{name}" for section, options in settings.items() for name in options}
    known = set(streamlit.config._config_options_template)
    assert names <= known, names - known
    assert settings["server"]["maxUploadSize"] * 2**20 == MAX_IMPORT_BYTES
    # Streamlit's default gc.collect() after every run holds the GIL while the run's last messages wait to be sent:
    # ~200 ms added to every latent-slider move (bench/bench_ui_latency.py)
    assert settings["runner"]["postScriptGC"] is False
