"""Background jobs: real worker processes, the queue cap, cancel, SIGKILL, failures, restarts."""

from __future__ import annotations

import os
import signal
import time

import pytest

from engine.runs import Run
from engine.runs.jobs import JobManager

QUICK = {"log_every_s": 0.1, "snapshot_every_s": 0.2, "checkpoint_every_s": 0.3, "eval_batch": 100}
SMALL_AE = {"latent_dim": 4, "hidden": [32]}


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def manager(tmp_path):
    jm = JobManager(tmp_path / "runs", max_concurrent=1, poll_interval=0.1)
    yield jm
    jm.shutdown(cancel=True)


def test_queue_runs_one_at_a_time_under_a_cap_of_one(manager):
    runs = [manager.submit("ae", "mnist-5k", SMALL_AE, {**QUICK, "seconds": 0.5}) for _ in range(2)]
    most_running = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = [r.status().state for r in runs]
        most_running = max(most_running, states.count("running"))
        if all(s == "done" for s in states):
            break
        time.sleep(0.05)
    assert [r.status().state for r in runs] == ["done", "done"]
    assert most_running == 1
    assert all(r.status().final_metrics["mse"] > 0 for r in runs)
    assert all(r.status().threads >= 1 for r in runs)


def test_sigkill_leaves_a_loadable_checkpoint_marked_interrupted_then_resume(manager):
    run = manager.submit("ae", "mnist-5k", SMALL_AE, {**QUICK, "seconds": 30})
    wait_for(lambda: len(run.checkpoints()) >= 2, what="two checkpoints")
    os.kill(run.status().pid, signal.SIGKILL)
    wait_for(lambda: run.status().state == "interrupted", timeout=10, what="interrupted state")
    assert "SIGKILL" in run.status().error
    model, header = run.load_model()  # the last checkpoint survived the kill
    assert header["step"] > 0
    step_at_kill = header["step"]
    manager.resume(run.id)
    # status.json still holds the killed worker's last logged step: wait for a new checkpoint instead
    wait_for(lambda: run.checkpoints()[-1][0] > step_at_kill, what="the resumed run to train on")
    run.request_cancel()  # stop it soon: resuming works, the rest of the 30 s are not needed
    assert manager.wait(run.id, timeout=60) == "cancelled"
    steps = [r["step"] for r in run.metrics()]
    assert steps == sorted(set(steps))  # one continuous curve: nothing logged twice after the resume
    assert run.status().step > step_at_kill


def test_a_worker_that_raises_leaves_the_run_failed_with_the_error(manager, tmp_path):
    bad = tmp_path / "digits.npz"
    bad.write_bytes(b"garbage, not an npz archive")
    run = manager.submit("ae", f"npz:{bad}", SMALL_AE, {"epochs": 1})
    assert manager.wait(run.id, timeout=60) == "failed"
    assert "digits.npz" in run.status().error
    assert manager.runs()  # the manager (the server) carries on


def test_cancel_stops_a_running_job_within_two_seconds(manager):
    run = manager.submit("ae", "mnist-5k", SMALL_AE, {**QUICK, "seconds": 60})
    wait_for(lambda: run.status().step > 0, what="training to start")
    asked = time.monotonic()
    manager.cancel(run.id)
    wait_for(lambda: run.status().state == "cancelled", timeout=10, what="cancelled")
    assert time.monotonic() - asked < 2.0
    assert manager.cancel(run.id) == "cancelled"  # cancelling twice is harmless


def test_cancel_of_a_queued_run_and_delete(manager):
    first = manager.submit("ae", "mnist-5k", SMALL_AE, {**QUICK, "seconds": 60})
    second = manager.submit("ae", "mnist-5k", SMALL_AE, {**QUICK, "seconds": 60})
    assert second.status().state == "queued"
    assert manager.cancel(second.id) == "cancelled"
    manager.delete(first.id)
    assert not first.path.exists()
    assert [r.id for r in manager.runs()] == [second.id]


def test_a_restarted_manager_lists_every_run_and_notices_dead_workers(tmp_path):
    runs_dir = tmp_path / "runs"
    first = JobManager(runs_dir, max_concurrent=1, poll_interval=0.1)
    run = first.submit("ae", "mnist-5k", SMALL_AE, {**QUICK, "seconds": 30})
    queued = first.submit("pca", "mnist-5k", {"latent_dim": 8})
    wait_for(lambda: run.checkpoints(), what="a checkpoint")
    first.shutdown()  # the server goes away; its worker keeps training in its own session
    assert run.status().state == "running"

    second = JobManager(runs_dir, max_concurrent=1, poll_interval=0.1)
    try:
        assert {r.id for r in second.runs()} == {run.id, queued.id}
        assert second.active() == [run.id]  # the orphan still counts against the cap
        assert queued.status().state == "queued"
        os.kill(run.status().pid, signal.SIGKILL)  # dies while no manager of its own watches
        wait_for(lambda: run.status().state == "interrupted", timeout=10, what="interrupted")
        assert second.wait(queued.id, timeout=60) == "done"  # the queue moved on
    finally:
        second.shutdown(cancel=True)


def test_resume_refuses_runs_that_are_not_stopped(manager, tmp_path):
    run = manager.submit("pca", "mnist-5k", {"latent_dim": 4})
    assert manager.wait(run.id, timeout=60) == "done"
    with pytest.raises(ValueError, match="only interrupted"):
        manager.resume(run.id)
    assert isinstance(Run(run.path), Run)


@pytest.mark.parametrize("text, nice", [("/autogroup-1169 nice 0\n", 0), ("/autogroup-7 nice -3\n", -3),
                                        ("", None), ("garbage\n", None), (None, None)])
def test_the_autogroup_line_is_read_or_said_absent(tmp_path, text, nice):
    from engine.runs.jobs import autogroup_nice
    path = tmp_path / "autogroup"
    if text is not None:
        path.write_text(text)
    assert autogroup_nice(path) == nice


def test_a_worker_is_started_once_even_when_raising_its_priority_fails(tmp_path, monkeypatch):
    """A container whose /proc shows no autogroup line once made every poll start the same queued run again."""
    import subprocess

    import engine.runs.jobs as jobs
    starts = []
    real_popen = subprocess.Popen

    def counting_popen(*args, **kwargs):
        starts.append(args[0])
        return real_popen(*args, **kwargs)

    def broken(pid, boost):
        raise RuntimeError("no priority for you")

    monkeypatch.setattr(jobs.subprocess, "Popen", counting_popen)
    monkeypatch.setattr(jobs, "raise_priority", broken)
    monkeypatch.setattr(jobs, "autogroup_nice", lambda path="": None)
    jm = JobManager(tmp_path / "runs", max_concurrent=1, poll_interval=0.05)
    try:
        with pytest.raises(RuntimeError):  # submit's own poll starts the worker, then meets the failure
            jm.submit("ae", "mnist-5k", SMALL_AE, {**QUICK, "seconds": 0.5})
        (run,) = jm.runs()
        for _ in range(5):  # each poll after the first failure must see the worker as started
            try:
                jm.poll()
            except RuntimeError:
                pass
        wait_for(lambda: run.status().state not in ("queued", "running"), what="the run to finish")
        assert run.status().state == "done"
        assert len(starts) == 1
    finally:
        jm.shutdown(cancel=True)
