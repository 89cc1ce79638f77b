"""Projector mode: large type and images for the back of a room, the sidebar hidden, on every page.

Turned on by a link (`?projector=1`, e.g. the address the presenter opens on the projector's machine) or
by the sidebar's toggle (local mode, and the presenter in hosted mode); it then stays on for the session
as pages change, and `?projector=1` stays in the address so the link reproduces it. One style sheet,
injected by `apply_projector`, which the shared sidebar calls before every page: Streamlit sizes its
text in rem, so a larger root font scales the text, and images are drawn at least as wide as their
column allows (pixelated, so a 28×28 digit stays crisp). A button at the top right leaves the mode,
since the sidebar and its toggle are hidden.
"""

from __future__ import annotations

import streamlit as st

PARAM = "projector"  # the link's parameter: ?projector=1
STATE = "projector"  # the session's setting
ROOT_FONT_PX = 22  # Streamlit's default is 16 px: 1.375× every rem
CSS = f"""
<style>
html {{ font-size: {ROOT_FONT_PX}px; }}
section[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stExpandSidebarButton"],
header[data-testid="stHeader"] {{ display: none !important; }}
[data-testid="stMainBlockContainer"] {{ max-width: 100% !important; padding: 1.2rem 2rem 2rem 2rem !important; }}
h1 {{ font-size: 2.8rem !important; }}
h2, h3 {{ font-size: 1.9rem !important; }}
[data-testid="stImage"] img {{ width: min(100%, 26rem) !important; height: auto !important;
                               image-rendering: pixelated; }}
[data-testid="stCaptionContainer"] {{ font-size: 0.95rem !important; }}
.st-key-projector_exit {{ position: fixed; top: 0.6rem; right: 1rem; z-index: 999990; width: auto !important; }}
</style>
"""


def _follow_link() -> None:
    """A link's ?projector=1|0 sets the mode, once per new value: the toggle and the Leave button decide afterwards.

    Called before the sidebar draws its toggle (a widget's state cannot change once it is drawn in a run)."""
    linked = st.query_params.get(PARAM)
    if linked in ("1", "0") and st.session_state.get(f"{STATE}_link") != linked:
        st.session_state[STATE] = linked == "1"
        st.session_state[f"{STATE}_link"] = linked


def projector_on() -> bool:
    """Whether this session shows pages in projector mode."""
    return bool(st.session_state.get(STATE, False))


def _leave() -> None:
    st.session_state[STATE] = False


def apply_projector() -> bool:
    """Injects projector mode's style sheet and its Leave button when it is on (every page, from the sidebar)."""
    _follow_link()
    on = projector_on()
    if on:
        st.query_params[PARAM] = "1"
        st.html(CSS)
        with st.container(key="projector_exit"):
            st.button("Leave projector mode", key="projector_leave", icon=":material/fullscreen_exit:",
                      on_click=_leave)
    else:
        if st.query_params.get(PARAM) is not None:
            st.query_params.pop(PARAM, None)
        st.session_state[f"{STATE}_link"] = None
    return on


def projector_toggle() -> None:
    """The sidebar's switch into projector mode."""
    st.toggle("Projector mode", key=STATE, help="Large type and images, the sidebar hidden, for a room's screen. "
                                                "A link with ?projector=1 opens it; the button at the top right "
                                                "leaves it.")
