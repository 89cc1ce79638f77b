"""The Draw page's figures: the code z as bars, and the image's score among the test images'."""

from __future__ import annotations

import plotly.graph_objects as go


def draw_latent_figure(z, height: int = 240) -> go.Figure:
    """A code z (latent_dim,) as one bar per dimension."""
    fig = go.Figure(go.Bar(x=list(range(len(z))), y=z, marker_color=["#e4572e" if v < 0 else "#2e86ab" for v in z],
                           hovertemplate="z[%{x}] = %{y:.3f}<extra></extra>"))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="latent dimension",
                      yaxis_title="z", bargap=0.15)
    return fig


def draw_score_figure(test_errors, score: float, height: int = 240) -> go.Figure:
    """The test split's reconstruction errors as a histogram, with a line at this image's score."""
    fig = go.Figure(go.Histogram(x=test_errors, nbinsx=40, marker_color="#9aa5b1", name="test images",
                                 hovertemplate="MSE %{x}<br>%{y} test images<extra></extra>"))
    fig.add_vline(x=score, line_color="#e4572e", line_width=3, annotation_text="this image",
                  annotation_position="top")
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="reconstruction MSE",
                      yaxis_title="test images", showlegend=False)
    return fig
