"""engine/anomaly.py against brute-force references, and a short real one-class run."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data import load_dataset
from engine.eval import roc
from engine.lab import anomaly
from engine.runs import Run, make_run_config
from engine.runs.loaded import checkpoint_steps, load_run
from engine.train import train_run
from ui.widgets import STEPS, log_grid, snap


def pairwise_auroc(s: np.ndarray, is_anomaly: np.ndarray) -> float:
    """P(s(anomaly) > s(normal)) over every (anomaly, normal) pair, ties counting one half."""
    s_a, s_n = s[is_anomaly], s[~is_anomaly]
    wins = (s_a[:, None] > s_n[None, :]).sum() + 0.5 * (s_a[:, None] == s_n[None, :]).sum()
    return float(wins / (len(s_a) * len(s_n)))


def brute_force_average_precision(s: np.ndarray, is_anomaly: np.ndarray) -> float:
    """Σ over distinct thresholds t (high to low) of (R(t) − R(previous t)) · P(t), flagging s ≥ t."""
    ap, prev_recall = 0.0, 0.0
    for t in sorted(set(s.tolist()), reverse=True):
        flagged = s >= t
        tp = (flagged & is_anomaly).sum()
        recall, precision = tp / is_anomaly.sum(), tp / flagged.sum()
        ap += (recall - prev_recall) * precision
        prev_recall = recall
    return float(ap)


@pytest.mark.parametrize("seed", range(4))
def test_auroc_and_average_precision_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, 300)
    normal = [0] if seed % 2 else [0, 3]
    is_anomaly = ~np.isin(y, normal)
    s = rng.gamma(2.0, 0.01, len(y)) + 0.01 * is_anomaly * rng.random(len(y))  # anomalies a bit higher
    if seed == 3:
        s = np.round(s, 3)  # many ties: each tie counts one half
    ev = roc.evaluate(s, y, normal)
    assert ev.auroc == pytest.approx(pairwise_auroc(s, is_anomaly), abs=1e-12)
    assert ev.average_precision == pytest.approx(brute_force_average_precision(s, is_anomaly), abs=1e-12)
    assert 0.5 < ev.auroc < 1.0  # the shift makes anomalies score higher, but not perfectly
    assert (ev.n_normal, ev.n_anomaly) == ((~is_anomaly).sum(), is_anomaly.sum())


def test_roc_curve_runs_from_corner_to_corner_and_thins():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 2000)
    s = rng.random(2000) + 0.3 * (y != 0)
    full = roc.evaluate(s, y, [0], max_points=10_000)
    thin = roc.evaluate(s, y, [0], max_points=50)
    assert len(full.fpr) > 50 and len(thin.fpr) <= 50
    for ev in (full, thin):
        assert (ev.fpr[0], ev.tpr[0], ev.fpr[-1], ev.tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
        assert (np.diff(ev.fpr) >= 0).all() and (np.diff(ev.tpr) >= 0).all()
        assert np.isinf(ev.thresholds[0]) and (np.diff(ev.thresholds) <= 0).all()
    assert thin.auroc == full.auroc


def test_every_roc_point_is_what_at_threshold_counts():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 400)
    s = np.round(rng.random(400) + 0.4 * (y != 0), 2)
    a = y != 0
    ev = roc.evaluate(s, y, [0], max_points=10_000)
    for f, t, thr in zip(ev.fpr[1:], ev.tpr[1:], ev.thresholds[1:]):
        counts = roc.at_threshold(s, a, np.nextafter(thr, -np.inf))  # roc_curve flags s ≥ thr
        assert (counts["fpr"], counts["recall"]) == pytest.approx((f, t))


def test_at_threshold_counts_by_hand():
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    a = np.array([False, False, True, False, True, True])
    got = roc.at_threshold(s, a, 0.35)  # flags 0.4 (normal), 0.5 and 0.6 (anomalies)
    assert {k: got[k] for k in ("tp", "fp", "fn", "tn", "flagged")} == {"tp": 2, "fp": 1, "fn": 1, "tn": 2,
                                                                        "flagged": 3}
    assert (got["precision"], got["recall"], got["fpr"]) == pytest.approx((2 / 3, 2 / 3, 1 / 3))
    assert roc.at_threshold(s, a, 0.4)["fp"] == 0  # strictly above τ: s = τ is not flagged
    none = roc.at_threshold(s, a, 1.0)
    assert (none["flagged"], none["precision"], none["recall"], none["fpr"]) == (0, 1.0, 0.0, 0.0)
    every = roc.at_threshold(s, a, 0.0)
    assert (every["precision"], every["recall"], every["fpr"]) == pytest.approx((0.5, 1.0, 1.0))


def test_default_threshold_lets_five_percent_of_normal_images_through():
    rng = np.random.default_rng(2)
    s, a = rng.random(4000), rng.random(4000) < 0.5
    tau = roc.default_threshold(s, a)
    assert (s[~a] > tau).mean() == pytest.approx(0.05, abs=0.002)
    analysis = anomaly.analyse(s, np.where(a, 1, 0), [0])
    assert analysis.default_tau == tau
    # the page's slider (ui/widgets.py): log-spaced options from the lowest score to the highest
    grid = log_grid(analysis.scores)
    logs = np.log(grid)
    assert 150 <= len(logs) <= STEPS and (np.diff(logs) > 0).all()
    ratio = (np.log(s.max()) - np.log(s.min())) / (STEPS - 1)  # the grid's step in log τ
    assert np.allclose(np.diff(logs), ratio, atol=0.01)  # evenly spaced, up to 3-digit rounding
    assert abs(logs[0] - np.log(s.min())) < 0.01 and abs(logs[-1] - np.log(s.max())) < 0.01
    start = snap(grid, analysis.default_tau)
    assert start in grid and abs(np.log(start / tau)) <= ratio / 2 + 0.01  # the nearest grid value


def test_example_groups_and_histogram():
    s = np.array([0.5, 0.1, 0.9, 0.3, 0.7, 0.2])
    a = np.array([True, False, True, False, False, True])
    assert roc.most_anomalous(s, 2).tolist() == [2, 4]
    assert roc.most_anomalous(s, 9, among=~a).tolist() == [4, 3, 1]
    assert roc.most_normal(s, 2, among=a).tolist() == [5, 0]
    hist = roc.histogram(s, a, bins=4)
    assert hist["normal"].sum() == 3 and hist["anomaly"].sum() == 3
    assert hist["edges"][0] == 0.1 and hist["edges"][-1] >= 0.9
    assert np.allclose(np.diff(np.log(hist["edges"])), np.log(hist["edges"][1] / hist["edges"][0]))  # log bins
    groups = anomaly.example_groups(anomaly.analyse(s, np.where(a, 7, 0), [0]), k=2)
    assert groups["hidden_anomalies"].tolist() == [5, 0] and groups["false_alarms"].tolist() == [4, 3]


def test_bad_input_says_what_to_do():
    y = np.array([0, 0, 1, 1])
    with pytest.raises(ValueError, match="both normal and anomalous"):
        roc.evaluate(np.ones(4), y, [0, 1])
    with pytest.raises(ValueError, match="at least one normal class"):
        roc.evaluate(np.ones(4), y, [])
    with pytest.raises(ValueError, match="not finite"):
        roc.evaluate(np.array([0.1, np.nan, 0.2, 0.3]), y, [0])
    with pytest.raises(ValueError, match="4 scores but 3 labels"):
        roc.at_threshold(np.ones(4), np.ones(3, bool), 0.5)
    with pytest.raises(ValueError, match="cannot score images on its own"):
        anomaly.one_class_settings("cvae", [0])


def test_one_class_settings_fit_every_candidate_model():
    assert "conv_ae" in anomaly.candidate_models() and "cvae" not in anomaly.candidate_models()
    for model in anomaly.candidate_models():
        model_config, train = anomaly.one_class_settings(model, [3, 0, 3], latent_dim=8, steps=50)
        assert train == {"classes": [0, 3], "steps": 50}
        config = make_run_config(model, "mnist-5k", model_config, train)  # validates both parts
        assert config["train"]["classes"] == [0, 3] and config["model_config"]["latent_dim"] == 8


# -- a real one-class run ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_class_run(tmp_path_factory):
    """conv_ae trained on digit 0 only (10 epochs of the 400 zeros = 70 steps, one thread: ~5 s)."""
    parent = tmp_path_factory.mktemp("anomaly")
    run = Run.create(parent, make_run_config("conv_ae", "mnist-5k", {"latent_dim": 16},
                                             {"classes": [0], "epochs": 10, "threads": 1}))
    metrics = train_run(run)
    return run, metrics


def test_a_one_class_run_separates_its_digit_from_the_others(one_class_run):
    run, metrics = one_class_run
    data = load_dataset("mnist-5k")
    assert run.status().n_train == int((data.y_train == 0).sum())  # trained on zeros only
    s = anomaly.scores(load_run(run), data)
    y = data.y_test.numpy()
    assert len(s) == len(y) == len(data.x_test)  # … and scored on the whole test split
    ev = roc.evaluate(s, y, [0])
    print(f"one-class conv_ae, 10 epochs on zeros: AUROC {ev.auroc:.4f}, AP {ev.average_precision:.4f}")
    assert ev.auroc > 0.9
    assert metrics["anomaly_auroc"] == pytest.approx(ev.auroc, abs=1e-6)  # the run's own final report
    assert "knn_accuracy" not in metrics  # a kNN on zeros alone cannot tag other digits

    # Training is what separates them: the untrained weights (the run's step-0 checkpoint) do not.
    assert checkpoint_steps(run)[0] == 0
    untrained = roc.evaluate(anomaly.scores(load_run(run, step=0), data), y, [0]).auroc
    print(f"untrained (step 0): AUROC {untrained:.4f}")
    assert untrained < ev.auroc - 0.2

    # The same scores against labels that carry no information: chance, whichever digit is "normal".
    rng = np.random.default_rng(0)
    shuffled = [roc.evaluate(s, rng.permutation(y), [0]).auroc for _ in range(20)]
    print(f"shuffled labels: AUROC {np.mean(shuffled):.3f} ± {np.std(shuffled):.3f}")
    assert abs(np.mean(shuffled) - 0.5) < 0.03
    assert max(abs(a - 0.5) for a in shuffled) < 0.15


def test_a_run_on_every_class_reports_no_auroc(finished_pca_run):
    metrics = Run(finished_pca_run).status().final_metrics
    assert "anomaly_auroc" not in metrics and "knn_accuracy" in metrics


def test_no_auroc_when_nothing_is_left_out():
    """classes = every class is a valid TrainConfig: the run must finish, only without an AUROC."""
    from engine.models import build_model

    data = load_dataset("mnist-5k")
    model = build_model("pca", {"latent_dim": 4}).fit(data.x_train[:500], seed=0)
    assert roc.run_auroc(model, data, range(10)) == {}
    assert 0.5 < roc.run_auroc(model, data, [1])["anomaly_auroc"] <= 1


def test_pairwise_reference_is_itself_right():
    """The reference on a case small enough to count by eye: 3 anomalies × 2 normal images."""
    s = np.array([0.9, 0.4, 0.4, 0.1, 0.4])
    a = np.array([True, True, False, False, True])
    # pairs (a, n): (0.9 > 0.4, 0.9 > 0.1, 0.4 = 0.4, 0.4 > 0.1, 0.4 = 0.4, 0.4 > 0.1) → 4 + 2·½ = 5 of 6
    assert pairwise_auroc(s, a) == pytest.approx(5 / 6)
