"""Datasets uploaded from the browser: checked like a run import, stored per workspace as one .npz.

An upload is either

- a ``.zip`` of PNG/JPEG images, one folder per class (``digits/3/a.png`` is a "3"; a single folder
  wrapping everything, as "compress this folder" makes, is looked through), or images at the top
  level: one unlabelled set; or
- an ``.npz`` with ``x`` and optionally ``y``, ``x_test``, ``y_test``, ``classes``, under the rules
  of ``npz:FILE`` (engine/data/files.py); or
- a ``.csv`` of series (the Sequences page's upload), under the rules of ``csv:FILE``
  (engine/data/sequences.py `parse_csv`): one series per row, or one long series.

The zip is untrusted, so engine/data/archive.py checks it from its directory before anything is
decompressed (count, names, links, ratio, total size), and each image's pixel count is read from
its header before it is decoded. A file that is no image (a README, a nested zip), an image that
does not decode, or one far too large is skipped and listed with why; the good images are kept,
made 28×28 grey as `folder:DIR` makes them, and split 80/20 as every user dataset is.

Stored: ``uploads_dir()/<workspace>/<slug>.npz`` (x, x_test: uint8 (N, 28, 28); y, y_test: int64,
classes: strings; no labels when unlabelled), or for series the checked text as ``<slug>.csv`` (parsed
again on load: the split and the windows are deterministic), beside ``<slug>.json`` (what was uploaded,
counts, the skipped files). Nothing is written anywhere else. The catalogue names either
``upload:<workspace>/<slug>``; series and images share one workspace's names and its limit.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import logging
import os
import re
import shutil
import tempfile
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from engine.data import archive
from engine.data.archive import MiB, ArchiveLimits
from engine.data.dataset import DataError, DatasetInfo, split
from engine.data.files import IMAGE_SUFFIXES, _read_image, load_npz
from engine.env import env_number

log = logging.getLogger(__name__)

PREFIX = "upload:"
WORKSPACE_ID = re.compile(r"[a-z0-9]{1,40}")  # whole names (fullmatch); "local" is the local mode's
SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
DEFAULT_MAX_UPLOAD_MB = 20.0  # LATENT_LAB_MAX_UPLOAD_MB: the uploaded file itself
DEFAULT_MAX_UPLOADS = 5  # LATENT_LAB_MAX_UPLOADS: datasets a workspace keeps (0: no limit)

MAX_ZIP_MEMBERS = 10_000  # 10,000 small PNGs fit in a few MB; more images travel better as an .npz
MAX_UNPACKED_BYTES = 256 * MiB  # all members that are read, once unpacked
MAX_IMAGE_BYTES = 8 * MiB  # one image file inside the zip
MAX_IMAGE_PIXELS = 2**22  # one image, from its header (2048 × 2048): it is kept at 28 × 28
# All images together, from their headers, before each is decoded: decoding costs time (a 2048² PNG of a
# few kB takes ~50 ms), so 10,000 images each under the per-image cap could still take minutes.
MAX_TOTAL_PIXELS = 2**28
MAX_NPZ_MEMBERS = 16
# Its arrays, unpacked: loading makes float32 copies (4 bytes a pixel), so 128 MiB of uint8 costs ~0.5 GB once.
# The full MNIST (70,000 uint8 images) is 55 MB.
MAX_NPZ_UNPACKED_BYTES = 128 * MiB
MAX_CLASSES = 100
MAX_SKIPPED_KEPT = 100  # skipped files listed in the record (all are counted)
UPLOAD_FORMATS = ("PNG", "JPEG")
IGNORED = ("__MACOSX",)  # macOS' resource forks beside the real files; dot-files are ignored too
RECORD_FORMAT = "latent-lab-upload"
_PLAIN_UNSAFE = re.compile(r"[^\w .-]")  # what a file's name may not bring into a description

_ADVICE = "upload fewer or smaller images (each is kept at 28×28 anyway), or pack them into an .npz"
_ZIP_LIMITS = ArchiveLimits("a dataset upload", MAX_ZIP_MEMBERS, MAX_UNPACKED_BYTES, _ADVICE,
                            max_member_bytes=dict.fromkeys(IMAGE_SUFFIXES, MAX_IMAGE_BYTES))
_NPZ_LIMITS = ArchiveLimits("an .npz upload", MAX_NPZ_MEMBERS, MAX_NPZ_UNPACKED_BYTES,
                            "save fewer images, as uint8 28×28 (784 bytes each)")


class UploadLimitError(DataError):
    """A workspace keeps as many uploads as it may; the message says what to do."""


@dataclass(frozen=True)
class Skipped:
    file: str  # the member's name inside the zip
    why: str


@dataclass(frozen=True)
class UploadResult:
    dataset: str  # what load_dataset takes: "upload:<workspace>/<slug>"
    workspace: str
    slug: str
    filename: str  # as uploaded
    n_train: int
    n_test: int
    classes: list[str]  # [] when unlabelled
    skipped: list[Skipped]  # at most MAX_SKIPPED_KEPT of them
    n_skipped: int  # all of them

    @property
    def n_images(self) -> int:
        return self.n_train + self.n_test


@dataclass(frozen=True)
class SeriesUpload:
    """A stored .csv of series: what its checks found."""

    dataset: str  # "upload:<workspace>/<slug>"
    workspace: str
    slug: str
    filename: str
    form: str  # "rows": one series per row (the Sequences page); "long": one long series (Time-series anomalies)
    n_train: int  # series, or windows of the long series
    n_test: int
    length: int  # T: steps per series (per window for a long series)
    channels: int  # C
    classes: list[str]  # [] when unlabelled
    steps: int | None = None  # a long series' length


# ----------------------------------------------------------------------------------------------
# settings and places


def max_upload_bytes() -> int:
    """The largest file an upload may be: LATENT_LAB_MAX_UPLOAD_MB (default 20) megabytes."""
    return int(env_number("LATENT_LAB_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB) * MiB)


def max_uploads() -> int:
    """How many uploaded datasets a workspace keeps: LATENT_LAB_MAX_UPLOADS (default 5; 0: no limit)."""
    return int(env_number("LATENT_LAB_MAX_UPLOADS", DEFAULT_MAX_UPLOADS))


def uploads_dir() -> Path:
    """$LATENT_LAB_UPLOADS, else the runs folder's .uploads ($LATENT_LAB_RUNS or ./runs). Not created here."""
    explicit = os.environ.get("LATENT_LAB_UPLOADS", "").strip()
    if explicit:
        return Path(explicit).expanduser().absolute()
    return (Path(os.environ.get("LATENT_LAB_RUNS") or "runs").expanduser() / ".uploads").absolute()


def check_workspace(workspace) -> str:
    if not isinstance(workspace, str) or not WORKSPACE_ID.fullmatch(workspace):
        raise DataError(f"{str(workspace)[:40]!r} is not a workspace id (1 to 40 lower-case letters and digits)")
    return workspace


def _check_slug(slug) -> str:
    if not isinstance(slug, str) or not SLUG.fullmatch(slug):
        raise DataError(f"{str(slug)[:40]!r} is not an upload's name (lower-case letters, digits and '-', "
                        "at most 40)")
    return slug


def workspace_folder(workspace: str) -> Path:
    return uploads_dir() / check_workspace(workspace)


def dataset_name(workspace: str, slug: str) -> str:
    return f"{PREFIX}{check_workspace(workspace)}/{_check_slug(slug)}"


def parse_name(name: str) -> tuple[str, str]:
    """(workspace, slug) of an ``upload:<workspace>/<slug>`` name; DataError when it is not one."""
    if not isinstance(name, str) or not name.startswith(PREFIX):
        raise DataError(f"{str(name)[:60]!r} is not an uploaded dataset's name (upload:WORKSPACE/NAME)")
    workspace, sep, slug = name.removeprefix(PREFIX).partition("/")
    if not sep or not WORKSPACE_ID.fullmatch(workspace) or not SLUG.fullmatch(slug):
        raise DataError(f"{name[:80]!r} is not an uploaded dataset's name: write upload:WORKSPACE/NAME, as the "
                        "dataset picker shows it")
    return workspace, slug


STORED = (".npz", ".csv")  # images, series


def upload_path(name: str) -> Path:
    """The stored .npz (images) or .csv (series) of an ``upload:`` name; DataError (naming no server path) when
    there is none."""
    workspace, slug = parse_name(name)
    for suffix in STORED:
        path = uploads_dir() / workspace / f"{slug}{suffix}"
        if path.is_file():
            return path
    raise DataError(f"there is no uploaded dataset {name!r} (it was deleted, or its workspace expired); "
                    "upload it again or pick another dataset")


def is_series_upload(name) -> bool:
    """True when `name` is an ``upload:`` name whose stored file is a .csv of series (False for images, for a
    missing upload and for every other name: the catalogue then says what is wrong)."""
    if not isinstance(name, str) or not name.startswith(PREFIX):
        return False
    try:
        return upload_path(name).suffix == ".csv"
    except DataError:
        return False


def slugify(text: str) -> str:
    """A name → lower-case letters, digits and single '-', at most 40 characters ("" when nothing is left)."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return slug[:40].rstrip("-")


# ----------------------------------------------------------------------------------------------
# a zip of images


def _shown(name: str) -> str:
    return name if len(name) <= 200 else name[:199] + "…"


def _why_unreadable(e: BaseException) -> str:
    """Pillow's reason, without the repr of our in-memory file it likes to quote."""
    text = re.sub(r"\s*<[^>]*BytesIO[^>]*>", "", str(e)).strip() or type(e).__name__
    return text[:200]


def _image_parts(name: str) -> tuple[str, ...]:
    return tuple(p for p in name.replace("\\", "/").split("/") if p)


def _decode(data: bytes, budget: list[int]) -> tuple[np.ndarray | None, str]:
    """(image (28, 28) float32, "") or (None, why it is skipped). `budget` is the pixels left to decode."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own, lower limit follows
            with Image.open(io.BytesIO(data)) as im:  # reads the header only
                fmt, (w, h) = im.format, im.size
    except Exception as e:  # Pillow raises many types for a damaged header: each means skip it
        return None, f"not a readable image ({_why_unreadable(e)})"
    if fmt not in UPLOAD_FORMATS:
        return None, f"a {fmt} image; only PNG and JPEG are read"
    if w * h > MAX_IMAGE_PIXELS:
        return None, (f"{w:,}×{h:,} pixels, over the {MAX_IMAGE_PIXELS / 1e6:.1f} megapixels one image may have "
                      "(it is kept at 28×28): shrink it")
    if w * h > budget[0]:
        raise DataError(f"the images hold more than {MAX_TOTAL_PIXELS / 1e6:.0f} megapixels together; "
                        f"{_ADVICE}")
    budget[0] -= w * h
    try:
        return _read_image(io.BytesIO(data)), ""  # the folder loader's own conversion (grey, 28×28, ink)
    except Exception as e:  # any decoder failure on an untrusted file: skip it, say why
        return None, f"not a readable {fmt} image ({_why_unreadable(e.__cause__ or e)})"


def _read_zip(data: bytes, filename: str) -> tuple[np.ndarray, np.ndarray, list[str], list[Skipped]]:
    """(x (N, 28, 28) float32, y (N,) int64 (-1: unlabelled), classes, skipped) from a zip's bytes."""
    skipped: list[Skipped] = []

    def select(info: zipfile.ZipInfo) -> bool:
        parts = _image_parts(info.filename)
        if info.is_dir() or not parts or any(p.startswith(".") or p in IGNORED for p in parts):
            return False
        suffix = PurePosixPath(parts[-1]).suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            return True
        if suffix == ".zip":
            why = "a zip inside the zip is not opened: put its images into the one you upload"
        else:
            why = f"not a PNG/JPEG file ({suffix or 'no suffix'})"
        skipped.append(Skipped(_shown(info.filename), why))
        return False

    zf = archive.open_zip(data, f"{filename} is not a readable zip archive; upload a .zip of PNG/JPEG images "
                                "(one folder per class) or an .npz")
    with zf:
        infos = archive.check_members(zf, len(data), _ZIP_LIMITS, select)
        parts = [_image_parts(i.filename) for i in infos]
        # "Compress this folder" wraps everything in one folder: look through it when classes lie below it
        if parts and all(len(p) > 2 and p[0] == parts[0][0] for p in parts):
            parts = [p[1:] for p in parts]
        labelled = any(len(p) > 1 for p in parts)
        images, labels, budget = [], [], [MAX_TOTAL_PIXELS]
        for info, p in zip(infos, parts):
            if labelled and len(p) == 1:
                skipped.append(Skipped(_shown(info.filename), "at the top level beside the class folders: "
                                                              "move it into the folder of its class"))
                continue
            try:
                blob = archive.read_member(zf, info)
            except archive.ArchiveError:
                skipped.append(Skipped(_shown(info.filename), "damaged inside the zip (its checksum or size "
                                                              "does not match)"))
                continue
            x, why = _decode(blob, budget)
            if x is None:
                skipped.append(Skipped(_shown(info.filename), why))
                continue
            images.append(x)
            labels.append(p[0] if labelled else "")
    if not images:
        first = f" (e.g. {skipped[0].file}: {skipped[0].why})" if skipped else ""
        raise DataError(f"{filename} holds no readable PNG/JPEG image{first}; zip the images themselves, in one "
                        "folder per class if they have labels")
    classes = sorted(set(labels)) if labelled else []
    if len(classes) > MAX_CLASSES:
        raise DataError(f"{filename} has {len(classes):,} class folders, more than the {MAX_CLASSES} a dataset "
                        "here may have; put each class's images into one folder")
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[c] if labelled else -1 for c in labels], dtype=np.int64)  # (N,)
    return np.stack(images), y, classes, skipped  # (N, 28, 28)


# ----------------------------------------------------------------------------------------------
# an .npz


def _check_npz_members(data: bytes, filename: str) -> None:
    """The .npz as a zip (it is one): bounded like any upload, and each array's header read before numpy
    loads it, so an object array (pickled Python) or a header claiming a gigantic array is refused unread."""
    zf = archive.open_zip(data, f"{filename} is not a readable .npz (np.savez writes a zip of .npy arrays)")

    def select(info: zipfile.ZipInfo) -> bool:
        if not info.filename.endswith(".npy"):
            raise DataError(f"{filename} holds {_shown(info.filename)!r}, which is not an array; an .npz holds "
                            "only .npy arrays (np.savez)")
        return True

    with zf:
        for info in archive.check_members(zf, len(data), _NPZ_LIMITS, select):
            key = info.filename.removesuffix(".npy")
            try:
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                    else:
                        raise ValueError(f".npy format version {version}")
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
                raise DataError(f"{filename}: the array {key!r} cannot be read ({_why_unreadable(e)}); save the "
                                "file again with np.savez") from None
            if dtype.hasobject:
                raise DataError(f"{filename}: the array {key!r} holds Python objects (dtype {dtype}), which are "
                                "never unpickled here; save numbers (uint8 0-255 or float in [0, 1]) and strings")
            if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > info.file_size:
                raise DataError(f"{filename}: the array {key!r} claims the shape {shape} but holds less data; "
                                "the file is damaged")


def _read_npz_upload(data: bytes, filename: str, folder: Path) -> dict[str, np.ndarray]:
    """The upload's train/test split as stored, validated by the npz:FILE loader itself."""
    _check_npz_members(data, filename)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".staging-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            ds = load_npz(filename, Path(tmp))
        except DataError as e:
            raise DataError(str(e).replace(tmp, filename)) from None  # never show a server path
    finally:
        os.unlink(tmp)
    arrays = {"x": _to_uint8(ds.x_train[:, 0].numpy()), "x_test": _to_uint8(ds.x_test[:, 0].numpy())}
    if ds.classes:
        arrays.update(y=ds.y_train.numpy(), y_test=ds.y_test.numpy(), classes=np.array(ds.classes, dtype=str))
    return arrays


# ----------------------------------------------------------------------------------------------
# storing


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """[0, 1] floats → uint8 0-255 (N, 28, 28): exact for images that came as uint8."""
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


@contextlib.contextmanager
def _locked(folder: Path):
    """One writer per workspace at a time (the count limit and the name check hold across processes)."""
    with open(folder / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _slugs(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.iterdir() if p.suffix in STORED and SLUG.fullmatch(p.stem))


def _check_room(workspace: str, folder: Path, slug: str, explicit: bool) -> str:
    """The slug to store under, or UploadLimitError / DataError when the workspace is full or the name taken."""
    taken = set(_slugs(folder))
    limit = max_uploads()
    if limit and len(taken) >= limit:
        raise UploadLimitError(f"this workspace keeps at most {limit} uploaded datasets and has {len(taken)}; "
                               "delete one you no longer need (the Delete button beside it) and upload again")
    if slug not in taken:
        return slug
    if explicit:
        raise DataError(f"this workspace already has an upload named {slug!r}; choose another name, or delete "
                        "the old one first")
    n = 2
    while f"{slug[:36]}-{n}" in taken:
        n += 1
    return f"{slug[:36]}-{n}"


def _write_new(path: Path, write) -> None:
    """Write via a temp file beside `path`, then rename it into place (the caller holds the lock, so the
    name is still free): readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        if path.exists():
            raise DataError(f"an upload named {path.stem!r} appeared meanwhile; upload again")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def save_upload(workspace: str, filename: str, data: bytes, name: str | None = None) -> UploadResult:
    """Check an uploaded .zip or .npz and store it in `workspace`; DataError says what is wrong.

    name: what to call it (default: the file's name); a name the workspace has already is refused,
    a file name it has already gets "-2", "-3", ... Nothing is stored when a check fails.
    """
    filename = _checked_file(workspace, filename, data, "upload a .zip of PNG/JPEG images or an .npz",
                             "upload fewer or smaller images, or pack them as uint8 28×28 into an .npz")
    kind = PurePosixPath(filename).suffix.lower()
    if kind == ".csv":
        raise DataError(f"{filename} is a CSV of series: upload it on the Sequences page, which reads series; "
                        "here upload a .zip of PNG/JPEG images or an .npz")
    if kind not in (".zip", ".npz"):
        raise DataError(f"{filename} is neither a .zip nor an .npz; upload a .zip of PNG/JPEG images (one folder "
                        "per class) or an .npz with x (and y)")
    explicit, slug, folder = _room_for(workspace, filename, name)

    skipped: list[Skipped] = []
    if kind == ".zip":
        x, y, classes, skipped = _read_zip(data, filename)
        x_train, x_test, y_train, y_test = split(x, y, bool(classes), Path(filename))
        arrays = {"x": _to_uint8(x_train), "x_test": _to_uint8(x_test)}
        if classes:
            arrays.update(y=y_train, y_test=y_test, classes=np.array(classes, dtype=str))
    else:
        with _disk_errors(filename):
            folder.mkdir(parents=True, exist_ok=True)
            arrays = _read_npz_upload(data, filename, folder)
        classes = [str(c) for c in arrays.get("classes", [])]

    with _disk_errors(filename):
        folder.mkdir(parents=True, exist_ok=True)
        return _store(workspace, folder, slug, explicit, arrays, {
            "name": str(name).strip()[:80] if explicit else None, "filename": filename, "kind": kind[1:],
            "classes": classes}, skipped)


def _checked_file(workspace: str, filename, data: bytes, advice: str, smaller: str) -> str:
    """The file's name as shown (no folders, at most 200 characters), once its size is within the limit: checked
    before a byte of it is read."""
    check_workspace(workspace)
    filename = _shown(os.path.basename(str(filename).replace("\\", "/")) or "upload")
    limit = max_upload_bytes()
    if not data:
        raise DataError(f"{filename} is empty; {advice}")
    if len(data) > limit:
        raise DataError(f"{filename} is {len(data) / MiB:.1f} MB, over the {limit / MiB:g} MB an upload may be; "
                        f"{smaller}")
    return filename


def _room_for(workspace: str, filename: str, name: str | None) -> tuple[bool, str, Path]:
    """(explicit, slug, folder): the name to store under, refused early when the workspace is full or it is taken."""
    explicit = bool(name and str(name).strip())
    slug = slugify(name if explicit else PurePosixPath(filename).stem)
    if not slug:
        if explicit:
            raise DataError(f"the name {str(name)[:40]!r} has no letters or digits; give one that has")
        slug = "dataset"
    folder = workspace_folder(workspace)
    _check_room(workspace, folder, slug, explicit)  # early: a full workspace hears it before the work
    return explicit, slug, folder


# ----------------------------------------------------------------------------------------------
# a .csv of series


def save_series_upload(workspace: str, filename: str, data: bytes, name: str | None = None) -> SeriesUpload:
    """Check an uploaded .csv of series as `csv:FILE` is checked and store it in `workspace`; DataError says what
    is wrong, and nothing is stored then. Names and limits as `save_upload`'s (one count for both kinds)."""
    from engine.data.sequences import parse_csv  # here: sequences' loaders import this module's names

    advice = "upload one series per row (numbers separated by commas) or one long series in one column"
    filename = _checked_file(workspace, filename, data, advice, "upload fewer or shorter series")
    if PurePosixPath(filename).suffix.lower() != ".csv":
        raise DataError(f"{filename} is not a .csv; {advice}, saved as .csv (a .zip of images goes into the "
                        "sidebar's Upload a dataset)")
    explicit, slug, folder = _room_for(workspace, filename, name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{filename} is not UTF-8 text; save it as a plain CSV (UTF-8)") from None
    if "\x00" in text:
        raise DataError(f"{filename} holds NUL characters, so it is not a text file; save it as a plain CSV")
    ds = parse_csv(text, f"{PREFIX}{workspace}/{slug}", filename)  # every check of csv:FILE, on the bytes here
    form = "long" if ds.series is not None else "rows"
    about = {"name": str(name).strip()[:80] if explicit else None, "filename": filename, "kind": "csv",
             "form": form, "classes": list(ds.classes), "length": ds.length, "channels": ds.channels,
             "steps": len(ds.series.values) if ds.series is not None else None}
    with _disk_errors(filename):
        folder.mkdir(parents=True, exist_ok=True)
        with _locked(folder):
            slug = _check_room(workspace, folder, slug, explicit)
            record = {"format": RECORD_FORMAT, "version": 1, "slug": slug, **about, "name": about["name"] or slug,
                      "n_train": len(ds.x_train), "n_test": len(ds.x_test), "n_skipped": 0, "skipped": [],
                      "created_at": time.time()}
            path = folder / f"{slug}.csv"
            _write_new(path, lambda f: f.write(text.encode("utf-8")))
            try:
                _write_record(folder / f"{slug}.json", record)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
    return SeriesUpload(dataset_name(workspace, slug), workspace, slug, filename, form, record["n_train"],
                        record["n_test"], ds.length, ds.channels, list(ds.classes), about["steps"])


def series_uploads(workspace: str, form: str | None = None) -> list[DatasetInfo]:
    """The workspace's uploaded series, oldest first; `form` "rows" or "long" keeps only that kind."""
    return [info for info in list_uploads(workspace, kind="series")
            if form is None or read_record(*parse_name(info.name)).get("form") == form]


@contextlib.contextmanager
def _disk_errors(filename: str):
    """A full or read-only disk as a DataError that names no server path (the log keeps the whole error)."""
    try:
        yield
    except OSError as e:
        log.error("could not store the upload %s: %s", filename, e)
        raise DataError(f"the server could not store {filename} ({e.strerror or type(e).__name__}); try again "
                        "later, or tell whoever runs this server") from None


def _store(workspace: str, folder: Path, slug: str, explicit: bool, arrays: dict[str, np.ndarray], about: dict,
           skipped: list[Skipped]) -> UploadResult:
    """Write the .npz and then its record, under the workspace's lock; the slug is checked again there."""
    with _locked(folder):
        slug = _check_room(workspace, folder, slug, explicit)
        record = {"format": RECORD_FORMAT, "version": 1, "slug": slug, **about, "name": about["name"] or slug,
                  "n_train": len(arrays["x"]), "n_test": len(arrays["x_test"]), "n_skipped": len(skipped),
                  "skipped": [{"file": s.file, "why": s.why} for s in skipped[:MAX_SKIPPED_KEPT]],
                  "created_at": time.time()}
        npz = folder / f"{slug}.npz"
        _write_new(npz, lambda f: np.savez_compressed(f, **arrays))
        try:
            _write_record(folder / f"{slug}.json", record)
        except BaseException:
            npz.unlink(missing_ok=True)
            raise
    return UploadResult(dataset_name(workspace, slug), workspace, slug, about["filename"], record["n_train"],
                        record["n_test"], about["classes"], skipped[:MAX_SKIPPED_KEPT], len(skipped))


def _write_record(path: Path, record: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# ----------------------------------------------------------------------------------------------
# what a workspace has


def read_record(workspace: str, slug: str) -> dict:
    """An upload's JSON record ({} when it is missing or damaged: the .npz is what counts)."""
    try:
        record = json.loads((workspace_folder(workspace) / f"{_check_slug(slug)}.json").read_text("utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return record if isinstance(record, dict) else {}


def _describe(slug: str, record: dict) -> str:
    def count(key):
        value = record.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

    n_train, n_test, n_skipped = count("n_train"), count("n_test"), count("n_skipped")
    classes = record.get("classes") if isinstance(record.get("classes"), list) else None
    filename = record.get("filename") if isinstance(record.get("filename"), str) else None
    if n_train is None or n_test is None or classes is None:
        return f"your upload {slug}"
    labels = f"in {len(classes)} classes" if classes else "unlabelled"
    length, steps = count("length"), count("steps")
    if record.get("form") == "long" and length and steps:
        text = f"your upload {slug}: one series of {steps:,} steps in windows of {length}"
    elif record.get("form") == "rows" and length:
        text = f"your upload {slug}: {n_train + n_test:,} series of {length:,} steps {labels}"
    else:
        text = f"your upload {slug}: {n_train + n_test:,} images {labels}"
    # The file's name is outside text that pickers show as Markdown: only letters, digits, space, '.', '-' pass
    text += ", from " + _PLAIN_UNSAFE.sub("_", filename[:80]) if filename else ""
    return text + (f"; {n_skipped:,} files skipped" if n_skipped else "")


def list_uploads(workspace: str, kind: str | None = None) -> list[DatasetInfo]:
    """The workspace's uploaded datasets, oldest first, from their records (no image is read); `kind` "images"
    (what image pages offer) or "series" keeps only those."""
    folder = workspace_folder(workspace)
    rows = []
    for slug in _slugs(folder):
        if kind is not None and ((folder / f"{slug}.csv").is_file()) != (kind == "series"):
            continue
        record = read_record(workspace, slug)
        created = record.get("created_at")
        created = created if isinstance(created, (int, float)) else 0.0
        n_train, n_test = record.get("n_train"), record.get("n_test")
        rows.append((created, slug, DatasetInfo(
            dataset_name(workspace, slug), _describe(slug, record), True, "", "",
            n_train if isinstance(n_train, int) else None, n_test if isinstance(n_test, int) else None)))
    return [info for _, _, info in sorted(rows, key=lambda r: (r[0], r[1]))]


def upload_workspaces() -> list[str]:
    """The workspaces that hold an uploaded dataset, sorted (what `python -m engine datasets` lists)."""
    root = uploads_dir()
    try:
        found = sorted(p.name for p in root.iterdir() if WORKSPACE_ID.fullmatch(p.name) and p.is_dir())
    except OSError:  # no uploads folder yet
        return []
    return [ws for ws in found if _slugs(root / ws)]


def upload_classes(name: str) -> int | None:
    """How many classes an upload has, from its record (None when the record does not say)."""
    workspace, slug = parse_name(name)
    classes = read_record(workspace, slug).get("classes")
    return len(classes) if isinstance(classes, list) else None


def delete_upload(workspace: str, slug: str) -> None:
    """Remove an upload (its .npz and its record); DataError when the workspace has none by that name."""
    folder = workspace_folder(workspace)
    _check_slug(slug)
    if not any((folder / f"{slug}{suffix}").is_file() for suffix in STORED):
        raise DataError(f"this workspace has no upload named {slug!r}")
    with _locked(folder):
        for suffix in (*STORED, ".json"):
            (folder / f"{slug}{suffix}").unlink(missing_ok=True)


def remove_workspace_uploads(workspace: str) -> None:
    """Remove every upload of a workspace, its folder included (an expired workspace gives its disk back)."""
    shutil.rmtree(workspace_folder(workspace), ignore_errors=True)


def workspace_upload_bytes(workspace: str) -> int:
    """Bytes the workspace's uploads take on disk."""
    folder = workspace_folder(workspace)
    if not folder.is_dir():
        return 0
    return sum(p.lstat().st_size for p in folder.iterdir() if p.is_file() and not p.is_symlink())
