"""A run's model loaded at one checkpoint, with what the pages need to know about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from engine.models import Capabilities
from engine.runs.checkpoints import checkpoint_problem
from engine.runs.files import RunError
from engine.runs.store import Run


@dataclass
class LoadedRun:
    """A run's model at one checkpoint, on the CPU in eval mode."""

    run_id: str
    step: int  # the checkpoint's training step
    model: torch.nn.Module
    config: dict  # the run's config.json
    header: dict = field(repr=False)  # the checkpoint's JSON header
    path: str = ""  # the run directory
    token: tuple = ()  # Run.checkpoint_token: the key of every cache of results derived from this checkpoint

    @property
    def model_name(self) -> str:
        return self.config["model"]

    @property
    def dataset(self) -> str:
        return self.config["dataset"]

    @property
    def capabilities(self) -> Capabilities:
        return self.model.capabilities

    @property
    def latent_dim(self) -> int:
        return int(self.model.config.latent_dim)

    @property
    def conditional(self) -> bool:
        return self.model.capabilities.conditional

    @property
    def num_classes(self) -> int:
        return int(self.model.num_classes)

    @property
    def train_classes(self) -> list[int] | None:
        """The classes the run trained on when it was restricted to some (one-class anomaly runs)."""
        classes = self.config["train"].get("classes")
        return classes if isinstance(classes, list) else None

    @property
    def label(self) -> str:
        return f"{self.run_id} ({self.model_name}, latent {self.latent_dim}, step {self.step:,})"


def nearest_step(steps: list[int], step: int | None) -> int | None:
    """The element of `steps` closest to `step` (the earlier one on a tie); None when steps is empty.

    With step None: the last one (the newest snapshot).
    """
    if not steps:
        return None
    if step is None:
        return steps[-1]
    return min(steps, key=lambda s: (abs(s - step), s))


def checkpoint_near(run: Run, step: int | None = None) -> tuple[int, Path]:
    """(step, path) of the checkpoint that loads nearest `step` (the newest that loads with None).

    A damaged checkpoint is passed over for the next nearest (a killed write, a damaged import); RunError when
    there is none, or when none loads (saying why the newest does not).
    """
    ckpts = dict(run.checkpoints())
    if not ckpts:
        raise RunError(f"run {run.id} has no checkpoint yet; wait for training to save one")
    order = sorted(ckpts, reverse=True) if step is None else sorted(ckpts, key=lambda s: (abs(s - step), s))
    for chosen in order:
        if checkpoint_problem(ckpts[chosen]) is None:
            return chosen, ckpts[chosen]
    raise RunError(f"no checkpoint of run {run.id} loads: {checkpoint_problem(ckpts[max(ckpts)])}")


def load_run(run: Run, step: int | None = None, **wanted: bool) -> LoadedRun:
    """The run's model at `step` (default: the newest checkpoint that loads) on the CPU, in eval mode.

    wanted: capabilities the model must have (e.g. encodes=True for a page that needs codes).
    Raises RunError with what to do when the run has no usable checkpoint or its model does not fit.
    """
    config = run.config
    if step is not None and checkpoint_problem(dict(run.checkpoints()).get(step, run.path / "none")) is not None:
        step = checkpoint_near(run, step)[0]  # that checkpoint is damaged (or gone): the nearest one that loads
    model, header = run.load_model(step=step, device="cpu")
    model.eval()
    if not model.capabilities.matches(**wanted):
        wanted_text = " and ".join(("" if v else "not ") + k.replace("_", " ") for k, v in wanted.items())
        raise RunError(f"run {run.id} is a {config['model']}, which is not {wanted_text}; pick another run")
    token = run.checkpoint_token(int(header["step"])) or (int(header["step"]),)
    return LoadedRun(run.id, int(header["step"]), model, config, header, str(run.path), token)


def checkpoint_steps(run: Run) -> list[int]:
    return [s for s, _ in run.checkpoints()]
