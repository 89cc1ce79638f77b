"""Background jobs: real worker processes, the queue cap, cancel, SIGKILL, failures, restarts.

The tests that take the `manager` (or `backend`) fixture run twice: over the local backend (worker processes of
this machine, a cap of one job) and over the ray backend (Ray jobs on a real two-node cluster started for this
module: tests/raycluster.py; the cap is the cluster's capacity, one job per node).
"""

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


@pytest.fixture(params=["local", "ray"])
def backend(request, monkeypatch) -> str:
    """The job backend a test runs over; for ray, RAY_ADDRESS points at this module's cluster."""
    if request.param == "ray":
        cluster = request.getfixturevalue("ray_cluster")
        monkeypatch.setenv("RAY_ADDRESS", cluster.address)
    monkeypatch.setenv("LATENT_LAB_BACKEND", request.param)
    return request.param


def new_manager(runs_dir, backend: str) -> JobManager:
    return JobManager(runs_dir, max_concurrent=1, poll_interval=0.1, backend=backend)


@pytest.fixture
def manager(tmp_path, backend):
    jm = new_manager(tmp_path / "runs", backend)
    yield jm
    jm.shutdown(cancel=True)


def test_queue_runs_no_more_at_once_than_the_backend_holds(manager, backend):
    cap = manager.slots()
    assert cap == (1 if backend == "local" else 2)  # the ray cluster: two nodes of one CPU, one CPU per job
    runs = [manager.submit("ae", "mnist-5k", SMALL_AE, {**QUICK, "seconds": 0.5}) for _ in range(cap + 1)]
    most_running = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = [r.status().state for r in runs]
        most_running = max(most_running, states.count("running"))
        if all(s == "done" for s in states):
            break
        time.sleep(0.05)
    assert [r.status().state for r in runs] == ["done"] * (cap + 1)
    assert 1 <= most_running <= cap
    assert {r.status().raw.get("backend") for r in runs} == {backend}
    assert all(r.status().final_metrics["mse"] > 0 for r in runs)
    assert all(r.status().threads >= 1 for r in runs)


def test_sigkill_leaves_a_loadable_checkpoint_marked_interrupted_then_resume(manager):
    run = manager.submit("ae", "mnist-5k", SMALL_AE, {**QUICK, "seconds": 30})
    wait_for(lambda: len(run.checkpoints()) >= 2, what="two checkpoints")
    os.kill(run.status().pid, signal.SIGKILL)
    wait_for(lambda: run.status().state == "interrupted", timeout=30, what="interrupted state")
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
    busy = [manager.submit("ae", "mnist-5k", SMALL_AE, {**QUICK, "seconds": 60}) for _ in range(manager.slots())]
    second = manager.submit("ae", "mnist-5k", SMALL_AE, {**QUICK, "seconds": 60})
    assert second.status().state == "queued"
    assert manager.cancel(second.id) == "cancelled"
    for first in busy:
        manager.delete(first.id)
        assert not first.path.exists()
    assert [r.id for r in manager.runs()] == [second.id]


def test_a_restarted_manager_lists_every_run_and_notices_dead_workers(tmp_path, backend):
    runs_dir = tmp_path / "runs"
    first = new_manager(runs_dir, backend)
    runs = [first.submit("ae", "mnist-5k", SMALL_AE, {**QUICK, "seconds": 30}) for _ in range(first.slots())]
    queued = first.submit("pca", "mnist-5k", {"latent_dim": 8})
    for run in runs:
        wait_for(lambda run=run: run.checkpoints(), what="a checkpoint")
    first.shutdown()  # the server goes away; its workers keep training (own sessions here, Ray jobs there)
    assert {run.status().state for run in runs} == {"running"}

    second = new_manager(runs_dir, backend)  # re-attaches: finds them by pid, or by their Ray job id
    try:
        assert {r.id for r in second.runs()} == {run.id for run in runs} | {queued.id}
        assert sorted(second.active()) == sorted(run.id for run in runs)  # the orphans still count against the cap
        assert queued.status().state == "queued"
        for run in runs:
            os.kill(run.status().pid, signal.SIGKILL)  # dies while no manager of its own watches
        for run in runs:
            wait_for(lambda run=run: run.status().state == "interrupted", timeout=30, what="interrupted")
        assert second.wait(queued.id, timeout=90) == "done"  # the queue moved on
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


def test_the_cli_submits_follows_and_cancels_through_either_backend(tmp_path, backend):
    import json
    import subprocess
    import sys

    runs_dir = tmp_path / "runs"
    cli = [sys.executable, "-m", "engine"]
    done = subprocess.run(cli + ["submit", "ae", "--seconds", "1", "--set", "latent_dim=4", "--set", "hidden=32",
                                 "--runs-dir", str(runs_dir), "--wait"], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["state"] == "done" and result["backend"] == backend and result["metrics"]["mse"] > 0
    assert "test mse" in done.stderr  # its progress lines, read from the run folder

    info = subprocess.run(cli + ["backend", "--runs-dir", str(runs_dir)], capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["backend"] == backend and json.loads(info.stdout)["slots"] >= 1

    started = subprocess.run(cli + ["submit", "ae", "--seconds", "60", "--set", "latent_dim=4", "--runs-dir",
                                    str(runs_dir)], capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    run = Run(json.loads(started.stdout)["path"])
    wait_for(lambda: run.status().step > 0, timeout=90, what="the background job to train")
    stopped = subprocess.run(cli + ["cancel", run.id, "--wait", "--runs-dir", str(runs_dir)],
                             capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout)["state"] == "cancelled"


def test_a_lost_ray_node_interrupts_its_run_which_resumes_on_the_other(tmp_path, ray_cluster, monkeypatch):
    """Last in the module: it takes a node from the cluster (and puts a new one back)."""
    from ray.job_submission import JobSubmissionClient

    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.address)
    jm = new_manager(tmp_path / "runs", "ray")
    try:
        runs = [jm.submit("ae", "mnist-5k", SMALL_AE, {**QUICK, "seconds": 12}) for _ in range(2)]  # one per node
        for run in runs:
            wait_for(lambda run=run: run.checkpoints(), timeout=120, what="a checkpoint on each node")
        client = JobSubmissionClient(ray_cluster.address)
        head = next(n.node_id for n in ray_cluster.nodes() if "node:__internal_head__" in n.resources_total)
        on_node = [r for r in runs if client.get_job_info(r.status().raw["ray_job"]).driver_node_id != head]
        assert len(on_node) == 1
        (lost,) = on_node
        ray_cluster.kill_node(ray_cluster.node_raylets[0])
        wait_for(lambda: lost.status().state == "interrupted", timeout=90, what="the lost node's run interrupted")
        assert "resume continues" in lost.status().error
        model, header = lost.load_model()  # its last checkpoint is whole
        assert header["step"] > 0
        jm.resume(lost.id)
        assert jm.wait(lost.id, timeout=180) == "done", lost.status().error  # on the node left, after the other
        assert all(r.status().state == "done" for r in runs)
        info = client.get_job_info(lost.status().raw["ray_job"])
        assert info.driver_node_id == head
    finally:
        jm.shutdown(cancel=True)
        ray_cluster.add_node()


def test_a_negative_worker_boost_puts_a_worker_below_the_server(monkeypatch):
    """LATENT_LAB_WORKER_BOOST < 0 (the pages first): the worker's nice level goes up, which needs no privilege."""
    import subprocess
    import sys

    import engine.runs.jobs as jobs

    monkeypatch.setenv("LATENT_LAB_WORKER_BOOST", "-3")
    assert jobs.worker_boost() == -3
    monkeypatch.setenv("LATENT_LAB_WORKER_BOOST", "-40")
    with pytest.raises(ValueError, match="LATENT_LAB_WORKER_BOOST must be -10 or more"):
        jobs.worker_boost()
    # a session of its own, as a worker has: the autogroup raise_priority also writes is then not this one
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        jobs.raise_priority(child.pid, -3)
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == os.getpriority(os.PRIO_PROCESS, 0) + 3
    finally:
        child.kill()
        child.wait()
