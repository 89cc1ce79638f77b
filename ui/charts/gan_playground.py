"""The 2-D GAN playground's figures (the plane with D's surface, the history) and its canvas's points."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.lab.gan_playground import LIM, Toy2DView

REAL, FAKE, PUSH = "#1b7837", "#762a83", "#2d004b"  # the ends of the PRGn heatmap: green real, purple fake


def plane_figure(view: Toy2DView, scale: float) -> go.Figure:
    """The decision surface as a heatmap, real and generated points, and the generator's push on each fake."""
    prob = view.surface_kind == "probability"
    xs, ys = arrow_segments(view.fake, view.push, scale)
    fig = go.Figure([
        go.Heatmap(x=view.grid, y=view.grid, z=view.surface, colorscale="PRGn", zmin=0 if prob else None,
                   zmax=1 if prob else None, zsmooth="best", opacity=0.75, hoverinfo="skip",
                   colorbar=dict(title=dict(text="D(x)" if prob else "f(x)", side="right"), thickness=12, len=0.8)),
        go.Scatter(x=view.real[:, 0], y=view.real[:, 1], mode="markers", name="real x",
                   marker=dict(color=REAL, size=5, line=dict(color="white", width=0.5))),
        go.Scatter(x=xs, y=ys, mode="lines", name="push −∂ℓ_G/∂G(z)", line=dict(color=PUSH, width=1),
                   hoverinfo="skip"),
        go.Scatter(x=view.fake[:, 0], y=view.fake[:, 1], mode="markers", name="generated G(z)",
                   marker=dict(color=FAKE, size=5, line=dict(color="white", width=0.5))),
    ])
    lim = [-LIM, LIM]
    fig.update_layout(height=500, margin=dict(l=10, r=10, t=10, b=10), uirevision="plane",
                      legend=dict(orientation="h", y=1.0, x=0.5, xanchor="center", yanchor="bottom"),
                      xaxis=dict(range=lim, constrain="domain", zeroline=False, title="x₁"),
                      yaxis=dict(range=lim, scaleanchor="x", constrain="domain", zeroline=False, title="x₂"))
    return fig


def history_figure(view: Toy2DView) -> go.Figure:
    """Losses, D's mean output on real and fake points, and the gradient norms, against the step."""
    h, wass = view.history, view.surface_kind == "critic"
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.09,
                        subplot_titles=("Losses", "f(x) and f(G(z))" if wass else "D(x) and D(G(z))",
                                        "Gradient norms ‖∇θ ℓ‖"))
    series = [(1, "d_loss", "D loss", "#b35806"), (1, "g_loss", "G loss", FAKE),
              (2, "d_real", "real" if wass else "D(x)", REAL), (2, "d_fake", "fake" if wass else "D(G(z))", FAKE),
              (3, "d_grad_norm", "D", "#b35806"), (3, "g_grad_norm", "G", FAKE)]
    for row, key, name, colour in series:
        fig.add_trace(go.Scatter(x=h["step"], y=h[key], name=name, mode="lines", line=dict(color=colour, width=1.5),
                                 legendgroup=str(row), showlegend=True), row=row, col=1)
    if not wass:
        fig.add_hline(y=0.5, line=dict(color="grey", dash="dot", width=1), row=2, col=1)
    fig.update_yaxes(type="log", dtick=1, exponentformat="power", row=3, col=1)  # one tick per decade
    fig.update_xaxes(title_text="step", row=3, col=1)
    fig.update_layout(height=500, margin=dict(l=10, r=10, t=30, b=10), legend=dict(tracegroupgap=105),
                      uirevision="history")
    return fig


# -- the drawing canvas (streamlit-drawable-canvas, Fabric.js JSON) and arrows -----------------------


def arrow_segments(points: np.ndarray, vectors: np.ndarray, scale: float,
                   max_length: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """Line segments from each point p to p + scale·v (at most max_length long), as x and y arrays.

    (N, 2), (N, 2) → two (3N,) arrays, NaN between segments, that one plotly line trace draws as
    N separate segments.
    """
    step = scale * np.asarray(vectors, dtype=np.float64)
    length = np.linalg.norm(step, axis=1, keepdims=True)
    step = step * np.minimum(1.0, max_length / np.maximum(length, 1e-12))
    ends = points + step
    xs = np.stack([points[:, 0], ends[:, 0], np.full(len(points), np.nan)], 1).ravel()
    ys = np.stack([points[:, 1], ends[:, 1], np.full(len(points), np.nan)], 1).ravel()
    return xs, ys


def canvas_points(json_data: dict | None, size: int) -> list[tuple[float, float]]:
    """The centres of the circles a drawing canvas (size × size pixels, Fabric.js JSON) holds, in plot units.

    The canvas spans [−LIM, LIM]² with y pointing up (pixels count down). Objects of other kinds
    are ignored; no validation here (validate_points does that).
    """
    out = []
    for obj in (json_data or {}).get("objects", []) or []:
        if str(obj.get("type", "")).lower() != "circle":
            continue
        try:
            r = float(obj.get("radius", 0))
            w = 2 * r * float(obj.get("scaleX", 1)) + float(obj.get("strokeWidth", 0))  # the bounding box
            h = 2 * r * float(obj.get("scaleY", 1)) + float(obj.get("strokeWidth", 0))
            cx = float(obj["left"]) + {"left": w / 2, "right": -w / 2}.get(obj.get("originX", "left"), 0.0)
            cy = float(obj["top"]) + {"top": h / 2, "bottom": -h / 2}.get(obj.get("originY", "top"), 0.0)
        except (KeyError, TypeError, ValueError):
            continue
        out.append((cx / size * 2 * LIM - LIM, LIM - cy / size * 2 * LIM))
    return out


def canvas_background_image(size: int) -> np.ndarray:
    """A light (size, size, 3) uint8 picture of the plane [−LIM, LIM]²: grid lines every 0.5, darker axes."""
    img = np.full((size, size, 3), 250, np.uint8)
    for k in np.arange(-LIM, LIM + 1e-9, 0.5):
        px = int(round((k + LIM) / (2 * LIM) * (size - 1)))
        shade = 150 if abs(k) < 1e-9 else (205 if float(k).is_integer() else 230)
        img[:, px] = np.minimum(img[:, px], shade)
        img[size - 1 - px, :] = np.minimum(img[size - 1 - px, :], shade)
    return img
