"""What every page shares: the job manager, the sidebar, and small drawing helpers.

Objects shared by all sessions (the job manager, the device) are held with st.cache_resource;
the engine's JobManager is thread-safe, so every session may call it.
"""

from __future__ import annotations

import contextlib
import math
import os
import runpy
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import plotly.graph_objects as go
import streamlit as st

from engine.data import DEFAULT_DATASET, DatasetInfo, list_datasets
from engine.device import describe_device, resolve_device
from engine.jobs import JobManager, get_manager
from engine.runs import Run, RunError, default_runs_dir

if TYPE_CHECKING:
    from engine.latent import LoadedRun

STARTER_SECONDS_ENV = "LATENT_LAB_STARTER_SECONDS"
# Material icons ship with Streamlit's own font, so they render on machines without an emoji font.
STATE_ICONS = {"queued": ":material/schedule:", "running": ":material/directions_run:",
               "done": ":material/check_circle:", "failed": ":material/error:", "cancelled": ":material/cancel:",
               "interrupted": ":material/warning:"}


# -- shared objects --------------------------------------------------------------------------------


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


@st.cache_data(ttl=30, show_spinner=False)
def datasets() -> list[DatasetInfo]:
    """Every built-in dataset, available or not (reads IDX headers only; refreshed every 30 s)."""
    return list_datasets()


def selected_dataset() -> DatasetInfo:
    """The dataset picked in the sidebar (the default before the sidebar has drawn)."""
    infos = {d.name: d for d in datasets()}
    return infos.get(st.session_state.get("dataset", DEFAULT_DATASET), infos[DEFAULT_DATASET])


def usable_dataset() -> DatasetInfo:
    """The sidebar's dataset; when it is unavailable the page says so and stops (the sidebar says how to get it)."""
    info = selected_dataset()
    if not info.available:
        st.warning(f"{info.name} is not available ({info.reason}): pick another dataset in the sidebar, "
                   "which also says how to get this one.")
        st.stop()
    return info


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


GAN_LOSSES = {"train/d_loss": "D loss", "train/g_loss": "G loss"}  # a GAN run's two losses (a WGAN's critic too)


def loss_figure(records: list[dict]) -> go.Figure | None:
    """train/loss and test/mse against step, log scale; None before the first log line.

    A VAE's loss is a sum per image (nats) while the MSE is per pixel: when the two differ by more
    than 10×, the test MSE gets its own axis on the right rather than a flat line at the bottom.
    A GAN run has no single loss: its discriminator's and its generator's, on a linear axis (a
    minimax G loss and a WGAN critic loss are negative).
    """
    if any(key in r for r in records for key in GAN_LOSSES):
        return _gan_loss_figure(records)
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


def _gan_loss_figure(records: list[dict]) -> go.Figure | None:
    fig = go.Figure()
    for key, name in GAN_LOSSES.items():
        points = [(r["step"], r[key]) for r in records
                  if isinstance(r.get(key), (int, float)) and isinstance(r.get("step"), (int, float))
                  and math.isfinite(r[key])]
        if points:
            steps, values = zip(*points)
            fig.add_trace(go.Scatter(x=steps, y=values, name=name,
                                     mode="lines+markers" if len(points) < 3 else "lines"))
    if not fig.data:
        return None
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=30, b=10), title=dict(text="Losses", font_size=14),
                      xaxis_title="step", legend=dict(orientation="h", y=1.12, x=1, xanchor="right"))
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
        return _load_keyed(str(run.path), token)  # the token is in the key: a new checkpoint reloads
    except (RunError, OSError, ValueError, KeyError) as e:
        st.error(f"Cannot load run {run.id}: {e}")
        return None


@st.cache_resource(max_entries=24, show_spinner="Loading the model…")
def _load_keyed(run_path: str, token: tuple) -> "LoadedRun":
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

    loaded = _load_keyed(run_path, token)
    return codes(loaded, dataset_tensors(loaded.dataset), split)


def split_codes(loaded, split: str = "test"):
    """Codes z (N, latent_dim), numpy, of a split under a loaded run's model; computed once per checkpoint."""
    return _split_codes(loaded.path, loaded.token, split)


@st.cache_resource(max_entries=24, show_spinner="Scoring the test set…")
def _split_errors(run_path: str, token: tuple, split: str):
    """Per-image reconstruction MSE (N,) of a split under a run's model at the checkpoint `token` names."""
    from engine.latent import split_errors as errors

    loaded = _load_keyed(run_path, token)
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

    container.image(image_png(x, scale=scale), caption=caption, output_format="PNG")  # JPEG would smear 28×28 digits


# -- Explorer --------------------------------------------------------------------------------------


@st.cache_resource(max_entries=24, show_spinner=False)
def _explorer_directions(run_path: str, token: tuple):
    from engine.latent import slider_directions

    return slider_directions(_split_codes(run_path, token, "test"))


def explorer_directions(loaded):
    """The explorer's slider directions (engine.latent.slider_directions of the test codes), once per checkpoint."""
    return _explorer_directions(loaded.path, loaded.token)


@st.cache_data(max_entries=64, show_spinner=False)
def explorer_grid_png(run_path: str, token: tuple, what: str, n: int, seed: int = 0, y: int | None = None) -> bytes:
    """PNG of a run's sample grid (what="samples", n×n images, seeded) or 2-D manifold (what="manifold", n×n)."""
    from engine.latent import grid_png, manifold_images, sample_images

    loaded = _load_keyed(run_path, token)
    if what == "samples":
        images = sample_images(loaded, n * n, seed, y)
    else:
        images = manifold_images(loaded, n, _split_codes(run_path, token, "test"), y)
    return grid_png(images, ncol=n, scale=2)


# -- Draw ------------------------------------------------------------------------------------------


def draw_latent_figure(z, height: int = 240) -> go.Figure:
    """A code z (latent_dim,) as one bar per dimension."""
    fig = go.Figure(go.Bar(x=list(range(len(z))), y=z, marker_color=["#e4572e" if v < 0 else "#2e86ab" for v in z],
                           hovertemplate="z[%{x}] = %{y:.3f}<extra></extra>"))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="latent dimension",
                      yaxis_title="z", bargap=0.15)
    return fig


def draw_score_figure(test_errors, score: float, height: int = 240) -> go.Figure:
    """The test split's reconstruction errors as a histogram, with a line at this image's score."""
    fig = go.Figure(go.Histogram(x=test_errors, nbinsx=40, marker_color="#9aa5b1", name="test images",
                                 hovertemplate="MSE %{x}<br>%{y} test images<extra></extra>"))
    fig.add_vline(x=score, line_color="#e4572e", line_width=3, annotation_text="this image",
                  annotation_position="top")
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="reconstruction MSE",
                      yaxis_title="test images", showlegend=False)
    return fig


# -- Train -----------------------------------------------------------------------------------------

TRAIN_SETTINGS = ("epochs", "seconds", "batch_size", "lr", "weight_decay", "seed", "classes")  # shown in the form


def setting_choices(name: str, config_cls=None) -> tuple | None:
    """The allowed values of a text setting that is one of a few names (a selectbox), else None (a text box)."""
    from engine.models.base import ACTIVATIONS
    from engine.noise import KINDS

    if name == "g_loss" and hasattr(config_cls, "g_losses"):  # a GAN's generator losses (a WGAN has one)
        return tuple(config_cls().g_losses())
    return {"loss": ("mse", "bce"), "sparsity": ("kl", "l1"), "noise": KINDS, "activation": tuple(ACTIVATIONS),
            "latent_activation": tuple(ACTIVATIONS), "constraint": ("gp", "clip")}.get(name)


OPTIONAL_PLACEHOLDERS = {"lr_d": "same as lr", "classes": "all"}  # what an empty optional setting means


def _list_text(value) -> str:
    return ", ".join(str(v) for v in value) if value else ""


def parse_int_list(name: str, text: str, optional: bool = False) -> list[int] | None:
    """'256, 128' → [256, 128]; '' → [] (None when the setting is optional: `classes` empty means all)."""
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"{name}: write whole numbers separated by commas, e.g. 256, 128 (not {text!r})") from None
    return (values or None) if optional else values


def _field_types(config_cls) -> dict:
    """Field name → (inner type, optional): `int | None` → (int, True), `tuple[int, ...]` → (tuple, False)."""
    import types
    import typing

    out = {}
    for name, tp in typing.get_type_hints(config_cls).items():
        optional = typing.get_origin(tp) in (typing.Union, types.UnionType)
        inner = next((a for a in typing.get_args(tp) if a is not type(None)), tp) if optional else tp
        out[name] = (typing.get_origin(inner) or inner, optional)
    return out


def parse_settings(config_cls, values: dict) -> dict:
    """settings_inputs' values with list settings parsed from their text (ValueError on bad text)."""
    types_ = _field_types(config_cls)
    return {k: parse_int_list(k, v, types_[k][1]) if types_[k][0] in (tuple, list) and isinstance(v, str) else v
            for k, v in values.items()}


def settings_inputs(config_cls, defaults: dict, key: str, names=None, ncol: int = 3) -> dict:
    """One input per dataclass field (those in `names`, default all), its default and its comment as help.

    Lists (hidden sizes, classes) come back as text: parse_settings turns them into lists.
    """
    import dataclasses

    from engine.models.base import ModelConfig

    types_ = _field_types(config_cls)
    helps = ModelConfig.field_help.__func__(config_cls)  # reads `# comment` beside each field of any dataclass
    fields = [f for f in dataclasses.fields(config_cls) if names is None or f.name in names]
    values, cols = {}, st.columns(ncol)
    for i, f in enumerate(fields):
        default, help_ = defaults.get(f.name), helps.get(f.name)
        base_tp, optional = types_[f.name]
        wkey = f"{key}_{f.name}"
        empty = OPTIONAL_PLACEHOLDERS.get(f.name, "no limit")
        choices = setting_choices(f.name, config_cls)
        with cols[i % ncol]:
            if base_tp in (tuple, list):
                values[f.name] = st.text_input(f.name, _list_text(default), key=wkey, help=help_,
                                               placeholder=empty if optional else "none")
            elif base_tp is bool:
                values[f.name] = st.checkbox(f.name, bool(default), key=wkey, help=help_)
            elif base_tp is str and choices:
                options = list(choices)
                values[f.name] = st.selectbox(f.name, options, index=options.index(default)
                                              if default in options else 0, key=wkey, help=help_)
            elif base_tp is str:
                values[f.name] = st.text_input(f.name, default or "", key=wkey, help=help_)
            elif base_tp is int:
                values[f.name] = st.number_input(f.name, value=default, step=1, key=wkey, help=help_,
                                                 placeholder=empty if optional else None)
            else:  # float: %g shows 0.001 and 3e-05 as written, not rounded to 0.00
                step = 10 ** math.floor(math.log10(abs(default))) if default else 0.1
                values[f.name] = st.number_input(f.name, value=None if default is None else float(default),
                                                 step=float(step), format="%g", key=wkey, help=help_,
                                                 placeholder=empty if optional else None)
    return values


def new_run_form(model: str, key: str, form_key: str, train_names=TRAIN_SETTINGS, train_defaults: dict | None = None,
                 budget_note: str = "training stops at whichever budget, epochs or seconds, runs out first",
                 ncol: int = 4) -> Run | None:
    """The form that starts a run of `model`: one input per setting of its config and per training setting.

    Inputs are keyed `{key}_{field}` (model settings) and `{key}_t_{field}` (training settings);
    defaults are the config's, then TrainConfig's overridden by the model's `train_defaults`, then
    `train_defaults`. On submit the run goes to the job manager; returns the new Run (None when
    not submitted, or when the settings were refused: the form says why).
    """
    from dataclasses import asdict

    from engine.models import MODELS
    from engine.train import DEFAULT_EPOCHS, TrainConfig

    cls = MODELS[model]
    dataset = selected_dataset()
    defaults = {**asdict(TrainConfig()), **cls.train_defaults, **(train_defaults or {})}
    if defaults["epochs"] is None and defaults["seconds"] is None:
        defaults["epochs"] = DEFAULT_EPOCHS
    with st.form(form_key):
        st.markdown("**Model settings** (hover **?** for what each one does)")
        model_values = settings_inputs(cls.config_cls, asdict(cls.config_cls()), key=key, ncol=ncol)
        st.markdown(f"**Training settings** · {budget_note}")
        train_values = settings_inputs(TrainConfig, defaults, key=f"{key}_t", names=train_names, ncol=ncol)
        submitted = st.form_submit_button("Start training", type="primary", icon=":material/rocket_launch:",
                                          disabled=not dataset.available)
    if not submitted:
        return None
    try:
        return job_manager().submit(model, dataset.name, parse_settings(cls.config_cls, model_values),
                                    parse_settings(TrainConfig, train_values))
    except Exception as e:  # noqa: BLE001 - a bad setting is a message on the page, not a crash
        st.error(f"Could not start training: {e}")
        return None


def compare_figure(series: dict[str, list[dict]], x: str = "step") -> go.Figure | None:
    """Runs overlaid: test MSE (top) and train loss (bottom) against `x` ("step" or "elapsed"), log y.

    One colour and one legend entry per run. A run with no curve but a final test MSE (PCA, fitted
    in closed form) is drawn as a dotted level line across the others: the baseline to beat.
    The two rows have their own axes because a VAE's loss is nats per image, not MSE per pixel.
    """
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    def points(records, key):
        return [(r[x], r[key]) for r in records
                if isinstance(r.get(key), (int, float)) and isinstance(r.get(x), (int, float))
                and math.isfinite(r[key]) and r[key] > 0]

    curves = {rid: {k: points(recs, k) for k in ("test/mse", "train/loss")} for rid, recs in series.items()}
    xs = [px for c in curves.values() for pts in c.values() for px, _ in pts]
    span = (min(xs), max(xs)) if xs else (0, 1)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("test MSE (per pixel)", "train loss (the objective)"))
    drawn = 0
    for i, (rid, c) in enumerate(curves.items()):
        color = qualitative.Plotly[i % len(qualitative.Plotly)]
        final = next((r["eval/mse"] for r in reversed(series[rid]) if isinstance(r.get("eval/mse"), (int, float))
                      and r["eval/mse"] > 0), None)
        test = c["test/mse"] or ([(span[0], final), (span[1], final)] if final else [])
        for row, pts, dash in ((1, test, "dot" if not c["test/mse"] else None), (2, c["train/loss"], None)):
            if not pts:
                continue
            px, py = zip(*pts)
            fig.add_trace(go.Scatter(x=px, y=py, name=rid, legendgroup=rid, showlegend=row == 1 or not test,
                                     mode="lines+markers" if len(pts) < 3 else "lines",
                                     line=dict(color=color, dash=dash)), row=row, col=1)
            drawn += 1
    if not drawn:
        return None
    fig.update_yaxes(type="log")
    fig.update_xaxes(title_text="step" if x == "step" else "seconds of training", row=2, col=1)
    fig.update_layout(height=480, margin=dict(l=10, r=10, t=40, b=10), legend=dict(title_text="run"))
    return fig


# -- Latent map ------------------------------------------------------------------------------------

UMAP_WARMUP_ENV = "LATENT_LAB_UMAP_WARMUP"  # 0 turns the server-start UMAP compilation off


@st.cache_resource(show_spinner=False)
def warm_umap() -> bool:
    """Start compiling UMAP (~30 s of numba) on a background thread, once per server; False when turned off.

    app.py calls this as the server starts, so that the Latent map's first UMAP takes seconds.
    """
    if os.environ.get(UMAP_WARMUP_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    from engine.maps import warm_umap_in_background

    warm_umap_in_background()
    return True


@st.cache_resource(show_spinner=False)
def map_jobs():
    """The server's projections (PCA at once, UMAP and t-SNE on a background thread), shared by all sessions."""
    from engine.maps import ProjectionJobs

    return ProjectionJobs()


def class_colours(n: int) -> list[str]:
    """One colour per class, the same on every map (10 classes: plotly's default palette)."""
    from plotly.colors import qualitative

    return list(qualitative.Plotly if n <= 10 else qualitative.Alphabet)


def _class_traces(trace, xy, y, classes, index, size: float, group=None):
    """One marker trace per class (a legend entry each); customdata = the test image's index.

    group: test indices to show as selected (plotly dims the other markers), or None.
    """
    import numpy as np

    labels = [c for c in range(len(classes)) if (y == c).any()] if len(classes) else []
    colours = class_colours(len(classes))
    groups = [(classes[c], y == c, colours[c % len(colours)]) for c in labels] or [("images", np.ones(len(y), bool), "#636efa")]
    chosen = None if group is None else np.isin(index, list(group))
    return [trace(x=xy[m, 0], y=xy[m, 1], mode="markers", name=name, customdata=index[m],
                  marker=dict(size=size, color=colour, opacity=0.8),
                  selectedpoints=None if chosen is None else np.flatnonzero(chosen[m]).tolist(),
                  hovertemplate="test image #%{customdata}<extra>%{fullData.name}</extra>")
            for name, m, colour in groups]


def map_figure(xy, y, classes, index, title: str, selected=None, drawing=None, group=None, equal_axes: bool = False,
               height: int = 560) -> go.Figure:
    """The latent map: WebGL markers coloured by class, a ring on the selected image, a star on the drawing.

    xy (N, 2) positions, y (N,) labels, index (N,) test indices; selected / drawing: (2,) positions or None;
    group: the test indices of a box/lasso selection (drawn as selected); equal_axes: one unit is as long
    on both axes (PCA, whose axes are distances in z; UMAP and t-SNE axes have no units).
    """
    fig = go.Figure(_class_traces(go.Scattergl, xy, y, classes, index, 6, group))
    if selected is not None:
        fig.add_trace(go.Scattergl(x=[selected[0]], y=[selected[1]], mode="markers", name="selected",
                                   customdata=[-1], hoverinfo="skip", showlegend=False,
                                   marker=dict(size=18, symbol="circle-open", color="black", line_width=3)))
    if drawing is not None:
        fig.add_trace(go.Scattergl(x=[drawing[0]], y=[drawing[1]], mode="markers", name="your drawing",
                                   customdata=[-1], hovertemplate="your drawing<extra></extra>",
                                   marker=dict(size=22, symbol="star", color="gold", line=dict(color="black", width=1.5))))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), title=dict(text=title, font_size=14),
                      legend=dict(title="class", itemsizing="constant"), uirevision=title, dragmode="pan",
                      xaxis=dict(showticklabels=False, zeroline=False),
                      yaxis=dict(showticklabels=False, zeroline=False, scaleanchor="x" if equal_axes else None))
    return fig


def replay_figure(frames, steps, y, classes, height: int = 520) -> go.Figure:
    """An animation of maps (one (N, 2) array per checkpoint step) with a play button and a step slider."""
    import numpy as np

    every = np.concatenate(frames)
    lo, hi = every.min(0), every.max(0)
    pad = 0.05 * (hi - lo) + 1e-6
    index = np.arange(len(y))
    fig = go.Figure(data=_class_traces(go.Scatter, frames[0], y, classes, index, 5),
                    frames=[go.Frame(data=_class_traces(go.Scatter, xy, y, classes, index, 5), name=str(s))
                            for xy, s in zip(frames, steps)])
    play = dict(frame=dict(duration=700, redraw=False), transition=dict(duration=500), fromcurrent=True)
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=10, b=10), legend=dict(title="class", itemsizing="constant"),
        xaxis=dict(range=[lo[0] - pad[0], hi[0] + pad[0]], showticklabels=False, zeroline=False),
        yaxis=dict(range=[lo[1] - pad[1], hi[1] + pad[1]], showticklabels=False, zeroline=False),
        updatemenus=[dict(type="buttons", direction="left", x=0, y=-0.02, xanchor="left", yanchor="top",
                          buttons=[dict(label="▶ Play", method="animate", args=[None, play]),
                                   dict(label="❚❚ Pause", method="animate",
                                        args=[[None], dict(mode="immediate", frame=dict(duration=0))])])],
        sliders=[dict(active=0, x=0.2, len=0.8, y=0, yanchor="top", pad=dict(t=30),
                      currentvalue=dict(prefix="step ", xanchor="right"),
                      steps=[dict(label=f"{s:,}", method="animate",
                                  args=[[str(s)], dict(mode="immediate", frame=dict(duration=0, redraw=False),
                                                       transition=dict(duration=300))]) for s in steps])])
    return fig


# -- the entry point -------------------------------------------------------------------------------

_ENTRY = threading.local()  # per script thread: is app.py running this page?


@contextlib.contextmanager
def app_entry():
    """app.py wraps page.run() in this, so a page can tell it was reached through the navigation."""
    _ENTRY.active = True
    try:
        yield
    finally:
        _ENTRY.active = False


def ensure_app() -> None:
    """Every page calls this first: when Streamlit serves the page straight from pages/, run app.py.

    Until some session has run app.py, a fresh server treats pages/ as a classic multipage folder,
    so a shared deep link (e.g. /draw?run=…) would run pages/draw.py alone: no sidebar, no wide
    layout, every file of pages/ in the menu. Running app.py here sets up st.navigation, which
    then runs the linked page itself; this run stops afterwards so the page is not drawn twice.
    """
    if getattr(_ENTRY, "active", False):
        return
    runpy.run_path(str(Path(__file__).resolve().parent.parent / "app.py"), run_name="__main__")
    st.stop()


@st.cache_resource(show_spinner=False)
def configure_server() -> None:
    """Once per server: torch answers the pages' one-image requests on one thread.

    A slider or a stroke asks for a single small forward pass; with several threads, every pass
    pays for waking them, and with training workers busy on the same cores a multi-threaded pass
    waits behind them (measured: decode + PNG 250–630 ms with 2 threads under load, 2–8 ms with 1).
    Training runs in worker processes with their own thread counts, so it is unaffected.
    """
    import torch

    torch.set_num_threads(1)
