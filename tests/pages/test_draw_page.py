"""The Draw page without a browser (streamlit's AppTest).

AppTest cannot run the drawing canvas (a custom component): it returns its empty default, so these
tests drive the page through the other inputs (a test digit, an upload, the stored drawing) and
compare what it shows with the engine's own numbers. tests/browser/test_draw.py draws for real.
A finished PCA run (closed form, a few seconds) stands in for an autoencoder: the page treats every
reconstruction model alike.
"""

from __future__ import annotations

import base64
import io
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from engine.data import load_dataset
from engine.data.preprocess import from_image_bytes
from engine.data.images import to_uint8
from engine.eval.codes import reconstruct, split_errors
from engine.runs import Run
from engine.runs.loaded import load_run
from ui.charts.draw import data_uri
from ui.images import error_png
from tests.apptest import render_page, texts
from tests.ui.test_draw_charts import Tags

pytestmark = pytest.mark.usefixtures("fresh_data_cache")


def render(query: dict | None = None, state: dict | None = None) -> AppTest:
    return render_page("pages/draw.py", query, state)


def metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


class Results:
    """The Draw page's results block (one st.html): its 28×28 images (alt, pixels), its charts and its run names."""

    def __init__(self, at: AppTest):
        (block,) = [h.value for h in at.html if 'class="ll-draw"' in h.value]
        tags = Tags(block)
        self.images = [(a["alt"], png_pixels(a["src"])) for t, a in tags.tags
                       if t == "img" and a["src"].startswith("data:image/png")]
        self.plots = sum(a.get("class") == "ll-bars" for _, a in tags.tags)  # a chart: an SVG image of bars
        self.runs = tags.text_of("ll-run")


def png_pixels(src: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.removeprefix("data:image/png;base64,")))))


@pytest.fixture
def two_runs(runs_dir, finished_pca_run) -> list[str]:
    for run_id in ("20250101-pca-a", "20250102-pca-b"):
        shutil.copytree(finished_pca_run, runs_dir / run_id)
    return ["20250102-pca-b", "20250101-pca-a"]  # newest first


def test_without_a_model_it_offers_to_train_one(runs_dir):
    at = render()
    assert "Draw" in texts(at.title)
    assert r"\hat{x} = g(z)" in texts(at.latex)
    assert "No autoencoder trained on **mnist-5k**" in texts(at.info)
    button = at.button(key="draw_train")
    assert "conv_ae" in button.label and "800 steps" in button.label and not button.disabled
    assert not at.error and not at.get("image")


def test_a_test_digit_is_reconstructed_and_scored(runs_dir, two_runs):
    at = render({"input": "test", "image": "7"})
    assert not at.error and not at.warning
    assert at.multiselect(key="draw_runs").value == [two_runs[0]]  # equally good: the newest by default
    assert at.query_params["run"] == two_runs[0]
    assert at.number_input(key="draw_image").value == 7
    data = load_dataset("mnist-5k")
    errors = split_errors(load_run(Run(runs_dir / two_runs[0])), data, "test")
    shown = metrics(at)
    # a test image's anomaly score is its own entry in the test split's errors (the reference)
    assert float(shown["Anomaly score (MSE)"]) == pytest.approx(errors[7], abs=5e-5)
    # the page scores the image alone, the reference in batches: float round-off can move the image across a
    # neighbour's error (mnist-5k's image 7 sits at exactly the 20.5th percentile), so both readings are right
    near = (errors[7] - 1e-5, errors[7], errors[7] + 1e-5)
    assert any(f"Higher than **{100 * (errors < e).mean():.0f}%**" in texts(at.markdown) for e in near)
    assert shown["Looks like"] in data.classes
    assert len(at.get("image")) == 1  # the 28×28 input; the rest is the results block
    results = Results(at)
    assert [alt.split(":")[0] for alt, _ in results.images] == ["x", "x̂", "|x − x̂|", "the nearest training images"]
    assert results.plots == 2  # the code z, the histogram
    assert results.runs == [two_runs[0]]
    # the x̂ shown is the model's own reconstruction of the test image, pixel for pixel
    loaded = load_run(Run(runs_dir / two_runs[0]))
    x_hat = reconstruct(loaded, data.x_test[7, 0].numpy())[0]
    shown_x_hat = results.images[1][1]
    assert shown_x_hat.shape == (28, 28)
    assert np.abs(shown_x_hat.astype(int) - to_uint8(torch.as_tensor(x_hat)).astype(int)).max() <= 1
    np.testing.assert_array_equal(results.images[0][1], to_uint8(data.x_test[7, 0]))  # x
    assert "Test image 7 · label " + data.classes[int(data.y_test[7])] in texts(at.caption)
    assert "drawing" not in at.session_state  # a test digit is not the user's drawing

    at.number_input(key="draw_image").set_value(8).run()
    assert at.query_params["image"] == "8"
    assert float(metrics(at)["Anomaly score (MSE)"]) == pytest.approx(errors[8], abs=5e-5)


def test_a_link_restores_several_models(runs_dir, two_runs):
    at = render({"run": ",".join(reversed(two_runs)), "input": "test", "image": "3"})
    assert at.multiselect(key="draw_runs").value == list(reversed(two_runs))
    assert at.query_params["run"] == ",".join(reversed(two_runs))
    assert len(at.get("image")) == 1  # the input
    results = Results(at)
    assert len(results.images) == 3 * 2 + 1  # x, x̂ and |x − x̂| per model, the neighbours
    assert results.runs == list(reversed(two_runs))
    # each row is its own model's: its x̂ and its error map |x − x̂|, from the engine
    x = load_dataset("mnist-5k").x_test[3, 0].numpy()
    for i, run_id in enumerate(reversed(two_runs)):
        (_, shown_x), (alt, shown_x_hat), (_, shown_error) = results.images[3 * i: 3 * i + 3]
        assert alt == f"x̂: {run_id}'s reconstruction"
        x_hat = reconstruct(load_run(Run(runs_dir / run_id)), x)[0]
        assert np.abs(shown_x_hat.astype(int) - to_uint8(torch.as_tensor(x_hat)).astype(int)).max() <= 1
        np.testing.assert_array_equal(shown_error, png_pixels(data_uri(error_png(np.abs(x - x_hat), scale=1))))

    stale = render({"run": "gone-long-ago", "input": "test"})
    assert "no autoencoder run 'gone-long-ago'" in texts(stale.warning)
    assert stale.multiselect(key="draw_runs").value == [two_runs[0]]


def test_an_upload_becomes_the_drawing(runs_dir, two_runs):
    digit = load_dataset("mnist-5k").x_test[5, 0].numpy()
    paper = Image.fromarray(((1 - digit) * 255).astype(np.uint8)).resize((200, 200))  # dark ink on white
    buf = io.BytesIO()
    paper.save(buf, format="PNG")
    at = render({"input": "upload"})
    assert "Upload a picture" in texts(at.info)
    at.file_uploader(key="draw_upload").set_value(("three.png", buf.getvalue(), "image/png")).run()
    assert not at.exception and not at.error
    np.testing.assert_array_equal(at.session_state["drawing"], from_image_bytes(buf.getvalue()))
    assert "Anomaly score (MSE)" in metrics(at)
    assert at.query_params["input"] == "upload"

    at.file_uploader(key="draw_upload").set_value(("notes.png", b"not a picture", "image/png")).run()
    assert not at.exception
    assert "Cannot use notes.png" in texts(at.error) and "PNG or a JPEG" in texts(at.error)


def test_the_canvas_starts_empty_or_with_the_last_drawing(runs_dir, two_runs):
    at = render()  # AppTest cannot draw: the canvas gives its empty default
    assert "Draw a digit in the black square" in texts(at.info)
    assert "input" not in at.query_params and not at.metric

    drawing = load_dataset("mnist-5k").x_test[0, 0].numpy()
    at = render(state={"drawing": drawing})
    assert "Showing your last drawing" in texts(at.caption)
    assert "Anomaly score (MSE)" in metrics(at)


def test_deselecting_every_model_asks_for_one(runs_dir, two_runs):
    at = render({"input": "test"})
    at.multiselect(key="draw_runs").set_value([]).run()
    assert not at.exception and "Pick at least one model" in texts(at.info)
