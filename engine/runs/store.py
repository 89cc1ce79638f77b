"""The run directory: the contract between trainers, the CLI and the UI.

    RUN/
      config.json        model name and config, dataset, training settings, seed, versions
      status.json        state (queued | running | done | failed | cancelled | interrupted),
                         step, epoch, progress, pid, error text, final metrics (read as a RunStatus)
      metrics.jsonl      one JSON object per logged step (read as a MetricsLog)
      checkpoints/       step_00001234.safetensors: weights (+ optimizer state) with a JSON header
      snapshots/         inputs.png and recon_00001234.png / samples_00001234.png over time
      control.json       settings changed while it trains (a GAN's learning rates)
      worker.log         stdout and stderr of the worker process, when one ran it

Every file is written whole to a temporary name and renamed into place, so a reader (or a crash)
never sees half a file; metrics.jsonl is appended line by line and readers skip a torn last line.
Loading validates everything and raises RunError with a message, never unpickles anything.
"""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import engine
from engine.runs.checkpoints import FORMAT_VERSION, load_model_from_checkpoint, save_checkpoint, step_of
from engine.runs.files import RunError, atomic_write_bytes, atomic_write_json, file_lock, read_json
from engine.runs.status import STATES, MetricsLog, RunStatus

STATUS_LOCK = ".status.lock"  # in the run folder: held while status.json is read and rewritten
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
HISTORY_CHECKPOINTS = 16  # older checkpoints kept (thinned) beside the newest ones, for replays


def default_runs_dir() -> Path:
    """LATENT_LAB_RUNS, else ./runs under the current directory."""
    return Path(os.environ.get("LATENT_LAB_RUNS") or "runs").resolve()


def versions() -> dict:
    import numpy

    return {"engine": engine.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


# ---------------------------------------------------------------------------------------------
# process liveness, so a killed worker's run can be told from a running one


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of process `pid` (Linux), or None. Guards against PID reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":  # a zombie has finished running
        return None
    return fields[19]  # field 22 of stat: starttime


def process_alive(pid: int | None, start: str | None) -> bool:
    if not pid:
        return False
    if Path("/proc").is_dir():
        now = process_start_time(pid)
        return now is not None and (start is None or now == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------------------------------
# the run


@dataclass(frozen=True)
class Snapshot:
    step: int
    kind: str  # "recon" (reconstructions of the fixed test batch) or "samples" (from a fixed z)
    path: Path


def _thin(ckpts: list[tuple[int, Path]], history: int) -> list[tuple[int, Path]]:
    """The checkpoints to drop so that at most `history` remain, spread evenly over the steps.

    Steps fall into buckets of width S (the smallest power of two giving at most `history`
    buckets) and the first checkpoint of each bucket stays. Doubling S only merges buckets, so a
    checkpoint dropped once would be dropped again: the history thins the same way as it grows.
    """
    if len(ckpts) <= history:
        return []
    if history <= 0:
        return list(ckpts)
    width = 1
    while len({s // width for s, _ in ckpts}) > history:
        width *= 2
    seen, drop = set(), []
    for s, p in ckpts:
        if s // width in seen:
            drop.append((s, p))
        seen.add(s // width)
    return drop


class Run:
    """A handle on one run directory. Cheap to create; every read goes to the files."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise RunError(f"{self.path} is not a run directory (no config.json)")

    # -- creation ------------------------------------------------------------------------------

    @classmethod
    def create(cls, runs_dir: Path | str, config: dict, run_id: str | None = None) -> Run:
        """Make a new run directory holding config.json and a 'queued' status."""
        runs_dir = Path(runs_dir)
        runs_dir.mkdir(parents=True, exist_ok=True)
        if run_id is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            run_id = f"{stamp}-{config.get('model', 'run')}-{secrets.token_hex(2)}"
        if not RUN_ID.match(run_id):
            raise RunError(f"run id {run_id!r} may hold only letters, digits, '-', '_' and '.'")
        path = runs_dir / run_id
        path.mkdir()  # fails if it exists: ids are unique
        (path / "checkpoints").mkdir()
        (path / "snapshots").mkdir()
        full = {**config, "id": run_id, "created_at": time.time(), "versions": versions(),
                "format_version": FORMAT_VERSION}
        atomic_write_json(path / "status.json", {"state": "queued", "step": 0, "epoch": 0, "progress": 0.0,
                                                 "updated_at": time.time()})
        atomic_write_json(path / "config.json", full)  # last: its presence marks a complete run dir
        return cls(path)

    # -- reading -------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def config(self) -> dict:
        config = read_json(self.path / "config.json")
        for key in ("model", "dataset", "model_config", "train"):
            if key not in config:
                raise RunError(f"{self.path / 'config.json'} lacks the {key!r} field")
        return config

    def status(self) -> RunStatus:
        """status.json, typed; an unreadable file reads as a failed run saying why (never raises)."""
        try:
            return RunStatus.parse(read_json(self.path / "status.json"))
        except RunError as e:
            return RunStatus.unreadable(str(e))

    @property
    def state(self) -> str:
        return self.status().state

    def metrics(self) -> MetricsLog:
        """Every logged record; a torn or damaged line (a crash mid-append) is skipped."""
        path = self.path / "metrics.jsonl"
        out = MetricsLog()
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return out
        with f:
            for line in f:
                try:
                    rec = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                    continue
                if isinstance(rec, dict):
                    out.append(rec)
        return out

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(step, path) of each checkpoint file, oldest first."""
        out = []
        for p in (self.path / "checkpoints").glob("step_*.safetensors"):
            try:
                out.append((step_of(p), p))
            except RunError:
                continue
        return sorted(out)

    def latest_checkpoint(self) -> Path | None:
        ckpts = self.checkpoints()
        return ckpts[-1][1] if ckpts else None

    def load_model(self, step: int | None = None, device: torch.device | str = "cpu"):
        """(model, header) from the checkpoint at `step`, or the newest one that loads."""
        ckpts = self.checkpoints()
        if not ckpts:
            raise RunError(f"run {self.id} has no checkpoint yet; wait for training to save one")
        if step is not None:
            match = [p for s, p in ckpts if s == step]
            if not match:
                raise RunError(f"run {self.id} has no checkpoint at step {step}; "
                               f"it has steps {', '.join(str(s) for s, _ in ckpts)}")
            return load_model_from_checkpoint(match[0], device)
        errors = []
        for _, p in reversed(ckpts):  # a damaged newest checkpoint falls back to the one before
            try:
                return load_model_from_checkpoint(p, device)
            except RunError as e:
                errors.append(str(e))
        raise RunError(f"no checkpoint of run {self.id} loads: {errors[0]}")

    def snapshots(self, kind: str = "recon") -> list[Snapshot]:
        out = []
        for p in (self.path / "snapshots").glob(f"{kind}_*.png"):
            try:
                out.append(Snapshot(step_of(p), kind, p))
            except RunError:
                continue
        return sorted(out, key=lambda s: s.step)

    def cancel_requested(self) -> bool:
        return (self.path / "cancel").exists()

    def control(self) -> dict:
        """Settings changed while the run trains (control.json, e.g. {"lr": 1e-4, "lr_d": 4e-4}); {} if none."""
        path = self.path / "control.json"
        if not path.is_file():
            return {}
        try:
            return read_json(path)
        except RunError:
            return {}

    def set_control(self, **fields) -> dict:
        """Ask the running trainer to change settings (learning rates): merged into control.json, atomically.

        Any process may call this (the UI does); the trainer polls the file and applies what it knows.
        """
        control = {**self.control(), **{k: v for k, v in fields.items() if v is not None}}
        control["updated_at"] = time.time()
        atomic_write_json(self.path / "control.json", control)
        return control

    def summary(self) -> dict:
        """A JSON-able overview for listings (CLI `runs`, the UI's gallery); a damaged run says why, never raises."""
        status = self.status()
        try:
            config = self.config
            model_config = config["model_config"]
            latent_dim = model_config.get("latent_dim") if isinstance(model_config, dict) else None
        except (RunError, OSError) as e:
            return {"id": self.id, "path": str(self.path), "state": "failed", "error": str(e)}
        return {
            "id": self.id, "name": config.get("name") if isinstance(config.get("name"), str) else None,
            "path": str(self.path), "model": config["model"], "dataset": config["dataset"],
            "latent_dim": latent_dim, "created_at": config.get("created_at"),
            "state": status.state, "step": status.step, "epoch": status.epoch, "progress": status.progress,
            "error": status.error, "metrics": status.metrics,
        }

    def checkpoint_token(self, step: int | None = None) -> tuple[int, int, int] | None:
        """(step, mtime_ns, size) of the checkpoint at `step` (default: the newest); None when there is none.

        The one key under which anything derived from a checkpoint (a loaded model, codes, maps) is
        cached: a checkpoint rewritten at the same step (a resumed run) gets a new token.
        """
        ckpts = self.checkpoints()
        if step is not None:
            ckpts = [(s, p) for s, p in ckpts if s == step]
        for s, p in reversed(ckpts):
            try:
                st = p.stat()
            except OSError:  # thinned away meanwhile: the one before
                continue
            return s, st.st_mtime_ns, st.st_size
        return None

    # -- writing -------------------------------------------------------------------------------

    def set_status(self, only_if: tuple[str, ...] | None = None, **fields) -> RunStatus:
        """Merge `fields` into status.json, atomically and under the run's lock file.

        The worker and the job manager both write the status: the lock keeps one from writing back what
        it read before the other's write. With `only_if`, the fields are merged only while the state is
        one of those (e.g. the manager's "running" only over "queued", never over the worker's "done").
        Returns the status as it is now.
        """
        with file_lock(self.path / STATUS_LOCK):
            try:
                status = read_json(self.path / "status.json")
            except RunError:
                status = {}
            if only_if is not None and status.get("state") not in only_if:
                return RunStatus.parse(status)
            status.update(fields, updated_at=time.time())
            if status.get("state") not in STATES:
                raise RunError(f"unknown run state {status.get('state')!r}; one of {', '.join(STATES)}")
            atomic_write_json(self.path / "status.json", status)
            return RunStatus.parse(status)

    def log(self, record: dict) -> None:
        """Append one JSON line to metrics.jsonl (flushed, so readers see it at once)."""
        line = json.dumps(record, allow_nan=True, separators=(",", ":")) + "\n"
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(line)
            f.flush()

    def truncate_metrics(self, max_step: int) -> None:
        """Drop records after `max_step` (on resume from a checkpoint taken at that step)."""
        keep = [r for r in self.metrics() if r.get("step", 0) <= max_step]
        atomic_write_bytes(self.path / "metrics.jsonl",
                           "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in keep).encode())
        for kind in ("recon", "samples"):
            for snap in self.snapshots(kind):
                if snap.step > max_step:
                    snap.path.unlink(missing_ok=True)

    def save_checkpoint(self, model, step: int, header: dict, optimizers=None, keep: int = 5,
                        history: int = HISTORY_CHECKPOINTS) -> Path:
        """Write a checkpoint; keep the newest `keep` and a thinned, evenly spread `history` before them.

        The history lets a page replay training (the latent map across checkpoints) without
        keeping every checkpoint: when it overflows, the old ones nearest evenly spaced steps stay.
        """
        path = self.path / "checkpoints" / f"step_{step:08d}.safetensors"
        save_checkpoint(path, model, {**header, "step": step}, optimizers)
        if keep > 0:
            old = self.checkpoints()[:-keep]
            for _, p in _thin(old, history):
                p.unlink(missing_ok=True)
        return path

    def save_snapshot(self, png: bytes, step: int, kind: str = "recon") -> Path:
        path = self.path / "snapshots" / f"{kind}_{step:08d}.png"
        atomic_write_bytes(path, png)
        return path

    def request_cancel(self) -> None:
        atomic_write_bytes(self.path / "cancel", str(time.time()).encode())

    def clear_cancel(self) -> None:
        (self.path / "cancel").unlink(missing_ok=True)

    def mark_if_dead(self) -> str:
        """If status says running (or stopping) but its worker process is gone, mark it interrupted."""
        status = self.status()
        if status.state == "running" and not process_alive(status.pid, status.pid_start):
            ckpt = self.latest_checkpoint()
            note = (f"the worker stopped without finishing; resume continues from the checkpoint at step "
                    f"{step_of(ckpt)}" if ckpt else "the worker stopped before its first checkpoint")
            return self.set_status(only_if=("running",), state="interrupted", error=note).state
        return status.state

    def delete(self) -> None:
        shutil.rmtree(self.path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"


def find_run(ref: str | Path, runs_dir: Path | str | None = None) -> Run:
    """A run by path, or by id (or unique id prefix) under runs_dir."""
    p = Path(ref)
    if p.is_dir():
        return Run(p)
    runs_dir = Path(runs_dir) if runs_dir else default_runs_dir()
    if not RUN_ID.match(str(ref)):
        raise RunError(f"no run directory at {ref}")
    exact = runs_dir / str(ref)
    if exact.is_dir():
        return Run(exact)
    matches = [d for d in runs_dir.glob(f"{ref}*") if (d / "config.json").is_file()] if runs_dir.is_dir() else []
    if len(matches) == 1:
        return Run(matches[0])
    if len(matches) > 1:
        raise RunError(f"{ref!r} matches {len(matches)} runs in {runs_dir}; give more of the id")
    raise RunError(f"no run {ref!r} in {runs_dir} (list them with: python -m engine runs)")


def list_runs(runs_dir: Path | str | None = None) -> list[Run]:
    """Every run directory under runs_dir, newest first; folders that are not runs are skipped."""
    runs_dir = Path(runs_dir) if runs_dir else default_runs_dir()
    if not runs_dir.is_dir():
        return []
    runs = []
    for d in runs_dir.iterdir():
        if d.is_dir() and (d / "config.json").is_file():
            runs.append(Run(d))
    return sorted(runs, key=lambda r: r.id, reverse=True)

