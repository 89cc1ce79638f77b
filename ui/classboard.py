"""The class board on the pages: the Draw page's "Send to the class", and the drawings shown live on maps.

The board itself (files, caps, who may clear it) is engine.lab.classboard; one ClassBoard per server
(st.cache_resource). A page that shows the board draws it from a full run and keeps a small timed
fragment (`watch_board`, every LIVE_S) that compares what is on the board with what the page drew and
reruns the page when a drawing came or went: the map is then drawn once per change, not every second.
"""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from engine.lab import classboard as cb
from engine.lab import latent_map as maps
from engine.runs import RunError, default_runs_dir
from engine.runs import workspace as ws
from ui.charts.classboard import add_class_points, selected_drawings
from ui.charts.latent_map import map_figure
from ui.escape import md
from ui.images import show_image
from ui.projector import projector_on
from ui.resources import dataset_tensors, map_jobs, split_codes
from ui.session import actor

LIVE_S = 1.0  # how often a page showing the board looks for new drawings
SHOWN_DRAWINGS = 24  # thumbnails beside a board; the map shows every drawing


@st.cache_resource(show_spinner=False)
def _board(runs_dir: str) -> cb.ClassBoard:
    return cb.ClassBoard(runs_dir)


def class_board() -> cb.ClassBoard:
    """The server's class board for the runs folder in use."""
    return _board(str(default_runs_dir()))


def visible_drawings(dataset: str) -> list[cb.Drawing]:
    """The drawings of `dataset` this session may see (the presenter, or anyone in local mode: all; else its own)."""
    return class_board().drawings(actor(), dataset)


def send_panel(x, run_id: str, dataset: str, key: str, container=st) -> None:
    """A nickname and "Send to the class" for drawing x (28, 28), drawn against `run_id`; says what happened.

    The answer stays while the drawing does: a page showing the board reruns once the new drawing is there.
    """
    box = container.container(key=f"{key}_send")
    drawing = hashlib.sha1(np.asarray(x, np.float32).tobytes()).hexdigest()
    with box:
        nickname = st.text_input("Your nickname", key=f"{key}_nickname", max_chars=cb.NICKNAME_MAX,
                                 placeholder="e.g. Ada",
                                 help="Shown beside your drawing on the presenter's map: letters, digits, spaces "
                                      "and - . ' _")
        if st.button("Send to the class", key=f"{key}_send_button", icon=":material/send:",
                     help="Puts this drawing on the class board: the presenter's Latent map shows it, live."):
            try:
                sent = class_board().send(x, nickname, run_id, dataset, actor())
            except (ValueError, RunError) as e:  # a cap (LimitError), an empty drawing or nickname
                st.session_state.pop(f"{key}_sent", None)
                st.error(f"Not sent: {md(e)}.")
            else:
                st.session_state[f"{key}_sent"] = (drawing, sent.nickname)
        sent = st.session_state.get(f"{key}_sent")
        if sent is not None and sent[0] == drawing:
            st.success(f"Sent to the class as **{md(sent[1])}**: it is on the presenter's map.",
                       icon=":material/check_circle:")
        me = actor()
        mine = [d for d in class_board().drawings(me) if d.workspace == me.workspace]
        if mine and ws.hosted() and not me.presenter:
            st.caption(f"You have {len(mine)} drawing{'s' * (len(mine) != 1)} on the class board.")
            if st.button("Take back mine", key=f"{key}_withdraw", icon=":material/undo:"):
                class_board().withdraw(me)
                st.session_state.pop(f"{key}_sent", None)
                st.rerun(scope="fragment")


def board_on_map(fig, loaded, projection, drawings: list[cb.Drawing]) -> list[cb.BoardPoint]:
    """Adds `drawings` (the visible ones of the map's dataset, read once by the page: visible_drawings) to `fig`,
    placed by the map's own projection; returns them."""
    if not drawings or loaded.conditional:
        return []
    try:
        points = class_board().points(loaded, drawings)
        add_class_points(fig, cb.place(projection, points), points, text_size=24 if projector_on() else 13)
    except (ValueError, RunError) as e:
        st.warning(f"Could not place the class's drawings on the {maps.METHODS[projection.method]} map: {md(e)}")
        return []
    return points


def selected_drawing_panel(points: list[cb.BoardPoint], state) -> bool:
    """The drawing picked on the map (its nickname, x and x̂); False when none is picked."""
    by_id = {p.drawing.id: p for p in points}
    picked = [by_id[i] for i in selected_drawings(state) if i in by_id]
    if not picked:
        return False
    p = picked[0]
    st.markdown(f"**{md(p.drawing.nickname)}** sent this drawing (against run {md(p.drawing.run_id)}) · "
                f"error **{p.mse:.4f}**")
    c1, c2 = st.columns(2)
    show_image(p.drawing.x, "x (their drawing)", container=c1)
    show_image(p.x_hat, "x̂ (this model's reconstruction)", container=c2)
    return True


def board_controls(dataset: str, key: str, drawings: list[cb.Drawing]) -> None:
    """What the board holds, the presenter's Clear button, and the watcher that brings new drawings in live.

    `drawings`: the ones the page drew on its map. The watcher must compare the board with those, not with a second
    read: a drawing sent between the two reads would otherwise be missing from the map and never bring a rerun."""
    me = actor()
    everyone = me.presenter or not ws.hosted()
    total = class_board().count()
    if everyone:
        st.caption(f"**The class board:** {len(drawings)} drawing{'s' * (len(drawings) != 1)} on {dataset} "
                   f"({total} in all), shown as ◆ with each sender's nickname; new ones appear within a second or "
                   "two. Click one to see it and its reconstruction.")
        if total and st.button("Clear the class board", key=f"{key}_clear_board", icon=":material/delete_sweep:",
                               help="Removes every drawing the class sent (the presenter only)."):
            try:
                n = class_board().clear(me)
            except (ValueError, RunError) as e:
                st.error(md(e))
            else:
                st.toast(f"Cleared {n} drawings from the class board", icon=":material/delete_sweep:")
                st.rerun()
    elif drawings:
        st.caption(f"Your {len(drawings)} drawing{'s' * (len(drawings) != 1)} sent to the class: the ◆ on the map. "
                   "The presenter's map shows everyone's.")
    watch_board(tuple(d.id for d in drawings), dataset)


@st.fragment(run_every=LIVE_S)
def watch_board(shown: tuple[str, ...], dataset: str) -> None:
    """Reruns the page when the drawings it may show differ from the ones it drew (`shown`)."""
    if tuple(d.id for d in visible_drawings(dataset)) != shown:
        st.rerun()


def board_gallery(points: list[cb.BoardPoint], ncol: int = 6) -> None:
    """The newest drawings, each with its nickname, as x beside x̂."""
    newest = points[::-1][:SHOWN_DRAWINGS]
    cols = st.columns(ncol)
    for i, p in enumerate(newest):
        show_image([p.drawing.x, p.x_hat], md(p.drawing.nickname, 40), scale=2, container=cols[i % ncol])
    if len(points) > len(newest):
        st.caption(f"… and {len(points) - len(newest)} older ones (all of them are on the map).")


def board_section(loaded) -> None:
    """The Draw page's view of the board for the presenter (and locally): the drawings on the PCA map of `loaded`
    (the page's first model), the one picked with its reconstruction, the newest as thumbnails, the controls."""
    if ws.hosted() and not actor().presenter:
        return  # a visitor's own drawings are on their Latent map; a live board here would rerun this page per send
    drawings = visible_drawings(loaded.dataset)
    st.subheader("The class board")
    if not drawings:
        st.caption("No drawing has been sent to the class yet: **Send to the class** under a drawing puts it here, "
                   "on this model's map, for everyone on the presenter's screen.")
        board_controls(loaded.dataset, "draw", drawings)
        return
    ds = dataset_tensors(loaded.dataset)
    z_all = split_codes(loaded)
    idx = maps.subset_indices(len(z_all))
    projection = map_jobs().compute((loaded.path, loaded.token, "pca"), z_all[idx], "pca")
    fig = map_figure(projection.xy, ds.y_test.numpy()[idx], ds.classes, idx,
                     f"PCA of {len(idx):,} test codes · {loaded.run_id}", equal_axes=True, height=440)
    points = board_on_map(fig, loaded, projection, drawings)
    map_col, side_col = st.columns([3, 2], gap="medium")
    map_col.plotly_chart(fig, key="draw_board_map", on_select="rerun", selection_mode="points")
    with side_col:
        if not selected_drawing_panel(points, st.session_state.get("draw_board_map")):
            st.info("Click a ◆ on the map to see that drawing beside its reconstruction.",
                    icon=":material/touch_app:")
        board_gallery(points, ncol=4)
    board_controls(loaded.dataset, "draw", drawings)
