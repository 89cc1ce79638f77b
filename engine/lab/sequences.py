"""The Sequences page's back-end: sequence datasets and models, a run's replay, its context vectors, the latent
map of the test series and an LSTM's gates over one series.

Everything is numpy in, numpy out; the page only draws.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

from engine.data import load_dataset
from engine.data.sequences import (DEFAULT_SEQUENCE_DATASET, SequenceDataset, classification_datasets,
                                   list_sequence_datasets)
from engine.data.uploads import PREFIX as UPLOAD_PREFIX
from engine.data.uploads import list_uploads, series_uploads
from engine.eval.sequences import encode_series, per_series_mse
from engine.models import data_settings, models
from engine.runs import Run
from engine.runs.loaded import nearest_step
from engine.train.sequences import series_snapshots

DEFAULT_MODEL = "lstm_ae"
DEFAULT_LATENT_DIM = 8
DEFAULT_STEPS = 600
MAX_MAP_POINTS = 2000


def sequence_models() -> list[str]:
    """Every registered sequence model (trainer "sequence"), in registry order."""
    return models(kind="sequence")


def page_datasets(workspace: str | None = None) -> list[str]:
    """The datasets this page trains on: the labelled sets (the long series have their own page), then the
    workspace's uploaded CSVs of one series per row, oldest first."""
    here = {i.name for i in list_sequence_datasets() if i.available}
    uploaded = [i.name for i in series_uploads(workspace, "rows")] if workspace else []
    return [n for n in classification_datasets() if n in here] + uploaded


def describe(name: str) -> str:
    """A dataset's one-line description (an upload's from its record)."""
    if name.startswith(UPLOAD_PREFIX):
        workspace = name.removeprefix(UPLOAD_PREFIX).partition("/")[0]
        try:
            return next((i.description for i in list_uploads(workspace) if i.name == name), name)
        except ValueError:  # not a workspace's name: the name is all there is to say
            return name
    return next((i.description for i in list_sequence_datasets() if i.name == name), name)


def is_sequence_run(config: dict | None) -> bool:
    return isinstance(config, dict) and config.get("model") in sequence_models()


def run_settings(model: str, dataset: str, latent_dim: int, steps: int, options: dict | None = None
                 ) -> tuple[dict, dict]:
    """(model_config, train) for a new run: the dataset fixes T and C; snapshots often enough to replay."""
    model_config = {**data_settings(model, dataset), "latent_dim": int(latent_dim), **(options or {})}
    train = {"steps": int(steps), "snapshot_every_s": 0.5, "checkpoint_every_s": 2.0, "threads": 1}
    return model_config, train


# ---------------------------------------------------------------------------------------------
# a run's replay: the fixed test series and their reconstructions over training


@dataclass(frozen=True)
class Replay:
    indices: list[int]  # the fixed test series (indices into the test split)
    x: np.ndarray  # (n, T, C) the inputs
    y: list[int]
    classes: list[str]
    steps: list[int]  # the snapshot steps, oldest first


def replay(run: Run) -> Replay | None:
    """The run's series snapshots (None before the first is written)."""
    path = run.path / "snapshots" / "series_inputs.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return Replay(list(record["indices"]), np.asarray(record["x"], dtype=np.float32), list(record["y"]),
                  list(record.get("classes", [])), [s for s, _ in series_snapshots(run)])


def frame(run: Run, step: int) -> np.ndarray | None:
    """x̂ (n, T, C) of the fixed series at snapshot `step` (None when that snapshot is gone)."""
    for s, path in series_snapshots(run):
        if s == step:
            try:
                return np.asarray(json.loads(path.read_text())["x_hat"], dtype=np.float32)
            except (OSError, ValueError, KeyError):
                return None
    return None


# ---------------------------------------------------------------------------------------------
# a loaded model on the test split


def test_split(model_dataset: str) -> SequenceDataset:
    return load_dataset(model_dataset)


@torch.inference_mode()
def test_codes(model, dataset: SequenceDataset) -> np.ndarray:
    """Context vectors z (M, latent_dim) of every test series."""
    return encode_series(model, dataset.x_test).numpy()


@torch.inference_mode()
def one_series(model, dataset: SequenceDataset, index: int) -> dict:
    """Test series `index`: x (T, C), x̂ (T, C), z (latent_dim,), its MSE and class."""
    x = dataset.x_test[index:index + 1]
    model.eval()
    z = model.encode(x)
    x_hat = model.decode(z)
    y = int(dataset.y_test[index])
    return {"x": x[0].numpy(), "x_hat": x_hat[0].numpy(), "z": z[0].numpy(),
            "mse": float(per_series_mse(x_hat, x)[0]), "y": y,
            "class": dataset.classes[y] if 0 <= y < len(dataset.classes) else "–"}


def latent_map(z: np.ndarray, y: np.ndarray, method: str = "pca", seed: int = 0) -> dict:
    """The test series' codes on a 2-D map (engine.lab.latent_map), with how well classes separate on it."""
    from engine.lab.latent_map import map_knn_accuracy, project, subset_indices

    idx = subset_indices(len(z), MAX_MAP_POINTS, seed)
    xy = project(z[idx], method, seed) if z.shape[1] > 2 or method != "pca" else z[idx, :2]
    if xy.shape[1] < 2:  # a 1-d code: put it on a line
        xy = np.concatenate([xy, np.zeros_like(xy)], 1)
    return {"xy": np.asarray(xy, dtype=np.float32), "indices": idx, "y": np.asarray(y)[idx],
            "knn_z": map_knn_accuracy(z[idx], np.asarray(y)[idx]), "knn_map": map_knn_accuracy(xy, np.asarray(y)[idx])}


def clicked_series(selection) -> int | None:
    """The test index of the first point selected on the latent map (its customdata), or None."""
    try:
        data = selection["selection"]["points"][0]["customdata"]
    except (KeyError, IndexError, TypeError):
        return None
    data = data[0] if isinstance(data, (list, tuple)) else data
    try:
        return int(data)
    except (TypeError, ValueError):
        return None


def has_gates(model) -> bool:
    return bool(getattr(model, "has_gates", False))


def gates(model, dataset: SequenceDataset, index: int) -> dict[str, np.ndarray]:
    """An LSTM's input, forget and output gates, cell state and hidden state over test series `index`, (T, H)
    each, stepped by hand from the encoder's first layer (LSTMAE.gate_trace)."""
    if not has_gates(model):
        raise ValueError("only an LSTM has input, forget and output gates; pick an lstm_ae run")
    trace = model.gate_trace(dataset.x_test[index])
    return {k: v.numpy() for k, v in trace.items()}


__all__ = ["DEFAULT_SEQUENCE_DATASET", "DEFAULT_MODEL", "Replay", "frame", "gates", "latent_map", "nearest_step",
           "one_series", "page_datasets", "replay", "run_settings", "sequence_models", "test_codes"]
