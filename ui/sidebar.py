"""The sidebar every page shares: the dataset picker (a link may name one) and the device."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from engine.data import DEFAULT_DATASET, DatasetInfo
from engine.runs import default_runs_dir, list_runs
from engine.runs import workspace as ws
from ui.escape import md, md_quote
from ui.panels.uploads import upload_panel, workspace_datasets
from ui.projector import apply_projector, projector_toggle
from ui.resources import device_label, job_manager
from ui.session import actor, shared_runs, workspace_panel


def datasets() -> list[DatasetInfo]:
    """What this session may pick: the server's datasets, then its workspace's uploads."""
    return workspace_datasets(actor().workspace)


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


def _dataset_label(info: DatasetInfo) -> str:
    return info.name if info.available else f"{info.name} (unavailable)"


def sidebar() -> DatasetInfo:
    """The dataset picker (every dataset; unavailable ones say why and how to get them) and the device."""
    infos = datasets()
    names = [d.name for d in infos]
    if st.session_state.get("dataset") not in names:  # first run of a session: a link may name one
        wanted = st.query_params.get("dataset", DEFAULT_DATASET)
        st.session_state["dataset"] = wanted if wanted in names else DEFAULT_DATASET
        if wanted not in names:  # said once, in the sidebar, until the session picks another
            st.session_state["dataset_refused"] = wanted
    by_name = {d.name: d for d in infos}
    apply_projector()  # large type for a room's screen, when this session asked for it (?projector=1)
    with st.sidebar:
        st.markdown("### :material/science: Latent Lab")
        name = st.selectbox("Dataset", names, key="dataset", format_func=lambda n: _dataset_label(by_name[n]),
                            help="Images are 28×28 grey levels in [0, 1]. mnist-5k ships with the app.")
        info = by_name[name]
        refused = st.session_state.get("dataset_refused")
        if refused is not None and name == DEFAULT_DATASET:
            st.warning(f"The link asked for the dataset {md_quote(refused)}, which this server does not offer, so "
                       f"this is **{DEFAULT_DATASET}**. A link can name only the datasets listed here: your own "
                       "images come in through **Upload a dataset** below (or, on your own machine, the command "
                       "line's `--data folder:PATH`).",
                       icon=":material/link_off:")
        elif refused is not None:
            del st.session_state["dataset_refused"]  # another dataset was picked: the link's is forgotten
        if name == DEFAULT_DATASET:
            st.query_params.pop("dataset", None)
        else:
            st.query_params["dataset"] = name
        if info.available:
            st.caption(md(info.description, 300))
        else:
            st.warning(f"**{name} is not available:** {info.reason}.\n\n**To get it:** {info.how_to_get}")
        missing = [d for d in infos if not d.available and d.name != name]
        if missing:
            with st.expander(f"Unavailable datasets ({len(missing)})"):
                for d in missing:
                    st.markdown(f"**{d.name}** — {d.reason}.  \n*To get it:* {d.how_to_get}")
        st.markdown(f"**Device:** `{device_label()}`")
        backend_note()
        if not ws.hosted() or actor().presenter:
            projector_toggle()
        damaged = damaged_runs(str(default_runs_dir()))
        if ws.hosted():  # a visitor hears only of the runs they may see
            visible = {r.id for r in job_manager().runs(actor(), shared_runs())}
            damaged = [d for d in damaged if d[0] in visible]
        else:
            st.caption(f"Runs folder: {md(runs_folder_label(default_runs_dir()))}")
        damaged_runs_note(damaged)
        refused = st.session_state.pop("share_refused", None)
        if refused:
            st.warning(f"The link's share token is not the one of run {md_quote(refused)}, so that run is not "
                       "shown: open the share link exactly as it was given.", icon=":material/link_off:")
    with st.sidebar.expander("Upload a dataset", icon=":material/upload_file:"):
        upload_panel(actor().workspace)
    workspace_panel()
    return info


@st.cache_data(ttl=2.0, show_spinner=False)
def backend_note() -> None:
    """Where jobs train, when that is a Ray cluster; what is wrong when it cannot be reached."""
    jm = job_manager()
    if jm.backend != "ray":
        return
    info = jm.backend_info()
    if info["error"]:
        meanwhile = ("New jobs train on this server meanwhile." if info.get("fallback")
                     else "New jobs wait in the queue until it answers.")
        st.warning(f"**The training cluster cannot be reached.** {md(info['error'], 400)} Finished runs, their "
                   f"pages and everything else keep working. {meanwhile}", icon=":material/cloud_off:")
    else:
        st.caption(f"Jobs train on the Ray cluster at {md(info['address'])}: {info['slots']} at once.")


def damaged_runs(runs_dir: str) -> list[tuple[str, str]]:
    """(id, why) of each run in the folder that cannot be read (Run.problem), newest first; every page shares it."""
    out = []
    for run in list_runs(runs_dir):
        try:
            problem = run.problem()
        except OSError as e:  # deleted while listed
            problem = f"it cannot be read: {e.strerror}"
        if problem:
            out.append((run.id, problem))
    return out


def damaged_runs_note(damaged: list[tuple[str, str]]) -> None:
    """The damaged runs, each with why: no page offers them (Home lists them too, to delete)."""
    if not damaged:
        return
    with st.expander(f"Damaged runs ({len(damaged)})", icon=":material/broken_image:"):
        st.caption("These runs cannot be read, so the pages do not offer them. Home lists them too; "
                   "delete them there.")
        for run_id, problem in damaged:
            st.markdown(f"**{md(run_id)}**: {md(problem, 300)}")


def runs_folder_label(runs_dir: Path, cwd: Path | None = None) -> str:
    """The runs folder as every visitor may see it: relative to the server's working directory when it lies
    inside it (`runs`, as `make run` has it), else only its own name, never the server's absolute path."""
    cwd = Path.cwd() if cwd is None else cwd
    try:
        return Path(runs_dir).resolve().relative_to(Path(cwd).resolve()).as_posix() or "."
    except ValueError:
        return Path(runs_dir).name or "runs"
