"""Corruptions of images in [0, 1], shared by denoising training and the Noise lab.

Every function is seeded through a `torch.Generator` (or a seed), so the same call gives the
same noisy image in the trainer, in a test and in the UI.

    gaussian     x̃ = clip(x + σ·ε, 0, 1),  ε ~ N(0, I)
    salt_pepper  each pixel, with probability p, becomes 0 or 1 (even odds)
    masking      each pixel, with probability p, becomes 0 (dropout of the input)
    block        one square of side ⌈level·28⌉ per image, at a random place, becomes 0 (occlusion)
    mixed        each image gets one of the four above, drawn at random, at a level drawn uniformly
                 from [0, level × that kind's MAX_LEVEL]: what a denoiser meets in the Noise lab
"""

from __future__ import annotations

import math
import typing
from typing import Literal

import torch

from engine.device import random_tensor

NoiseKind = Literal["none", "gaussian", "salt_pepper", "masking", "block", "mixed"]
KINDS: tuple[str, ...] = typing.get_args(NoiseKind)
CORRUPTIONS = ("gaussian", "salt_pepper", "masking", "block")  # the single kinds, which "mixed" draws from
# The strongest level of each kind worth showing: past these the digit is mostly gone.
MAX_LEVEL = {"gaussian": 1.0, "salt_pepper": 0.5, "masking": 0.9, "block": 0.6}
LABELS = {"none": "none", "gaussian": "Gaussian", "salt_pepper": "salt-and-pepper", "masking": "masking",
          "block": "occlusion", "mixed": "mixed"}  # how pages and charts name each kind
LEVEL_HELP = {
    "none": "",
    "gaussian": "σ, the noise's standard deviation (0.5 is heavy)",
    "salt_pepper": "p, the share of pixels flipped to black or white",
    "masking": "p, the share of pixels set to black",
    "block": "the occluding square's side as a fraction of the image",
    "mixed": "how far up each kind's range the random levels reach (1: the whole range)",
}


def check(kind: str, level: float) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown noise {kind!r}: choose one of {', '.join(KINDS)}")
    if not math.isfinite(level) or level < 0:
        raise ValueError(f"noise level must be a finite number ≥ 0, not {level}")
    if kind in ("salt_pepper", "masking", "block", "mixed") and level > 1:
        raise ValueError(f"{kind} takes a level between 0 and 1 (a probability or fraction), not {level}")


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def _rand(shape, x: torch.Tensor, generator: torch.Generator | None, normal: bool = False) -> torch.Tensor:
    return random_tensor(shape, generator, x.device, dtype=x.dtype, normal=normal)  # x's device and dtype


def corrupt(x: torch.Tensor, kind: str, level: float, generator: torch.Generator | None = None,
            seed: int | None = None) -> torch.Tensor:
    """Return a corrupted copy of x (B, 1, H, W) in [0, 1]; x itself is left unchanged."""
    check(kind, level)
    if generator is None and seed is not None:
        generator = make_generator(seed)
    if kind == "none" or level == 0:
        return x.clone()
    if kind == "mixed":
        return _mixed(x, level, generator)
    return _one(x, kind, torch.full((len(x),), float(level), device=x.device, dtype=x.dtype), generator)


def _mixed(x: torch.Tensor, level: float, generator: torch.Generator | None) -> torch.Tensor:
    """Each image through one corruption drawn at random, at a random level up to level × its MAX_LEVEL."""
    b = len(x)
    which = (_rand((b,), x, generator) * len(CORRUPTIONS)).long().clamp_(max=len(CORRUPTIONS) - 1)
    share = _rand((b,), x, generator) * level
    out = x.clone()
    for i, kind in enumerate(CORRUPTIONS):  # every kind draws its noise for the whole batch: the stream stays fixed
        noisy = _one(x, kind, share * MAX_LEVEL[kind], generator)
        out = torch.where((which == i)[:, None, None, None], noisy, out)
    return out


def _one(x: torch.Tensor, kind: str, level: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One corruption with a level per image (B,)."""
    per = level[:, None, None, None]
    if kind == "gaussian":
        return (x + per * _rand(x.shape, x, generator, normal=True)).clamp_(0.0, 1.0)
    if kind == "salt_pepper":
        u = _rand(x.shape, x, generator)
        flip = u < per
        salt = u < per / 2  # half of the flipped pixels go white, half black
        return torch.where(flip, salt.to(x.dtype), x)
    if kind == "masking":
        return x * (_rand(x.shape, x, generator) >= per).to(x.dtype)
    # block: one square per image; its corner is uniform over the places where it fits
    b, _, h, w = x.shape
    side = torch.where(level > 0, torch.ceil(level * h).clamp(1, h), torch.zeros_like(level)).long()  # (B,)
    top = (_rand((b,), x, generator) * (h - side + 1)).long().clamp_(max=h - side)
    left = (_rand((b,), x, generator) * (w - side + 1)).long().clamp_(max=w - side)
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    in_rows = (rows[None, :] >= top[:, None]) & (rows[None, :] < (top + side)[:, None])  # (B, H)
    in_cols = (cols[None, :] >= left[:, None]) & (cols[None, :] < (left + side)[:, None])  # (B, W)
    mask = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # (B, 1, H, W)
    return x.masked_fill(mask, 0.0)
