"""Images on a page: 28×28 digits shown crisply, error maps in colour, snapshots read from a run folder."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import streamlit as st
from plotly.colors import hex_to_rgb, sequential

from engine.data.images import image_png, png_bytes, upscale

DRAWINGS = Path(__file__).resolve().parent.parent / "assets" / "drawings"


def png_text(png: bytes) -> str:
    """PNG bytes as base64 text, the payload of a data: URL (the explorer's strip, the Draw page's block)."""
    return base64.b64encode(png).decode("ascii")


def show_image(x, caption: str | None = None, scale: int = 6, container=st) -> None:
    """A 28×28 image (or a row of them) in [0, 1], upscaled crisply."""
    container.image(image_png(x, scale=scale), caption=caption, output_format="PNG")  # JPEG would smear 28×28 digits


def read_image(path: Path) -> bytes | None:
    """A PNG's bytes, or None when it is gone (a run deleted or resumed meanwhile)."""
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


_INFERNO = np.array([hex_to_rgb(c) for c in sequential.Inferno], dtype=np.float64)  # (S, 3) colour stops


def error_png(error: np.ndarray, scale: int = 6, vmax: float = 1.0) -> bytes:
    """An error map |x − x̂| (H, W) as a colour PNG (Inferno: black = 0, yellow = vmax), upscaled crisply.

    A fixed scale (0 to vmax) keeps maps of different models comparable. A PNG rather than a chart:
    it costs a millisecond per stroke and lines up with the other 28×28 images.
    """
    stops = _INFERNO
    t = np.clip(np.asarray(error, dtype=np.float64) / vmax, 0.0, 1.0) * (len(stops) - 1)  # (H, W) in [0, S − 1]
    lo = np.floor(t).astype(int)
    hi = np.minimum(lo + 1, len(stops) - 1)
    frac = (t - lo)[..., None]
    rgb = (stops[lo] * (1 - frac) + stops[hi] * frac + 0.5).astype(np.uint8)  # (H, W, 3), linear between stops
    return png_bytes(upscale(rgb, scale))


def example_drawings() -> list[str]:
    """The names of the example drawings in assets/drawings/ (their file names without .png), sorted."""
    return sorted(p.stem for p in DRAWINGS.glob("*.png"))


def example_bytes(name: str) -> bytes:
    """An example drawing's PNG bytes; ValueError for a name that is not one (a crafted link)."""
    if name not in example_drawings():
        raise ValueError(f"there is no example drawing {name!r}; the examples are {', '.join(example_drawings())}")
    return (DRAWINGS / f"{name}.png").read_bytes()


def example_picture(name: str) -> np.ndarray:
    """An example drawing as a grey image (H, W) in [0, 1], to show beside what it becomes."""
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(example_bytes(name))) as im:
        return np.asarray(im.convert("L").resize((140, 140)), dtype=np.float32) / 255.0
