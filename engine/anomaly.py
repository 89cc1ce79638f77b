"""Anomaly detection by reconstruction error: train on normal images only, flag what rebuilds badly.

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

DEFAULT_QUANTILE = 95.0  # the default τ: this percentile of the normal test images' scores (FPR ≈ 5 %)
ROC_POINTS = 300  # at most this many points of the ROC curve are kept for plotting
TAU_STEPS = 200  # thresholds a slider offers


# ---------------------------------------------------------------------------------------------
# scores and labels


def scores(loaded, dataset: Dataset) -> np.ndarray:
    """Anomaly scores s(x) (N_test,): each test image's reconstruction MSE under the run's model."""
    from engine.latent import split_errors

    return split_errors(loaded, dataset, "test")


def anomaly_labels(y: np.ndarray, normal_classes) -> np.ndarray:
    """(N,) bool: True where the label is not one of the normal classes (the positives)."""
    normal = sorted({int(c) for c in normal_classes})
    if not normal:
        raise ValueError("choose at least one normal class")
    return ~np.isin(np.asarray(y), normal)


def _check(scores: np.ndarray, is_anomaly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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

    s, a = _check(scores, anomaly_labels(y_test, normal_classes))
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
    s, a = _check(scores, is_anomaly)
    normal = s[~a] if (~a).any() else s
    return float(np.percentile(normal, quantile))


def at_threshold(scores: np.ndarray, is_anomaly: np.ndarray, tau: float) -> dict:
    """The confusion counts and rates when every image with s(x) > τ is flagged as an anomaly.

    precision is 1 by convention when nothing is flagged (no false alarm was raised).
    """
    from sklearn.metrics import confusion_matrix, precision_score, recall_score

    s, a = _check(scores, is_anomaly)
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
    s, a = _check(scores, is_anomaly)
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
    from engine.metrics import per_image_mse, reconstruct_all

    a = anomaly_labels(dataset.y_test.cpu().numpy(), normal_classes)
    if a.all() or not a.any():
        return {}
    y = dataset.y_test if getattr(model, "conditional", False) else None
    s = per_image_mse(reconstruct_all(model, dataset.x_test, y).cpu(), dataset.x_test.cpu()).numpy()
    ev = evaluate(s, dataset.y_test.cpu().numpy(), normal_classes)
    return {"anomaly_auroc": ev.auroc, "anomaly_ap": ev.average_precision}


# ---------------------------------------------------------------------------------------------
# what the page shows, in one call


@dataclass
class Analysis:
    """Everything the anomaly page draws for one run and one choice of normal classes."""

    scores: np.ndarray  # (N_test,) s(x)
    y: np.ndarray  # (N_test,) the test labels
    is_anomaly: np.ndarray  # (N_test,) bool
    evaluation: Evaluation
    tau_grid: list[float]  # the thresholds a slider offers, evenly spaced in log τ, increasing
    default_tau: float  # the grid value nearest the DEFAULT_QUANTILE-th percentile of the normal scores
    hist: dict  # histogram(): shared log-spaced bins, counts per group

    def at(self, tau: float) -> dict:
        return at_threshold(self.scores, self.is_anomaly, tau)

    def snap(self, tau: float) -> float:
        """The grid value nearest τ (in log τ, the slider's own spacing)."""
        grid = np.asarray(self.tau_grid)
        return float(grid[np.argmin(np.abs(np.log(grid) - np.log(max(tau, 1e-300))))])


def tau_grid(scores: np.ndarray, n: int = TAU_STEPS) -> list[float]:
    """About n thresholds from the lowest score to the highest, evenly spaced in log τ (reconstruction
    errors spread over decades, like the histogram's axis), rounded to 3 significant digits for links."""
    s = np.asarray(scores, dtype=np.float64)
    hi = float(s.max()) if s.max() > 0 else 1.0
    lo = float(s.min()) if s.min() > 0 else hi * 1e-4
    grid = np.geomspace(lo, hi, n) if hi > lo else np.array([lo])
    return sorted({float(f"{g:.3g}") for g in grid})


def analyse(scores: np.ndarray, y_test: np.ndarray, normal_classes, bins: int = 60) -> Analysis:
    """Scores of the test split → the evaluation, the threshold grid and its default, the histogram."""
    y = np.asarray(y_test)
    s, a = _check(scores, anomaly_labels(y, normal_classes))
    out = Analysis(scores=s, y=y, is_anomaly=a, evaluation=evaluate(s, y, normal_classes), tau_grid=tau_grid(s),
                   default_tau=0.0, hist=histogram(s, a, bins))
    out.default_tau = out.snap(default_threshold(s, a))
    return out


def example_groups(analysis: Analysis, k: int = 8) -> dict[str, np.ndarray]:
    """Test-image indices worth looking at, k per group, in the order the group's title says."""
    a, s = analysis.is_anomaly, analysis.scores
    return {
        "most_anomalous": most_anomalous(s, k),  # the highest scores overall
        "hidden_anomalies": most_normal(s, k, among=a),  # anomalies the model rebuilds best: missed first
        "false_alarms": most_anomalous(s, k, among=~a),  # normal images it rebuilds worst
        "most_normal": most_normal(s, k, among=~a),  # the model's idea of a typical normal image
    }


def examples(loaded, dataset: Dataset, analysis: Analysis, k: int = 8) -> dict[str, list[dict]]:
    """example_groups with what to show for each image: {index, y, score, x (28, 28), x_hat (28, 28)}."""
    from engine.latent import reconstruct

    out = {}
    for name, idx in example_groups(analysis, k).items():
        x = dataset.x_test[idx].cpu()  # (k, 1, 28, 28)
        x_hat = reconstruct(loaded, x) if len(idx) else np.zeros((0, 28, 28))  # (k, 28, 28)
        out[name] = [{"index": int(i), "y": int(analysis.y[i]), "score": float(analysis.scores[i]),
                      "x": x[j, 0].numpy(), "x_hat": x_hat[j]} for j, i in enumerate(idx)]
    return out


# ---------------------------------------------------------------------------------------------
# a one-class run's settings


# Measured on mnist-5k, digit 0 normal, conv_ae, 420 steps, seeds 0 and 1: AUROC 0.994 / 0.996 with
# latent_dim 8, 0.993 / 0.990 with 16, 0.989 / 0.994 with 32, 0.991 / 0.991 with 16 and the BCE loss.
# A narrow bottleneck keeps only what the normal digits share; 8 climbs a little slower at first
# (0.95-0.96 after 75 steps, 16: 0.97) but ends highest. More in tests/test_quality.py.
DEFAULT_MODEL = "conv_ae"
DEFAULT_LATENT_DIM = 8
DEFAULT_LOSS = "mse"
DEFAULT_SECONDS = 30


def candidate_models() -> list[str]:
    """Registered models that can score an image alone: reconstruction models not conditioned on y.

    A conditional model (cvae) needs the image's class to rebuild it, and at test time the class is
    exactly what we do not know.
    """
    from engine.models import MODELS

    return [name for name, cls in MODELS.items()
            if getattr(cls, "kind", "reconstruction") == "reconstruction" and not getattr(cls, "conditional", False)]


def one_class_settings(model: str, normal_classes, latent_dim: int = DEFAULT_LATENT_DIM,
                       seconds: float = DEFAULT_SECONDS, loss: str = DEFAULT_LOSS) -> tuple[dict, dict]:
    """(model_config, train) for JobManager.submit: train `model` on the normal classes only."""
    from dataclasses import fields

    from engine.models import get_model_class

    if model not in candidate_models():
        raise ValueError(f"{model} cannot score images on its own; choose one of {', '.join(candidate_models())}")
    normal = sorted({int(c) for c in normal_classes})
    if not normal:
        raise ValueError("choose at least one normal class")
    model_config = {"latent_dim": int(latent_dim)}
    if "loss" in {f.name for f in fields(get_model_class(model).config_cls)}:
        model_config["loss"] = loss
    return model_config, {"classes": normal, "seconds": float(seconds)}
