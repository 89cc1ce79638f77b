"""Anomaly detection: train on the normal classes only, then flag test images the model rebuilds badly.

State in the URL: the run (`?run=ID`) and the threshold (`?tau=…`). The scores, the ROC curve and
the example images are computed once per (run, checkpoint); the threshold panel is a fragment, so
moving τ redraws only the histograms, the ROC point and the counts.
"""

import streamlit as st

from engine.lab import anomaly
from ui.charts.anomaly import histogram_figure, roc_figure
from ui.entry import ensure_app
from ui.images import show_image
from ui.lessons import shown
from ui.resources import dataset_tensors, loaded_run, split_errors
from ui.runs import need_model, pick_run, usable_runs
from ui.sidebar import usable_dataset
from ui.text import explain
from ui.urlstate import query_value, set_query
from ui.widgets import log_grid, snap
from ui.escape import md

ensure_app()  # a deep link on a fresh server runs app.py first (see ui/entry.py)

st.title("Anomaly detection")
explain("anomaly")

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
    latent = mid.number_input("Latent size", 1, 256, anomaly.DEFAULT_LATENT_DIM, key="anomaly_latent",
                              help="`latent_dim`, the size of the code z: a narrow bottleneck keeps only what the "
                                   "normal images share")
    steps = right.slider("Training steps", 100, 3000, anomaly.DEFAULT_STEPS, step=100, key="anomaly_steps",
                         help="gradient steps; a step budget gives the same model on a busy machine, only later")
    if not normal or len(normal) == len(classes):
        st.warning("Choose at least one normal class and leave at least one out: the left-out classes are "
                   "the anomalies the model is tested on.")
        return
    model_config, train = anomaly.one_class_settings(model, normal, latent, steps)
    names = ("class " if len(normal) == 1 else "classes ") + ", ".join(classes[c] for c in sorted(normal))
    need_model(message.format(names=names, model=model, steps=f"{steps:,}"), model, model_config, train,
               key="anomaly_train", button="Train a one-class model", name=f"one-class: {names}")
    if st.session_state.get("anomaly_train_started"):
        st.session_state["anomaly_pending"] = st.session_state["anomaly_train_started"]


runs = usable_runs(info.name, models=anomaly.candidate_models(),
                   predicate=lambda config: bool(config.get("train", {}).get("classes")))
by_id = {r.id: r for r in runs}
pending = st.session_state.get("anomaly_pending")
if pending in by_id and by_id[pending].status().state == "done":  # a run this page started has finished
    st.session_state["anomaly_run"] = st.session_state.pop("anomaly_pending")
    st.query_params.pop("tau", None)

if not runs or st.session_state.get("anomaly_train_started"):
    train_form("No one-class run on this dataset yet. Pick the normal classes above: the model trains on "
               "{names} only for {steps} steps, and every test image is then scored." if not runs else
               "Training {model} on {names} only for {steps} steps.")
    if not runs:
        st.stop()
elif shown("anomaly_train_more"):
    with st.container(key="anomaly_train_more"), st.expander("Train another one-class model",
                                                             icon=":material/model_training:"):
        train_form("Trains {model} on {names} only for {steps} steps; the test split keeps every class.")

run = pick_run(runs, key="anomaly_run", label="One-class run", quality="anomaly",
               help="Runs trained on some classes only (their config's train.classes)")
loaded = loaded_run(run)
if loaded is None:
    st.stop()
if st.session_state.get("anomaly_tau_run") not in (None, run.id):  # another run: its own default τ
    st.query_params.pop("tau", None)
    st.session_state.pop("anomaly_tau", None)
st.session_state["anomaly_tau_run"] = run.id


@st.cache_data(max_entries=16, show_spinner="Scoring the test set…")
def analysis_of(run_path: str, token: tuple, normal: tuple, _loaded) -> anomaly.AnomalyReport:
    scores = split_errors(_loaded)  # (N_test,) per-image MSE, cached per checkpoint
    return anomaly.analyse(scores, dataset_tensors(_loaded.dataset).y_test.numpy(), normal)


normal = tuple(loaded.train_classes)
try:
    result = analysis_of(loaded.path, loaded.token, normal, loaded)
except ValueError as e:
    st.error(f"Cannot score run {run.id}: {md(e)}")
    st.stop()
ev = result.evaluation
normal_names = ", ".join(classes[c] for c in normal)
state = run.status().state
st.markdown(f"**Normal:** {normal_names} · **test images:** {ev.n_normal:,} normal, {ev.n_anomaly:,} anomalous · "
            f"**checkpoint:** step {loaded.step:,}" + ("" if state == "done" else f" (run {state})"))


@st.fragment
def threshold_panel() -> None:
    grid = log_grid(result.scores)
    default = snap(grid, result.default_tau)
    if st.session_state.get("anomaly_tau") not in grid:  # first draw, or a new checkpoint's grid
        linked = query_value("tau", default, valid=lambda v: grid[0] <= v <= grid[-1])
        st.session_state["anomaly_tau"] = snap(grid, st.session_state.get("anomaly_tau", linked))
    tau = st.select_slider("Threshold τ: flag images with s(x) > τ", grid, key="anomaly_tau",
                           format_func=lambda v: f"{v:.3g}",
                           help=f"Log-spaced. Starts at the {anomaly.DEFAULT_QUANTILE:.0f}th percentile of the "
                                f"normal images' scores ({default:.3g}): about 5 % false alarms")
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
    left.plotly_chart(histogram_figure(result, tau), key="anomaly_hist")
    right.plotly_chart(roc_figure(ev, point), key="anomaly_roc")


threshold_panel()


@st.cache_data(max_entries=16, show_spinner="Reconstructing examples…")
def examples_of(run_path: str, token: tuple, normal: tuple, _loaded, _result: anomaly.AnomalyReport) -> dict:
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
for tab, (name, (_title, text)) in zip(st.tabs([t for t, _ in GROUPS.values()]), GROUPS.items()):
    tab.caption(text)
    cols = tab.columns(4)
    for i, ex in enumerate(examples[name]):
        show_image([ex["x"], ex["x_hat"]], caption=f"#{ex['index']} · {classes[ex['y']]} · s = {ex['score']:.4f}",
                   scale=4, container=cols[i % 4])
