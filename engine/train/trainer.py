"""What a family trainer provides to the loop (engine.train.loop), and helpers the families share.

The loop owns the budget, the logging cadence, cancellation, checkpoints and resuming; a family
trainer (one per `trainer` name a model declares) owns its optimizers, its step, its snapshots and
its evaluation. Every method below is a hook the loop calls; the defaults do nothing.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import sys
from collections.abc import Callable

import torch

from engine.data import Dataset
from engine.models.conv_ae import Unflatten
from engine.runs import Run, finite


class Clock:
    """Fires at most every `period` seconds."""

    def __init__(self, period: float, now: float):
        self.period, self.last = period, now

    def due(self, now: float) -> bool:
        if now - self.last >= self.period:
            self.last = now
            return True
        return False


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

    def quick_eval_later(self) -> Callable[[], dict[str, float]] | None:
        """A callable giving quick_eval's scores of the model as it is now, which the loop calls on another thread
        while training goes on (ReconstructionTrainer's scores a copy of the weights); None (this default): the
        loop calls quick_eval itself, between steps."""
        return None

    def scale_lr(self, factor: float) -> None:
        """Every optimizer's learning rates at `factor` × their base (a schedule's step)."""
        for optimizer in self.optimizers.values():
            scale_lr(optimizer, factor)

    # The hooks every family defines (see ReconstructionTrainer for the reference):
    #   optimizers -> {name: optimizer}     saved in checkpoints, restored by load_state
    #   num_train -> int                    training examples (an epoch's length)
    #   train_step(idx) -> {name: tensor}   one update on the batch x_train[idx]; detached logs
    #   quick_eval() -> {name: float}       test/* scores for each log line (quick_eval_later: see above)
    #   snapshots() -> {kind: png bytes}    the fixed-input pictures of this step
    #   inputs_png() -> png bytes           what the snapshots are compared with
    #   finish(), evaluate() -> {name: v}   after the last step: final fitting, then the eval/* scores
    #   load_state(header, tensors)         a checkpoint's optimizer state (resume)
    #   apply_control(control) -> applied   settings changed while training (control.json)


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


# ---------------------------------------------------------------------------------------------
# the optimizer and the memory layout, chosen for speed (same arithmetic, fewer and faster kernels)

# torch.optim imports torch._dynamo (≈ 1.3 s, a third of a worker's start-up) on the first step() and
# zero_grad(): each is wrapped to tell a compiler not to trace it. Nothing compiles in a worker, so those
# wrappers run the plain method until something in the process has imported torch._dynamo itself; from
# then on they are torch's own again. Only names that exist are touched: another torch keeps its own.
_DYNAMO_WRAPPED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


def _lazy_dynamo_disable(fn):
    def call(*args, **kwargs):
        if "torch._dynamo" in sys.modules:  # a compiler is about: let torch decide, as it would have
            import torch._dynamo

            fn.__dynamo_disable = torch._dynamo.disable(fn, recursive=True, wrapping=False)
            return fn.__dynamo_disable(*args, **kwargs)
        return fn(*args, **kwargs)

    return call


def _defer_dynamo_import() -> None:
    if "torch._dynamo" in sys.modules:
        return
    for name in _DYNAMO_WRAPPED:
        inner = getattr(getattr(torch.optim.Optimizer, name, None), "__wrapped__", None)
        if callable(inner) and getattr(inner, "__dynamo_disable", None) is None:
            inner.__dynamo_disable = _lazy_dynamo_disable(inner)


_ADAM_STEP = inspect.unwrap(torch.optim.Adam.step)  # the update itself, under torch's graph-break wrapper


class Adam(torch.optim.Adam):
    """torch's Adam, whose step() skips the torch._dynamo import while nothing in the process compiles, and
    whose moments keep their parameter's memory layout (channels_last) in memory, contiguous in checkpoints."""

    def step(self, closure=None):
        if "torch._dynamo" in sys.modules or self.defaults.get("differentiable"):
            return super().step(closure)
        with torch.no_grad():  # what torch's wrapper does around the update, less its graph breaks
            return _ADAM_STEP(self, closure)

    def state_dict(self):
        state = super().state_dict()  # its per-parameter dicts are the live ones: copied, not changed
        state["state"] = {pid: {k: v.contiguous() if torch.is_tensor(v) else v for k, v in st.items()}
                          for pid, st in state["state"].items()}
        return state

    def load_state_dict(self, state_dict) -> None:
        super().load_state_dict(state_dict)
        for p, st in self.state.items():  # a fused update wants each moment laid out as its parameter
            for k, v in st.items():
                if torch.is_tensor(v) and v.shape == p.shape and v.stride() != p.stride():
                    st[k] = torch.empty_like(p).copy_(v)


def adam(params, device: torch.device, lr: float, betas: tuple[float, float], weight_decay: float = 0.0):
    """Adam with its fused kernel where torch has one (CPU, CUDA): one kernel for every tensor's update
    instead of ~10 small ops per tensor (conv_ae: 0.3 against 1.2 ms a step on one CPU thread). The same
    update rule; the last bits of a float may differ from the per-tensor loop's, and a run stays the same
    for its seed."""
    _defer_dynamo_import()
    fused = device.type in ("cpu", "cuda")
    return Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=fused or None)


def memory_format(model: torch.nn.Module, device: torch.device) -> torch.memory_format:
    """channels_last for convolutional models on CPU/CUDA (oneDNN's and cuDNN's preferred layout: the same
    convolutions; conv_ae's step on one CPU thread here, as a share of the plain loop's step, medians of 7–9
    interleaved measurements on a busy shared machine: 0.89 against 0.95 contiguous in float32, 0.79 against 0.81
    in bfloat16), contiguous for everything else."""
    convs = any(isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for m in model.modules())
    return torch.channels_last if convs and device.type in ("cpu", "cuda") else torch.contiguous_format


# The convolutions' precision while training (CPU): bfloat16 where the CPU multiplies it natively (Intel's
# AVX512-BF16 / AMX, AMD's Zen 4+). torch.autocast runs the convolutions and linear layers in bfloat16 (8 bits of
# mantissa), and the activations between them stay so; the weights, their gradients, Adam, BatchNorm's running
# statistics and the loss stay float32. Read once: the CPU does not change while a process runs.
# LATENT_LAB_CPU_BF16=0 turns it off.
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def native_cpu_bf16() -> bool:
    if os.environ.get("LATENT_LAB_CPU_BF16", "1").strip() in ("0", "false", "no", "off"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:  # not Linux: no way to tell here, so float32
        return False
    return any(flag in flags for flag in _CPU_BF16_FLAGS)


def autocast_dtype(model: torch.nn.Module, device: torch.device) -> torch.dtype | None:
    """bfloat16 for a convolutional model's training step on a CPU with native bfloat16, else None (float32).

    conv_ae on one thread of this project's 2-core Xeon (AMX), channels_last: the step 0.79 of the plain loop's
    against 0.89 in float32 (medians of 7 interleaved measurements); the starter's recipe (800 steps of 64,
    one-cycle to 1e-2), seeds 1–3, ended at test MSE ÷ PCA(32) 0.390, 0.390, 0.386 against 0.390, 0.389, 0.386.
    Test scores, snapshots and the final evaluation stay float32 (the weights are float32 throughout). Not for
    variational models: their loss sums 784 pixels and the KL per image in the decoder's dtype, which bfloat16
    would round to 3 digits."""
    if (device.type != "cpu" or memory_format(model, device) is not torch.channels_last
            or getattr(getattr(model, "capabilities", None), "variational", False) or not native_cpu_bf16()):
        return None
    return torch.bfloat16


def to_memory_format(model: torch.nn.Module, layout: torch.memory_format) -> None:
    """The model's weights in `layout`, and the layers that make images from flat vectors (conv_ae's Unflatten)
    told to make them in it too."""
    model.to(memory_format=layout)
    for m in model.modules():
        if isinstance(m, Unflatten):
            m.memory_format = layout


def positive(v) -> bool:
    v = finite(v)
    return v is not None and v > 0


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """A new base learning rate (a schedule scales it from now on)."""
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] = float(lr)


def scale_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Each group's learning rate set to its base rate × factor (the base is the configured one, or set_lr's)."""
    for group in optimizer.param_groups:
        group["lr"] = group.setdefault("base_lr", group["lr"]) * factor


# ---------------------------------------------------------------------------------------------
# learning-rate schedules over the budget (progress p from 0 to 1, whichever budget the run has)

ONE_CYCLE_WARMUP = 0.3  # the share of the budget spent warming up (as torch's OneCycleLR's pct_start)
ONE_CYCLE_START = 1 / 25  # the first rate as a share of the peak (OneCycleLR's div_factor 25)
ONE_CYCLE_END = 1e-4  # the last rate as a share of the peak (1/10,000, near OneCycleLR's default end)


def schedule_factor(schedule: str, progress: float) -> float:
    """The learning rate's share of its configured peak at `progress` ∈ [0, 1] of the budget.

    constant   1 throughout
    one_cycle  cosine warm-up from 1/25 of the peak to the peak over the first 30 % of the budget, then a
               cosine anneal to 1/10,000 of it at the end (Smith & Topin 2018; torch's OneCycleLR's shape).
               It knows the budget through `progress`: a step or epoch budget makes it exact and
               reproducible, a time budget follows the clock.
    """
    if schedule == "constant":
        return 1.0
    p = min(max(progress, 0.0), 1.0)
    if p < ONE_CYCLE_WARMUP:
        return ONE_CYCLE_START + (1 - ONE_CYCLE_START) * (1 - math.cos(math.pi * p / ONE_CYCLE_WARMUP)) / 2
    q = (p - ONE_CYCLE_WARMUP) / (1 - ONE_CYCLE_WARMUP)
    return ONE_CYCLE_END + (1 - ONE_CYCLE_END) * (1 + math.cos(math.pi * q)) / 2

