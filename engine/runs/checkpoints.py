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
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from engine.runs.files import RunError, atomic_write_bytes

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

