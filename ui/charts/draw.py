"""The Draw page's figures: the code z as bars, and the image's score among the test images'.

Both are redrawn on every stroke, so each is built in one go from a plain dict: plotly's property
setters (go.Bar(...), update_layout, add_vline) took 7–35 ms a figure on this 2-core machine, the dict
form takes about 1.5 ms (2026-12-03), time the server otherwise spends beside the browser while it
draws the stroke's reconstruction.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

NEGATIVE, POSITIVE, MUTED = "#e4572e", "#2e86ab", "#9aa5b1"


def _margin(top: int) -> dict:
    return {"l": 10, "r": 10, "t": top, "b": 10}


def draw_latent_figure(z, height: int = 240) -> go.Figure:
    """A code z (latent_dim,) as one bar per dimension."""
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    return go.Figure({
        "data": [{"type": "bar", "x": list(range(len(z))), "y": z.tolist(),
                  "marker": {"color": [NEGATIVE if v < 0 else POSITIVE for v in z]},
                  "hovertemplate": "z[%{x}] = %{y:.3f}<extra></extra>"}],
        "layout": {"height": height, "margin": _margin(10), "bargap": 0.15,
                   "xaxis": {"title": {"text": "latent dimension"}}, "yaxis": {"title": {"text": "z"}}}})


def draw_score_figure(test_errors, score: float, height: int = 240) -> go.Figure:
    """The test split's reconstruction errors as a histogram, with a line at this image's score."""
    return go.Figure({
        "data": [{"type": "histogram", "x": np.asarray(test_errors, dtype=np.float64).tolist(), "nbinsx": 40,
                  "marker": {"color": MUTED}, "name": "test images",
                  "hovertemplate": "MSE %{x}<br>%{y} test images<extra></extra>"}],
        "layout": {"height": height, "margin": _margin(30), "showlegend": False,
                   "xaxis": {"title": {"text": "reconstruction MSE"}}, "yaxis": {"title": {"text": "test images"}},
                   "shapes": [{"type": "line", "xref": "x", "yref": "paper", "x0": score, "x1": score, "y0": 0,
                               "y1": 1, "line": {"color": NEGATIVE, "width": 3}}],
                   "annotations": [{"text": "this image", "xref": "x", "yref": "paper", "x": score, "y": 1,
                                    "yanchor": "bottom", "showarrow": False}]}})
