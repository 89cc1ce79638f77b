"""A run's config.json: the model and its settings, the dataset, and the training settings.

    {"model": NAME, "dataset": NAME, "model_config": {…}, "train": {…TrainConfig…}, "seed": N,
     "id", "created_at", "versions", "format_version"}   (the last four added by Run.create)

`make_run_config` checks every part before a run directory is made, so a bad setting fails at
once, in the caller's process, rather than later inside a worker.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Literal

from engine.data import DataError, check_dataset, dataset_classes, registered_datasets, upload_owner
from engine.device import resolve_device
from engine.models import get_model_class, make_config
from engine.models.settings import config_from_dict, setting
from engine.runs.files import RunError

DEFAULT_EPOCHS = 10

# Hosted limits: a setting arrives from a form, a link, the command line or an uploaded run, and must
# not be able to make the server allocate, compute or write without bound.
MAX_EPOCHS = 10_000  # mnist-5k's 4,000 images × 10,000 is 40 M images; the full MNIST's is hours
MAX_STEPS = 10_000_000
MAX_SECONDS = 7 * 24 * 3600.0  # a week of wall clock
MAX_BATCH = 4096  # images per step: a batch of a 28×28 conv net stays well under a GiB of activations
MAX_THREADS = 256
MAX_EVAL_BATCH = 10_000  # the test splits' size
MAX_KEEP_CHECKPOINTS = 100  # newest checkpoints kept; 0 used to mean every one (666 files in 30 s)
MIN_CHECKPOINT_EVERY_S = 0.2  # at most 5 checkpoint writes a second, and `keep_checkpoints` bounds the files
MIN_SNAPSHOT_EVERY_S = 0.1
MIN_LOG_EVERY_S = 0.001  # a line per step at most (each line also scores eval_batch test images)
MAX_EVERY_S = 24 * 3600.0  # any interval
MAX_SEED = 2**31 - 1  # what every generator takes (numpy's and torch's), with room for the seed + k offsets
MAX_CLASS = 999  # a class index; the dataset's own class count is checked when it is known


@dataclass
class TrainConfig:
    epochs: int | None = setting(None, "passes over the train split (default 10 when no other budget is "
                                       "given)", label="Epochs", low=1, high=MAX_EPOCHS)
    steps: int | None = setting(None, "gradient steps; training stops at whichever budget (epochs, steps, seconds) "
                                      "runs out first. Unlike seconds, a step budget gives the same model on a busy "
                                      "machine, only later", label="Steps", low=1, high=MAX_STEPS)
    seconds: float | None = setting(None, "wall-clock budget in seconds; training stops at whichever limit comes "
                                          "first", label="Seconds", low=0, low_open=True, high=MAX_SECONDS)
    batch_size: int = setting(128, "images per gradient step (at least 2: BatchNorm needs 2 images)",
                              label="Batch size", low=2, high=MAX_BATCH)
    lr: float = setting(1e-3, "Adam's learning rate (a GAN's generator's); with a schedule, its "
                              "peak", label="Learning rate", low=0, low_open=True, high=10)
    schedule: Literal["constant", "one_cycle"] = setting(
        "constant", "learning-rate schedule over the budget: constant, or one_cycle (warm up to lr over the first "
                    "30 %, then anneal to lr/10,000 by the end)", label="LR schedule")
    lr_d: float | None = setting(None, "GANs: the discriminator's (critic's) learning rate (None: the same as "
                                       "lr)", label="D learning rate", low=0, low_open=True, high=10)
    beta1: float = setting(0.9, "Adam's β1, the momentum of the gradient average (DCGAN trains with "
                                "0.5)", label="Adam β1", low=0, high=1, high_open=True)
    beta2: float = setting(0.999, "Adam's β2, the momentum of the squared-gradient average", label="Adam β2",
                           low=0, high=1, high_open=True)
    weight_decay: float = setting(0.0, "L2 penalty on the weights (Adam's weight_decay)", label="Weight decay",
                                  low=0, high=1)
    seed: int = setting(0, "seeds weights, batch order and noise: the same seed gives the same run", label="Seed",
                        low=0, high=MAX_SEED)
    device: str = setting("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps", label="Device")
    threads: int = setting(0, "CPU threads for torch (0: every usable core)", label="CPU threads",
                           low=0, high=MAX_THREADS)
    log_every_s: float = setting(0.5, "seconds between metrics lines", label="Log every (s)",
                                 low=MIN_LOG_EVERY_S, high=MAX_EVERY_S)
    snapshot_every_s: float = setting(1.5, "seconds between snapshots (reconstructions of the fixed test "
                                           "batch)", label="Snapshot every (s)", low=MIN_SNAPSHOT_EVERY_S,
                                      high=MAX_EVERY_S)
    checkpoint_every_s: float = setting(3.0, "seconds between checkpoints (also what replays of the latent map "
                                             "show)", label="Checkpoint every (s)", low=MIN_CHECKPOINT_EVERY_S,
                                        high=MAX_EVERY_S)
    keep_checkpoints: int = setting(5, "how many recent checkpoints to keep (plus a thinned history for "
                                       "replays)", label="Checkpoints kept", low=1, high=MAX_KEEP_CHECKPOINTS)
    classes: list[int] | None = setting(None, "train on these classes only (one-class anomaly detection); None: "
                                              "all", label="Train on classes", low=0, high=MAX_CLASS, min_len=1,
                                        max_len=MAX_CLASS + 1)
    eval_batch: int = setting(500, "test images scored at each log line", label="Test images per log",
                              low=1, high=MAX_EVAL_BATCH)
    judge: bool = setting(True, "GANs: score samples with the dataset's judge classifier while training (FID-style, "
                                "classes)", label="Judge while training")
    judge_every_s: float = setting(5.0, "GANs: seconds between judge scores (each draws judge_samples "
                                        "images)", label="Judge every (s)", low=0.5, high=MAX_EVERY_S)
    judge_samples: int = setting(500, "GANs: generated images per judge score during training", label="Judged samples",
                                 low=10, high=10_000)

    def validate(self) -> None:
        """Ranges are declared on the fields (checked by config_from_dict); the device must exist here."""
        device = self.device.strip()
        if not device or len(device) > 32 or not device.isprintable():
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, not {self.device[:40]!r}")

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
    if not isinstance(model_config, (dict, type(None))) or not isinstance(train, (dict, type(None))):
        raise ValueError("model and training settings must each be an object of name: value")
    mcfg = make_config(model, model_config or {})
    # the model's own preferred settings first (e.g. a GAN's learning rate), then the caller's
    tcfg = config_from_dict(TrainConfig, {**get_model_class(model).train_defaults, **(train or {})})
    check_classes(tcfg, dataset)
    resolve_device(tcfg.device)  # an unknown or absent device fails here, not in a worker
    config = {"model": model, "dataset": dataset, "model_config": asdict(mcfg), "train": asdict(tcfg),
              "seed": tcfg.seed}
    name = run_name(name)
    return {**config, "name": name} if name else config


def check_classes(train: TrainConfig, dataset: str) -> None:
    """The classes to train on exist in the dataset (known without loading it for the server's own datasets;
    a user's folder or file is checked when training loads it)."""
    n = dataset_classes(dataset)
    if train.classes and n is not None and max(train.classes) >= n:
        raise ValueError(f"classes must be indices of {dataset}'s {n} classes, 0 to {n - 1}, not "
                         f"{max(train.classes)}")


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


def check_own_data(config: dict) -> None:
    """An imported run trains only on this server's own datasets: a `folder:` or `npz:` name in its config.json
    (from an archive made before imports checked it, or edited since) would make the worker read a server path.
    A workspace's run trains on the server's datasets and that workspace's own uploads only."""
    if config.get("imported") and config.get("dataset") not in registered_datasets():
        raise RunError("this run was imported and names a dataset that is not one of this server's "
                         f"({', '.join(registered_datasets())}); it cannot train here")
    owner, dataset = config.get("workspace"), config.get("dataset")
    try:
        uploader = upload_owner(dataset) if isinstance(dataset, str) else None
    except DataError as e:
        raise RunError(str(e)) from None
    if isinstance(owner, str) and uploader not in (None, owner):
        raise RunError("this run names a dataset uploaded in another workspace; it cannot train on it")
