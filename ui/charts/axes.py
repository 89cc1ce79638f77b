"""Axes every chart shares: log-scale ticks people can read.

Plotly's own log ticks label the minor ticks with their leading digit alone ("2, 0.1, 9 8 7 6 …"),
cramped and ambiguous. `log_axis` puts ticks at 1, 2 and 5 times a power of ten (every power of ten
when the data span many decades; 1 to 9 when they span less than one), each labelled in full.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

MAX_TICKS = 7


def log_ticks(values: Iterable[float]) -> tuple[list[float], list[str]]:
    """(tick values, their labels) for a log axis over the positive finite `values`; ([], []) without any.

    The finest of 1–9, 1-2-5 and 1 per power of ten that gives at most MAX_TICKS ticks in the data's
    range (every other power of ten past that); evenly spaced round numbers when the data span too
    little of a decade for two of those.
    """
    vs = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v) and v > 0]
    if not vs:
        return [], []
    lo, hi = min(vs), max(vs)
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    shown: list[float] = []
    for mantissas in ((1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 5), (1,)):
        ticks = (m * 10.0 ** e for e in range(first, last + 1) for m in mantissas)
        shown = [t for t in ticks if lo / 1.05 <= t <= hi * 1.05]
        if len(shown) <= MAX_TICKS:
            break
    if len(shown) > MAX_TICKS:  # very many decades: every n-th power of ten
        shown = shown[::math.ceil(len(shown) / MAX_TICKS)]
    if len(shown) < 2:
        shown = _round_steps(lo, hi)
    return shown, [_label(t) for t in shown]


def _round_steps(lo: float, hi: float, n: int = 4) -> list[float]:
    """About n evenly spaced round numbers (1, 2 or 5 × 10^k apart) from lo to hi."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    step = min((m * 10.0 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10)), key=lambda s: abs(s - raw))
    start = math.ceil(lo / step) * step
    return [round(start + i * step, 12) for i in range(int((hi - start) / step + 1e-9) + 1)]


def _label(v: float) -> str:
    """0.02, 0.5, 3, 180, 2e-5: short, and never just a leading digit."""
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        mantissa, exponent = f"{v:.2e}".split("e")
        return f"{float(mantissa):g}e{int(exponent)}"
    return f"{v:.4g}"


def log_axis(values: Iterable[float], **layout) -> dict:
    """A plotly log axis over `values` with log_ticks' ticks (and any other axis settings in `layout`)."""
    tickvals, ticktext = log_ticks(values)
    axis = {"type": "log", **layout}
    if tickvals:
        axis.update(tickvals=tickvals, ticktext=ticktext)
    return axis
