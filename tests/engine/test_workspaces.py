"""Hosted mode in the engine: every action on a run from the wrong workspace is refused by the job manager itself,
share links open a run read-only, the presenter moderates, quotas hold, the queue is fair, old workspaces go."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest

from engine.runs import Run, RunError
from engine.runs import workspace as ws
from engine.runs.jobs import JobManager
from engine.runs.queue import next_job, plan
from engine.runs.transfer import export_run
from engine.runs.workspace import AccessError, Actor, LimitError, Limits

A, B, C = Actor("a" * 20), Actor("b" * 20), Actor("c" * 20)
PRESENTER = Actor("d" * 20, presenter=True)
LIMITS = Limits(running=1, jobs=3, seconds=300, runs=20, bytes=500 * 2**20, ttl_s=3600)


@pytest.fixture
def hosted(monkeypatch):
    monkeypatch.setenv("LATENT_LAB_MODE", "hosted")
    monkeypatch.delenv("LATENT_LAB_SECRET", raising=False)


@pytest.fixture
def queue_only(monkeypatch):
    """No worker processes: a queued run stays queued (the quotas and checks are what is tested)."""
    monkeypatch.setattr(JobManager, "_start", lambda self, run: None)


def manager(tmp_path: Path, limits: Limits = LIMITS) -> JobManager:
    return JobManager(tmp_path / "runs", max_concurrent=1, poll_interval=None, limits=limits)


def owned_copy(finished: Path, runs_dir: Path, run_id: str, owner: Actor | None) -> Run:
    """The session's finished PCA run, copied under runs_dir as `owner`'s."""
    path = runs_dir / run_id
    shutil.copytree(finished, path)
    config = json.loads((path / "config.json").read_text())
    config.pop("workspace", None)
    if owner is not None:
        config["workspace"] = owner.workspace
    (path / "config.json").write_text(json.dumps(config))
    return Run(path)


def fingerprint(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")}


# -- who may do what -------------------------------------------------------------------------------------


def foreign_actions(jm: JobManager, run_id: str, who: Actor, shared: bool = False) -> dict:
    """Each action on the run as `who`: the exception it raised, or None when it was allowed."""
    actions = {
        "cancel": lambda: jm.cancel(run_id, actor=who),
        "resume": lambda: jm.resume(run_id, actor=who),
        "delete": lambda: jm.delete(run_id, actor=who),
        "download": lambda: jm.export(run_id, actor=who),
        "learning rates": lambda: jm.set_control(run_id, who, lr=0.5),
        "slow motion": lambda: jm.check(run_id, who, ws.SLOW_MOTION, shared=shared),
        "pin": lambda: jm.pin(run_id, actor=who),
    }
    out = {}
    for name, action in actions.items():
        try:
            action()
        except RunError as e:
            out[name] = e
        else:
            out[name] = None
    return out


def test_a_foreign_workspace_can_do_nothing_with_a_run_not_even_see_it(tmp_path, hosted, finished_pca_run):
    jm = manager(tmp_path)
    run = owned_copy(finished_pca_run, jm.runs_dir, "mine", A)
    before = fingerprint(run.path)
    refused = foreign_actions(jm, run.id, B)
    assert all(isinstance(e, AccessError) for e in refused.values()), refused
    for name, e in refused.items():
        if name != "pin":
            assert "another workspace" in str(e) and "share link" in str(e), (name, e)
    with pytest.raises(AccessError):
        jm.check(run.id, B, ws.VIEW)
    with pytest.raises(AccessError):
        jm.copy(run.id, actor=B)
    assert [r.id for r in jm.runs(B)] == []
    assert fingerprint(run.path) == before and run.status().state == "done"
    assert [r.id for r in jm.runs(A)] == ["mine"]


def test_a_share_link_opens_a_run_read_only_and_a_copy_is_the_visitors_own(tmp_path, hosted, finished_pca_run):
    jm = manager(tmp_path)
    run = owned_copy(finished_pca_run, jm.runs_dir, "mine", A)
    token = ws.share_token(jm.runs_dir, run.id)
    assert ws.share_valid(jm.runs_dir, run.id, token)
    assert not ws.share_valid(jm.runs_dir, "other", token)
    assert not ws.share_valid(jm.runs_dir, run.id, token[:-1] + ("0" if token[-1] != "0" else "1"))
    assert not ws.share_valid(jm.runs_dir, run.id, None)
    before = fingerprint(run.path)

    assert [r.id for r in jm.runs(B, shared={run.id})] == ["mine"]
    jm.check(run.id, B, ws.VIEW, shared=True)  # allowed
    refused = foreign_actions(jm, run.id, B, shared=True)
    assert all(isinstance(e, AccessError) for e in refused.values()), refused
    assert "you can look at it, not step it in slow motion" in str(refused["slow motion"])

    copy = jm.copy(run.id, actor=B, shared=True)
    assert ws.owner(copy.config) == B.workspace and copy.id != run.id
    assert jm.owns(copy, B) and not jm.owns(copy, A) and not jm.owns(run, B)
    jm.export(copy.id, actor=B)  # their own now: they may download it
    jm.delete(copy.id, actor=B)
    assert fingerprint(run.path) == before


def test_an_import_belongs_to_the_importer_whatever_workspace_the_archive_names(tmp_path, hosted, finished_pca_run):
    jm = manager(tmp_path)
    run = owned_copy(finished_pca_run, jm.runs_dir, "bs", B)
    new = jm.import_archive(export_run(run), actor=A)
    assert ws.owner(new.config) == A.workspace


def test_the_presenter_moderates_and_pins_to_the_gallery_everyone_sees(tmp_path, hosted, finished_pca_run):
    jm = manager(tmp_path)
    run = owned_copy(finished_pca_run, jm.runs_dir, "mine", A)
    with pytest.raises(AccessError, match="only the presenter"):
        jm.pin(run.id, actor=A)
    jm.pin(run.id, actor=PRESENTER)
    assert [r.id for r in jm.runs(B)] == ["mine"] and [r.id for r in jm.runs(C)] == ["mine"]
    jm.check(run.id, B, ws.VIEW)
    with pytest.raises(AccessError):
        jm.delete(run.id, actor=B)
    jm.set_control(run.id, PRESENTER, lr=0.01)
    jm.delete(run.id, actor=PRESENTER)
    assert jm.runs(A) == [] and ws.pinned(jm.runs_dir) == set()


def test_the_servers_own_runs_are_read_only_for_every_visitor(tmp_path, hosted, finished_pca_run):
    jm = manager(tmp_path)
    run = owned_copy(finished_pca_run, jm.runs_dir, "cli", None)  # trained with the CLI: no workspace
    assert [r.id for r in jm.runs(A)] == ["cli"]
    with pytest.raises(AccessError, match="not yours"):
        jm.delete(run.id, actor=A)
    jm.delete(run.id)  # the server itself (the CLI) may


def test_local_mode_allows_everything(tmp_path, monkeypatch, finished_pca_run):
    monkeypatch.delenv("LATENT_LAB_MODE", raising=False)
    jm = manager(tmp_path, Limits.from_env())
    assert jm.limits == Limits()
    run = owned_copy(finished_pca_run, jm.runs_dir, "theirs", B)
    assert [r.id for r in jm.runs(Actor.local())] == ["theirs"]
    jm.export(run.id, actor=Actor.local())
    jm.set_control(run.id, Actor.local(), lr=0.5)
    jm.check(run.id, Actor.local(), ws.SLOW_MOTION)
    jm.delete(run.id, actor=Actor.local())
    assert jm.runs(Actor.local()) == []


def test_a_mistyped_mode_stops_rather_than_serving_a_hosted_link_as_local(monkeypatch):
    monkeypatch.setenv("LATENT_LAB_MODE", "hostd")
    with pytest.raises(ValueError, match="local, hosted"):
        ws.mode()


def test_workspace_keys_and_ids(hosted):
    key = ws.new_key()
    assert ws.KEY.match(key) and ws.workspace_of_key(key) == ws.workspace_of_key(key)
    assert ws.WORKSPACE_ID.match(ws.workspace_of_key(key)) and key not in ws.workspace_of_key(key)
    assert ws.workspace_of_key(ws.new_key()) != ws.workspace_of_key(key)
    for bad in ("", "short", "x" * 65, "a b c d e f g h i j k l", "../../etc/passwd-xxxxxxxxxx", None):
        with pytest.raises(AccessError):
            ws.workspace_of_key(bad)


def test_the_share_secret_is_kept_private_and_survives_a_restart(tmp_path, hosted):
    runs = tmp_path / "runs"
    runs.mkdir()
    token = ws.share_token(runs, "r1")
    assert (runs / ws.SECRET).stat().st_mode & 0o077 == 0
    assert ws.share_token(runs, "r1") == token and ws.share_token(runs, "r2") != token


# -- quotas ---------------------------------------------------------------------------------------------------


TINY = ("ae", "mnist-5k", {"latent_dim": 2, "hidden": [8]})


def test_quotas_refuse_with_what_to_do_and_fifty_clicks_make_three_jobs(tmp_path, hosted, queue_only):
    jm = manager(tmp_path)
    made, refused = [], []
    for _ in range(50):
        try:
            made.append(jm.submit(*TINY, {"steps": 5}, actor=A))
        except LimitError as e:
            refused.append(str(e))
    assert len(made) == 3 and len(refused) == 47
    assert "wait for one to finish, or cancel one" in refused[0]
    assert len(jm.runs(A)) == 3 and jm.runs(B) == []
    assert made[0].config["train"]["seconds"] == 300  # a step budget gets the server's longest time as a cap too
    with pytest.raises(LimitError, match="at most 300 s"):
        jm.submit(*TINY, {"seconds": 301}, actor=B)
    jm.submit(*TINY, {"seconds": 300}, actor=B)  # another workspace is not held back by A's clicks
    jm.cancel(made[0].id, actor=A)
    jm.submit(*TINY, {"steps": 5}, actor=A)  # a slot of A's own came back
    jm.submit(*TINY, {"seconds": 5000}, actor=PRESENTER)  # the presenter is not held to visitors' quotas


def test_runs_and_bytes_kept_are_bounded(tmp_path, hosted, queue_only, finished_pca_run):
    jm = manager(tmp_path, Limits(runs=2, bytes=0))
    owned_copy(finished_pca_run, jm.runs_dir, "one", A)
    owned_copy(finished_pca_run, jm.runs_dir, "two", A)
    with pytest.raises(LimitError, match="keeps 2 runs"):
        jm.submit(*TINY, {"steps": 5}, actor=A)
    with pytest.raises(LimitError, match="keeps 2 runs"):
        jm.copy("one", actor=A)
    jm = manager(tmp_path, Limits(bytes=1000))
    with pytest.raises(LimitError, match=r"MB of the 0 MB|MB it may keep"):
        jm.submit(*TINY, {"steps": 5}, actor=A)
    jm.submit(*TINY, {"steps": 5}, actor=B)


def test_a_visitor_cannot_name_a_server_path_or_another_workspaces_upload(tmp_path, hosted, queue_only):
    jm = manager(tmp_path)
    data = tmp_path / "data.npz"
    data.write_bytes(b"")
    (tmp_path / "series.csv").write_text("1,2,3\n4,5,6\n")
    for name in (f"npz:{data}", f"folder:{tmp_path}", f"csv:{tmp_path / 'series.csv'}"):
        with pytest.raises((AccessError, ValueError)):
            jm.submit("ae", name, {"latent_dim": 2}, {"steps": 5}, actor=A)
    assert not any(jm.runs_dir.iterdir()) or jm.runs(A) == []


# -- the fair queue ----------------------------------------------------------------------------------------------


def test_next_job_serves_the_workspace_served_longest_ago():
    queued = [("a1", "a", 1.0), ("a2", "a", 2.0), ("b1", "b", 3.0)]
    assert queued[next_job(queued, {}, {})][0] == "a1"
    assert queued[next_job(queued, {}, {"a": 10.0})][0] == "b1"
    assert next_job(queued, {"a": 1, "b": 1}, {}, per_workspace=1) is None


def test_the_queue_estimate_plays_the_fair_order_out():
    queued = [(f"{w}{i}", w, i * 3 + j, 10.0) for i in range(3) for j, w in enumerate("abc")]
    queued.sort(key=lambda q: (q[1], q[2]))  # submitted visitor by visitor: a1 a2 a3 b1 …
    places = plan([], queued, slots=1, last_start={})
    order = sorted(places, key=lambda r: places[r].position)
    assert order == ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]
    assert [places[r].wait_s for r in order] == [0, 10, 20, 30, 40, 50, 60, 70, 80]
    unknown = plan([("x", None)], queued[:2], slots=1, last_start={})
    assert [p.wait_s for p in unknown.values()] == [None, None] and {p.position for p in unknown.values()} == {1, 2}


class FakeWorker:
    """Stands for a worker process: alive until the test finishes its run."""

    def __init__(self, run: Run):
        self.run, self.pid = run, None

    def poll(self):
        return 0 if self.run.status().state == "done" else None


def test_three_visitors_three_jobs_each_every_first_job_starts_before_any_second(tmp_path, hosted, monkeypatch):
    started: list[str] = []

    def start(self, run):
        started.append(run.id)
        self._procs[run.id] = FakeWorker(run)
        run.set_status(state="running", started_at=time.time())

    monkeypatch.setattr(JobManager, "_start", start)
    jm = JobManager(tmp_path / "runs", max_concurrent=2, poll_interval=None, limits=LIMITS)
    owner_of = {}
    for who, letter in ((A, "A"), (B, "B"), (C, "C")):  # A clicks three times, then B, then C
        for i in range(3):
            run = jm.submit(*TINY, {"steps": 5}, run_id=f"{letter}{i + 1}", actor=who)
            owner_of[run.id] = letter
    expected_places = jm.queue()
    predicted = sorted(expected_places, key=lambda r: expected_places[r].position)
    while len(started) < 9:
        running = [rid for rid in started if Run(jm.runs_dir / rid).status().state == "running"]
        Run(jm.runs_dir / running[0]).set_status(state="done")  # the oldest running job finishes
        jm.poll()
    firsts = [started.index(f"{v}1") for v in "ABC"]
    seconds = [started.index(f"{v}2") for v in "ABC"]
    assert max(firsts) < min(seconds), started
    assert max(seconds) < min(started.index(f"{v}3") for v in "ABC"), started
    assert started[:2] == ["A1", "B1"]  # two slots, one job of a workspace at a time
    assert predicted == [r for r in started if r in predicted], (predicted, started)


# -- expiry ----------------------------------------------------------------------------------------------------


def test_old_workspaces_expire_with_their_runs_but_not_their_pinned_ones(tmp_path, hosted, finished_pca_run):
    jm = manager(tmp_path)
    for name, who in (("a-old", A), ("a-pinned", A), ("b-new", B)):
        owned_copy(finished_pca_run, jm.runs_dir, name, who)
    jm.pin("a-pinned", actor=PRESENTER)
    now = time.time()
    ws.touch(jm.runs_dir, A.workspace, now=now - 2 * 3600)
    ws.touch(jm.runs_dir, B.workspace, now=now)
    assert jm.expire(now=now) == [A.workspace]
    assert sorted(r.id for r in jm.runs(PRESENTER)) == ["a-pinned", "b-new"]
    assert A.workspace not in ws.last_seen(jm.runs_dir) and B.workspace in ws.last_seen(jm.runs_dir)
    rows = {r["workspace"]: r for r in jm.workspaces()}
    assert rows[B.workspace]["runs"] == 1 and rows[B.workspace]["bytes"] > 0


def test_uploads_are_their_workspaces_own(tmp_path, hosted, queue_only, monkeypatch):
    from engine.data import save_upload
    from engine.runs.config import check_own_data
    from tests.engine.test_uploads import labelled_zip

    monkeypatch.setenv("LATENT_LAB_UPLOADS", str(tmp_path / "uploads"))
    jm = manager(tmp_path)
    mine = save_upload(B.workspace, "digits.zip", labelled_zip()[0]).dataset
    with pytest.raises(AccessError, match="another workspace"):
        jm.submit("ae", mine, {"latent_dim": 2}, {"steps": 5}, actor=A)
    run = jm.submit("ae", mine, {"latent_dim": 2}, {"steps": 5}, actor=B)
    assert run.config["dataset"] == mine
    with pytest.raises(RunError, match="another workspace"):  # a worker or a resume refuses a run edited to name it
        check_own_data({**run.config, "workspace": A.workspace})
    check_own_data(run.config)


@pytest.mark.parametrize("value", ["-1", "three", "nan"])
def test_a_limit_that_is_not_a_number_stops_the_server(hosted, monkeypatch, value):
    monkeypatch.setenv("LATENT_LAB_WS_JOBS", value)
    with pytest.raises(ValueError, match="LATENT_LAB_WS_JOBS must be"):
        Limits.from_env()


def test_limits_have_hosted_defaults_and_follow_their_settings(hosted, monkeypatch):
    assert Limits.from_env() == Limits(running=1, jobs=3, seconds=300, runs=20, bytes=500 * 2**20, ttl_s=48 * 3600)
    monkeypatch.setenv("LATENT_LAB_WS_SECONDS", "60")
    monkeypatch.setenv("LATENT_LAB_WS_JOBS", "0")
    assert Limits.from_env().seconds == 60 and Limits.from_env().jobs == 0
