"""The run directory: atomic files, validated loading, never a crash of the caller."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from engine.models import build_model
from engine.runs import (Run, RunError, find_run, list_runs, load_model_from_checkpoint, load_optimizer_state,
                         make_run_config, read_checkpoint, save_checkpoint)


@pytest.fixture
def run(tmp_path):
    return Run.create(tmp_path, make_run_config("ae", "mnist-5k", {"latent_dim": 4, "hidden": [16]}))


@pytest.fixture
def trained(run):
    """A model with weights and Adam state after two steps, saved as the run's checkpoint."""
    torch.manual_seed(0)
    model = build_model("ae", run.config["model_config"])
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for _ in range(2):
        opt.zero_grad()
        model.loss_step(torch.rand(4, 1, 28, 28)).loss.backward()
        opt.step()
    header = {"model": "ae", "model_config": run.config["model_config"], "epoch": 0}
    path = run.save_checkpoint(model, 2, header, {"adam": opt})
    return model.eval(), opt, path


def test_create_writes_config_and_queued_status(run):
    assert run.status().state == "queued"
    config = run.config
    assert config["model"] == "ae" and config["dataset"] == "mnist-5k" and config["id"] == run.id
    assert {"torch", "engine", "python"} <= set(config["versions"])
    assert (run.path / "checkpoints").is_dir() and (run.path / "snapshots").is_dir()
    assert not list(run.path.glob(".*tmp"))  # no temp files left behind


def test_status_updates_merge_and_reject_unknown_states(run):
    run.set_status(state="running", step=5)
    run.set_status(progress=0.5)
    assert run.status().step == 5 and run.status().progress == 0.5
    with pytest.raises(RunError, match="unknown run state"):
        run.set_status(state="exploded")


def test_problem_and_summary_follow_the_files_they_read(run, trained):
    """problem() and summary() are remembered per file version (Run.version): a status rewritten, a checkpoint torn
    in place under its own name or removed gives a new answer at once, and a caller's copy is its own."""
    assert run.problem() is None and run.summary()["state"] == "queued"
    run.set_status(state="done", step=2)
    assert (run.summary()["state"], run.summary()["step"]) == ("done", 2)
    path = trained[2]
    path.write_bytes(path.read_bytes()[:100])  # the same file, torn
    assert "no checkpoint loads" in run.problem()
    assert run.summary()["damaged"] == run.problem()
    path.unlink()
    assert "finished without a checkpoint" in run.problem()
    mine = run.summary()
    assert isinstance(mine["metrics"], dict)
    mine["state"], mine["metrics"]["mangled"] = "mangled", -1.0
    assert run.summary()["state"] == "done" and "mangled" not in run.summary()["metrics"]


def test_a_conditional_status_update_never_moves_a_run_back(run):
    """The job manager's "running" goes only over "queued": a worker that is already done stays done."""
    run.set_status(state="done", device="cpu", step=128)
    now = run.set_status(only_if=("queued",), state="running", pid=12345)
    assert now.state == "done" and now.pid is None and "pid" not in now.raw
    assert run.status() == now
    assert run.set_status(only_if=("done",), note="kept").raw["note"] == "kept"


def test_status_writers_in_parallel_lose_nothing(run):
    """Two writers (the worker and the job manager) merge into status.json: each one's fields survive."""
    import threading

    def write(prefix: str) -> None:
        for i in range(60):
            run.set_status(**{f"{prefix}{i}": i})

    threads = [threading.Thread(target=write, args=(p,)) for p in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    status = run.status()
    assert all(status.raw.get(f"{p}{i}") == i for p in ("a", "b") for i in range(60))


def test_metrics_skip_a_torn_last_line(run):
    run.log({"step": 1, "train/loss": 0.5})
    run.log({"step": 2, "train/loss": 0.4})
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "train/lo')  # a crash mid-append
    assert [r["step"] for r in run.metrics()] == [1, 2]


def test_checkpoint_round_trip_with_optimizer(trained, run):
    model, opt, path = trained
    loaded, header = run.load_model()
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(model(x), loaded(x))
    assert header["step"] == 2 and header["sha256"]
    h, tensors = read_checkpoint(path)
    state = load_optimizer_state(h, tensors, "adam")
    fresh = torch.optim.Adam(loaded.parameters(), 1e-3)
    fresh.load_state_dict(state)
    for a, b in zip(opt.state_dict()["state"].values(), fresh.state_dict()["state"].values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])


def test_checkpoint_holds_no_pickle(trained):
    _, _, path = trained
    data = path.read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    json.loads(data[8:8 + header_len])  # safetensors: an 8-byte length, a JSON header, raw tensors
    assert b"\x80\x04" not in data[:2] and not data.startswith(b"PK")


def _flip_byte(path, offset_from_end=10):
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, match", [
    ("flip", "checksum"),
    ("truncate", "truncated or damaged"),
    ("empty", "truncated or damaged"),
    ("pickle", "truncated or damaged"),
    ("foreign", "no Latent Lab header"),
])
def test_damaged_checkpoints_give_clear_errors(trained, tmp_path, damage, match):
    _, _, path = trained
    if damage == "flip":
        _flip_byte(path)
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:-100])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "pickle":
        torch.save({"weights": torch.zeros(3)}, path)  # what a careless tool would write
    elif damage == "foreign":
        from safetensors.torch import save_file
        save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(RunError, match=match):
        load_model_from_checkpoint(path)


def test_checkpoint_for_another_model_shape_is_refused(trained, tmp_path):
    model, _, _ = trained
    other = tmp_path / "step_00000001.safetensors"
    header = {"model": "ae", "model_config": {**model.config.__dict__, "latent_dim": 8}, "step": 1}
    save_checkpoint(other, model, header)  # header says latent 8, weights are latent 4
    with pytest.raises(RunError, match="does not fit"):
        load_model_from_checkpoint(other)


def test_checkpoint_with_nan_weights_is_refused(tmp_path):
    model = build_model("linear_ae", latent_dim=2)
    with torch.no_grad():
        model.encoder.weight[0, 0] = float("nan")
    path = tmp_path / "step_00000001.safetensors"
    save_checkpoint(path, model, {"model": "linear_ae", "model_config": model.config.__dict__, "step": 1})
    with pytest.raises(RunError, match="NaN"):
        load_model_from_checkpoint(path)


def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(trained, run):
    model, opt, first = trained
    newer = run.save_checkpoint(model, 7, {"model": "ae", "model_config": run.config["model_config"], "epoch": 1})
    _flip_byte(newer)
    _, header = run.load_model()
    assert header["step"] == 2
    with pytest.raises(RunError, match="checksum"):
        run.load_model(step=7)
    with pytest.raises(RunError, match="no checkpoint at step 3"):
        run.load_model(step=3)


def test_old_checkpoints_are_pruned(trained, run):
    model, _, _ = trained
    header = {"model": "ae", "model_config": run.config["model_config"], "epoch": 0}
    before = [s for s, _ in run.checkpoints()]  # the fixture's run saved its own
    for step in range(3, 10):
        run.save_checkpoint(model, step, header, keep=3, history=0)
    assert [s for s, _ in run.checkpoints()] == [7, 8, 9]
    assert before  # (they went too)


def test_old_checkpoints_thin_out_into_an_evenly_spread_history(trained, tmp_path):
    model, _, _ = trained
    run = Run.create(tmp_path, make_run_config("ae", "mnist-5k", {"latent_dim": 4, "hidden": [8]}), run_id="thin")
    header = {"model": "ae", "model_config": run.config["model_config"], "epoch": 0}
    for step in range(100):
        run.save_checkpoint(model, step, header, keep=3, history=8)
        assert len(run.checkpoints()) <= 3 + 8
    steps = [s for s, _ in run.checkpoints()]
    assert steps[0] == 0 and steps[-3:] == [97, 98, 99]  # the untrained start and the newest survive
    assert 6 <= len(steps) - 3 <= 8
    gaps = [b - a for a, b in zip(steps[:-4], steps[1:-3])]  # within the history
    assert min(gaps) > 1 and max(gaps) <= 3 * min(gaps), steps  # spread over the whole run, not bunched


def test_damaged_config_or_status_are_reported_not_raised_by_listings(tmp_path, run):
    (run.path / "status.json").write_text("{not json")
    assert run.status().state == "failed" and "not valid JSON" in run.status().error
    other = Run.create(tmp_path, make_run_config("pca", "mnist-5k"))
    (other.path / "config.json").write_text("[1, 2]")
    summaries = {r.id: r.summary() for r in list_runs(tmp_path)}
    assert "JSON object" in summaries[other.id]["error"]
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "stray.txt").write_text("x")
    assert len(list_runs(tmp_path)) == 2


def test_find_run_by_id_prefix_and_path(tmp_path, run):
    assert find_run(run.id, tmp_path).path == run.path
    assert find_run(run.id[:-2], tmp_path).path == run.path
    assert find_run(str(run.path)).path == run.path
    with pytest.raises(RunError, match="no run"):
        find_run("nope", tmp_path)
    with pytest.raises(RunError):
        find_run("../../etc", tmp_path)


def test_a_running_run_whose_process_is_gone_is_marked_interrupted(run):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    run.set_status(state="running", pid=proc.pid, pid_start="1")
    assert run.mark_if_dead() == "interrupted"
    assert "before its first checkpoint" in run.status().error
    run.set_status(state="running", pid=os.getpid(), pid_start=None)
    assert run.mark_if_dead() == "running"


def test_a_long_runs_snapshots_thin_out_and_the_newest_stay(run, monkeypatch):
    """A run at the shortest snapshot interval for a week would write millions of PNGs: past MAX_SNAPSHOTS of a
    kind, the older ones thin to an evenly spread history (the start kept), the newest kept as they are."""
    from engine.runs import store

    monkeypatch.setattr(store, "MAX_SNAPSHOTS", 12)
    monkeypatch.setattr(store, "RECENT_SNAPSHOTS", 4)
    for step in range(0, 200, 2):
        run.save_snapshot(b"png", step)
        run.save_snapshot(b"png", step, kind="samples")
    for kind in ("recon", "samples"):
        steps = [s.step for s in run.snapshots(kind)]
        assert len(steps) <= 12 and steps[0] == 0, steps
        assert steps[-4:] == [192, 194, 196, 198], steps
        gaps = [b - a for a, b in zip(steps, steps[1:-4])]
        assert max(gaps) <= 4 * min(gaps), steps  # spread over the run, not bunched at one end


def test_a_run_that_cannot_be_written_leaves_no_folder(tmp_path, monkeypatch):
    """Run.create builds the folder hidden and renames it into place: a value JSON cannot hold (NaN), or a crash
    mid-way, leaves no half run folder for the pages to trip on; a crash's leftover is cleaned later."""
    from engine.runs import store
    from engine.runs.jobs import JobManager

    with pytest.raises(ValueError):
        Run.create(tmp_path, {"model": "ae", "dataset": "mnist-5k", "model_config": {}, "train": {"lr": float("nan")}})
    assert list(tmp_path.iterdir()) == [] and list_runs(tmp_path) == []

    real = store.atomic_write_json
    monkeypatch.setattr(store, "atomic_write_json", lambda path, obj: (_ for _ in ()).throw(OSError(28, "No space"))
                        if path.name == "config.json" else real(path, obj))
    with pytest.raises(OSError):
        Run.create(tmp_path, {"model": "ae"}, run_id="full-disk")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    leftover = tmp_path / ".create-killed-abcd"  # what a SIGKILL between mkdir and rename leaves
    (leftover / "checkpoints").mkdir(parents=True)
    os.utime(leftover, (0, 0))
    JobManager(tmp_path)  # a starting job manager cleans up
    assert not leftover.exists()
    first = Run.create(tmp_path, {"model": "ae"}, run_id="same")
    with pytest.raises(FileExistsError):
        Run.create(tmp_path, {"model": "ae"}, run_id="same")
    assert [r.id for r in list_runs(tmp_path)] == [first.id]
