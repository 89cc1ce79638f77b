"""Damaged run folders: every way a run's files were found broken (issue 16), as functions on a copy of a run.

`DAMAGE` maps a kind's name to a function that damages the run folder it is given (a copy of a good,
finished run). The engine tests (tests/engine/test_damaged_runs.py) open each kind through the store and
the CLI; the page tests (tests/pages/test_damaged_runs_pages.py) open every page over a runs folder holding
all of them beside good runs.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

MARKDOWN_ERROR = "[Your session expired: log in again](https://evil.example/login) **now**"
BINARY = b"\xff\xfe\x00\x81garbage\xc3\x28 not utf-8\x00" * 8


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _put(path: Path, obj) -> None:
    path.write_text(json.dumps(obj))


def _edit(file: str, **fields):
    def damage(run: Path) -> None:
        obj = _json(run / file)
        obj.update(fields)
        _put(run / file, obj)
    return damage


def _write(name: str, data: bytes):
    def damage(run: Path) -> None:
        (run / name).write_bytes(data)
    return damage


def _truncate(name: str):
    def damage(run: Path) -> None:
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[: len(data) // 2])
    return damage


def _checkpoints(run: Path) -> list[Path]:
    return sorted((run / "checkpoints").glob("step_*.safetensors"))


def _every_checkpoint(change):
    def damage(run: Path) -> None:
        for p in _checkpoints(run):
            p.write_bytes(change(p.read_bytes()))
    return damage


def _header_lies(run: Path) -> None:
    """Each checkpoint's header describes a wider model than its tensors (the checksum still holds)."""
    for p in _checkpoints(run):
        from safetensors import safe_open

        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata()
        header = json.loads(meta["latent_lab"])
        header["model_config"]["latent_dim"] = header["model_config"]["latent_dim"] + 3
        p.write_bytes(st_save(st_load(p.read_bytes()), metadata={"latent_lab": json.dumps(header)}))


def _newest_checkpoint_damaged(run: Path) -> None:
    """Only the newest checkpoint is garbage: readers fall back to the one before (item 5)."""
    newest = _checkpoints(run)[-1]
    newest.write_bytes(newest.read_bytes()[:100])


def _garble_pngs(run: Path) -> None:
    for p in (run / "snapshots").glob("*.png"):
        p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 20)


def _symlink(name: str, target: str = "/etc/hostname"):
    def damage(run: Path) -> None:
        (run / name).unlink()
        os.symlink(target, run / name)
    return damage


def _directory(name: str):
    def damage(run: Path) -> None:
        (run / name).unlink()
        (run / name).mkdir()
        (run / name / "x").write_text("{}")
    return damage


def _remove(name: str):
    def damage(run: Path) -> None:
        p = run / name
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return damage


def _huge_numbers(run: Path) -> None:
    status = (run / "status.json").read_text()
    obj = json.loads(status)
    obj.update(step=10**400, epoch=-10**30, progress=1e308, elapsed=10**400)
    text = json.dumps(obj).replace('"elapsed": ', '"elapsed": 1e999, "x": ')
    (run / "status.json").write_text(text)
    config = _json(run / "config.json")
    config["created_at"] = 10**400
    config["model_config"]["latent_dim"] = 10**40
    (run / "config.json").write_text(json.dumps(config))
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 1e999, "train/loss": 1e999, "test/mse": -1e999}\n')
        f.write(f'{{"step": {10**400}, "train/loss": {10**400}}}\n')


def _nan_metrics(run: Path) -> None:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    out = []
    for line in lines:
        rec = json.loads(line)
        out.append(json.dumps({k: (float("nan") if k != "step" and isinstance(v, float) else v)
                               for k, v in rec.items()}))
    (run / "metrics.jsonl").write_text("\n".join(out) + "\nNaN\n[1, 2]\n")
    status = _json(run / "status.json")
    text = json.dumps(status).replace('"state":', '"final_metrics": {"mse": NaN, "fid": Infinity}, "x_state":', 1)
    text = text.replace('"x_state"', '"state"')
    (run / "status.json").write_text(text)


DAMAGE = {
    "status-binary": _write("status.json", BINARY),
    "status-truncated": _truncate("status.json"),
    "status-empty": _write("status.json", b""),
    "status-list": _write("status.json", b"[1, 2, 3]"),
    "status-markdown-error": _edit("status.json", state="failed", error=MARKDOWN_ERROR),
    "status-final-metrics-list": _edit("status.json", final_metrics=[1, 2, 3], last_metrics="high"),
    "status-symlink": _symlink("status.json"),
    "status-directory": _directory("status.json"),
    "config-binary": _write("config.json", BINARY),
    "config-truncated": _truncate("config.json"),
    "config-empty": _write("config.json", b""),
    "config-garbage": _write("config.json", b"{this is not json"),
    "config-list": _write("config.json", b"[]"),
    "config-train-list": _edit("config.json", train=[1, 2]),
    "config-model-config-string": _edit("config.json", model_config="big"),
    "config-dataset-number": _edit("config.json", dataset=5),
    "config-unknown-model": _edit("config.json", model="no_such_model"),
    "config-no-model": lambda run: _put(run / "config.json", {k: v for k, v in _json(run / "config.json").items()
                                                              if k != "model"}),
    "config-name-markdown": _edit("config.json", name=MARKDOWN_ERROR),
    "config-symlink": _symlink("config.json"),
    "config-directory": _directory("config.json"),
    "metrics-binary": _write("metrics.jsonl", BINARY),
    "metrics-nan": _nan_metrics,
    "huge-numbers": _huge_numbers,
    "snapshots-garbled": _garble_pngs,
    "snapshots-missing": _remove("snapshots"),
    "checkpoints-missing": _remove("checkpoints"),
    "checkpoint-truncated": _every_checkpoint(lambda b: b[: len(b) // 2]),
    "checkpoint-garbage": _every_checkpoint(lambda b: b"\x08\x00\x00\x00\x00\x00\x00\x00{}" + b"\x00" * 64),
    "checkpoint-header-lies": _header_lies,
    "checkpoint-newest-damaged": _newest_checkpoint_damaged,
    "control-binary": _write("control.json", BINARY),
}

# the kinds that leave a run usable: its config.json and status.json read, and a checkpoint loads
NOT_DAMAGED = {"status-markdown-error", "status-final-metrics-list", "metrics-binary", "metrics-nan",
               "snapshots-garbled", "snapshots-missing", "checkpoint-newest-damaged", "control-binary",
               "config-name-markdown", "huge-numbers"}
# … and those whose model still loads though the run is listed as damaged (its status.json is unreadable)
LOADS = NOT_DAMAGED | {"status-binary", "status-truncated", "status-empty", "status-list", "status-symlink",
                       "status-directory"}


def damaged_copy(source: Path, parent: Path, kind: str, run_id: str | None = None) -> Path:
    """A copy of the run `source` under `parent` (named `run_id`, default `source-kind`) damaged as `kind`."""
    dest = shutil.copytree(source, Path(parent) / (run_id or f"{Path(source).name}-{kind}"), symlinks=True)
    DAMAGE[kind](dest)
    return dest
