"""The job backend setting and a Ray cluster that cannot be reached (no cluster needed: tests/engine/test_jobs.py
runs the job manager's suite over a real one)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from engine.runs.backends import RayBackend, backend_name, ray_address
from engine.runs.jobs import JobManager
from tests.ports import free_port

SMALL_AE = {"latent_dim": 4, "hidden": [32]}


@pytest.fixture
def no_cluster(monkeypatch) -> str:
    address = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("LATENT_LAB_BACKEND", "ray")
    monkeypatch.setenv("RAY_ADDRESS", address)
    return address


def test_the_setting_is_checked(monkeypatch):
    monkeypatch.delenv("LATENT_LAB_BACKEND", raising=False)
    assert backend_name() == "local"
    monkeypatch.setenv("LATENT_LAB_BACKEND", "Ray ")
    assert backend_name() == "ray"
    monkeypatch.setenv("LATENT_LAB_BACKEND", "slurm")
    with pytest.raises(ValueError, match="LATENT_LAB_BACKEND='slurm'"):
        backend_name()
    monkeypatch.setenv("RAY_ADDRESS", "head:8265")
    assert ray_address() == "http://head:8265"
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    with pytest.raises(ValueError, match="dashboard"):
        ray_address()


def test_the_local_backend_never_imports_ray(tmp_path):
    code = ("import sys; from engine.runs.jobs import JobManager; "
            f"jm = JobManager({str(tmp_path / 'runs')!r}, poll_interval=None); jm.poll(); jm.queue(); "
            "print('ray' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "LATENT_LAB_BACKEND": "local"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_an_unreachable_cluster_keeps_jobs_queued_and_says_why_fast(tmp_path, no_cluster):
    jm = JobManager(tmp_path / "runs", poll_interval=None)
    t = time.monotonic()
    run = jm.submit("ae", "mnist-5k", SMALL_AE, {"seconds": 1})
    jm.poll()
    assert time.monotonic() - t < 30  # a refused connection is seen at once, not after a hang
    assert run.status().state == "queued"
    assert jm.slots() == 0
    info = jm.backend_info()
    assert info["backend"] == "ray" and info["address"] == no_cluster
    assert "does not answer" in info["error"] and "LATENT_LAB_BACKEND_FALLBACK" in info["error"]
    assert jm.queue()[run.id].position == 1  # still in line, for when the cluster is back
    jm.cancel(run.id)
    assert run.status().state == "cancelled"


def test_with_the_local_fallback_an_unreachable_cluster_trains_here(tmp_path, no_cluster, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_BACKEND_FALLBACK", "local")
    jm = JobManager(tmp_path / "runs", max_concurrent=1, poll_interval=0.1)
    try:
        run = jm.submit("ae", "mnist-5k", SMALL_AE, {"seconds": 0.5, "log_every_s": 0.1, "eval_batch": 100})
        assert jm.wait(run.id, timeout=90) == "done"
        assert run.status().raw.get("backend") == "local"
        assert "does not answer" in jm.backend_info()["error"]
    finally:
        jm.shutdown(cancel=True)


def test_the_cli_says_the_cluster_is_down(tmp_path, no_cluster):
    runs = ["--runs-dir", str(tmp_path / "runs")]
    info = subprocess.run([sys.executable, "-m", "engine", "backend", *runs], capture_output=True, text=True,
                          timeout=120)
    assert info.returncode == 1
    assert json.loads(info.stdout)["error"] and info.stderr.startswith("error: the Ray cluster at")
    submit = subprocess.run([sys.executable, "-m", "engine", "submit", "pca", *runs], capture_output=True,
                            text=True, timeout=120)
    assert submit.returncode == 1
    assert submit.stderr.count("\n") == 1 and "does not answer" in submit.stderr


def test_a_job_asks_for_a_gpu_only_where_the_cluster_has_one():
    backend = RayBackend(address="http://127.0.0.1:1")
    assert backend.gpus_per_job(0.0) == 0.0
    assert backend.gpus_per_job(8.0) == 1.0
    assert RayBackend(address="http://127.0.0.1:1", gpus_per_job=0.5).gpus_per_job(8.0) == 0.5


def test_a_worker_whose_job_is_no_longer_the_runs_writes_nothing(tmp_path, monkeypatch):
    """The fence: a Ray worker that outlived its job (a node cut off, not dead) must not write over the run."""
    from engine.runs import Run, make_run_config
    from engine.runs.store import JOB_FENCE_ENV, Superseded

    run = Run.create(tmp_path, make_run_config("pca", "mnist-5k", {"latent_dim": 4}, {}))
    run.set_status(state="running", backend="ray", ray_job="job-2")
    monkeypatch.setenv(JOB_FENCE_ENV, "job-1")
    with pytest.raises(Superseded, match="job-1"):
        run.set_status(state="running", step=5)
    monkeypatch.setenv(JOB_FENCE_ENV, "job-2")
    assert run.set_status(step=5).step == 5  # the run's own job writes
    monkeypatch.delenv(JOB_FENCE_ENV)
    assert run.set_status(state="interrupted", ray_job=None).state == "interrupted"  # the manager: no fence
    monkeypatch.setenv(JOB_FENCE_ENV, "job-2")
    with pytest.raises(Superseded):  # settled: not even the last job may write
        run.set_status(state="running")
    assert run.status().state == "interrupted"
