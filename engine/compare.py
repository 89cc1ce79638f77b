"""Models side by side: denoising under noise (the Noise lab) and PCA against autoencoders.

Noise lab — a clean image x is corrupted to x̃ (engine.noise), every model reconstructs x̃, and each
output is scored against the CLEAN x:

    PSNR(x, x̂) = 10·log₁₀(1 / MSE(x, x̂))   dB, pixel range 1; the noisy x̃ itself is the baseline

PCA vs autoencoder —

    PCA        x̂ = μ + W Wᵀ (x − μ),  W (784, k) the top-k principal directions of the train split
    linear AE  x̂ = W₂(W₁x + b₁) + b₂: under MSE its optimum spans PCA's subspace (Baldi & Hornik 1989),
               though its k axes need not be orthogonal nor ordered by variance
    AE         x̂ = g(f(x)) with non-linear f, g

The two subspaces are compared through their principal angles: with Q_A, Q_B orthonormal bases,
cos θᵢ = σᵢ(Q_Aᵀ Q_B) (Björck & Golub 1973; scipy.linalg.subspace_angles).

Pure torch / numpy / scikit-learn / scipy: the pages cache what these return.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from engine import noise as noise_lib
from engine.data import Dataset
from engine.latent import as_batch
from engine.models.base import IMAGE_PIXELS
from engine.runs import ACTIVE

# ---------------------------------------------------------------------------------------------
# the Noise lab

NOISE_KINDS = ("gaussian", "salt_pepper", "masking", "block")
NOISE_LABELS = {"gaussian": "Gaussian", "salt_pepper": "salt-and-pepper", "masking": "masking",
                "block": "occlusion"}
# The strongest level each slider and the PSNR chart reach: past these the digit is mostly gone.
LEVEL_MAX = {"gaussian": 1.0, "salt_pepper": 0.5, "masking": 0.9, "block": 0.6}
DEFAULT_LEVEL = {"gaussian": 0.4, "salt_pepper": 0.2, "masking": 0.5, "block": 0.35}
LEVEL_HELP = noise_lib.LEVEL_HELP
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
def _apply(model: Callable, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """model(x) in eval mode, batched; x (N, 1, 28, 28) → x̂ (N, 1, 28, 28) on the CPU."""
    if isinstance(model, torch.nn.Module):
        model.eval()
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


# ---------------------------------------------------------------------------------------------
# PCA against autoencoders: reconstruction error against latent size

PCA_LATENT_DIMS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)  # the closed-form curve: cheap, so dense
SWEEP_LATENT_DIMS = (2, 4, 8, 16, 32, 64)  # where the sweep trains a linear and a non-linear AE
SWEEP_MODELS = ("linear_ae", "ae")
CURVE_MODELS = ("linear_ae", "ae", "conv_ae")  # runs that give points on the chart
# Training settings per sweep run (the job manager runs two at a time: a core each). Adam's default
# 1e-3 is slow for both within 12 s. A linear AE creeps away from the saddle at W = 0; at 1e-2 it
# reaches PCA's subspace (mean cos θ 0.998 after 3,200 steps on mnist-5k, latent 16). The dense AE
# at 3e-3 matches PCA's error at latent 64 after 1,500 steps (1e-3: 17 % worse; 1e-2 diverges there).
SWEEP_TRAIN = {"linear_ae": {"seconds": 12.0, "threads": 1, "lr": 1e-2},
               "ae": {"seconds": 12.0, "threads": 1, "lr": 3e-3}}


@torch.no_grad()  # not inference_mode: the model's buffers must stay usable outside it
def fit_pca(dataset: Dataset, latent_dim: int):
    """engine's PCA model with `latent_dim` directions, fitted on the train split (closed form).

    The directions are the top eigenvectors of the 784×784 covariance Xᶜᵀ Xᶜ / (N − 1): the same as the
    right singular vectors of the centred data that a full SVD gives (up to sign), several times
    cheaper than scikit-learn's full SVD of the N×784 data, which also builds the N×784 U.
    """
    from engine.models.pca import PCA, PCAConfig

    x = dataset.x_train.flatten(1).cpu().double()  # (N, 784)
    if not 1 <= latent_dim <= min(x.shape):
        raise ValueError(f"PCA with latent_dim={latent_dim} needs 1 ≤ latent_dim ≤ {min(x.shape)} "
                         f"(the number of pixels and of training images)")
    mean = x.mean(0)
    centred = x - mean
    eigenvalues, eigenvectors = torch.linalg.eigh(centred.T @ centred / (len(x) - 1))  # ascending
    top = torch.argsort(eigenvalues, descending=True)[:latent_dim]
    pca = PCA(PCAConfig(latent_dim=latent_dim))
    pca.mean.copy_(mean.float())
    pca.components.copy_(eigenvectors[:, top].T.float())  # (k, 784), orthonormal rows
    pca.explained_variance_ratio.copy_((eigenvalues[top] / eigenvalues.clamp(min=0).sum()).float())
    pca.fit_latent_stats(pca.encode(dataset.x_train.cpu()))
    return pca.eval()


def truncate_pca(pca, latent_dim: int):
    """PCA with the first `latent_dim` directions of a fitted PCA: the same as fitting k directly
    (the top-k directions of a full SVD are the first k of the top-K), without another SVD."""
    from engine.models.pca import PCA, PCAConfig

    if not 1 <= latent_dim <= pca.config.latent_dim:
        raise ValueError(f"cannot keep {latent_dim} of a PCA with {pca.config.latent_dim} directions")
    out = PCA(PCAConfig(latent_dim=latent_dim))
    with torch.no_grad():
        out.mean.copy_(pca.mean)
        out.components.copy_(pca.components[:latent_dim])
        out.explained_variance_ratio.copy_(pca.explained_variance_ratio[:latent_dim])
    return out.eval()


@torch.inference_mode()
def pca_curve(dataset: Dataset, latent_dims: Iterable[int] = PCA_LATENT_DIMS, pca=None) -> dict[int, float]:
    """Test MSE of PCA at each latent size k, fitted on the train split: k → MSE.

    One fit at the largest k (or `pca`, fitted with at least that many) serves every k through
    truncate_pca. x̂ is clipped to [0, 1] like the PCA model's own output. Sizes beyond what the
    data allows (min(train images, 784)) are left out.
    """
    most = min(len(dataset.x_train), IMAGE_PIXELS)  # PCA has at most this many directions
    dims = sorted({int(k) for k in latent_dims if int(k) <= most})
    if not dims or dims[0] < 1:
        raise ValueError(f"latent sizes must lie between 1 and {most} for {dataset.name}, not {sorted(latent_dims)}")
    if pca is None or pca.config.latent_dim < dims[-1]:
        pca = fit_pca(dataset, dims[-1])
    x = dataset.x_test.flatten(1).cpu()  # (N, 784)
    centred = x - pca.mean
    out = {}
    for k in dims:
        w = pca.components[:k]  # (k, 784), orthonormal rows
        x_hat = (centred @ w.T @ w + pca.mean).clamp(0.0, 1.0)  # μ + W Wᵀ(x − μ)
        out[k] = float((x_hat - x).pow(2).mean(1).mean())
    return out


def is_plain(config: dict) -> bool:
    """A run (config.json) trained on clean inputs and every class: comparable with PCA on the same data."""
    return (config.get("model_config", {}).get("noise", "none") in (None, "none")
            and not config.get("train", {}).get("classes"))


def unconditional_models() -> tuple[str, ...]:
    """Registered autoencoders (and PCA) that reconstruct x without its label: model(x) works."""
    from engine.models import MODELS

    return tuple(name for name, cls in MODELS.items()
                 if getattr(cls, "kind", "reconstruction") == "reconstruction" and not cls.conditional)


def is_denoising(config: dict) -> bool:
    """A run trained to remove noise: a denoising_ae, or any autoencoder trained with input corruption."""
    return (config.get("model") == "denoising_ae"
            or config.get("model_config", {}).get("noise", "none") not in (None, "none"))


def sweep_rows(runs: Iterable, dataset: str, models: Iterable[str] = CURVE_MODELS) -> list[dict]:
    """One row per plain run of `models` on `dataset`, newest first (the order `runs` comes in).

    Each row: run (id), model, latent_dim, state, mse (the final test MSE when done, else None).
    Unreadable runs are skipped.
    """
    from engine.runs import RunError

    models = tuple(models)
    rows = []
    for run in runs:
        try:
            config = run.config
            status = run.status()
        except (RunError, OSError, ValueError):
            continue
        if config.get("model") not in models or config.get("dataset") != dataset or not is_plain(config):
            continue
        latent = config.get("model_config", {}).get("latent_dim")
        mse = (status.get("final_metrics") or {}).get("mse")
        rows.append({"run": run.id, "model": config["model"], "latent_dim": latent if isinstance(latent, int) else None,
                     "state": status.get("state", "failed"),
                     "mse": float(mse) if status.get("state") == "done" and isinstance(mse, (int, float)) else None})
    return [r for r in rows if r["latent_dim"] is not None]


def missing_sweep(rows: list[dict], latent_dims: Iterable[int] = SWEEP_LATENT_DIMS,
                  models: Iterable[str] = SWEEP_MODELS) -> list[tuple[str, int]]:
    """(model, latent_dim) pairs of the sweep with no run that is done or on its way."""
    have = {(r["model"], r["latent_dim"]) for r in rows if r["state"] == "done" or r["state"] in ACTIVE}
    return [(m, int(k)) for m in models for k in latent_dims if (m, int(k)) not in have]


def curve_points(rows: list[dict]) -> dict[str, list[tuple[int, float, str]]]:
    """model → [(latent_dim, test MSE, run id)] sorted by latent_dim: the best done run per size
    (what the model reaches at that size; a quick extra run does not hide a longer one)."""
    best: dict[str, dict[int, tuple[int, float, str]]] = {}
    for r in rows:
        if r["mse"] is None:
            continue
        held = best.setdefault(r["model"], {}).get(r["latent_dim"])
        if held is None or r["mse"] < held[1]:
            best[r["model"]][r["latent_dim"]] = (r["latent_dim"], r["mse"], r["run"])
    return {m: sorted(points.values()) for m, points in best.items()}


def reconstructions(models: Mapping[str, Callable], x: torch.Tensor) -> dict[str, tuple[np.ndarray, float]]:
    """The same images x (B, 1, 28, 28) through each model: name → (x̂ (B, 28, 28), their mean MSE)."""
    x = x.float().cpu()
    out = {}
    for name, model in models.items():
        x_hat = _apply(model, x)
        out[name] = (x_hat[:, 0].numpy(), float((x_hat - x).pow(2).mean()))
    return out


# ---------------------------------------------------------------------------------------------
# subspaces: principal angles


def pca_basis(pca) -> np.ndarray:
    """PCA's top-k directions as columns (784, k)."""
    return pca.components.detach().cpu().double().numpy().T


def decoder_basis(model) -> np.ndarray:
    """The columns of a linear AE's decoder weight W₂ (784, k): x̂ = W₂z + b₂ lies in their span (+ b₂)."""
    decoder = getattr(model, "decoder", None)
    if not isinstance(decoder, torch.nn.Linear) or decoder.out_features != IMAGE_PIXELS:
        raise ValueError(f"{type(model).__name__} has no single linear decoder layer; "
                         "principal angles need a linear_ae run")
    return decoder.weight.detach().cpu().double().numpy()  # nn.Linear stores (out, in) = (784, k)


def random_basis(k: int, dim: int = IMAGE_PIXELS, seed: int = 0) -> np.ndarray:
    """k random Gaussian directions (dim, k): the chance level for principal angles."""
    return np.random.default_rng(seed).standard_normal((dim, k))


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles (radians, smallest first) between the column spaces of a (n, p) and b (n, q).

    cos θᵢ = σᵢ(Q_Aᵀ Q_B) for orthonormal bases Q_A, Q_B: 0 for a shared direction, π/2 for an
    orthogonal one. min(p, q) angles (fewer when a basis is rank-deficient).
    """
    from scipy.linalg import subspace_angles

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"bases must be (n, p) and (n, q) with the same n, got {a.shape} and {b.shape}")
    return np.sort(subspace_angles(a, b))  # scipy returns them largest first


def axis_overlap(basis: np.ndarray) -> float:
    """Mean |cos| between distinct columns of a basis (n, k): 0 for orthogonal axes like PCA's."""
    b = np.asarray(basis, dtype=np.float64)
    if b.shape[1] < 2:
        return 0.0
    unit = b / np.maximum(np.linalg.norm(b, axis=0, keepdims=True), 1e-12)
    gram = np.abs(unit.T @ unit)  # (k, k)
    k = gram.shape[0]
    return float((gram.sum() - np.trace(gram)) / (k * (k - 1)))
