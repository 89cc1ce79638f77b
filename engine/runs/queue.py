"""Where each queued run stands, and about how long until it starts and until it is done.

The job manager starts queued runs oldest first whenever one of its slots is free. The estimate plays
that out: each slot frees when its running job's time left (RunStatus.seconds_left) runs out, and a
queued job then holds it for its expected duration: its time budget, or its step (or epoch) budget at
the pace runs of the same model keep on this machine (finished ones, else the ones running now).
What cannot be known (a model never run here, a job that has not yet logged a step) is said as
unknown rather than guessed.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from engine.runs.status import RunStatus
from engine.runs.store import Run

START_S = 4.0  # a worker's start before its first step: the process, the imports, the data (measured 3–5 s)


@dataclass(frozen=True)
class QueuePlace:
    position: int  # 1: the next to start
    wait_s: float | None  # about how many seconds until it starts; None when that cannot be told
    duration_s: float | None  # about how long it will then take; None when unknown


def _steps_per_s(seen: list[tuple[dict, RunStatus]], model: str) -> float | None:
    """The median pace (steps per second of training) of `model`'s finished runs, else of its running ones."""
    for states in (("done",), ("running",)):
        paces = [s.step / s.elapsed for c, s in seen
                 if c.get("model") == model and s.state in states and s.elapsed and s.step >= 10]
        if paces:
            return statistics.median(paces)
    return None


def expected_duration(config: dict, seen: list[tuple[dict, RunStatus]]) -> float | None:
    """Seconds a run of `config` should take once started (START_S included), judged from the `seen`
    (config, status) pairs of other runs; None when unknown."""
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    budgets = []
    if isinstance(train.get("seconds"), (int, float)):
        budgets.append(float(train["seconds"]))
    pace = _steps_per_s(seen, config.get("model"))
    if pace and isinstance(train.get("steps"), int):
        budgets.append(train["steps"] / pace)
    if pace and isinstance(train.get("epochs"), int):
        batch = train.get("batch_size") or 128
        n_train = next((s.n_train for c, s in seen if c.get("model") == config.get("model") and s.n_train), None)
        if n_train:
            budgets.append(train["epochs"] * math.ceil(n_train / batch) / pace)
    return START_S + min(budgets) if budgets else None


def time_left(config: dict, status: RunStatus, seen: list[tuple[dict, RunStatus]]) -> float | None:
    """Seconds until a running job frees its slot: its own pace once it has one, else its expected duration."""
    left = status.seconds_left()
    if left is not None:
        return left
    duration = expected_duration(config, seen)
    return None if duration is None else max(duration - (status.elapsed or 0.0), 0.0)


def queue_places(runs: list[Run], slots: int) -> dict[str, QueuePlace]:
    """run id → its place for every queued run among `runs`, given `slots` jobs at once."""
    seen = []
    for run in runs:
        try:
            seen.append((run, run.config, run.status()))
        except (OSError, ValueError):
            continue
    pairs = [(c, s) for _, c, s in seen]
    running = [time_left(c, s, pairs) for _, c, s in seen if s.state == "running"]
    free: list[float | None] = sorted(running, key=lambda v: (v is None, v or 0.0))[:slots]
    free += [0.0] * (slots - len(free))
    queued = sorted(((r, c) for r, c, s in seen if s.state == "queued"), key=lambda rc: rc[1].get("created_at", 0))
    out = {}
    for position, (run, config) in enumerate(queued, start=1):
        known = [i for i, v in enumerate(free) if v is not None]
        duration = expected_duration(config, pairs)
        if not known:
            out[run.id] = QueuePlace(position, None, duration)
            continue
        i = min(known, key=lambda j: free[j])
        wait = free[i]
        out[run.id] = QueuePlace(position, wait, duration)
        free[i] = None if duration is None else wait + duration
    return out
