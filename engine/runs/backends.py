"""Where a training job's worker runs: this machine (`local`) or a Ray cluster (`ray`).

LATENT_LAB_BACKEND picks it (local by default; `ray` needs `pip install -r requirements-ray.txt` and
RAY_ADDRESS, the cluster's dashboard, e.g. http://head:8265). Everything else stays the job manager's
(engine.runs.jobs): the queue in the run folders, the fair order across workspaces, the per-workspace
limits, cancel files, resume from checkpoints. The backend decides only where `python -m engine worker RUN`
runs, how many run at once, whether one still runs, and how one is stopped.

Ray: each job is submitted through Ray's **Jobs API** (JobSubmissionClient, an HTTP client of the head's
dashboard) rather than as a task or actor of a driver in the app server. A task or a non-detached actor
shares its fate with the driver that owns it: a restarted app server would kill every training it started.
A Ray job is owned by the cluster (its supervisor actor), outlives the app server, and is found again by its
submission id, which the run's status.json records; the job's entrypoint is the same worker command the
local backend starts, so the run folder contract is one. Each job asks for its resources as the entrypoint's
(`entrypoint_num_cpus`, and `entrypoint_num_gpus=1` when the cluster has GPUs), so Ray places it on a node that
has them free, on any node, and starts no job twice. Known pitfalls, from Ray's documentation: without
entrypoint resources a job's driver runs on the head node (so we always ask for some); a job's working
directory is not our checkout (the entrypoint is an absolute python and the installed engine package,
never runtime_env uploads); stop_job sends SIGTERM then SIGKILL after RAY_JOB_STOP_WAIT_TIME_S.

The run folders must be on a filesystem every node mounts at the same path (NFS, a cluster volume): the worker
writes its checkpoints, metrics and status there and the app reads them. Without one, a job placed on another
node finds no run folder; the worker then exits at once with a message saying so, and the run is marked failed
with that message (Ray keeps the job's log).
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import sys
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from engine.env import env_number
from engine.runs.store import JOB_FENCE_ENV

BACKENDS = ("local", "ray")
RAY_JOB_PREFIX = "latentlab"
CAPACITY_TTL_S = 5.0  # how long a reading of the cluster's nodes (or a failure to reach them) is trusted
PROBE_TIMEOUT_S = 2.0  # Ray's HTTP client sets no timeout: a TCP probe first, so a lost head cannot hang a page
DEFAULT_ADDRESS = "http://127.0.0.1:8265"


class BackendUnavailable(ConnectionError):
    """The cluster cannot be reached or refused a request; the message says which and what to do."""


def backend_name() -> str:
    """LATENT_LAB_BACKEND: local (default) or ray; a typo stops the server rather than silently training locally."""
    name = os.environ.get("LATENT_LAB_BACKEND", "local").strip().lower() or "local"
    if name not in BACKENDS:
        raise ValueError(f"LATENT_LAB_BACKEND={name!r}: use one of {', '.join(BACKENDS)}")
    return name


def fallback_local() -> bool:
    """LATENT_LAB_BACKEND_FALLBACK=local: while the Ray cluster is unreachable, queued jobs train here instead."""
    return os.environ.get("LATENT_LAB_BACKEND_FALLBACK", "").strip().lower() == "local"


def ray_address() -> str:
    """The dashboard address the Jobs API talks to: RAY_ADDRESS (http://host:8265; a bare host:port gets http://)."""
    address = os.environ.get("RAY_ADDRESS", "").strip() or DEFAULT_ADDRESS
    if address.startswith("ray://"):
        raise ValueError(f"RAY_ADDRESS={address!r} is a Ray Client address; the job backend needs the dashboard's "
                         f"HTTP address, e.g. http://head:8265")
    return address if "://" in address else f"http://{address}"


@dataclass(frozen=True)
class JobEnd:
    """How a job that left no final state in status.json ended: the state to record and why."""

    state: str  # "interrupted" (killed, a lost node: resume continues) or "failed" (the worker's own error)
    error: str


class RayBackend:
    """Training jobs as Ray jobs on the cluster at `address` (see the module docstring)."""

    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_job: float | None = None,
                 gpus_per_job: float | None = None, python: str | None = None):
        self.address = address or ray_address()
        self.cpus_per_job = cpus_per_job or max(env_number("LATENT_LAB_RAY_CPUS", 1), 0.1)
        # None: one GPU per job when the cluster has any, else none (decided from the nodes, see capacity())
        self._gpus_setting = gpus_per_job if gpus_per_job is not None else _optional_number("LATENT_LAB_RAY_GPUS")
        # the worker's python on the nodes: the same environment at the same path (or LATENT_LAB_RAY_PYTHON)
        self.python = python or os.environ.get("LATENT_LAB_RAY_PYTHON", "").strip() or sys.executable
        self._client = None
        self._capacity: tuple[float, int, float] | None = None  # (read at, slots, GPUs in the cluster)
        self._down: tuple[float, str] | None = None  # (when, why) the cluster last could not be reached
        self.threads = max(1, int(self.cpus_per_job))  # a job's torch threads: the CPUs it reserved

    # -- the client --------------------------------------------------------------------------------

    def client(self):
        self._probe()
        if self._client is None:
            try:
                from ray.job_submission import JobSubmissionClient
            except ImportError as e:
                raise BackendUnavailable("LATENT_LAB_BACKEND=ray, but Ray is not installed: "
                                         "pip install -r requirements-ray.txt") from e
            try:
                self._client = JobSubmissionClient(self.address)
            except Exception as e:  # ConnectionError, or requests' and aiohttp's own
                raise BackendUnavailable(self._unreachable(e)) from e
        return self._client

    def _unreachable(self, e: Exception) -> str:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        return (f"the Ray cluster at {self.address} does not answer ({first}); queued runs wait until it does "
                f"(start it with `ray start --head`, check RAY_ADDRESS, or set LATENT_LAB_BACKEND_FALLBACK=local)")

    def _probe(self) -> None:
        """Fail fast (PROBE_TIMEOUT_S, then remembered for CAPACITY_TTL_S) when nothing listens at the address."""
        now = time.monotonic()
        if self._down is not None and now - self._down[0] < CAPACITY_TTL_S:
            raise BackendUnavailable(self._down[1])
        parts = urlsplit(self.address)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=PROBE_TIMEOUT_S).close()
        except OSError as e:
            self._client = None
            self._down = (now, self._unreachable(e))
            raise BackendUnavailable(self._down[1]) from e
        self._down = None

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BackendUnavailable:
            raise
        except Exception as e:
            if _is_missing_job(e):
                raise LookupError(str(e)) from e
            self._client = None  # reconnect next time
            self._down = (time.monotonic(), self._unreachable(e))
            raise BackendUnavailable(self._down[1]) from e

    # -- capacity ------------------------------------------------------------------------------------

    def capacity(self) -> int:
        """How many jobs the cluster's live nodes hold at once: per node, its CPUs ÷ cpus_per_job (and its GPUs ÷
        gpus_per_job when jobs take GPUs), summed. Read from Ray's state API, at most every CAPACITY_TTL_S."""
        now = time.monotonic()
        if self._capacity is not None and now - self._capacity[0] < CAPACITY_TTL_S:
            return self._capacity[1]
        self.client()
        try:
            from ray.util.state import list_nodes

            nodes = list_nodes(address=self.address, filters=[("state", "=", "ALIVE")], raise_on_missing_output=False)
        except Exception as e:
            self._down = (now, self._unreachable(e))
            raise BackendUnavailable(self._down[1]) from e
        totals = [getattr(n, "resources_total", None) or {} for n in nodes]
        gpus_in_cluster = sum(float(t.get("GPU", 0)) for t in totals)
        gpus = self.gpus_per_job(gpus_in_cluster)
        slots = 0
        for t in totals:
            per_node = int(float(t.get("CPU", 0)) // self.cpus_per_job)
            if gpus:
                per_node = min(per_node, int(float(t.get("GPU", 0)) // gpus))
            slots += per_node
        self._capacity = (now, slots, gpus_in_cluster)
        return slots

    def gpus_per_job(self, gpus_in_cluster: float | None = None) -> float:
        if self._gpus_setting is not None:
            return self._gpus_setting
        if gpus_in_cluster is None:
            gpus_in_cluster = self._capacity[2] if self._capacity else 0.0
        return 1.0 if gpus_in_cluster >= 1 else 0.0

    # -- jobs ----------------------------------------------------------------------------------------

    def new_job_id(self, run_id: str) -> str:
        """A submission id for the next job of `run_id` (each start, a resume too, is a job of its own)."""
        return f"{RAY_JOB_PREFIX}-{run_id}-{int(time.time() * 1000)}"

    def submit(self, job_id: str, run_path: str, resume: bool, env: dict[str, str]) -> None:
        """Submit the worker of the run at `run_path` (absolute, on the shared filesystem) as Ray job `job_id`."""
        client = self.client()
        if self._capacity is None:
            self.capacity()  # whether the cluster has GPUs decides gpus_per_job
        gpus = self.gpus_per_job()
        log = os.path.join(run_path, "worker.log")
        cmd = [self.python, "-m", "engine", "worker", run_path, "--log", log] + (["--resume"] if resume else [])
        job_env = {**env, "LATENT_LAB_THREADS": str(self.threads), "PYTHONUNBUFFERED": "1",
                   JOB_FENCE_ENV: job_id}  # the worker writes only while the run names this job (Run.set_status)
        if not gpus:
            job_env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU job leaves the GPUs to the jobs that reserved them
        self._call(client.submit_job, entrypoint=shlex.join(cmd), submission_id=job_id,
                   runtime_env={"env_vars": job_env}, entrypoint_num_cpus=self.cpus_per_job,
                   entrypoint_num_gpus=gpus or None, metadata={"latent_lab_run": job_id})

    def state(self, job_id: str) -> str:
        """The job's Ray state (PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED); "GONE" when the cluster has no such
        job (a cluster restarted since, its jobs forgotten)."""
        try:
            return str(self._call(self.client().get_job_status, job_id).value)
        except LookupError:
            return "GONE"

    def stop(self, job_id: str) -> None:
        """Stop the job (Ray sends SIGTERM, then SIGKILL after its grace)."""
        try:
            self._call(self.client().stop_job, job_id)
        except LookupError:
            pass

    def ending(self, job_id: str, state: str) -> JobEnd:
        """Why a finished job left its run without a final state."""
        if state == "GONE":
            return JobEnd("interrupted", f"the Ray cluster at {self.address} no longer knows job {job_id} (restarted "
                                         f"since?); resume continues from the last checkpoint")
        try:
            info = self._call(self.client().get_job_info, job_id)
        except LookupError:
            return JobEnd("interrupted", f"Ray job {job_id} is gone; resume continues from the last checkpoint")
        code = getattr(info, "driver_exit_code", None)
        message = (getattr(info, "message", "") or "").strip()
        how = None
        if code is None:
            how = "no exit code: its node or its supervisor was lost"
        elif code < 0 or code >= 128:
            how = f"its worker was killed by {_signal_name(-code if code < 0 else code - 128)}"
        elif state == "STOPPED":
            how = "it was stopped on the cluster"
        if how:
            return JobEnd("interrupted", f"the Ray job {job_id} ended ({how}; {message[:300]}); resume continues "
                                         f"from the last checkpoint, on any node")
        try:
            logs = self._call(self.client().get_job_logs, job_id)
        except LookupError:
            logs = ""
        tail = "\n".join(logs.strip().splitlines()[-15:])
        return JobEnd("failed", f"the worker exited with code {code} on the Ray cluster:\n{tail or message}")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _is_missing_job(e: Exception) -> bool:
    text = str(e).lower()
    return "status code 404" in text or "does not exist" in text


def _optional_number(name: str) -> float | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    return env_number(name, 0.0)
