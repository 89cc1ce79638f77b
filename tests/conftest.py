"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# AppTest runs app.py inside the pytest process: no UMAP compile (~30 s of CPU) behind every test
# file. The browser tests' servers turn it back on (tests/browser/conftest.py).
os.environ.setdefault("LATENT_LAB_UMAP_WARMUP", "0")
os.environ.setdefault("LATENT_LAB_MP_WARMUP", "0")  # the matrix profile: a page that needs it starts it

ROOT = Path(__file__).resolve().parent.parent
NETNS_ERROR = "LATENT_LAB_TEST_NETNS_ERROR"


def pytest_configure(config):
    """The suite runs in a network namespace of its own where it can (root on Linux; LATENT_LAB_TEST_NETNS=0 turns
    it off): every server it starts (Streamlit, a Ray cluster, whose processes listen on every interface) is then
    reachable only from here. Where it cannot, the Ray tests skip and say why (tests/raycluster.py)."""
    from tests.raycluster import enter_network_namespace, only_loopback

    if os.environ.get("LATENT_LAB_TEST_NETNS", "1") == "0":
        os.environ[NETNS_ERROR] = "LATENT_LAB_TEST_NETNS=0"
    elif not only_loopback():
        os.environ[NETNS_ERROR] = enter_network_namespace() or ""


@pytest.fixture(scope="module")
def ray_cluster():
    """A real Ray cluster on this machine (a head and a second node, one CPU each) for one test module, in the
    suite's network namespace; stopped when the module's tests are done."""
    pytest.importorskip("ray", reason="the Ray backend's tests need requirements-ray.txt (make test installs it)")
    from tests.raycluster import RayCluster, only_loopback

    if not only_loopback():
        pytest.skip(f"no network namespace for a Ray cluster ({os.environ.get(NETNS_ERROR) or 'unknown'}): Ray "
                    f"listens on every interface, and the tests' servers stay private")
    cluster = RayCluster(cpus=1, workers=1).start()
    yield cluster
    cluster.stop()


def pytest_collection_modifyitems(config, items):
    """The quality bars (tests/test_quality.py, time-budgeted trainings) run first, on a quiet process: later
    tests leave work behind that competes for the cores (UMAP and map jobs on daemon threads, the browser
    tests' servers and Chromium), and a 15-second bar measured beside it would measure the suite."""
    items.sort(key=lambda item: item.path.name != "test_quality.py")  # a stable sort: the rest keep their order


@pytest.fixture
def fresh_data_cache():
    """Streamlit's st.cache_data emptied: cached dataset lists and images must not leak between page tests."""
    import streamlit as st

    st.cache_data.clear()


@pytest.fixture
def fresh_caches(fresh_data_cache):
    """st.cache_resource emptied too: runs are copied to new folders per test, and loaded models and maps
    are keyed by path."""
    import streamlit as st

    st.cache_resource.clear()


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    """An empty runs folder that the app, the CLI and JobManager() use (LATENT_LAB_RUNS)."""
    path = tmp_path / "runs"
    path.mkdir()
    monkeypatch.setenv("LATENT_LAB_RUNS", str(path))
    return path


@pytest.fixture(scope="session")
def finished_pca_run(tmp_path_factory) -> Path:
    """A finished run directory (PCA, latent_dim 8, mnist-5k; ~3 s), made once per session.

    Shared: copy it (shutil.copytree) rather than changing it.
    """
    from engine.runs import Run, make_run_config
    from engine.train import train_run

    parent = tmp_path_factory.mktemp("finished")
    run = Run.create(parent, make_run_config("pca", "mnist-5k", {"latent_dim": 8}, {}), run_id="pca-finished")
    train_run(run)
    assert run.status().state == "done", run.status()
    return run.path


@pytest.fixture
def media(monkeypatch) -> dict:
    """file id → bytes of every image a page hands to Streamlit (AppTest keeps only the URL)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    store: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def capture(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        store[file_id] = path_or_data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", capture)
    return store


@pytest.fixture(scope="session")
def mnist_judge(tmp_path_factory):
    """The judge classifier of mnist-5k (engine.eval.judge), trained once per session (~12 s).

    It lives in its own runs folder (judge.path is RUNS/.judges/mnist-5k). Shared: copy that
    folder (shutil.copytree to engine.eval.judge.judge_path("mnist-5k", your_runs)) rather than changing it.
    """
    from engine.eval.judge import train_judge

    return train_judge("mnist-5k", tmp_path_factory.mktemp("judge-runs"), seed=0)
