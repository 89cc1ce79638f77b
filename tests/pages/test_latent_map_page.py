"""The Latent map page without a browser (streamlit's AppTest).

The map's points, the ring on the linked image, the star of the drawing, the kNN metrics and the
replay's frames are read back from the plotly figures the page sends and compared with what
engine.lab.latent_map computes for the same codes. AppTest cannot click a chart (the browser test does) nor
tick `run_every`, so the background map is waited for by rerunning the page.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from engine.data import load_dataset
from engine.eval.codes import encode, split_codes
from engine.lab import latent_map as maps
from engine.runs import Run, make_run_config
from engine.runs.loaded import checkpoint_steps, load_run
from engine.train import train_run
from tests.apptest import add_run, plotly_values, render_page, rerun, texts

pytestmark = pytest.mark.usefixtures("fresh_caches")


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory) -> Path:
    """A dense AE (latent_dim 8) trained for one epoch, with a checkpoint every 0.2 s to replay."""
    run = Run.create(tmp_path_factory.mktemp("map"), make_run_config(
        "ae", "mnist-5k", {"latent_dim": 8}, {"epochs": 1, "checkpoint_every_s": 0.2}), run_id="ae-map")
    train_run(run)
    assert run.status().state == "done", run.status()
    assert len(checkpoint_steps(run)) >= 2, "the replay needs several checkpoints"
    return run.path


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist-5k")


def render(query: dict | None = None, drawing=None) -> AppTest:
    return render_page("pages/latent_map.py", query, None if drawing is None else {"drawing": drawing})


def figures(at: AppTest) -> list[dict]:
    """The plotly figures on the page, as the JSON the browser gets."""
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def class_points(fig: dict) -> tuple[np.ndarray, np.ndarray]:
    """(xy (N, 2), test index (N,)) of the class traces of a map, in test-index order."""
    traces = [t for t in fig["data"] if t["name"] not in ("selected", "your drawing")]
    xy = np.concatenate([np.stack([plotly_values(t["x"]), plotly_values(t["y"])], 1) for t in traces])
    index = np.concatenate([plotly_values(t["customdata"]) for t in traces]).astype(int)
    order = index.argsort()
    return xy[order], index[order]


def metric(at: AppTest, start: str) -> float:
    (value,) = [m.value for m in at.metric if m.label.startswith(start)]
    return float(value.rstrip("%")) / 100


class Reference:
    def __init__(self, path: Path, data, step: int | None = None):
        self.loaded = load_run(Run(path), step)
        self.z = split_codes(self.loaded, data)  # (1000, 8): mnist-5k's test split is below MAX_POINTS
        self.y = data.y_test.numpy()


# -- the page --------------------------------------------------------------------------------------


def test_without_a_run_it_offers_to_train_one(runs_dir):
    at = render()
    assert "Latent map" in texts(at.title)
    assert r"W^\top (z_i - \bar z)" in texts(at.latex) and "v_{ij}" in texts(at.latex)
    assert "No autoencoder is trained on **mnist-5k**" in texts(at.info)
    assert at.button(key="map_need_model").label == "Train a conv_ae now"
    assert not at.get("plotly_chart") and not at.error


def test_pca_map_matches_the_engine_and_the_link(runs_dir, ae_run, data):
    add_run(runs_dir, ae_run)
    ref = Reference(ae_run, data)
    at = render({"method": "pca"})
    assert at.radio(key="map_method").value == "pca"
    assert at.selectbox(key="map_run").value == "ae-map"
    steps = checkpoint_steps(Run(ae_run))
    assert at.select_slider(key="map_step").value == steps[-1]
    assert {k: at.query_params[k] for k in ("run", "method", "step")} == {
        "run": "ae-map", "method": "pca", "step": str(steps[-1])}

    scatter, replay = figures(at)
    xy, index = class_points(scatter)
    assert list(index) == list(range(1000))
    assert all(t["type"] == "scattergl" for t in scatter["data"])
    assert [t["name"] for t in scatter["data"]] == [str(c) for c in range(10)]  # one trace per class, a legend
    np.testing.assert_allclose(xy, maps.project(ref.z, "pca"), rtol=1e-5, atol=1e-5)
    for t in scatter["data"]:  # each trace holds exactly its class
        assert set(ref.y[plotly_values(t["customdata"]).astype(int)]) == {int(t["name"])}

    assert metric(at, "in z") == pytest.approx(maps.map_knn_accuracy(ref.z, ref.y), abs=6e-4)
    assert metric(at, "on the PCA map") == pytest.approx(maps.map_knn_accuracy(xy, ref.y), abs=6e-4)
    # issue 10: the map's kNN says its protocol, and the run's own (different) number is shown and explained
    assert "leave-one-out" in texts(at.markdown)
    own = Run(ae_run).status().final_metrics["knn_accuracy"]
    (caption,) = [str(c.value) for c in at.caption if "The run's own kNN accuracy" in str(c.value)]
    assert f"**{own:.1%}**" in caption and "4,000 training images" in caption and "1,000 test images" in caption
    assert "Select a point" in texts(at.info)

    # the replay: one frame per checkpoint (at most 12), the last frame the PCA map of the last checkpoint
    frame_steps = maps.pick_frames(steps, 12)
    assert len(replay["frames"]) == len(frame_steps) >= 2
    assert [f["name"] for f in replay["frames"]] == [str(s) for s in frame_steps]
    assert [s["label"] for s in replay["layout"]["sliders"][0]["steps"]] == [f"{s:,}" for s in frame_steps]
    last, _ = class_points(replay["frames"][-1])
    np.testing.assert_allclose(last, xy, rtol=1e-4, atol=1e-4)
    first, _ = class_points(replay["frames"][0])
    assert not np.allclose(first, last, atol=1e-2)  # the map did change during training


def test_a_linked_image_shows_it_and_its_reconstruction(runs_dir, ae_run, data):
    add_run(runs_dir, ae_run)
    ref = Reference(ae_run, data)
    at = render({"method": "pca", "image": "12"})
    label = int(ref.y[12])
    assert f"**Test image #12** · class **{label}**" in texts(at.markdown)
    captions = [c for image in at.get("image") for c in image.captions]
    assert "x (input)" in captions and "x̂ (reconstruction)" in captions
    (ring,) = [t for t in figures(at)[0]["data"] if t["name"] == "selected"]
    xy = maps.project(ref.z, "pca")
    np.testing.assert_allclose([plotly_values(ring["x"])[0], plotly_values(ring["y"])[0]], xy[12], rtol=1e-5, atol=1e-5)
    assert at.query_params["image"] == "12"


def test_an_older_checkpoint_from_the_link(runs_dir, ae_run, data):
    add_run(runs_dir, ae_run)
    step = checkpoint_steps(Run(ae_run))[0]
    ref = Reference(ae_run, data, step)
    at = render({"method": "pca", "step": str(step)})
    assert at.select_slider(key="map_step").value == step
    xy, _ = class_points(figures(at)[0])
    np.testing.assert_allclose(xy, maps.project(ref.z, "pca"), rtol=1e-5, atol=1e-5)
    assert f"step {step:,}" in figures(at)[0]["layout"]["title"]["text"]


def test_the_drawing_is_a_star_where_its_code_lands(runs_dir, ae_run, data):
    add_run(runs_dir, ae_run)
    ref = Reference(ae_run, data)
    drawing = data.x_test[5, 0].numpy()  # a drawing equal to test image 5 lands exactly on its point (PCA)
    at = render({"method": "pca"}, drawing=drawing)
    (star,) = [t for t in figures(at)[0]["data"] if t["name"] == "your drawing"]
    assert star["marker"]["symbol"] == "star"
    placed = maps.fit(ref.z, "pca").place(encode(ref.loaded, drawing))[0]
    np.testing.assert_allclose([plotly_values(star["x"])[0], plotly_values(star["y"])[0]], placed, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(placed, maps.project(ref.z, "pca")[5], rtol=1e-4, atol=1e-4)
    assert "Your drawing is the ★" in texts(at.markdown)


def test_tsne_shows_pca_first_then_swaps_in(runs_dir, ae_run, data):
    add_run(runs_dir, ae_run)
    ref = Reference(ae_run, data)
    at = render({"method": "tsne"})
    assert "Computing the t-SNE map… showing the PCA map meanwhile" in texts(at.info)
    xy, _ = class_points(figures(at)[0])
    np.testing.assert_allclose(xy, maps.project(ref.z, "pca"), rtol=1e-5, atol=1e-5)  # PCA at once
    deadline = time.monotonic() + 240
    while "meanwhile" in texts(at.info) and time.monotonic() < deadline:
        time.sleep(1.0)
        rerun(at)  # what the polling fragment's st.rerun does in the browser
    assert "meanwhile" not in texts(at.info)
    scatter = figures(at)[0]
    assert scatter["layout"]["title"]["text"].startswith("t-SNE of 1,000 test codes")
    xy, _ = class_points(scatter)
    assert not np.allclose(xy, maps.project(ref.z, "pca"), atol=1e-2)
    assert metric(at, "on the t-SNE map") == pytest.approx(maps.map_knn_accuracy(xy, ref.y), abs=6e-4)


def test_umap_is_the_default_and_shows_pca_while_it_computes(runs_dir, ae_run, monkeypatch):
    add_run(runs_dir, ae_run)
    release, real_fit = threading.Event(), maps.fit

    def held_back(z, method, seed=0, init=None):  # the background UMAP waits until the page has drawn
        if method == "umap":
            release.wait(60)
            method = "pca"  # and skips numba's compilation: the test is about the page meanwhile
        return real_fit(z, method, seed, init)

    monkeypatch.setattr(maps, "fit", held_back)
    try:
        at = render()
        assert at.radio(key="map_method").value == "umap" and at.query_params["method"] == "umap"
        info = texts(at.info)
        assert ("UMAP is compiling" in info) != maps.umap_ready() and "showing the PCA map meanwhile" in info
        assert figures(at)[0]["layout"]["title"]["text"].startswith("PCA of")
    finally:
        release.set()


def test_bad_links_fall_back(runs_dir, ae_run):
    add_run(runs_dir, ae_run)
    at = render({"method": "mds", "step": "soon", "image": "99999", "run": "gone"})
    assert at.radio(key="map_method").value == "umap"
    assert at.select_slider(key="map_step").value == checkpoint_steps(Run(ae_run))[-1]
    assert "Select a point" in texts(at.info)
    assert at.query_params["method"] == "umap"
