"""The Noise lab's engine: corrupt an image, let each model rebuild it, score every output against the clean x.

    x̃ = corrupt(x)  (engine.data.noise),  x̂ = model(x̃),  PSNR(x, x̂) = 10·log₁₀(1 / MSE(x, x̂))  dB

The noisy input's own PSNR, PSNR(x, x̃), is the baseline a model must beat to have removed noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from engine.data import Dataset
from engine.data import noise as noise_lib
from engine.eval.codes import as_batch
from engine.eval.metrics import reconstruct_all
from engine.models import models as registered

NOISE_KINDS = noise_lib.CORRUPTIONS  # every single corruption (a denoiser may have trained on a mix of them)
LEVEL_MAX = noise_lib.MAX_LEVEL  # the strongest level each slider and the PSNR chart reach
DEFAULT_LEVEL = {"gaussian": 0.4, "salt_pepper": 0.2, "masking": 0.5, "block": 0.35}
NOISY = "noisy input"  # the row of psnr_table that scores x̃ itself
CHART_LEVELS = 8
CHART_IMAGES = 200


def psnr(x_hat, x) -> float:
    """10·log₁₀(1 / MSE) in dB between two images (or batches) in [0, 1]; inf when they are equal."""
    mse = float(np.mean((np.asarray(x_hat, dtype=np.float64) - np.asarray(x, dtype=np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def noise_levels(kind: str, n: int = CHART_LEVELS) -> np.ndarray:
    """n levels from LEVEL_MAX/n to LEVEL_MAX (level 0 is the clean image: its PSNR is infinite)."""
    if kind not in LEVEL_MAX:
        raise ValueError(f"unknown noise {kind!r}: choose one of {', '.join(NOISE_KINDS)}")
    return np.linspace(LEVEL_MAX[kind] / n, LEVEL_MAX[kind], n)


def chart_indices(n_test: int, n: int = CHART_IMAGES, seed: int = 0) -> np.ndarray:
    """A fixed random batch of n test-image indices (sorted), the same for every model and level."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_test, size=min(n, n_test), replace=False))



@torch.inference_mode()
def _apply(model, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """x̂ (N, 1, 28, 28) of images x on the CPU: a model in eval mode (batched), or any callable x → x̂."""
    if isinstance(model, torch.nn.Module):
        return reconstruct_all(model, x, batch_size=batch_size).float().cpu()
    return torch.cat([model(x[i:i + batch_size]).float().cpu() for i in range(0, len(x), batch_size)])


@dataclass
class Denoised:
    """One image through the Noise lab: the clean x, its corruption x̃, and each model's x̂ of x̃."""

    x: np.ndarray  # (28, 28) the clean image
    x_noisy: np.ndarray  # (28, 28) x̃
    noisy_psnr: float  # PSNR(x, x̃): what doing nothing scores (inf for an untouched image)
    outputs: dict[str, np.ndarray]  # name → x̂ (28, 28) of x̃
    psnr: dict[str, float]  # name → PSNR(x, x̂)


def denoise(models: Mapping[str, Callable | None], x, kind: str, level: float, seed: int = 0) -> Denoised:
    """Corrupt one image x (28, 28) with `kind` at `level` (seeded) and reconstruct it with each model.

    models: name → a callable x (B, 1, 28, 28) → x̂ (a trained model), or None to skip that name.
    """
    clean = as_batch(x).clamp(0.0, 1.0)  # (1, 1, 28, 28)
    noisy = noise_lib.corrupt(clean, kind, level, seed=seed)
    outputs, scores = {}, {}
    for name, model in models.items():
        if model is None:
            continue
        x_hat = _apply(model, noisy)[0, 0].numpy()
        outputs[name] = x_hat
        scores[name] = psnr(x_hat, clean[0, 0].numpy())
    return Denoised(clean[0, 0].numpy(), noisy[0, 0].numpy(), psnr(noisy, clean), outputs, scores)


def psnr_table(models: Mapping[str, Callable], x: torch.Tensor, kind: str, levels: Iterable[float],
               seed: int = 0) -> dict[str, np.ndarray]:
    """PSNR (dB) of each model's x̂ of x̃ against the clean x (N, 1, 28, 28), at each noise level.

    Returns name → (len(levels),), plus NOISY → the PSNR of x̃ itself. Every model sees the same x̃
    at a level (one generator seeded by `seed` and the level's index).

    The PSNR at a level is 10·log₁₀(1 / MSE) of the batch's mean MSE, not the mean of per-image
    PSNRs: an occluding square that lands on the black background leaves an image untouched, and its
    infinite PSNR would swamp a per-image mean.
    """
    levels = [float(v) for v in levels]
    x = x.float().cpu()
    out = {name: np.empty(len(levels)) for name in (NOISY, *models)}
    for i, level in enumerate(levels):
        noisy = noise_lib.corrupt(x, kind, level, seed=seed * 1000 + i)
        out[NOISY][i] = psnr(noisy.numpy(), x.numpy())
        for name, model in models.items():
            out[name][i] = psnr(_apply(model, noisy).numpy(), x.numpy())
    return out


def psnr_chart(models: Mapping[str, Callable], dataset: Dataset, kind: str, n_images: int = CHART_IMAGES,
               n_levels: int = CHART_LEVELS) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(levels, psnr_table) on the fixed batch of `n_images` test images at `n_levels` levels of `kind`."""
    x = dataset.x_test[torch.as_tensor(chart_indices(len(dataset.x_test), n_images))]
    levels = noise_levels(kind, n_levels)
    return levels, psnr_table(models, x, kind, levels)



def trained_on(config: dict) -> str:
    """What noise a run's model saw while training, in words ("Gaussian noise at σ = 0.4 only")."""
    mc = config.get("model_config") if isinstance(config.get("model_config"), dict) else {}
    kind, level = mc.get("noise", "none"), mc.get("noise_level", 0.0)
    if kind in (None, "none") or not level:
        return "clean images only"
    if kind == "mixed":
        share = "" if level >= 1 else f", up to {level:.0%} of"
        return (f"mixed noise: each image one of the four corruptions at a random level{share or ' across'} "
                f"{'its' if share else 'its whole'} range")
    symbol = {"gaussian": "σ", "salt_pepper": "p", "masking": "p", "block": "side"}.get(kind, "level")
    return f"{noise_lib.LABELS.get(kind, kind)} noise at {symbol} = {level:g} only"


# ---------------------------------------------------------------------------------------------
# which runs fill the page's three slots


def autoencoders() -> list[str]:
    """Trained autoencoders that rebuild x without its label: the plain-autoencoder slot's models."""
    return registered(encodes=True, closed_form=False, conditional=False, variational=False)


def unconditional_models() -> list[str]:
    """Every model that rebuilds x without its label (PCA and VAEs too): the denoising slot's models."""
    return registered(encodes=True, conditional=False)


def baselines() -> list[str]:
    """Closed-form models (PCA): the baseline slot's."""
    return registered(encodes=True, closed_form=True)
