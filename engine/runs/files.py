"""Files that never tear: atomic writes (temp file + rename), a lock file, and a checked JSON reader."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock, so writers are not serialised there
    fcntl = None


MAX_JSON_BYTES = 16 * 2**20  # config.json, status.json, control.json: a few KiB when Latent Lab writes them
STALE_TMP_S = 60.0  # a temp file this old is left over from a killed writer (a write takes well under a second)


class RunError(ValueError):
    """A run directory or one of its files is missing, malformed or tampered with."""


def shown(path: Path | str) -> str:
    """`path` as a message may show it to anyone who sees the page: relative to the runs folder
    (`RUN_ID/status.json`), never the server's absolute path.

    Outside the runs folder (a run opened by its path, a judge) it is the run's folder name and what
    lies below it: the last two parts, three for a file in checkpoints/ or snapshots/.
    """
    path = Path(path)
    runs = Path(os.environ.get("LATENT_LAB_RUNS") or "runs").absolute()
    try:
        return path.absolute().relative_to(runs).as_posix() or "."
    except ValueError:
        pass
    keep = 3 if path.parent.name in ("checkpoints", "snapshots") else 2
    return Path(*path.parts[-keep:]).as_posix() if len(path.parts) >= keep else path.name


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
    except OSError as e:  # said with the path as a visitor may see it (e.g. a folder where the file should be)
        Path(tmp).unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror, shown(path)) from None
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


def scrub_paths(text: str) -> str:
    """`text` (a traceback, a worker's log) with the server's own folders cut from its paths: the runs folder
    (`RUN_ID/status.json`), the checkout (`engine/train/loop.py`) and the home folder (`~/…`)."""
    runs = Path(os.environ.get("LATENT_LAB_RUNS") or "runs").absolute()
    checkout = Path(__file__).resolve().parents[2]
    for root, instead in ((runs, ""), (checkout, ""), (Path.home(), "~/")):
        if str(root) not in ("", "/"):
            text = text.replace(f"{root}{os.sep}", instead)
    return text


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of the regular file `path` (not a symlink, folder or device), at most `limit` of them.

    Run folders arrive from outside (imports, other versions, hand edits): a symlink there could make the
    server read any file it can see, and /dev/zero would never end. RunError says what is wrong.
    """
    path, name = Path(path), shown(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise RunError(f"{name} is missing") from None
    except OSError as e:
        if path.is_symlink():
            raise RunError(f"{name} is a symbolic link, not a file; Latent Lab reads only plain files "
                           "inside a run folder") from None
        raise RunError(f"cannot read {name}: {e.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise RunError(f"{name} is {'a folder' if stat.S_ISDIR(mode) else 'a device or pipe'}, not a plain file; "
                       "the run folder is damaged")
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if st.st_size > limit:
            raise RunError(f"{name} is {st.st_size / 2**20:.0f} MiB, over the {limit // 2**20} MiB a Latent Lab "
                           "file can be; the file is damaged")
        try:
            return f.read(limit + 1)[:limit]
        except OSError as e:
            raise RunError(f"cannot read {name}: {e.strerror}") from None


_JSON: dict[tuple, dict] = {}  # (path, inode, mtime_ns, size) → the object read_json parsed from that file version
MAX_REMEMBERED_JSON = 4096


def read_json(path: Path) -> dict:
    """A JSON object from the plain file `path`; RunError (naming the file as `shown` does) when it is not one.

    Each file version is read and parsed once per process and handed out as a copy: a page rerun asks for every
    run's config.json and status.json several times (listings, pickers, labels), twenty sessions at once each
    second, and a stat is much cheaper than an open, a read and a parse. Writers replace files by renaming, so a
    new version has a new inode and mtime.
    """
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        st = None
    key = (str(path), st.st_ino, st.st_mtime_ns, st.st_size) if st is not None and stat.S_ISREG(st.st_mode) else None
    if key is not None and key in _JSON:
        return copy.deepcopy(_JSON[key])
    obj = _parse_json(path)
    if key is not None:
        if len(_JSON) >= MAX_REMEMBERED_JSON:
            for old in list(_JSON)[: MAX_REMEMBERED_JSON // 4]:
                _JSON.pop(old, None)
        _JSON[key] = copy.deepcopy(obj)
    return obj


def _parse_json(path: Path) -> dict:
    name = shown(path)
    data = read_regular(path, MAX_JSON_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RunError(f"{name} is not text (not UTF-8); the file is damaged") from None
    if not text.strip():
        raise RunError(f"{name} is empty; the file is damaged")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise RunError(f"{name} is not valid JSON ({e.msg} at line {e.lineno}); the file is damaged") from None
    except RecursionError:
        raise RunError(f"{name} nests too deeply to be a Latent Lab file; the file is damaged") from None
    if not isinstance(obj, dict):
        raise RunError(f"{name} should hold a JSON object, found {type(obj).__name__}; the file is damaged")
    return obj


def remove_stale_temp_files(folder: Path, older_than_s: float = STALE_TMP_S, pattern: str = ".*.tmp",
                            folders: bool = False) -> list[Path]:
    """Delete the temp files (`.NAME.*.tmp`) atomic_write_bytes left in `folder` when its writer was killed, or with
    folders=True the temp folders matching `pattern` (Run.create's `.create-*`, when a crash cut it short).

    A live writer's temp file is younger than a second (it is renamed as soon as it is written), so one
    older than `older_than_s` belongs to no one. Returns what was removed.
    """
    removed, now = [], time.time()
    try:
        candidates = list(Path(folder).glob(pattern))
    except OSError:
        return removed
    for p in candidates:
        try:
            st = p.lstat()
            if (stat.S_ISDIR if folders else stat.S_ISREG)(st.st_mode) and now - st.st_mtime > older_than_s:
                shutil.rmtree(p) if folders else p.unlink()
                removed.append(p)
        except OSError:  # renamed or removed meanwhile: its writer was alive after all
            continue
    return removed

