"""Background training: worker processes, a queue with a concurrency cap, cancel and resume.

The queue is the run directories themselves: a run whose status is `queued` waits for a slot, so
a restarted server finds exactly the queue and the runs it left. Each job is a separate process
(`python -m engine worker RUN`) in its own session: a crash or a SIGKILL there cannot take the
server down, and a server restart does not stop a run that is training. A worker that vanished
without writing a final state is marked `interrupted` (killed) or `failed` (exited with an error)
the next time the manager polls, and `resume` continues it from its last checkpoint.

Every action names who asks (`actor`, an engine.runs.workspace.Actor; None is the server itself, as the
CLI is) and is checked here (workspace.check), so a page that forgot to hide a button still cannot
touch another workspace's run. In hosted mode the manager also holds each workspace to its Limits and
starts queued jobs in a fair order across workspaces (engine.runs.queue.next_job).

The manager touches no Streamlit API, so the app can hold one per server in st.cache_resource;
its methods are thread-safe.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from engine.env import env_number
from engine.runs import quota
from engine.runs import workspace as ws
from engine.runs.backends import BackendUnavailable, RayBackend, backend_name, fallback_local
from engine.runs.config import check_own_data, make_run_config
from engine.runs.files import RunError, remove_stale_temp_files, scrub_paths
from engine.runs.queue import QueuePlace, next_job, queue_places
from engine.runs.status import ACTIVE, FINISHED, RESUMABLE
from engine.runs.store import Run, default_runs_dir, find_run, list_runs, process_alive, process_start_time
from engine.runs.workspace import Actor, Limits

CANCEL_GRACE_S = 1.5  # a worker checks its cancel file every 0.2 s; after this it gets SIGTERM
KILL_GRACE_S = 3.0  # … and after this, SIGKILL
EXPIRE_EVERY_S = 60.0  # hosted mode: how often the watcher looks for workspaces past their time


def default_max_jobs() -> int:
    return int(os.environ.get("LATENT_LAB_MAX_JOBS", "0")) or 2


def worker_boost() -> int:
    """How many nice levels a training worker runs above the server: LATENT_LAB_WORKER_BOOST (−10–10, default 1).

    Negative: below the server, so that the pages come first and the trainings take what the visitors leave."""
    return min(int(env_number("LATENT_LAB_WORKER_BOOST", 1, minimum=-10)), 10)


class JobManager:
    """Start, watch, cancel and resume training runs under one runs directory."""

    def __init__(self, runs_dir: Path | str | None = None, max_concurrent: int | None = None,
                 poll_interval: float | None = 0.5, limits: Limits | None = None, backend: str | None = None):
        self.runs_dir = Path(runs_dir) if runs_dir else default_runs_dir()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.max_concurrent = max(1, max_concurrent or default_max_jobs())  # the local backend's cap
        self.limits = limits if limits is not None else Limits.from_env()
        self.backend = backend or backend_name()  # where new jobs train: engine.runs.backends
        self.backend_error: str | None = None  # why the cluster cannot take jobs now (None: it can, or local)
        self._ray: dict[str, RayBackend] = {}  # address → backend: a run records where it was submitted
        self._ray_started: set[str] = set()  # ray job ids this manager submitted (shutdown(cancel=True) stops them)
        self._ray_stopped: set[str] = set()
        self._expired_at = 0.0
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
               train: dict | None = None, run_id: str | None = None, name: str | None = None,
               actor: Actor | None = None) -> Run:
        """Create a queued run (settings are checked now) and start it when a slot is free; `name` is its name.

        A hosted visitor's run belongs to their workspace and must fit its limits (LimitError says which);
        it may train on the server's datasets and the workspace's own uploads, never on a server path.
        """
        config = make_run_config(model, dataset, model_config, train, name=name)
        owner = self._owner_for(actor)
        if owner:
            config["workspace"] = owner
        quota.check_data(config, actor)
        if quota.limited(actor):
            quota.check_new_run(config, actor, self.limits, self._own_runs(actor))
        run = Run.create(self.runs_dir, config, run_id=run_id)
        if owner:
            ws.touch(self.runs_dir, owner)
        self.poll()
        return run

    def cancel(self, ref: str, actor: Actor | None = None) -> str:
        """Ask a run to stop; a queued run is cancelled at once. Returns the state now."""
        with self._lock:
            run = self._allowed(ref, actor, ws.CANCEL)
            state = run.status().state
            if state == "queued":
                run.set_status(state="cancelled", resume=False)
                return "cancelled"
            if state == "running":
                run.request_cancel()
                self._cancel_at.setdefault(run.id, time.monotonic())
            return state

    def resume(self, ref: str, actor: Actor | None = None) -> Run:
        """Queue an interrupted, cancelled or failed run to continue from its last checkpoint."""
        with self._lock:
            run = self._allowed(ref, actor, ws.RESUME)
            check_own_data(run.config)  # a damaged config.json (RunError) or a foreign dataset: nothing is queued
            state = run.status().state
            if state not in RESUMABLE:
                raise RunError(f"run {run.id} is {state}; only {', '.join(RESUMABLE)} runs can be resumed")
            if quota.limited(actor):
                quota.check_jobs(actor, self.limits, self._own_runs(actor))
            run.clear_cancel()
            run.set_status(state="queued", resume=True, error=None)
        self.poll()
        return run

    def delete(self, ref: str, timeout: float = 10.0, actor: Actor | None = None) -> None:
        """Delete a run's directory, stopping its worker first."""
        run = self._allowed(ref, actor, ws.DELETE)
        if run.status().state in ACTIVE:
            self.cancel(run.id)
            self.wait(run.id, timeout)
        with self._lock:
            self._procs.pop(run.id, None)
            run.delete()
        if run.id in ws.pinned(self.runs_dir):
            ws.set_pinned(self.runs_dir, run.id, False)

    def set_control(self, ref: str, actor: Actor | None = None, **fields) -> dict:
        """Change settings of a run while it trains (a GAN's learning rates: Run.set_control)."""
        return self._allowed(ref, actor, ws.CONTROL).set_control(**fields)

    def export(self, ref: str, actor: Actor | None = None) -> bytes:
        """The run as a .zip (engine.runs.transfer.export_run): its owner's to download."""
        from engine.runs.transfer import export_run

        return export_run(self._allowed(ref, actor, ws.DOWNLOAD))

    def import_archive(self, data: bytes, actor: Actor | None = None, max_bytes: int | None = None) -> Run:
        """An uploaded export as a new run of the actor's workspace (engine.runs.transfer.import_run)."""
        from engine.runs.transfer import MAX_IMPORT_BYTES, import_run

        if quota.limited(actor):
            quota.check_kept(actor, self.limits, self._own_runs(actor))
        return import_run(self.runs_dir, data, max_bytes or MAX_IMPORT_BYTES, workspace=self._owner_for(actor))

    def copy(self, ref: str, actor: Actor | None = None, shared: bool = False) -> Run:
        """A copy of a run the actor may look at (their own, a pinned one, the server's, or one opened through its
        share link) as a new run of their own workspace: a finished copy, or a cancelled one to resume."""
        from engine.runs.transfer import export_run

        run = self._allowed(ref, actor, ws.COPY, shared=shared)
        return self.import_archive(export_run(run), actor)

    def pin(self, ref: str, actor: Actor | None = None, pin: bool = True) -> set[str]:
        """Put a run in (or take it out of) the gallery every visitor sees: the presenter's to do."""
        run = self._allowed(ref, actor, ws.PIN)
        return ws.set_pinned(self.runs_dir, run.id, pin)

    def check(self, ref: str, actor: Actor | None, action: str, shared: bool = False) -> Run:
        """The run, when `actor` may take `action` on it (an action the pages run themselves, such as
        slow motion on a loaded copy); AccessError otherwise."""
        return self._allowed(ref, actor, action, shared=shared)

    def owns(self, run: Run, actor: Actor | None) -> bool:
        """Whether `actor` may act on `run` (not only look at it)."""
        if actor is None or actor.system or actor.presenter or not ws.hosted():
            return True  # even on a damaged run: its config may be unreadable, and it can still be deleted
        try:
            ws.check(actor, run.config, ws.CANCEL, run.id, pinned=run.id in ws.pinned(self.runs_dir))
        except (RunError, OSError):
            return False
        return True

    def workspaces(self) -> list[dict]:
        """Every workspace with runs or a recent visit: id, last seen, runs, jobs queued or running, bytes
        (the presenter's overview)."""
        seen = ws.last_seen(self.runs_dir)
        rows: dict[str, dict] = {w: {"workspace": w, "last_seen": t, "runs": 0, "active": 0, "bytes": 0}
                                 for w, t in seen.items()}
        for run in list_runs(self.runs_dir):
            owner = _owner(run)
            row = rows.setdefault(owner, {"workspace": owner, "last_seen": None, "runs": 0, "active": 0, "bytes": 0})
            row["runs"] += 1
            row["active"] += run.status().state in ACTIVE
            row["bytes"] += ws.folder_bytes(run.path)
        return sorted(rows.values(), key=lambda r: (-(r["last_seen"] or 0), r["workspace"]))

    def clean(self) -> list[Path]:
        """Delete the temp files that writers killed mid-write (a SIGKILLed worker) left in the runs, except in
        runs whose worker is alive (its own temp file may be mid-write). Returns the files removed."""
        removed = []
        for run in list_runs(self.runs_dir):
            st = run.status()
            if st.state == "running" and self._worker_alive(st) is not False:
                continue
            removed += run.remove_stale_temp_files(worker_gone=True)
        return removed + remove_stale_temp_files(self.runs_dir, pattern=".create-*", folders=True)

    def runs(self, actor: Actor | None = None, shared: tuple[str, ...] | set[str] = ()) -> list[Run]:
        """The runs `actor` may see, newest first: in local mode (or for the server and the presenter) every run;
        a hosted visitor's own, the gallery's, the server's, and those in `shared` (opened through their share
        links)."""
        if self._thread is None:  # without a watcher thread, bring the states up to date here
            self.poll()
        runs = list_runs(self.runs_dir)
        if actor is None or actor.system or actor.presenter or not ws.hosted():
            return runs
        gallery = ws.pinned(self.runs_dir)
        return [r for r in runs if r.id in gallery or r.id in shared or _owner(r) in (actor.workspace, ws.SERVER)]

    def is_pinned(self, run_id: str) -> bool:
        return run_id in ws.pinned(self.runs_dir)

    @staticmethod
    def hosted_mode() -> bool:
        return ws.hosted()

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
        """Every queued run's place in line and about how long until it starts (engine.runs.queue), in the
        order the manager starts them."""
        return queue_places(list_runs(self.runs_dir), max(self.slots(), 1), self.limits.running, owner=ws.owner)

    def active(self) -> list[str]:
        """Ids of runs whose workers are alive (including ones an earlier server started)."""
        out = []
        for run in list_runs(self.runs_dir):
            st = run.status()
            if st.state == "running" and self._worker_alive(st):
                out.append(run.id)
        return out

    def slots(self) -> int:
        """How many jobs train at once: the local cap, or the Ray cluster's capacity (its live nodes' CPUs and
        GPUs ÷ what a job asks for); 0 while the cluster cannot be reached (and no local fallback is set)."""
        if self.backend != "ray":
            return self.max_concurrent
        try:
            slots = self._ray_backend().capacity()
        except BackendUnavailable as e:
            self.backend_error = str(e)
            return self.max_concurrent if fallback_local() else 0
        self.backend_error = None
        return slots

    def backend_info(self) -> dict:
        """What the pages and `python -m engine backend` show: the backend, its address, its capacity, its error."""
        slots = self.slots()
        info = {"backend": self.backend, "slots": slots, "error": self.backend_error}
        if self.backend == "ray":
            info["address"] = self._ray_backend().address
            info["fallback"] = "local" if fallback_local() else None
        return info

    def shutdown(self, cancel: bool = False, timeout: float = 10.0) -> None:
        """Stop watching; with cancel=True also stop every worker this manager started."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        if cancel:
            for run in list_runs(self.runs_dir):  # the Ray jobs this manager submitted
                st = run.status()
                if st.raw.get("ray_job") in self._ray_started and st.state in ACTIVE:
                    self.cancel(run.id)
                    self._stop_ray(st, force=True)
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
            alive = 0  # local workers training now
            remote = 0  # Ray jobs holding a place on the cluster (pending or running)
            running: dict[str, int] = {}  # workspace → its jobs training now
            last_start: dict[str, float] = {}  # workspace → when a job of it last started
            for run in list_runs(self.runs_dir):
                try:
                    st = run.status()
                    owner = _owner(run)
                    if st.started_at is not None and st.state != "queued":
                        last_start[owner] = max(last_start.get(owner, st.started_at), st.started_at)
                    if st.state == "running" and st.raw.get("backend") == "ray":
                        if self._poll_ray(run, st):
                            remote += 1
                            running[owner] = running.get(owner, 0) + 1
                    elif st.state == "running":
                        if run.id in self._procs or process_alive(st.pid, st.pid_start):
                            running[owner] = running.get(owner, 0) + 1
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
                        queued.append((run, owner, _created_at(run)))
                except (RunError, OSError, ValueError) as e:  # one damaged run folder must not stop the others
                    print(f"latent-lab jobs: run {run.id}: {e}", file=sys.stderr)
            if not start or not queued:
                return
            slots = self.slots() if self.backend == "ray" else 0
            while queued:
                if self.backend == "ray" and self.backend_error is None and remote < slots:
                    where = "ray"
                elif (self.backend != "ray" or (self.backend_error and fallback_local())) \
                        and alive < self.max_concurrent:
                    where = "local"
                else:  # no free slot (or a cluster that cannot be reached, and no fallback): they wait
                    break
                i = next_job([(r.id, o, at) for r, o, at in queued], running, last_start, self.limits.running)
                if i is None:  # every waiting workspace trains as many jobs as it may
                    break
                run, owner, _at = queued[i]
                if where == "ray":
                    try:
                        self._start_ray(run)
                    except BackendUnavailable as e:
                        self.backend_error = str(e)
                        continue  # the next turn falls back to local, or stops
                    remote += 1
                else:
                    self._start(run)
                    alive += 1
                queued.pop(i)
                running[owner] = running.get(owner, 0) + 1
                last_start[owner] = time.time()

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.poll()
                if self.limits.ttl_s and time.monotonic() - self._expired_at > EXPIRE_EVERY_S:
                    self._expired_at = time.monotonic()
                    self.expire()
            except Exception as e:  # the watcher must outlive any one bad run directory
                print(f"latent-lab jobs: poll failed: {e!r}", file=sys.stderr)

    # -- workspaces: who may, how much, how long ---------------------------------------------------

    def expire(self, now: float | None = None) -> list[str]:
        """Remove the workspaces not visited for the limits' time to live: their runs (pinned ones stay, in the
        gallery), their uploads and their record. Returns the workspaces removed."""
        if not self.limits.ttl_s:
            return []
        now = time.time() if now is None else now
        old = {w for w, seen in ws.last_seen(self.runs_dir).items() if now - seen > self.limits.ttl_s}
        if not old:
            return []
        gallery = ws.pinned(self.runs_dir)
        for run in list_runs(self.runs_dir):
            if _owner(run) in old and run.id not in gallery:
                try:
                    self.delete(run.id)
                except (RunError, OSError) as e:
                    print(f"latent-lab jobs: expiring run {run.id}: {e}", file=sys.stderr)
        for w in old:
            _remove_uploads(w)
            ws.forget(self.runs_dir, w)
        return sorted(old)

    def _owner_for(self, actor: Actor | None) -> str | None:
        """The workspace a new run of `actor` belongs to: theirs in hosted mode, none (the server's) otherwise."""
        if actor is None or actor.system or not ws.hosted():
            return None
        return actor.workspace or None

    def _allowed(self, ref: str, actor: Actor | None, action: str, shared: bool = False) -> Run:
        run = self._find(ref)
        ws.check(actor, run.config, action, run.id, shared=shared, pinned=run.id in ws.pinned(self.runs_dir))
        return run

    def _own_runs(self, actor: Actor) -> list[Run]:
        return [r for r in list_runs(self.runs_dir) if _owner(r) == actor.workspace]

    def _start(self, run: Run) -> None:
        resume = run.status().resume
        threads = max(1, len(os.sched_getaffinity(0)) // self.max_concurrent)
        # the engine is installed (pip install -e .); LATENT_LAB_RUNS tells it where `upload:` datasets are
        env = {**os.environ, "LATENT_LAB_THREADS": str(threads), "LATENT_LAB_RUNS": str(self.runs_dir)}
        cmd = [sys.executable, "-m", "engine", "worker", str(run.path)] + (["--resume"] if resume else [])
        run.set_status(only_if=("queued",), resume=False, error=None, threads=threads, backend="local", ray_job=None)
        with open(run.path / "worker.log", "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True)
        self._procs[run.id] = proc  # first: whatever fails below, this worker is reaped, never started twice
        raise_priority(proc.pid, worker_boost())
        # The worker writes "running" and its pid too, and may already be further on (even done): only over
        # "queued", so this never sets a finished run back to running.
        run.set_status(only_if=("queued",), state="running", pid=proc.pid, pid_start=process_start_time(proc.pid))

    # -- the Ray backend (engine.runs.backends) -------------------------------------------------------

    def _ray_backend(self, address: str | None = None) -> RayBackend:
        """The backend for the cluster at `address` (the one a run was submitted to; None: RAY_ADDRESS's)."""
        key = address if isinstance(address, str) and address else None
        if key not in self._ray:
            self._ray[key] = RayBackend(address=key)
        return self._ray[key]

    def _start_ray(self, run: Run) -> None:
        """Submit a queued run as a Ray job. The job id goes into status.json before the job exists, so the
        worker's own first write (state running) cannot race ahead of it; a refused submission queues it again."""
        backend = self._ray_backend()
        resume = run.status().resume
        job = backend.new_job_id(run.id)
        run.set_status(only_if=("queued",), state="running", resume=False, error=None, pid=None, pid_start=None,
                       backend="ray", ray_job=job, ray_address=backend.address, threads=backend.threads,
                       phase="waiting for a place on the Ray cluster")
        try:
            backend.submit(job, str(run.path.resolve()), resume, {"LATENT_LAB_RUNS": str(self.runs_dir.resolve())})
        except BackendUnavailable:
            run.set_status(only_if=("running",), state="queued", resume=resume, backend=None, ray_job=None,
                           phase=None)
            raise
        self._ray_started.add(job)

    def _poll_ray(self, run: Run, st) -> bool:
        """A running run's Ray job: True while it holds a place on the cluster (or the cluster cannot say);
        once it has ended, a run its worker left without a final state is settled (cancelled, interrupted, failed)."""
        job = st.raw.get("ray_job")
        backend = self._ray_backend(st.raw.get("ray_address"))
        try:
            state = backend.state(job) if isinstance(job, str) else "GONE"
        except BackendUnavailable as e:
            self.backend_error = str(e)
            return True  # it keeps its place until the cluster answers again
        if state in ("PENDING", "RUNNING"):
            asked = self._cancel_asked(run.id)
            if asked is not None and time.monotonic() - asked >= CANCEL_GRACE_S:
                self._stop_ray(st)
            return True
        if run.status().state not in ACTIVE:
            return False  # the worker wrote its own final state
        # ray_job=None: a worker that outlived its job (a node cut off rather than dead) may write no more
        if self._cancel_asked(run.id) is not None:
            self._cancel_at.pop(run.id, None)
            run.clear_cancel()
            run.set_status(only_if=ACTIVE, state="cancelled", error=None, ray_job=None)
            return False
        try:
            end = backend.ending(job, state)
        except BackendUnavailable as e:
            self.backend_error = str(e)
            return True
        run.set_status(only_if=ACTIVE, state=end.state, error=end.error, ray_job=None)
        if end.state == "interrupted":
            run.remove_stale_temp_files(worker_gone=True)
        return False

    def _stop_ray(self, st, force: bool = False) -> None:
        job = st.raw.get("ray_job")
        if not isinstance(job, str) or (job in self._ray_stopped and not force):
            return
        try:
            self._ray_backend(st.raw.get("ray_address")).stop(job)
            self._ray_stopped.add(job)
        except BackendUnavailable as e:
            self.backend_error = str(e)

    def _cancel_asked(self, rid: str) -> float | None:
        """When a cancel of run `rid` was first seen (its cancel file), or None."""
        asked = self._cancel_at.get(rid)
        if asked is None and (self.runs_dir / rid / "cancel").exists():
            asked = self._cancel_at.setdefault(rid, time.monotonic())
        return asked

    def _worker_alive(self, st) -> bool | None:
        """Whether a running run's worker still trains: its process here, or its job on the cluster (None: the
        cluster cannot say now)."""
        if st.raw.get("backend") != "ray":
            return process_alive(st.pid, st.pid_start)
        job = st.raw.get("ray_job")
        if not isinstance(job, str):
            return False
        try:
            return self._ray_backend(st.raw.get("ray_address")).state(job) in ("PENDING", "RUNNING")
        except BackendUnavailable:
            return None

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


def raise_priority(pid: int, boost: int) -> None:
    """Give worker `pid` `boost` nice levels above this server (each level ≈ 1.25× its CPU weight), as a task and,
    where Linux groups tasks by session (autogroups), as that group: a worker runs in a session of its own, so it
    gets a scheduling group's fair share beside the server's however many visitors keep the server busy.

    The pages pay for it, so it is a setting (bench/bench_load.py, N = 20 visitors on a quiet 2-core machine,
    90 s: boost 1 → trainings keep 43 % of their pace, page p95 1.4 s; 2 → 76 %, 16 s and 3 time-outs; 3 → 97 %,
    20 s and 4 time-outs). Raising a priority needs privilege (root in CI and Docker), and a kernel or container
    may have no autogroups or show them differently: then the worker keeps the server's priority, and nothing
    else changes. Called before the worker has started its threads (they inherit it).
    """
    if boost == 0:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, pid, os.getpriority(os.PRIO_PROCESS, 0) - boost)
    except OSError:
        pass
    nice = autogroup_nice()
    if nice is None:
        return
    try:
        Path(f"/proc/{pid}/autogroup").write_text(f"{nice - boost}\n")
    except OSError:
        pass


def autogroup_nice(path: Path | str = "/proc/self/autogroup") -> int | None:
    """This process's autogroup nice level ("/autogroup-123 nice 0"), or None where there is none to read."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    match = re.search(r"\bnice\s+(-?\d+)", text)
    return int(match.group(1)) if match else None


def _owner(run: Run) -> str:
    """The run's workspace (workspace.owner); a run whose config cannot be read is the server's."""
    try:
        return ws.owner(run.config)
    except (RunError, OSError):
        return ws.SERVER


def _remove_uploads(workspace: str) -> None:
    """The uploaded datasets of an expired workspace (engine.data.uploads), when uploads are installed."""
    try:
        from engine.data.uploads import remove_workspace_uploads
    except ImportError:
        return
    remove_workspace_uploads(workspace)


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
