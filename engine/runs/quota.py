"""What a hosted visitor may start: the datasets they may name and their workspace's limits (workspace.Limits).

The job manager calls these before it creates or re-queues a run; each refusal is an AccessError or a
LimitError whose message says which rule and what to do. The server itself and the presenter are not limited.
"""

from __future__ import annotations

from engine.runs import workspace as ws
from engine.runs.status import ACTIVE
from engine.runs.store import Run
from engine.runs.workspace import Actor, LimitError, Limits


def limited(actor: Actor | None) -> bool:
    return actor is not None and not actor.system and not actor.presenter and ws.hosted()


def check_data(config: dict, actor: Actor | None) -> None:
    """A hosted visitor trains on the server's datasets and their own uploads only."""
    if not limited(actor):
        return
    from engine.data import upload_owner

    dataset = config["dataset"]
    if dataset.startswith(("folder:", "npz:", "csv:")):  # a path on the server
        raise ws.AccessError("on this server a dataset is one of its own or one you uploaded (the sidebar's "
                             "Upload a dataset); it does not read its folders for visitors")
    if upload_owner(dataset) not in (None, actor.workspace):
        raise ws.AccessError("that uploaded dataset belongs to another workspace; upload your own copy")


def check_new_run(config: dict, actor: Actor | None, limits: Limits, own: list[Run]) -> None:
    """A new run of `actor` (whose runs are `own`) fits the limits: the longest training (a step or epoch budget
    gets it as a cap, written into `config`), jobs at once, runs and bytes kept."""
    if not limited(actor):
        return
    train = config["train"]
    if limits.seconds:
        if train.get("seconds") is not None and train["seconds"] > limits.seconds:
            raise LimitError(f"a job here trains for at most {limits.seconds:g} s; ask for {limits.seconds:g} s "
                             "or less (the time budget)")
        if train.get("seconds") is None:
            train["seconds"] = float(limits.seconds)  # the step or epoch budget, or this, whichever ends first
    check_jobs(actor, limits, own)
    check_kept(actor, limits, own)


def check_jobs(actor: Actor | None, limits: Limits, own: list[Run]) -> None:
    """Room for one more job queued or training."""
    if not limited(actor) or not limits.jobs:
        return
    active = sum(r.status().state in ACTIVE for r in own)
    if active >= limits.jobs:
        raise LimitError(f"your workspace has {active} jobs queued or training, the most it may have at once "
                         "here: wait for one to finish, or cancel one (Train page), then try again")


def check_kept(actor: Actor | None, limits: Limits, own: list[Run]) -> None:
    """Room for one more run kept: the count and the megabytes (runs and uploads)."""
    if not limited(actor):
        return
    if limits.runs and len(own) >= limits.runs:
        raise LimitError(f"your workspace keeps {len(own)} runs, the most it may keep here: delete some "
                         "(Train page, or Home) to make room")
    if limits.bytes:
        from engine.data import workspace_upload_bytes

        used = sum(ws.folder_bytes(r.path) for r in own) + workspace_upload_bytes(actor.workspace)
        if used >= limits.bytes:
            raise LimitError(f"your workspace's runs take {used / 2**20:.0f} MB of the "
                             f"{limits.bytes / 2**20:.0f} MB it may keep here: delete some to make room")
