"""The Draw page's results as one block of HTML: each model's x, x̂ and error map, the code z, the nearest
training images, and the image's score among the test images'.

All of it is redrawn on every stroke. As Streamlit elements it was some 25 (columns, images, texts and two
plotly charts): the browser re-rendered each, and plotly remounted both charts, on every stroke, which
held the reconstruction ~50 ms behind the plain reference page of bench/bench_ui_latency.py
(2026-12-03). Here it is one st.html: one message and one DOM update. The images travel inline (data:
URIs of the 28×28 PNGs, ~300 bytes each, enlarged crisply by CSS), and so do the two bar charts, as SVG
images: st.html sanitises with DOMPurify's HTML profile (no inline SVG), and bars as <div>s cost the
browser ~10 ms a stroke in that sanitiser. The style sheet, STYLE, goes on the page once (st.html of
only a <style> lands outside the layout), not with every stroke, so a stroke restyles nothing.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ui.images import png_text

NEGATIVE, POSITIVE, MUTED = "#e4572e", "#2e86ab", "#9aa5b1"
SCORE_BINS = 40

STYLE = """<style>
.ll-draw { --ll-line: rgba(128, 128, 128, 0.45); }
.ll-draw h3 { font-size: 1.5rem; font-weight: 600; line-height: 1.2; margin: 0.4rem 0 0.8rem 0; }  /* as st.subheader */
.ll-draw .ll-row { display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; margin-bottom: 0.8rem; }
.ll-draw figure { margin: 0; text-align: center; }
.ll-draw figcaption { font-size: 0.85rem; opacity: 0.7; }
.ll-draw img { image-rendering: pixelated; display: block; }
.ll-draw .ll-digit { width: 10.5rem; height: 10.5rem; }  /* rem: projector mode enlarges them with the text */
.ll-draw .ll-text { flex: 1 1 14rem; line-height: 1.6; }
.ll-draw .ll-note { opacity: 0.6; }
.ll-draw .ll-cols { display: flex; flex-wrap: wrap; gap: 1.5rem; }
.ll-draw .ll-cols > section { flex: 1 1 16rem; min-width: 0; }
.ll-draw .ll-plot { position: relative; height: 10rem; border-bottom: 1px solid var(--ll-line); }
.ll-draw img.ll-bars { width: 100%; height: 100%; image-rendering: auto; }
.ll-draw .ll-zero { position: absolute; left: 0; right: 0; top: 50%; border-top: 1px solid var(--ll-line); }
.ll-draw .ll-mark span { position: absolute; top: -1.3rem; left: 4px; white-space: nowrap; font-size: 0.8rem; }
.ll-draw .ll-mark.ll-far span { left: auto; right: 4px; }
.ll-draw .ll-axis { display: flex; justify-content: space-between; font-size: 0.8rem; opacity: 0.7; }
.ll-draw .ll-neighbours { width: 100%; max-width: 26rem; height: auto; }
.ll-draw .ll-axis-title { text-align: center; font-size: 0.8rem; opacity: 0.7; }
""" + (
    f".ll-draw .ll-mark {{ position: absolute; top: 0; bottom: 0; width: 3px; margin-left: -1px; "
    f"background: {NEGATIVE}; }}\n</style>")


def data_uri(png: bytes) -> str:
    """PNG bytes as a data: URI, for an <img> inside st.html."""
    return "data:image/png;base64," + png_text(png)


def _digit(png: bytes, caption: str, alt: str, css: str = "ll-digit") -> str:
    """A 28×28 image with its short caption (x̂) and a longer alt text (whose x̂ it is)."""
    return (f'<figure><img class="{css}" src="{data_uri(png)}" alt="{html.escape(alt)}">'
            f'<figcaption>{html.escape(caption)}</figcaption></figure>')


def _bars_svg(tops, heights, colours) -> str:
    """Bars as an SVG image, one unit wide each over a 0–100 tall box: bar i from y=tops[i], heights[i] tall."""
    rects = "".join(f'<rect x="{i + 0.1:g}" y="{t:.3f}" width="0.8" height="{h:.3f}" fill="{c}"/>'
                    for i, (t, h, c) in enumerate(zip(tops, heights, colours, strict=True)))
    n = max(len(tops), 1)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{8 * n}" height="160" viewBox="0 0 {n} 100" '
            f'preserveAspectRatio="none">{rects}</svg>')


def svg_uri(svg: str) -> str:
    """An SVG document as a data: URI: st.html's sanitiser keeps an <img> of it, not inline <svg>."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")


def latent_bars(z) -> str:
    """A code z (latent_dim,) as one bar per dimension, up for positive and down for negative values.

    The axis is symmetric: the largest |z_i| reaches the top (or the bottom) edge. The values are the
    image's tooltip.
    """
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    size = np.where(np.isfinite(z), np.abs(z), 0.0)  # a non-finite value gets no bar (its tooltip says nan)
    top = float(size.max()) if z.size else 0.0
    heights = size * (50.0 / top) if top > 0 else np.zeros_like(z)  # from the middle line, of 100
    tops = np.where(z >= 0, 50.0 - heights, 50.0)
    svg = _bars_svg(tops.tolist(), heights.tolist(), [POSITIVE if v >= 0 else NEGATIVE for v in z])
    label = f"{top:.2f}" if top > 0 else "0"
    values = ", ".join(f"{v:.2f}" for v in z.tolist())
    return (f'<div class="ll-plot"><div class="ll-zero"></div><img class="ll-bars" src="{svg_uri(svg)}" '
            f'alt="The code z: {z.size} values, largest |z| {label}" title="z = ({values})"></div>'
            f'<div class="ll-axis"><span>0</span><span>{max(z.size - 1, 0)}</span></div>'
            f'<div class="ll-axis-title">latent dimension · bars up to ±{label}</div>')


@dataclass(frozen=True)
class Histogram:
    """Counts of values in equal bins over their own range [lo, hi], and where one score falls on that axis."""

    counts: np.ndarray  # (bins,)
    edges: np.ndarray  # (bins + 1,)
    at: float  # the score's position along the axis, 0 = lo, 1 = hi, clipped to the plot; nan for no score
    beyond: int  # -1: the score is below lo, 1: above hi (its mark is pinned to that edge), 0: on the axis

    @classmethod
    def of(cls, values, score: float, bins: int = SCORE_BINS) -> Histogram:
        """The histogram of the finite `values`. The bins span the values alone, as a far-off score would
        squeeze them into a few bars; such a score is marked at the plot's edge instead."""
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        values = values[np.isfinite(values)]
        lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
        if hi <= lo:
            lo, hi = lo - 0.5 * (abs(lo) or 1.0), hi + 0.5 * (abs(hi) or 1.0)
        counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
        if not math.isfinite(score):
            return cls(counts, edges, math.nan, 0)
        at = (score - lo) / (hi - lo)
        return cls(counts, edges, min(max(at, 0.0), 1.0), -1 if at < 0 else 1 if at > 1 else 0)


def score_histogram(test_errors, score: float, bins: int = SCORE_BINS) -> str:
    """The test split's reconstruction errors as a histogram, with a line at this image's score."""
    h = Histogram.of(test_errors, score, bins)
    peak = int(h.counts.max()) if h.counts.size else 0
    heights = (100.0 * h.counts / peak) if peak else np.zeros(len(h.counts))
    svg = _bars_svg((100.0 - heights).tolist(), heights.tolist(), [MUTED] * len(heights))
    mark, about = "", ""
    if math.isfinite(h.at):
        far = " ll-far" if h.at > 0.75 else ""  # the label on the line's left, inside the plot
        label = {0: "this image", 1: f"this image: {score:.4f} →", -1: f"← this image: {score:.4f}"}[h.beyond]
        mark = (f'<div class="ll-mark{far}" style="left:{100.0 * h.at:.4g}%" title="this image: MSE {score:.4f}">'
                f'<span>{label}</span></div>')
        about = f", and this image's {score:.4f}"
    return (f'<div class="ll-plot"><img class="ll-bars" src="{svg_uri(svg)}" alt="Reconstruction MSE of '
            f'{int(h.counts.sum())} test images{about}" title="{bins} bins of '
            f'{(h.edges[1] - h.edges[0]):.4f}; the tallest holds {peak} test images">{mark}</div>'
            f'<div class="ll-axis"><span>{h.edges[0]:.4f}</span><span>{h.edges[-1]:.4f}</span></div>'
            f'<div class="ll-axis-title">reconstruction MSE · tallest bar {peak} test images</div>')


@dataclass(frozen=True)
class ModelRow:
    """One model's line of results: who it is, and what it made of x."""

    run_id: str
    model: str  # the model's registry name, e.g. conv_ae
    x_hat_png: bytes
    error_png: bytes
    mse: float
    percent: str  # the share of test images it reconstructs better, written for people: "73%", or "–"


def results_html(*, x_png: bytes, rows: Sequence[ModelRow], first_run_id: str, latent_dim: int, z,
                 neighbours_png: bytes, distances, neighbour_classes: Sequence[str] | None, test_errors,
                 score: float) -> str:
    """The whole block under the canvas: a row per model (x, x̂, |x − x̂|, its score), then the first model's
    code z, its nearest training images and the score histogram. Styled by STYLE, put on the page apart."""
    run = html.escape(first_run_id)
    x = _digit(x_png, "x", "x: the input")  # the same in every row
    lines = []
    for r in rows:
        x_hat = _digit(r.x_hat_png, "x̂", f"x̂: {r.run_id}'s reconstruction", "ll-digit ll-xhat")
        error = _digit(r.error_png, "|x − x̂|", f"|x − x̂|: {r.run_id}'s error map")
        lines.append(
            f'<div class="ll-row">{x}{x_hat}{error}'
            f'<div class="ll-text"><strong class="ll-run">{html.escape(r.run_id)}'
            f'</strong> · {html.escape(r.model)}<br>MSE <strong>{r.mse:.4f}</strong> · higher than '
            f'{html.escape(r.percent)} of the test images<br>'
            f'<span class="ll-note">error map: black = 0, yellow = 1</span></div></div>')
    near = "distance ‖z − zᵢ‖: " + ", ".join(f"{d:.2f}" for d in np.asarray(distances).tolist())
    if neighbour_classes:
        near += "<br>class: " + ", ".join(html.escape(c) for c in neighbour_classes)
    return (f'<div class="ll-draw"><h3>Reconstructions</h3>{"".join(lines)}<div class="ll-cols">'
            f'<section><p><strong>The code z</strong> ({run}, latent_dim {latent_dim})</p>{latent_bars(z)}</section>'
            f'<section><p><strong>Nearest training images</strong> in latent space</p>'
            f'<img class="ll-neighbours" src="{data_uri(neighbours_png)}" alt="the nearest training images">'
            f'<p class="ll-note">{near}</p></section>'
            f'<section><p><strong>Anomaly score</strong> among the test images ({run})</p>'
            f'{score_histogram(test_errors, score)}</section></div></div>')

