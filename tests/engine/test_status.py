"""The typed readers of status.json and metrics.jsonl (engine/runs/status.py)."""

from __future__ import annotations

import math

import pytest

from engine.runs import MetricsLog, Run, RunStatus, finite, make_run_config


@pytest.mark.parametrize("value, expected", [(1, 1.0), (2.5, 2.5), (-0.0, 0.0), (True, None), (False, None),
                                             (float("nan"), None), (float("inf"), None), ("3", None), (None, None),
                                             ([1], None), (10**400, None)])
def test_finite_takes_numbers_only(value, expected):
    assert finite(value) == expected


def test_a_status_reads_its_fields_with_their_types():
    status = RunStatus.parse({"state": "running", "step": 12, "epoch": 1, "progress": 0.25, "pid": 42,
                              "pid_start": "123", "device": "cpu (2 threads)", "resume": True,
                              "final_metrics": {"mse": 0.01, "class_hist": [0.5, 0.5], "bad": "x", "nan": float("nan")},
                              "last_metrics": {"test/mse": 0.02}, "control": {"lr": 1e-4}, "new_field": 7})
    assert (status.state, status.step, status.epoch, status.progress, status.pid) == ("running", 12, 1, 0.25, 42)
    assert status.resume and status.device == "cpu (2 threads)" and status.pid_start == "123"
    # numbers and lists of numbers; anything else reads as None (a score the page shows as missing)
    assert status.final_metrics == {"mse": 0.01, "class_hist": [0.5, 0.5], "bad": None, "nan": None}
    assert status.metrics == status.final_metrics and status.raw["new_field"] == 7
    assert RunStatus.parse({"state": "running", "last_metrics": {"test/mse": 0.02}}).metrics == {"test/mse": 0.02}


@pytest.mark.parametrize("raw", [{"state": "running", "step": "12", "progress": "half", "pid": 1.5, "error": 3,
                                  "final_metrics": [1, 2], "resume": "yes"},
                                 {"state": "running", "step": -4, "progress": 7.0, "epoch": True}])
def test_wrong_fields_fall_back_to_their_defaults(raw):
    status = RunStatus.parse(raw)
    assert status.state == "running" and status.step == 0 and status.epoch == 0 and status.pid is None
    assert 0.0 <= status.progress <= 1.0 and status.error is None and status.final_metrics == {}
    assert status.resume is False


@pytest.mark.parametrize("raw, why", [([], "JSON object"), ("done", "JSON object"), ({}, "unknown state None"),
                                      ({"state": "exploded"}, "unknown state 'exploded'")])
def test_anything_else_reads_as_a_failed_run_saying_why(raw, why):
    status = RunStatus.parse(raw)
    assert status.state == "failed" and why in status.error


def test_a_damaged_status_file_is_a_failed_status(tmp_path):
    run = Run.create(tmp_path, make_run_config("pca", "mnist-5k", {"latent_dim": 2}, {}))
    (run.path / "status.json").write_bytes(b"\xff\xfe{ not json")
    status = run.status()
    assert status.state == "failed" and "status.json" in status.error
    assert run.summary()["state"] == "failed"


def test_series_skips_lines_without_a_finite_number():
    records = [{"step": 1, "train/d_loss": 0.5}, {"step": 2, "judge/fid": 3.0},
               {"step": 3, "train/d_loss": float("nan")},
               {"step": 4, "train/d_loss": True}, {"train/d_loss": 0.1}, {"step": 5, "train/d_loss": -0.25}]
    log = MetricsLog(records)
    assert log.series("train/d_loss") == ([1, 5], [0.5, -0.25])
    assert MetricsLog().series("x") == ([], [])
    assert log.last("train/d_loss") == -0.25 and log.last("nothing") is None
    assert log.has("judge/fid") and not log.has("eval/mse")
    assert MetricsLog([{"elapsed": 0.5, "test/mse": 0.1}]).series("test/mse", "elapsed") == ([0.5], [0.1])


def test_a_runs_metrics_are_a_metrics_log(tmp_path):
    run = Run.create(tmp_path, make_run_config("pca", "mnist-5k", {"latent_dim": 2}, {}))
    run.log({"step": 1, "train/loss": 0.5})
    with open(run.path / "metrics.jsonl", "ab") as f:
        f.write(b'{"step": 2, "train/loss": 0.4}\n{"torn": ')  # a crash mid-append
    log = run.metrics()
    assert isinstance(log, MetricsLog) and log.series("train/loss") == ([1, 2], [0.5, 0.4])
    assert math.isclose(log.last("train/loss"), 0.4)
