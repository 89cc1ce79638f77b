"""The Noise lab's chart: each model's PSNR against the noise level, beside the noisy input's own."""

from __future__ import annotations

import plotly.graph_objects as go

from engine.data.noise import LABELS, LEVEL_HELP
from engine.lab.noise_lab import CHART_IMAGES, NOISY

NOISE_LABELS = LABELS  # engine.data.noise names each kind
COLOURS = {"Denoising AE": "#2ca02c", "Autoencoder": "#1f77b4", "PCA": "#ff7f0e", NOISY: "#7f7f7f"}


def psnr_figure(levels, table: dict, level: float, kind: str) -> go.Figure:
    fig = go.Figure()
    for name, values in table.items():
        fig.add_trace(go.Scatter(x=levels, y=values, name=name, mode="lines+markers",
                                 line=dict(color=COLOURS.get(name), dash="dot" if name == NOISY else None)))
    fig.add_vline(x=level, line_dash="dash", line_color="#999", annotation_text="this image's level",
                  annotation_position="top right")
    fig.update_layout(height=330, margin=dict(l=10, r=10, t=40, b=10), yaxis_title="PSNR (dB)",
                      title=dict(text=f"PSNR against {NOISE_LABELS[kind]} noise level ({CHART_IMAGES} test images)",
                                 font_size=14),
                      xaxis_title=f"level: {LEVEL_HELP[kind]}",
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"))
    return fig
