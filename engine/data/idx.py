"""IDX files, the format of MNIST and Fashion-MNIST, and the one downloader (`fetch_mnist`).

An IDX file (http://yann.lecun.com/exdb/mnist/): magic 00 00 <type> <ndim>, then ndim big-endian
uint32 sizes, then the values in C order, big-endian. Nothing here downloads at run time except
`fetch_mnist`, which a person runs on purpose.
"""

from __future__ import annotations

import gzip
import http.client
import math
import os
import shutil
import struct
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from engine.data.dataset import IMAGE_SIZE, DataError

# torchvision's mirror: yann.lecun.com now refuses plain downloads. Only `fetch_mnist` uses it.
MNIST_BASE_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MAX_DOWNLOAD_BYTES = 64 * 2**20  # the largest MNIST file is ~10 MB gzipped
MNIST_CLASSES = [str(d) for d in range(10)]

# The four IDX files of MNIST and Fashion-MNIST. Debian's dataset-fashion-mnist uses these same
# names (gzipped), so one list serves both; each may also sit uncompressed.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

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


def find_idx_files(directory: Path) -> dict[str, Path]:
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


def idx_sizes(directory: Path) -> tuple[int, int]:
    """(n_train, n_test) from the four headers, after checking that they fit together."""
    files = find_idx_files(directory)
    sizes = []
    for split in ("train", "test"):
        images, labels = files[f"{split}_images"], files[f"{split}_labels"]
        images_dtype, images_shape = _idx_shape(images)
        labels_dtype, labels_shape = _idx_shape(labels)
        _check_idx_pair(images, images_dtype, images_shape, labels, labels_dtype, labels_shape)
        sizes.append(images_shape[0])
    return sizes[0], sizes[1]


def read_idx_split(images: Path, labels: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) uint8 < n_classes from one IDX pair."""
    x, y = read_idx(images), read_idx(labels)
    _check_idx_pair(images, x.dtype, x.shape, labels, y.dtype, y.shape)
    if len(y) and y.max() >= n_classes:
        raise DataError(f"{labels} has label {y.max()}, but this dataset has {n_classes} classes "
                        f"(0..{n_classes - 1}); is it the labels file of another dataset?")
    return x, y



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
                read_idx_split(files[f"{split}_images"], files[f"{split}_labels"], len(MNIST_CLASSES))
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
