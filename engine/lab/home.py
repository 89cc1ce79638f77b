"""Home's engine: a gallery row per run (the one-click starter is a demo: engine/lab/demos.py)."""

from __future__ import annotations

from engine.runs import finite


def gallery_row(summary: dict) -> dict:
    """One gallery row from Run.summary(): final metrics when done, the latest test MSE while training."""
    metrics = summary.get("metrics")
    metrics = metrics if isinstance(metrics, dict) else {}
    return {
        "id": summary["id"],
        "name": summary.get("name") if isinstance(summary.get("name"), str) else None,
        "model": str(summary.get("model", "?")),
        "dataset": str(summary.get("dataset", "?")),
        "latent": finite(summary.get("latent_dim")),
        "state": str(summary.get("state", "failed")),
        "progress": min(max(finite(summary.get("progress")) or 0.0, 0.0), 1.0),
        "test MSE": finite(metrics.get("mse", metrics.get("test/mse"))),
        "PSNR (dB)": finite(metrics.get("psnr")),
        "kNN acc": finite(metrics.get("knn_accuracy")),
    }


def ago(when: float | None, now: float | None = None) -> str:
    """How long ago a time (seconds since the epoch) was: "just now", "12 min ago", "3 h ago", "2 days ago"."""
    import time

    if when is None:
        return "never"
    seconds = max((time.time() if now is None else now) - when, 0.0)
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600:.0f} h ago"
    return f"{seconds // 86400:.0f} days ago"
