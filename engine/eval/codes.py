"""A loaded run's model applied to images and codes, as numpy: what every page back-end shares.

    encode(loaded, x) → z      decode(loaded, z) → x̂      reconstruct(loaded, x) → x̂
    split_codes / split_errors   a whole split's codes z and per-image reconstruction errors
    interpolate                  a path of codes between two (linear or spherical)
    nearest, class_votes         the nearest reference codes and the class they vote for

Everything runs on the CPU in eval mode: a page asks for one image at a time, and a small model
answers in a millisecond or two there.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.data import Dataset
from engine.eval.metrics import conditioning, encode_all, per_image_mse, reconstruct_all
from engine.runs.loaded import LoadedRun


def as_batch(x) -> torch.Tensor:
    """An image (28, 28), (1, 28, 28) or a batch (B, 1, 28, 28), numpy or torch → float32 (B, 1, 28, 28)."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
    if t.ndim == 2:
        t = t[None, None]
    elif t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or tuple(t.shape[1:]) != (1, 28, 28):
        raise ValueError(f"expected 28×28 images, got shape {tuple(t.shape)}")
    return t


def labels_for(loaded: LoadedRun, y, n: int) -> torch.Tensor | None:
    """Labels for a conditional model (an int, a list or a tensor), None for others."""
    if not loaded.conditional:
        return None
    if y is None:
        raise ValueError(f"{loaded.model_name} is conditioned on the class: give the label y")
    t = torch.as_tensor(y, dtype=torch.long).reshape(-1)
    return t.expand(n) if t.numel() == 1 else t


@torch.inference_mode()
def encode(loaded: LoadedRun, x, y=None) -> np.ndarray:
    """Codes z (B, latent_dim) of images x (a VAE gives its mean μ)."""
    x = as_batch(x)
    return loaded.model.encode(x, labels_for(loaded, y, len(x))).numpy()


@torch.inference_mode()
def decode(loaded: LoadedRun, z, y=None) -> np.ndarray:
    """Images (B, 28, 28) in [0, 1] decoded from codes z (B, latent_dim) or one code (latent_dim,)."""
    z = torch.as_tensor(np.asarray(z), dtype=torch.float32)
    if z.ndim == 1:
        z = z[None]
    return loaded.model.decode(z, labels_for(loaded, y, len(z)))[:, 0].numpy()


@torch.inference_mode()
def reconstruct(loaded: LoadedRun, x, y=None) -> np.ndarray:
    """x̂ (B, 28, 28) in [0, 1] of images x."""
    x = as_batch(x)
    return loaded.model(x, labels_for(loaded, y, len(x)))[:, 0].numpy()


def split_tensors(dataset: Dataset, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    return (dataset.x_train, dataset.y_train) if split == "train" else (dataset.x_test, dataset.y_test)


def split_codes(loaded: LoadedRun, dataset: Dataset, split: str = "test") -> np.ndarray:
    """Codes z (N, latent_dim) of every image of a split."""
    x, y = split_tensors(dataset, split)
    return encode_all(loaded.model, x, conditioning(loaded.model, y)).cpu().numpy()


def split_errors(loaded: LoadedRun, dataset: Dataset, split: str = "test") -> np.ndarray:
    """Per-image reconstruction MSE (N,) over a split: the anomaly scores of those images."""
    x, y = split_tensors(dataset, split)
    x_hat = reconstruct_all(loaded.model, x, conditioning(loaded.model, y))
    return per_image_mse(x_hat.cpu(), x.cpu()).numpy()



def interpolate(z0, z1, steps: int = 10, method: str = "linear") -> np.ndarray:
    """Codes (steps, d) from z0 to z1, both ends included.

    linear:  z(t) = (1 − t)·z0 + t·z1
    slerp:   z(t) = sin((1 − t)Ω)/sin Ω · z0 + sin(tΩ)/sin Ω · z1, Ω the angle between z0 and z1
             (stays at the norm typical of Gaussian codes, where the linear path cuts inside; White 2016)
    """
    z0, z1 = np.asarray(z0, dtype=np.float64), np.asarray(z1, dtype=np.float64)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    if method == "linear":
        return (1 - t) * z0 + t * z1
    if method != "slerp":
        raise ValueError(f"method must be 'linear' or 'slerp', not {method!r}")
    n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
    if n0 < 1e-12 or n1 < 1e-12:
        return (1 - t) * z0 + t * z1
    omega = np.arccos(np.clip(z0 @ z1 / (n0 * n1), -1.0, 1.0))
    if omega < 1e-6:  # (anti-)parallel ends: the arc is the line
        return (1 - t) * z0 + t * z1
    return (np.sin((1 - t) * omega) * z0 + np.sin(t * omega) * z1) / np.sin(omega)



def nearest(z_ref: np.ndarray, z_query, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(indices, distances), each (B, k): the k reference codes nearest (Euclidean) to each query code."""
    from sklearn.neighbors import NearestNeighbors

    z_query = np.atleast_2d(np.asarray(z_query))
    nn = NearestNeighbors(n_neighbors=min(k, len(z_ref))).fit(z_ref)
    dist, idx = nn.kneighbors(z_query)
    return idx, dist


def class_votes(y_ref: np.ndarray, neighbour_idx: np.ndarray, num_classes: int) -> np.ndarray:
    """(B, num_classes) fraction of each query's neighbours in each class: the kNN class prediction."""
    y = np.asarray(y_ref)[neighbour_idx]  # (B, k)
    return np.stack([(y == c).mean(1) for c in range(num_classes)], 1)


def percentile_of(value: float, reference: np.ndarray) -> float:
    """The percentage of `reference` values below `value` (where an anomaly score sits in a distribution)."""
    reference = np.asarray(reference)
    return float(100.0 * (reference < value).mean()) if len(reference) else float("nan")

