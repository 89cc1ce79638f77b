"""The run directory: the contract between trainers, the CLI and the UI.

    RUN/
      config.json        model name and config, dataset, training settings, seed, versions
      status.json        state (queued | running | done | failed | cancelled | interrupted),
                         step, epoch, progress, pid, error text, final metrics
      metrics.jsonl      one JSON object per logged step
      checkpoints/       step_00001234.safetensors: weights (+ optimizer state) with a JSON header
      snapshots/         inputs.png and recon_00001234.png / samples_00001234.png over time
      worker.log         stdout and stderr of the worker process, when one ran it

Every file is written whole to a temporary name and renamed into place, so a reader (or a crash)
never sees half a file; metrics.jsonl is appended line by line and readers skip a torn last line.
Loading validates everything and raises RunError with a message, never unpickles anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock, so writers are not serialised there
    fcntl = None
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

import engine

FORMAT_VERSION = 1
STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
FINISHED = ("done", "failed", "cancelled", "interrupted")
ACTIVE = ("queued", "running")  # the states a run leaves only through its worker (or the worker's end)
STATUS_LOCK = ".status.lock"  # in the run folder: held while status.json is read and rewritten
CHECKPOINT_MAGIC = "latent-lab-checkpoint"
MAX_CHECKPOINT_BYTES = 512 * 1024 * 1024
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_STEP_FILE = re.compile(r"^(?:step_|recon_|samples_)?(\d+)\.(?:safetensors|png)$")


HISTORY_CHECKPOINTS = 16  # older checkpoints kept (thinned) beside the newest ones, for replays


class RunError(ValueError):
    """A run directory or one of its files is missing, malformed or tampered with."""


def default_runs_dir() -> Path:
    """LATENT_LAB_RUNS, else ./runs under the current directory."""
    return Path(os.environ.get("LATENT_LAB_RUNS") or "runs").resolve()


# ---------------------------------------------------------------------------------------------
# atomic file helpers


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path` (atomic on POSIX)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def file_lock(path: Path):
    """An exclusive flock on the file `path` (created if missing; its folder must exist) for the block.

    flock conflicts between open file descriptions, so it serialises the threads of one process as well
    as processes.
    """
    with open(path, "a+") as f:
        if fcntl is not None:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n").encode())


def read_json(path: Path) -> dict:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise RunError(f"{path} is missing") from None
    except OSError as e:
        raise RunError(f"cannot read {path}: {e.strerror}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise RunError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}); the file is damaged") from None
    if not isinstance(obj, dict):
        raise RunError(f"{path} should hold a JSON object, found {type(obj).__name__}")
    return obj


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
# checkpoints: safetensors, with the JSON header in the file's metadata


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes: a changed byte anywhere fails to load."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state_dict into tensors (for safetensors) and JSON (the rest)."""
    tensors, plain = {}, {}
    for pid, pstate in state["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().clone()
            else:
                plain.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "plain": plain}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for pid, extra in meta.get("plain", {}).items():
        state.setdefault(int(pid), {}).update(extra)
    return {"state": dict(sorted(state.items())), "param_groups": meta["param_groups"]}


def save_checkpoint(path: Path, model: torch.nn.Module, header: dict,
                    optimizers: dict[str, torch.optim.Optimizer] | None = None) -> None:
    """Write model weights (and optimizer state) as safetensors with `header` as JSON metadata."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    opt_meta = {}
    for name, opt in (optimizers or {}).items():
        t, meta = _flatten_optimizer(opt.state_dict())
        tensors.update({f"{name}:{k}": v for k, v in t.items()})
        opt_meta[name] = meta
    header = {**header, "magic": CHECKPOINT_MAGIC, "format_version": FORMAT_VERSION,
              "optimizers": opt_meta, "sha256": _digest(tensors)}
    data = st_save(tensors, metadata={"latent_lab": json.dumps(header, allow_nan=False)})
    atomic_write_bytes(path, data)


def read_checkpoint(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """Return (header, tensors) after checking structure, version and checksum."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise RunError(f"checkpoint {path} is missing") from None
    if size > MAX_CHECKPOINT_BYTES:
        raise RunError(f"checkpoint {path} is {size / 2**20:.0f} MiB, over the "
                       f"{MAX_CHECKPOINT_BYTES // 2**20} MiB limit; it is not a Latent Lab checkpoint")
    data = path.read_bytes()
    try:
        tensors = st_load(data)
        from safetensors import safe_open  # metadata needs the file API

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, ValueError, RuntimeError, OSError) as e:
        raise RunError(f"checkpoint {path} is not a readable safetensors file ({e}); "
                       "it is truncated or damaged") from None
    try:
        header = json.loads(metadata["latent_lab"])
    except (KeyError, json.JSONDecodeError):
        raise RunError(f"checkpoint {path} has no Latent Lab header; it was not written by Latent Lab") from None
    if header.get("magic") != CHECKPOINT_MAGIC:
        raise RunError(f"checkpoint {path} has a foreign header (magic {header.get('magic')!r})")
    if header.get("format_version") != FORMAT_VERSION:
        raise RunError(f"checkpoint {path} has format version {header.get('format_version')}; "
                       f"this Latent Lab reads version {FORMAT_VERSION}")
    if header.get("sha256") != _digest(tensors):
        raise RunError(f"checkpoint {path} fails its checksum: its weights were changed after saving")
    return header, tensors


def model_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's state_dict among a checkpoint's tensors (stored under "model.")."""
    return {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}


def load_model_from_checkpoint(path: Path, device: torch.device | str = "cpu"):
    """Rebuild the model a checkpoint describes and load its weights: (model, header)."""
    header, tensors = read_checkpoint(path)
    return model_from_tensors(path, header, tensors).to(device).eval(), header


def model_from_tensors(path: Path, header: dict, tensors: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The model a read checkpoint (header, tensors) describes, with its weights; RunError says what is wrong."""
    from engine.models import build_model

    try:
        model = build_model(header["model"], header["model_config"])
    except (KeyError, TypeError, ValueError) as e:
        raise RunError(f"checkpoint {path} describes a model that cannot be built: {e}") from None
    state = model_state(tensors)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise RunError(f"checkpoint {path} does not fit model {header['model']!r}: {first}") from None
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise RunError(f"checkpoint {path} holds NaN or infinite weights (training diverged)")
    return model


def load_optimizer_state(header: dict, tensors: dict[str, torch.Tensor], name: str) -> dict | None:
    meta = header.get("optimizers", {}).get(name)
    if meta is None:
        return None
    prefix = f"{name}:"
    return _unflatten_optimizer({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, meta)


def step_of(path: Path) -> int:
    m = _STEP_FILE.match(Path(path).name)
    if not m:
        raise RunError(f"{path} is not named like a step file (step_00000123.safetensors)")
    return int(m.group(1))


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
    def create(cls, runs_dir: Path | str, config: dict, run_id: str | None = None) -> "Run":
        """Make a new run directory holding config.json and a 'queued' status."""
        runs_dir = Path(runs_dir)
        runs_dir.mkdir(parents=True, exist_ok=True)
        if run_id is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            run_id = f"{stamp}-{config.get('model', 'run')}-{secrets.token_hex(2)}"
        if not _RUN_ID.match(run_id):
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

    def status(self) -> dict:
        try:
            status = read_json(self.path / "status.json")
        except RunError as e:
            return {"state": "failed", "step": 0, "epoch": 0, "progress": 0.0, "error": str(e)}
        if status.get("state") not in STATES:
            return {**status, "state": "failed", "error": f"status.json has an unknown state {status.get('state')!r}"}
        return status

    @property
    def state(self) -> str:
        return self.status()["state"]

    def metrics(self) -> list[dict]:
        """Every logged record; a torn or damaged line (a crash mid-append) is skipped."""
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        out = []
        with open(path, "rb") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
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
        """A JSON-able overview for listings (CLI `runs`, the UI's gallery)."""
        status = self.status()
        try:
            config = self.config
        except RunError as e:
            return {"id": self.id, "path": str(self.path), "state": "failed", "error": str(e)}
        return {
            "id": self.id, "path": str(self.path), "model": config["model"], "dataset": config["dataset"],
            "latent_dim": config["model_config"].get("latent_dim"), "created_at": config.get("created_at"),
            "state": status["state"], "step": status.get("step", 0), "epoch": status.get("epoch", 0),
            "progress": status.get("progress", 0.0), "error": status.get("error"),
            "metrics": status.get("final_metrics") or status.get("last_metrics") or {},
        }

    # -- writing -------------------------------------------------------------------------------

    def set_status(self, only_if: tuple[str, ...] | None = None, **fields) -> dict:
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
                return status
            status.update(fields, updated_at=time.time())
            if status.get("state") not in STATES:
                raise RunError(f"unknown run state {status.get('state')!r}; one of {', '.join(STATES)}")
            atomic_write_json(self.path / "status.json", status)
            return status

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
        if status["state"] == "running" and not process_alive(status.get("pid"), status.get("pid_start")):
            ckpt = self.latest_checkpoint()
            note = (f"the worker stopped without finishing; resume continues from the checkpoint at step "
                    f"{step_of(ckpt)}" if ckpt else "the worker stopped before its first checkpoint")
            return self.set_status(only_if=("running",), state="interrupted", error=note)["state"]
        return status["state"]

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
    if not _RUN_ID.match(str(ref)):
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

