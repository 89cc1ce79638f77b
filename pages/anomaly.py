"""Anomaly detection: train on the normal classes only, then flag test images the model rebuilds badly.

State in the URL: the run (`?run=ID`) and the threshold (`?tau=…`). The scores, the ROC curve and
the example images are computed once per (run, checkpoint); the threshold panel is a fragment, so
moving τ redraws only the histograms, the ROC point and the counts.
"""

import math

import plotly.graph_objects as go
import streamlit as st

from engine import anomaly
from pages.common import (ensure_app, dataset_tensors, explain, loaded_run, need_model, pick_run, query_value, safe_summary,
                          usable_dataset, set_query, show_image, split_errors, usable_runs)

ensure_app()  # a deep link on a fresh server runs app.py first (see pages/common.py)

NORMAL, ANOMALY = "#1f77b4", "#d62728"  # the two groups' colours on every chart

st.title("Anomaly detection")
explain(
    "Train an autoencoder on the **normal** classes only: it learns to rebuild those well and anything else "
    "badly, so the reconstruction error $s(x)$ is an anomaly score. A threshold $\\tau$ turns the score into "
    "a decision; the **AUROC**, the chance that an anomaly scores higher than a normal image, says how well "
    "the score ranks them whatever $\\tau$ is (0.5 is chance, 1 is perfect).",
    r"s(x) = \frac{\lVert x - \hat{x} \rVert^2}{784}, \qquad \text{flag } x \text{ when } s(x) > \tau, \qquad "
    r"\mathrm{AUROC} = P\big(s(x_\text{anomaly}) > s(x_\text{normal})\big)")

info = usable_dataset()
classes = dataset_tensors(info.name).classes


def train_form(message: str) -> None:
    """Normal classes, model, latent size and budget, then need_model's button (and its progress bar)."""
    normal = st.multiselect("Normal classes (the model trains on these only)", range(len(classes)), default=[0],
                            format_func=lambda c: classes[c], key="anomaly_normal")
    left, mid, right = st.columns(3)
    models = anomaly.candidate_models()
    model = left.selectbox("Model", models, index=models.index(anomaly.DEFAULT_MODEL), key="anomaly_model",
                           help="Any autoencoder not conditioned on the class (at test time the class is unknown)")
    latent = mid.number_input("latent_dim", 1, 256, anomaly.DEFAULT_LATENT_DIM, key="anomaly_latent",
                              help="A narrow bottleneck keeps only what the normal images share")
    seconds = right.slider("Time budget (s)", 5, 120, anomaly.DEFAULT_SECONDS, step=5, key="anomaly_seconds")
    if not normal or len(normal) == len(classes):
        st.warning("Choose at least one normal class and leave at least one out: the left-out classes are "
                   "the anomalies the model is tested on.")
        return
    model_config, train = anomaly.one_class_settings(model, normal, latent, seconds)
    names = ("class " if len(normal) == 1 else "classes ") + ", ".join(classes[c] for c in sorted(normal))
    need_model(message.format(names=names, model=model, seconds=seconds), model, model_config, train,
               key="anomaly_train", button="Train a one-class model")
    if st.session_state.get("anomaly_train_started"):
        st.session_state["anomaly_pending"] = st.session_state["anomaly_train_started"]


runs = usable_runs(info.name, models=anomaly.candidate_models(),
                   predicate=lambda config: bool(config.get("train", {}).get("classes")))
by_id = {r.id: r for r in runs}
pending = st.session_state.get("anomaly_pending")
if pending in by_id and safe_summary(by_id[pending]).get("state") == "done":  # a run this page started has finished
    st.session_state["anomaly_run"] = st.session_state.pop("anomaly_pending")
    st.query_params.pop("tau", None)

if not runs or st.session_state.get("anomaly_train_started"):
    train_form("No one-class run on this dataset yet. Pick the normal classes above: the model trains on "
               "{names} only for {seconds} s, and every test image is then scored." if not runs else
               "Training {model} on {names} only for {seconds} s.")
    if not runs:
        st.stop()
else:
    with st.expander("Train another one-class model", icon=":material/model_training:"):
        train_form("Trains {model} on {names} only for {seconds} s; the test split keeps every class.")

run = pick_run(runs, key="anomaly_run", label="One-class run",
               help="Runs trained on some classes only (their config's train.classes)")
loaded = loaded_run(run)
if loaded is None:
    st.stop()
if st.session_state.get("anomaly_tau_run") not in (None, run.id):  # another run: its own default τ
    st.query_params.pop("tau", None)
    st.session_state.pop("anomaly_tau", None)
st.session_state["anomaly_tau_run"] = run.id


@st.cache_data(max_entries=16, show_spinner="Scoring the test set…")
def analysis_of(run_path: str, token: tuple, normal: tuple, _loaded) -> anomaly.Analysis:
    scores = split_errors(_loaded)  # (N_test,) per-image MSE, cached per checkpoint
    return anomaly.analyse(scores, dataset_tensors(_loaded.dataset).y_test.numpy(), normal)


normal = tuple(loaded.train_classes)
try:
    result = analysis_of(loaded.path, loaded.token, normal, loaded)
except ValueError as e:
    st.error(f"Cannot score run {run.id}: {e}")
    st.stop()
ev = result.evaluation
normal_names = ", ".join(classes[c] for c in normal)
state = safe_summary(run).get("state")
st.markdown(f"**Normal:** {normal_names} · **test images:** {ev.n_normal:,} normal, {ev.n_anomaly:,} anomalous · "
            f"**checkpoint:** step {loaded.step:,}" + ("" if state == "done" else f" (run {state})"))


def histogram_figure(tau: float) -> go.Figure:
    """Each group's share of images per score bin, τ as a dashed line, the flagged side shaded."""
    h = result.hist
    lo, hi = float(h["edges"][0]), float(h["edges"][-1])
    # a log axis takes its range and annotation positions in log10 units
    at = math.log10 if h["log"] else (lambda v: v)
    xaxis = dict(type="log" if h["log"] else "linear", title="s(x)" + (", log scale" if h["log"] else ""),
                 range=[at(lo), at(hi)], dtick="D2" if h["log"] else None, tickformat="~g")
    top = max(float(h["normal"].max()) / ev.n_normal, float(h["anomaly"].max()) / ev.n_anomaly)
    fig = go.Figure()
    fig.add_vrect(x0=tau, x1=hi, fillcolor="rgba(0, 0, 0, 0.06)", line_width=0)
    fig.add_annotation(x=at(tau), y=1, yref="paper", text=" flagged: s(x) > τ", showarrow=False, xanchor="left",
                       yanchor="top", font_size=11)
    for group, colour, counts, total in (("normal", NORMAL, h["normal"], ev.n_normal),
                                          ("anomalous", ANOMALY, h["anomaly"], ev.n_anomaly)):
        fig.add_bar(x=h["centers"], y=counts / total, width=h["widths"], name=f"{group} ({total:,})",
                    marker_color=colour, opacity=0.6)
    fig.add_vline(x=tau, line_dash="dash", line_color="black")
    fig.update_layout(barmode="overlay", bargap=0, height=360, margin=dict(l=10, r=10, t=40, b=10),
                      title=dict(text="Reconstruction error of the test images", font_size=14), xaxis=xaxis,
                      yaxis=dict(title="share of the group", range=[0, 1.2 * top]),  # room for the label
                      legend=dict(orientation="h", y=-0.22, x=0.5, xanchor="center", yanchor="top"))
    return fig


def roc_figure(point: dict) -> go.Figure:
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"), name="chance")
    fig.add_scatter(x=ev.fpr, y=ev.tpr, mode="lines", line=dict(color=ANOMALY), name="ROC", fill="tozeroy",
                    fillcolor="rgba(214, 39, 40, 0.08)")
    fig.add_scatter(x=[point["fpr"]], y=[point["recall"]], mode="markers", name="τ",
                    marker=dict(size=12, color="black", symbol="circle-open", line_width=2))
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10), showlegend=False,
                      title=dict(text=f"ROC curve · AUROC {ev.auroc:.3f}", font_size=14),
                      xaxis=dict(title="false positive rate", range=[-0.02, 1.02]),
                      yaxis=dict(title="true positive rate (recall)", range=[-0.02, 1.02]))
    return fig


@st.fragment
def threshold_panel() -> None:
    grid = result.tau_grid
    if st.session_state.get("anomaly_tau") not in grid:  # first draw, or a new checkpoint's grid
        linked = query_value("tau", result.default_tau, valid=lambda v: grid[0] <= v <= grid[-1])
        st.session_state["anomaly_tau"] = result.snap(st.session_state.get("anomaly_tau", linked))
    tau = st.select_slider("Threshold τ: flag images with s(x) > τ", grid, key="anomaly_tau",
                           format_func=lambda v: f"{v:.3g}",
                           help=f"Log-spaced. Starts at the {anomaly.DEFAULT_QUANTILE:.0f}th percentile of the "
                                f"normal images' scores ({result.default_tau:.3g}): about 5 % false alarms")
    set_query(tau=f"{tau:.3g}")
    point = result.at(tau)
    cols = st.columns(4)
    cols[0].metric("AUROC", f"{ev.auroc:.3f}", help="P(s(anomaly) > s(normal)) over all pairs; 0.5 is chance")
    cols[1].metric("Precision", f"{point['precision']:.1%}", help="TP / (TP + FP): flagged images that are anomalies")
    cols[2].metric("Recall", f"{point['recall']:.1%}", help="TP / (TP + FN): anomalies that get flagged")
    cols[3].metric("False positive rate", f"{point['fpr']:.1%}", help="FP / (FP + TN): normal images flagged")
    st.caption(f"At τ = {tau:.3g}: {point['flagged']:,} images flagged; {point['tp']:,} of {ev.n_anomaly:,} "
               f"anomalies caught, {point['fp']:,} of {ev.n_normal:,} normal images raised false alarms. "
               f"Average precision {ev.average_precision:.3f} (chance {ev.n_anomaly / len(result.scores):.3f}).")
    left, right = st.columns([3, 2])
    left.plotly_chart(histogram_figure(tau), key="anomaly_hist")
    right.plotly_chart(roc_figure(point), key="anomaly_roc")


threshold_panel()


@st.cache_data(max_entries=16, show_spinner="Reconstructing examples…")
def examples_of(run_path: str, token: tuple, normal: tuple, _loaded, _result: anomaly.Analysis) -> dict:
    return anomaly.examples(_loaded, dataset_tensors(_loaded.dataset), _result, k=8)


GROUPS = {
    "most_anomalous": ("Most anomalous", "The highest scores: what the model rebuilds worst (input, then x̂)."),
    "hidden_anomalies": ("Anomalies that look normal", "Anomalies with the lowest scores: the model rebuilds "
                         "them well, so no threshold catches them without false alarms."),
    "false_alarms": ("Normal images that look anomalous", "Normal images with the highest scores: unusual "
                     "writing the model never learned to rebuild."),
    "most_normal": ("Most normal", "The lowest scores: the model's idea of a typical normal image."),
}
st.subheader("Examples")
examples = examples_of(loaded.path, loaded.token, normal, loaded, result)
for tab, (name, (title, text)) in zip(st.tabs([t for t, _ in GROUPS.values()]), GROUPS.items()):
    tab.caption(text)
    cols = tab.columns(4)
    for i, ex in enumerate(examples[name]):
        show_image([ex["x"], ex["x_hat"]], caption=f"#{ex['index']} · {classes[ex['y']]} · s = {ex['score']:.4f}",
                   scale=4, container=cols[i % 4])
