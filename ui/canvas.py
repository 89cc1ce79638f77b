"""The Draw page's canvas: streamlit-drawable-canvas with its toolbar in plain sight, and a Clear button.

The component (0.13) floats its toolbar (send, undo, redo, edit, reset) over the canvas's top
right corner, invisible until the pointer hovers the canvas: a stroke that starts under that
invisible box is lost, and once shown the bar covers whatever is above the canvas. Its styles
live in a shadow root, out of the page's CSS's reach, so `canvas()` registers the component again
under its own name, with the package's own script and stylesheet followed by a few rules that put
the toolbar in the page's flow, above the canvas, always visible. Streamlit logs once per server
that the definition was replaced; that is this module.
"""

from __future__ import annotations

import functools
from pathlib import Path

import streamlit as st

COMPONENT = "streamlit-drawable-canvas.streamlit_drawable_canvas"  # the package's own name for it
TOOLBAR_IN_FLOW = """
.dc-root { display: flex; flex-direction: column-reverse; }
.dc-toolbar, .dc-root:hover > .dc-toolbar, .dc-toolbar:hover, .dc-toolbar:focus-within,
.dc-toolbar[data-pinned=true] {
  position: static !important; opacity: 1 !important; top: auto !important;
  padding: 0 0 0.3rem 0 !important; justify-content: flex-end; transition: none !important;
}
"""


@functools.cache
def _stylesheet() -> str:
    """The package's stylesheet, then the rules that move its toolbar out of the canvas."""
    import streamlit_drawable_canvas

    build = Path(streamlit_drawable_canvas.__file__).parent / "frontend" / "build"
    sheets = sorted(build.glob("index-*.css"))
    return "".join(p.read_text() for p in sheets) + TOOLBAR_IN_FLOW


def canvas(size: int, key: str, stroke_width: int = 20):
    """A size × size black canvas for white freehand strokes, in a container keyed `{key}_box`; its CanvasResult.

    clear_button(key) empties it: the canvas's own key gets a new suffix, so a new, empty one mounts.
    """
    from streamlit_drawable_canvas import st_canvas  # imported here: it registers its component on import

    # Registered during the script run, so it lands on the running server's registry (AppTest makes one per test).
    st.components.v2.component(COMPONENT, js="index-*.js", css=_stylesheet(), html='<div class="canvas-root"></div>',
                               isolate_styles=True)
    generation = st.session_state.setdefault(f"{key}_generation", 0)
    with st.container(key=f"{key}_box"):
        result = st_canvas(stroke_width=stroke_width, stroke_color="#ffffff", background_color="#000000",
                           height=size, width=size, drawing_mode="freedraw", return_image_data=True,
                           key=f"{key}_{generation}")
    return result


def clear_button(key: str, on_clear=None) -> None:
    """Empty the canvas `key` (and call `on_clear`, e.g. to forget the drawing derived from it)."""

    def clear() -> None:
        st.session_state[f"{key}_generation"] = st.session_state.get(f"{key}_generation", 0) + 1
        if on_clear is not None:
            on_clear()

    st.button("Clear", key=f"{key}_clear", icon=":material/delete:", on_click=clear,
              help="Start again on an empty canvas (the bar above the canvas also has undo and redo)")
