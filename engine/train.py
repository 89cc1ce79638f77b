"""Training loops that read a run directory's config and write its metrics, snapshots and checkpoints.

`train_run(run)` is the one entry point (the CLI, the job workers and tests call it). The generic
part here owns the budget (epochs or seconds), the logging cadence, cancellation, checkpoints and
resuming; a family trainer (`ReconstructionTrainer`; the adversarial one joins the same table)
owns its optimizers, its step, its snapshots and its evaluation.

Speed, for small models on a CPU: the dataset lives as one tensor on the training device and
batches are gathered by index (no DataLoader, no per-batch host→device copy); the per-step logs
stay tensors and become Python floats only when a line is written (one sync per log, not per step).
"""

from __future__ import annotations

import math
import os
import time
import traceback
from dataclasses import asdict, dataclass, fields
from typing import Callable

import torch

from engine import images

from engine.data import Dataset, check_dataset, load_dataset
from engine.device import describe_device, resolve_device, set_cpu_threads
from engine.models import build_model, get_model_class, make_config
from engine.models.base import config_from_dict
from engine.runs import (Run, atomic_write_bytes, load_optimizer_state, model_state, process_start_time,
                         read_checkpoint)

DEFAULT_EPOCHS = 10


@dataclass
class TrainConfig:
    epochs: int | None = None  # passes over the train split (default 10 when no time budget is given)
    seconds: float | None = None  # wall-clock budget in seconds; training stops at whichever limit comes first
    batch_size: int = 128  # images per gradient step
    lr: float = 1e-3  # Adam's learning rate (a GAN's generator's)
    lr_d: float | None = None  # GANs: the discriminator's (critic's) learning rate (None: the same as lr)
    beta1: float = 0.9  # Adam's β1, the momentum of the gradient average (DCGAN trains with 0.5)
    beta2: float = 0.999  # Adam's β2, the momentum of the squared-gradient average
    weight_decay: float = 0.0  # L2 penalty on the weights (Adam's weight_decay)
    seed: int = 0  # seeds weights, batch order and noise: the same seed gives the same run
    device: str = "auto"  # auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps
    threads: int = 0  # CPU threads for torch (0: every usable core)
    log_every_s: float = 0.5  # seconds between metrics lines
    snapshot_every_s: float = 1.5  # seconds between snapshots (reconstructions of the fixed test batch)
    checkpoint_every_s: float = 3.0  # seconds between checkpoints (also what replays of the latent map show)
    keep_checkpoints: int = 5  # how many recent checkpoints to keep (plus a thinned history for replays)
    classes: list[int] | None = None  # train on these classes only (one-class anomaly detection); None: all
    eval_batch: int = 500  # test images scored at each log line
    judge: bool = True  # GANs: score samples with the dataset's judge classifier while training (FID-style, classes)
    judge_every_s: float = 5.0  # GANs: seconds between judge scores (each draws judge_samples images)
    judge_samples: int = 500  # GANs: generated images per judge score during training

    def validate(self) -> None:
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, not {self.epochs}")
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
        for name in ("log_every_s", "snapshot_every_s", "checkpoint_every_s"):  # noqa: B007
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.classes is not None and (not self.classes or any(c < 0 for c in self.classes)):
            raise ValueError(f"classes must be a non-empty list of class indices (or null), not {self.classes}")

    @property
    def max_epochs(self) -> int | None:
        return self.epochs if self.epochs is not None else (None if self.seconds else DEFAULT_EPOCHS)


class Cancelled(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# run config


def make_run_config(model: str, dataset: str = "mnist-5k", model_config: dict | None = None,
                    train: dict | None = None) -> dict:
    """The config.json of a new run, validated now so a bad setting fails before a worker starts."""
    check_dataset(dataset)
    mcfg = make_config(model, model_config or {})
    # the model's own preferred settings first (e.g. a GAN's learning rate), then the caller's
    tcfg = config_from_dict(TrainConfig, {**get_model_class(model).train_defaults, **(train or {})})
    resolve_device(tcfg.device)  # an unknown or absent device fails here, not in a worker
    return {"model": model, "dataset": dataset, "model_config": asdict(mcfg), "train": asdict(tcfg),
            "seed": tcfg.seed}


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
# the reconstruction family


def fixed_test_batch(dataset: Dataset, n: int = 16) -> torch.Tensor:
    """Indices of n test images, one of each class first, so every snapshot shows the same digits."""
    y = dataset.y_test
    first = []
    for c in range(max(len(dataset.classes), 0)):
        hits = (y == c).nonzero()
        if len(hits):
            first.append(int(hits[0]))
    taken = set(first)
    rest = [i for i in range(len(y)) if i not in taken]
    return torch.tensor((first + rest)[:n], dtype=torch.long)


class Trainer:
    """What every family trainer may add to the generic loop; the defaults do nothing."""

    def prepare(self, run: Run) -> None:
        """Work before the clock starts (a GAN's first run on a dataset trains the judge)."""

    def periodic_metrics(self, force: bool = False) -> dict:
        """Scores to log on a line of their own beside a snapshot, when due (or now when forced)."""
        return {}

    def status_notes(self) -> dict:
        """Fields for the final status.json (e.g. why a GAN has no judge scores)."""
        return {}


class ReconstructionTrainer(Trainer):
    """Adam on the model's own loss_step; snapshots of the fixed test batch's reconstructions."""

    def __init__(self, model, dataset: Dataset, cfg: TrainConfig, device: torch.device, runs_dir=None):
        self.model, self.cfg, self.device = model, cfg, device
        self.x_train = dataset.x_train.to(device)  # (N, 1, 28, 28), once
        self.y_train = dataset.y_train.to(device)
        self.x_test = dataset.x_test.to(device)
        self.y_test = dataset.y_test.to(device)
        self.dataset = dataset
        fixed = fixed_test_batch(dataset).to(device)
        self.snap_x, self.snap_y = self.x_test[fixed], self.y_test[fixed]
        self.eval_x = self.x_test[: cfg.eval_batch]
        self.eval_y = self.y_test[: cfg.eval_batch]
        self.optimizer = (torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                           weight_decay=cfg.weight_decay) if model.trainable else None)
        gen_device = device if device.type == "cuda" else torch.device("cpu")
        self.noise_gen = torch.Generator(device=gen_device).manual_seed(cfg.seed + 1)
        self.sample_seed = cfg.seed + 2  # seed of the fixed z for VAE sample grids

    @property
    def optimizers(self) -> dict:
        return {"adam": self.optimizer} if self.optimizer else {}

    @property
    def num_train(self) -> int:
        return len(self.x_train)

    def fit_closed_form(self) -> dict:
        self.model.fit(self.x_train, seed=self.cfg.seed)
        return {}

    def train_step(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.model.loss_step(self.x_train[idx], self.y_train[idx], generator=self.noise_gen)
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        self.optimizer.step()
        return out.logs

    @torch.inference_mode()
    def quick_eval(self) -> dict[str, float]:
        self.model.eval()
        gen = torch.Generator(device=self.noise_gen.device).manual_seed(0)
        logs = self.model.loss_step(self.eval_x, self.eval_y, generator=gen).logs
        self.model.train()
        return {f"test/{k}": float(v) for k, v in logs.items()}

    @torch.inference_mode()
    def snapshots(self) -> dict[str, bytes]:
        self.model.eval()
        out = {"recon": images.png_bytes(images.grid(self.model(self.snap_x, self.snap_y), ncol=8))}
        if getattr(self.model, "prior_samples", False):
            gen = torch.Generator().manual_seed(self.sample_seed)
            out["samples"] = images.png_bytes(images.grid(self.model.sample(64, generator=gen), ncol=8))
        self.model.train()
        return out

    def inputs_png(self) -> bytes:
        return images.png_bytes(images.grid(self.snap_x, ncol=8))

    @torch.inference_mode()
    def finish(self) -> None:
        """Fit the code distribution that sample() draws from (plain AEs), on the train split."""
        from engine.metrics import encode_all

        self.model.eval()
        self.model.fit_latent_stats(encode_all(self.model, self.x_train, self.y_train))

    def evaluate(self) -> dict[str, float]:
        from engine.metrics import evaluate

        metrics = evaluate(self.model, self.dataset, device=self.device)
        if self.cfg.classes:
            # A one-class run: its test split is whole (only the train split was filtered), so the
            # reconstruction error ranks normal against anomalous test images. A kNN classifier fitted
            # on codes of the normal classes alone never predicts the others: its accuracy would mislead.
            from engine.anomaly import run_auroc

            metrics.update(run_auroc(self.model, self.dataset, self.cfg.classes))
            metrics.pop("knn_accuracy", None)
        return metrics

    def load_state(self, header: dict, tensors: dict) -> None:
        state = load_optimizer_state(header, tensors, "adam")
        if self.optimizer and state:
            self.optimizer.load_state_dict(state)

    def apply_control(self, control: dict) -> dict:
        """Apply settings changed while training (control.json): the learning rate."""
        if self.optimizer and _positive(control.get("lr")):
            _set_lr(self.optimizer, control["lr"])
            return {"lr": control["lr"]}
        return {}


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = float(lr)


# ---------------------------------------------------------------------------------------------
# the adversarial family

GAN_GRID = 64  # samples in the fixed-z grid of an unconditional GAN (8 × 8)
CGAN_ROWS = 10  # rows of a conditional GAN's grid: one column per class, one row per fixed z


def fixed_noise(model, n: int, seed: int) -> torch.Tensor:
    """n codes z ~ N(0, I) that depend only on the seed: every snapshot shows the same z."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, model.config.latent_dim, generator=gen).to(model.device)


class AdversarialTrainer(Trainer):
    """Two Adams (generator, discriminator); snapshots of samples from a fixed z; judge scores.

    One step is one discriminator (critic) update on a real batch; every n_critic-th step the
    generator is updated too, on as many fresh samples.
    """

    def __init__(self, model, dataset: Dataset, cfg: TrainConfig, device: torch.device, runs_dir=None):
        self.model, self.cfg, self.device, self.dataset = model, cfg, device, dataset
        self.runs_dir = runs_dir
        self.x_train = dataset.x_train.to(device)
        self.y_train = dataset.y_train.to(device)
        self.x_test = dataset.x_test.to(device)[: cfg.eval_batch]
        self.y_test = dataset.y_test.to(device)[: cfg.eval_batch]
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(model.generator.parameters(), lr=cfg.lr, betas=betas)
        self.opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=cfg.lr_d or cfg.lr, betas=betas,
                                      weight_decay=cfg.weight_decay)
        gen_device = device if device.type == "cuda" else torch.device("cpu")
        self.gen = torch.Generator(device=gen_device).manual_seed(cfg.seed + 1)
        k = model.num_classes
        if model.conditional:  # columns are classes, rows are fixed codes
            self.grid_ncol = k
            z = fixed_noise(model, CGAN_ROWS, cfg.seed + 2)
            self.fixed_z = z.repeat_interleave(k, 0)  # (rows·K, latent_dim): row r shares one z
            self.fixed_y = torch.arange(k, device=device).repeat(CGAN_ROWS)
        else:
            self.grid_ncol = 8
            self.fixed_z, self.fixed_y = fixed_noise(model, GAN_GRID, cfg.seed + 2), None
        # the judge scores the same codes each time, so its curve shows the generator, not sampling noise
        self.judge_z = fixed_noise(model, cfg.judge_samples, cfg.seed + 3)
        self.judge_y = (torch.arange(cfg.judge_samples, device=device) % k) if model.conditional else None
        self.d_updates = 0
        self.last_g: dict[str, torch.Tensor] = {}
        self._judge = None
        self.judge_error: str | None = None  # why there are no judge scores (unlabelled data, a damaged judge…)
        self._judge_clock = _Clock(cfg.judge_every_s, time.perf_counter())

    @property
    def optimizers(self) -> dict:
        return {"g": self.opt_g, "d": self.opt_d}

    @property
    def num_train(self) -> int:
        return len(self.x_train)

    def _labels(self, idx: torch.Tensor) -> torch.Tensor | None:
        return self.y_train[idx] if self.model.conditional else None

    def d_step(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """One discriminator (critic) update on the real batch x[idx] and as many fakes."""
        model = self.model
        out = model.d_loss_step(self.x_train[idx], self._labels(idx), generator=self.gen)
        self.opt_d.zero_grad(set_to_none=True)
        out.loss.backward()
        norm = torch.nn.utils.get_total_norm([p.grad for p in model.discriminator.parameters() if p.grad is not None])
        self.opt_d.step()
        model.after_d_step()
        self.d_updates += 1
        return {**out.logs, "grad_norm_d": norm.detach()}

    def g_step(self, n: int) -> dict[str, torch.Tensor]:
        """One generator update on n fresh samples; the discriminator's weights stay as they are."""
        model = self.model
        model.discriminator.requires_grad_(False)
        try:
            out = model.g_loss_step(n, None, generator=self.gen)
            self.opt_g.zero_grad(set_to_none=True)
            out.loss.backward()
        finally:
            model.discriminator.requires_grad_(True)
        norm = torch.nn.utils.get_total_norm([p.grad for p in model.generator.parameters() if p.grad is not None])
        self.opt_g.step()
        self.last_g = {**out.logs, "grad_norm_g": norm.detach()}
        return self.last_g

    def train_step(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        logs = self.d_step(idx)
        if self.d_updates % self.model.n_critic == 0:
            self.g_step(len(idx))
        return {**logs, **self.last_g}  # between generator updates the last one's numbers carry over

    @torch.inference_mode()
    def quick_eval(self) -> dict[str, float]:
        """The discriminator on held-out real images (does it memorise the train split?) and the learning rates."""
        self.model.eval()
        logits = self.model.critic(self.x_test, self.y_test if self.model.conditional else None)
        self.model.train()
        key = "test/critic_real" if self.model.d_loss_kind == "wasserstein" else "test/d_real"
        value = logits.mean() if self.model.d_loss_kind == "wasserstein" else torch.sigmoid(logits).mean()
        return {key: float(value), "lr_g": self.opt_g.param_groups[0]["lr"], "lr_d": self.opt_d.param_groups[0]["lr"]}

    @torch.inference_mode()
    def snapshots(self) -> dict[str, bytes]:
        self.model.eval()
        x = self.model.generate(self.fixed_z, self.fixed_y)
        self.model.train()
        return {"samples": images.png_bytes(images.grid(x, ncol=self.grid_ncol))}

    def inputs_png(self) -> bytes:
        """Real training images beside the samples, for comparison."""
        gen = torch.Generator().manual_seed(self.cfg.seed)
        idx = torch.randperm(len(self.x_train), generator=gen)[: len(self.fixed_z)].to(self.device)
        return images.png_bytes(images.grid(self.x_train[idx], ncol=self.grid_ncol))

    def judge(self):
        """The dataset's judge classifier (trained once per dataset, then loaded); None when unusable."""
        if self._judge is None and self.cfg.judge:
            from engine.judge import load_judge

            try:
                self._judge = load_judge(self.dataset.name, self.runs_dir, device=self.device) or False
                if not self._judge:
                    self.judge_error = "this dataset has no class labels, so there is no judge classifier"
            except Exception as e:  # a judge is a bonus: training goes on without its scores, and says why
                self._judge = False
                self.judge_error = f"the judge classifier could not be loaded: {e}"
        return self._judge or None

    def prepare(self, run: Run) -> None:
        if not self.cfg.judge:
            return
        run.set_status(state="running", phase="preparing the judge classifier (once per dataset)")
        self.judge()
        run.set_status(state="running", phase="training", judge_error=self.judge_error)

    def status_notes(self) -> dict:
        return {"judge_error": self.judge_error} if self.judge_error else {}

    @torch.inference_mode()
    def periodic_metrics(self, force: bool = False) -> dict:
        """Judge scores of samples from the fixed judge codes, every judge_every_s (or now when forced)."""
        if not (force or self._judge_clock.due(time.perf_counter())):
            return {}
        judge = self.judge()
        if judge is None:
            return {}
        self.model.eval()
        x = torch.cat([self.model.generate(z, None if self.judge_y is None else self.judge_y[i:i + 250])
                       for i, z in zip(range(0, len(self.judge_z), 250), self.judge_z.split(250))])
        self.model.train()
        scores = judge.score(x, self.judge_y)
        return {f"judge/{k}": v for k, v in scores.items()}

    def finish(self) -> None:
        pass

    def evaluate(self) -> dict[str, float]:
        """The judge's scores of 2,000 samples, and the same for the untrained generator (same seed)."""
        if not self.cfg.judge or self.judge() is None:
            return {}
        from engine.judge import evaluate_generator
        from engine.models import build_model

        try:
            out = evaluate_generator(self.model, self.dataset.name, self.runs_dir, n=2000, seed=self.cfg.seed,
                                     device=self.device)
            torch.manual_seed(self.cfg.seed)  # the generator as it was before its first step
            untrained = build_model(self.model.registry_name, self.model.config).to(self.device)
            before = evaluate_generator(untrained, self.dataset.name, self.runs_dir, n=2000, seed=self.cfg.seed,
                                        device=self.device)
        except ValueError as e:  # e.g. a conditional model with other classes than the judge knows
            self.judge_error = f"the judge could not score this generator: {e}"
            return {}
        if "fid" in out and "fid" in before:
            out["fid_untrained"] = before["fid"]
            out["fid_ratio"] = out["fid"] / max(before["fid"], 1e-12)
        return {k: v for k, v in out.items() if not isinstance(v, list) or k == "class_hist"}

    def load_state(self, header: dict, tensors: dict) -> None:
        for name, opt in self.optimizers.items():
            state = load_optimizer_state(header, tensors, name)
            if state:
                opt.load_state_dict(state)
        self.d_updates = int(header.get("step", 0))

    def apply_control(self, control: dict) -> dict:
        """Learning rates changed while training: lr (the generator's) and lr_d (the discriminator's)."""
        applied = {}
        if _positive(control.get("lr")):
            _set_lr(self.opt_g, control["lr"])
            applied["lr"] = control["lr"]
        if _positive(control.get("lr_d")):
            _set_lr(self.opt_d, control["lr_d"])
            applied["lr_d"] = control["lr_d"]
        return applied


TRAINERS = {"reconstruction": ReconstructionTrainer, "adversarial": AdversarialTrainer}


# ---------------------------------------------------------------------------------------------
# the generic loop


class _Clock:
    """Fires at most every `period` seconds."""

    def __init__(self, period: float, now: float):
        self.period, self.last = period, now

    def due(self, now: float) -> bool:
        if now - self.last >= self.period:
            self.last = now
            return True
        return False


def _cancel_checker(run: Run, period: float = 0.2) -> Callable[[], bool]:
    """Checks the run's cancel file at most every `period` s (a stat per step would cost more)."""
    clock = _Clock(period, 0.0)
    state = {"cancel": False}

    def should_stop() -> bool:
        if not state["cancel"] and clock.due(time.perf_counter()):
            state["cancel"] = run.cancel_requested()
        return state["cancel"]

    return should_stop


def train_run(run: Run, *, resume: bool = False, should_stop: Callable[[], bool] | None = None,
              on_log: Callable[[dict], None] | None = None) -> dict:
    """Train the model run/config.json describes; returns the final metrics.

    Marks the run running, then done, cancelled (cancel file or should_stop), interrupted
    (KeyboardInterrupt) or failed (any exception, whose text lands in status.json, then re-raised).
    """
    should_stop = should_stop or _cancel_checker(run)
    pid = os.getpid()
    run.set_status(state="running", pid=pid, pid_start=process_start_time(pid), error=None,
                   started_at=time.time())
    try:
        return _train(run, resume, should_stop, on_log)
    except KeyboardInterrupt:
        run.set_status(state="interrupted", error="stopped by Ctrl-C; resume continues from the last checkpoint")
        raise
    except Exception as e:
        tail = "".join(traceback.format_exception(e)[-3:])
        run.set_status(state="failed", error=f"{type(e).__name__}: {e}\n{tail}")
        raise


def _train(run: Run, resume: bool, should_stop, on_log) -> dict:
    config = run.config
    cfg = config_from_dict(TrainConfig, config["train"])
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        set_cpu_threads(cfg.threads or None)
    dataset = load_dataset(config["dataset"]).only_classes(cfg.classes)
    model = build_model(config["model"], config["model_config"]).to(device).train()
    trainer = TRAINERS[model.kind](model, dataset, cfg, device, runs_dir=run.path.parent)
    run.set_status(device=describe_device(device), n_train=trainer.num_train)

    step, epoch, batch, elapsed_before = 0, 0, 0, 0.0  # batch: batches done in the current epoch
    if resume:
        ckpt = run.latest_checkpoint()
        if ckpt is None:
            run.truncate_metrics(-1)
        else:
            header, tensors = read_checkpoint(ckpt)
            model.load_state_dict(model_state(tensors))
            trainer.load_state(header, tensors)
            step, epoch, elapsed_before = header["step"], header["epoch"], header.get("elapsed", 0.0)
            batch = header.get("batch", 0)
            run.truncate_metrics(step)
    if not (run.path / "snapshots" / "inputs.png").exists():
        atomic_write_bytes(run.path / "snapshots" / "inputs.png", trainer.inputs_png())

    def header(elapsed: float) -> dict:
        return {"model": config["model"], "model_config": config["model_config"], "kind": model.kind,
                "dataset": config["dataset"], "epoch": epoch, "batch": batch, "elapsed": elapsed,
                "train": config["train"]}

    def checkpoint(elapsed: float) -> None:
        run.save_checkpoint(model, step, header(elapsed), trainer.optimizers, keep=cfg.keep_checkpoints)

    def snapshot(force_judge: bool = False) -> None:
        for kind, png in trainer.snapshots().items():
            run.save_snapshot(png, step, kind)
        scores = trainer.periodic_metrics(force_judge)
        if scores:  # a line of its own: e.g. the judge's scores of a GAN's samples at this step
            run.log({"step": step, "epoch": epoch, "elapsed": round(elapsed(), 3), **scores})

    control_seen = [None]  # the control.json timestamp last applied

    def apply_control() -> None:
        control = run.control()
        if control and control.get("updated_at") != control_seen[0]:
            control_seen[0] = control.get("updated_at")
            applied = trainer.apply_control(control)
            if applied:
                run.set_status(state="running", control=applied)

    start = [time.perf_counter()]  # restarted once the trainer is prepared
    elapsed = lambda: elapsed_before + time.perf_counter() - start[0]  # noqa: E731

    if not model.trainable:  # PCA: closed form, one "step"
        trainer.fit_closed_form()
        step, epoch = 1, 1
        snapshot()
        return _finish(run, trainer, checkpoint, elapsed_before, step, epoch, on_log)

    trainer.prepare(run)  # before the clock starts
    start[0] = time.perf_counter()
    max_epochs = cfg.max_epochs
    n = trainer.num_train
    batches_per_epoch = max(1, n // cfg.batch_size + (1 if n % cfg.batch_size > 1 else 0))
    now = time.perf_counter()
    log_clock, snap_clock, ckpt_clock, control_clock = (
        _Clock(p, now) for p in (cfg.log_every_s, cfg.snapshot_every_s, cfg.checkpoint_every_s, 0.5))
    apply_control()  # a run resumed after a learning-rate change keeps the changed rate
    acc: dict[str, torch.Tensor] = {}
    acc_n = 0
    rate_since = [time.perf_counter()]  # throughput is measured between log lines
    if step == 0:
        snapshot(force_judge=True)  # the untrained model: where the replay starts
        checkpoint(0.0)  # … for the latent map's replay too

    def progress(batch_in_epoch: int = 0) -> float:
        parts = []
        if max_epochs:
            parts.append((epoch + batch_in_epoch / batches_per_epoch) / max_epochs)
        if cfg.seconds:
            parts.append(elapsed() / cfg.seconds)
        return min(1.0, max(parts))

    def write_log(batch_in_epoch: int) -> None:
        nonlocal acc, acc_n
        record = {"step": step, "epoch": round(epoch + batch_in_epoch / batches_per_epoch, 4),
                  "elapsed": round(elapsed(), 3)}
        record.update({f"train/{k}": float(v) / max(acc_n, 1) for k, v in acc.items()})
        now = time.perf_counter()
        record["images_per_s"] = round(acc_n * cfg.batch_size / max(now - rate_since[0], 1e-9), 1)
        record.update(trainer.quick_eval())
        acc, acc_n = {}, 0
        rate_since[0] = time.perf_counter()
        run.log(record)
        run.set_status(state="running", step=step, epoch=epoch, progress=round(progress(batch_in_epoch), 4),
                       last_metrics={k: v for k, v in record.items() if k.startswith("test/")})
        if on_log:
            on_log(record)

    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in range(epoch):  # replay the permutations already used, so a resumed run continues the stream
        torch.randperm(n, generator=gen)
    budget_spent = lambda: bool(cfg.seconds) and elapsed() >= cfg.seconds  # noqa: E731
    cancelled = False
    while not (max_epochs and epoch >= max_epochs) and not budget_spent():
        perm = torch.randperm(n, generator=gen).to(trainer.device)
        for b in range(batch, batches_per_epoch):  # a resumed run skips the batches it already did
            logs = trainer.train_step(perm[b * cfg.batch_size:(b + 1) * cfg.batch_size])
            step += 1
            batch = b + 1
            acc_n += 1
            for k, v in logs.items():
                acc[k] = acc[k] + v if k in acc else v
            now = time.perf_counter()
            if log_clock.due(now):
                write_log(batch)
            if snap_clock.due(now):
                snapshot()
            if ckpt_clock.due(now):
                checkpoint(elapsed())
            if control_clock.due(now):
                apply_control()
            if should_stop():
                cancelled = True
                break
            if budget_spent():
                break
        else:
            epoch, batch = epoch + 1, 0  # only whole passes count as epochs
            continue
        break
    if acc_n:
        write_log(batch)
    snapshot(force_judge=True)
    if cancelled:
        checkpoint(elapsed())
        run.clear_cancel()
        run.set_status(state="cancelled", step=step, epoch=epoch, error=None)
        return {}
    return _finish(run, trainer, checkpoint, elapsed(), step, epoch, on_log)


def _finish(run: Run, trainer, checkpoint, elapsed: float, step: int, epoch: int, on_log) -> dict:
    trainer.finish()
    checkpoint(elapsed)
    metrics = trainer.evaluate()
    record = {"step": step, "epoch": epoch, "elapsed": round(elapsed, 3),
              **{f"eval/{k}": v for k, v in metrics.items()}}
    run.log(record)
    if on_log:
        on_log(record)
    run.set_status(state="done", step=step, epoch=epoch, progress=1.0, final_metrics=metrics,
                   finished_at=time.time(), error=None, **trainer.status_notes())
    return metrics
