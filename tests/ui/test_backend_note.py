"""The sidebar's word on where jobs train, through the app (AppTest): a Ray cluster that cannot be reached is said,
and the pages keep working over the runs already there."""

from __future__ import annotations

import json

import pytest

from tests.apptest import add_run, render_page, texts
from tests.ports import free_port

pytestmark = pytest.mark.usefixtures("fresh_caches")


@pytest.fixture
def down_cluster(monkeypatch, runs_dir):
    port = free_port()
    monkeypatch.setenv("LATENT_LAB_BACKEND", "ray")
    monkeypatch.setenv("RAY_ADDRESS", f"http://127.0.0.1:{port}")
    return runs_dir


def test_an_unreachable_cluster_is_said_and_the_explorer_still_answers(down_cluster, finished_pca_run):
    add_run(down_cluster, finished_pca_run, "pca-finished")
    at = render_page("pages/explorer.py")
    warning = texts(at.sidebar.warning)
    assert "training cluster cannot be reached" in warning and "wait in the queue" in warning
    assert not at.exception
    pickers = {sb.label: sb.options for sb in at.main.selectbox}
    assert pickers["Model run"] == ["pca-finished · pca · latent 8"]  # the page works over the finished run
    sliders = at.main.get("bidi_component")  # its code sliders (ui/latent_sliders.py), with their images
    assert len(sliders) == 1 and len(json.loads(sliders[0].proto.json)["labels"]) == 8


def test_the_local_backend_says_nothing_of_clusters(runs_dir, monkeypatch):
    monkeypatch.delenv("LATENT_LAB_BACKEND", raising=False)
    at = render_page()
    assert "cluster" not in texts(at.sidebar.warning) + texts(at.sidebar.caption)
