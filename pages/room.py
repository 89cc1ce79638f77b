"""Room: what the room is doing, for the presenter's screen: workspaces active, jobs training and queued, the board.

The presenter's view in hosted mode (a visitor is told so, and sees nothing of other workspaces); in local
mode the one person is the presenter. The panel refreshes every ROOM_REFRESH_S.
"""

import streamlit as st

from engine.lab.room import ACTIVE_S, room
from engine.runs import workspace as ws
from ui.classboard import class_board
from ui.entry import ensure_app
from ui.resources import job_manager
from ui.session import actor
from ui.text import explain

ensure_app()  # a deep link on a fresh server runs app.py first (see ui/entry.py)

ROOM_REFRESH_S = 2.0

st.title(":material/groups: Room")
explain("room")

if ws.hosted() and not actor().presenter:
    st.info("The room's view is the presenter's: it shows every visitor's jobs. If you are the presenter, enter the "
            "presenter secret in the sidebar's **Your workspace**; your own runs are on Home and Train.",
            icon=":material/lock:")
    st.stop()


@st.fragment(run_every=ROOM_REFRESH_S)
def room_panel() -> None:
    now = room(job_manager(), class_board())
    cols = st.columns(4)
    cols[0].metric("Workspaces active", now.active, help=f"Workspaces seen in the last {ACTIVE_S // 60} minutes "
                                                         f"({len(now.workspaces)} known)")
    cols[1].metric("Jobs training", len(now.running))
    cols[2].metric("Jobs queued", len(now.queued))
    cols[3].metric("Drawings on the class board", now.board, help="Sent from the Draw page; the Latent map shows them")
    if not ws.hosted():
        st.caption("Local mode: everyone on this server works in one workspace, `local`, so the room is one "
                   "workspace; hosted mode (LATENT_LAB_MODE=hosted) gives each visitor their own.")

    st.subheader("Training now")
    if now.running:
        st.dataframe(now.running, hide_index=True, key="room_running",
                     column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0,
                                                                                max_value=1.0)})
    else:
        st.caption("No job is training.")
    st.subheader("Waiting, in the order they start")
    if now.queued:
        st.dataframe(now.queued, hide_index=True, key="room_queued")
    else:
        st.caption("Nothing is waiting: a new job starts at once while a slot is free.")
    st.subheader("Workspaces")
    if now.workspaces:
        st.dataframe(now.workspaces, hide_index=True, key="room_workspaces")
    else:
        st.caption("No workspace yet.")


room_panel()
if class_board().count():
    st.page_link("pages/latent_map.py", label="The class's drawings on the Latent map", icon=":material/scatter_plot:")
