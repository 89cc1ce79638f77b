"""Checkpoints: safetensors with a JSON header in the file's metadata; never a pickle.

    step_00001234.safetensors   tensors "model.<name>" (the model's state_dict) and
                                "<optimizer>:optim.<param>.<key>" (each optimizer's state); metadata
                                "latent_lab": {model, model_config, step, magic, format_version,
                                optimizers (their JSON part), sha256 over every tensor}

Reading checks the structure, the version and the checksum, and raises RunError naming the file.
"""

from __future__ import annotations

import hashlib
import json
import threading
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from engine.runs.files import RunError, atomic_write_bytes, read_regular, shown

FORMAT_VERSION = 1
CHECKPOINT_MAGIC = "latent-lab-checkpoint"
MAX_CHECKPOINT_BYTES = 512 * 1024 * 1024
_STEP_FILE = re.compile(r"^(?:step_|recon_|samples_)?(\d+)\.(?:safetensors|png)$")


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


def _metadata(data: bytes) -> dict:
    """The `__metadata__` of safetensors bytes: an 8-byte little-endian length, then that much JSON."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


def read_checkpoint(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """Return (header, tensors) after checking structure, version and checksum."""
    path = Path(path)
    name = shown(path)
    try:  # a plain file of at most MAX_CHECKPOINT_BYTES: never a symlink to elsewhere, never /dev/zero
        data = read_regular(path, MAX_CHECKPOINT_BYTES + 1)
    except RunError as e:
        raise RunError(f"checkpoint {e}") from None
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise RunError(f"checkpoint {name} is over the {MAX_CHECKPOINT_BYTES // 2**20} MiB limit; "
                       "it is not a Latent Lab checkpoint")
    try:
        tensors = st_load(data)
        metadata = _metadata(data)
    except (SafetensorError, ValueError, RuntimeError, OSError, RecursionError) as e:
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise RunError(f"checkpoint {name} is not a readable safetensors file ({reason}); "
                       "it is truncated or damaged") from None
    try:
        header = json.loads(metadata["latent_lab"])
    except (KeyError, TypeError, ValueError, RecursionError):
        raise RunError(f"checkpoint {name} has no Latent Lab header; it was not written by Latent Lab") from None
    if not isinstance(header, dict):
        raise RunError(f"checkpoint {name} has a header that is not a JSON object; it is damaged")
    if header.get("magic") != CHECKPOINT_MAGIC:
        raise RunError(f"checkpoint {name} has a foreign header (magic {header.get('magic')!r})")
    if header.get("format_version") != FORMAT_VERSION:
        raise RunError(f"checkpoint {name} has format version {header.get('format_version')}; "
                       f"this Latent Lab reads version {FORMAT_VERSION}")
    if header.get("sha256") != _digest(tensors):
        raise RunError(f"checkpoint {name} fails its checksum: its weights were changed after saving")
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

    name = shown(path)
    try:
        model = build_model(header["model"], header["model_config"])
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as e:
        raise RunError(f"checkpoint {name} describes a model that cannot be built: {e}") from None
    state = model_state(tensors)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise RunError(f"checkpoint {name} does not fit model {header['model']!r}: {first}") from None
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise RunError(f"checkpoint {name} holds NaN or infinite weights (training diverged)")
    return model


_PROBLEMS: dict[tuple[str, int, int], str | None] = {}  # (path, mtime_ns, size) → checkpoint_problem's answer
_CHECKING = threading.Lock()


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint at `path` does not load (read_checkpoint, then model_from_tensors), or None when it does.

    Remembered per file version (path, mtime, size), so listings and pickers can ask on every rerun and
    each checkpoint is read once; a rewritten checkpoint (a resumed run) is checked again.
    """
    try:
        st = Path(path).lstat()
    except OSError:
        return f"checkpoint {shown(path)} is missing"
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key in _PROBLEMS:
        return _PROBLEMS[key]
    # One check per file version even when twenty sessions' reruns see a new checkpoint at the same moment:
    # without the lock each of them read, hashed and rebuilt it (bench/bench_load.py: 16 % of the server's CPU).
    with _CHECKING:
        if key not in _PROBLEMS:
            try:
                header, tensors = read_checkpoint(path)
                model_from_tensors(path, header, tensors)
                problem = None
            except RunError as e:
                problem = str(e)
            if len(_PROBLEMS) > 4096:  # a long-lived server: forget the oldest answers
                for old in list(_PROBLEMS)[:1024]:
                    _PROBLEMS.pop(old, None)
            _PROBLEMS[key] = problem
    return _PROBLEMS[key]


def load_optimizer_state(header: dict, tensors: dict[str, torch.Tensor], name: str) -> dict | None:
    meta = header.get("optimizers", {}).get(name)
    if meta is None:
        return None
    prefix = f"{name}:"
    return _unflatten_optimizer({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, meta)


def step_of(path: Path) -> int:
    m = _STEP_FILE.match(Path(path).name)
    if not m:
        raise RunError(f"{shown(path)} is not named like a step file (step_00000123.safetensors)")
    return int(m.group(1))

