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
import math
import os
import platform
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

import engine
from engine.runs.checkpoints import (FORMAT_VERSION, checkpoint_problem, load_model_from_checkpoint, save_checkpoint,
                                     step_of)
from engine.runs.files import (STALE_TMP_S, RunError, atomic_write_bytes, atomic_write_json, file_lock, read_json,
                               remove_stale_temp_files, shown)
from engine.runs.status import STATES, MetricsLog, RunStatus, finite

CONFIG_FIELDS = {"model": str, "dataset": str, "model_config": dict, "train": dict}  # and their types
_KIND_WORDS = {str: "text", dict: "a JSON object"}
STATUS_LOCK = ".status.lock"  # in the run folder: held while status.json is read and rewritten
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
HISTORY_CHECKPOINTS = 16  # older checkpoints kept (thinned) beside the newest ones, for replays
MAX_SNAPSHOTS = 400  # snapshots of one kind a run keeps: when there are more, the older ones thin like checkpoints
RECENT_SNAPSHOTS = 40  # … except the newest ones, kept as they are
_ANSWERS: dict[tuple[str, str], tuple[tuple, object]] = {}  # (what, run path) → (version, answer)


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


JOB_FENCE_ENV = "LATENT_LAB_JOB"  # set in a Ray job's worker: the job id it trains for (Run.set_status)


class Superseded(RunError):
    """This worker's job is no longer the run's: another start has taken the run over."""


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
        if not _has_config(self.path):
            raise RunError(f"{shown(self.path)} is not a run directory (no config.json)")

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
        if path.exists() or path.is_symlink():
            raise FileExistsError(f"a run {run_id} exists already: ids are unique")
        full = {**config, "id": run_id, "created_at": time.time(), "versions": versions(),
                "format_version": FORMAT_VERSION}
        # Built in a hidden folder (list_runs skips dot-folders), then renamed into place in one step: a value JSON
        # cannot hold, a full disk or a crash never leaves a half run folder behind.
        stage = Path(tempfile.mkdtemp(dir=runs_dir, prefix=f".create-{run_id}-"))
        try:
            (stage / "checkpoints").mkdir()
            (stage / "snapshots").mkdir()
            atomic_write_json(stage / "status.json", {"state": "queued", "step": 0, "epoch": 0, "progress": 0.0,
                                                      "updated_at": time.time()})
            atomic_write_json(stage / "config.json", full)
            os.rename(stage, path)  # fails if another run took the id meanwhile (a non-empty folder is there)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        return cls(path)

    # -- reading -------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def config(self) -> dict:
        """config.json, checked for the fields every reader relies on and their types; RunError says what is wrong."""
        name = shown(self.path / "config.json")
        config = read_json(self.path / "config.json")
        for key, kind in CONFIG_FIELDS.items():
            if key not in config:
                raise RunError(f"{name} lacks the {key!r} field; the run is damaged")
            if not isinstance(config[key], kind):
                raise RunError(f"{name}: {key!r} should be {_KIND_WORDS[kind]}, found "
                               f"{type(config[key]).__name__}; the run is damaged")
        if "name" in config and config["name"] is not None and not isinstance(config["name"], str):
            raise RunError(f"{name}: 'name' should be text, found {type(config['name']).__name__}; the run is damaged")
        return config

    def version(self) -> tuple:
        """What problem() and summary() read, as file versions: config.json's and status.json's (inode, mtime,
        size, mode) and each checkpoint's (name, inode, mtime, size). Equal versions give equal answers.

        Every page's rerun asks each run for its problem and summary (the sidebar, the pickers, the gallery):
        with twenty visitors on one server those reads were a sixth of its CPU (bench/bench_load.py). A few
        stat calls decide whether the answer remembered for this version still holds; a file rewritten
        (renamed into place: a new inode) or a checkpoint added, thinned or damaged in place changes it.
        """
        def of(s: os.stat_result) -> tuple:
            return s.st_ino, s.st_mtime_ns, s.st_size, s.st_mode

        files = []
        for name in ("config.json", "status.json"):
            try:
                files.append(of(os.lstat(self.path / name)))
            except OSError:
                files.append(None)
        try:
            with os.scandir(self.path / "checkpoints") as entries:
                ckpts = tuple(sorted((e.name, *of(e.stat(follow_symlinks=False))) for e in entries
                                     if e.name.endswith(".safetensors")))
        except OSError:
            ckpts = None
        return str(self.path), *files, ckpts

    def _remembered(self, what: str, compute):
        """compute() once per (run, version): what problem() and summary() share across sessions' reruns."""
        version = self.version()
        key = (what, version[0])
        hit = _ANSWERS.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        answer = compute()
        if len(_ANSWERS) > 4096:  # a long-lived server with many runs come and gone: forget the oldest
            for old in list(_ANSWERS)[:1024]:
                _ANSWERS.pop(old, None)
        _ANSWERS[key] = (version, answer)
        return answer

    def problem(self) -> str | None:
        """Why this run cannot be used (config.json, status.json or every checkpoint unreadable), or None.

        What the listings show beside a damaged run. A damaged metrics line or snapshot is not a problem of
        the run: readers skip it and the pages say that image is missing. Remembered per version().
        """
        return self._remembered("problem", self._problem)

    def _problem(self) -> str | None:
        try:
            config = self.config
        except RunError as e:
            return str(e)
        from engine.models import MODELS

        if config["model"] not in MODELS:
            return (f"{shown(self.path / 'config.json')} names the model {config['model'][:60]!r}, which this "
                    "Latent Lab does not have")
        status = self.status()
        if status.damaged:
            return status.error
        ckpts = self.checkpoints()
        if not ckpts:
            done = status.state == "done"
            return "it finished without a checkpoint (checkpoints/ is empty or missing)" if done else None
        if self.checkpoint_token() is None:
            return f"no checkpoint loads: {checkpoint_problem(ckpts[-1][1])}"
        return None

    def status(self) -> RunStatus:
        """status.json, typed; an unreadable file reads as a failed (damaged) run saying why (never raises)."""
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
        try:  # a plain file only: a symlink could point anywhere on the server (or at /dev/zero)
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return out
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return out
        with os.fdopen(fd, "rb") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                    continue
                if isinstance(rec, dict):
                    out.append(rec)
        return out

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(step, path) of each checkpoint file, oldest first (readable or not: see checkpoint_token)."""
        out = []
        try:
            found = list((self.path / "checkpoints").glob("step_*.safetensors"))
        except OSError:
            return out
        for p in found:
            try:
                out.append((step_of(p), p))
            except RunError:
                continue
        return sorted(out)

    def latest_checkpoint(self) -> Path | None:
        """The newest checkpoint file, readable or not (resume and the pages take the newest that loads)."""
        ckpts = self.checkpoints()
        return ckpts[-1][1] if ckpts else None

    def readable_checkpoints(self) -> Iterator[tuple[int, Path]]:
        """(step, path) of each checkpoint that loads (checkpoint_problem is None), newest first.

        Lazy: the checkpoints are checked from the newest down, each once per file version.
        """
        for s, p in reversed(self.checkpoints()):
            if checkpoint_problem(p) is None:
                yield s, p

    def remove_stale_temp_files(self, worker_gone: bool = False) -> list[Path]:
        """Delete the temp files (`.NAME.*.tmp`) that killed writers left in the run folder, checkpoints/ and
        snapshots/: those older than a minute, and with `worker_gone` (no worker runs this run) every one in
        checkpoints/ and snapshots/, which only the worker writes. The run folder's own files (status,
        control) are written by the server too, so there a temp file must be old to be stale."""
        age = 0.0 if worker_gone else STALE_TMP_S
        return [*remove_stale_temp_files(self.path), *remove_stale_temp_files(self.path / "checkpoints", age),
                *remove_stale_temp_files(self.path / "snapshots", age)]

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

    def problem_note(self) -> str | None:
        """A line for a run whose newest checkpoint is damaged while an older one loads, else None."""
        ckpts = self.checkpoints()
        if not ckpts or checkpoint_problem(ckpts[-1][1]) is None:
            return None
        good = next(self.readable_checkpoints(), None)
        return None if good is None else (f"its newest checkpoint (step {ckpts[-1][0]:,}) is damaged, so this is "
                                          f"step {good[0]:,}: {checkpoint_problem(ckpts[-1][1])}")

    def snapshots(self, kind: str = "recon") -> list[Snapshot]:
        out = []
        try:
            found = list((self.path / "snapshots").glob(f"{kind}_*.png"))
        except OSError:
            return out
        for p in found:
            if p.is_symlink():  # plain files only (a symlink could point anywhere on the server)
                continue
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
        """A JSON-able overview for listings (CLI `runs`, the UI's gallery); a damaged run says why, never raises.

        Remembered per version(); each call returns its own copy."""
        summary = self._remembered("summary", self._summary)
        return {**summary, "metrics": dict(summary["metrics"])} if isinstance(summary.get("metrics"), dict) \
            else dict(summary)

    def _summary(self) -> dict:
        status = self.status()
        try:
            config = self.config
        except (RunError, OSError) as e:
            return {"id": self.id, "path": str(self.path), "state": "failed", "error": str(e), "damaged": str(e)}
        latent_dim = config["model_config"].get("latent_dim")
        return {
            "id": self.id, "name": config.get("name"),
            "path": str(self.path), "model": config["model"], "dataset": config["dataset"],
            "latent_dim": latent_dim if finite(latent_dim) is not None else None,
            "created_at": finite(config.get("created_at")),
            "state": status.state, "step": status.step, "epoch": status.epoch, "progress": status.progress,
            "error": status.error, "metrics": status.metrics, "damaged": self.problem(),
        }

    def checkpoint_token(self, step: int | None = None) -> tuple[int, int, int] | None:
        """(step, mtime_ns, size) of the checkpoint at `step` (default: the newest); None when there is none.

        The one key under which anything derived from a checkpoint (a loaded model, codes, maps) is
        cached: a checkpoint rewritten at the same step (a resumed run) gets a new token.
        """
        if step is None:  # the newest checkpoint that loads: a damaged newest one falls back to the one before
            ckpts = list(self.readable_checkpoints())
        else:
            ckpts = [(s, p) for s, p in reversed(self.checkpoints()) if s == step]
        for s, p in ckpts:
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

        A worker started as a Ray job carries its job id (JOB_FENCE_ENV) and writes only while status.json still
        names that job: once the job manager has settled the job's end (a lost node: interrupted) or started the
        run again elsewhere, a worker that outlived its job (a node cut off, not dead) gets Superseded and stops.
        """
        with file_lock(self.path / STATUS_LOCK):
            try:
                status = read_json(self.path / "status.json")
            except RunError:
                status = {}
            fence = os.environ.get(JOB_FENCE_ENV)
            if fence and status.get("ray_job") != fence:
                raise Superseded(f"run {self.id}: this worker's job ({fence}) is no longer the run's "
                                 f"({status.get('ray_job')}); it stops without writing")
            if only_if is not None and status.get("state") not in only_if:
                return RunStatus.parse(status)
            status.update(fields, updated_at=time.time())
            # a damaged file's infinities (1e999 reads as inf) cannot be written back as JSON: they go
            status = {k: v for k, v in status.items()
                      if not (isinstance(v, float) and not math.isfinite(v)) and not _huge(v)}
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
        """Write a snapshot; a long run keeps at most MAX_SNAPSHOTS of a kind, the older ones evenly thinned (a
        week-long run at the shortest snapshot interval would otherwise fill the disk with PNGs)."""
        path = self.path / "snapshots" / f"{kind}_{step:08d}.png"
        atomic_write_bytes(path, png)
        shots = self.snapshots(kind)
        if len(shots) > MAX_SNAPSHOTS:
            old = [(s.step, s.path) for s in shots[:-RECENT_SNAPSHOTS]]
            for _, p in _thin(old, MAX_SNAPSHOTS - RECENT_SNAPSHOTS):
                p.unlink(missing_ok=True)
        return path

    def request_cancel(self) -> None:
        atomic_write_bytes(self.path / "cancel", str(time.time()).encode())

    def clear_cancel(self) -> None:
        (self.path / "cancel").unlink(missing_ok=True)

    def mark_if_dead(self) -> str:
        """If status says running (or stopping) but its worker process is gone, mark it interrupted.

        A run training as a Ray job (status backend "ray") is left alone: its worker's pid is another node's, and
        the job manager asks the cluster instead (engine.runs.backends)."""
        status = self.status()
        if status.raw.get("backend") == "ray":
            return status.state
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
    matches = [d for d in runs_dir.glob(f"{ref}*") if _has_config(d)] if runs_dir.is_dir() else []
    if len(matches) == 1:
        return Run(matches[0])
    if len(matches) > 1:
        raise RunError(f"{ref!r} matches {len(matches)} runs in the runs folder; give more of the id")
    raise RunError(f"no run {ref!r} in the runs folder (list them with: python -m engine runs)")


def list_runs(runs_dir: Path | str | None = None) -> list[Run]:
    """Every run directory under runs_dir, newest first; folders that are not runs are skipped."""
    runs_dir = Path(runs_dir) if runs_dir else default_runs_dir()
    if not runs_dir.is_dir():
        return []
    runs = []
    for d in runs_dir.iterdir():
        if d.is_dir() and not d.name.startswith(".") and _has_config(d):
            runs.append(Run(d))
    return sorted(runs, key=lambda r: r.id, reverse=True)


def _huge(value) -> bool:
    """An int too large for a float (a damaged status.json's 10**400): no reader can use it."""
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63


def _has_config(path: Path) -> bool:
    """A run folder has a config.json: a file, or (damaged) anything else by that name, which then reads as damaged."""
    config = Path(path) / "config.json"
    return config.exists() or config.is_symlink()

