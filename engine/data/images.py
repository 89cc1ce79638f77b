"""Tensors ↔ pictures: grids of 28×28 images as PNG bytes (Pillow).

`grid_png` is the one way images become a PNG: a single image, a row, or a grid of a batch, from
numpy or torch, with or without the channel axis, upscaled by repeating pixels so a 28×28 digit
stays crisp in the browser instead of being blurred by the page's own resampling.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image


def as_images(x) -> torch.Tensor:
    """(H, W), (B, H, W) or (B, 1, H, W), numpy or torch → float32 (B, 1, H, W) on the CPU."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().float().cpu()
    if t.dim() == 2:
        t = t[None, None]
    elif t.dim() == 3:
        t = t[:, None]
    if t.dim() != 4 or t.shape[1] != 1:
        raise ValueError(f"expected grey images (B, 1, H, W), (B, H, W) or (H, W), got shape {tuple(t.shape)}")
    return t


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 1, H, W) or (H, W) floats in [0, 1] → uint8 array of the same layout without the channel."""
    x = x.detach().float().cpu().clamp(0, 1)
    if x.dim() == 4:
        x = x[:, 0]
    return (x.numpy() * 255 + 0.5).astype(np.uint8)


def grid(x: torch.Tensor, ncol: int | None = None, pad: int = 2, scale: int = 1) -> np.ndarray:
    """Tile images x (B, 1, H, W) into one uint8 array, row by row, with `pad` dark pixels between."""
    imgs = to_uint8(as_images(x))  # (B, H, W)
    b, h, w = imgs.shape
    ncol = ncol or math.ceil(math.sqrt(b))
    nrow = math.ceil(b / ncol)
    out = np.zeros((nrow * (h + pad) + pad, ncol * (w + pad) + pad), np.uint8)
    for i, img in enumerate(imgs):
        r, c = divmod(i, ncol)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = img
    return upscale(out, scale)


def upscale(array: np.ndarray, scale: int) -> np.ndarray:
    """Each pixel repeated scale × scale times (no smoothing): (H, W[, C]) → (H·s, W·s[, C])."""
    if scale <= 1:
        return array
    return np.repeat(np.repeat(array, scale, 0), scale, 1)


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def grid_png(x, ncol: int | None = None, scale: int = 1, pad: int = 2) -> bytes:
    """A batch of images (B, H, W) or (B, 1, H, W) in [0, 1], tiled `ncol` to a row, as PNG bytes."""
    return png_bytes(grid(x, ncol=ncol, pad=pad, scale=scale))


def image_png(x, scale: int = 1) -> bytes:
    """One image (H, W) as itself, or a row of images (B, H, W) side by side, as PNG bytes."""
    if np.ndim(x) == 2:
        return png_bytes(upscale(to_uint8(as_images(x)[0, 0]), scale))
    t = as_images(x)
    return grid_png(t, ncol=len(t), scale=scale)
