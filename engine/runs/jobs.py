"""Background training: worker processes, a queue with a concurrency cap, cancel and resume.

The queue is the run directories themselves: a run whose status is `queued` waits for a slot, so
a restarted server finds exactly the queue and the runs it left. Each job is a separate process
(`python -m engine worker RUN`) in its own session: a crash or a SIGKILL there cannot take the
server down, and a server restart does not stop a run that is training. A worker that vanished
without writing a final state is marked `interrupted` (killed) or `failed` (exited with an error)
the next time the manager polls, and `resume` continues it from its last checkpoint.

The manager touches no Streamlit API, so the app can hold one per server in st.cache_resource;
its methods are thread-safe.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from engine.runs.config import check_own_data, make_run_config
from engine.runs.files import RunError, remove_stale_temp_files, scrub_paths
from engine.runs.queue import QueuePlace, queue_places
from engine.runs.status import ACTIVE, FINISHED, RESUMABLE
from engine.runs.store import Run, default_runs_dir, find_run, list_runs, process_alive, process_start_time

CANCEL_GRACE_S = 1.5  # a worker checks its cancel file every 0.2 s; after this it gets SIGTERM
KILL_GRACE_S = 3.0  # … and after this, SIGKILL


def default_max_jobs() -> int:
    return int(os.environ.get("LATENT_LAB_MAX_JOBS", "0")) or 2


class JobManager:
    """Start, watch, cancel and resume training runs under one runs directory."""

    def __init__(self, runs_dir: Path | str | None = None, max_concurrent: int | None = None,
                 poll_interval: float | None = 0.5):
        self.runs_dir = Path(runs_dir) if runs_dir else default_runs_dir()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.max_concurrent = max(1, max_concurrent or default_max_jobs())
        self._procs: dict[str, subprocess.Popen] = {}
        self._cancel_at: dict[str, float] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self.poll()  # marks runs whose workers died while no manager watched
        self.clean()
        self._thread = None
        if poll_interval:
            self._thread = threading.Thread(target=self._watch, args=(poll_interval,), daemon=True,
                                            name="latent-lab-jobs")
            self._thread.start()

    # -- public API ----------------------------------------------------------------------------

    def submit(self, model: str, dataset: str = "mnist-5k", model_config: dict | None = None,
               train: dict | None = None, run_id: str | None = None, name: str | None = None) -> Run:
        """Create a queued run (settings are checked now) and start it when a slot is free; `name` is its name."""
        run = Run.create(self.runs_dir, make_run_config(model, dataset, model_config, train, name=name), run_id=run_id)
        self.poll()
        return run

    def cancel(self, ref: str) -> str:
        """Ask a run to stop; a queued run is cancelled at once. Returns the state now."""
        with self._lock:
            run = self._find(ref)
            state = run.status().state
            if state == "queued":
                run.set_status(state="cancelled", resume=False)
                return "cancelled"
            if state == "running":
                run.request_cancel()
                self._cancel_at.setdefault(run.id, time.monotonic())
            return state

    def resume(self, ref: str) -> Run:
        """Queue an interrupted, cancelled or failed run to continue from its last checkpoint."""
        with self._lock:
            run = self._find(ref)
            check_own_data(run.config)  # a damaged config.json (RunError) or a foreign dataset: nothing is queued
            state = run.status().state
            if state not in RESUMABLE:
                raise RunError(f"run {run.id} is {state}; only {', '.join(RESUMABLE)} runs can be resumed")
            run.clear_cancel()
            run.set_status(state="queued", resume=True, error=None)
        self.poll()
        return run

    def delete(self, ref: str, timeout: float = 10.0) -> None:
        """Delete a run's directory, stopping its worker first."""
        run = self._find(ref)
        if run.status().state in ACTIVE:
            self.cancel(run.id)
            self.wait(run.id, timeout)
        with self._lock:
            self._procs.pop(run.id, None)
            run.delete()

    def clean(self) -> list[Path]:
        """Delete the temp files that writers killed mid-write (a SIGKILLed worker) left in the runs, except in
        runs whose worker is alive (its own temp file may be mid-write). Returns the files removed."""
        removed = []
        for run in list_runs(self.runs_dir):
            st = run.status()
            if st.state == "running" and process_alive(st.pid, st.pid_start):
                continue
            removed += run.remove_stale_temp_files(worker_gone=True)
        return removed + remove_stale_temp_files(self.runs_dir, pattern=".create-*", folders=True)

    def runs(self) -> list[Run]:
        if self._thread is None:  # without a watcher thread, bring the states up to date here
            self.poll()
        return list_runs(self.runs_dir)

    def wait(self, ref: str, timeout: float | None = None, poll: float = 0.2) -> str:
        """Block until the run reaches a final state (or timeout); returns the state."""
        run = self._find(ref)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.poll()
            state = run.status().state
            if state in FINISHED:
                return state
            if deadline is not None and time.monotonic() > deadline:
                return state
            time.sleep(poll)

    def queue(self) -> dict[str, QueuePlace]:
        """Every queued run's place in line and about how long until it starts (engine.runs.queue)."""
        return queue_places(list_runs(self.runs_dir), self.max_concurrent)

    def active(self) -> list[str]:
        """Ids of runs whose workers are alive (including ones an earlier server started)."""
        out = []
        for run in list_runs(self.runs_dir):
            st = run.status()
            if st.state == "running" and process_alive(st.pid, st.pid_start):
                out.append(run.id)
        return out

    def shutdown(self, cancel: bool = False, timeout: float = 10.0) -> None:
        """Stop watching; with cancel=True also stop every worker this manager started."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        if cancel:
            for rid in list(self._procs):
                self.cancel(rid)
            deadline = time.monotonic() + timeout
            while self._procs and time.monotonic() < deadline:
                self.poll(start=False)
                time.sleep(0.1)

    # -- the watcher ---------------------------------------------------------------------------

    def poll(self, start: bool = True) -> None:
        """Reap finished workers, enforce cancel deadlines, mark dead runs, start queued ones."""
        with self._lock:
            self._reap()
            queued = []
            alive = 0
            for run in list_runs(self.runs_dir):
                try:
                    st = run.status()
                    if st.state == "running":
                        if run.id in self._procs:
                            alive += 1
                        elif process_alive(st.pid, st.pid_start):
                            alive += 1  # started by an earlier server, still training
                            self._enforce_cancel(run.id, st.pid, st.pid_start)
                        elif run.cancel_requested():  # stopped by the SIGTERM of a cancel
                            self._cancel_at.pop(run.id, None)
                            run.clear_cancel()
                            run.set_status(state="cancelled", error=None)
                        elif run.mark_if_dead() == "interrupted":  # killed: perhaps in the middle of a write
                            run.remove_stale_temp_files(worker_gone=True)
                    elif st.state == "queued" and run.id not in self._procs:
                        queued.append(run)
                except (RunError, OSError, ValueError) as e:  # one damaged run folder must not stop the others
                    print(f"latent-lab jobs: run {run.id}: {e}", file=sys.stderr)
            if not start:
                return
            for run in sorted(queued, key=_created_at):
                if alive >= self.max_concurrent:
                    break
                self._start(run)
                alive += 1

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.poll()
            except Exception as e:  # the watcher must outlive any one bad run directory
                print(f"latent-lab jobs: poll failed: {e!r}", file=sys.stderr)

    def _start(self, run: Run) -> None:
        resume = run.status().resume
        threads = max(1, len(os.sched_getaffinity(0)) // self.max_concurrent)
        env = {**os.environ, "LATENT_LAB_THREADS": str(threads)}  # the engine is installed (pip install -e .)
        cmd = [sys.executable, "-m", "engine", "worker", str(run.path)] + (["--resume"] if resume else [])
        run.set_status(only_if=("queued",), resume=False, error=None, threads=threads)
        with open(run.path / "worker.log", "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True)
        self._procs[run.id] = proc
        # The worker writes "running" and its pid too, and may already be further on (even done): only over
        # "queued", so this never sets a finished run back to running.
        run.set_status(only_if=("queued",), state="running", pid=proc.pid, pid_start=process_start_time(proc.pid))

    def _reap(self) -> None:
        for rid, proc in list(self._procs.items()):
            rc = proc.poll()
            if rc is None:
                self._enforce_cancel(rid, proc.pid, None, proc)
                continue
            del self._procs[rid]
            cancel_asked = self._cancel_at.pop(rid, None) is not None
            path = self.runs_dir / rid
            if not (path / "config.json").exists():
                continue  # deleted meanwhile
            run = Run(path)
            if run.status().state not in ACTIVE:
                continue  # the worker wrote its own final state
            if cancel_asked:
                run.clear_cancel()
                run.set_status(only_if=ACTIVE, state="cancelled", error=None)
            elif rc < 0:
                run.set_status(only_if=ACTIVE, state="interrupted", error=f"the worker was killed by signal "
                               f"{signal.Signals(-rc).name}; resume continues from the last checkpoint")
            else:
                run.set_status(only_if=ACTIVE, state="failed",
                               error=f"the worker exited with code {rc}:\n{_log_tail(run)}")

    def _enforce_cancel(self, rid: str, pid: int | None, pid_start: str | None, proc=None) -> None:
        asked = self._cancel_at.get(rid)
        if asked is None:
            path = self.runs_dir / rid / "cancel"
            if not path.exists():
                return
            asked = self._cancel_at.setdefault(rid, time.monotonic())
        waited = time.monotonic() - asked
        if waited < CANCEL_GRACE_S or not pid:
            return
        if proc is None and not process_alive(pid, pid_start):
            return
        sig = signal.SIGKILL if waited > KILL_GRACE_S else signal.SIGTERM
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def _find(self, ref: str) -> Run:
        return find_run(ref, self.runs_dir)


_managers: dict[Path, JobManager] = {}
_managers_lock = threading.Lock()


def get_manager(runs_dir: Path | str | None = None, max_concurrent: int | None = None) -> JobManager:
    """The one manager of this process for `runs_dir`.

    Two managers over one folder in one process would each reap only their own workers and leave
    the other's as zombies; the app and scripts should share this one.
    """
    key = (Path(runs_dir) if runs_dir else default_runs_dir()).resolve()
    with _managers_lock:
        jm = _managers.get(key)
        if jm is None or jm._stop.is_set():
            jm = _managers[key] = JobManager(key, max_concurrent)
        return jm


def _created_at(run: Run) -> float:
    """Queue order: creation time from config.json (0 for a damaged one, which then fails fast)."""
    try:
        return float(run.config.get("created_at", 0))
    except (RunError, TypeError, ValueError):
        return 0.0


def _log_tail(run: Run, lines: int = 15) -> str:
    try:
        text = (run.path / "worker.log").read_text(errors="replace")
    except OSError:
        return "(no worker.log)"
    return scrub_paths("\n".join(text.strip().splitlines()[-lines:]))  # shown to visitors: no server paths
