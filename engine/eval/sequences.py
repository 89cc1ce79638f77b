"""Scores of a sequence model, and of detectors on a long series.

A trained sequence autoencoder on the test split:

    mse             mean over series of ‖x − x̂‖² / (T·C)
    pca_mse         PCA with as many components as latent_dim, fitted on the flattened train series
    mse_vs_pca      the ratio (the issue's bar: ≤ 0.5)
    knn_accuracy    5-nearest-neighbour classifier on the codes z (train → test), as for images
    knn1_accuracy   1-nearest-neighbour on the codes z
    raw_1nn_accuracy  1-nearest-neighbour on the raw series (Euclidean): the time-series field's baseline
    elbo, kl        sequence VAEs

Anomalies in a long series (one score per window start, windows of m steps):

    window_scores → step_scores   each time step gets the largest score of the windows that cover it
    auroc_over_steps             ROC AUC of the step scores against the labelled steps
    ucr_hit                      the UCR anomaly archive's question: does the single most anomalous window
                                 overlap the labelled region? (Wu & Keogh 2021 score a detector by its top
                                 location only)
"""

from __future__ import annotations

import threading
import time

import numpy as np
import torch

from engine.eval.metrics import knn_accuracy
from engine.models.pca import principal_components


@torch.inference_mode()
def encode_series(model, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    model.eval()
    device = next(iter(model.buffers())).device
    return torch.cat([model.encode(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])


@torch.inference_mode()
def reconstruct_series(model, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    model.eval()
    device = next(iter(model.buffers())).device
    return torch.cat([model(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])


def per_series_mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (x_hat - x).pow(2).flatten(1).mean(1)  # (N,)


def pca_mse(x_train: torch.Tensor, x_test: torch.Tensor, k: int) -> float:
    """Test MSE of PCA with k components fitted on the flattened train series (k is capped at what fits)."""
    flat_train, flat_test = x_train.flatten(1).double().numpy(), x_test.flatten(1).double().numpy()
    k = min(k, *flat_train.shape)
    pc = principal_components(flat_train, k)
    rec = pc.project(flat_test) @ pc.components + pc.mean
    return float(((rec - flat_test) ** 2).mean())


def raw_1nn_accuracy(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor) -> float:
    """1-NN with Euclidean distance on the raw series: the UCR archive's reference classifier."""
    return knn_accuracy(x_train.flatten(1), y_train, x_test.flatten(1), y_test, k=1)


def evaluate_sequences(model, dataset, device=None) -> dict[str, float]:
    if device is not None:
        model = model.to(device)
    x_hat = reconstruct_series(model, dataset.x_test)
    out = {"mse": per_series_mse(x_hat, dataset.x_test.cpu()).mean().item()}
    x_train, x_test = dataset.x_train.cpu(), dataset.x_test.cpu()
    out["pca_mse"] = pca_mse(x_train, x_test, model.config.latent_dim)
    out["mse_vs_pca"] = out["mse"] / out["pca_mse"] if out["pca_mse"] > 0 else float("nan")
    if getattr(model, "variational", False):
        gen = torch.Generator().manual_seed(0)
        model.eval()
        with torch.inference_mode():
            logs = model.loss_step(x_test.to(next(iter(model.buffers())).device), generator=gen).logs
        out.update(elbo=float(logs["elbo"]), kl=float(logs["kl"]))
    y_train, y_test = dataset.y_train.cpu(), dataset.y_test.cpu()
    labelled = len(dataset.classes) > 1 and bool((y_train >= 0).all()) and len(torch.unique(y_train)) > 1
    if labelled:
        z_train, z_test = encode_series(model, x_train), encode_series(model, x_test)
        out["knn_accuracy"] = knn_accuracy(z_train, y_train, z_test, y_test, k=min(5, len(z_train)))
        out["knn1_accuracy"] = knn_accuracy(z_train, y_train, z_test, y_test, k=1)
        out["raw_1nn_accuracy"] = raw_1nn_accuracy(x_train, y_train, x_test, y_test)
    return out


# ---------------------------------------------------------------------------------------------
# anomalies in a long series


def step_scores(window_scores: np.ndarray, window: int, length: int) -> np.ndarray:
    """(L,) per time step: the largest score of the windows (starting at 0, 1, …, stride 1) that cover it."""
    window_scores = np.asarray(window_scores, dtype=np.float64)
    if len(window_scores) != length - window + 1:
        raise ValueError(f"{len(window_scores)} window scores do not fit a series of {length} steps and windows "
                         f"of {window} (expected {length - window + 1}, one per start)")
    out = np.full(length, -np.inf)
    for k in range(window):  # window i covers steps i … i+m−1: shift and take the maximum
        np.maximum(out[k:k + len(window_scores)], window_scores, out=out[k:k + len(window_scores)])
    return out


def auroc_over_steps(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """ROC AUC of per-step scores against 0/1 step labels (None when only one kind of step is there)."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    if labels.min() == labels.max():
        return None
    return float(roc_auc_score(labels, np.asarray(scores)))


def labelled_regions(labels: np.ndarray) -> list[tuple[int, int]]:
    """[(start, end)) of each run of 1s in the step labels."""
    labels = np.asarray(labels).astype(np.int8)
    edges = np.diff(np.concatenate([[0], labels, [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def ucr_hit(window_scores: np.ndarray, labels: np.ndarray, window: int) -> dict:
    """Is the most anomalous window [i, i+m) overlapping a labelled region? The UCR archive's top-1 question.

    "hit" is None when the series has no labelled region (an unlabelled upload): there is nothing to hit."""
    i = int(np.nanargmax(window_scores))
    regions = labelled_regions(labels)
    hit = any(i < end and i + window > start for start, end in regions) if regions else None
    return {"top_window": i, "hit": hit}


def detections(scores: np.ndarray, labels: np.ndarray, tau: float) -> dict:
    """Time steps flagged at threshold τ (score > τ), their regions, and precision / recall over steps."""
    flagged = np.asarray(scores) > tau
    labels = np.asarray(labels).astype(bool)
    tp = int((flagged & labels).sum())
    return {"flagged": int(flagged.sum()), "regions": labelled_regions(flagged),
            "precision": tp / flagged.sum() if flagged.any() else None,
            "recall": tp / labels.sum() if labels.any() else None}


def matrix_profile(values: np.ndarray, window: int) -> np.ndarray:
    """Each window's z-normalised distance to its nearest non-overlapping neighbour (stumpy.stump): a discord,
    the classic non-neural anomaly score (Yeh et al. 2016), one per window start."""
    stumpy = _stumpy()
    with _STUMP_LOCK:  # one at a time: numba's parallel kernels may abort the process when two threads launch them
        out = stumpy.stump(np.asarray(values, dtype=np.float64), m=window)[:, 0]
    _READY.set()
    return np.asarray(out, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# stumpy's compilation, once per machine (numba's on-disk cache) and prepared off the page's thread

# Measured on a busy 2-core machine: a process's first stump compiles for ~60 s without numba's on-disk cache (an
# empty NUMBA_CACHE_DIR forces that) and loads the compiled code in ~2 s with it.
COMPILE_S = 60.0
LOAD_S = 5.0

_STUMPY = []
_IMPORT_LOCK = threading.Lock()
_STUMP_LOCK = threading.Lock()
_READY = threading.Event()  # a matrix profile has been computed in this process: the next one takes ~1 s
_warm: dict = {"thread": None, "started": None, "cached": None, "error": None}
_WARM_LOCK = threading.Lock()


def _stumpy():
    """stumpy, imported once (~4 s) with numba's on-disk cache turned on for its jitted functions: its first call
    compiles for ~60 s on a busy 2-core machine, every later process then loads the compiled code in seconds.
    stumpy.cache.save() does the same but recompiles everything at once; _enable is the part we need."""
    with _IMPORT_LOCK:
        if not _STUMPY:
            import warnings

            import stumpy
            from stumpy import cache

            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # _enable warns that it is meant to be called by save()
                    cache._enable()
            except Exception:  # a read-only install: compile in memory, as stumpy does by default
                pass
            _STUMPY.append(stumpy)
        return _STUMPY[0]


def _compiled_on_disk() -> bool | None:
    """Whether numba's on-disk cache holds stump's compiled kernel (an index file beside it; None: cannot tell)."""
    import os
    import sys

    try:
        return os.path.exists(sys.modules["stumpy.stump"]._stump._cache._cache_file._index_path)
    except (KeyError, AttributeError):  # numba's internals moved: say nothing rather than guess
        return None


def _warm_up() -> None:
    try:
        _stumpy()
        _warm["cached"] = _compiled_on_disk()
        # a tiny series compiles (or loads) the same kernels as a real one: numba specialises on types, not sizes
        matrix_profile(np.sin(np.arange(64, dtype=np.float64) / 3), 8)
    except Exception as e:  # e.g. stumpy missing: the page says so where the matrix profile would be
        _warm["error"] = f"{type(e).__name__}: {e}"


def prepare_matrix_profile() -> threading.Thread:
    """Start (once per process) a daemon thread that compiles stumpy with a tiny matrix profile; returns it."""
    with _WARM_LOCK:
        if _warm["thread"] is None:
            _warm["started"] = time.monotonic()
            _warm["thread"] = threading.Thread(target=_warm_up, name="matrix-profile-warm-up", daemon=True)
            _warm["thread"].start()
        return _warm["thread"]


def matrix_profile_state() -> tuple[str, float | None]:
    """("ready", None) once a matrix profile takes seconds in this process; ("preparing", about how many seconds
    are left) while the warm-up compiles or loads it; ("failed", None) when it could not (`matrix_profile_error`);
    ("idle", None) before anything started it."""
    if _READY.is_set():
        return "ready", None
    if _warm["error"]:
        return "failed", None
    if _warm["thread"] is None:
        return "idle", None
    expected = LOAD_S if _warm["cached"] else COMPILE_S  # unknown until stumpy is imported: the slow case
    return "preparing", max(1.0, expected - (time.monotonic() - _warm["started"]))


def matrix_profile_error() -> str | None:
    """Why the warm-up could not compute a matrix profile (None when it did not fail)."""
    return _warm["error"]
