"""Time-series anomalies: a long series in windows, each window's reconstruction error beside the matrix profile.

Train a sequence autoencoder on the windows of the series' normal start (in the background, the live run panel),
then both detectors score every window of the whole series (stride 1): per-step curves, the labelled anomaly
shaded, a threshold and the detections, AUROC over steps and the UCR archive's top-1 test for each.
State in the URL: `?series=…&run=…&q=…`.
"""

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from engine.lab import sequences as seq_lab
from engine.lab import ts_anomaly as lab
from engine.runs import RunError
from ui.entry import ensure_app
from ui.escape import md
from ui.panels.uploads import series_upload_panel, take_pick
from ui.resources import job_manager
from ui.run_panel import live_run_panel
from ui.runs import pick_run, run_config
from ui.session import actor, shared_runs
from ui.text import explain, fmt
from ui.urlstate import query_value, set_query

ensure_app()

st.title("Time-series anomalies")
explain("ts_anomaly")

lab.matrix_profile_wait()  # starts compiling stumpy now, if nothing has, while the visitor picks and trains
who = actor()
names = lab.series_datasets(who.workspace)  # never a path: a link or a visitor names what is listed here
if (picked := take_pick("tsa_uploads")) in names:  # the series just uploaded below
    st.session_state["tsa_series"] = picked
if st.session_state.get("tsa_series") not in names:
    st.session_state["tsa_series"] = query_value("series", lab.DEFAULT_ANOMALY_SERIES, str, lambda v: v in names)
name = st.selectbox("Series", names, key="tsa_series", help="Long series with labelled anomalies bundled with "
                    "sktime, or your own one-column CSV (upload it below)")
set_query(series=name)
st.caption(md(seq_lab.describe(name)))
with st.expander("Upload your own series (CSV)", icon=":material/upload_file:"):
    series_upload_panel(who.workspace, "tsa_uploads", "Time-series anomalies")

with st.expander("Train an autoencoder on the normal start", icon=":material/model_training:"):
    models = seq_lab.sequence_models()
    c1, c2, c3 = st.columns(3)
    model = c1.selectbox("Model", models, index=models.index(lab.DEFAULT_MODEL), key="tsa_model")
    latent = c2.number_input("Latent size (z)", 1, 128, lab.DEFAULT_LATENT_DIM, key="tsa_latent")
    steps = c3.slider("Training steps", 50, 5000, lab.DEFAULT_STEPS, step=50, key="tsa_steps")
    if st.button("Train in the background", type="primary", key="tsa_train", icon=":material/rocket_launch:"):
        try:
            model_config, train = lab.run_settings(model, name, latent, steps)
            run = job_manager().submit(model, name, model_config, train, name=f"{model} on {name}", actor=who)
        except Exception as e:
            st.error(f"Could not start training: {md(e)}")
        else:
            st.session_state["tsa_run"] = run.id

runs = [r for r in job_manager().runs(who, shared_runs())
        if r.problem() is None and seq_lab.is_sequence_run(run_config(r)) and run_config(r).get("dataset") == name]
if not runs:
    st.info("No autoencoder on this series yet: open *Train an autoencoder on the normal start* above.")
    st.stop()
run = pick_run(runs, key="tsa_run", label="Autoencoder run")
live_run_panel(run.id, run.status().state)
token = run.checkpoint_token()
if token is None:
    st.caption("The detectors appear once the run has saved its first checkpoint.")
    st.stop()


@st.cache_data(max_entries=8, show_spinner="Scoring every window with the autoencoder…")
def analysis(run_path: str, token: tuple, series_name: str) -> dict:
    from engine.runs import Run

    model, _ = Run(run_path).load_model(step=token[0])
    return lab.analyse_autoencoder(model.eval(), series_name)


@st.cache_data(max_entries=8, show_spinner="Computing the matrix profile of every window…")
def profile(series_name: str, digest: str) -> dict:  # the same for every run on the series (digest: its values)
    return lab.analyse_matrix_profile(series_name)


@st.fragment(run_every=2.0)
def profile_pending() -> None:
    """Says the matrix profile is being prepared; the whole page redraws once it is ready."""
    state, left = lab.matrix_profile_wait()
    if state != "preparing":
        st.rerun()
    st.info(f"The matrix profile is being prepared (first use on this server, about {left:.0f} s more): stumpy "
            "compiles its code once per machine. Its scores appear here by themselves.", icon=":material/hourglass:")


try:
    result = analysis(str(run.path), token, name)
    series = result["series"]
    mp_state, _ = lab.matrix_profile_wait()
    if mp_state == "ready":
        result["matrix profile"] = profile(name, lab.series_digest(series))
except (RunError, OSError, ValueError, KeyError) as e:  # a damaged checkpoint, or a model for other windows
    st.error(f"Cannot score run {md(run.id)}: {md(e)}")
    st.stop()
detectors = [d for d in lab.DETECTORS if d in result]

if "tsa_q" not in st.session_state:
    st.session_state["tsa_q"] = query_value("q", lab.DEFAULT_QUANTILE, float, lambda v: 80 <= v <= 100)
q = st.slider("Threshold: this percentile of each detector's scores on the normal start", 80.0, 100.0,
              step=0.5, key="tsa_q", help="The same rule for both detectors: a step is flagged when its score "
                                          "exceeds what the normal start reached this often")
set_query(q=q)
found = {d: lab.detect(result[d], series, q) for d in detectors}

fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.05,
                    subplot_titles=["series (labelled anomaly shaded, detections marked)",
                                    "autoencoder: window reconstruction error",
                                    "matrix profile: nearest-neighbour distance" if "matrix profile" in result
                                    else "matrix profile: being prepared…"])
fig.add_trace(go.Scatter(y=series.values, name="x", line=dict(color="#555", width=1)), 1, 1)
for row, (d, colour) in enumerate(zip(lab.DETECTORS, ("#e66e14", "#3b7dd8")), 2):
    if d not in result:
        continue
    fig.add_trace(go.Scatter(y=result[d]["step_scores"], name=d, line=dict(color=colour, width=1)), row, 1)
    fig.add_hline(y=found[d]["tau"], line=dict(color=colour, dash="dash"), row=row, col=1)
    for start, end in found[d]["regions"][:200]:
        fig.add_vrect(x0=start, x1=end, fillcolor=colour, opacity=0.25, line_width=0, row=1, col=1)
for start, end in result["regions"]:
    for row in (1, 2, 3):
        fig.add_vrect(x0=start, x1=end, fillcolor="red", opacity=0.12, line_width=0, row=row, col=1)
fig.add_vline(x=series.train_end, line=dict(color="#999", dash="dot"))
fig.update_layout(height=640, margin=dict(l=10, r=10, t=40, b=10), showlegend=False)
fig.update_xaxes(title_text="t", row=3, col=1)
st.plotly_chart(fig, key="tsa_chart")
st.caption(f"Left of the dotted line: the normal start the autoencoder trained on ({series.train_end:,} steps). "
           f"Windows of {series.window} steps, every start.")

cols = st.columns(2)
for col, d in zip(cols, lab.DETECTORS):
    if d not in result:
        with col:
            if mp_state == "failed":
                st.warning(f"The matrix profile cannot be computed here: {md(lab.matrix_profile_error())}")
            else:
                profile_pending()
        continue
    r, f = result[d], found[d]
    col.markdown(f"**{d.capitalize()}**")
    a, b, c = col.columns(3)
    a.metric("AUROC over steps", fmt(r["auroc"], ".3f"), help="P(score of an anomalous step > a normal one's)")
    b.metric("UCR top-1", "–" if r["hit"] is None else "hit" if r["hit"] else "miss",
             help=f"the most anomalous window starts at t = {r['top_window']:,}: "
                  + ("this series has no labelled anomaly to compare it with" if r["hit"] is None
                     else "does it overlap the labelled region?"))
    c.metric("Steps flagged", f"{f['flagged']:,}", help=f"τ = {f['tau']:.4g}")
    col.caption(f"precision {fmt(f['precision'], '.1%')} · recall {fmt(f['recall'], '.1%')} at τ = {f['tau']:.4g}")
