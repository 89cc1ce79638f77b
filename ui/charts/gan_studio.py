"""The GAN studio's charts: the timeline, the class histogram, learning rates,
the slow-motion history. Plotly figures from the plain numbers engine/lab/gan_studio.py returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go
from plotly.colors import qualitative

from engine.lab.gan_studio import Frame
from engine.models import is_model
from engine.runs import MetricsLog
from ui.charts.axes import log_axis

# -- the timeline ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Curve:
    key: str  # the metrics.jsonl key
    label: str  # how a legend names it


@dataclass(frozen=True)
class Panel:
    title: str
    curves: tuple[Curve, ...]


def timeline_panels(model_name: str) -> list[Panel]:
    """The charts of the timeline, top to bottom, for a model: its losses, what D says, the judge's scores.

    A GAN's discriminator outputs a probability D(x) ∈ (0, 1); a WGAN's critic outputs an
    unbounded score f(x), and E f(x) − E f(G(z)) estimates the Wasserstein distance.
    """
    if is_model(model_name, wasserstein=True):
        losses = Panel("losses", (Curve("train/d_loss", "critic loss"), Curve("train/g_loss", "G loss"),
                                  Curve("train/gp", "gradient penalty")))
        outputs = Panel("critic scores", (Curve("train/critic_real", "f(x)"), Curve("train/critic_fake", "f(G(z))"),
                                          Curve("train/wasserstein", "W ≈ E f(x) − E f(G(z))"),
                                          Curve("test/critic_real", "f(x), test images")))
    else:
        losses = Panel("losses", (Curve("train/d_loss", "D loss"), Curve("train/g_loss", "G loss")))
        outputs = Panel("D(x) and D(G(z))", (Curve("train/d_real", "D(x)"), Curve("train/d_fake", "D(G(z))"),
                                             Curve("test/d_real", "D(x), test images")))
    return [losses, outputs,
            Panel("FID-style distance (lower is better)", (Curve("judge/fid", "FID"),)),
            Panel("inception-style score (higher is better)", (Curve("judge/inception_score", "IS"),)),
            Panel("distance to the nearest training image", (Curve("judge/nn_distance", "samples"),
                                                             Curve("judge/nn_distance_real", "real test images")))]


STEP_LINE = dict(line_color="#e4572e", line_width=2, line_dash="dot")


def _colour(i: int) -> str:
    return qualitative.Plotly[i % len(qualitative.Plotly)]


def timeline_figure(runs: dict[str, tuple[str, list[dict]]], step: int | None) -> go.Figure | None:
    """The runs' curves in rows sharing one step axis, with a line at the timeline's step.

    runs: {label (e.g. "A"): (model name, metrics records)}; the first run is drawn solid, the
    second dashed, a curve keeps its colour across runs. Rows without any data are left out;
    None when nothing has been logged yet.
    """
    from plotly.subplots import make_subplots

    panel_lists = {label: timeline_panels(model) for label, (model, _) in runs.items()}
    n_rows = max(len(p) for p in panel_lists.values())
    rows = []  # (title, [(label, curve index, curve, steps, values)])
    for i in range(n_rows):
        titles, traces = [], []
        for label, (_, records) in runs.items():
            panel = panel_lists[label][i]
            if panel.title not in titles:
                titles.append(panel.title)
            for j, curve in enumerate(panel.curves):
                xs, ys = MetricsLog(records).series(curve.key)
                if xs:
                    traces.append((label, j, curve, xs, ys))
        if traces:
            rows.append((" · ".join(titles), traces))
    if not rows:
        return None
    fig = make_subplots(rows=len(rows), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[title for title, _ in rows])
    many = len(runs) > 1
    for r, (_, traces) in enumerate(rows, start=1):
        legend = "legend" if r == 1 else f"legend{r}"  # one legend per row, beside it
        for label, j, curve, xs, ys in traces:
            dash = None if label == next(iter(runs)) else "dash"
            fig.add_trace(go.Scatter(x=xs, y=ys, name=f"{curve.label} ({label})" if many else curve.label,
                                     mode="lines+markers" if len(xs) < 3 else "lines", legend=legend,
                                     line=dict(color=_colour(j + 3 * (r - 1)), dash=dash, width=1.8)),
                          row=r, col=1)
        top = fig.layout[f"yaxis{r if r > 1 else ''}"].domain[1]
        fig.update_layout({legend: dict(x=1.01, y=top, xanchor="left", yanchor="top", font_size=11)})
    every = [x for _, traces in rows for *_, xs, _ in traces for x in xs]
    fig.update_xaxes(range=[min(every), max(max(every), 1)])
    fig.update_xaxes(title_text="step", row=len(rows), col=1)
    if step is not None:
        fig.add_vline(x=step, row="all", col=1, **STEP_LINE)
    fig.update_layout(height=90 + 125 * len(rows), margin=dict(l=10, r=10, t=40, b=10), hovermode="x unified",
                      uirevision="timeline")
    return fig


def class_hist_figure(hist: list[float], class_names: list[str], title: str, height: int = 240) -> go.Figure:
    """The share of the judged samples in each class, with a line at the uniform share 1/K."""
    k = len(hist)
    names = [str(c) for c in class_names[:k]] + [str(i) for i in range(len(class_names), k)]
    uniform = 1 / k
    colours = ["#e4572e" if v < uniform / 4 else "#2e86ab" for v in hist]  # (almost) never generated: red
    fig = go.Figure(go.Bar(x=names, y=hist, marker_color=colours,
                           hovertemplate="class %{x}: %{y:.1%} of the samples<extra></extra>"))
    fig.add_hline(y=uniform, line_dash="dot", line_color="#333", annotation_text=f"1/K = {uniform:.0%}",
                  annotation_position="top right")
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=36, b=10), title=dict(text=title, font_size=13),
                      yaxis=dict(tickformat=".0%", title="share of samples"), xaxis=dict(type="category"),
                      showlegend=False)
    return fig


def lr_figure(history: dict[str, tuple[list[int], list[float]]], step: int | None = None) -> go.Figure | None:
    """The generator's and the discriminator's learning rates as the log lines recorded them (log y)."""
    fig = go.Figure()
    for i, (key, name) in enumerate((("lr_g", "η_G (generator)"), ("lr_d", "η_D (discriminator)"))):
        xs, ys = history.get(key, ([], []))
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, name=name, mode="lines+markers" if len(xs) < 3 else "lines",
                                     line=dict(shape="hv", color=_colour(i), dash="dash" if i else None)))
    if not fig.data:
        return None
    if step is not None:
        fig.add_vline(x=step, **STEP_LINE)
    fig.update_layout(height=240, margin=dict(l=10, r=10, t=30, b=10), title=dict(text="Learning rates", font_size=14),
                      xaxis_title="step",
                      yaxis=log_axis([v for t in fig.data for v in t.y], title="learning rate (log scale)"),
                      legend=dict(orientation="h", y=1.15, x=1, xanchor="right"))
    return fig


def slow_motion_figure(frames: list[Frame], wasserstein: bool) -> go.Figure:
    """D(x) and D(G(z)) (a critic's f(x), f(G(z))) after each click, the click's action on the x axis."""
    marks = {"load": "loaded", "d": "D step", "g": "G step", "both": "D + G"}
    ticks = [f"{f.click}: {marks.get(f.action, f.action)}" for f in frames]
    real, fake = ("f(x)", "f(G(z))") if wasserstein else ("D(x)", "D(G(z))")
    fig = go.Figure([go.Scatter(x=ticks, y=[f.d_real for f in frames], name=real, mode="lines+markers",
                                line=dict(color=_colour(0))),
                     go.Scatter(x=ticks, y=[f.d_fake for f in frames], name=fake, mode="lines+markers",
                                line=dict(color=_colour(1)))])
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=30, b=10), xaxis=dict(type="category", title="click"),
                      yaxis=dict(range=None if wasserstein else [0, 1],
                                 title="critic score f (unbounded)" if wasserstein else "D's output: P(real)"),
                      title=dict(text="After each click", font_size=14),
                      legend=dict(orientation="h", y=1.15, x=1, xanchor="right"))
    return fig
