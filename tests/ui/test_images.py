"""ui/images.py: error maps in colour, example drawings."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def test_error_png_uses_inferno_on_a_fixed_scale():
    from plotly.colors import hex_to_rgb, sequential

    from ui.images import error_png

    error = np.linspace(0, 1, 28 * 28).reshape(28, 28)
    rgb = np.asarray(Image.open(io.BytesIO(error_png(error, scale=3))).convert("RGB")).astype(int)
    assert rgb.shape == (84, 84, 3)
    assert tuple(rgb[0, 0]) == hex_to_rgb(sequential.Inferno[0])  # 0 → Inferno's black
    assert tuple(rgb[-1, -1]) == hex_to_rgb(sequential.Inferno[-1])  # vmax → its yellow
    brightness = rgb[::3, ::3].sum(-1).ravel()  # one value per pixel, in order of the error
    assert (np.diff(brightness[::40]) > 0).all()  # brighter as the error grows
    clipped = np.asarray(Image.open(io.BytesIO(error_png(np.full((2, 2), 5.0), scale=1))).convert("RGB"))
    assert tuple(clipped[0, 0]) == hex_to_rgb(sequential.Inferno[-1])  # beyond vmax: clipped, not wrapped
