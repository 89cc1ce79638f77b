"""Loss curves: one run's (the run panel) and several runs overlaid (Train's comparison)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.colors import qualitative

from engine.runs import MetricsLog
from ui.charts.axes import log_axis

GAN_LOSSES = {"train/d_loss": "D loss", "train/g_loss": "G loss"}  # a GAN run's two losses (a WGAN's critic too)
LOSS_NAMES = {"train/loss": "train loss", "test/mse": "test MSE"}


def _positive(log: MetricsLog, key: str, x: str = "step") -> list[tuple[float, float]]:
    """(x, value) of `key` where the value is > 0: what a log axis can draw."""
    return [(at, v) for at, v in zip(*log.series(key, x)) if v > 0]


def _mode(points) -> str:
    return "lines+markers" if len(points) < 3 else "lines"


def loss_figure(records) -> go.Figure | None:
    """train/loss and test/mse against step, log scale; None before the first log line.

    A VAE's loss is a sum per image (nats) while the MSE is per pixel: when the two differ by more
    than 10×, the test MSE gets its own axis on the right rather than a flat line at the bottom.
    A GAN run has no single loss: its discriminator's and its generator's, on a linear axis (a
    minimax G loss and a WGAN critic loss are negative).
    """
    log = MetricsLog(records)
    if log.has(*GAN_LOSSES):
        return _gan_loss_figure(log)
    series = {key: pts for key in LOSS_NAMES if (pts := _positive(log, key))}
    if not series:
        return None
    medians = [sorted(v for _, v in pts)[len(pts) // 2] for pts in series.values()]
    two_axes = len(medians) == 2 and max(medians) / min(medians) > 10
    fig = go.Figure()
    for key, points in series.items():
        steps, values = zip(*points)
        fig.add_trace(go.Scatter(x=steps, y=values, name=LOSS_NAMES[key], mode=_mode(points),
                                 yaxis="y2" if two_axes and key == "test/mse" else "y"))
    left = [v for key, pts in series.items() if not (two_axes and key == "test/mse") for _, v in pts]
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=30, b=10), title=dict(text="Loss", font_size=14),
                      xaxis_title="step",
                      yaxis=log_axis(left, title="train loss" if two_axes else "loss (log scale)"),
                      legend=dict(orientation="h", y=1.12, x=1, xanchor="right"))
    if two_axes:
        fig.update_layout(yaxis2=log_axis([v for _, v in series["test/mse"]], title="test MSE", overlaying="y",
                                          side="right", showgrid=False))
    return fig


def _gan_loss_figure(log: MetricsLog) -> go.Figure | None:
    fig = go.Figure()
    for key, name in GAN_LOSSES.items():
        steps, values = log.series(key)
        if steps:
            fig.add_trace(go.Scatter(x=steps, y=values, name=name, mode=_mode(steps)))
    if not fig.data:
        return None
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=30, b=10), title=dict(text="Losses", font_size=14),
                      xaxis_title="step", legend=dict(orientation="h", y=1.12, x=1, xanchor="right"))
    return fig


def compare_figure(series: dict[str, list[dict]], x: str = "step") -> go.Figure | None:
    """Runs overlaid: test MSE (top) and train loss (bottom) against `x` ("step" or "elapsed"), log y.

    One colour and one legend entry per run. A run with no curve but a final test MSE (PCA, fitted
    in closed form) is drawn as a dotted level line across the others: the baseline to beat.
    The two rows have their own axes because a VAE's loss is nats per image, not MSE per pixel.
    """
    from plotly.subplots import make_subplots

    logs = {rid: MetricsLog(records) for rid, records in series.items()}
    curves = {rid: {k: _positive(log, k, x) for k in ("test/mse", "train/loss")} for rid, log in logs.items()}
    xs = [px for c in curves.values() for pts in c.values() for px, _ in pts]
    span = (min(xs), max(xs)) if xs else (0, 1)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("test MSE (per pixel)", "train loss (the objective)"))
    drawn = 0
    for i, (rid, c) in enumerate(curves.items()):
        color = qualitative.Plotly[i % len(qualitative.Plotly)]
        final = logs[rid].last("eval/mse")
        final = final if final and final > 0 else None
        test = c["test/mse"] or ([(span[0], final), (span[1], final)] if final else [])
        for row, pts, dash in ((1, test, "dot" if not c["test/mse"] else None), (2, c["train/loss"], None)):
            if not pts:
                continue
            px, py = zip(*pts)
            fig.add_trace(go.Scatter(x=px, y=py, name=rid, legendgroup=rid, showlegend=row == 1 or not test,
                                     mode=_mode(pts), line=dict(color=color, dash=dash)), row=row, col=1)
            drawn += 1
    if not drawn:
        return None
    for row in (1, 2):
        fig.update_yaxes(**log_axis([v for t in fig.data if t.yaxis == ("y" if row == 1 else "y2") for v in t.y]),
                         row=row, col=1)
    fig.update_xaxes(title_text="step" if x == "step" else "seconds of training", row=2, col=1)
    fig.update_layout(height=480, margin=dict(l=10, r=10, t=40, b=10), legend=dict(title_text="run"))
    return fig
