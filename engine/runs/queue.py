"""Where each queued run stands, and about how long until it starts and until it is done.

The job manager starts a queued run whenever one of its slots is free, in a fair order across
workspaces (`next_job`: the workspace served longest ago goes first, so one visitor's ten jobs do not
hold back another's first; within a workspace, oldest first). The estimate (`plan`) plays that out:
each slot frees when its running job's time left (RunStatus.seconds_left) runs out, and a queued job
then holds it for its expected duration: its time budget, or its step (or epoch) budget at the pace
runs of the same model keep on this machine (finished ones, else the ones running now).
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


def fair_key(workspace: str, queued_at: float, last_start: dict[str, float]) -> tuple[float, float]:
    """The fair order between workspaces: the workspace served longest ago (never: first) goes next, and
    within it the oldest job. One visitor's ten jobs then start one per turn, between everybody else's."""
    return last_start.get(workspace, -math.inf), queued_at


def next_job(queued: list[tuple[str, str, float]], running: dict[str, int], last_start: dict[str, float],
             per_workspace: int = 0) -> int | None:
    """Index into `queued` ((run id, workspace, queued at) triples) of the job to start next, or None when every
    waiting workspace already trains `per_workspace` jobs (0: no such cap)."""
    best = None
    for i, (_rid, ws, at) in enumerate(queued):
        if per_workspace and running.get(ws, 0) >= per_workspace:
            continue
        if best is None or fair_key(ws, at, last_start) < fair_key(queued[best][1], queued[best][2], last_start):
            best = i
    return best


def plan(running: list[tuple[str, float | None]], queued: list[tuple[str, str, float, float | None]], slots: int,
         last_start: dict[str, float], per_workspace: int = 0) -> dict[str, QueuePlace]:
    """Play the manager's start order out.

    running: (workspace, seconds until it frees its slot, None when unknown) of each job training now;
    queued: (run id, workspace, queued at, expected duration or None) of each waiting job; last_start: when each
    workspace last had a job started (seconds, any clock that orders them). A job that must wait for a slot whose
    end is unknown gets an unknown wait, but still its place in line.
    """
    ends = [(ws, math.inf if left is None else left) for ws, left in running]
    waiting = list(queued)
    served = {ws: t - 1e12 for ws, t in last_start.items()}  # before any simulated start
    now, position, out = 0.0, 0, {}
    while waiting:
        ends = [(ws, end) for ws, end in ends if end > now]  # at an unknown (infinite) time every slot is free
        i = None
        if len(ends) < slots:
            counts: dict[str, int] = {}
            for ws, _end in ends:
                counts[ws] = counts.get(ws, 0) + 1
            i = next_job([(r, ws, at) for r, ws, at, _d in waiting], counts, served, per_workspace)
        if i is None:  # no slot, or every waiting workspace at its cap: until the next job ends
            now = min(end for _ws, end in ends)
            continue
        run_id, ws, _at, duration = waiting.pop(i)
        position += 1
        out[run_id] = QueuePlace(position, None if now == math.inf else now, duration)
        served[ws] = now + position * 1e-9  # later than every real start, in start order
        ends.append((ws, math.inf if duration is None or now == math.inf else now + duration))
    return out


def queue_places(runs: list[Run], slots: int, per_workspace: int = 0, owner=None) -> dict[str, QueuePlace]:
    """run id → its place for every queued run among `runs`, given `slots` jobs at once, in the fair order of
    `next_job` (owner(config) → workspace; without it every run is one workspace's, oldest first)."""
    seen = []
    for run in runs:
        try:
            seen.append((run, run.config, run.status()))
        except (OSError, ValueError):
            continue
    pairs = [(c, s) for _, c, s in seen]
    whose = owner or (lambda config: "")
    last_start: dict[str, float] = {}
    for _, c, s in seen:
        if s.started_at is not None and s.state != "queued":
            last_start[whose(c)] = max(last_start.get(whose(c), -math.inf), s.started_at)
    running = [(whose(c), time_left(c, s, pairs)) for _, c, s in seen if s.state == "running"]
    queued = [(r.id, whose(c), _number(c.get("created_at")), expected_duration(c, pairs))
              for r, c, s in seen if s.state == "queued"]
    return plan(running, queued, slots, last_start, per_workspace)


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
