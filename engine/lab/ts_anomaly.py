"""The time-series anomaly page's back-end: a long series cut into windows, each window's reconstruction error
under a sequence autoencoder beside its matrix-profile distance (stumpy), both turned into per-step scores
and scored the same two ways (AUROC over time steps; the UCR archive's top-1 window).

The autoencoder is a run trained on the windows of the series' normal start (the dataset `ecg-mitdb` or `yahoo`,
engine.data.sequences); both detectors see exactly the same windows: every start, stride 1, m steps.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from engine.data import load_dataset
from engine.data.sequences import DEFAULT_ANOMALY_SERIES, LONG_SERIES, LongSeries
from engine.data.uploads import series_uploads
from engine.eval.sequences import (auroc_over_steps, detections, labelled_regions, matrix_profile,
                                   matrix_profile_error, matrix_profile_state, prepare_matrix_profile,
                                   reconstruct_series, step_scores, ucr_hit)

DEFAULT_MODEL = "lstm_ae"
DEFAULT_LATENT_DIM = 8
DEFAULT_STEPS = 800
DEFAULT_QUANTILE = 99.0  # the threshold: this percentile of a detector's scores on the series' normal start
DETECTORS = ("autoencoder", "matrix profile")


def series_datasets(workspace: str | None = None) -> list[str]:
    """The long series this page scores: the bundled ones, then the workspace's uploaded one-column CSVs."""
    return [*LONG_SERIES, *([i.name for i in series_uploads(workspace, "long")] if workspace else [])]


def series_of(dataset_name: str) -> LongSeries:
    series = getattr(load_dataset(dataset_name), "series", None)
    if series is None:
        raise ValueError(f"{dataset_name} is not one long series cut into windows; choose one of "
                         f"{', '.join(LONG_SERIES)} or a one-column csv:FILE")
    return series


def run_settings(model: str, dataset: str, latent_dim: int, steps: int) -> tuple[dict, dict]:
    from engine.lab.sequences import run_settings as settings

    return settings(model, dataset, latent_dim, steps)


@torch.inference_mode()
def window_errors(model, series: LongSeries, batch_size: int = 1024) -> np.ndarray:
    """Reconstruction MSE of every window (one per start, stride 1): (L − m + 1,)."""
    x = torch.from_numpy(series.windows(1))  # (n, m, 1), each window z-normalised as in training
    x_hat = reconstruct_series(model, x, batch_size)
    return (x_hat - x).pow(2).flatten(1).mean(1).numpy().astype(np.float64)


def score(window_scores: np.ndarray, series: LongSeries) -> dict:
    """One detector's per-step scores and its two grades."""
    steps = step_scores(window_scores, series.window, len(series.values))
    return {"window_scores": window_scores, "step_scores": steps,
            "auroc": auroc_over_steps(steps, series.labels), **ucr_hit(window_scores, series.labels, series.window)}


def analyse(model, dataset_name: str) -> dict:
    """Both detectors on the same windows of the series: {"autoencoder": …, "matrix profile": …, "series": …}."""
    return {**analyse_autoencoder(model, dataset_name), "matrix profile": analyse_matrix_profile(dataset_name)}


def analyse_autoencoder(model, dataset_name: str) -> dict:
    """The autoencoder's scores of every window: {"autoencoder": …, "series": …, "regions": …}."""
    series = series_of(dataset_name)
    return {"series": series, "regions": labelled_regions(series.labels),
            "autoencoder": score(window_errors(model, series), series)}


def series_digest(series: LongSeries) -> str:
    """A short fingerprint of the series' values: a cache key that changes when an upload is made again."""
    import hashlib

    return hashlib.sha1(series.values.tobytes()).hexdigest()[:16]


def analyse_matrix_profile(dataset_name: str) -> dict:
    """The matrix profile's scores of every window (the same for every run on the series)."""
    series = series_of(dataset_name)
    return score(matrix_profile(series.values, series.window), series)


MP_WARMUP_ENV = "LATENT_LAB_MP_WARMUP"  # 0: the server does not compile the matrix profile at start (a page still does)


def warm_up_at_server_start() -> bool:
    """Start compiling stumpy in the background as the server starts (False when LATENT_LAB_MP_WARMUP=0), so the
    first anomaly view does not wait for it."""
    if os.environ.get(MP_WARMUP_ENV, "1").strip().lower() in ("0", "false", "no", "off"):  # as LATENT_LAB_UMAP_WARMUP
        return False
    prepare_matrix_profile()
    return True


def matrix_profile_wait() -> tuple[str, float | None]:
    """Whether the matrix profile can be shown now, starting its preparation when nothing has: ("ready", None),
    ("preparing", seconds left, about), or ("failed", None) (`matrix_profile_error` says why)."""
    state, left = matrix_profile_state()
    if state == "idle":
        prepare_matrix_profile()
        state, left = matrix_profile_state()
    return state, left


def threshold(result: dict, series: LongSeries, quantile: float) -> float:
    """The `quantile`-th percentile of a detector's step scores over the series' normal start (train part)."""
    normal = result["step_scores"][:series.train_end]
    return float(np.percentile(normal[np.isfinite(normal)], quantile))


def detect(result: dict, series: LongSeries, quantile: float) -> dict:
    """The steps a detector flags at its threshold, as regions, with precision and recall over the steps."""
    tau = threshold(result, series, quantile)
    return {"tau": tau, **detections(result["step_scores"], series.labels, tau)}


__all__ = ["DEFAULT_ANOMALY_SERIES", "DETECTORS", "analyse", "analyse_autoencoder", "analyse_matrix_profile",
           "detect", "matrix_profile_error", "matrix_profile_wait", "series_datasets", "threshold",
           "warm_up_at_server_start"]
