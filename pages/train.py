"""Train: pick a model from the registry, set its hyper-parameters, train it in the background.

Link state: `?model=NAME` (the form's model), `?run=ID` (the run shown live), `?compare=ID,ID` (the
runs overlaid). Runs can be downloaded as a .zip and uploaded back (engine/runs/transfer.py checks them).
"""

from functools import partial

import streamlit as st

from engine.lab.train import trainable_models
from engine.models import formulas, get_model_class
from engine.runs import ACTIVE, Run
from engine.runs.transfer import MAX_IMPORT_BYTES, export_filename
from ui.charts.losses import compare_figure
from ui.entry import ensure_app
from ui.forms import new_run_form
from ui.lessons import shown
from ui.resources import job_manager
from ui.run_panel import ERRORS, live_run_panel, run_summaries, runs_table
from ui.session import actor
from ui.text import explain
from ui.urlstate import query_value, set_query
from ui.escape import md, md_quote

ensure_app()  # a deep link on a fresh server runs app.py first (see ui/entry.py)

jm = job_manager()
models = trainable_models()  # every autoencoder and PCA; the GANs have their studio

st.title(":material/model_training: Train")
explain("train")


def import_upload() -> None:
    """on_change of the uploader: runs before the page, so it may pick the imported run in the Run box."""
    uploaded = st.session_state.get("train_upload")
    if uploaded is None:
        st.session_state.pop("train_upload_result", None)
        return
    try:
        new = jm.import_archive(uploaded.getvalue(), actor=actor())
    except ERRORS as e:
        st.session_state["train_upload_result"] = (False, f"{uploaded.name} was not imported: {e}")
    else:
        st.session_state["train_upload_result"] = (True, f"Imported {uploaded.name} as run **{new.id}**")
        st.session_state["train_run"] = new.id


st.subheader("New run")
if st.session_state.get("train_model") not in models:
    st.session_state["train_model"] = query_value("model", "conv_ae", str, lambda m: m in models)
pick, about = st.columns([1, 2], vertical_alignment="bottom")
model = pick.selectbox("Model", models, key="train_model", help="Every reconstruction model in the registry")
set_query(model=model)
about.markdown(f"**{model}** · {get_model_class(model).description}")
for formula in formulas(model):
    about.latex(formula)
run = new_run_form(model, key=f"train_{model}", form_key="train_form")
if run is not None:
    st.session_state["train_run"] = run.id
    st.toast(f"Started {run.id}", icon=":material/rocket_launch:")

summaries = run_summaries()
ids = [s["id"] for s in summaries]
states = {s["id"]: s.get("state", "failed") for s in summaries}

st.subheader("Live")
if not ids:
    st.query_params.pop("run", None)
    st.info("No runs yet: choose a model above and press **Start training**, or upload a run below.")
else:
    linked = st.query_params.get("run")
    if st.session_state.get("train_run") not in ids:
        if linked and linked not in ids:
            st.warning(f"There is no run {md_quote(linked)}; showing the latest run instead.")
        st.session_state["train_run"] = linked if linked in ids else ids[0]
    selected = st.selectbox("Run", ids, key="train_run")
    set_query(run=selected)
    live_run_panel(selected, states[selected])

def transfer_row(container) -> None:
    """Download the selected run as a .zip; upload one back (a lesson may hide both)."""
    down, up = container.columns([1, 2])
    try:
        run = Run(jm.runs_dir / selected) if ids else None
    except ERRORS:  # deleted since the listing: the table's next poll redraws the page
        run = None
    if run is not None and jm.owns(run, actor()):  # a run of another workspace: its owner's to download
        # built on click, in Streamlit's download thread: no zip is made for runs nobody downloads
        down.download_button("Download run (.zip)", data=partial(jm.export, run.id, actor()),
                             file_name=export_filename(run),
                             mime="application/zip", key="train_download", icon=":material/download:",
                             on_click="ignore", disabled=not run.checkpoints(), width="stretch",
                             help="config, status, metrics, the newest checkpoint (safetensors, no pickle) and the "
                                  "snapshots, to upload here or on another Latent Lab")
    with up.expander("Upload a run (.zip)", icon=":material/upload:",
                     expanded="train_upload_result" in st.session_state):
        st.file_uploader("A .zip from **Download run**", type="zip", key="train_upload", on_change=import_upload,
                         max_upload_size=MAX_IMPORT_BYTES // 2**20,
                         help="Checked before anything is written: sizes, file names, checksums, and that the "
                              "weights load into the model its config names. It becomes a new run.")
        ok, message = st.session_state.get("train_upload_result", (True, None))
        if message:
            (st.success if ok else st.error)(message)


if shown("train_transfer"):
    transfer_row(st.container(key="train_transfer"))

if ids:
    st.subheader("All runs")
runs_table()  # drawn even without runs: its 2-s poll notices the first one

st.subheader("Compare runs")
# Set the widget's state only when it must change (first view; a chosen run deleted): a value set on every run
# would be sent back to the browser each time and overwrite a choice made while that run was in flight.
if st.session_state.get("train_compare") is None:
    st.session_state["train_compare"] = [i for i in st.query_params.get("compare", "").split(",") if i in ids]
elif any(i not in ids for i in st.session_state["train_compare"]):
    st.session_state["train_compare"] = [i for i in st.session_state["train_compare"] if i in ids]


def compare_panel() -> None:
    names = {s["id"]: s.get("name") for s in summaries}

    def label(run_id: str) -> str:  # a named run by its name, then its id
        return f"{names[run_id]} ({run_id})" if names.get(run_id) else run_id

    chosen = st.multiselect("Runs to overlay", ids, key="train_compare", placeholder="Choose runs to compare",
                            format_func=label)
    set_query(compare=",".join(chosen) or None)
    by_time = st.toggle("Against seconds of training (instead of steps)", key="train_compare_time")
    if not chosen:
        st.caption("Pick two or more runs to overlay their test MSE and train loss curves.")
        return
    records = {}
    for rid in chosen:
        try:
            records[label(rid)] = Run(jm.runs_dir / rid).metrics()
        except ERRORS as e:
            st.warning(f"Run {md(rid)} cannot be read: {md(e)}")
    fig = compare_figure(records, "elapsed" if by_time else "step")
    if fig is None:
        st.caption("None of these runs has logged a step yet.")
    else:
        st.plotly_chart(fig, key="train_compare_chart", config={"displayModeBar": False})


st.fragment(run_every=2.0 if any(states.get(i) in ACTIVE for i in st.session_state["train_compare"]) else None)(
    compare_panel)()
