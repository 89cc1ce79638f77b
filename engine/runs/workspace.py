"""Who may do what: the server's mode, workspaces, the presenter, share links, the gallery and the limits.

Two modes, one code path (LATENT_LAB_MODE):

- ``local`` (the default): one person. Every run belongs to the workspace ``local`` and every action
  is allowed, server paths (`folder:`, `npz:`) included.
- ``hosted``: many visitors. Each works in a workspace of their own, named by a secret key only
  they hold (the private link `?ws=KEY`; the workspace's id is a hash of the key, so a run's
  config.json, a share link or a log line never reveals the key). A visitor may act only on their
  own runs; a run of another workspace can be looked at (read-only) when it is in the gallery, was
  trained by the server's operator (no workspace: the CLI's runs), or is opened through its share
  link (`?run=ID&share=TOKEN`, an HMAC of the run id under the server's secret). The presenter
  (LATENT_LAB_PRESENTER_SECRET or st.secrets) may do everything, and pins runs to the gallery.

The job manager asks `check(...)` before every action, so a hidden button is never the only guard;
`Limits` are the per-workspace quotas it enforces on submit.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from engine.env import env_number
from engine.runs.files import RunError, atomic_write_json, file_lock, read_json

MODES = ("local", "hosted")
LOCAL = "local"  # the workspace of local mode, and of nobody in hosted mode
SERVER = ""  # the owner of a run without a workspace: the operator's (CLI) runs
WORKSPACE_ID = re.compile(r"^[a-z0-9]{1,40}$")
KEY = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
SHARE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
WORKSPACES = ".workspaces"  # in the runs folder: one JSON file per workspace (created, last seen)
GALLERY = ".gallery.json"  # in the runs folder: the pinned run ids
SECRET = ".secret"  # in the runs folder: the key of share links when LATENT_LAB_SECRET is not set

# The actions a run offers, as the messages say them ("you cannot …").
VIEW, CANCEL, RESUME, DELETE, DOWNLOAD, CONTROL, SLOW_MOTION, COPY, PIN = (
    "view it", "cancel it", "resume it", "delete it", "download it", "change its learning rates",
    "step it in slow motion", "copy it", "pin it")
READ_ONLY = (VIEW, COPY)  # what a visitor may do with a run they may see but do not own


class AccessError(RunError):
    """An action this workspace may not take; the message says why and what to do instead."""


class LimitError(RunError):
    """A workspace's quota is reached; the message says which and what to do."""


def mode() -> str:
    """The server's mode from LATENT_LAB_MODE (local when unset); a typo stops the server rather than
    quietly serving a hosted link in local mode."""
    value = (os.environ.get("LATENT_LAB_MODE") or LOCAL).strip().lower()
    if value not in MODES:
        raise ValueError(f"LATENT_LAB_MODE must be one of {', '.join(MODES)}, not {value[:40]!r}")
    return value


def hosted() -> bool:
    return mode() == "hosted"


# -- limits --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Per-workspace quotas (hosted mode). 0 means no limit. Each is an environment setting:

    LATENT_LAB_WS_RUNNING   jobs of one workspace training at once                 (hosted default 1)
    LATENT_LAB_WS_JOBS      jobs of one workspace queued or running                 (3)
    LATENT_LAB_WS_SECONDS   the longest training a job may ask for, in seconds      (300)
    LATENT_LAB_WS_RUNS      runs a workspace keeps                                  (20)
    LATENT_LAB_WS_MB        megabytes of runs a workspace keeps on disk             (500)
    LATENT_LAB_WS_TTL_H     hours after its last visit that a workspace is removed  (48)
    """

    running: int = 0
    jobs: int = 0
    seconds: float = 0.0
    runs: int = 0
    bytes: int = 0
    ttl_s: float = 0.0

    @classmethod
    def from_env(cls, hosted_mode: bool | None = None) -> Limits:
        if not (hosted() if hosted_mode is None else hosted_mode):
            return cls()
        return cls(running=int(env_number("LATENT_LAB_WS_RUNNING", 1)),
                   jobs=int(env_number("LATENT_LAB_WS_JOBS", 3)),
                   seconds=env_number("LATENT_LAB_WS_SECONDS", 300.0),
                   runs=int(env_number("LATENT_LAB_WS_RUNS", 20)),
                   bytes=int(env_number("LATENT_LAB_WS_MB", 500.0) * 2**20),
                   ttl_s=env_number("LATENT_LAB_WS_TTL_H", 48.0) * 3600)


# -- who acts --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who asks: a workspace, and whether they hold the presenter secret. `system()` is the server itself
    (the CLI, the job manager's own housekeeping): it may do everything, in either mode."""

    workspace: str
    presenter: bool = False
    system: bool = False

    @classmethod
    def local(cls) -> Actor:
        return cls(LOCAL)

    @classmethod
    def server(cls) -> Actor:
        return cls(SERVER, system=True)

    @property
    def label(self) -> str:
        return "the presenter" if self.presenter else f"workspace {self.workspace}"


def new_key() -> str:
    """A fresh workspace key: 128 random bits, URL-safe."""
    return secrets.token_urlsafe(16) + "ws"  # 24 characters; the suffix keeps it from starting with '-'


def workspace_of_key(key: str) -> str:
    """The workspace id a key opens (a hash: the id is safe to write into files and links, the key is not)."""
    if not isinstance(key, str) or not KEY.fullmatch(key):
        raise AccessError("that workspace link is not valid; open the app's link without it to get a new workspace")
    return hashlib.sha256(f"latent-lab workspace {key}".encode()).hexdigest()[:20]


def workspace_of_user(identity: str) -> str:
    """The workspace of a signed-in user (st.login): a hash of the identity provider's stable subject id."""
    return hashlib.sha256(f"latent-lab user {identity}".encode()).hexdigest()[:20]


def owner(config: dict) -> str:
    """The workspace a run belongs to: config.json's `workspace`, SERVER ("") when it names none (the CLI's
    runs, and every run made before workspaces existed)."""
    value = config.get("workspace") if isinstance(config, dict) else None
    return value if isinstance(value, str) and WORKSPACE_ID.fullmatch(value) else SERVER


def check(actor: Actor | None, config: dict, action: str, run_id: str = "", shared: bool = False,
          pinned: bool = False) -> None:
    """Raise AccessError unless `actor` may take `action` on the run of `config`.

    Local mode: everything is allowed. Hosted: the server and the presenter may do everything; a
    visitor may do everything with their own runs, and only look at (and copy) a run that is pinned,
    the operator's, or opened through its share link (`shared`).
    """
    if actor is None or actor.system or actor.presenter or not hosted():
        return
    if action == PIN:
        raise AccessError("only the presenter pins runs to the gallery")
    whose = owner(config)
    if whose == actor.workspace and whose != SERVER:
        return
    visible = shared or pinned or whose == SERVER
    name = f"run {run_id}" if run_id else "this run"
    if not visible:
        raise AccessError(f"{name} belongs to another workspace, and this link is not its share link: you cannot "
                          f"{action}. Ask its owner for the share link (the Share button beside the run).")
    if action not in READ_ONLY:
        raise AccessError(f"{name} is not yours: you can look at it, not {action}. Copy it into your workspace "
                          "(the Copy button) to keep playing with it.")


# -- share links ------------------------------------------------------------------------------------------


def server_secret(runs_dir: Path | str) -> bytes:
    """The key of share links: LATENT_LAB_SECRET, else a random one kept in the runs folder (mode 0600), so
    links stay valid across restarts and across the servers of one runs folder."""
    env = os.environ.get("LATENT_LAB_SECRET", "")
    if env:
        return env.encode()
    path = Path(runs_dir) / SECRET
    with file_lock(Path(runs_dir) / ".secret.lock"):
        try:
            value = path.read_bytes().strip()
        except FileNotFoundError:
            value = b""
        if len(value) < 32:
            value = secrets.token_hex(32).encode()
            fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(value)
            os.replace(path.with_suffix(".tmp"), path)
    return value


def share_token(runs_dir: Path | str, run_id: str) -> str:
    """The token of a run's share link: whoever holds it may look at the run (read-only) and copy it."""
    digest = hmac.new(server_secret(runs_dir), f"share {run_id}".encode(), hashlib.sha256).digest()
    return digest[:16].hex()


def share_valid(runs_dir: Path | str, run_id: str, token) -> bool:
    return (isinstance(token, str) and bool(SHARE.fullmatch(token))
            and hmac.compare_digest(token, share_token(runs_dir, run_id)))


def presenter_secret() -> str:
    """LATENT_LAB_PRESENTER_SECRET ("" when unset: then nobody is the presenter; the UI also reads st.secrets)."""
    return os.environ.get("LATENT_LAB_PRESENTER_SECRET", "")


def is_presenter_secret(given: str, expected: str) -> bool:
    return bool(expected) and isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


# -- the gallery ----------------------------------------------------------------------------------------


def pinned(runs_dir: Path | str) -> set[str]:
    """Ids of the runs in the gallery."""
    try:
        data = read_json(Path(runs_dir) / GALLERY)
    except RunError:
        return set()
    ids = data.get("pinned", [])
    return {i for i in ids if isinstance(i, str)} if isinstance(ids, list) else set()


def set_pinned(runs_dir: Path | str, run_id: str, pin: bool) -> set[str]:
    """Pin (or unpin) a run; returns the gallery now."""
    runs_dir = Path(runs_dir)
    with file_lock(runs_dir / ".gallery.lock"):
        ids = pinned(runs_dir)
        ids = ids | {run_id} if pin else ids - {run_id}
        atomic_write_json(runs_dir / GALLERY, {"pinned": sorted(ids)})
    return ids


# -- workspaces on disk -------------------------------------------------------------------------------------


TOUCH_EVERY_S = 60.0  # a workspace's last visit is written at most this often
_touched: dict[tuple[str, str], float] = {}


def touch(runs_dir: Path | str, workspace: str, now: float | None = None) -> None:
    """Record that `workspace` was used now (its expiry counts from its last visit)."""
    if not WORKSPACE_ID.fullmatch(workspace or ""):
        return
    now = time.time() if now is None else now
    key = (str(runs_dir), workspace)
    if now - _touched.get(key, 0.0) < TOUCH_EVERY_S:
        return
    _touched[key] = now
    folder = Path(runs_dir) / WORKSPACES
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{workspace}.json"
    try:
        created = read_json(path).get("created_at", now)
    except RunError:
        created = now
    atomic_write_json(path, {"created_at": created, "last_seen": now})


def last_seen(runs_dir: Path | str) -> dict[str, float]:
    """workspace id → when it was last used, for every workspace the runs folder knows."""
    out = {}
    folder = Path(runs_dir) / WORKSPACES
    for path in folder.glob("*.json") if folder.is_dir() else ():
        if not WORKSPACE_ID.fullmatch(path.stem):
            continue
        try:
            seen = read_json(path).get("last_seen")
        except RunError:
            continue
        if isinstance(seen, (int, float)):
            out[path.stem] = float(seen)
    return out


def forget(runs_dir: Path | str, workspace: str) -> None:
    """Remove a workspace's record (its runs and uploads are removed by the job manager)."""
    if WORKSPACE_ID.fullmatch(workspace or ""):
        (Path(runs_dir) / WORKSPACES / f"{workspace}.json").unlink(missing_ok=True)
        _touched.pop((str(runs_dir), workspace), None)


def folder_bytes(path: Path) -> int:
    """Bytes of the regular files under `path` (symlinks not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            total += st.st_size
    return total
