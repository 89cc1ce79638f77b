"""The Room page's engine: what the room is doing, for the presenter's screen.

Who is here (the workspaces, and when each was last seen), what trains (every running job, its
workspace and progress), what waits (every queued job with its place in line and about when it
starts: engine.runs.queue, the order the job manager starts them in) and how many drawings the class
board holds. A workspace counts as active when it was seen within ACTIVE_S; the last visit is
written at most once a minute (engine.runs.workspace.touch), so "just now" means within that minute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from engine.lab.home import ago
from engine.runs import list_runs
from engine.runs import workspace as ws

ACTIVE_S = 15 * 60  # seen within this long: in the room


@dataclass
class Room:
    """A snapshot of the room."""

    workspaces: list[dict] = field(default_factory=list)  # workspace_rows: newest visit first
    active: int = 0  # workspaces seen within ACTIVE_S
    running: list[dict] = field(default_factory=list)  # one row per job training now
    queued: list[dict] = field(default_factory=list)  # one row per job waiting, in the order they start
    board: int = 0  # drawings on the class board


def _who(workspace: str) -> str:
    """A workspace as the presenter's tables show it: the first 8 characters of its id (never a key)."""
    return workspace[:8] if workspace else "server (CLI)"


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    return "under a minute" if seconds < 60 else f"about {seconds / 60:.0f} min"


def workspace_rows(rows: list[dict], now: float | None = None) -> list[dict]:
    """JobManager.workspaces() as a table: workspace, last seen, runs, jobs, MB (Home's presenter table, this page)."""
    return [{"workspace": _who(r["workspace"]), "last seen": ago(r["last_seen"], now), "runs": r["runs"],
             "jobs": r["active"], "MB": round(r["bytes"] / 2**20, 1)} for r in rows]


def room(jm, board=None, now: float | None = None) -> Room:
    """What `jm` (a JobManager) and `board` (a ClassBoard, or None) say about the room now."""
    now = time.time() if now is None else now
    rows = jm.workspaces()
    out = Room(workspaces=workspace_rows(rows, now),
               active=sum(1 for r in rows if r["last_seen"] is not None and now - r["last_seen"] <= ACTIVE_S),
               board=board.count() if board is not None else 0)
    places = jm.queue()
    for run in list_runs(jm.runs_dir):
        status = run.status()
        if status.state not in ("running", "queued"):
            continue
        try:
            config = run.config
        except (OSError, ValueError):  # a damaged run is listed on Home, not here
            continue
        row = {"run": run.id, "name": config.get("name") if isinstance(config.get("name"), str) else "",
               "model": str(config.get("model", "?")), "workspace": _who(ws.owner(config))}
        if status.state == "running":
            out.running.append({**row, "step": status.step, "progress": status.progress,
                                "started": ago(status.started_at, now)})
        elif run.id in places:
            place = places[run.id]
            out.queued.append({**row, "place in line": place.position, "starts in": _minutes(place.wait_s),
                               "takes": _minutes(place.duration_s)})
    out.queued.sort(key=lambda r: r["place in line"])
    return out
