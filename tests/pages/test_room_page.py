"""The Room page (AppTest): the presenter's view of who is here, what trains, what waits and the class board.

A job "trains" here under this test's own process id (alive, so the job manager leaves it be), and with one
slot (LATENT_LAB_MAX_JOBS=1) the queued runs stay queued: the page shows their places in the fair order.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from engine.lab.classboard import ClassBoard
from engine.lab.room import room
from engine.runs import Run, make_run_config
from engine.runs import workspace as ws
from engine.runs.jobs import JobManager
from engine.runs.store import process_start_time
from engine.runs.workspace import Actor
from tests.apptest import render_page, texts

pytestmark = pytest.mark.usefixtures("fresh_caches")

KEY_A, KEY_B = ws.new_key(), ws.new_key()
WS_A, WS_B = ws.workspace_of_key(KEY_A), ws.workspace_of_key(KEY_B)


def make_run(runs_dir, run_id: str, workspace: str, state: str = "queued") -> Run:
    config = make_run_config("conv_ae", "mnist-5k", {"latent_dim": 8}, {"steps": 100})
    config["workspace"] = workspace
    run = Run.create(runs_dir, config, run_id=run_id)
    if state == "running":
        run.set_status(state="running", pid=os.getpid(), pid_start=process_start_time(os.getpid()),
                       started_at=time.time() - 30, step=40, progress=0.4)
    return run


@pytest.fixture
def busy_room(runs_dir, monkeypatch):
    """One job training (workspace A), two waiting (B's, then A's second), and two drawings on the class board."""
    monkeypatch.setenv("LATENT_LAB_MAX_JOBS", "1")
    make_run(runs_dir, "a-training", WS_A, "running")
    make_run(runs_dir, "a-waiting", WS_A)
    time.sleep(0.01)
    make_run(runs_dir, "b-waiting", WS_B)
    board = ClassBoard(runs_dir)
    x = np.zeros((28, 28), np.float32)
    x[8:20, 12:16] = 1.0
    board.send(x, "Ada", "a-training", "mnist-5k", Actor(WS_A))
    board.send(x, "Bob", "a-training", "mnist-5k", Actor(WS_B))
    return runs_dir


def metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


def tables(at) -> dict:
    """The page's tables by what they show: jobs training (a progress column), waiting, workspaces."""
    names = {"progress": "room_running", "place in line": "room_queued", "last seen": "room_workspaces"}
    return {name: d.value for d in at.dataframe for column, name in names.items() if column in d.value.columns}


def test_the_room_in_numbers_matches_the_job_managers_queue(busy_room):
    now = room(JobManager(busy_room, max_concurrent=1, poll_interval=None), ClassBoard(busy_room))
    assert [r["run"] for r in now.running] == ["a-training"]
    # fair order: B has never had a job start, A's last one started 30 s ago, so B's goes first
    assert [(r["run"], r["place in line"]) for r in now.queued] == [("b-waiting", 1), ("a-waiting", 2)]
    assert now.board == 2 and {r["workspace"] for r in now.workspaces} >= {WS_A[:8], WS_B[:8]}


def test_locally_the_room_shows_jobs_training_and_waiting_and_the_board(busy_room):
    at = render_page("pages/room.py")
    assert "Room" in texts(at.title) and r"\arg\min" in texts(at.latex)
    assert metrics(at) == {"Workspaces active": "0", "Jobs training": "1", "Jobs queued": "2",
                           "Drawings on the class board": "2"}
    shown = tables(at)
    assert list(shown["room_running"]["run"]) == ["a-training"]
    assert list(shown["room_running"]["workspace"]) == [WS_A[:8]]
    assert list(shown["room_queued"]["run"]) == ["b-waiting", "a-waiting"]
    assert list(shown["room_queued"]["place in line"]) == [1, 2]
    assert sorted(shown["room_workspaces"]["runs"]) == [1, 2]
    assert not at.error and not at.exception


def test_hosted_only_the_presenter_sees_the_room(busy_room, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_MODE", "hosted")
    monkeypatch.setenv("LATENT_LAB_PRESENTER_SECRET", "correct horse battery staple")
    visitor = render_page("pages/room.py", {"ws": KEY_A})
    assert "The room's view is the presenter's" in texts(visitor.info)
    assert not visitor.dataframe and not visitor.metric
    presenter = render_page("pages/room.py", {"ws": KEY_B}, {"presenter": True})
    assert metrics(presenter)["Jobs queued"] == "2"
    assert metrics(presenter)["Workspaces active"] == "2"  # both visited just now
    assert list(tables(presenter)["room_queued"]["run"]) == ["b-waiting", "a-waiting"]


def test_an_empty_room_says_so(runs_dir):
    at = render_page("pages/room.py")
    assert metrics(at)["Jobs training"] == "0"
    assert "No job is training." in texts(at.caption) and "Nothing is waiting" in texts(at.caption)
