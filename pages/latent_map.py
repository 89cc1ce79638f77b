"""Latent map: the test set's codes z squeezed to a plane (UMAP, PCA or t-SNE), coloured by class.

Select a point (or lasso a group) to see the images behind it; the user's drawing lands on the map as
a star; a replay shows the map at each checkpoint so people watch the clusters form. UMAP compiles
for ~30 s once per server (app.py starts that at server start): until it is ready, and while a map
computes, the PCA map shows and a polling fragment swaps the new map in. Link state: ?run, ?method,
?step (the checkpoint), ?image (the selected test image).
"""

from collections import Counter

import streamlit as st

from engine.data.images import grid_png
from engine.eval.codes import class_votes, encode, nearest, reconstruct
from engine.lab import latent_map as maps
from engine.lab.demos import DEMOS, demo_settings
from engine.runs import Run, RunError, finite
from engine.runs.loaded import checkpoint_steps
from ui.charts.latent_map import map_figure, replay_figure
from ui.classboard import board_controls, board_on_map, selected_drawing_panel, visible_drawings
from ui.entry import ensure_app
from ui.images import show_image
from ui.resources import dataset_tensors, loaded_run, map_jobs, split_codes
from ui.runs import need_model, pick_run, usable_runs
from ui.sidebar import selected_dataset
from ui.text import explain
from ui.urlstate import query_value, set_query
from ui.escape import md

ensure_app()  # a deep link on a fresh server runs app.py first (see ui/entry.py)

MAX_GROUP = 40  # images shown for a lasso/box selection


@st.cache_data(max_entries=64, show_spinner=False)
def knn(points, y) -> float:
    return maps.map_knn_accuracy(points, y)


@st.cache_data(max_entries=8, show_spinner="Encoding the test set at each checkpoint…")
def replay(run_path: str, steps: tuple, dataset: str):
    ds = dataset_tensors(dataset)
    idx = maps.subset_indices(len(ds.y_test), maps.REPLAY_POINTS)
    return maps.checkpoint_maps(maps.replay_codes(Run(run_path), ds, steps, idx)), ds.y_test.numpy()[idx]


@st.fragment(run_every=1.0)
def swap_in_when_done(key, label: str) -> None:
    """Polls the background map; reruns the page once it is there (no Streamlit call from the worker)."""
    if map_jobs().state(key) != "pending":
        st.rerun()
    if maps.umap_ready() or key[-1] != "umap":
        st.info(f"Computing the {label} map… showing the PCA map meanwhile.", icon=":material/hourglass_top:")
    else:
        st.info("UMAP is compiling… (once per server, about 30 s) showing the PCA map meanwhile.",
                icon=":material/hourglass_top:")


def selection(state) -> list[int]:
    """Test indices of the selected points (the ring and the star carry customdata −1)."""
    points = (state or {}).get("selection", {}).get("points", []) if hasattr(state, "get") else []
    out = []
    for p in points:
        c = p.get("customdata")
        c = c[0] if isinstance(c, (list, tuple)) and c else c
        if isinstance(c, (int, float)) and c >= 0:
            out.append(int(c))
    return out


dataset = selected_dataset()
st.title(":material/scatter_plot: Latent map")
explain("latent_map")

runs = usable_runs(dataset.name)
if not runs:
    model, model_config, train = demo_settings("starter")
    need_model(f"No autoencoder is trained on **{dataset.name}** yet: a map needs a model's codes. "
               f"Train {DEMOS['starter'].what} ({train['steps']:,} steps in the background) and its map appears "
               "here.", model, model_config, train, key="map_need_model", name="starter")
    st.stop()

left, mid, right = st.columns(3)
run = pick_run(runs, key="map_run", container=left, quality="clusters")
if st.session_state.get("map_method") not in maps.METHODS:
    st.session_state["map_method"] = query_value("method", "umap", str, lambda m: m in maps.METHODS)
method = mid.radio("Projection", list(maps.METHODS), key="map_method", format_func=maps.METHODS.get,
                   horizontal=True, help="UMAP and t-SNE keep neighbourhoods; PCA keeps straight-line distances")
steps = checkpoint_steps(run)
if not steps:
    st.warning(f"Run {run.id} has no checkpoint any more (it was resumed or cleaned); pick another run.")
    st.stop()
if st.session_state.get("map_step_run") != run.id or st.session_state.get("map_step") not in steps:
    st.session_state["map_step_run"] = run.id
    st.session_state["map_step"] = query_value("step", steps[-1], int, lambda s: s in steps)
if len(steps) > 1:
    step = right.select_slider("Checkpoint (training step)", steps, key="map_step", format_func="{:,}".format)
else:
    step = steps[0]
    right.caption(f"One checkpoint: step {step:,}")
set_query(method=method, step=step)

loaded = loaded_run(run, step)
if loaded is None:
    st.stop()
ds = dataset_tensors(dataset.name)
z_all, y_all = split_codes(loaded), ds.y_test.numpy()
idx = maps.subset_indices(len(z_all))  # a fixed subset when the test split is large
z, y = z_all[idx], y_all[idx]

jobs, key = map_jobs(), (loaded.path, loaded.token, method)
projection = jobs.compute((loaded.path, loaded.token, "pca"), z, "pca")
if method != "pca":
    jobs.submit(key, z, method)
    try:
        projection = jobs.result(key) or projection
    except Exception as e:
        st.error(f"The {maps.METHODS[method]} map failed: {md(e)}. Showing PCA.")
        if st.button("Try again", key="map_retry"):
            jobs.discard(key)
            st.rerun()
    if jobs.state(key) == "pending":
        swap_in_when_done(key, maps.METHODS[method])

# The selection: the chart's own state (a click, box or lasso) wins over the link's ?image=N.
chosen = [i for i in selection(st.session_state.get("map_scatter")) if i < len(y_all)]
group = chosen if len(chosen) > 1 else []
if len(chosen) == 1:
    set_query(image=chosen[0])
elif group:
    set_query(image=None)
image = None if group else query_value("image", None, int, lambda i: 0 <= i < len(y_all))
where = {int(t): i for i, t in enumerate(idx)}

drawing, placed = st.session_state.get("drawing"), None
if drawing is not None and getattr(drawing, "shape", None) == (28, 28) and not loaded.conditional:
    z_draw = encode(loaded, drawing)
    try:
        placed = projection.place(z_draw)[0]
    except Exception as e:
        st.warning(f"Could not place your drawing on the {maps.METHODS[projection.method]} map: {md(e)}")

map_col, side_col = st.columns([3, 2], gap="medium")
side = side_col.container(key="map_selection")
with map_col:
    title = f"{maps.METHODS[projection.method]} of {len(idx):,} test codes · step {loaded.step:,}"
    fig = map_figure(projection.xy, y, ds.classes, idx, title,
                     selected=projection.xy[where[image]] if image in where else None, drawing=placed,
                     group=group or None, equal_axes=projection.method == "pca")
    drawings = visible_drawings(loaded.dataset)  # read once: the map and the watcher below see the same ones
    board = board_on_map(fig, loaded, projection, drawings)  # the drawings the class sent (◆, with nicknames)
    st.plotly_chart(fig, key="map_scatter", on_select="rerun", selection_mode=("points", "box", "lasso"))
    st.caption("Click a point, or drag a box or lasso (tools at the top right), to see the images behind it. "
               "Double-click clears the selection.")
    if not loaded.conditional:
        board_controls(loaded.dataset, "map", drawings)

with side:
    if ds.classes:
        acc_z, acc_map = knn(z, y), knn(projection.xy, y)
        st.markdown(f"**5-NN accuracy** among the {len(idx):,} test codes shown, leave-one-out",
                    help="Each shown test image's class guessed from its 5 nearest *other shown* test images, once "
                         "in z and once on the map. The gap is what the projection to 2-D loses (or rearranges).")
        a, b = st.columns(2)
        a.metric(f"in z ({loaded.latent_dim}-D)", f"{acc_z:.1%}")
        b.metric(f"on the {maps.METHODS[projection.method]} map", f"{acc_map:.1%}",
                 delta=f"{100 * (acc_map - acc_z):+.1f} pts", delta_color="normal")
        run_knn = finite(run.status().final_metrics.get("knn_accuracy"))
        if run_knn is not None:
            at = "at this step" if loaded.step == steps[-1] else f"at step {steps[-1]:,}, its last"
            st.caption(f"The run's own kNN accuracy, **{run_knn:.1%}** {at} (Home's gallery and panel), measures "
                       f"differently: a 5-NN classifier fitted on the codes of all {len(ds.x_train):,} training "
                       f"images, scored on all {len(z_all):,} test images. More neighbours to choose from, so it is "
                       "usually higher.")
    if selected_drawing_panel(board, st.session_state.get("map_scatter")):
        pass  # a drawing of the class was picked: it is shown above
    elif group:
        counts = Counter(int(y_all[i]) for i in group)
        names = ds.classes or [str(c) for c in range(max(counts) + 1)]
        st.markdown(f"**{len(group):,} images selected** · " +
                    " · ".join(f"{names[c]}: {n}" for c, n in counts.most_common()))
        st.image(grid_png(ds.x_test[group[:MAX_GROUP]], ncol=8, scale=2),
                 caption=f"the first {min(len(group), MAX_GROUP)} of them")
    elif image is not None:
        label = int(y_all[image])
        x_hat = reconstruct(loaded, ds.x_test[image], label if loaded.conditional else None)[0]
        name = ds.classes[label] if 0 <= label < len(ds.classes) else "unlabelled"
        st.markdown(f"**Test image #{image}** · class **{name}**")
        c1, c2 = st.columns(2)
        show_image(ds.x_test[image, 0], "x (input)", container=c1)
        show_image(x_hat, "x̂ (reconstruction)", container=c2)
    else:
        st.info("Select a point on the map to see its image and reconstruction.", icon=":material/touch_app:")
    if placed is not None:
        neighbours, _ = nearest(z_all, z_draw, k=5)
        if ds.classes:
            vote = class_votes(y_all, neighbours, len(ds.classes))[0]
            guess = f"; its 5 nearest test codes say **{ds.classes[int(vote.argmax())]}** ({vote.max():.0%})"
        else:
            guess = ""
        show_image(drawing, None, scale=3)
        st.markdown(f"Your drawing is the ★ on the map{guess}.")
    elif drawing is not None and loaded.conditional:
        st.caption("Your drawing is not on the map: this model is conditioned on the class, so it needs a label.")

st.subheader("Clusters forming during training")
frame_steps = maps.pick_frames(steps, 12)
if len(frame_steps) < 2:
    st.caption("This run has one checkpoint, so there is nothing to replay; runs keep a spread-out history of "
               "checkpoints while they train.")
else:
    st.caption(f"The test codes at {len(frame_steps)} checkpoints, each projected by PCA and turned onto the last "
               "one (orthogonal Procrustes), so clusters move rather than flip. Press ▶ Play or drag the slider.")
    try:
        frames, y_replay = replay(str(run.path), tuple(frame_steps), dataset.name)
    except (RunError, OSError, ValueError) as e:
        st.warning(f"Cannot replay this run right now ({md(e)}); a checkpoint may have been thinned out while "
                   "training. Reload in a moment.")
    else:
        st.plotly_chart(replay_figure(frames, frame_steps, y_replay, ds.classes), key="map_replay")
