"""Files that never tear: atomic writes (temp file + rename), a lock file, and a checked JSON reader."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock, so writers are not serialised there
    fcntl = None


class RunError(ValueError):
    """A run directory or one of its files is missing, malformed or tampered with."""


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
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RunError(f"{path} is not text (not UTF-8); the file is damaged") from None
    except FileNotFoundError:
        raise RunError(f"{path} is missing") from None
    except OSError as e:
        raise RunError(f"cannot read {path}: {e.strerror}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise RunError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}); the file is damaged") from None
    except RecursionError:
        raise RunError(f"{path} nests too deeply to be a Latent Lab file; the file is damaged") from None
    if not isinstance(obj, dict):
        raise RunError(f"{path} should hold a JSON object, found {type(obj).__name__}")
    return obj

