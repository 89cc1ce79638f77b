"""The Latent map's figures: the map of codes coloured by class, and its replay across checkpoints."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go


def class_colours(n: int) -> list[str]:
    """One colour per class, the same on every map (10 classes: plotly's default palette)."""
    from plotly.colors import qualitative

    return list(qualitative.Plotly if n <= 10 else qualitative.Alphabet)


def _class_traces(trace, xy, y, classes, index, size: float, group=None):
    """One marker trace per class (a legend entry each); customdata = the test image's index.

    group: test indices to show as selected (plotly dims the other markers), or None.
    """
    labels = [c for c in range(len(classes)) if (y == c).any()] if len(classes) else []
    colours = class_colours(len(classes))
    groups = ([(classes[c], y == c, colours[c % len(colours)]) for c in labels]
              or [("images", np.ones(len(y), bool), "#636efa")])
    chosen = None if group is None else np.isin(index, list(group))
    return [trace(x=xy[m, 0], y=xy[m, 1], mode="markers", name=name, customdata=index[m],
                  marker=dict(size=size, color=colour, opacity=0.8),
                  selectedpoints=None if chosen is None else np.flatnonzero(chosen[m]).tolist(),
                  hovertemplate="test image #%{customdata}<extra>%{fullData.name}</extra>")
            for name, m, colour in groups]


def map_figure(xy, y, classes, index, title: str, selected=None, drawing=None, group=None, equal_axes: bool = False,
               height: int = 560) -> go.Figure:
    """The latent map: WebGL markers coloured by class, a ring on the selected image, a star on the drawing.

    xy (N, 2) positions, y (N,) labels, index (N,) test indices; selected / drawing: (2,) positions or None;
    group: the test indices of a box/lasso selection (drawn as selected); equal_axes: one unit is as long
    on both axes (PCA, whose axes are distances in z; UMAP and t-SNE axes have no units).
    """
    fig = go.Figure(_class_traces(go.Scattergl, xy, y, classes, index, 6, group))
    if selected is not None:
        fig.add_trace(go.Scattergl(x=[selected[0]], y=[selected[1]], mode="markers", name="selected",
                                   customdata=[-1], hoverinfo="skip", showlegend=False,
                                   marker=dict(size=18, symbol="circle-open", color="black", line_width=3)))
    if drawing is not None:
        fig.add_trace(go.Scattergl(x=[drawing[0]], y=[drawing[1]], mode="markers", name="your drawing",
                                   customdata=[-1], hovertemplate="your drawing<extra></extra>",
                                   marker=dict(size=22, symbol="star", color="gold",
                                               line=dict(color="black", width=1.5))))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), title=dict(text=title, font_size=14),
                      legend=dict(title="class", itemsizing="constant"), uirevision=title, dragmode="pan",
                      xaxis=dict(showticklabels=False, zeroline=False),
                      yaxis=dict(showticklabels=False, zeroline=False, scaleanchor="x" if equal_axes else None))
    return fig


def replay_figure(frames, steps, y, classes, height: int = 520) -> go.Figure:
    """An animation of maps (one (N, 2) array per checkpoint step) with a play button and a step slider."""
    every = np.concatenate(frames)
    lo, hi = every.min(0), every.max(0)
    pad = 0.05 * (hi - lo) + 1e-6
    index = np.arange(len(y))
    fig = go.Figure(data=_class_traces(go.Scatter, frames[0], y, classes, index, 5),
                    frames=[go.Frame(data=_class_traces(go.Scatter, xy, y, classes, index, 5), name=str(s))
                            for xy, s in zip(frames, steps)])
    play = dict(frame=dict(duration=700, redraw=False), transition=dict(duration=500), fromcurrent=True)
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=10, b=10), legend=dict(title="class", itemsizing="constant"),
        xaxis=dict(range=[lo[0] - pad[0], hi[0] + pad[0]], showticklabels=False, zeroline=False),
        yaxis=dict(range=[lo[1] - pad[1], hi[1] + pad[1]], showticklabels=False, zeroline=False),
        updatemenus=[dict(type="buttons", direction="left", x=0, y=-0.02, xanchor="left", yanchor="top",
                          buttons=[dict(label="▶ Play", method="animate", args=[None, play]),
                                   dict(label="❚❚ Pause", method="animate",
                                        args=[[None], dict(mode="immediate", frame=dict(duration=0))])])],
        sliders=[dict(active=0, x=0.2, len=0.8, y=0, yanchor="top", pad=dict(t=30),
                      currentvalue=dict(prefix="step ", xanchor="right"),
                      steps=[dict(label=f"{s:,}", method="animate",
                                  args=[[str(s)], dict(mode="immediate", frame=dict(duration=0, redraw=False),
                                                       transition=dict(duration=300))]) for s in steps])])
    return fig
