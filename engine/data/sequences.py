"""Sequence datasets: series of shape (T, C) by name, from packages (never downloaded) or the user's CSV.

Names `load_dataset` takes (engine.data.catalogue hands every one of these names to `resolve` here):

- ``gunpoint``, ``italy-power``, ``arrowhead``, ``basic-motions``, ``japanese-vowels``, ``osu-leaf``
      the UCR/UEA classification sets that the `sktime` wheel ships as `.ts` files
      (sktime/datasets/data/NAME/NAME_TRAIN.ts and _TEST.ts). We read the files ourselves (the format is
      a few header lines and one series per line), so a page does not pay sktime's 3 s import;
      tests/engine/test_sequences_data.py checks the reader against sktime's own loader.
- ``seq-mnist``     sequential MNIST: mnist-5k's digits read row by row, 28 steps of 28 values
- ``ecg-mitdb``, ``yahoo``   long series with labelled anomalies (sktime's mitdb.csv, an MIT-BIH ECG excerpt
      of 7,500 samples, and yahoo.csv, a Yahoo Webscope series): cut into sliding windows, each z-normalised on
      its own (as the matrix profile compares them). The train split is
      windows of the series' start, before any labelled anomaly (as the UCR anomaly archive does); the test
      split every window. `Dataset.series` keeps the whole series for the anomaly view.
- ``csv:FILE``      the user's own: one series per row (a first header field ``label`` makes the first column
      the class), or one long series in one column (optionally a second ``label`` column of 0/1 anomalies)
- ``upload:WS/NAME``  the same CSV uploaded from the browser (engine/data/uploads.py stores it as a .csv in the
      workspace's folder): read by `read_upload`, its messages naming the upload, never its path

Why sktime: its wheel bundles both the classification sets and the labelled anomaly series, and it pins no
numba (aeon bundles similar sets but requires a numba older than the one umap-learn runs on here).
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.data.dataset import DataError, DatasetInfo, split

MAX_CSV_BYTES = 50 * 2**20  # a user's file; larger ones are refused before they are read
MAX_VALUES = 20_000_000  # numbers in one dataset (80 MB as float32)
MIN_STEPS = 4


# ----------------------------------------------------------------------------------------------
# the record


@dataclass(frozen=True)
class LongSeries:
    """One long series cut into windows: what the time-series anomaly view scores."""

    values: np.ndarray  # (L,) float32, standardised by the normal start's mean and std
    labels: np.ndarray  # (L,) int64, 1 inside a labelled anomaly, 0 elsewhere
    window: int  # steps per window
    train_end: int  # the train split's windows lie in values[:train_end]

    def windows(self, stride: int = 1) -> np.ndarray:
        """The series' windows (n, window, 1) as the models see them: each z-normalised on its own."""
        return znorm(windows(self.values, self.window, stride))[..., None]


def znorm(w: np.ndarray) -> np.ndarray:
    """Each window (a row) to mean 0, std 1, as the matrix profile compares them: a detector then looks for
    unusual shapes, not for a series that drifts or grows (Yahoo's does). A flat window stays flat (std floor)."""
    mean, std = w.mean(1, keepdims=True), w.std(1, keepdims=True)
    return ((w - mean) / np.maximum(std, 1e-3)).astype(np.float32)


@dataclass(frozen=True, eq=False, repr=False)
class SequenceDataset:
    """A loaded sequence dataset; frozen because `load_dataset` hands the same object to every caller."""

    name: str
    x_train: torch.Tensor  # (N, T, C) float32
    y_train: torch.Tensor  # (N,) int64, -1 where unlabelled
    x_test: torch.Tensor  # (M, T, C) float32
    y_test: torch.Tensor  # (M,) int64
    classes: list[str]
    description: str = ""
    series: LongSeries | None = None  # the whole series, for windowed datasets
    kind = "sequence"  # images are Dataset; a page or trainer can tell them apart without isinstance

    def __post_init__(self):
        for part, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if x.dtype != torch.float32 or x.ndim != 3:
                raise DataError(f"{self.name}: x_{part} must be (N, T, C) float32, got {tuple(x.shape)} {x.dtype}")
            if y.dtype != torch.int64 or y.shape != (x.shape[0],):
                raise DataError(f"{self.name}: y_{part} must be ({x.shape[0]},) int64, got {tuple(y.shape)}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(f"{self.name}: train series are {tuple(self.x_train.shape[1:])} (T, C) but test ones "
                            f"{tuple(self.x_test.shape[1:])}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def length(self) -> int:  # T
        return int(self.x_train.shape[1])

    @property
    def channels(self) -> int:  # C
        return int(self.x_train.shape[2])

    def to(self, device) -> SequenceDataset:
        return dataclasses.replace(self, x_train=self.x_train.to(device), y_train=self.y_train.to(device),
                                   x_test=self.x_test.to(device), y_test=self.y_test.to(device))

    def only_classes(self, classes: list[int] | None) -> SequenceDataset:
        """A copy whose train split keeps only `classes` (the test split stays whole), as images do."""
        if not classes:
            return self
        if not self.num_classes or any(not 0 <= c < self.num_classes for c in classes):
            raise DataError(f"{self.name}: no class {classes} to train on; it has classes 0–{self.num_classes - 1}"
                            if self.num_classes else f"{self.name} has no labels")
        keep = torch.isin(self.y_train, torch.tensor(sorted(set(classes))))
        if not bool(keep.any()):
            raise DataError(f"{self.name}: the train split has no series of classes {classes}")
        return dataclasses.replace(self, x_train=self.x_train[keep], y_train=self.y_train[keep])

    def __repr__(self) -> str:
        return (f"SequenceDataset({self.name!r}, train={len(self.x_train)}, test={len(self.x_test)}, "
                f"T={self.length}, C={self.channels}, classes={self.num_classes})")


def _make(name, x_train, y_train, x_test, y_test, classes, description="", series=None) -> SequenceDataset:
    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    return SequenceDataset(name, t(x_train), torch.from_numpy(np.asarray(y_train, dtype=np.int64)), t(x_test),
                           torch.from_numpy(np.asarray(y_test, dtype=np.int64)), list(classes), description, series)


def standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each channel to mean 0, std 1 over the train split (one scalar pair per channel, so shapes survive)."""
    mean = x_train.mean(axis=(0, 1), keepdims=True)
    std = x_train.std(axis=(0, 1), keepdims=True)
    std = np.where(std > 1e-8, std, 1.0)
    return (x_train - mean) / std, (x_test - mean) / std


# ----------------------------------------------------------------------------------------------
# sktime's bundled files


def sktime_data_dir() -> Path | None:
    """sktime/datasets/data inside the installed sktime, found without importing sktime (3 s)."""
    spec = importlib.util.find_spec("sktime")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def read_ts(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A `.ts` file (the UCR/UEA archive's format) → x (N, T, C) float32, y (N,) class indices, class names.

    Header lines start with @ (@classLabel true 1 2 lists the classes), comments with #; each data line is
    one series, its channels separated by ':' and its values by ',', the class last. Series shorter than the
    longest (JapaneseVowels) are padded with their last value, so every series is (T, C).
    """
    classes: list[str] | None = None
    rows: list[list[np.ndarray]] = []
    labels: list[str] = []
    in_data = False
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                low = line.lower()
                if low.startswith("@classlabel"):
                    parts = line.split()
                    classes = parts[2:] if len(parts) > 1 and parts[1].lower() == "true" else None
                elif low.startswith("@data"):
                    in_data = True
                continue
            fields = line.split(":")
            if classes is not None:
                labels.append(fields[-1].strip())
                fields = fields[:-1]
            try:
                rows.append([np.array([float(v) for v in ch.split(",")], dtype=np.float32) for ch in fields])
            except ValueError as e:
                raise DataError(f"{path.name} line {n}: {e}; every value must be a number") from None
    if not rows:
        raise DataError(f"{path} holds no series after @data")
    n_ch = len(rows[0])
    if any(len(r) != n_ch for r in rows):
        raise DataError(f"{path.name}: series have different numbers of channels")
    t_max = max(len(ch) for r in rows for ch in r)
    x = np.empty((len(rows), t_max, n_ch), dtype=np.float32)
    for i, r in enumerate(rows):
        for c, ch in enumerate(r):
            x[i, :len(ch), c] = ch
            x[i, len(ch):, c] = ch[-1]  # pad by holding the last value
    classes = classes or sorted(set(labels))
    index = {c: i for i, c in enumerate(classes)}
    if any(lab not in index for lab in labels):
        raise DataError(f"{path.name}: a series' class is not one of @classLabel's {classes}")
    y = np.array([index[lab] for lab in labels], dtype=np.int64) if labels else np.full(len(x), -1)
    return x, y, classes


@dataclass(frozen=True)
class _Bundled:
    folder: str  # the folder (and file prefix) in sktime/datasets/data
    description: str


CLASSIFICATION = {
    "gunpoint": _Bundled("GunPoint", "GunPoint: a hand's x-position while drawing a gun or pointing; 150 steps, "
                                     "2 classes, 50 train / 150 test"),
    "italy-power": _Bundled("ItalyPowerDemand", "Italy power demand: one day's 24 hourly loads, winter or "
                                                "summer; 67 train / 1,029 test"),
    "arrowhead": _Bundled("ArrowHead", "ArrowHead: outlines of arrowheads as 251-step series, 3 classes, "
                                       "36 train / 175 test"),
    "basic-motions": _Bundled("BasicMotions", "BasicMotions: 6-channel accelerometer and gyroscope, 100 steps, "
                                              "4 activities, 40 train / 40 test"),
    "japanese-vowels": _Bundled("JapaneseVowels", "Japanese vowels: 12 LPC coefficients over up to 29 frames, 9 "
                                                  "speakers, 270 train / 370 test"),
    "osu-leaf": _Bundled("OSULeaf", "OSU leaf: leaf outlines as 427-step series, 6 classes, 200 train / 242 test"),
}


def _load_bundled(name: str) -> SequenceDataset:
    source = CLASSIFICATION[name]
    root = sktime_data_dir()
    if root is None:
        raise DataError(f"dataset {name!r} is not available: the sktime package is not installed. To get it: "
                        "pip install -r requirements.txt")
    folder = root / source.folder
    x_train, y_train, classes = read_ts(folder / f"{source.folder}_TRAIN.ts")
    x_test, y_test, classes_test = read_ts(folder / f"{source.folder}_TEST.ts")
    if classes_test != classes or x_test.shape[2] != x_train.shape[2]:
        raise DataError(f"{name}: the train and test files disagree on classes or channels")
    t = max(x_train.shape[1], x_test.shape[1])  # pad both to one length
    x_train, x_test = (np.concatenate([a, np.repeat(a[:, -1:], t - a.shape[1], 1)], 1) for a in (x_train, x_test))
    x_train, x_test = standardise(x_train, x_test)
    return _make(name, x_train, y_train, x_test, y_test, classes, source.description)


# ----------------------------------------------------------------------------------------------
# long series with labelled anomalies → windows


@dataclass(frozen=True)
class _LongSource:
    file: str  # under sktime/datasets/data
    description: str
    window: int
    train_fraction: float  # the series' start that holds no labelled anomaly


LONG_SERIES = {
    # ECG windows of 150 samples, about half a heartbeat at 360 Hz: shorter ones (100) miss the beat's shape, and
    # even the matrix profile's top discord then falls outside the labelled region (AUROC 0.84 at 100, 0.98 at 150)
    "ecg-mitdb": _LongSource("mitdb/mitdb.csv", "ECG (MIT-BIH excerpt): 7,500 samples, one labelled arrhythmia "
                                                "near the end; windows of 150", 150, 0.6),
    "yahoo": _LongSource("yahoo/yahoo.csv", "Yahoo Webscope series: 1,000 points with 7 short labelled anomalies; "
                                            "windows of 32", 32, 0.4),
}
TRAIN_STRIDE = 2  # train windows start every 2 steps (neighbours overlap almost wholly: more add little)
TEST_STRIDE = 4  # the test split's windows (the anomaly view scores every window, stride 1)


def windows(values: np.ndarray, window: int, stride: int = 1) -> np.ndarray:
    """Sliding windows (n, window) of a 1-D series, starting at 0, stride, 2·stride, …"""
    if len(values) < window:
        raise DataError(f"a series of {len(values)} steps is shorter than its window of {window}")
    view = np.lib.stride_tricks.sliding_window_view(values, window)
    return np.ascontiguousarray(view[::stride])


def windowed(name: str, values: np.ndarray, labels: np.ndarray, window: int, train_fraction: float,
             description: str = "") -> SequenceDataset:
    """Train on the windows of the series' anomaly-free start, test on every window (class 1: overlaps an anomaly)."""
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    first = int(np.argmax(labels > 0)) if labels.any() else len(values)
    train_end = min(int(len(values) * train_fraction), first)
    if train_end < window + TRAIN_STRIDE:
        raise DataError(f"{name}: the part before the first labelled anomaly ({train_end} steps) is shorter than "
                        f"two windows of {window}: use a shorter window or a longer normal start")
    mean, std = values[:train_end].mean(), values[:train_end].std()
    values = ((values - mean) / (std if std > 1e-8 else 1.0)).astype(np.float32)
    series = LongSeries(values, labels, window, train_end)
    x_train = znorm(windows(values[:train_end], window, TRAIN_STRIDE))[..., None]  # (N, T, 1)
    x_test = series.windows(TEST_STRIDE)
    hit = windows(labels, window, TEST_STRIDE).max(1)  # (M,) 1 if the window overlaps an anomaly
    return _make(name, x_train, np.zeros(len(x_train)), x_test, hit, ["normal", "anomaly"], description, series)


def _load_long(name: str) -> SequenceDataset:
    source = LONG_SERIES[name]
    root = sktime_data_dir()
    if root is None:
        raise DataError(f"dataset {name!r} is not available: the sktime package is not installed. To get it: "
                        "pip install -r requirements.txt")
    data = np.loadtxt(root / source.file, delimiter=",", skiprows=1)  # columns: data, label
    return windowed(name, data[:, 0], data[:, 1].astype(np.int64), source.window, source.train_fraction,
                    source.description)


# ----------------------------------------------------------------------------------------------
# sequential MNIST


def _load_seq_mnist() -> SequenceDataset:
    # The catalogue's loader, not load_dataset: this runs under load_dataset's (non-reentrant) lock.
    from engine.data.catalogue import _load_mnist5k  # here: the catalogue imports this module

    images = _load_mnist5k()
    return _make("seq-mnist", images.x_train[:, 0].numpy(), images.y_train.numpy(), images.x_test[:, 0].numpy(),
                 images.y_test.numpy(), images.classes,
                 "sequential MNIST: mnist-5k's digits read row by row, 28 steps of 28 pixels")


# ----------------------------------------------------------------------------------------------
# the user's CSV


def read_csv(path: Path) -> SequenceDataset:
    """csv:FILE: one series per row (header `label,…` makes the first column the class), or one long series."""
    name = f"csv:{path}"
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e.strerror or e}); give a CSV file as csv:/full/path") from None
    if not path.is_file():
        raise DataError(f"{path} is not a regular file; give a CSV file as csv:/full/path")
    if size > MAX_CSV_BYTES:
        raise DataError(f"{path} is {size / 2**20:.1f} MiB, over the {MAX_CSV_BYTES // 2**20} MiB limit for a CSV")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text; save it as a plain CSV") from None
    return parse_csv(text, name, path.name)


def read_upload(name: str, path: Path) -> SequenceDataset:
    """An uploaded CSV (engine/data/uploads.py stored it after these same checks), named by its upload name in
    every message: a visitor never hears where it lies."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"the uploaded {name} cannot be read ({type(e).__name__}); upload it again") from None
    return parse_csv(text, name, name)


def parse_csv(text: str, name: str, shown: str = "the CSV") -> SequenceDataset:
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(v.strip() for v in r)]
    if not rows:
        raise DataError(f"{shown} is empty; give one series per row (numbers separated by commas) or one long "
                        "series in one column")
    header = [v.strip().lower() for v in rows[0]]
    has_header = any(_not_number(v) for v in header)
    if has_header:
        rows = rows[1:]
    labelled = has_header and header[0] in ("label", "class", "y")
    long_form = bool(rows) and (len(rows[0]) == 1 or (len(rows[0]) == 2 and has_header and header[1] in
                                                        ("label", "anomaly", "is_anomaly")))
    if len(rows) < 2:
        raise DataError(f"{shown} holds {len(rows)} data row(s); give at least 2 series (rows), or one long "
                        "series with at least 2 windows' worth of rows")
    if sum(len(r) for r in rows) > MAX_VALUES:
        raise DataError(f"{shown} holds more than {MAX_VALUES:,} values; give a smaller file")
    width = len(rows[0])
    for i, r in enumerate(rows, 2 if has_header else 1):
        if len(r) != width:
            raise DataError(f"{shown} row {i} has {len(r)} values but the first data row has {width}: every series "
                            "needs the same length (pad or trim them)")
    if long_form:
        values = _numbers([r[0] for r in rows], shown, "column 1")
        labels = (_numbers([r[1] for r in rows], shown, "column 2").astype(np.int64) if width == 2
                  else np.zeros(len(values), dtype=np.int64))
        if not set(np.unique(labels)) <= {0, 1}:
            raise DataError(f"{shown}: the label column must hold 0 (normal) or 1 (anomaly)")
        window = max(MIN_STEPS, min(64, len(values) // 10))
        return windowed(name, values, labels, window, 0.5 if labels.any() else 1.0,
                        f"your series ({len(values):,} steps), windows of {window}")
    label_text = [r[0].strip() for r in rows] if labelled else None
    body = [r[1:] for r in rows] if labelled else rows
    if len(body[0]) < MIN_STEPS:
        raise DataError(f"{shown}: each series has {len(body[0])} values; give at least {MIN_STEPS} steps per row")
    x = np.stack([_numbers(r, shown, f"row {i}") for i, r in enumerate(body, 2 if has_header else 1)])[..., None]
    if label_text is not None:
        classes = sorted(set(label_text), key=lambda s: (_not_number(s), float(s) if not _not_number(s) else 0, s))
        y = np.array([classes.index(v) for v in label_text], dtype=np.int64)
    else:
        classes, y = [], np.full(len(x), -1, dtype=np.int64)
    x_train, x_test, y_train, y_test = split(x, y, label_text is not None, Path(shown))
    x_train, x_test = standardise(x_train, x_test)
    return _make(name, x_train, y_train, x_test, y_test, classes, f"your series: {len(x)} rows of {x.shape[1]} steps")


def _not_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return True
    return False


def _numbers(values: list[str], shown: str, where: str) -> np.ndarray:
    try:
        out = np.array([float(v) for v in values], dtype=np.float32)
    except ValueError:
        bad = next(v for v in values if _not_number(v))
        raise DataError(f"{shown} {where}: {bad.strip()[:40]!r} is not a number; every value must be a number "
                        "(a header line may name the columns)") from None
    if not np.isfinite(out).all():
        raise DataError(f"{shown} {where} holds NaN or infinity; fill the gaps first")
    return out


# ----------------------------------------------------------------------------------------------
# the sequence catalogue


SEQUENCE_DATASETS = (*CLASSIFICATION, "seq-mnist", *LONG_SERIES)
DEFAULT_SEQUENCE_DATASET = "gunpoint"
DEFAULT_ANOMALY_SERIES = "ecg-mitdb"


def is_sequence_name(name) -> bool:
    """A bundled series set, a csv:FILE, or an upload:WS/NAME whose stored file is a .csv of series."""
    from engine.data.uploads import is_series_upload  # here: uploads imports this module's parser

    return isinstance(name, str) and (name in SEQUENCE_DATASETS or name.startswith("csv:") or is_series_upload(name))


def resolve(name: str):
    """(cache key, loader) for a sequence dataset name, as engine.data.catalogue._resolve returns."""
    if name in CLASSIFICATION:
        return (name, ""), lambda: _load_bundled(name)
    if name in LONG_SERIES:
        return (name, ""), lambda: _load_long(name)
    if name == "seq-mnist":
        return (name, ""), _load_seq_mnist
    if not name.startswith("csv:"):  # an uploaded CSV: its workspace and name, never a path
        from engine.data.uploads import upload_path

        path = upload_path(name)
        # the file's time in the key: an upload deleted and made again under its name is new data
        return (name, f"{path}@{path.stat().st_mtime_ns}"), lambda: read_upload(name, path)
    path = Path(name.removeprefix("csv:")).expanduser()
    if not path.is_file():
        raise DataError(f"{str(path)[:200]} is not a file; give your CSV as csv:/full/path/file.csv")
    return (name, str(path.resolve())), lambda: read_csv(path)


def dataset_classes(name: str) -> int | None:
    """Classes of a bundled sequence dataset without loading it; None for a user's CSV."""
    counts = {"gunpoint": 2, "italy-power": 2, "arrowhead": 3, "basic-motions": 4, "japanese-vowels": 9,
              "osu-leaf": 6, "seq-mnist": 10}
    return counts.get(name, 2 if name in LONG_SERIES else None)


def list_sequence_datasets() -> list[DatasetInfo]:
    """Every bundled sequence dataset and whether it is here (sktime installed)."""
    here = sktime_data_dir() is not None and sktime_data_dir().is_dir()
    out = []
    for name in SEQUENCE_DATASETS:
        description = (CLASSIFICATION[name].description if name in CLASSIFICATION else
                       LONG_SERIES[name].description if name in LONG_SERIES else
                       "sequential MNIST: mnist-5k's digits read row by row, 28 steps of 28 pixels")
        available = here or name == "seq-mnist"
        out.append(DatasetInfo(name, description, available, "" if available else "sktime is not installed",
                               "" if available else "pip install -r requirements.txt", None, None))
    return out


def classification_datasets() -> list[str]:
    """The labelled sets whose classes mean something (not the windows of a long series)."""
    return [*CLASSIFICATION, "seq-mnist"]
