"""Tensors ↔ pictures: grids of 28×28 images as PNG bytes (Pillow)."""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 1, H, W) or (H, W) floats in [0, 1] → uint8 array of the same layout without the channel."""
    x = x.detach().float().cpu().clamp(0, 1)
    if x.dim() == 4:
        x = x[:, 0]
    return (x.numpy() * 255 + 0.5).astype(np.uint8)


def grid(x: torch.Tensor, ncol: int | None = None, pad: int = 2, scale: int = 1) -> np.ndarray:
    """Tile images x (B, 1, H, W) into one uint8 array, row by row, with `pad` dark pixels between."""
    imgs = to_uint8(x)  # (B, H, W)
    b, h, w = imgs.shape
    ncol = ncol or math.ceil(math.sqrt(b))
    nrow = math.ceil(b / ncol)
    out = np.zeros((nrow * (h + pad) + pad, ncol * (w + pad) + pad), np.uint8)
    for i, img in enumerate(imgs):
        r, c = divmod(i, ncol)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = img
    if scale > 1:
        out = np.kron(out, np.ones((scale, scale), np.uint8))
    return out


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def image_png(x, scale: int = 1) -> bytes:
    """One image (H, W) or a row of images (B, H, W), floats in [0, 1] (numpy or torch) → PNG bytes.

    Upscaled by repeating pixels (`scale`), so a 28×28 digit stays crisp in the browser instead of
    being blurred by the page's own resampling.
    """
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
    if t.dim() == 2:
        array = to_uint8(t)
        return png_bytes(np.kron(array, np.ones((scale, scale), np.uint8)) if scale > 1 else array)
    if t.dim() == 3:
        t = t[:, None]
    return png_bytes(grid(t, ncol=len(t), scale=scale))
