"""The class board: drawings that attendees send "to the class", placed on the presenter's latent map.

An attendee draws a digit on the Draw page and sends it with a nickname. The board keeps each
drawing as one small JSON file in the runs folder (`.class/<sent ns>-<random>.json`: the 28×28
image as 784 grey levels, the nickname, the workspace, the run it was drawn against and that run's
dataset), written atomically (temp file + rename, engine.runs.files), so thirty people sending at
once lose nothing and a reader never sees half a file. A send holds the board's lock (flock) only to
count and write, so the caps hold under concurrent sends from threads and processes alike.

Listing the board for a model encodes every drawing with that model: z = f(x), x̂ = g(z) and the
drawing's error (1/784) Σ (x − x̂)², cached per (drawing, checkpoint). A page then places the codes
on its map with the map's own fitted projection (`place`).

Who may do what: anyone sends (a nickname is cleaned to letters, digits, spaces and - . ' _, at most
NICKNAME_MAX characters); in hosted mode a visitor sees only their own drawings and the presenter
sees all (local mode: everyone sees all); a visitor takes back their own drawings; only the
presenter clears the board. Caps (BoardLimits) keep one visitor from flooding it.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
import time
import unicodedata
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.env import env_number
from engine.lab.latent_map import neighbour_placement
from engine.runs import workspace as ws
from engine.runs.files import RunError, atomic_write_json, file_lock, read_json, remove_stale_temp_files
from engine.runs.store import RUN_ID
from engine.runs.workspace import AccessError, Actor, LimitError

BOARD = ".class"  # in the runs folder: one JSON file per drawing
LOCK = ".board.lock"  # in BOARD: held while a send counts and writes, and while the board is cleared
NICKNAME_MAX = 24  # characters
DRAWING_ID = re.compile(r"^\d{20}-[0-9a-f]{8}$")  # the sending time in ns (so names sort in sending order), a nonce
_NOT_IN_NICKNAME = re.compile(r"[^\w .'-]")  # \w: letters and digits of any script, and _
CACHE_ENTRIES = 4096  # encoded drawings kept (per drawing and checkpoint): a board of 200 under 20 models


class BoardLimitsError(LimitError):
    """The board or a visitor's share of it is full; the message says what to do."""


@dataclass(frozen=True)
class BoardLimits:
    """Caps of the class board (0: no cap). Environment settings:

    LATENT_LAB_CLASS_PER_WS  drawings one workspace may have on the board  (hosted 3; local mode: no cap, since
                             everyone on a local server is the one workspace `local`)
    LATENT_LAB_CLASS_MAX     drawings on the whole board                   (200, both modes)
    """

    per_workspace: int = 0
    board: int = 200

    @classmethod
    def from_env(cls, hosted_mode: bool | None = None) -> BoardLimits:
        hosted_mode = ws.hosted() if hosted_mode is None else hosted_mode
        return cls(per_workspace=int(env_number("LATENT_LAB_CLASS_PER_WS", 3)) if hosted_mode else 0,
                   board=int(env_number("LATENT_LAB_CLASS_MAX", 200)))


@dataclass(frozen=True)
class Drawing:
    """One drawing on the board."""

    id: str  # the file's name without .json
    nickname: str
    workspace: str  # who sent it (a workspace id, `local` in local mode)
    run_id: str  # the model run it was drawn against
    dataset: str  # that run's dataset: the maps it belongs on
    sent_at: float  # seconds since the epoch
    x: np.ndarray  # (28, 28) float32 in [0, 1]


@dataclass(frozen=True)
class BoardPoint:
    """A drawing as one model sees it."""

    drawing: Drawing
    z: np.ndarray  # (latent_dim,) its code (a VAE's μ)
    x_hat: np.ndarray  # (28, 28) its reconstruction
    mse: float  # (1/784) Σ (x − x̂)²


# ---------------------------------------------------------------------------------------------
# helpers


def sanitise_nickname(text) -> str:
    """A nickname as the board shows it: NFKC-normalised, only letters, digits, spaces and - . ' _, runs of
    spaces made one, at most NICKNAME_MAX characters. ValueError when nothing is left."""
    if not isinstance(text, str):
        raise ValueError("the nickname must be text")
    text = unicodedata.normalize("NFKC", text[:10 * NICKNAME_MAX])
    text = " ".join(_NOT_IN_NICKNAME.sub("", text).split())[:NICKNAME_MAX].strip()
    if not text:
        raise ValueError(f"give a nickname (letters, digits, spaces and - . ' _, up to {NICKNAME_MAX} characters) so "
                         "the class sees who drew it")
    return text


def _image(x) -> np.ndarray:
    """A drawing (28, 28) in [0, 1], checked; ValueError says what is wrong."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape != (28, 28):
        raise ValueError(f"a drawing is a 28×28 image, got shape {x.shape}")
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError("a drawing's grey levels must lie in [0, 1]")
    if x.max() < 1 / 255:
        raise ValueError("the drawing is empty: draw a digit first")
    return x


def _encode_pixels(x: np.ndarray) -> str:
    return base64.b64encode(np.round(x * 255).astype(np.uint8).tobytes()).decode("ascii")


def _decode_pixels(text) -> np.ndarray:
    data = base64.b64decode(text, validate=True) if isinstance(text, str) else b""
    if len(data) != 28 * 28:
        raise ValueError("not a 28×28 drawing")
    return (np.frombuffer(data, dtype=np.uint8).reshape(28, 28) / 255.0).astype(np.float32)


def _parse(path: Path) -> Drawing | None:
    """The drawing in `path`, or None when the file is not one (damaged or foreign: it is not shown)."""
    try:
        obj = read_json(path)
        x = _decode_pixels(obj.get("x"))
        fields = obj.get("nickname"), obj.get("workspace"), obj.get("run_id"), obj.get("dataset")
        sent_at = obj.get("sent_at")
        if not all(isinstance(f, str) for f in fields) or not isinstance(sent_at, (int, float)):
            return None
        nickname, workspace, run_id, dataset = fields
        return Drawing(path.stem, nickname[:NICKNAME_MAX], workspace, run_id, dataset, float(sent_at), x)
    except (RunError, ValueError, OSError):
        return None


def _sees_all(actor: Actor | None) -> bool:
    return actor is None or actor.system or actor.presenter or not ws.hosted()


# ---------------------------------------------------------------------------------------------
# the board


class ClassBoard:
    """The class board of one runs folder. Thread-safe; a server holds one (the UI: st.cache_resource)."""

    def __init__(self, runs_dir: Path | str, limits: BoardLimits | None = None):
        self.runs_dir = Path(runs_dir)
        self.limits = BoardLimits.from_env() if limits is None else limits
        self._cache: OrderedDict[tuple, BoardPoint] = OrderedDict()
        self._cache_lock = threading.Lock()

    @property
    def folder(self) -> Path:
        return self.runs_dir / BOARD

    def _files(self) -> list[Path]:
        """The drawings' files in sending order (a temp file of a write in flight is never among them)."""
        try:
            names = sorted(p for p in self.folder.iterdir() if p.suffix == ".json" and DRAWING_ID.fullmatch(p.stem))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return names

    def send(self, x, nickname: str, run_id: str, dataset: str, actor: Actor | None = None) -> Drawing:
        """Put drawing x (28, 28) in [0, 1] on the board under `nickname`; returns it as stored.

        ValueError for an empty or malformed drawing or nickname; BoardLimitsError when the sender's share or the
        board is full.
        """
        actor = Actor.server() if actor is None else actor
        x, nickname = _image(x), sanitise_nickname(nickname)
        if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
            raise ValueError("name the model run the drawing was drawn against")
        if not isinstance(dataset, str) or not 0 < len(dataset) <= 200:
            raise ValueError("name the dataset of that run")
        self.folder.mkdir(parents=True, exist_ok=True)
        with file_lock(self.folder / LOCK):
            files = self._files()
            if self.limits.board and len(files) >= self.limits.board:
                raise BoardLimitsError(f"the class board is full ({self.limits.board} drawings): ask the presenter "
                                       "to clear it")
            if self.limits.per_workspace and not (actor.presenter or actor.system):
                mine = sum(1 for p in files if (d := _parse(p)) is not None and d.workspace == actor.workspace)
                if mine >= self.limits.per_workspace:
                    raise BoardLimitsError(
                        f"you have {mine} drawings on the class board, the most one visitor may have: take yours "
                        "back (Take back mine) to send new ones")
            now = time.time()
            drawing_id = f"{time.time_ns():020d}-{secrets.token_hex(4)}"
            record = {"nickname": nickname, "workspace": actor.workspace, "run_id": run_id, "dataset": dataset,
                      "sent_at": now, "x": _encode_pixels(x)}
            atomic_write_json(self.folder / f"{drawing_id}.json", record)
        return Drawing(drawing_id, nickname, actor.workspace, run_id, dataset, now, _decode_pixels(record["x"]))

    def drawings(self, actor: Actor | None = None, dataset: str | None = None) -> list[Drawing]:
        """The drawings `actor` may see, in sending order: all of them for the presenter, the server and in local
        mode, a hosted visitor's own otherwise; only those of `dataset` when given."""
        out = [d for d in map(_parse, self._files()) if d is not None]
        if not _sees_all(actor):
            out = [d for d in out if d.workspace == actor.workspace]
        return [d for d in out if dataset is None or d.dataset == dataset]

    def count(self) -> int:
        """How many drawings are on the board (everyone's)."""
        return len(self._files())

    def _remove(self, ids: list[str]) -> int:
        removed = 0
        with file_lock(self.folder / LOCK):
            for drawing_id in ids:
                try:
                    (self.folder / f"{drawing_id}.json").unlink()
                    removed += 1
                except FileNotFoundError:  # someone else removed it meanwhile
                    continue
            remove_stale_temp_files(self.folder)
        gone = set(ids)
        with self._cache_lock:
            for key in [k for k in self._cache if k[0] in gone]:
                del self._cache[key]
        return removed

    def clear(self, actor: Actor | None) -> int:
        """Empty the board, damaged files included (the presenter only, in hosted mode); returns how many went."""
        if not _sees_all(actor):
            raise AccessError("only the presenter clears the class board; you can take back your own drawings")
        return self._remove([p.stem for p in self._files()]) if self.folder.is_dir() else 0

    def withdraw(self, actor: Actor) -> int:
        """Take back every drawing of `actor`'s workspace; returns how many went."""
        if not self.folder.is_dir():
            return 0
        return self._remove([d.id for d in self.drawings() if d.workspace == actor.workspace])

    def points(self, loaded, drawings: list[Drawing]) -> list[BoardPoint]:
        """Each drawing under a loaded run's model (engine.runs.loaded.LoadedRun): z, x̂ and its error. Encoded once
        per drawing and checkpoint; the rest are encoded in one batch."""
        from engine.eval.codes import encode, reconstruct

        if loaded.conditional:
            raise ValueError(f"{loaded.model_name} is conditioned on the class: drawings have no label to give it")
        token = (loaded.path, tuple(loaded.token) or (loaded.step,))
        with self._cache_lock:
            known = {d.id: self._cache.get((d.id, token)) for d in drawings}
        new = [d for d in drawings if known[d.id] is None]
        if new:
            x = np.stack([d.x for d in new])[:, None]  # (M, 1, 28, 28)
            z, x_hat = encode(loaded, x), reconstruct(loaded, x)  # (M, latent_dim), (M, 28, 28)
            for d, zi, xi in zip(new, z, x_hat, strict=True):
                point = BoardPoint(d, zi, xi, float(np.mean((d.x - xi) ** 2)))
                known[d.id] = point
                with self._cache_lock:
                    self._cache[(d.id, token)] = point
                    while len(self._cache) > CACHE_ENTRIES:
                        self._cache.popitem(last=False)
        return [known[d.id] for d in drawings]


_PLACED: OrderedDict[tuple[int, str], tuple[weakref.ref, np.ndarray]] = OrderedDict()  # (map, drawing) → xy
_PLACED_LOCK = threading.Lock()


def place(projection, points: list[BoardPoint]) -> np.ndarray:
    """Positions (M, 2) float32 of the drawings' codes on a fitted map (engine.lab.latent_map.Projection).

    PCA: the map's own linear map, (z − z̄) W, exact. UMAP and t-SNE: the neighbour rule
    (latent_map.neighbour_placement: the mean of the 10 nearest fitted codes' positions, weighted by 1 / distance
    in z), ≈ 0.1 s for any number of drawings. UMAP's own transform would be closer to a fit, but on 2 busy
    cores its first call compiles for ≈ 6 s (measured), and it waits for the process-wide UMAP lock behind any map
    being fitted (up to a minute): the board must show a new drawing within a second or two.

    Each drawing is placed once per map and remembered, so it stays where it landed and a board that grew by one
    places one drawing.
    """
    if not points:
        return np.zeros((0, 2), dtype=np.float32)
    with _PLACED_LOCK:
        known = {}
        for p in points:
            hit = _PLACED.get((id(projection), p.drawing.id))
            if hit is not None and hit[0]() is projection:
                known[p.drawing.id] = hit[1]
    new = [p for p in points if p.drawing.id not in known]
    if new:
        z = np.stack([p.z for p in new])  # (M_new, latent_dim)
        if z.shape[1] != projection.z.shape[1]:
            raise ValueError(f"codes of latent_dim {z.shape[1]} cannot go on a map of latent_dim "
                             f"{projection.z.shape[1]} codes")
        if projection.method == "pca":
            xy = projection.place(z)
        else:
            xy = neighbour_placement(projection.z, projection.xy, z)
        ref = weakref.ref(projection)
        with _PLACED_LOCK:
            for p, at in zip(new, xy, strict=True):
                known[p.drawing.id] = at
                _PLACED[(id(projection), p.drawing.id)] = (ref, at)
            while len(_PLACED) > CACHE_ENTRIES:
                _PLACED.popitem(last=False)
    return np.stack([known[p.drawing.id] for p in points]).astype(np.float32)
