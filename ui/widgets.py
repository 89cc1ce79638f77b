"""Small widget helpers: the options of a slider over values that span decades."""

from __future__ import annotations

import numpy as np

STEPS = 200  # options a log-spaced slider offers


def log_grid(values, n: int = STEPS) -> list[float]:
    """About n options from the lowest value to the highest, evenly spaced in log (reconstruction errors
    spread over decades), rounded to 3 significant digits so a link stays short."""
    v = np.asarray(values, dtype=np.float64)
    hi = float(v.max()) if v.max() > 0 else 1.0
    lo = float(v.min()) if v.min() > 0 else hi * 1e-4
    grid = np.geomspace(lo, hi, n) if hi > lo else np.array([lo])
    return sorted({float(f"{g:.3g}") for g in grid})


def snap(grid: list[float], value: float) -> float:
    """The option of a log grid nearest `value` (in log, the slider's own spacing)."""
    g = np.asarray(grid)
    return float(g[np.argmin(np.abs(np.log(g) - np.log(max(value, 1e-300))))])
