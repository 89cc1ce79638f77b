"""The Train page without a browser (AppTest): the generated form, starting a run, errors, the overlay, uploads."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import asdict

import pytest
from streamlit.testing.v1 import AppTest

from engine.models import MODELS, models
from engine.models.settings import describe
from engine.runs import DEFAULT_EPOCHS, FINISHED, Run, TrainConfig, list_runs
from engine.runs.transfer import export_run
from tests.apptest import add_run, render_page, texts
from tests.engine.test_transfer import repack, unpack

RECONSTRUCTION = models(encodes=True)


pytestmark = pytest.mark.usefixtures("fresh_data_cache")


def train_page(query: dict | None = None) -> AppTest:
    return render_page("pages/train.py", query)


def widget(at, key):
    """The form's input for `key` (selectbox, number or text input, checkbox), whatever its kind."""
    for kind in ("number_input", "text_input", "selectbox", "checkbox"):
        found = [w for w in getattr(at, kind) if w.key == key]
        if found:
            return found[0]
    raise AssertionError(f"no widget with key {key!r}")


def shown(value):
    """How the form shows a default: lists as '256, 128', numbers as they are."""
    return ", ".join(map(str, value)) if isinstance(value, (tuple, list)) else value


def submit(at) -> AppTest:
    (button,) = [b for b in at.button if b.label == "Start training"]
    return button.click().run()


def wait_finished(run: Run, timeout: float = 120) -> str:
    """Let a real worker finish before pytest removes its folder."""
    deadline = time.monotonic() + timeout
    while run.status().state not in FINISHED and time.monotonic() < deadline:
        time.sleep(0.3)
    return run.status().state


# -- the form --------------------------------------------------------------------------------------


def test_the_form_renders_every_reconstruction_model_with_its_defaults(runs_dir):
    at = train_page()
    assert "Train" in texts(at.title) and r"\ell_{\text{MSE}}" in texts(at.latex)
    picker = at.selectbox(key="train_model")
    assert picker.options == RECONSTRUCTION and picker.value == "conv_ae"
    for name in RECONSTRUCTION:
        at.selectbox(key="train_model").set_value(name).run()
        assert not at.exception, name
        cls = MODELS[name]
        assert at.query_params["model"] == name
        assert cls.description in texts(at.markdown)
        declared = {s.name: s for s in describe(cls.config_cls)}
        for f in dataclasses.fields(cls.config_cls):
            w, s = widget(at, f"train_{name}_{f.name}"), declared[f.name]
            assert w.label == s.label and w.value == shown(getattr(cls.config_cls(), f.name)), (name, f.name)
            assert s.label != f.name and s.label[0].isupper(), f"{name}.{f.name} has no human label"
            assert w.help.startswith(s.help) and f"--set {f.name}=" in w.help
        train = {**asdict(TrainConfig()), **cls.train_defaults}
        for key in ("batch_size", "lr", "weight_decay", "seed"):
            assert widget(at, f"train_{name}_t_{key}").value == pytest.approx(train[key]), (name, key)
        assert widget(at, f"train_{name}_t_epochs").value == DEFAULT_EPOCHS
        assert widget(at, f"train_{name}_t_seconds").value is None


def test_the_loss_shown_follows_the_model(runs_dir):
    assert r"\lambda \lVert \partial h / \partial x" in texts(train_page({"model": "contractive_ae"}).latex)
    assert r"\mathrm{KL}(\rho" in texts(train_page({"model": "sparse_ae"}).latex)
    assert "ELBO" in texts(train_page({"model": "conv_vae"}).latex)
    at = train_page({"model": "no-such-model"})  # a bad link falls back to the default model
    assert at.selectbox(key="train_model").value == "conv_ae"


def test_submitting_starts_a_run_with_the_chosen_settings(runs_dir):
    at = train_page({"model": "ae"})
    widget(at, "train_ae_latent_dim").set_value(6)
    widget(at, "train_ae_hidden").set_value("24, 12")
    widget(at, "train_ae_loss").set_value("bce")
    widget(at, "train_ae_t_epochs").set_value(1)
    widget(at, "train_ae_t_seconds").set_value(20.0)
    widget(at, "train_ae_t_batch_size").set_value(200)
    widget(at, "train_ae_t_seed").set_value(7)
    widget(at, "train_ae_t_classes").set_value("3, 5")
    widget(at, "train_ae_name").set_value("  tiny   bce AE ")  # issue 10: runs were known only by their ids
    submit(at)
    assert not at.exception and not at.error, texts(at.error)
    (run,) = list_runs(runs_dir)
    config = run.config
    assert config["model"] == "ae" and config["dataset"] == "mnist-5k" and config["name"] == "tiny bce AE"
    assert config["model_config"] | {"latent_dim": 6, "hidden": [24, 12], "loss": "bce"} == config["model_config"]
    assert config["train"] | {"epochs": 1, "seconds": 20.0, "batch_size": 200, "seed": 7, "classes": [3, 5],
                              "lr": 1e-3} == config["train"]
    assert at.selectbox(key="train_run").value == run.id and at.query_params["run"] == run.id
    assert run.id in texts(at.markdown) and "tiny bce AE" in texts(at.markdown)
    assert at.dataframe[0].value.iloc[0]["name"] == "tiny bce AE"  # the gallery's name column
    assert wait_finished(run) == "done", run.status()
    at.run()
    assert "State:** done" in texts(at.markdown)
    (download,) = at.get("download_button")
    assert download.proto.label == "Download run (.zip)" and not download.proto.disabled


@pytest.mark.parametrize("field, value, message", [
    ("train_ae_hidden", "64, lots", "hidden: write whole numbers separated by commas"),
    ("train_ae_hidden", "64, 99999", "each number of hidden must be at most 4,096"),
    ("train_ae_noise_level", 2.0, "salt_pepper takes a level between 0 and 1"),
    ("train_ae_t_lr", -0.1, "lr must be positive"),
    ("train_ae_t_classes", "0, -1", "each number of classes must be at least 0"),
    ("train_ae_t_classes", "3, 12", "classes must be indices of mnist-5k's 10 classes"),
])  # whole numbers out of their declared range (latent_dim 0, epochs 0, batch_size 1) the inputs' min and max refuse
def test_invalid_settings_show_an_error_and_start_nothing(runs_dir, field, value, message):
    at = train_page({"model": "ae"})
    if field == "train_ae_noise_level":
        widget(at, "train_ae_noise").set_value("salt_pepper")
    widget(at, field).set_value(value)
    submit(at)
    assert not at.exception
    shown_text = texts(at.error).replace("\\", "")  # outside text is escaped (ui/escape.md)
    assert "Could not start training" in shown_text and message in shown_text, shown_text
    assert list_runs(runs_dir) == []
    assert widget(at, field).value == value  # the form keeps what was typed, to be corrected


# -- runs, links, the overlay ----------------------------------------------------------------------


def _with_curve(runs_dir, source, run_id: str, scale: float) -> Run:
    """A copy of a finished run with a made-up training curve: loss = scale / step."""
    path = add_run(runs_dir, source, run_id)
    lines = [{"step": s, "epoch": s / 10, "elapsed": s * 0.5, "train/loss": scale / s, "test/mse": scale / (2 * s)}
             for s in range(1, 11)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return Run(path)


def _traces(at) -> list[dict]:
    (chart,) = at.get("plotly_chart")
    return json.loads(chart.proto.spec)["data"]


def test_the_overlay_has_one_trace_set_per_selected_run(runs_dir, finished_pca_run):
    _with_curve(runs_dir, finished_pca_run, "20250101-a", 1.0)
    _with_curve(runs_dir, finished_pca_run, "20250102-b", 3.0)
    add_run(runs_dir, finished_pca_run, "20250103-pca")
    at = train_page({"compare": "20250101-a,20250102-b,no-such-run"})
    assert at.multiselect(key="train_compare").value == ["20250101-a", "20250102-b"]
    traces = _traces(at)
    assert sorted({t["legendgroup"] for t in traces}) == ["20250101-a", "20250102-b"]
    for rid, scale in (("20250101-a", 1.0), ("20250102-b", 3.0)):
        test, train = [t for t in traces if t["legendgroup"] == rid]
        assert test["x"] == list(range(1, 11)) and test["y"][0] == pytest.approx(scale / 2)  # test MSE on top
        assert train["y"][-1] == pytest.approx(scale / 10) and train["yaxis"] == "y2"  # train loss below
        assert test["line"]["color"] == train["line"]["color"]

    at.toggle(key="train_compare_time").set_value(True).run()
    assert _traces(at)[0]["x"] == [s * 0.5 for s in range(1, 11)]

    at.multiselect(key="train_compare").select("20250103-pca").run()
    assert at.query_params["compare"] == "20250101-a,20250102-b,20250103-pca"
    (pca,) = [t for t in _traces(at) if t["legendgroup"] == "20250103-pca"]
    final = Run(runs_dir / "20250103-pca").status().final_metrics["mse"]
    assert pca["y"] == [pytest.approx(final)] * 2 and pca["line"]["dash"] == "dot"  # PCA's level, to beat
    assert pca["x"] == [0.5, 5.0]  # across the other runs' span


def test_links_restore_the_run_and_a_stale_one_says_so(runs_dir, finished_pca_run):
    for run_id in ("20250101-older", "20250102-newer"):
        add_run(runs_dir, finished_pca_run, run_id)
    assert train_page().selectbox(key="train_run").value == "20250102-newer"
    at = train_page({"run": "20250101-older", "model": "vae"})
    assert at.selectbox(key="train_run").value == "20250101-older"
    assert at.selectbox(key="train_model").value == "vae"
    assert "20250101-older" in texts(at.markdown)
    at = train_page({"run": "gone"})
    assert "no run 'gone'" in texts(at.warning) and at.selectbox(key="train_run").value == "20250102-newer"


def test_without_runs(runs_dir):
    at = train_page()
    assert "No runs yet" in texts(at.info) and not at.error
    assert not list(at.get("download_button"))


# -- upload ----------------------------------------------------------------------------------------


def test_upload_imports_a_run_and_refuses_a_tampered_one(runs_dir, finished_pca_run, tmp_path):
    source = Run(add_run(tmp_path, finished_pca_run, "pca-elsewhere"))
    data = export_run(source)
    at = train_page()
    at.file_uploader(key="train_upload").set_value(("pca-elsewhere.zip", data, "application/zip")).run()
    assert not at.exception and not at.error, texts(at.error)
    (new,) = list_runs(runs_dir)
    assert "Imported pca-elsewhere.zip as run" in texts(at.success)
    assert at.selectbox(key="train_run").value == new.id and new.status().state == "done"
    assert "imported from run pca-elsewhere" in texts(at.caption)

    files = unpack(data)
    (ckpt,) = [n for n in files if n.startswith("checkpoints/")]
    files[ckpt] = files[ckpt][:-1] + bytes([files[ckpt][-1] ^ 1])  # one bit of the weights
    at.file_uploader(key="train_upload").set_value(("evil.zip", repack(files, manifest=False), "application/zip")).run()
    assert not at.exception
    assert "evil.zip was not imported" in texts(at.error) and "checksum" in texts(at.error)
    at.file_uploader(key="train_upload").set_value(("notes.zip", b"not a zip", "application/zip")).run()
    assert "not a zip archive" in texts(at.error)
    assert [r.id for r in list_runs(runs_dir)] == [new.id]  # nothing written by the refused uploads
