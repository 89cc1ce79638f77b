"""Draw: a digit drawn (or uploaded, or taken from the test split) → 28×28 → every chosen model's x̂.

Shows the input made MNIST-style, each model's reconstruction with its per-pixel error map, the
first model's code z, the class its nearest training codes vote for, and the anomaly score against
the test split. The link keeps the models (`?run=a,b`), the input (`?input=draw|upload|test`) and
the test image (`?image=N`). The canvas and everything computed from it live in one fragment, so a
stroke reruns only that panel.
"""

import math

import streamlit as st

from engine.data.images import image_png
from engine.data.preprocess import EmptyImageError, PreprocessError, from_canvas, from_image_bytes
from engine.lab.demos import DEMOS, demo_settings
from engine.lab.draw import analyse
from ui.charts.draw import STYLE, ModelRow, results_html
from ui.canvas import canvas, clear_button
from ui.classboard import board_section, send_panel
from ui.entry import ensure_app
from ui.images import error_png, example_bytes, example_drawings, example_picture, show_image
from ui.lessons import shown
from ui.resources import dataset_tensors, loaded_run, on_model_thread, split_codes, split_errors
from ui.runs import choose_run, need_model, run_label, run_name, usable_runs
from ui.sidebar import usable_dataset
from ui.text import explain, percent
from ui.urlstate import query_value, set_query
from ui.escape import md, md_quote

ensure_app()  # a deep link on a fresh server runs app.py first (see ui/entry.py)

SOURCES = {"draw": ":material/draw: Draw", "example": ":material/gesture: Example",
           "upload": ":material/upload: Upload", "test": ":material/shuffle: Test digit"}
MAX_MODELS = 4
CANVAS = 280  # px: 10 canvas pixels per MNIST pixel; the 20 px stroke becomes MNIST's ~2 px after resizing

st.title(":material/draw: Draw")
explain("draw")

dataset = usable_dataset()
runs = usable_runs(dataset.name, encodes=True, conditional=False)
if not runs:
    starter = DEMOS["starter"]
    model, model_config, train = demo_settings("starter")
    need_model(f"No autoencoder trained on **{dataset.name}** yet: the drawing needs a model to reconstruct it. "
               f"Train {starter.what} ({train['steps']:,} steps in the background).",
               model, model_config, train, key="draw_train", button=f"Train a {starter.summary()}", name="starter")
    st.stop()

by_id = {r.id: r for r in runs}
linked = [i for i in (st.query_params.get("run") or "").split(",") if i in by_id]
kept = [i for i in st.session_state.get("draw_runs", []) if i in by_id]
best = None
if "draw_runs" not in st.session_state or (st.session_state["draw_runs"] and not kept):
    # first visit, or another dataset: the link's runs, else the one that reconstructs best
    best = None if linked else choose_run(runs)
    kept = linked[:MAX_MODELS] or [best.run_id]
if kept != st.session_state.get("draw_runs"):
    st.session_state["draw_runs"] = kept
left, right = st.columns([3, 2], vertical_alignment="bottom")
chosen = st.session_state["draw_runs"] if not shown("draw_runs") else left.multiselect(
    "Models", list(by_id), key="draw_runs", max_selections=MAX_MODELS, format_func=lambda i: run_label(by_id[i]),
    help="Autoencoder runs on this dataset, side by side. The first one also gives the code z, the class and the "
         "neighbours below.")
if best is not None and len(runs) > 1:
    st.session_state["draw_best"] = best
why = st.session_state.get("draw_best")
if why is not None and chosen == [why.run_id] and shown("draw_runs"):
    left.caption(f"Opened on {md(run_name(by_id[why.run_id]))}: {why.reason}. Add or swap models above.")
if st.query_params.get("run") and not linked:
    st.warning(f"There is no autoencoder run {md_quote(st.query_params['run'])} on {dataset.name}; showing "
               f"{md(', '.join(chosen))} instead.")
if not chosen:
    st.info("Pick at least one model above.")
    st.stop()
set_query(run=",".join(chosen))

if st.session_state.get("draw_source") not in SOURCES:
    st.session_state["draw_source"] = query_value("input", "draw", str, lambda v: v in SOURCES)
source = st.session_state["draw_source"] if not shown("draw_source") else right.segmented_control(
    "Input", list(SOURCES), key="draw_source", required=True, format_func=SOURCES.get)
set_query(input=None if source == "draw" else source)
models = [m for m in (loaded_run(by_id[i]) for i in chosen) if m is not None]
if not models:
    st.stop()


def canvas_input():
    """The drawing canvas's image (28, 28), or None (with a hint) while it is empty."""
    result = canvas(CANVAS, key="draw_canvas")
    clear_button("draw_canvas", on_clear=lambda: st.session_state.pop("drawing", None))
    pixels = result.image_data  # decoded from the canvas's PNG at each read: read once
    if pixels is None:  # nothing drawn since the canvas appeared: show the last drawing
        x = st.session_state.get("drawing")
        if x is not None:
            st.caption("Showing your last drawing; draw to replace it.")
        return x
    try:
        x = from_canvas(pixels)
    except EmptyImageError:
        st.session_state.pop("drawing", None)
        return None
    st.session_state["drawing"] = x
    return x


def upload_input():
    file = st.file_uploader("A picture of one digit (PNG or JPEG)", type=["png", "jpg", "jpeg"], key="draw_upload",
                            help="Dark ink on light paper is fine: it is inverted. Crop it to one digit.")
    if file is None:
        return None
    try:
        x = from_image_bytes(file.getvalue())
    except PreprocessError as e:
        st.error(f"Cannot use {md(file.name)}: {md(e)}")
        return None
    st.session_state["drawing"] = x
    return x


def example_input():
    """One of the example drawings in assets/drawings/ (`?example=NAME`), made MNIST-style like a drawing."""
    names = example_drawings()
    if st.session_state.get("draw_example") not in names:
        st.session_state["draw_example"] = query_value("example", names[0], str, lambda v: v in names)
    name = st.selectbox("Example drawing", names, key="draw_example", format_func=lambda n: n.replace("_", " "))
    set_query(example=name)
    show_image(example_picture(name), scale=1)
    x = from_image_bytes(example_bytes(name))
    st.session_state["drawing"] = x
    return x


def test_input():
    data = dataset_tensors(dataset.name)
    n = len(data.x_test)
    if not 0 <= st.session_state.get("draw_image", -1) < n:
        st.session_state["draw_image"] = query_value("image", 0, int, lambda v: 0 <= v < n)
    index = st.number_input(f"Test image (0–{n - 1})", 0, n - 1, key="draw_image")
    set_query(image=index)
    label = f" · label {data.classes[int(data.y_test[index])]}" if data.classes else ""
    st.caption(f"Test image {index}{label}")
    return data.x_test[index, 0].numpy()


@st.fragment
def draw_panel(source: str) -> None:
    """The input and everything computed from it: a stroke (or a new upload) reruns this panel only."""
    first = models[0]
    data = dataset_tensors(dataset.name)
    top = st.columns([1.7, 1, 1.5], gap="medium")
    below = st.container(key="draw_results")  # filled first once x is known (what a stroke is drawn to see)
    with top[0]:
        x = {"draw": canvas_input, "example": example_input, "upload": upload_input, "test": test_input}[source]()
    if source != "test":
        set_query(image=None)
    if source != "example":
        set_query(example=None)
    if x is None:
        top[1].info("Draw a digit in the black square: white strokes, as large as the square."
                    if source == "draw" else "Upload a picture of a digit.", icon=":material/gesture:")
        return
    a = on_model_thread(analyse, x, models, [split_errors(m) for m in models], split_codes(first, "train"),
                        data.y_train.numpy(), data.num_classes)
    classes = data.classes
    rows = [ModelRow(r.run_id, by_id[r.run_id].config["model"], image_png(r.x_hat), error_png(r.error, scale=1),
                     r.mse, percent(r.percentile) if math.isfinite(r.percentile) else "–") for r in a.reconstructions]
    with below:  # sent first: what the stroke was drawn to see
        st.html(results_html(
            x_png=image_png(a.x), rows=rows, first_run_id=first.run_id, latent_dim=first.latent_dim, z=a.z,
            neighbours_png=image_png(data.x_train[a.neighbours.tolist(), 0].numpy()), distances=a.distances,
            neighbour_classes=[classes[int(data.y_train[i])] for i in a.neighbours] if classes else None,
            test_errors=split_errors(first), score=a.reconstructions[0].mse))
    show_image(a.x, "x: the 28×28 input", scale=8, container=top[1])
    if source != "test":  # a drawing of the visitor's own (drawn, an example, an upload) goes to the class
        send_panel(a.x, first.run_id, first.dataset, key="draw", container=top[1])
    with top[2]:
        rec = a.reconstructions[0]
        if a.predicted is not None:
            st.metric("Looks like", data.classes[a.predicted],
                      help=f"The most common class among the {len(a.neighbours)} training images whose codes "
                           f"are nearest to z under {first.run_id}.")
            st.caption(" · ".join(f"{data.classes[c]}: {v:.0%}" for c, v in enumerate(a.votes) if v > 0))
        st.metric("Anomaly score (MSE)", f"{rec.mse:.4f}", help="(1/784) Σ (x − x̂)² under the first model")
        st.markdown(f"Higher than **{percent(rec.percentile)}** of the test images' scores"
                    + (" — unusual for this model." if rec.percentile > 95 else "."))


st.html(STYLE)  # the results block's style sheet: once per page run, not with every stroke
draw_panel(source)
board_section(models[0])  # the drawings the class sent, live (the presenter sees everyone's)
