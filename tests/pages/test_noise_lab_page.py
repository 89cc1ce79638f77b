"""The Noise lab page without a browser (streamlit's AppTest).

The noisy image and each model's output are compared byte for byte with what the engine makes for
the same image, noise, level and seed, so a slider that changed nothing, a link restored wrongly or a
model shown in the wrong place all fail. Runs: tiny denoising and plain autoencoders (one short
epoch) and the shared finished PCA.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine.data import load_dataset
from engine.data.images import image_png
from engine.lab import noise_lab
from engine.runs import FINISHED, Run
from engine.runs.jobs import JobManager
from engine.runs.loaded import load_run
from tests.apptest import add_run, keyed_block, media_bytes, render_page, rerun, texts, train_tiny, walk

SCALE = 6  # ui.images.show_image's default


pytestmark = pytest.mark.usefixtures("fresh_caches")


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    parent = tmp_path_factory.mktemp("noise-runs")
    return {"dn": train_tiny(parent, "tiny-dae", "denoising_ae", {"latent_dim": 8, "hidden": [64]}),
            "ae": train_tiny(parent, "tiny-ae", "ae", {"latent_dim": 8, "hidden": [64]})}


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist-5k")


def render(query: dict | None = None) -> AppTest:
    return render_page("pages/noise_lab.py", query)


def _cell(at: AppTest, name: str):
    return keyed_block(at, f"noise_out_{name}")


def image_in(at: AppTest, media: dict, name: str) -> bytes | None:
    urls = [e.value[0] for e in walk(_cell(at, name)) if e.type == "image"]
    return media_bytes(media, urls[0]) if urls else None


def psnr_in(at: AppTest, name: str) -> str:
    (metric,) = [e for e in walk(_cell(at, name)) if e.type == "metric"]
    return metric.value


def chart_traces(at: AppTest) -> dict[str, list]:
    """name → y values of each line of the page's PSNR chart."""
    (chart,) = at.get("plotly_chart")
    return {t["name"]: t["y"] for t in json.loads(chart.proto.spec)["data"]}


def add_runs(runs_dir: Path, *sources: Path) -> None:
    for source in sources:
        add_run(runs_dir, source)


# -- the page --------------------------------------------------------------------------------------


def test_without_models_it_offers_to_train_each(runs_dir, data, media):
    at = render()
    assert "Noise lab" in texts(at.title) and r"\mathrm{PSNR}" in texts(at.latex)
    info = texts(at.info)
    for title in ("denoising ae", "autoencoder", "pca"):
        assert f"No {title} for mnist-5k yet" in info
    assert at.button(key="noise_need_dn").label == "Train the denoiser (800 steps)"
    assert at.button(key="noise_need_ae").label == "Train the starter (800 steps)"
    assert at.button(key="noise_need_pca").label == "Fit a PCA (instant)"
    # the noise itself still works: the clean and noisy images and the baseline PSNR
    noisy = noise_lab.denoise({}, data.x_test[0, 0], "gaussian", noise_lab.DEFAULT_LEVEL["gaussian"], seed=0)
    assert image_in(at, media, "noisy") == image_png(noisy.x_noisy, scale=SCALE)
    assert psnr_in(at, "noisy") == f"{noisy.noisy_psnr:.1f} dB"
    assert image_in(at, media, "dn") is None and "no model yet" in texts(at.caption)
    assert list(chart_traces(at)) == ["noisy input"]
    assert not at.error


def test_the_noise_level_changes_the_noisy_image(runs_dir, tiny_runs, finished_pca_run, data, media):
    add_runs(runs_dir, tiny_runs["dn"], tiny_runs["ae"], finished_pca_run)
    at = render()
    # each picker defaults to the newest run of its kind, and the link records it
    assert at.selectbox(key="noise_dn").value == "tiny-dae" and at.selectbox(key="noise_ae").value == "tiny-ae"
    assert at.selectbox(key="noise_pca").value == "pca-finished"
    assert {k: at.query_params[k] for k in ("dn", "ae", "pca")} == {"dn": "tiny-dae", "ae": "tiny-ae",
                                                                       "pca": "pca-finished"}
    before = image_in(at, media, "noisy"), psnr_in(at, "noisy"), psnr_in(at, "dn")

    at.slider(key="noise_level_gaussian").set_value(0.8)
    rerun(at)
    x = data.x_test[0, 0]
    models = {title: load_run(Run(runs_dir / run_id)).model
              for title, run_id in (("Denoising AE", "tiny-dae"), ("Autoencoder", "tiny-ae"), ("PCA", "pca-finished"))}
    ref = noise_lab.denoise(models, x, "gaussian", 0.8, seed=0)
    after = image_in(at, media, "noisy"), psnr_in(at, "noisy"), psnr_in(at, "dn")
    assert after[0] != before[0] and after[1] != before[1] and after[2] != before[2]
    assert after[0] == image_png(ref.x_noisy, scale=SCALE)
    assert after[1] == f"{ref.noisy_psnr:.1f} dB" and float(after[1].split()[0]) < float(before[1].split()[0])
    for name, title in (("dn", "Denoising AE"), ("ae", "Autoencoder"), ("pca", "PCA")):
        assert image_in(at, media, name) == image_png(ref.outputs[title], scale=SCALE)
        assert psnr_in(at, name) == f"{ref.psnr[title]:.1f} dB"
    assert at.query_params["level"] == "0.8" and at.query_params["noise"] == "gaussian"
    # the chart: one line per model and one for the noisy input
    assert sorted(chart_traces(at)) == sorted(["noisy input", "Denoising AE", "Autoencoder", "PCA"])


def test_a_link_restores_the_lab(runs_dir, tiny_runs, data, media):
    add_runs(runs_dir, tiny_runs["dn"], tiny_runs["ae"])
    at = render({"dn": "tiny-dae", "noise": "block", "level": "0.45", "seed": "5", "image": "7"})
    assert at.selectbox(key="noise_kind").value == "block" and at.slider(key="noise_level_block").value == 0.45
    assert at.number_input(key="noise_seed").value == 5 and at.number_input(key="noise_image").value == 7
    ref = noise_lab.denoise({}, data.x_test[7, 0], "block", 0.45, seed=5)
    assert image_in(at, media, "noisy") == image_png(ref.x_noisy, scale=SCALE)
    assert "occlusion" in at.selectbox(key="noise_kind").options
    # another noise kind keeps its own level (their ranges differ): its default
    at.selectbox(key="noise_kind").set_value("salt_pepper")
    rerun(at)
    assert at.slider(key="noise_level_salt_pepper").value == noise_lab.DEFAULT_LEVEL["salt_pepper"]
    assert at.query_params["noise"] == "salt_pepper"
    # a run of the wrong kind in the link falls back to the newest of the right kind
    at = render({"dn": "tiny-ae", "level": "nonsense", "noise": "fog"})
    assert at.selectbox(key="noise_dn").value == "tiny-dae"
    assert at.selectbox(key="noise_kind").value == "gaussian"
    assert at.slider(key="noise_level_gaussian").value == noise_lab.DEFAULT_LEVEL["gaussian"]
    assert "pca" not in at.query_params and "No pca for mnist-5k yet" in texts(at.info)


def test_the_drawing_can_be_the_input(runs_dir, data, media):
    import numpy as np

    drawing = np.zeros((28, 28), np.float32)
    drawing[6:22, 12:16] = 1.0  # a "1"
    at = render_page("pages/noise_lab.py", state={"drawing": drawing})
    at.radio(key="noise_source").set_value("Your drawing")
    rerun(at)
    ref = noise_lab.denoise({}, drawing, "gaussian", noise_lab.DEFAULT_LEVEL["gaussian"], seed=0)
    assert image_in(at, media, "clean") == image_png(drawing, scale=SCALE)
    assert image_in(at, media, "noisy") == image_png(ref.x_noisy, scale=SCALE)


def test_the_missing_model_buttons_submit_their_runs(runs_dir):
    at = render()
    at.button(key="noise_need_dn").click()
    rerun(at)
    (run,) = [Run(p) for p in runs_dir.iterdir()]
    # the denoiser demo: the starter's network and budget, trained on every corruption at random levels
    assert run.config["model"] == "conv_ae" and run.config["dataset"] == "mnist-5k"
    assert run.config["model_config"]["noise"] == "mixed" and run.config["model_config"]["noise_level"] == 1.0
    assert run.config["model_config"]["latent_dim"] == 32 and run.config["train"]["steps"] == 800
    assert not at.error
    JobManager(runs_dir, poll_interval=None).cancel(run.id)  # the worker is a real process: stop it
    deadline = time.monotonic() + 120  # … and let it exit before tmp goes
    while run.status().state not in FINISHED and time.monotonic() < deadline:
        time.sleep(0.3)
    assert run.status().state in FINISHED
