"""The Anomaly detection page's engine: a one-class run's scores, their evaluation, examples, settings.

An autoencoder trained on the normal classes alone (TrainConfig.classes) learns to rebuild those
well and everything else poorly, so its reconstruction error is an anomaly score:

    s(x) = ‖x − x̂‖² / 784              (per-pixel MSE of one image; higher = more anomalous)
    flag x as an anomaly when s(x) > τ

The evaluation itself (ROC, AUROC, a threshold's counts) is engine.eval.roc.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.data import Dataset
from engine.eval.codes import reconstruct, split_errors
from engine.eval.roc import (DEFAULT_QUANTILE, Evaluation, anomaly_labels, at_threshold, check_scores,
                             default_threshold, evaluate, histogram, most_anomalous, most_normal)

__all__ = ["DEFAULT_QUANTILE", "AnomalyReport", "analyse", "candidate_models", "example_groups", "examples",
           "one_class_settings", "scores"]
from engine.models import get_model_class, models
from engine.models.settings import describe


def scores(loaded, dataset: Dataset) -> np.ndarray:
    """Anomaly scores s(x) (N_test,): each test image's reconstruction MSE under the run's model."""
    return split_errors(loaded, dataset, "test")


# ---------------------------------------------------------------------------------------------
# what the page shows, in one call


@dataclass
class AnomalyReport:
    """Everything the anomaly page draws for one run and one choice of normal classes."""

    scores: np.ndarray  # (N_test,) s(x)
    y: np.ndarray  # (N_test,) the test labels
    is_anomaly: np.ndarray  # (N_test,) bool
    evaluation: Evaluation
    default_tau: float  # the DEFAULT_QUANTILE-th percentile of the normal images' scores (about 5 % false alarms)
    hist: dict  # histogram(): shared log-spaced bins, counts per group

    def at(self, tau: float) -> dict:
        return at_threshold(self.scores, self.is_anomaly, tau)


def analyse(scores: np.ndarray, y_test: np.ndarray, normal_classes, bins: int = 60) -> AnomalyReport:
    """Scores of the test split → the evaluation, the default threshold, the histogram."""
    y = np.asarray(y_test)
    s, a = check_scores(scores, anomaly_labels(y, normal_classes))
    return AnomalyReport(scores=s, y=y, is_anomaly=a, evaluation=evaluate(s, y, normal_classes),
                         default_tau=default_threshold(s, a), hist=histogram(s, a, bins))


def example_groups(analysis: AnomalyReport, k: int = 8) -> dict[str, np.ndarray]:
    """Test-image indices worth looking at, k per group, in the order the group's title says."""
    a, s = analysis.is_anomaly, analysis.scores
    return {
        "most_anomalous": most_anomalous(s, k),  # the highest scores overall
        "hidden_anomalies": most_normal(s, k, among=a),  # anomalies the model rebuilds best: missed first
        "false_alarms": most_anomalous(s, k, among=~a),  # normal images it rebuilds worst
        "most_normal": most_normal(s, k, among=~a),  # the model's idea of a typical normal image
    }


def examples(loaded, dataset: Dataset, analysis: AnomalyReport, k: int = 8) -> dict[str, list[dict]]:
    """example_groups with what to show for each image: {index, y, score, x (28, 28), x_hat (28, 28)}."""
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
DEFAULT_STEPS = 500  # a step budget: the same model on a busy machine (AUROC ≈ 0.99 for digit 0, README)


def candidate_models() -> list[str]:
    """Registered models that can score an image alone: reconstruction models not conditioned on y.

    A conditional model (cvae) needs the image's class to rebuild it, and at test time the class is
    exactly what we do not know.
    """
    return models(encodes=True, conditional=False)


def one_class_settings(model: str, normal_classes, latent_dim: int = DEFAULT_LATENT_DIM,
                       steps: int = DEFAULT_STEPS, loss: str = DEFAULT_LOSS) -> tuple[dict, dict]:
    """(model_config, train) for JobManager.submit: train `model` on the normal classes only."""
    if model not in candidate_models():
        raise ValueError(f"{model} cannot score images on its own; choose one of {', '.join(candidate_models())}")
    normal = sorted({int(c) for c in normal_classes})
    if not normal:
        raise ValueError("choose at least one normal class")
    model_config = {"latent_dim": int(latent_dim)}
    if "loss" in {s.name for s in describe(get_model_class(model).config_cls)}:
        model_config["loss"] = loss
    if int(steps) < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    return model_config, {"classes": normal, "steps": int(steps)}
