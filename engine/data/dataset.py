"""The in-memory dataset every source ends up as, and the helpers that build one from arrays.

    Dataset: x_train (N, 1, 28, 28) float32 in [0, 1], y_train (N,) int64 (-1 where unlabelled),
             x_test, y_test the same for the test split, and the class names.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

IMAGE_SIZE = 28  # every image is IMAGE_SIZE × IMAGE_SIZE, one channel
TEST_FRACTION = 0.2  # user data without its own test set: 80 % train / 20 % test
SPLIT_SEED = 0  # fixed, so the same data always gives the same split


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
# arrays → Dataset


def images_tensor(x: np.ndarray) -> torch.Tensor:
    """(N, 28, 28) or (N, 1, 28, 28); uint8 0-255 or float in [0, 1] → (N, 1, 28, 28) float32 in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    t = t.float().div_(255) if t.dtype == torch.uint8 else t.float()
    return t.reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)


def make_dataset(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                  y_test: np.ndarray, classes: list[str]) -> Dataset:
    return Dataset(name=name, x_train=images_tensor(x_train), y_train=torch.from_numpy(y_train.astype(np.int64)),
                   x_test=images_tensor(x_test), y_test=torch.from_numpy(y_test.astype(np.int64)),
                   classes=list(classes))


def split(x: np.ndarray, y: np.ndarray, labelled: bool, source: Path) -> list[np.ndarray]:
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
    from sklearn.model_selection import train_test_split  # here: scikit-learn costs ~1.4 s to import (first visits)

    return train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=stratify)

