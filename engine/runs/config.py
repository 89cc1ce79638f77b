"""A run's config.json: the model and its settings, the dataset, and the training settings.

    {"model": NAME, "dataset": NAME, "model_config": {…}, "train": {…TrainConfig…}, "seed": N,
     "id", "created_at", "versions", "format_version"}   (the last four added by Run.create)

`make_run_config` checks every part before a run directory is made, so a bad setting fails at
once, in the caller's process, rather than later inside a worker.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Literal

from engine.data import check_dataset
from engine.device import resolve_device
from engine.models import get_model_class, make_config
from engine.models.settings import config_from_dict, setting

DEFAULT_EPOCHS = 10


@dataclass
class TrainConfig:
    epochs: int | None = setting(None, "passes over the train split (default 10 when no other budget is "
                                       "given)", label="Epochs")
    steps: int | None = setting(None, "gradient steps; training stops at whichever budget (epochs, steps, seconds) "
                                      "runs out first. Unlike seconds, a step budget gives the same model on a busy "
                                      "machine, only later", label="Steps")
    seconds: float | None = setting(None, "wall-clock budget in seconds; training stops at whichever limit comes "
                                          "first", label="Seconds")
    batch_size: int = setting(128, "images per gradient step", label="Batch size")
    lr: float = setting(1e-3, "Adam's learning rate (a GAN's generator's); with a schedule, its "
                              "peak", label="Learning rate")
    schedule: Literal["constant", "one_cycle"] = setting(
        "constant", "learning-rate schedule over the budget: constant, or one_cycle (warm up to lr over the first "
                    "30 %, then anneal to lr/10,000 by the end)", label="LR schedule")
    lr_d: float | None = setting(None, "GANs: the discriminator's (critic's) learning rate (None: the same as "
                                       "lr)", label="D learning rate")
    beta1: float = setting(0.9, "Adam's β1, the momentum of the gradient average (DCGAN trains with "
                                "0.5)", label="Adam β1")
    beta2: float = setting(0.999, "Adam's β2, the momentum of the squared-gradient average", label="Adam β2")
    weight_decay: float = setting(0.0, "L2 penalty on the weights (Adam's weight_decay)", label="Weight decay")
    seed: int = setting(0, "seeds weights, batch order and noise: the same seed gives the same run", label="Seed")
    device: str = setting("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps", label="Device")
    threads: int = setting(0, "CPU threads for torch (0: every usable core)", label="CPU threads")
    log_every_s: float = setting(0.5, "seconds between metrics lines", label="Log every (s)")
    snapshot_every_s: float = setting(1.5, "seconds between snapshots (reconstructions of the fixed test "
                                           "batch)", label="Snapshot every (s)")
    checkpoint_every_s: float = setting(3.0, "seconds between checkpoints (also what replays of the latent map "
                                             "show)", label="Checkpoint every (s)")
    keep_checkpoints: int = setting(5, "how many recent checkpoints to keep (plus a thinned history for "
                                       "replays)", label="Checkpoints kept")
    classes: list[int] | None = setting(None, "train on these classes only (one-class anomaly detection); None: "
                                              "all", label="Train on classes")
    eval_batch: int = setting(500, "test images scored at each log line", label="Test images per log")
    judge: bool = setting(True, "GANs: score samples with the dataset's judge classifier while training (FID-style, "
                                "classes)", label="Judge while training")
    judge_every_s: float = setting(5.0, "GANs: seconds between judge scores (each draws judge_samples "
                                        "images)", label="Judge every (s)")
    judge_samples: int = setting(500, "GANs: generated images per judge score during training", label="Judged samples")

    def validate(self) -> None:
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, not {self.epochs}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be at least 1, not {self.steps}")
        if self.seconds is not None and not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise ValueError(f"seconds must be a positive number, not {self.seconds}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be at least 2 (BatchNorm needs 2 images), not {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, not {self.lr}")
        if self.lr_d is not None and not self.lr_d > 0:
            raise ValueError(f"lr_d must be positive (or null), not {self.lr_d}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"beta1 and beta2 must be in [0, 1), not {self.beta1} and {self.beta2}")
        if self.judge_every_s <= 0 or self.judge_samples < 10:
            raise ValueError("judge_every_s must be positive and judge_samples at least 10")
        for name in ("log_every_s", "snapshot_every_s", "checkpoint_every_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.classes is not None and (not self.classes or any(c < 0 for c in self.classes)):
            raise ValueError(f"classes must be a non-empty list of class indices (or null), not {self.classes}")

    @property
    def max_epochs(self) -> int | None:
        if self.epochs is not None:
            return self.epochs
        return None if (self.seconds or self.steps) else DEFAULT_EPOCHS


# ---------------------------------------------------------------------------------------------
# run config


MAX_NAME = 80  # characters of a run's name


def run_name(name) -> str | None:
    """A run's name as given (trimmed, one line, at most MAX_NAME characters); None for none."""
    if name is None:
        return None
    if not isinstance(name, str):
        raise ValueError(f"a run's name must be text, not {name!r}")
    name = " ".join(name.split())
    if len(name) > MAX_NAME:
        raise ValueError(f"a run's name must be at most {MAX_NAME} characters, not {len(name)}")
    return name or None


def make_run_config(model: str, dataset: str = "mnist-5k", model_config: dict | None = None,
                    train: dict | None = None, name: str | None = None) -> dict:
    """The config.json of a new run, validated now so a bad setting fails before a worker starts.

    name: what people call the run (shown beside its id); the id stays the run's address.
    """
    check_dataset(dataset)
    mcfg = make_config(model, model_config or {})
    # the model's own preferred settings first (e.g. a GAN's learning rate), then the caller's
    tcfg = config_from_dict(TrainConfig, {**get_model_class(model).train_defaults, **(train or {})})
    resolve_device(tcfg.device)  # an unknown or absent device fails here, not in a worker
    config = {"model": model, "dataset": dataset, "model_config": asdict(mcfg), "train": asdict(tcfg),
              "seed": tcfg.seed}
    name = run_name(name)
    return {**config, "name": name} if name else config


def split_settings(model: str, settings: dict) -> tuple[dict, dict]:
    """Route key=value settings to the model config or the training config by name."""
    train_keys = {f.name for f in fields(TrainConfig)}
    model_keys = {f.name for f in fields(get_model_class(model).config_cls)}
    model_part, train_part = {}, {}
    for k, v in settings.items():
        if k in model_keys:
            model_part[k] = v
        elif k in train_keys:
            train_part[k] = v
        else:
            raise ValueError(f"unknown setting {k!r} for {model}; model settings: {', '.join(sorted(model_keys))}; "
                             f"training settings: {', '.join(sorted(train_keys))}")
    return model_part, train_part


# ---------------------------------------------------------------------------------------------
# what a run was trained on


def is_plain(config: dict) -> bool:
    """A run (config.json) trained on clean inputs and every class: comparable with PCA on the same data."""
    return (config.get("model_config", {}).get("noise", "none") in (None, "none")
            and not config.get("train", {}).get("classes"))


def is_denoising(config: dict) -> bool:
    """A run trained to remove noise: any autoencoder trained with input corruption (a denoising_ae is one, unless
    its noise was set to none: then it is a plain autoencoder)."""
    return config.get("model_config", {}).get("noise", "none") not in (None, "none")
