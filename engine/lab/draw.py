"""The Draw page's engine: what every chosen model makes of one 28×28 image.

Each model's x̂, its per-pixel error map |x − x̂| and the anomaly score (the image's reconstruction
MSE, placed among the test split's); the first model's code z, its nearest training codes and the
class they vote for. The image itself comes from engine.data.preprocess (a drawing or an upload
made MNIST-style).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.eval.codes import class_votes, encode, nearest, percentile_of, reconstruct


@dataclass
class Reconstruction:
    """One model's answer to an image x: its x̂, the per-pixel error map and the anomaly score."""

    run_id: str
    x_hat: np.ndarray  # (28, 28) in [0, 1]
    error: np.ndarray  # (28, 28) |x − x̂|
    mse: float  # (1/784) Σ (x − x̂)², the anomaly score
    percentile: float  # % of the test split's images this model reconstructs better than x (nan if unknown)


@dataclass
class DrawResult:
    """Everything the Draw page shows for one image x (28, 28)."""

    x: np.ndarray  # (28, 28)
    reconstructions: list[Reconstruction]  # one per model, in the order given
    z: np.ndarray  # (latent_dim,) the first model's code of x (a VAE's μ)
    neighbours: np.ndarray  # (k,) indices into the train split, nearest code first
    distances: np.ndarray  # (k,) Euclidean distances ‖z − z_i‖ in latent space
    votes: np.ndarray | None  # (num_classes,) share of the neighbours in each class; None when unlabelled
    predicted: int | None  # the kNN class: the most voted, a tie going to the nearest neighbour's class


def reconstruct_one(loaded, x: np.ndarray, test_errors: np.ndarray | None = None) -> Reconstruction:
    """A model's x̂ of x (28, 28), |x − x̂|, its MSE and where that MSE sits among `test_errors` (N,)."""
    x = np.asarray(x, dtype=np.float32)
    x_hat = reconstruct(loaded, x)[0]  # (28, 28), one forward pass
    diff = x - x_hat
    mse = float(np.mean(diff ** 2))
    pct = percentile_of(mse, test_errors) if test_errors is not None else math.nan
    return Reconstruction(loaded.run_id, x_hat, np.abs(diff), mse, pct)


def analyse(x: np.ndarray, models: list, test_errors: list[np.ndarray | None], z_train: np.ndarray,
            y_train: np.ndarray, num_classes: int, k: int = 5) -> DrawResult:
    """Reconstruct x (28, 28) with every model, and place it in the first model's latent space.

    test_errors[i]: model i's per-image test MSE (N,) for the percentile; z_train (N, latent_dim) and
    y_train (N,): the first model's codes of the train split and their labels, for the kNN class.
    Cost: one forward pass per model, one encode and one nearest-neighbour search.
    """
    if not models:
        raise ValueError("give at least one model")
    recs = [reconstruct_one(m, x, e) for m, e in zip(models, test_errors, strict=True)]
    z = encode(models[0], x)[0]  # (latent_dim,)
    idx, dist = nearest(z_train, z[None], k)  # (1, k) each
    y_train = np.asarray(y_train)
    votes, predicted = None, None
    if num_classes > 0 and (y_train[idx[0]] >= 0).all():
        votes = class_votes(y_train, idx, num_classes)[0]  # (num_classes,)
        tied = set(np.flatnonzero(votes == votes.max()).tolist())
        predicted = next(int(c) for c in y_train[idx[0]] if int(c) in tied)  # neighbours are nearest first
    return DrawResult(np.asarray(x, np.float32), recs, z, idx[0], dist[0], votes, predicted)
