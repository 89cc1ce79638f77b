"""The GAN studio's engine: a GAN run's timeline, its generator at a checkpoint, slow motion.

What the studio page draws comes from here, as plain numbers, arrays and PNG bytes:

- the timeline: the steps of the fixed-z sample snapshots, the metric curves from metrics.jsonl
  (losses, D(x) and D(G(z)), the judge's FID-style distance and inception-style score, learning
  rates), the judge's class histogram at a step and whether it shows mode collapse;
- a run's generator at the checkpoint nearest a step: samples (of one class for a cGAN), a strip
  interpolated between two codes z, and the samples next to their nearest training images
  (memorisation check);
- `SlowMotion`: a checkpoint loaded into an `AdversarialTrainer`, stepped one discriminator or
  generator update at a time on a fixed batch order, with what to draw after each click.

Everything runs on the CPU in this process (the app's), never touches Streamlit.
"""

from __future__ import annotations

import math

import contextlib
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from engine.data import Dataset, load_dataset
from engine.data.images import grid_png
from engine.eval.codes import interpolate
from engine.eval.judge import load_judge
from engine.models import is_model
from engine.models.settings import config_from_dict
from engine.runs import MetricsLog, Run, RunError, Snapshot, TrainConfig, model_from_tensors, read_checkpoint
from engine.runs.loaded import LoadedRun, checkpoint_near, load_run, nearest_step
from engine.train.adversarial import AdversarialTrainer, fixed_noise

# ---------------------------------------------------------------------------------------------
# which runs are GANs


def is_gan_config(config: dict | None) -> bool:
    """True when a run's config.json names a registered adversarial model."""
    return is_model((config or {}).get("model"), adversarial=True)


def gan_runs(runs: list[Run]) -> list[Run]:
    """The runs among `runs` whose model is a GAN (order kept); unreadable ones are left out."""
    out = []
    for run in runs:
        try:
            config = run.config
        except (RunError, OSError):
            continue
        if is_gan_config(config):
            out.append(run)
    return out


def is_conditional(config: dict | None) -> bool:
    """True when a run's model is a conditional GAN (it takes a class y)."""
    return is_model((config or {}).get("model"), adversarial=True, conditional=True)


# ---------------------------------------------------------------------------------------------
# the timeline: snapshots and curves


def nearest_snapshot(snapshots: list[Snapshot], step: int | None) -> Snapshot | None:
    """The snapshot taken nearest `step`: how two runs are shown at the same timeline position."""
    by_step = {s.step: s for s in snapshots}
    chosen = nearest_step(sorted(by_step), step)
    return None if chosen is None else by_step[chosen]


def lr_history(records: MetricsLog) -> dict[str, tuple[list[int], list[float]]]:
    """The learning rates each log line recorded: {"lr_g": (steps, values), "lr_d": (steps, values)}."""
    return {key: records.series(key) for key in ("lr_g", "lr_d")}


def judge_records(records: list[dict]) -> list[dict]:
    """The judge's lines (and the final eval line, as judge/… keys), in step order."""
    out = []
    for r in records:
        if not isinstance(r.get("step"), (int, float)):
            continue
        if any(k.startswith("judge/") for k in r):
            out.append(r)
        elif any(k.startswith("eval/") for k in r) and "eval/class_hist" in r:
            out.append({"step": r["step"], **{f"judge/{k[5:]}": v for k, v in r.items() if k.startswith("eval/")},
                        "final": True})
    return sorted(out, key=lambda r: r["step"])


def judge_at(records: list[dict], step: int | None) -> dict | None:
    """The judge's line nearest `step` (None for the newest); None when the judge never scored this run."""
    lines = judge_records(records)
    chosen = nearest_step([int(r["step"]) for r in lines], step)
    if chosen is None:
        return None
    return next(r for r in reversed(lines) if int(r["step"]) == chosen)


def class_histogram(judge_line: dict | None) -> list[float] | None:
    """The judged class shares of the samples (K fractions that sum to 1), or None."""
    hist = (judge_line or {}).get("judge/class_hist")
    if isinstance(hist, list) and hist and all(isinstance(v, (int, float)) for v in hist):
        return [float(v) for v in hist]
    return None


LEARNED_FID_SHARE = 0.5  # a generator has learned once its FID is at most half its untrained FID


def fid_share(records: list[dict], judge_line: dict | None) -> float | None:
    """The line's FID as a share of the untrained generator's (the step-0 judge line); None without both."""
    untrained = [r for r in judge_records(records) if int(r["step"]) == 0]
    first = untrained[-1] if untrained else None  # the last written, as judge_at takes
    fid, fid0 = ((judge_line or {}).get("judge/fid"), (first or {}).get("judge/fid"))
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (fid, fid0)) or fid0 <= 0:
        return None
    return fid / fid0


def collapse_warning(judge_line: dict | None, num_classes: int | None = None, share: float | None = None) -> str | None:
    """A sentence when the judge's histogram shows mode collapse, else None.

    Collapse: the judge names collapsed classes (judge/mode_collapse non-empty: classes the
    samples hardly ever show) or fewer than K − 1 classes are covered at all — once the generator
    has learned (`share`, its FID as a share of the untrained one's, at most LEARNED_FID_SHARE).
    Before that its samples are noise or blurs that the judge files under a few classes: that is
    not collapse, and saying so would teach the wrong lesson.
    """
    if share is not None and share > LEARNED_FID_SHARE:
        return None
    if not judge_line:
        return None
    hist = class_histogram(judge_line)
    k = num_classes or (len(hist) if hist else None)
    missing = judge_line.get("judge/mode_collapse")
    missing = [int(c) for c in missing if isinstance(c, (int, float))] if isinstance(missing, list) else []
    covered = judge_line.get("judge/classes_covered")
    few = isinstance(covered, (int, float)) and k is not None and covered < k - 1
    if not missing and not few:
        return None
    parts = []
    if few:
        parts.append(f"the samples cover only {int(covered)} of {k} classes")
    if missing:
        parts.append(f"class{'es' if len(missing) > 1 else ''} {', '.join(map(str, missing))} "
                     f"{'are' if len(missing) > 1 else 'is'} (almost) never generated")
    return "Mode collapse: " + "; ".join(parts) + "."


# ---------------------------------------------------------------------------------------------
# a run's generator at a checkpoint


def load_gan(run: Run, step: int | None = None) -> LoadedRun:
    """The run's GAN at the checkpoint nearest `step` (the newest with None), CPU, eval mode.

    Raises RunError with what to do when the run is not a GAN or has no usable checkpoint.
    """
    config = run.config
    if not is_gan_config(config):
        raise RunError(f"run {run.id} is a {config.get('model')!r}, not a GAN; pick a GAN run")
    step, _ = checkpoint_near(run, step)
    return load_run(run, step, adversarial=True)


def codes(latent_dim: int, seeds) -> torch.Tensor:
    """One code z ~ N(0, I) per seed, (len(seeds), latent_dim): a seed names a code, so a link restores it."""
    return torch.stack([torch.randn(latent_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


def _labels(loaded: LoadedRun, y, n: int) -> torch.Tensor | None:
    if not loaded.conditional or y is None:
        return None
    y = int(y)
    if not 0 <= y < loaded.num_classes:
        raise ValueError(f"class {y} is out of range: this cGAN knows classes 0–{loaded.num_classes - 1}")
    return torch.full((n,), y, dtype=torch.long)


@torch.inference_mode()
def samples(loaded: LoadedRun, n: int, seed: int = 0, y: int | None = None) -> np.ndarray:
    """n images (n, 28, 28) in [0, 1] from seeded codes z (of class y for a cGAN; all classes in turn when None)."""
    gen = torch.Generator().manual_seed(int(seed))
    z = torch.randn(n, loaded.latent_dim, generator=gen)
    return loaded.model.generate(z, _labels(loaded, y, n))[:, 0].numpy()


@torch.inference_mode()
def interpolation(loaded: LoadedRun, seed0: int, seed1: int, steps: int = 10, method: str = "slerp",
                  y: int | None = None) -> np.ndarray:
    """Images (steps, 28, 28) along the path from the code of seed0 to that of seed1 (y fixed for a cGAN).

    slerp keeps the path at the norm typical of Gaussian codes (engine.eval.codes.interpolate).
    """
    z0, z1 = codes(loaded.latent_dim, [seed0, seed1]).numpy()
    z = torch.as_tensor(interpolate(z0, z1, steps, method), dtype=torch.float32)  # (steps, latent_dim)
    return loaded.model.generate(z, _labels(loaded, y, steps))[:, 0].numpy()


# ---------------------------------------------------------------------------------------------
# memorisation: the samples next to their nearest training images


def judge_for(dataset: str, runs_dir) -> tuple[object | None, str | None]:
    """(the dataset's judge classifier, None) or (None, why there is none); never raises, never trains one.

    Training a judge is the first judged GAN run's job (in its worker), not the app's.
    """
    try:
        judge = load_judge(dataset, runs_dir, train_if_missing=False)
    except Exception as e:
        return None, f"the judge for {dataset} cannot be loaded: {type(e).__name__}: {e}"
    if judge is None:
        return None, (f"no judge classifier has been trained for {dataset} yet (the first GAN run with the "
                      "training setting judge on trains it)")
    return judge, None


@torch.inference_mode()
def nearest_train_pixels(x: torch.Tensor, x_train: torch.Tensor, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(distances, indices), each (B,): the training image nearest each of x (B, 1, 28, 28), Euclidean in pixels."""
    ref = x_train.flatten(1).float()
    queries = x.flatten(1).float()
    idx = torch.cat([torch.cdist(chunk, ref).argmin(1) for chunk in queries.split(batch)])  # (B,)
    # cdist's matrix-product form loses digits near 0 (a copy of a training image): measure the pairs exactly
    dist = (queries - ref[idx]).norm(dim=1)
    return dist.numpy(), idx.numpy()


@dataclass
class Memorisation:
    samples: np.ndarray  # (B, 28, 28) generated images
    nearest: np.ndarray  # (B, 28, 28) the training image nearest each one
    distances: np.ndarray  # (B,) L2 pixel distances
    indices: np.ndarray  # (B,) indices into the train split
    reference: float | None = None  # the mean distance of real test images to their nearest training image

    def pair_png(self, i: int, scale: int = 3) -> bytes:
        """Sample i above its nearest training image, as one PNG."""
        return grid_png(np.stack([self.samples[i], self.nearest[i]]), ncol=1, scale=scale)

    def closer_than_real(self, i: int, factor: float = 0.5) -> bool:
        """Sample i lies much nearer the training split than real test images do: a memorisation suspect."""
        return self.reference is not None and self.distances[i] < factor * self.reference


REFERENCE_IMAGES = 200  # real test images behind the reference distance when there is no judge to ask


@torch.inference_mode()
def memorisation(loaded: LoadedRun, dataset: Dataset, n: int = 8, seed: int = 0, judge=None) -> Memorisation:
    """n samples next to their nearest training images, with the L2 pixel distances.

    The reference is the same distance for real test images (the judge's nn_distance_real, the
    value its judge/nn_distance curve is compared with): a sample much closer to the training
    split than unseen real images are has likely been memorised. Without a judge the same
    distances are computed here. dataset: the run's whole dataset (the judge's indices are into
    its train split).
    """
    x = torch.as_tensor(samples(loaded, n, seed))[:, None]  # (n, 1, 28, 28)
    if judge is not None:
        dist, idx = judge.nearest_train(x)
        reference = judge.nn_distance_real()
    else:
        dist, idx = nearest_train_pixels(x, dataset.x_train)
        reference = float(nearest_train_pixels(dataset.x_test[:REFERENCE_IMAGES], dataset.x_train)[0].mean())
    idx = np.asarray(torch.as_tensor(idx).cpu()).astype(int)
    dist = np.asarray(torch.as_tensor(dist).cpu(), dtype=float)
    return Memorisation(x[:, 0].numpy(), dataset.x_train[idx][:, 0].numpy(), dist, idx, float(reference))


# ---------------------------------------------------------------------------------------------
# slow motion


@contextlib.contextmanager
def _buffers_kept(module: torch.nn.Module):
    """Run a forward pass in train mode without it moving BatchNorm's running statistics."""
    saved = {name: b.clone() for name, b in module.named_buffers()}
    try:
        yield
    finally:
        with torch.no_grad():
            for name, b in module.named_buffers():
                if name in saved:
                    b.copy_(saved[name])


@dataclass
class Frame:
    """What slow motion shows after a click."""

    click: int  # clicks so far (0: the checkpoint as loaded)
    action: str  # "load", "d", "g" or "both"
    d_updates: int  # discriminator updates since the checkpoint
    g_updates: int  # generator updates since the checkpoint
    d_real: float  # D(x) on the probe's real images (a WGAN critic: the mean score f(x))
    d_fake: float  # D(G(z)) on the probe's fixed codes (a WGAN critic: f(G(z)))
    d_loss: float | None = None  # the discriminator's loss at its last update (on that update's batch)
    g_loss: float | None = None  # the generator's loss at its last update
    grid: bytes = field(default=b"", repr=False)  # PNG of G(fixed z), the run's snapshot grid


class SlowMotion:
    """A GAN run's checkpoint in an in-process trainer, stepped one update at a time.

    The discriminator and the generator are updated exactly as in training (the run's
    optimizers, with their state from the checkpoint, and its learning rates), on a fixed batch
    order: the same checkpoint and the same clicks give the same numbers. After each click
    `frame()` reports the sample grid of the run's fixed z, D(x) on a fixed probe of real images
    and D(G(z)) on fixed probe codes, measured as training measures them (train mode, BatchNorm on
    the batch) without disturbing the running statistics.
    """

    def __init__(self, run: Run, step: int | None = None, dataset: Dataset | None = None, probe: int = 64):
        config = run.config
        if not is_gan_config(config):
            raise RunError(f"run {run.id} is a {config.get('model')!r}, not a GAN")
        self.run_id = run.id
        self.checkpoint_step, path = checkpoint_near(run, step)
        header, tensors = read_checkpoint(path)
        cfg = replace(config_from_dict(TrainConfig, config["train"]), judge=False, device="cpu")
        if dataset is None:
            dataset = load_dataset(config["dataset"])
        dataset = dataset.only_classes(cfg.classes)
        model = model_from_tensors(path, header, tensors)
        self.model = model.train()
        self.trainer = AdversarialTrainer(model, dataset, cfg, torch.device("cpu"))
        self.trainer.load_state(header, tensors)
        self.batch_size = min(cfg.batch_size, self.trainer.num_train)
        gen = torch.Generator().manual_seed(cfg.seed + self.checkpoint_step)
        self._order = torch.randperm(self.trainer.num_train, generator=gen)  # the fixed batch order
        self._cursor = 0
        # the probe D(x) and D(G(z)) are measured on after every click: fixed real images and fixed codes
        probe = min(probe, self.trainer.num_train)
        order = torch.randperm(self.trainer.num_train, generator=torch.Generator().manual_seed(cfg.seed))
        self._probe_idx = order[:probe]
        self._probe_z = fixed_noise(model, probe, cfg.seed + 4)  # (probe, latent_dim)
        self.wasserstein = model.capabilities.wasserstein
        self.d_updates = self.g_updates = 0
        self._d_loss: float | None = None
        self._g_loss: float | None = None
        self.history: list[Frame] = []  # one frame per click; only the newest keeps its grid
        self._record("load")

    @property
    def learning_rates(self) -> dict[str, float]:
        return {"lr_g": self.trainer.opt_g.param_groups[0]["lr"], "lr_d": self.trainer.opt_d.param_groups[0]["lr"]}

    def _next_batch(self) -> torch.Tensor:
        if self._cursor + self.batch_size > len(self._order):
            self._cursor = 0
        idx = self._order[self._cursor:self._cursor + self.batch_size]
        self._cursor += self.batch_size
        return idx

    def step_d(self) -> Frame:
        logs = self.trainer.d_step(self._next_batch())
        self.d_updates += 1
        self._d_loss = float(logs["d_loss"])
        return self._record("d")

    def step_g(self) -> Frame:
        logs = self.trainer.g_step(self.batch_size)
        self.g_updates += 1
        self._g_loss = float(logs["g_loss"])
        return self._record("g")

    def step_both(self) -> Frame:
        """One discriminator update, then one generator update: a training step with n_critic = 1."""
        self._d_loss = float(self.trainer.d_step(self._next_batch())["d_loss"])
        self._g_loss = float(self.trainer.g_step(self.batch_size)["g_loss"])
        self.d_updates += 1
        self.g_updates += 1
        return self._record("both")

    def step(self, action: str) -> Frame:
        """action: "d" (discriminator), "g" (generator) or "both"."""
        steps = {"d": self.step_d, "g": self.step_g, "both": self.step_both}
        if action not in steps:
            raise ValueError(f"action must be one of {', '.join(steps)}, not {action!r}")
        return steps[action]()

    def _record(self, action: str) -> Frame:
        frame = self.frame(action)
        if self.history:
            self.history[-1].grid = b""  # the chart needs the numbers only: a long session keeps no old PNGs
        self.history.append(frame)
        return frame

    @torch.no_grad()
    def frame(self, action: str = "now") -> Frame:
        """What to draw now: the grid of G(fixed z), D on the probe, the last losses (nothing is updated)."""
        model, trainer = self.model, self.trainer
        y = trainer.y_train[self._probe_idx] if model.capabilities.conditional else None
        with _buffers_kept(model):  # train mode, as the losses see D; the running statistics stay put
            real = model.d_output(model.critic(trainer.x_train[self._probe_idx], y))
            fake = model.d_output(model.critic(model.generate(self._probe_z, y), y))
        grid = trainer.snapshots()["samples"]  # eval mode, the run's own fixed z: its snapshot grid
        model.train()
        return Frame(len(self.history), action, self.d_updates, self.g_updates,
                     float(real.mean()), float(fake.mean()), self._d_loss, self._g_loss, grid)
