"""Scoring an anomaly detector: ROC, AUROC, average precision, a threshold's confusion counts.

An autoencoder trained on the normal classes alone (TrainConfig.classes) learns to rebuild those
well and everything else poorly, so its reconstruction error is an anomaly score:

    s(x) = ‖x − x̂‖² / 784              (per-pixel MSE of one image; higher = more anomalous)
    flag x as an anomaly when s(x) > τ

How good the score is, independently of τ, is the area under the ROC curve:

    AUROC = P(s(anomaly) > s(normal))  (ties count one half; 0.5 = chance, 1 = perfect ranking)

and for one τ: precision = TP / (TP + FP), recall = TPR = TP / (TP + FN), FPR = FP / (FP + TN),
where "positive" means "flagged as an anomaly". Everything here is numpy / scikit-learn on the
test split, which stays whole when a run trains on some classes only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.data import Dataset
from engine.eval.metrics import conditioning, per_image_mse, reconstruct_all

DEFAULT_QUANTILE = 95.0  # the default τ: this percentile of the normal test images' scores (FPR ≈ 5 %)
ROC_POINTS = 300  # at most this many points of the ROC curve are kept for plotting


def anomaly_labels(y: np.ndarray, normal_classes) -> np.ndarray:
    """(N,) bool: True where the label is not one of the normal classes (the positives)."""
    normal = sorted({int(c) for c in normal_classes})
    if not normal:
        raise ValueError("choose at least one normal class")
    return ~np.isin(np.asarray(y), normal)


def check_scores(scores: np.ndarray, is_anomaly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s, a = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(is_anomaly, dtype=bool).ravel()
    if s.shape != a.shape:
        raise ValueError(f"{len(s)} scores but {len(a)} labels: score the same images you label")
    if not np.isfinite(s).all():
        raise ValueError("some anomaly scores are not finite (NaN or inf): the model's reconstructions are broken")
    return s, a



# ---------------------------------------------------------------------------------------------
# evaluation


@dataclass
class Evaluation:
    """How well scores separate normal from anomalous test images, over every threshold."""

    auroc: float  # P(s(anomaly) > s(normal)), ties one half
    average_precision: float  # area under the precision-recall curve (chance = the anomaly fraction)
    fpr: np.ndarray  # (P,) the ROC curve, thinned to ≤ ROC_POINTS points, from (0, 0) to (1, 1)
    tpr: np.ndarray  # (P,)
    thresholds: np.ndarray  # (P,) τ giving each point (flag s ≥ τ); the first is +inf
    n_normal: int
    n_anomaly: int

    def as_dict(self) -> dict:
        return {"auroc": self.auroc, "average_precision": self.average_precision, "n_normal": self.n_normal,
                "n_anomaly": self.n_anomaly, "fpr": self.fpr.tolist(), "tpr": self.tpr.tolist(),
                "thresholds": self.thresholds.tolist()}


def _thin(n: int, keep: int) -> np.ndarray:
    """Indices of ≤ keep points spread evenly over 0 … n−1, both ends included."""
    if n <= keep:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, keep).round().astype(int))


def evaluate(scores: np.ndarray, y_test: np.ndarray, normal_classes, max_points: int = ROC_POINTS) -> Evaluation:
    """AUROC, average precision and the ROC curve of `scores` for "not one of normal_classes".

    Raises ValueError when the test labels hold only normal or only anomalous images (no ROC then).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    s, a = check_scores(scores, anomaly_labels(y_test, normal_classes))
    n_anomaly = int(a.sum())
    if n_anomaly == 0 or n_anomaly == len(a):
        raise ValueError("the test split needs both normal and anomalous images to draw a ROC curve; "
                         "choose normal classes that leave some classes out")
    fpr, tpr, thresholds = roc_curve(a, s)  # drop_intermediate: only the corners of the staircase
    keep = _thin(len(fpr), max_points)
    return Evaluation(auroc=float(roc_auc_score(a, s)), average_precision=float(average_precision_score(a, s)),
                      fpr=fpr[keep], tpr=tpr[keep], thresholds=thresholds[keep],
                      n_normal=len(a) - n_anomaly, n_anomaly=n_anomaly)


def default_threshold(scores: np.ndarray, is_anomaly: np.ndarray, quantile: float = DEFAULT_QUANTILE) -> float:
    """τ at the `quantile`-th percentile of the normal images' scores: about (100 − quantile) % false alarms."""
    s, a = check_scores(scores, is_anomaly)
    normal = s[~a] if (~a).any() else s
    return float(np.percentile(normal, quantile))


def at_threshold(scores: np.ndarray, is_anomaly: np.ndarray, tau: float) -> dict:
    """The confusion counts and rates when every image with s(x) > τ is flagged as an anomaly.

    precision is 1 by convention when nothing is flagged (no false alarm was raised).
    """
    from sklearn.metrics import confusion_matrix, precision_score, recall_score

    s, a = check_scores(scores, is_anomaly)
    flagged = s > tau
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(a, flagged, labels=[False, True]).ravel())
    return {
        "tau": float(tau),
        "flagged": tp + fp,
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "precision": float(precision_score(a, flagged, zero_division=1.0)),
        "recall": float(recall_score(a, flagged, zero_division=0.0)),  # the true positive rate
        "fpr": fp / (fp + tn) if fp + tn else 0.0,
    }


# ---------------------------------------------------------------------------------------------
# examples to look at


def most_anomalous(scores: np.ndarray, k: int = 16, among: np.ndarray | None = None) -> np.ndarray:
    """Indices of the k highest scores, highest first (only where `among` (N,) bool is True, if given)."""
    s = np.asarray(scores, dtype=np.float64)
    idx = np.arange(len(s)) if among is None else np.flatnonzero(among)
    order = np.argsort(-s[idx], kind="stable")
    return idx[order[:k]]


def most_normal(scores: np.ndarray, k: int = 16, among: np.ndarray | None = None) -> np.ndarray:
    """Indices of the k lowest scores, lowest first (e.g. among the anomalies: those that slip through)."""
    s = np.asarray(scores, dtype=np.float64)
    idx = np.arange(len(s)) if among is None else np.flatnonzero(among)
    order = np.argsort(s[idx], kind="stable")
    return idx[order[:k]]


def histogram(scores: np.ndarray, is_anomaly: np.ndarray, bins: int = 60, log: bool = True) -> dict:
    """Counts of normal and anomalous scores over shared bins (log-spaced by default: errors are skewed).

    Returns {"edges": (bins+1,), "centers": (bins,), "widths": (bins,), "normal": (bins,), "anomaly": (bins,),
    "log": whether the bins are log-spaced (not when a score is 0: a perfect reconstruction)}.
    """
    s, a = check_scores(scores, is_anomaly)
    lo, hi = float(s.min()), float(s.max())
    log = log and lo > 0
    if log:
        edges = np.geomspace(lo, hi * (1 + 1e-9), bins + 1)
        centers = np.sqrt(edges[:-1] * edges[1:])
    else:
        edges = np.linspace(lo, hi + 1e-12, bins + 1)
        centers = (edges[:-1] + edges[1:]) / 2
    return {"edges": edges, "centers": centers, "widths": np.diff(edges), "log": log,
            "normal": np.histogram(s[~a], edges)[0], "anomaly": np.histogram(s[a], edges)[0]}


def run_auroc(model, dataset: Dataset, normal_classes) -> dict[str, float]:
    """The one-class scores a training run reports at the end: AUROC and average precision on the test split.

    `dataset` may have a filtered train split (Dataset.only_classes): only the test split is used.
    Empty when the test split has no anomaly (every class normal) or no normal image: no ROC then.
    """
    a = anomaly_labels(dataset.y_test.cpu().numpy(), normal_classes)
    if a.all() or not a.any():
        return {}
    y = conditioning(model, dataset.y_test)
    s = per_image_mse(reconstruct_all(model, dataset.x_test, y).cpu(), dataset.x_test.cpu()).numpy()
    ev = evaluate(s, dataset.y_test.cpu().numpy(), normal_classes)
    return {"anomaly_auroc": ev.auroc, "anomaly_ap": ev.average_precision}

