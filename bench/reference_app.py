"""The plain reference for bench_ui_latency.py: the same widgets and round trips with no model.

A slider whose value redraws a 224×224 PNG (what the explorer's decoded image is), and a canvas
whose stroke redraws a downsampled copy of the drawing (what the Draw page's input becomes), each
in a fragment like the real pages. What the real pages add on top of this is their own cost.
"""

import io

import numpy as np
import streamlit as st
from PIL import Image

st.set_page_config(page_title="Reference", layout="wide")
st.title("Reference")


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.kron(array, np.ones((8, 8), np.uint8))).save(buf, format="PNG")
    return buf.getvalue()


@st.fragment
def slider_panel() -> None:
    value = st.slider("Value", -3.0, 3.0, 0.0, step=0.1, key="ref_slider")
    level = int((value + 3) / 6 * 255)
    array = np.full((28, 28), level, np.uint8)
    array[4:24, 4:24] = 255 - level  # a square whose contrast follows the slider: different bytes per position
    with st.container(key="ref_image"):
        st.image(png(array), caption="value image", output_format="PNG")


@st.fragment
def canvas_panel() -> None:
    from streamlit_drawable_canvas import st_canvas

    result = st_canvas(stroke_width=20, stroke_color="#ffffff", background_color="#000000", height=280, width=280,
                       drawing_mode="freedraw", return_image_data=True, key="ref_canvas")
    if result.image_data is not None:
        grey = result.image_data[..., :3].mean(-1)  # (280, 280)
        small = grey.reshape(28, 10, 28, 10).mean((1, 3)).astype(np.uint8)  # (28, 28): 10×10 blocks
        with st.container(key="ref_drawing"):
            st.image(png(small), caption="x̂", output_format="PNG")


left, right = st.columns(2)
with left:
    slider_panel()
with right:
    canvas_panel()
