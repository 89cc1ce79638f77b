"""Sequences: RNN, LSTM and GRU encoder–decoders on time series.

Pick a sequence dataset and model, train in the background (the live run panel), then: the fixed test series
beside their reconstructions over training (a slider replays the snapshots), one chosen test series with its
context vector z as bars, the latent map of every test series coloured by class, and an LSTM's gates and cell
state over the chosen series. State in the URL: `?data=…&run=…&i=…&step=…&map=…`.
"""

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from engine.lab import sequences as lab
from engine.runs import ACTIVE, RunError
from ui.entry import ensure_app
from ui.escape import md
from ui.panels.uploads import series_upload_panel, take_pick
from ui.resources import dataset_tensors, job_manager
from ui.run_panel import live_run_panel
from ui.runs import pick_run, run_config
from ui.session import actor, shared_runs
from ui.text import explain, fmt
from ui.urlstate import query_value, set_query

ensure_app()

st.title("Sequences")
explain("sequences")

who = actor()
names = lab.page_datasets(who.workspace)  # never a path: a link or a visitor names what is listed here
if (picked := take_pick("seq_uploads")) in names:  # the CSV just uploaded below
    st.session_state["seq_data"] = picked
if st.session_state.get("seq_data") not in names:  # first run, or the chosen upload was deleted
    st.session_state["seq_data"] = query_value("data", lab.DEFAULT_SEQUENCE_DATASET, str, lambda v: v in names)
dataset = st.selectbox("Sequence dataset", names, key="seq_data", help="Series bundled with the sktime package, "
                       "MNIST read row by row, or your own CSV (upload it below)")
set_query(data=dataset)
st.caption(md(lab.describe(dataset)))
with st.expander("Upload your own series (CSV)", icon=":material/upload_file:"):
    series_upload_panel(who.workspace, "seq_uploads", "Sequences")


def data(name: str):
    return dataset_tensors(name)  # shared by every session; an upload made again under its name is reloaded


@st.cache_resource(max_entries=16, show_spinner="Loading the model…")
def model_at(run_path: str, token: tuple):
    from engine.runs import Run

    model, _ = Run(run_path).load_model(step=token[0])
    return model.eval()


@st.cache_data(max_entries=16, show_spinner="Encoding the test series…")
def codes_of(run_path: str, token: tuple, name: str, method: str):
    model = model_at(run_path, token)
    z = lab.test_codes(model, data(name))
    return z, lab.latent_map(z, data(name).y_test.numpy(), method)


with st.expander("Train a sequence model", expanded=False, icon=":material/model_training:"):
    models = lab.sequence_models()
    c1, c2, c3 = st.columns(3)
    model = c1.selectbox("Model", models, index=models.index(lab.DEFAULT_MODEL), key="seq_model")
    latent = c2.number_input("Latent size (z)", 1, 256, lab.DEFAULT_LATENT_DIM, key="seq_latent")
    steps = c3.slider("Training steps", 50, 5000, lab.DEFAULT_STEPS, step=50, key="seq_steps")
    options = {}
    if model != "conv1d_ae":
        c1, c2, c3 = st.columns(3)
        options["bidirectional"] = c1.toggle("Bidirectional encoder", key="seq_bi")
        options["decoder"] = c2.selectbox("Decoder", ["repeat", "autoregressive"], key="seq_decoder",
                                          help="repeat: z at every step; autoregressive: z and the previous output")
        options["teacher_forcing"] = c3.slider("Teacher forcing", 0.0, 1.0, 0.0, 0.1, key="seq_tf",
                                               disabled=options["decoder"] != "autoregressive")
    if st.button("Train in the background", type="primary", key="seq_train", icon=":material/rocket_launch:"):
        try:
            model_config, train = lab.run_settings(model, dataset, latent, steps, options)
            run = job_manager().submit(model, dataset, model_config, train, name=f"{model} on {dataset}",
                                       actor=who)
        except Exception as e:
            st.error(f"Could not start training: {md(e)}")
        else:
            st.session_state["seq_run"] = run.id

runs = [r for r in job_manager().runs(who, shared_runs()) if r.problem() is None and lab.is_sequence_run(run_config(r))
        and run_config(r).get("dataset") == dataset]
if not runs:
    st.info("No sequence run on this dataset yet: open *Train a sequence model* above and press Train.")
    st.stop()
run = pick_run(runs, key="seq_run", label="Sequence run")
state = run.status().state
live_run_panel(run.id, state)
token = run.checkpoint_token()
if token is None:
    st.caption("The views below appear once the run has saved its first checkpoint.")
    st.stop()
try:
    model = model_at(str(run.path), token)
except (RunError, OSError, ValueError, KeyError) as e:  # a damaged or foreign checkpoint: say why, draw nothing
    st.error(f"Cannot load run {md(run.id)}: {md(e)}")
    st.stop()
ds = data(dataset)

st.subheader("Reconstructions over training")
explain("sequences", "replay")
rep = lab.replay(run)
if rep is None or not rep.steps:
    st.caption("No series snapshots yet.")
else:
    last = rep.steps[-1]
    start = lab.nearest_step(rep.steps, query_value("step", last, int))
    step = st.select_slider("Snapshot (training step)", rep.steps, value=start, key=f"seq_step_{run.id}")
    set_query(step=step)
    x_hat = lab.frame(run, step)
    cols = st.columns(4)
    for k in range(min(len(rep.x), 8)):
        fig = go.Figure([go.Scatter(y=rep.x[k, :, 0], name="x", line=dict(color="#888")),
                         go.Scatter(y=x_hat[k, :, 0] if x_hat is not None else [], name="x̂",
                                    line=dict(color="#e66e14"))])
        label = rep.classes[rep.y[k]] if 0 <= rep.y[k] < len(rep.classes) else ""
        fig.update_layout(height=170, margin=dict(l=10, r=10, t=25, b=10), showlegend=False,
                          title=dict(text=f"test #{rep.indices[k]} · class {label}", font=dict(size=12)))
        cols[k % 4].plotly_chart(fig, key=f"seq_replay_{k}", config={"displayModeBar": False})

st.subheader("One series and its context vector z")
explain("sequences", "context")
n_test = len(ds.x_test)
if "seq_i" not in st.session_state:
    st.session_state["seq_i"] = query_value("i", 0, int, lambda v: 0 <= v < n_test)
clicked = lab.clicked_series(st.session_state.get("seq_mapchart"))  # a point picked on the map below
if clicked is not None and clicked != st.session_state.get("seq_clicked") and 0 <= clicked < n_test:
    st.session_state["seq_i"] = st.session_state["seq_clicked"] = clicked
index = st.number_input(f"Test series (0–{n_test - 1}; or click a point on the map)", 0, n_test - 1, key="seq_i")
set_query(i=index)
one = lab.one_series(model, ds, index)
left, right = st.columns([3, 2])
channel = 0
fig = go.Figure([go.Scatter(y=one["x"][:, channel], name="x (input)", line=dict(color="#888")),
                 go.Scatter(y=one["x_hat"][:, channel], name="x̂ (reconstruction)", line=dict(color="#e66e14"))])
fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="t",
                  title=f"class {md(one['class'])} · MSE {one['mse']:.4f}")
left.plotly_chart(fig, key="seq_one")
bars = go.Figure(go.Bar(y=one["z"], marker_color=["#3b7dd8" if v >= 0 else "#d8573b" for v in one["z"]]))
bars.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), title="z = W h_T + b", xaxis_title="unit")
right.plotly_chart(bars, key="seq_z")

st.subheader("Latent map of the test series")
explain("sequences", "map")
method = st.radio("Projection", ["pca", "umap"], horizontal=True, key="seq_map",
                  index=["pca", "umap"].index(query_value("map", "pca", str, lambda v: v in ("pca", "umap"))),
                  format_func=str.upper)
set_query(map=method)
_, mp = codes_of(str(run.path), token, dataset, method)
fig = go.Figure()
for c, cname in enumerate(ds.classes):
    sel = mp["y"] == c
    fig.add_trace(go.Scatter(x=mp["xy"][sel, 0], y=mp["xy"][sel, 1], mode="markers", name=f"class {cname}",
                             customdata=mp["indices"][sel], marker=dict(size=6)))
fig.update_layout(height=420, margin=dict(l=10, r=10, t=10, b=10))
st.plotly_chart(fig, key="seq_mapchart", on_select="rerun", selection_mode="points")
st.caption(f"5-NN accuracy (leave one out) on z: {fmt(mp['knn_z'], '.1%')}, on the map: {fmt(mp['knn_map'], '.1%')}")

st.subheader("Inside the LSTM: gates and cell state")
explain("sequences", "gates")
if not lab.has_gates(model):
    st.info("Gates belong to an LSTM: pick an lstm_ae run to see them.")
else:
    trace = lab.gates(model, ds, index)
    kinds = [("input", "input gate i_t"), ("forget", "forget gate f_t"), ("output", "output gate o_t"),
             ("cell", "cell state c_t")]
    heat = make_subplots(rows=4, cols=1, shared_xaxes=True, subplot_titles=[t for _, t in kinds],
                         vertical_spacing=0.06)
    for r, (k, _) in enumerate(kinds, 1):
        heat.add_trace(go.Heatmap(z=trace[k].T, colorscale="RdBu_r" if k == "cell" else "Viridis",
                                  zmin=None if k == "cell" else 0, zmax=None if k == "cell" else 1,
                                  showscale=r in (1, 4), colorbar=dict(len=0.22, y=1 - (r - 0.5) / 4)), r, 1)
    heat.update_layout(height=720, margin=dict(l=10, r=10, t=40, b=10))
    heat.update_xaxes(title_text="t", row=4, col=1)
    heat.update_yaxes(title_text="unit")
    st.plotly_chart(heat, key="seq_gates")
if state in ACTIVE:
    st.caption("The run is still training: these views show its newest checkpoint; reload for a newer one.")
