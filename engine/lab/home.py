"""Home's engine: the one-click starter model, and a gallery row per run."""

from __future__ import annotations

import math
import os

from engine.runs import finite

# "Train a starter model": a conv autoencoder that is useful within seconds on a laptop CPU.
STARTER = {"model": "conv_ae", "model_config": {"latent_dim": 32}, "train": {"seconds": 15.0}}
STARTER_SECONDS_ENV = "LATENT_LAB_STARTER_SECONDS"


def starter_seconds() -> float | None:
    """The starter runs' time budget from LATENT_LAB_STARTER_SECONDS, or None for their own default."""
    raw = os.environ.get(STARTER_SECONDS_ENV, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{STARTER_SECONDS_ENV}={raw!r} is not a positive number of seconds; "
                         "unset it to use the default")
    return value


def starter_settings(seconds: float | None = None) -> tuple[str, dict, dict]:
    """(model, model_config, train) of the starter run; `seconds` replaces its time budget."""
    train = {**STARTER["train"], **({"seconds": float(seconds)} if seconds is not None else {})}
    return STARTER["model"], dict(STARTER["model_config"]), train


def gallery_row(summary: dict) -> dict:
    """One gallery row from Run.summary(): final metrics when done, the latest test MSE while training."""
    metrics = summary.get("metrics")
    metrics = metrics if isinstance(metrics, dict) else {}
    return {
        "id": summary["id"],
        "model": str(summary.get("model", "?")),
        "dataset": str(summary.get("dataset", "?")),
        "latent": finite(summary.get("latent_dim")),
        "state": str(summary.get("state", "failed")),
        "progress": min(max(finite(summary.get("progress")) or 0.0, 0.0), 1.0),
        "test MSE": finite(metrics.get("mse", metrics.get("test/mse"))),
        "PSNR (dB)": finite(metrics.get("psnr")),
        "kNN acc": finite(metrics.get("knn_accuracy")),
    }
