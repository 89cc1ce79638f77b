"""The Anomaly detection page's charts: the two groups' score histograms with τ, and the ROC curve."""

from __future__ import annotations

import math

import plotly.graph_objects as go

from engine.eval.roc import Evaluation
from engine.lab.anomaly import AnomalyReport

NORMAL, ANOMALY = "#1f77b4", "#d62728"  # the two groups' colours on every chart


def histogram_figure(result: AnomalyReport, tau: float) -> go.Figure:
    """Each group's share of images per score bin, τ as a dashed line, the flagged side shaded."""
    h, ev = result.hist, result.evaluation
    lo, hi = float(h["edges"][0]), float(h["edges"][-1])
    # a log axis takes its range and annotation positions in log10 units
    at = math.log10 if h["log"] else (lambda v: v)
    xaxis = dict(type="log" if h["log"] else "linear", title="s(x)" + (", log scale" if h["log"] else ""),
                 range=[at(lo), at(hi)], dtick="D2" if h["log"] else None, tickformat="~g")
    top = max(float(h["normal"].max()) / ev.n_normal, float(h["anomaly"].max()) / ev.n_anomaly)
    fig = go.Figure()
    fig.add_vrect(x0=tau, x1=hi, fillcolor="rgba(0, 0, 0, 0.06)", line_width=0)
    fig.add_annotation(x=at(tau), y=1, yref="paper", text=" flagged: s(x) > τ", showarrow=False, xanchor="left",
                       yanchor="top", font_size=11)
    for group, colour, counts, total in (("normal", NORMAL, h["normal"], ev.n_normal),
                                          ("anomalous", ANOMALY, h["anomaly"], ev.n_anomaly)):
        fig.add_bar(x=h["centers"], y=counts / total, width=h["widths"], name=f"{group} ({total:,})",
                    marker_color=colour, opacity=0.6)
    fig.add_vline(x=tau, line_dash="dash", line_color="black")
    fig.update_layout(barmode="overlay", bargap=0, height=360, margin=dict(l=10, r=10, t=40, b=10),
                      title=dict(text="Reconstruction error of the test images", font_size=14), xaxis=xaxis,
                      yaxis=dict(title="share of the group", range=[0, 1.2 * top]),  # room for the label
                      legend=dict(orientation="h", y=-0.22, x=0.5, xanchor="center", yanchor="top"))
    return fig


def roc_figure(ev: Evaluation, point: dict) -> go.Figure:
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"), name="chance")
    fig.add_scatter(x=ev.fpr, y=ev.tpr, mode="lines", line=dict(color=ANOMALY), name="ROC", fill="tozeroy",
                    fillcolor="rgba(214, 39, 40, 0.08)")
    fig.add_scatter(x=[point["fpr"]], y=[point["recall"]], mode="markers", name="τ",
                    marker=dict(size=12, color="black", symbol="circle-open", line_width=2))
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10), showlegend=False,
                      title=dict(text=f"ROC curve · AUROC {ev.auroc:.3f}", font_size=14),
                      xaxis=dict(title="false positive rate", range=[-0.02, 1.02]),
                      yaxis=dict(title="true positive rate (recall)", range=[-0.02, 1.02]))
    return fig
