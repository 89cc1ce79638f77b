"""Typed readers of a run's status.json and metrics.jsonl.

Both files are written by other processes (a worker, an older or newer Latent Lab, an imported
archive), so nothing read from them is trusted: `finite` is the one place that turns a JSON value
into a number, `RunStatus.parse` turns any JSON object into a status whose fields have their
declared types (a wrong field falls back to its default; an unknown state reads as failed, saying
why), and `MetricsLog` hands out curves of finite numbers only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
FINISHED = ("done", "failed", "cancelled", "interrupted")
ACTIVE = ("queued", "running")  # the states a run leaves only through its worker (or the worker's end)
RESUMABLE = ("interrupted", "cancelled", "failed")


def finite(value) -> float | None:
    """A JSON value as a float when it is a finite number (not a bool, NaN or infinity), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        v = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return v if math.isfinite(v) else None


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def _int(value) -> int | None:
    v = finite(value)
    return int(v) if v is not None and v == int(v) else None


def _scores(value) -> dict:
    """A metrics dict: name → a finite number, a list of them (a class histogram), or None where the file
    holds anything else (so a page shows that score as missing rather than not at all)."""
    if not isinstance(value, dict):
        return {}
    out = {}
    for k, v in value.items():
        if finite(v) is not None:
            out[str(k)] = v if isinstance(v, int) and not isinstance(v, bool) else float(v)
        elif isinstance(v, list) and v and all(finite(e) is not None for e in v):
            out[str(k)] = [float(e) for e in v]
        else:
            out[str(k)] = None
    return out


@dataclass(frozen=True)
class RunStatus:
    """status.json, typed. `raw` keeps the whole object (fields a later version may add)."""

    state: str  # one of STATES
    step: int = 0  # training steps done (gradient updates; a GAN's discriminator updates)
    epoch: int = 0  # whole passes over the train split
    progress: float = 0.0  # 0 … 1 of the budget (epochs or seconds, whichever ends first)
    error: str | None = None  # why it failed, was interrupted or cancelled
    pid: int | None = None  # the worker process while it runs
    pid_start: str | None = None  # that process's start time (guards against a reused pid)
    device: str | None = None  # e.g. "cpu (2 threads)"
    phase: str | None = None  # what the worker is doing before the first step (e.g. training the judge)
    resume: bool = False  # queued to continue from its last checkpoint
    threads: int | None = None  # CPU threads the job manager gave it
    n_train: int | None = None  # training images
    elapsed: float | None = None  # seconds of training so far (the budget's clock; earlier sessions included)
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float | None = None
    final_metrics: dict = field(default_factory=dict)  # the eval/* scores of a finished run
    last_metrics: dict = field(default_factory=dict)  # the latest test/* scores while it trains
    control: dict = field(default_factory=dict)  # the settings the trainer applied from control.json
    judge_error: str | None = None  # a GAN run: why it has no judge scores
    damaged: bool = False  # status.json could not be read as a status (error says why)
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, obj) -> RunStatus:
        """Any JSON value → a status; never raises."""
        if not isinstance(obj, dict):
            return cls("failed", error=f"status.json should hold a JSON object, found {type(obj).__name__}",
                       damaged=True)
        state = obj.get("state")
        error = _text(obj.get("error"))
        damaged = state not in STATES
        if damaged:
            state, error = "failed", f"status.json has an unknown state {repr(state)[:60]}; the file is damaged"
        return cls(
            state=state, step=max(_int(obj.get("step")) or 0, 0), epoch=max(_int(obj.get("epoch")) or 0, 0),
            progress=min(max(finite(obj.get("progress")) or 0.0, 0.0), 1.0), error=error,
            pid=_int(obj.get("pid")), pid_start=_text(obj.get("pid_start")), device=_text(obj.get("device")),
            phase=_text(obj.get("phase")), resume=obj.get("resume") is True, threads=_int(obj.get("threads")),
            n_train=_int(obj.get("n_train")), elapsed=finite(obj.get("elapsed")),
            started_at=finite(obj.get("started_at")),
            finished_at=finite(obj.get("finished_at")), updated_at=finite(obj.get("updated_at")),
            final_metrics=_scores(obj.get("final_metrics")), last_metrics=_scores(obj.get("last_metrics")),
            control=_scores(obj.get("control")), judge_error=_text(obj.get("judge_error")), damaged=damaged,
            raw=dict(obj))

    @classmethod
    def unreadable(cls, reason: str) -> RunStatus:
        return cls("failed", error=reason, damaged=True)

    def seconds_left(self) -> float | None:
        """Training seconds still to go at the pace so far, elapsed × (1 − p) / p; None before 2 % is done.

        Exact for a time budget (p = elapsed / seconds); for a step or epoch budget it assumes the pace
        stays what it was, which is what a busy machine's pace does on average.
        """
        if self.state != "running" or not self.elapsed or self.progress < 0.02:
            return None
        return self.elapsed * (1 - self.progress) / self.progress

    @property
    def metrics(self) -> dict:
        """The final scores when done, else the latest test scores (what a listing shows)."""
        return self.final_metrics or self.last_metrics


class MetricsLog(list):
    """metrics.jsonl's records (dicts, in file order), with curves of finite numbers."""

    def series(self, key: str, x: str = "step") -> tuple[list[float], list[float]]:
        """(xs, values) of `key` over the lines that hold it and `x` as finite numbers, in file order."""
        xs, values = [], []
        for record in self:
            v, at = finite(record.get(key)), finite(record.get(x))
            if v is not None and at is not None:
                xs.append(int(at) if x == "step" else at)
                values.append(v)
        return xs, values

    def last(self, key: str) -> float | None:
        """The last finite value of `key`, or None."""
        for record in reversed(self):
            v = finite(record.get(key))
            if v is not None:
                return v
        return None

    def has(self, *keys: str) -> bool:
        """True when some line holds one of `keys`."""
        return any(k in record for record in self for k in keys)
