"""The PCA vs autoencoder page without a browser (streamlit's AppTest).

Charts are read back from their plotly spec and compared with the engine's own numbers (the runs'
final test MSE, PCA's error from a finished PCA run, principal angles computed here), images byte
for byte. Runs: a tiny linear AE and a tiny dense AE (latent 8, one short epoch).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from engine.data import load_dataset
from engine.data.images import image_png
from engine.lab import pca_vs_ae
from engine.runs import FINISHED, Run
from engine.runs.loaded import load_run
from engine.train import fixed_test_batch
from tests.apptest import add_run, media_bytes, plotly_values, render_page, rerun, texts, train_tiny, walk

pytestmark = pytest.mark.usefixtures("fresh_caches")


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    parent = tmp_path_factory.mktemp("pca-vs-ae-runs")
    return {"lin": train_tiny(parent, "tiny-lin", "linear_ae", {"latent_dim": 8}),
            "ae": train_tiny(parent, "tiny-ae", "ae", {"latent_dim": 8, "hidden": [64]})}


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist-5k")


def render(query: dict | None = None) -> AppTest:
    return render_page("pages/pca_vs_ae.py", query)


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def traces(chart: dict) -> dict[str, dict]:
    return {t["name"]: t for t in chart["data"]}


def values(trace: dict, axis: str) -> list[float]:
    """A trace's x or y, whether plotly wrote a plain list or a typed array."""
    return plotly_values(trace[axis]).tolist()


def images(at: AppTest, media: dict) -> list[tuple[str, bytes]]:
    """(caption, bytes) of every image on the page, in order."""
    out = []
    for element in walk(at.main):
        if element.type == "image":
            for img in element.proto.imgs:
                out.append((img.caption, media_bytes(media, img.url)))
    return out



def add_runs(runs_dir: Path, *sources: Path) -> None:
    for source in sources:
        add_run(runs_dir, source)


# -- the page --------------------------------------------------------------------------------------


def test_without_runs_pca_and_the_sweep_button(runs_dir, finished_pca_run, data, media):
    at = render()
    assert "PCA vs autoencoder" in texts(at.title)
    latex = texts(at.latex)
    assert r"\hat{x} = \mu + W W^\top (x - \mu)" in latex and r"\sigma_i\big(Q_A^\top Q_B\big)" in latex
    assert at.button(key="pcae_sweep").label == "Run the sweep (12 runs)"
    (error_chart,) = charts(at)
    pca = traces(error_chart)["PCA (closed form)"]
    assert values(pca, "x") == list(pca_vs_ae.PCA_LATENT_DIMS)
    # the reference: the finished PCA run (latent_dim 8, fitted on the same train split) scored itself
    reference = Run(finished_pca_run).status().final_metrics["mse"]
    assert values(pca, "y")[pca_vs_ae.PCA_LATENT_DIMS.index(8)] == pytest.approx(reference, rel=1e-4)
    assert at.select_slider(key="pcae_k").value == 16 and at.query_params["k"] == "16"
    assert "No linear AE with latent size 16 yet" in texts(at.info)
    assert "Principal angles need a linear AE" in texts(at.info)
    shown = images(at, media)
    assert [c.split(":")[0] for c, _ in shown] == ["x", "PCA, k = 16"]
    x = data.x_test[fixed_test_batch(data, 10)]
    assert shown[0][1] == image_png(x[:, 0], scale=3)
    assert not at.error


def test_runs_give_points_images_and_angles(runs_dir, tiny_runs, data, media):
    add_runs(runs_dir, tiny_runs["lin"], tiny_runs["ae"])
    at = render({"k": "8"})
    assert at.select_slider(key="pcae_k").value == 8
    assert at.selectbox(key="pcae_lin").value == "tiny-lin" and at.selectbox(key="pcae_ae").value == "tiny-ae"
    assert (at.query_params["lin"], at.query_params["ae"]) == ("tiny-lin", "tiny-ae")
    assert at.button(key="pcae_sweep").label == "Run the sweep (10 runs)"  # latent 8 of each is done
    error_chart, angle_chart = charts(at)
    for name, run_id in (("linear AE", "tiny-lin"), ("dense AE", "tiny-ae")):
        trace = traces(error_chart)[name]
        assert values(trace, "x") == [8]
        assert values(trace, "y") == [pytest.approx(Run(tiny_runs[run_id.split("-")[1]]).status()
                                                    .final_metrics["mse"])]

    # the angles, computed here from the run's decoder and a PCA fitted here
    linear = load_run(Run(runs_dir / "tiny-lin"))
    pca = pca_vs_ae.fit_pca(data, 8)
    cos = np.cos(pca_vs_ae.principal_angles(pca_vs_ae.basis(linear.model), pca_vs_ae.basis(pca)))
    bars = traces(angle_chart)["linear AE vs PCA"]
    np.testing.assert_allclose(values(bars, "y"), cos, atol=1e-4)
    assert [m.label for m in at.metric] == ["mean cos θᵢ", "largest angle", "overlap of the AE's axes"]
    assert at.metric[0].value == f"{cos.mean():.3f}"

    x = data.x_test[fixed_test_batch(data, 10)]
    shown = {c.split(":")[0]: b for c, b in images(at, media)}
    assert list(shown) == ["x", "PCA, k = 8", "linear AE (tiny-lin)", "dense AE (tiny-ae)"]
    assert shown["linear AE (tiny-lin)"] == image_png(linear.model(x)[:, 0].detach(), scale=3)

    # another latent size: no runs there, PCA changes, the angle chart goes
    at.select_slider(key="pcae_k").set_value(16)
    rerun(at)
    assert at.query_params["k"] == "16" and "lin" not in at.query_params
    assert len(charts(at)) == 1 and "Principal angles need a linear AE" in texts(at.info)
    assert images(at, media)[1][1] != shown["PCA, k = 8"]


def test_the_sweep_button_submits_the_missing_runs(runs_dir, tiny_runs):
    add_runs(runs_dir, tiny_runs["lin"])
    at = render()
    at.button(key="pcae_sweep").click()
    rerun(at)
    new = [Run(p) for p in runs_dir.iterdir() if p.name != "tiny-lin"]
    submitted = sorted((r.config["model"], r.config["model_config"]["latent_dim"]) for r in new)
    expected = sorted((m, k) for m in pca_vs_ae.SWEEP_TRAIN for k in pca_vs_ae.SWEEP_LATENT_DIMS
                      if (m, k) != ("linear_ae", 8))
    assert submitted == expected
    for run in new:
        model, k = run.config["model"], run.config["model_config"]["latent_dim"]
        settings = pca_vs_ae.sweep_train(model, k)
        assert {key: run.config["train"][key] for key in settings} == settings
        assert run.config["name"] == f"sweep: {model}, k = {k}" and settings["steps"] >= 1500
    assert pca_vs_ae.sweep_train("ae", 64)["steps"] > pca_vs_ae.sweep_train("ae", 16)["steps"]
    assert "training or queued" in texts(at.caption) and at.button(key="pcae_sweep").label == "Sweep running…"
    # cancelling: one button stops every run of the sweep still queued or training
    assert at.button(key="pcae_cancel").label == f"Cancel the sweep ({len(new)} left)"
    at.button(key="pcae_cancel").click()
    rerun(at)
    deadline = time.monotonic() + 120
    while any(r.status().state not in FINISHED for r in new) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert all(r.status().state in FINISHED for r in new)
