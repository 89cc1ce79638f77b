"""Choosing a run for a page (the link's, else the one that serves it best); offering to train one when none fits."""

from __future__ import annotations

import streamlit as st

from engine.lab.choice import Choice, best_run
from engine.models import is_model
from engine.runs import FINISHED, Run, RunError
from engine.runs import workspace as ws
from ui.escape import md
from ui.resources import job_manager
from ui.run_panel import progress_line
from ui.session import actor, shared_runs
from ui.sidebar import selected_dataset
from ui.urlstate import set_query


def run_config(run: Run) -> dict | None:
    """The run's config.json, or None when it cannot be read."""
    try:
        return run.config
    except (RunError, OSError, ValueError):
        return None


def usable_runs(dataset: str | None = None, models=None, predicate=None, **wanted: bool) -> list[Run]:
    """Runs with a checkpoint whose model fits, newest first.

    wanted: capabilities the model must have (default: encodes=True, an autoencoder or PCA);
    models: only these model names; dataset: only runs on this dataset; predicate(config) -> bool:
    a page's own condition (e.g. a 2-D latent). A run still training counts: pages show its newest
    checkpoint.
    """
    wanted = wanted or {"encodes": True}
    out = []
    for run in job_manager().runs(actor(), shared_runs()):
        if run.problem() is not None:  # listed with why in the sidebar (ui.sidebar.damaged_runs_note)
            continue
        config = run_config(run)
        if not config or not is_model(config.get("model"), **wanted):
            continue
        if models is not None and config["model"] not in models:
            continue
        if dataset is not None and config.get("dataset") != dataset:
            continue
        if predicate is not None and not predicate(config):
            continue
        if run.checkpoint_token() is None:  # none saved yet (or none loads: then problem() said so)
            continue
        out.append(run)
    return out


def run_name(run: Run) -> str:
    """The run's own name when it was given one ("my first VAE (20261201-…)"), else its id."""
    name = (run_config(run) or {}).get("name")
    return f"{name} ({run.id})" if isinstance(name, str) and name.strip() else run.id


def run_label(run: Run) -> str:
    """A picker's line for a run (plain text: widgets' options are not Markdown)."""
    config = run_config(run) or {}
    mcfg = config.get("model_config", {})
    summary = run.summary()
    if summary.get("damaged"):
        return f"{run.id} · damaged: {summary['damaged'][:120]}"
    state = summary.get("state", "?")
    extra = f", classes {config['train']['classes']}" if config.get("train", {}).get("classes") else ""
    return (f"{run_name(run)} · {config.get('model', '?')} · latent {mcfg.get('latent_dim', '?')}{extra}"
            + ("" if state == "done" else f" · {state}"))


def choose_run(runs: list[Run], **how) -> Choice | None:
    """The run a page opens on (engine.lab.choice.best_run, `how` its quality and preference) as this session sees
    them: in hosted mode the visitor's own finished runs first, then the workshop kit's and the gallery's."""
    jm = job_manager()
    workspace = actor().workspace if jm.hosted_mode() else None
    return best_run([r.summary() for r in runs], {r.id: run_config(r) or {} for r in runs}, workspace=workspace,
                    gallery=ws.pinned(jm.runs_dir), **how)


def pick_run(runs: list[Run], key: str, label: str = "Model run", param: str = "run",
             help: str | None = None, container=st, quality: str = "reconstruction", prefer=None,
             prefer_why: str = "") -> Run | None:
    """A run picker whose choice lives in the URL (`?{param}=ID`): the link's run, else the one that best
    serves the page (choose_run with `quality`, `prefer` and `prefer_why`), with a line
    saying why it was chosen.

    Returns None (and draws nothing) when `runs` is empty: the page shows its own message then.
    """
    by_id = {r.id: r for r in runs}
    linked = st.query_params.get(param)
    if linked and linked not in by_id and job_manager().hosted_mode() and st.session_state.get(key) is None:
        container.warning(f"The link's run {md(linked, 80)} is not one you can open here: it is not in your "
                          "workspace or the gallery, and the link is not its share link (or it has no checkpoint "
                          "yet). Ask its owner for the run's share link.", icon=":material/lock:")
    if not runs:
        return None
    ids = list(by_id)
    if st.session_state.get(key) not in ids:
        linked = st.query_params.get(param)
        if linked in by_id:
            st.session_state[key], st.session_state[f"{key}_why"] = linked, None
        else:
            choice = choose_run(runs, quality=quality, prefer=prefer, prefer_why=prefer_why)
            st.session_state[key], st.session_state[f"{key}_why"] = choice.run_id, (choice.run_id, choice.reason)
    chosen = container.selectbox(label, ids, key=key, format_func=lambda i: run_label(by_id[i]), help=help)
    why = st.session_state.get(f"{key}_why")
    if why and why[0] == chosen and len(ids) > 1:
        container.caption(f"Opened on {md(run_name(by_id[chosen]))}: {why[1]}. Pick another run above.")
    set_query(**{param: chosen})
    return by_id[chosen]


def need_model(message: str, model: str, model_config: dict | None = None, train: dict | None = None,
               key: str = "need_model", button: str | None = None, name: str | None = None) -> None:
    """Say that no suitable model is trained yet, with a button that trains one (named `name`) in the background.
    Drawn in a container keyed `needs_model-KEY`, so a test can tell a page that has nothing to show."""
    dataset = selected_dataset()
    with st.container(key=f"needs_model-{key}"):
        st.info(message, icon=":material/model_training:")
        label = button or f"Train a {model} now"
        if st.button(label, key=key, type="primary", icon=":material/rocket_launch:", disabled=not dataset.available):
            try:
                run = job_manager().submit(model, dataset.name, model_config or {}, train or {}, name=name,
                                           actor=actor())
            except Exception as e:
                st.error(f"Could not start training: {md(e)}")
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
        st.error(f"Run {md(run_id)}: {md(e)}")
        return
    state = status.state
    place = job_manager().queue().get(run_id) if state == "queued" else None
    st.progress(status.progress, text=f"{md(run_id)} · {progress_line(status, run.config, place)}")
    if state in FINISHED:
        if state != "done":
            st.error(f"Run {md(run_id)} {state}: {md((status.error or 'no reason given').splitlines()[0])}")
        st.session_state.pop(next((k for k, v in st.session_state.items()
                                   if k.endswith("_started") and v == run_id), ""), None)
        st.rerun(scope="app")
