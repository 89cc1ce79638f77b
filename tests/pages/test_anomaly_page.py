"""The Anomaly detection page without a browser (streamlit's AppTest).

A one-class PCA run (closed form, a few seconds) stands in for an autoencoder: the page treats
every reconstruction model alike, and its numbers are checked against engine/anomaly.py.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from engine.data import load_dataset
from engine.lab import anomaly
from engine.runs import FINISHED, Run, make_run_config
from engine.runs.loaded import load_run
from engine.train import train_run
from tests.apptest import render_page, texts
from ui.widgets import log_grid, snap

pytestmark = pytest.mark.usefixtures("fresh_data_cache")


@pytest.fixture(scope="module")
def one_class_pca(tmp_path_factory) -> Path:
    """PCA (latent_dim 8) fitted on the zeros of mnist-5k only; copy it into runs_dir to use it."""
    parent = tmp_path_factory.mktemp("one-class")
    run = Run.create(parent, make_run_config("pca", "mnist-5k", {"latent_dim": 8}, {"classes": [0]}),
                     run_id="pca-zeros")
    train_run(run)
    return run.path


@pytest.fixture(scope="module")
def reference(one_class_pca) -> anomaly.Analysis:
    """What the page should show for the one-class PCA run, computed by the engine directly."""
    data = load_dataset("mnist-5k")
    return anomaly.analyse(anomaly.scores(load_run(Run(one_class_pca)), data), data.y_test.numpy(), [0])


def render(query: dict | None = None) -> AppTest:
    return render_page("pages/anomaly.py", query)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_without_a_one_class_run_the_page_offers_to_train_one(runs_dir, finished_pca_run):
    shutil.copytree(finished_pca_run, runs_dir / "pca-all-digits")  # trained on every class: not listed
    at = render()
    assert texts(at.title) == "Anomaly detection"
    assert r"\lVert x - \hat{x} \rVert^2" in texts(at.latex) and "AUROC" in texts(at.latex)
    assert "No one-class run" in texts(at.info)
    assert at.multiselect(key="anomaly_normal").value == [0]
    assert at.selectbox(key="anomaly_model").value == anomaly.DEFAULT_MODEL
    assert "cvae" not in at.selectbox(key="anomaly_model").options
    assert at.button(key="anomaly_train").label == "Train a one-class model"
    assert "anomaly_run" not in [w.key for w in at.selectbox]

    at.multiselect(key="anomaly_normal").set_value([]).run()
    assert "at least one normal class" in texts(at.warning)
    assert "anomaly_train" not in [b.key for b in at.button]
    at.multiselect(key="anomaly_normal").set_value(list(range(10))).run()
    assert "leave at least one out" in texts(at.warning)


def test_the_button_trains_a_one_class_run_and_shows_it(runs_dir):
    at = render()
    at.multiselect(key="anomaly_normal").set_value([1, 7]).run()
    at.selectbox(key="anomaly_model").set_value("pca").run()
    at.number_input(key="anomaly_latent").set_value(4).run()
    at.button(key="anomaly_train").click().run()
    assert not at.exception and not at.error
    (run,) = [Run(p) for p in runs_dir.iterdir()]
    assert run.config["model"] == "pca" and run.config["model_config"]["latent_dim"] == 4
    assert run.config["train"]["classes"] == [1, 7]
    deadline = time.monotonic() + 120  # a real worker process: let it finish before tmp goes
    while run.status().state not in FINISHED and time.monotonic() < deadline:
        time.sleep(0.3)
    assert run.status().state == "done", run.status()
    assert 0.5 < run.status().final_metrics["anomaly_auroc"] <= 1
    at.run()  # what the progress panel's rerun does once the run is done
    assert not at.exception and not at.error
    assert at.selectbox(key="anomaly_run").value == run.id
    assert metric(at, "AUROC") == f"{run.status().final_metrics['anomaly_auroc']:.3f}"
    assert "**Normal:** 1, 7" in texts(at.markdown)


def test_the_page_shows_the_engines_numbers(runs_dir, one_class_pca, reference):
    shutil.copytree(one_class_pca, runs_dir / "pca-zeros")
    at = render()
    assert not at.error
    assert at.selectbox(key="anomaly_run").value == "pca-zeros" and at.query_params["run"] == "pca-zeros"
    assert metric(at, "AUROC") == f"{reference.evaluation.auroc:.3f}"
    tau = at.select_slider(key="anomaly_tau").value
    assert tau == snap(log_grid(reference.scores), reference.default_tau)  # the slider's option nearest it
    expected = reference.at(tau)
    assert metric(at, "Precision") == f"{expected['precision']:.1%}"
    assert metric(at, "Recall") == f"{expected['recall']:.1%}"
    assert metric(at, "False positive rate") == f"{expected['fpr']:.1%}"
    assert 0.03 <= expected["fpr"] <= 0.07  # the default τ lets about 5 % of normal images through
    assert f"AUROC {reference.evaluation.auroc:.3f}" in at.get("plotly_chart")[1].proto.spec
    images = at.get("image")
    assert len(images) == 4 * 8  # four tabs of eight (x, x̂) pairs
    assert f"s = {reference.scores.max():.4f}" in str(images[0].proto)  # the most anomalous comes first


def test_the_threshold_moves_the_counts_and_lives_in_the_url(runs_dir, one_class_pca, reference):
    shutil.copytree(one_class_pca, runs_dir / "pca-zeros")
    at = render()
    before = (metric(at, "Precision"), metric(at, "Recall"))
    grid = log_grid(reference.scores)
    higher = snap(grid, float(np.percentile(reference.scores, 90)))
    at.select_slider(key="anomaly_tau").set_value(higher).run()
    expected = reference.at(higher)
    assert (metric(at, "Precision"), metric(at, "Recall")) == (f"{expected['precision']:.1%}",
                                                               f"{expected['recall']:.1%}") != before
    assert float(at.query_params["tau"]) == higher

    link = render({"run": "pca-zeros", "tau": at.query_params["tau"]})  # a link restores τ
    assert link.select_slider(key="anomaly_tau").value == higher
    unsnapped = render({"tau": str(higher * 1.001)})  # a hand-written τ: the nearest value on the slider
    assert unsnapped.select_slider(key="anomaly_tau").value == higher
    for bad in ("many", str(grid[-1] * 10), "nan", "-1"):  # not a number or off the slider
        at = render({"tau": bad})
        assert at.select_slider(key="anomaly_tau").value == snap(grid, reference.default_tau)
        assert not at.error


def test_a_stale_run_link_falls_back_to_a_one_class_run(runs_dir, one_class_pca):
    shutil.copytree(one_class_pca, runs_dir / "pca-zeros")
    at = render({"run": "gone"})
    assert at.selectbox(key="anomaly_run").value == "pca-zeros" and not at.exception
