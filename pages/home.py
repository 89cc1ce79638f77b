"""Home: what Latent Lab is, a one-click starter model, and the gallery of runs with a live panel.

The selected run lives in the URL (`?run=ID`), so a link restores it. Runs started from the CLI
(`python -m engine train …`) appear here too: the gallery polls the runs folder.
"""

import streamlit as st

from engine.lab.demos import DEMOS, demo_scale
from engine.lab.room import workspace_rows
from ui.entry import ensure_app
from ui.navigation import tour
from ui.resources import job_manager
from ui.session import actor
from ui.run_panel import live_run_panel, run_summaries, runs_table
from ui.sidebar import selected_dataset
from ui.escape import md, md_quote

ensure_app()  # a deep link on a fresh server runs app.py first (see ui/entry.py)

jm = job_manager()
dataset = selected_dataset()

st.title(":material/science: Latent Lab")
st.markdown(
    "Latent Lab trains small **autoencoders** in the background and shows what they learn. "
    "An autoencoder squeezes each image $x$ through a narrow code $z$, the *latent space*, and rebuilds it: "
    "an encoder $f$ and a decoder $g$ are trained together so that the rebuilt $\\hat{x}$ comes out close to $x$. "
    "What survives the bottleneck is what the model found worth keeping.")
st.latex(r"x \;\longrightarrow\; z = f(x) \;\longrightarrow\; \hat{x} = g(z),"
         r"\qquad \min_{f,\,g}\; \lVert x - \hat{x} \rVert^2")

with st.container(border=True):
    cols = st.columns(4)
    for i, page in enumerate(tour()):
        with cols[i % 4]:
            st.page_link(page.path, label=page.title, icon=page.icon)
            st.caption(page.blurb)

try:
    scale = demo_scale()
except ValueError as e:
    st.warning(str(e))
    scale = 1.0
starter = DEMOS["starter"]
model, model_config, train = starter.settings(scale)
left, right = st.columns([1, 2], vertical_alignment="center")
clicked = left.button("Train a starter model", key="home_starter", type="primary",
                      icon=":material/rocket_launch:", disabled=not dataset.available,
                      help=f"Trains {starter.what} for {train['steps']:,} steps in the background; watch it "
                           "below. A step budget gives the same model on a busy machine, only later.")
right.markdown(f"**Dataset:** `{dataset.name}`" +
               (f" ({dataset.n_train:,} train / {dataset.n_test:,} test)" if dataset.available else " (unavailable)") +
               f" · **starter:** {starter.summary(scale)}")
if clicked:
    try:
        run = jm.submit(model, dataset.name, model_config, train, name="starter", actor=actor())
    except Exception as e:
        st.error(f"Could not start the starter run: {md(e)}")
    else:
        st.session_state["home_run"] = run.id
        st.toast(f"Started {run.id}", icon=":material/rocket_launch:")

st.subheader("Runs")
summaries = run_summaries()
ids = [s["id"] for s in summaries]
linked = st.query_params.get("run")
if linked and linked not in ids and "home_run" not in st.session_state:
    st.error(f"There is no run {md_quote(linked)} in this server's runs folder: it was deleted, or the link comes "
             "from another server." + (" Showing the latest run instead." if ids else ""))
if not ids:
    st.query_params.pop("run", None)
    st.info("No runs yet. Click **Train a starter model** above, or train one from a terminal, e.g. "
            "`python -m engine train conv_ae --steps 800`: runs from the CLI show up here too.")
runs_table()
if ids:
    if st.session_state.get("home_run") not in ids:
        st.session_state["home_run"] = linked if linked in ids else ids[0]
    states = {s["id"]: s.get("state", "failed") for s in summaries}
    # Plain ids as labels: a keyed selectbox keeps its value by label, so labels must not change.
    selected = st.selectbox("Run", ids, key="home_run")
    st.query_params["run"] = selected
    live_run_panel(selected, states[selected])

if actor().presenter:  # the presenter's view of the room: every workspace, its runs, jobs and disk
    rows = jm.workspaces()
    with st.expander(f"Workspaces ({len(rows)})", icon=":material/groups:"):
        st.caption("Every workspace on this server: when it was last used, its runs, its jobs queued or training, "
                   "and the disk its runs take. The runs table above lists all their runs; pick one to moderate it.")
        st.dataframe(workspace_rows(rows), hide_index=True)
        st.page_link("pages/room.py", label="The whole room, live: jobs training and queued, the class board",
                     icon=":material/groups:")
