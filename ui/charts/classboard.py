"""The class board's drawings drawn onto a latent map: a labelled marker per drawing, its nickname beside it."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

CLASS_PREFIX = "class:"  # customdata of a drawing's marker: "class:<drawing id>" (a test image's is its index)
MARKER = dict(size=16, symbol="diamond", color="#111111", line=dict(color="#ffd000", width=2.5))


def add_class_points(fig: go.Figure, xy: np.ndarray, points, text_size: int = 13, trace=go.Scattergl) -> go.Figure:
    """One trace "the class" on `fig`: the drawings `points` (engine.lab.classboard.BoardPoint) at `xy` (M, 2),
    each labelled with its nickname (text_size px); hovering names the run it was drawn against and its error."""
    if not len(points):
        return fig
    custom = [[f"{CLASS_PREFIX}{p.drawing.id}", p.drawing.run_id, f"{p.mse:.4f}"] for p in points]
    fig.add_trace(trace(x=xy[:, 0], y=xy[:, 1], mode="markers+text", name="the class",
                        text=[p.drawing.nickname for p in points], textposition="top center",
                        textfont=dict(size=text_size, color="#111111"), customdata=custom, marker=MARKER,
                        hovertemplate="<b>%{text}</b><br>drawn against %{customdata[1]}<br>"
                                      "error (1/784) Σ (x − x̂)²: %{customdata[2]}<extra>the class</extra>"))
    return fig


def selected_drawings(state) -> list[str]:
    """Ids of the drawings selected on a map chart (its on_select state)."""
    points = (state or {}).get("selection", {}).get("points", []) if hasattr(state, "get") else []
    out = []
    for p in points:
        c = p.get("customdata")
        c = c[0] if isinstance(c, (list, tuple)) and c else c
        if isinstance(c, str) and c.startswith(CLASS_PREFIX):
            out.append(c[len(CLASS_PREFIX):])
    return out
