"""The PCA-vs-autoencoder page's charts: error against latent size, and principal angles."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from engine.models import MODELS, label

PCA_COLOUR, LINEAR_COLOUR, CHANCE_COLOUR = "#ff7f0e", "#9467bd", "#c7c7c7"
SYMBOLS = ("square", "circle", "diamond", "triangle-up", "cross", "star")


def model_style(model: str) -> tuple[str, str]:
    """A model's colour and marker, the same whatever else is on the chart (by its place in the registry)."""
    palette = [c for c in qualitative.Plotly if c.lower() != PCA_COLOUR]
    i = list(MODELS).index(model) if model in MODELS else len(MODELS)
    return palette[i % len(palette)], SYMBOLS[i % len(SYMBOLS)]


def error_figure(pca: dict[int, float], points: dict[str, list[tuple[int, float, str]]]) -> go.Figure:
    """PCA's closed-form curve (k → MSE), and each model's best finished runs as points (lab.curve_points)."""
    fig = go.Figure(go.Scatter(x=list(pca), y=list(pca.values()), name="PCA (closed form)", mode="lines+markers",
                               line=dict(color=PCA_COLOUR), marker=dict(size=5)))
    for model, pts in points.items():
        k, mse, ids = zip(*pts)
        colour, symbol = model_style(model)
        fig.add_trace(go.Scatter(x=k, y=mse, name=label(model), mode="lines+markers", customdata=ids,
                                 hovertemplate="latent %{x}: MSE %{y:.4f}<br>run %{customdata}<extra></extra>",
                                 marker=dict(size=11, symbol=symbol, color=colour),
                                 line=dict(color=colour, dash="dot", width=1)))
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=10),
                      title=dict(text="Test reconstruction error against latent size", font_size=14),
                      xaxis=dict(type="log", title="latent size k", tickvals=list(pca)),
                      yaxis=dict(title="test MSE per pixel", rangemode="tozero"),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"))
    return fig


def angle_figure(cos_ae: np.ndarray, cos_random: np.ndarray) -> go.Figure:
    i = np.arange(1, len(cos_ae) + 1)
    fig = go.Figure([go.Bar(x=i, y=cos_ae, name="linear AE vs PCA", marker_color=LINEAR_COLOUR),
                     go.Bar(x=i, y=cos_random, name="random subspace vs PCA (chance)", marker_color=CHANCE_COLOUR)])
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10), barmode="group",
                      title=dict(text="cos θᵢ between the linear AE's decoder subspace and PCA's", font_size=14),
                      xaxis=dict(title="i (smallest angle first)", dtick=1 if len(i) <= 32 else None),
                      yaxis=dict(title="cos θᵢ", range=[0, 1.05]),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"))
    return fig
