"""Objects every session shares, each built once per server (st.cache_resource), and the server's own settings.

Everything derived from a run's checkpoint (the loaded model, its codes and errors of a split) is
cached under the checkpoint's token (engine.runs.Run.checkpoint_token: step, mtime, size), so a
new checkpoint, or a resumed run rewriting one, is loaded afresh.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import streamlit as st

from engine.data import DatasetInfo, list_datasets, load_dataset
from engine.device import describe_device, resolve_device
from engine.runs import Run, RunError, default_runs_dir
from engine.runs.jobs import JobManager, get_manager
from ui.escape import md

if TYPE_CHECKING:
    from engine.runs.loaded import LoadedRun

UMAP_WARMUP_ENV = "LATENT_LAB_UMAP_WARMUP"  # 0 turns the server-start UMAP compilation off
T = TypeVar("T")


# -- the server ------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def configure_server() -> None:
    """Once per server: torch answers the pages' one-image requests on one thread.

    A slider or a stroke asks for a single small forward pass; with several threads, every pass
    pays for waking them, and with training workers busy on the same cores a multi-threaded pass
    waits behind them (measured: decode + PNG 250–630 ms with 2 threads under load, 2–8 ms with 1).
    Training runs in worker processes with their own thread counts, so it is unaffected.

    pandas is imported here too, once, before the UMAP warm-up thread starts: imported lazily by two threads at
    once along different paths (the warm-up's umap → sklearn → pandas, a page's plotly or st.dataframe → pandas),
    Python's import deadlock avoidance hands one of them the half-initialised module, and the Latent map showed
    "partially initialized module 'pandas' has no attribute 'Series'" (bench/bench_load.py, 5 sessions).
    """
    import pandas  # noqa: F401
    import torch

    torch.set_num_threads(1)


@st.cache_resource(show_spinner=False)
def _model_threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="latent-lab-model")


def on_model_thread(fn: Callable[..., T], *args, **kwargs) -> T:
    """fn(*args, **kwargs) on one of the server's long-lived threads: for the forward pass a slider or a stroke asks.

    Streamlit runs every rerun in a thread of its own, and torch's first pass in a new thread pays a start-up
    cost: a 0.2-ms conv_ae decode took 7 ms as a new thread's first call after a pause, 1.4 ms on a kept thread
    (2026-12-02, this 2-core machine). fn must not call Streamlit (the pool's threads have no script context).
    """
    return _model_threads().submit(fn, *args, **kwargs).result()


@st.cache_resource(show_spinner=False)
def warm_umap() -> bool:
    """Start compiling UMAP (~30 s of numba) on a background thread, once per server; False when turned off.

    app.py calls this as the server starts, so that the Latent map's first UMAP takes seconds.
    """
    if os.environ.get(UMAP_WARMUP_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    from engine.lab.latent_map import warm_umap_in_background

    warm_umap_in_background()
    return True


@st.cache_resource(show_spinner=False)
def _job_manager(runs_dir: str) -> JobManager:
    return get_manager(runs_dir)


def job_manager() -> JobManager:
    """The one JobManager of this server for the runs directory in use (LATENT_LAB_RUNS or ./runs)."""
    return _job_manager(str(default_runs_dir()))


@st.cache_resource(show_spinner=False)
def device_label() -> str:
    """The device training uses with device=auto, e.g. 'cpu (2 cores)' or 'cuda (NVIDIA H100)'."""
    device = resolve_device("auto")
    if device.type == "cpu":  # torch's own thread count here is the server's (1), not the trainers'
        return f"cpu ({len(os.sched_getaffinity(0))} cores)"
    return describe_device(device)


@st.cache_resource(show_spinner=False)
def map_jobs():
    """The server's projections (PCA at once, UMAP and t-SNE on a background thread), shared by all sessions."""
    from engine.lab.latent_map import ProjectionJobs

    return ProjectionJobs()


# -- datasets --------------------------------------------------------------------------------------


@st.cache_data(ttl=30, show_spinner=False)
def datasets() -> list[DatasetInfo]:
    """Every built-in dataset, available or not (reads IDX headers only; refreshed every 30 s)."""
    return list_datasets()


def dataset_tensors(name: str):
    """The engine's Dataset (tensors on the CPU), shared by every session. An upload is keyed by its file's time
    too, so a deleted upload whose name is used again loads as the new data it is."""
    version = ""
    if name.startswith("upload:"):
        from engine.data.uploads import upload_path

        try:
            version = str(upload_path(name).stat().st_mtime_ns)
        except (OSError, ValueError):  # gone or malformed: load_dataset says why
            version = "missing"
    return _dataset_tensors(name, version)


@st.cache_resource(show_spinner="Loading the dataset…", max_entries=16)
def _dataset_tensors(name: str, version: str):
    return load_dataset(name)


# -- a run's model and what is derived from it, once per checkpoint -------------------------------


def loaded_run(run: Run, step: int | None = None) -> LoadedRun | None:
    """The run's model at `step` (default: newest), loaded once per checkpoint for the whole server.

    Shows the reason on the page and returns None when it cannot be loaded.
    """
    try:
        token = run.checkpoint_token(step)
        if token is None:
            raise RunError(f"run {run.id} has no checkpoint" + (f" at step {step}" if step is not None else "")
                           + " yet; wait for training to save one")
        return loaded_at(str(run.path), token)  # the token is in the key: a new checkpoint reloads
    except (RunError, OSError, ValueError, KeyError) as e:
        st.error(f"Cannot load run {md(run.id)}: {md(e)}")
        return None


@st.cache_resource(max_entries=24, show_spinner="Loading the model…")
def loaded_at(run_path: str, token: tuple, adversarial: bool = False) -> LoadedRun:
    """The model of the checkpoint `token` names (Run.checkpoint_token), for every session.

    An autoencoder (or PCA) for the pages that encode images; a GAN with adversarial=True. A run of the
    other kind is a RunError (the page says why), not a model that fails later.
    """
    from engine.runs.loaded import load_run

    loaded = load_run(Run(run_path), token[0], **({"adversarial": True} if adversarial else {"encodes": True}))
    loaded.token = token
    return loaded


@st.cache_resource(max_entries=24, show_spinner="Encoding the dataset…")
def _split_codes(run_path: str, token: tuple, split: str):
    from engine.eval.codes import split_codes as codes

    loaded = loaded_at(run_path, token)
    return codes(loaded, dataset_tensors(loaded.dataset), split)


def split_codes(loaded: LoadedRun, split: str = "test"):
    """Codes z (N, latent_dim), numpy, of a split under a loaded run's model; computed once per checkpoint."""
    return _split_codes(loaded.path, loaded.token, split)


@st.cache_resource(max_entries=24, show_spinner="Scoring the test set…")
def _split_errors(run_path: str, token: tuple, split: str):
    from engine.eval.codes import split_errors as errors

    loaded = loaded_at(run_path, token)
    return errors(loaded, dataset_tensors(loaded.dataset), split)


def split_errors(loaded: LoadedRun, split: str = "test"):
    """Per-image reconstruction MSE (N,), numpy, of a split; computed once per checkpoint (anomaly scores)."""
    return _split_errors(loaded.path, loaded.token, split)
