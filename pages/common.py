"""What every page shares: the job manager, the sidebar, and small drawing helpers.

Objects shared by all sessions (the job manager, the device) are held with st.cache_resource;
the engine's JobManager is thread-safe, so every session may call it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from engine.data import DEFAULT_DATASET, DatasetInfo, list_datasets
from engine.device import describe_device, resolve_device
from engine.jobs import JobManager, get_manager
from engine.runs import Run, RunError, default_runs_dir

STARTER_SECONDS_ENV = "LATENT_LAB_STARTER_SECONDS"
# Material icons ship with Streamlit's own font, so they render on machines without an emoji font.
STATE_ICONS = {"queued": ":material/schedule:", "running": ":material/directions_run:",
               "done": ":material/check_circle:", "failed": ":material/error:", "cancelled": ":material/cancel:",
               "interrupted": ":material/warning:"}
ACTIVE = ("queued", "running")


# -- shared objects --------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def _job_manager(runs_dir: str) -> JobManager:
    return get_manager(runs_dir)


def job_manager() -> JobManager:
    """The one JobManager of this server for the runs directory in use (LATENT_LAB_RUNS or ./runs)."""
    return _job_manager(str(default_runs_dir()))


@st.cache_resource(show_spinner=False)
def device_label() -> str:
    """The device training uses with device=auto, e.g. 'cpu (2 threads)'."""
    return describe_device(resolve_device("auto"))


@st.cache_data(ttl=30, show_spinner=False)
def datasets() -> list[DatasetInfo]:
    """Every built-in dataset, available or not (reads IDX headers only; refreshed every 30 s)."""
    return list_datasets()


def selected_dataset() -> DatasetInfo:
    """The dataset picked in the sidebar (the default before the sidebar has drawn)."""
    infos = {d.name: d for d in datasets()}
    return infos.get(st.session_state.get("dataset", DEFAULT_DATASET), infos[DEFAULT_DATASET])


# -- the sidebar -----------------------------------------------------------------------------------


def _dataset_label(info: DatasetInfo) -> str:
    return info.name if info.available else f"{info.name} (unavailable)"


def sidebar() -> DatasetInfo:
    """The dataset picker (every dataset; unavailable ones say why and how to get them) and the device."""
    infos = datasets()
    names = [d.name for d in infos]
    if st.session_state.get("dataset") not in names:  # first run of a session: a link may name one
        wanted = st.query_params.get("dataset", DEFAULT_DATASET)
        st.session_state["dataset"] = wanted if wanted in names else DEFAULT_DATASET
    by_name = {d.name: d for d in infos}
    with st.sidebar:
        st.markdown("### :material/science: Latent Lab")
        name = st.selectbox("Dataset", names, key="dataset", format_func=lambda n: _dataset_label(by_name[n]),
                            help="Images are 28×28 grey levels in [0, 1]. mnist-5k ships with the app.")
        info = by_name[name]
        if name == DEFAULT_DATASET:
            st.query_params.pop("dataset", None)
        else:
            st.query_params["dataset"] = name
        if info.available:
            st.caption(info.description)
        else:
            st.warning(f"**{name} is not available:** {info.reason}.\n\n**To get it:** {info.how_to_get}")
        missing = [d for d in infos if not d.available and d.name != name]
        if missing:
            with st.expander(f"Unavailable datasets ({len(missing)})"):
                for d in missing:
                    st.markdown(f"**{d.name}** — {d.reason}.  \n*To get it:* {d.how_to_get}")
        st.markdown(f"**Device:** `{device_label()}`")
        st.caption(f"Runs folder: `{default_runs_dir()}`")
    return info


# -- small helpers for pages -----------------------------------------------------------------------


def starter_seconds() -> float | None:
    """The starter run's time budget from LATENT_LAB_STARTER_SECONDS, or None for the engine's default."""
    raw = os.environ.get(STARTER_SECONDS_ENV, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{STARTER_SECONDS_ENV}={raw!r} is not a positive number of seconds; "
                         "unset it to use the default")
    return value


def state_icon(state: str) -> str:
    """A markdown icon for a run state (markdown only: tables show the plain state)."""
    return STATE_ICONS.get(state, ":material/help:")


def _number(value) -> float | None:
    """A float, or None when missing or not a number (status.json is written by other processes)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def run_row(summary: dict) -> dict:
    """One gallery row from Run.summary(): final metrics when done, the latest test MSE while training."""
    metrics = summary.get("metrics")
    metrics = metrics if isinstance(metrics, dict) else {}
    mse = metrics.get("mse", metrics.get("test/mse"))
    return {
        "id": summary["id"],
        "model": str(summary.get("model", "?")),
        "dataset": str(summary.get("dataset", "?")),
        "latent": _number(summary.get("latent_dim")),
        "state": str(summary.get("state", "failed")),
        "progress": min(max(_number(summary.get("progress")) or 0.0, 0.0), 1.0),
        "test MSE": _number(mse),
        "PSNR (dB)": _number(metrics.get("psnr")),
        "kNN acc": _number(metrics.get("knn_accuracy")),
    }


def safe_summary(run: Run) -> dict:
    """Run.summary(), or a 'failed' row saying why when the run directory cannot be read."""
    try:
        return run.summary()
    except (RunError, OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return {"id": run.id, "state": "failed", "error": f"cannot read this run: {e}"}


GALLERY_COLUMNS = {
    "id": st.column_config.TextColumn("id", width="medium"),
    "latent": st.column_config.NumberColumn("latent", format="%d", help="latent_dim: the size of z"),
    "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
    "test MSE": st.column_config.NumberColumn("test MSE", format="%.4f",
                                              help="mean ‖x − x̂‖² per pixel on the test split "
                                                   "(lower is better)"),
    "PSNR (dB)": st.column_config.NumberColumn("PSNR (dB)", format="%.1f"),
    "kNN acc": st.column_config.NumberColumn("kNN acc", format="percent",
                                             help="5-nearest-neighbour accuracy of the codes z (feature quality)"),
}


def read_image(path: Path) -> bytes | None:
    """A PNG's bytes, or None when it is gone (a run deleted or resumed meanwhile)."""
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def loss_figure(records: list[dict]) -> go.Figure | None:
    """train/loss and test/mse against step, log scale; None before the first log line.

    A VAE's loss is a sum per image (nats) while the MSE is per pixel: when the two differ by more
    than 10×, the test MSE gets its own axis on the right rather than a flat line at the bottom.
    """
    series = {}
    for key in ("train/loss", "test/mse"):
        points = [(r["step"], r[key]) for r in records
                  if isinstance(r.get(key), (int, float)) and isinstance(r.get("step"), (int, float))
                  and math.isfinite(r[key]) and r[key] > 0]
        if points:
            series[key] = points
    if not series:
        return None
    medians = [sorted(v for _, v in pts)[len(pts) // 2] for pts in series.values()]
    two_axes = len(medians) == 2 and max(medians) / min(medians) > 10
    fig = go.Figure()
    for key, points in series.items():
        steps, values = zip(*points)
        fig.add_trace(go.Scatter(x=steps, y=values, name={"train/loss": "train loss", "test/mse": "test MSE"}[key],
                                 mode="lines+markers" if len(points) < 3 else "lines",
                                 yaxis="y2" if two_axes and key == "test/mse" else "y"))
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=30, b=10), title=dict(text="Loss", font_size=14),
                      xaxis_title="step", yaxis=dict(type="log", title="train loss" if two_axes else None),
                      legend=dict(orientation="h", y=1.12, x=1, xanchor="right"))
    if two_axes:
        fig.update_layout(yaxis2=dict(type="log", title="test MSE", overlaying="y", side="right", showgrid=False))
    return fig


# -- pages that use a trained model ----------------------------------------------------------------


def explain(text: str, *formulas: str) -> None:
    """The page's short explanation: two or three sentences, then its formula(s)."""
    st.markdown(text)
    for formula in formulas:
        st.latex(formula)


def query_value(name: str, default, cast=float, valid=None):
    """A value from the URL (`?name=…`) cast with `cast`, or `default` when absent, unreadable or not valid."""
    raw = st.query_params.get(name)
    if raw is None:
        return default
    try:
        value = cast(raw)
    except (TypeError, ValueError):
        return default
    if isinstance(value, float) and not math.isfinite(value):
        return default
    if valid is not None and not valid(value):
        return default
    return value


def set_query(**values) -> None:
    """Write values into the URL so a link restores the view; None removes a key."""
    for name, value in values.items():
        if value is None:
            st.query_params.pop(name, None)
        elif st.query_params.get(name) != str(value):
            st.query_params[name] = str(value)


def _run_config(run: Run) -> dict | None:
    try:
        return run.config
    except (RunError, OSError, ValueError):
        return None


def usable_runs(dataset: str | None = None, models=None, predicate=None) -> list[Run]:
    """Runs with a checkpoint whose model is an autoencoder (or one of `models`), newest first.

    dataset: only runs on this dataset; predicate(config) -> bool: a page's own condition
    (e.g. a 2-D latent). A run still training counts: pages show its newest checkpoint.
    """
    from engine.models import MODELS

    out = []
    for run in job_manager().runs():
        config = _run_config(run)
        if not config or config.get("model") not in MODELS:
            continue
        if getattr(MODELS[config["model"]], "kind", "reconstruction") != "reconstruction":
            continue
        if models is not None and config["model"] not in models:
            continue
        if dataset is not None and config.get("dataset") != dataset:
            continue
        if predicate is not None and not predicate(config):
            continue
        if not run.checkpoints():
            continue
        out.append(run)
    return out


def run_label(run: Run) -> str:
    config = _run_config(run) or {}
    mcfg = config.get("model_config", {})
    state = safe_summary(run).get("state", "?")
    extra = f", classes {config['train']['classes']}" if config.get("train", {}).get("classes") else ""
    return (f"{run.id} · {config.get('model', '?')} · latent {mcfg.get('latent_dim', '?')}{extra}"
            + ("" if state == "done" else f" · {state}"))


def pick_run(runs: list[Run], key: str, label: str = "Model run", param: str = "run",
             help: str | None = None, container=st) -> Run | None:
    """A run picker whose choice lives in the URL (`?{param}=ID`): the link's run, else the newest.

    Returns None (and draws nothing) when `runs` is empty: the page shows its own message then.
    """
    if not runs:
        return None
    by_id = {r.id: r for r in runs}
    ids = list(by_id)
    if st.session_state.get(key) not in ids:
        linked = st.query_params.get(param)
        st.session_state[key] = linked if linked in by_id else ids[0]
    chosen = container.selectbox(label, ids, key=key, format_func=lambda i: run_label(by_id[i]), help=help)
    set_query(**{param: chosen})
    return by_id[chosen]


def _checkpoint_token(run: Run, step: int | None) -> tuple[int, int] | None:
    """(step, file mtime) of the checkpoint load_run would pick: the cache key of a loaded model."""
    ckpts = run.checkpoints()
    if step is not None:
        ckpts = [(s, p) for s, p in ckpts if s == step]
    if not ckpts:
        return None
    s, p = ckpts[-1]
    try:
        return s, p.stat().st_mtime_ns
    except OSError:
        return None


def loaded_run(run: Run, step: int | None = None):
    """The run's model at `step` (default: newest), loaded once per checkpoint for the whole server.

    Shows the reason on the page and returns None when it cannot be loaded.
    """
    try:
        token = _checkpoint_token(run, step)
        if token is None:
            raise RunError(f"run {run.id} has no checkpoint" + (f" at step {step}" if step is not None else "")
                           + " yet; wait for training to save one")
        return _load_keyed(str(run.path), step, token)  # the token is in the key: a new checkpoint reloads
    except (RunError, OSError, ValueError, KeyError) as e:
        st.error(f"Cannot load run {run.id}: {e}")
        return None


@st.cache_resource(max_entries=24, show_spinner="Loading the model…")
def _load_keyed(run_path: str, step: int | None, token: tuple) -> "LoadedRun":
    from engine.latent import load_run

    loaded = load_run(Run(run_path), token[0])
    loaded.token = token
    return loaded


@st.cache_resource(show_spinner="Loading the dataset…")
def dataset_tensors(name: str):
    """The engine's Dataset (tensors on the CPU), shared by every session."""
    from engine.data import load_dataset

    return load_dataset(name)


@st.cache_resource(max_entries=24, show_spinner="Encoding the dataset…")
def _split_codes(run_path: str, token: tuple, split: str):
    """Codes z (N, latent_dim) of a split under a run's model at the checkpoint `token` names."""
    from engine.latent import split_codes as codes

    loaded = _load_keyed(run_path, token[0], token)
    return codes(loaded, dataset_tensors(loaded.dataset), split)


def split_codes(loaded, split: str = "test"):
    """Codes z (N, latent_dim), numpy, of a split under a loaded run's model; computed once per checkpoint."""
    return _split_codes(loaded.path, loaded.token, split)


@st.cache_resource(max_entries=24, show_spinner="Scoring the test set…")
def _split_errors(run_path: str, token: tuple, split: str):
    """Per-image reconstruction MSE (N,) of a split under a run's model at the checkpoint `token` names."""
    from engine.latent import split_errors as errors

    loaded = _load_keyed(run_path, token[0], token)
    return errors(loaded, dataset_tensors(loaded.dataset), split)


def split_errors(loaded, split: str = "test"):
    """Per-image reconstruction MSE (N,), numpy, of a split; computed once per checkpoint (anomaly scores)."""
    return _split_errors(loaded.path, loaded.token, split)


def need_model(message: str, model: str, model_config: dict | None = None, train: dict | None = None,
               key: str = "need_model", button: str | None = None) -> None:
    """Say that no suitable model is trained yet, with a button that trains one in the background."""
    dataset = selected_dataset()
    st.info(message, icon=":material/model_training:")
    label = button or f"Train a {model} now"
    if st.button(label, key=key, type="primary", icon=":material/rocket_launch:", disabled=not dataset.available):
        try:
            run = job_manager().submit(model, dataset.name, model_config or {}, train or {})
        except Exception as e:  # noqa: BLE001 - whatever went wrong, say it on the page
            st.error(f"Could not start training: {e}")
        else:
            st.session_state[f"{key}_started"] = run.id
    started = st.session_state.get(f"{key}_started")
    if started:
        _training_progress(started)


@st.fragment(run_every=1.0)
def _training_progress(run_id: str) -> None:
    """The run a need_model button started: its progress, then a page refresh once it has a checkpoint."""
    try:
        run = Run(job_manager().runs_dir / run_id)
        status = run.status()
    except (RunError, OSError) as e:
        st.error(f"Run {run_id}: {e}")
        return
    state = status.get("state", "failed")
    progress = min(max(float(status.get("progress") or 0.0), 0.0), 1.0)
    st.progress(progress, text=f"{run_id}: {state}, {progress:.0%}")
    if state == "done" or state in ("failed", "cancelled", "interrupted"):
        if state != "done":
            st.error(f"Run {run_id} {state}: {str(status.get('error') or '').splitlines()[:1]}")
        st.session_state.pop(next((k for k, v in st.session_state.items()
                                   if k.endswith("_started") and v == run_id), ""), None)
        st.rerun(scope="app")


def show_image(x, caption: str | None = None, scale: int = 6, container=st) -> None:
    """A 28×28 image (or a row of them) in [0, 1], upscaled crisply."""
    from engine.images import image_png

    container.image(image_png(x, scale=scale), caption=caption)
