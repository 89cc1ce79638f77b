"""The training loop: one run directory in, its metrics, snapshots, checkpoints and status out.

`train_run(run)` is the one entry point (the CLI, the job workers and tests call it). `Loop` owns
what every model family shares — the budget (epochs, steps or seconds), the logging cadence, snapshots,
checkpoints, settings changed while training, cancellation and resuming — and calls the hooks
of the family trainer the model declares (engine.train.trainer).

Speed, for small models on a CPU: the dataset lives as one tensor on the training device and
batches are gathered by index (no DataLoader, no per-batch host→device copy); the per-step logs
stay tensors and become Python floats only when a line is written (one sync per log, not per step).

Two other loops stay outside on purpose: the judge (engine.eval.judge) is a fixed eight-epoch
recipe that runs inside another run's preparation and needs no snapshots, control, cancel or
resume; the 2-D GAN playground (engine.lab.gan_playground) is stepped by the page, a click at a time.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from engine.data import load_dataset
from engine.device import describe_device, resolve_device, set_cpu_threads
from engine.models import build_model
from engine.models.settings import config_from_dict
from engine.runs import (Run, RunError, atomic_write_bytes, finite, model_from_tensors, model_state, process_start_time,
                         read_checkpoint)
from engine.runs.files import scrub_paths, shown
from engine.runs.store import Superseded
from engine.runs.config import TrainConfig, check_own_data
from engine.train.adversarial import AdversarialTrainer
from engine.train.reconstruction import ReconstructionTrainer
from engine.train.sequences import SequenceTrainer
from engine.train.trainer import Clock, schedule_factor

TRAINERS = {"reconstruction": ReconstructionTrainer, "adversarial": AdversarialTrainer, "sequence": SequenceTrainer}
CONTROL_EVERY_S = 0.5  # how often control.json is read while training
CANCEL_EVERY_S = 0.2  # how often the cancel file is looked for (a stat per step would cost more)
# A metrics line scores eval_batch test images (conv_ae: 500 images ≈ 40 ms on a CPU thread, 12 % of the
# training time at a line every 0.5 s). Lines come every log_every_s, or further apart when that keeps
# their cost at most this share of the time: every line stays whole, training gets the rest. On a CPU the
# scoring runs on a thread of its own, on a copy of the weights, while the steps go on (the line is written
# when its scores are in, one line at a time, in order); the share still bounds the CPU it takes from others.
LOG_COST_SHARE = 0.04
LOG_GAP_MAX_S = 5.0  # … but a line at least this often (a big model's slow test scores still show up)


def timed(fn: Callable[[], dict]) -> tuple[dict, float]:
    """fn()'s result and the seconds it took (on the thread that ran it)."""
    t = time.perf_counter()
    return fn(), time.perf_counter() - t


def cancel_checker(run: Run, period: float = CANCEL_EVERY_S) -> Callable[[], bool]:
    """A should_stop() that sees the run's cancel file at most `period` s late."""
    clock, seen = Clock(period, 0.0), [False]

    def should_stop() -> bool:
        if not seen[0] and clock.due(time.perf_counter()):
            seen[0] = run.cancel_requested()
        return seen[0]

    return should_stop


def train_run(run: Run, *, resume: bool = False, should_stop: Callable[[], bool] | None = None,
              on_log: Callable[[dict], None] | None = None) -> dict:
    """Train the model run/config.json describes; returns the final metrics.

    Marks the run running, then done, cancelled (cancel file or should_stop), interrupted
    (KeyboardInterrupt) or failed (any exception, whose text lands in status.json, then re-raised).
    """
    _ = run.config  # a damaged config.json raises RunError here, before the run is marked running
    pid = os.getpid()
    run.set_status(state="running", pid=pid, pid_start=process_start_time(pid), error=None, started_at=time.time(),
                   phase="loading the data and building the model")
    try:
        return Loop(run, should_stop=should_stop or cancel_checker(run), on_log=on_log).run(resume)
    except KeyboardInterrupt:
        run.set_status(state="interrupted", error="stopped by Ctrl-C; resume continues from the last checkpoint")
        raise
    except Superseded:  # a newer start owns the run (a Ray job the manager gave up on): write nothing more
        raise
    except Exception as e:
        tail = "".join(traceback.format_exception(e)[-3:])  # every visitor sees it: no server paths in it
        run.set_status(state="failed", error=scrub_paths(f"{type(e).__name__}: {e}\n{tail}"))
        raise


class Loop:
    """One run's training: `run()` drives it; every other method is one step of that story."""

    def __init__(self, run: Run, should_stop: Callable[[], bool], on_log: Callable[[dict], None] | None = None):
        self.run_dir, self.should_stop, self.on_log = run, should_stop, on_log
        self.config = run.config
        check_own_data(self.config)  # before any data is read
        self.cfg = cfg = config_from_dict(TrainConfig, self.config["train"])
        torch.manual_seed(cfg.seed)  # the weights' initialisation
        self.device = resolve_device(cfg.device)
        if self.device.type == "cpu":
            set_cpu_threads(cfg.threads or None)
        dataset = load_dataset(self.config["dataset"]).only_classes(cfg.classes)
        self.model = build_model(self.config["model"], self.config["model_config"]).to(self.device).train()
        self.trainer = TRAINERS[self.model.trainer](self.model, dataset, cfg, self.device, runs_dir=run.path.parent)
        run.set_status(device=describe_device(self.device), n_train=self.trainer.num_train)
        self.step = self.epoch = self.batch = 0  # batch: batches done in the current epoch
        self.elapsed_before = 0.0  # training seconds of earlier sessions (a resumed run)
        self.started = time.perf_counter()  # restarted once the trainer is prepared
        self.acc: dict[str, torch.Tensor] = {}  # per-step logs summed since the last line
        self.acc_n = 0
        self.control_seen = None  # the control.json timestamp last applied
        # the metrics line whose test scores are being computed on the scorer thread: (record, status, future)
        self.pending: tuple[dict, dict, Future] | None = None
        # … on a CPU where training leaves a core for it: one torch thread training, more cores usable (with
        # more threads, two OpenMP teams would fight over the cores; MKL's thread count is the process's)
        spare_core = torch.get_num_threads() == 1 and len(os.sched_getaffinity(0)) > 1
        self.scorer = (ThreadPoolExecutor(1, "latent-lab-scores", initializer=torch.set_num_threads, initargs=(1,))
                       if self.device.type == "cpu" and spare_core else None)
        n, bs = self.trainer.num_train, cfg.batch_size
        self.batches_per_epoch = max(1, n // bs + (1 if n % bs > 1 else 0))  # a last batch of 1 is dropped

    # -- the story -----------------------------------------------------------------------------

    def run(self, resume: bool = False) -> dict:
        try:
            return self._run(resume)
        finally:
            if self.scorer:
                self.scorer.shutdown(wait=True, cancel_futures=True)

    def _run(self, resume: bool = False) -> dict:
        if resume:
            self.restore()
        inputs = self.run_dir.path / "snapshots" / "inputs.png"
        if not inputs.exists():
            atomic_write_bytes(inputs, self.trainer.inputs_png())
        if self.model.capabilities.closed_form:  # PCA: fitted at once, one "step"
            self.trainer.fit_closed_form()
            self.step, self.epoch = 1, 1
            self.snapshot()
            return self.finish()
        self.trainer.prepare(self.run_dir)  # before the clock starts (a GAN's judge)
        self.run_dir.set_status(phase="training")
        self.started = time.perf_counter()
        self.apply_control()  # a run resumed after a learning-rate change keeps the changed rate
        if self.step == 0:
            self.snapshot(force_judge=True)  # the untrained model: where the replay starts
            self.checkpoint(0.0)  # … for the latent map's replay too
        # the clock starts at the first step: a time budget is spent on training, not on the pictures above
        self.started = self.rate_since = time.perf_counter()  # throughput is measured between log lines
        self.clocks = {name: Clock(period, self.started) for name, period in (
            ("log", self.cfg.log_every_s), ("snapshot", self.cfg.snapshot_every_s),
            ("checkpoint", self.cfg.checkpoint_every_s), ("control", CONTROL_EVERY_S))}
        cancelled = self.train()
        if self.acc_n:
            self.write_log()
        self.flush_log()
        self.snapshot(force_judge=True)
        return self.cancel() if cancelled else self.finish()

    def restore(self) -> None:
        """Continue from the newest checkpoint that loads: weights, optimizer state, step, epoch, time; later
        lines go. A damaged newest checkpoint (a killed write, a damaged copy) falls back to the one before,
        as `eval` and the pages do; only when none loads does resume fail, saying why."""
        self.run_dir.remove_stale_temp_files(worker_gone=True)  # this process is the run's worker now
        ckpts = self.run_dir.checkpoints()
        if not ckpts:
            self.run_dir.truncate_metrics(-1)
            return
        skipped = []
        for step, ckpt in reversed(ckpts):
            try:
                self._restore_from(ckpt)
            except RunError as e:
                skipped.append((step, str(e)))
                continue
            if skipped:
                note = (f"resumed from the checkpoint at step {self.step:,}: the newer one(s) at step "
                        f"{', '.join(f'{s:,}' for s, _ in skipped)} did not load ({skipped[0][1]})")
                print(f"latent-lab: {note}", file=sys.stderr, flush=True)
                self.run_dir.set_status(resume_note=note)
            self.run_dir.truncate_metrics(self.step)
            return
        raise RunError(f"no checkpoint of run {self.run_dir.id} loads, so it cannot be resumed "
                       f"(the newest: {skipped[0][1]}); start a new run with its settings")

    def _restore_from(self, ckpt: Path) -> None:
        """Weights, optimizer state and counters from one checkpoint; RunError when it does not fit this run."""
        header, tensors = read_checkpoint(ckpt)
        model_from_tensors(ckpt, header, tensors)  # builds the model it describes: a lying header fails here
        step, epoch = finite(header.get("step")), finite(header.get("epoch"))
        elapsed, batch = finite(header.get("elapsed", 0.0)), finite(header.get("batch", 0))
        if None in (step, epoch, elapsed, batch) or min(step, epoch, elapsed, batch) < 0:
            raise RunError(f"checkpoint {shown(ckpt)} has no valid step, epoch, elapsed time or batch in its header")
        try:
            self.model.load_state_dict(model_state(tensors))
            self.trainer.load_state(header, tensors)
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as e:
            raise RunError(f"checkpoint {shown(ckpt)} does not fit this run's model or optimizer: "
                           f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        self.step, self.epoch = int(step), int(epoch)
        self.elapsed_before, self.batch = elapsed, int(batch)

    def train(self) -> bool:
        """Epochs until the budget is spent; True when cancelled."""
        cfg, n = self.cfg, self.trainer.num_train
        order = torch.Generator().manual_seed(cfg.seed)  # the batch order
        for _ in range(self.epoch):  # replay the permutations already used: a resumed run continues the stream
            torch.randperm(n, generator=order)
        while not self.budget_spent():
            perm = torch.randperm(n, generator=order).to(self.trainer.device)
            stop = self.train_epoch(perm)
            if stop:
                return stop == "cancelled"
            self.epoch, self.batch = self.epoch + 1, 0  # only whole passes count as epochs
        return False

    def train_epoch(self, perm: torch.Tensor) -> str | None:
        """The rest of one pass over `perm`; "cancelled" or "budget" when it stopped early, else None."""
        bs = self.cfg.batch_size
        for b in range(self.batch, self.batches_per_epoch):  # a resumed run skips the batches it already did
            if self.cfg.schedule != "constant":
                self.trainer.scale_lr(schedule_factor(self.cfg.schedule, self.progress()))
            logs = self.trainer.train_step(perm[b * bs:(b + 1) * bs])
            self.step, self.batch = self.step + 1, b + 1
            self.acc_n += 1
            for k, v in logs.items():
                self.acc[k] = self.acc[k] + v if k in self.acc else v
            self.on_schedule(time.perf_counter())
            if self.should_stop():
                return "cancelled"
            if self.seconds_spent() or self.steps_spent():
                return "budget"
        return None

    def on_schedule(self, now: float) -> None:
        """What is due after a step: a log line, a snapshot, a checkpoint, a look at control.json."""
        if self.pending and self.pending[2].done():
            self.flush_log()
        if self.clocks["log"].due(now):
            self.write_log()
        if self.clocks["snapshot"].due(now):
            self.snapshot()
        if self.clocks["checkpoint"].due(now):
            self.checkpoint()
        if self.clocks["control"].due(now):
            self.apply_control()

    # -- the budget ----------------------------------------------------------------------------

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def seconds_spent(self) -> bool:
        return bool(self.cfg.seconds) and self.elapsed() >= self.cfg.seconds

    def steps_spent(self) -> bool:
        return bool(self.cfg.steps) and self.step >= self.cfg.steps

    def budget_spent(self) -> bool:
        max_epochs = self.cfg.max_epochs
        return bool(max_epochs and self.epoch >= max_epochs) or self.seconds_spent() or self.steps_spent()

    def progress(self) -> float:
        """The share of the budget used: epochs, steps or seconds, whichever is furthest along."""
        parts = []
        if self.cfg.max_epochs:
            parts.append((self.epoch + self.batch / self.batches_per_epoch) / self.cfg.max_epochs)
        if self.cfg.steps:
            parts.append(self.step / self.cfg.steps)
        if self.cfg.seconds:
            parts.append(self.elapsed() / self.cfg.seconds)
        return min(1.0, max(parts))

    # -- what it writes ------------------------------------------------------------------------

    def write_log(self) -> None:
        """One metrics line: the mean of the steps' logs since the last one, throughput, the test scores."""
        record = {"step": self.step, "epoch": round(self.epoch + self.batch / self.batches_per_epoch, 4),
                  "elapsed": round(self.elapsed(), 3)}
        record.update({f"train/{k}": float(v) / max(self.acc_n, 1) for k, v in self.acc.items()})
        now = time.perf_counter()
        record["images_per_s"] = round(self.acc_n * self.cfg.batch_size / max(now - self.rate_since, 1e-9), 1)
        optimizers = list(self.trainer.optimizers.values())
        if len(optimizers) == 1:  # the learning rate now (a schedule moves it; a GAN logs its two itself)
            record["lr"] = optimizers[0].param_groups[0]["lr"]
        status = {"step": self.step, "epoch": self.epoch, "progress": round(self.progress(), 4)}
        self.flush_log()  # the line before, if its scores are still being computed
        self.acc, self.acc_n = {}, 0
        later = self.trainer.quick_eval_later() if self.scorer else None
        if later:
            self.pending = (record, status, self.scorer.submit(timed, later))
        else:
            self.emit_log(record, status, *timed(self.trainer.quick_eval))
        self.rate_since = time.perf_counter()

    def flush_log(self) -> None:
        """Write the line whose scores are on the scorer thread, waiting for them if need be."""
        if self.pending:
            (record, status, future), self.pending = self.pending, None
            self.emit_log(record, status, *future.result())

    def emit_log(self, record: dict, status: dict, scores: dict, cost: float) -> None:
        """A metrics line with its test scores: to metrics.jsonl, status.json (`status`: the step's) and on_log.
        The next line waits until this one's scoring took at most LOG_COST_SHARE of the gap."""
        self.clocks["log"].period = max(self.cfg.log_every_s, min(cost / LOG_COST_SHARE, LOG_GAP_MAX_S))
        record.update(scores)
        self.run_dir.log(record)
        self.run_dir.set_status(state="running", **status, elapsed=record["elapsed"],
                                last_metrics={k: v for k, v in record.items() if k.startswith("test/")})
        if self.on_log:
            self.on_log(record)

    def snapshot(self, force_judge: bool = False) -> None:
        for kind, png in self.trainer.snapshots().items():
            self.run_dir.save_snapshot(png, self.step, kind)
        scores = self.trainer.periodic_metrics(force_judge)
        if scores:  # a line of its own: e.g. the judge's scores of a GAN's samples at this step
            self.flush_log()  # after the line of an earlier step
            self.run_dir.log({"step": self.step, "epoch": self.epoch, "elapsed": round(self.elapsed(), 3), **scores})

    def checkpoint(self, elapsed: float | None = None) -> None:
        header = {"model": self.config["model"], "model_config": self.config["model_config"],
                  "kind": self.model.trainer, "dataset": self.config["dataset"], "epoch": self.epoch,
                  "batch": self.batch, "elapsed": self.elapsed() if elapsed is None else elapsed,
                  "train": self.config["train"]}
        self.run_dir.save_checkpoint(self.model, self.step, header, self.trainer.optimizers,
                                     keep=self.cfg.keep_checkpoints)

    def apply_control(self) -> None:
        """Settings changed while training (control.json, e.g. a GAN's learning rates), once per change."""
        control = self.run_dir.control()
        if control and control.get("updated_at") != self.control_seen:
            self.control_seen = control.get("updated_at")
            applied = self.trainer.apply_control(control)
            if applied:
                self.run_dir.set_status(state="running", control=applied)

    # -- the end -------------------------------------------------------------------------------

    def cancel(self) -> dict:
        self.flush_log()
        self.checkpoint()
        self.run_dir.clear_cancel()
        self.run_dir.set_status(state="cancelled", step=self.step, epoch=self.epoch, error=None)
        return {}

    def finish(self) -> dict:
        """The trainer's last fitting, a checkpoint, the eval/* scores (a line and the final status)."""
        elapsed = self.elapsed_before if self.model.capabilities.closed_form else self.elapsed()
        self.trainer.finish()
        self.checkpoint(elapsed)
        metrics = self.trainer.evaluate()
        record = {"step": self.step, "epoch": self.epoch, "elapsed": round(elapsed, 3),
                  **{f"eval/{k}": v for k, v in metrics.items()}}
        self.run_dir.log(record)
        if self.on_log:
            self.on_log(record)
        self.run_dir.set_status(state="done", step=self.step, epoch=self.epoch, progress=1.0, final_metrics=metrics,
                                finished_at=time.time(), error=None, **self.trainer.status_notes())
        return metrics
