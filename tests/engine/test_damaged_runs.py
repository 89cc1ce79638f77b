"""Damaged run folders (issue 16, items 2, 5 and 6): every kind in tests/damage.py, for an autoencoder and a GAN,
read through the store, the CLI's `runs`, `eval` and `resume`: never a traceback, every damaged run listed as
damaged with why, no server path in what it says; resume falls back past a damaged newest checkpoint; killed
writes' temp files are cleaned up.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from engine import cli
from engine.runs import Run, RunError, list_runs
from engine.runs.checkpoints import checkpoint_problem
from engine.runs.files import remove_stale_temp_files, shown
from engine.runs.jobs import JobManager
from engine.runs.loaded import checkpoint_near, load_run
from tests.apptest import train_tiny
from tests.damage import DAMAGE, LOADS, NOT_DAMAGED, damaged_copy

FAST = {"steps": 20, "threads": 1, "judge": False, "snapshot_every_s": 0.1, "checkpoint_every_s": 0.2}
FAMILIES = {"ae": ("ae", {"latent_dim": 2, "hidden": [32]}), "gan": ("gan", {"latent_dim": 8, "hidden": [32]})}


@pytest.fixture(scope="module")
def good_runs(tmp_path_factory) -> dict[str, Path]:
    """A finished autoencoder and GAN (20 steps; checkpoints at step 0, at the end, and every 0.2 s), made once."""
    parent = tmp_path_factory.mktemp("good-runs")
    runs = {family: train_tiny(parent, f"{family}-good", model, config, FAST)
            for family, (model, config) in FAMILIES.items()}
    for path in runs.values():
        assert len(list((path / "checkpoints").glob("*.safetensors"))) >= 2  # the fallback needs an older one
    return runs


@pytest.fixture
def damaged_dir(runs_dir, good_runs) -> Path:
    """The runs folder (LATENT_LAB_RUNS) with both good runs and a copy of each damaged as every kind."""
    for path in good_runs.values():
        shutil.copytree(path, runs_dir / path.name)
        for kind in DAMAGE:
            damaged_copy(path, runs_dir, kind)
    return runs_dir


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def assert_no_server_path(text: str, runs_dir: Path) -> None:
    assert str(runs_dir) not in text and str(runs_dir.parent) not in text, text


# -- the store -------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_run_is_listed_as_damaged_with_why(kind, family, runs_dir, good_runs):
    damaged_copy(good_runs[family], runs_dir, kind, "damaged")
    shutil.copytree(good_runs[family], runs_dir / "good")
    runs = {r.id: r for r in list_runs(runs_dir)}
    assert set(runs) == {"damaged", "good"}  # listed, whatever is broken, and the good run too
    summary = runs["damaged"].summary()
    json.dumps(summary)  # JSON-able: what `runs` prints
    assert runs["good"].summary()["damaged"] is None
    if kind in NOT_DAMAGED:
        assert summary["damaged"] is None, summary["damaged"]
    else:
        assert isinstance(summary["damaged"], str) and summary["damaged"], summary
        assert_no_server_path(summary["damaged"], runs_dir)
        assert runs["damaged"].problem() == summary["damaged"]
    if kind in LOADS:
        loaded = load_run(runs["damaged"])  # Draw's and Explorer's model: the newest checkpoint that loads
        steps = [s for s, _ in runs["damaged"].checkpoints()]
        assert loaded.step == (steps[-2] if kind == "checkpoint-newest-damaged" else steps[-1]) == runs[
            "damaged"].checkpoint_token()[0]


def test_every_damage_kind_named_in_the_issue_is_covered():
    assert len(DAMAGE) >= 24
    for needed in ("status-binary", "config-binary", "metrics-binary", "config-truncated", "config-empty",
                   "config-garbage", "config-train-list", "status-final-metrics-list", "config-dataset-number",
                   "config-model-config-string", "config-unknown-model", "checkpoints-missing", "snapshots-garbled",
                   "checkpoint-truncated", "checkpoint-garbage", "checkpoint-header-lies", "config-symlink",
                   "status-directory", "huge-numbers", "metrics-nan"):
        assert needed in DAMAGE


def test_a_symlinked_file_is_never_followed(runs_dir, good_runs, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"model": "ae", "dataset": "mnist-5k", "model_config": {}, "train": {},
                                  "name": "the server's own file"}))
    run = runs_dir / "linked"
    shutil.copytree(good_runs["ae"], run)
    (run / "config.json").unlink()
    os.symlink(secret, run / "config.json")
    ckpt = sorted((run / "checkpoints").glob("*.safetensors"))[-1]
    ckpt.unlink()
    os.symlink("/dev/zero", ckpt)  # never read (it would never end)
    problem = Run(run).problem()
    assert "symbolic link" in problem and "the server's own file" not in problem
    with pytest.raises(RunError, match="symbolic link"):
        _ = Run(run).config
    assert "symbolic link" in checkpoint_problem(ckpt)


def test_error_texts_name_files_relative_to_the_runs_folder(runs_dir, good_runs):
    damaged_copy(good_runs["ae"], runs_dir, "config-binary", "r1")
    problem = Run(runs_dir / "r1").problem()
    assert problem.startswith("r1/config.json is not text")
    ckpt = runs_dir / "r1" / "checkpoints" / "step_00000001.safetensors"
    assert shown(ckpt) == "r1/checkpoints/step_00000001.safetensors"
    assert shown(Path("/somewhere/else/run-x/status.json")) == "run-x/status.json"


# -- the CLI ---------------------------------------------------------------------------------------


def test_runs_lists_every_run_damaged_or_not(damaged_dir):
    rc, out, err = run_cli("runs")
    assert rc == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    by_id = {r["id"]: r for r in rows}
    assert len(by_id) == 2 + 2 * len(DAMAGE)  # no run hidden, none stops the listing
    for family in FAMILIES:
        assert by_id[f"{family}-good"]["damaged"] is None
        for kind in DAMAGE:
            row = by_id[f"{family}-good-{kind}"]
            assert (row["damaged"] is None) == (kind in NOT_DAMAGED), (kind, row["damaged"])


@pytest.mark.parametrize("family", FAMILIES)
def test_eval_and_resume_of_each_damaged_run_say_why_or_work(family, damaged_dir, mnist_judge):
    """`eval RUN` and `resume RUN` on every damaged copy: an `error: …` line (exit 1) or a result (exit 0),
    never a traceback or a server path; a run still usable evaluates (from the newest checkpoint that loads)."""
    from engine.eval.judge import judge_path

    shutil.copytree(mnist_judge.path, judge_path("mnist-5k", damaged_dir))
    for kind in DAMAGE:
        rid = f"{family}-good-{kind}"
        rc, out, err = run_cli("eval", rid, "--n", "100")
        assert rc in (0, 1) and "Traceback" not in err, (kind, err)
        assert_no_server_path(err, damaged_dir)
        if rc == 0:  # scored from the checkpoint (a run whose config.json alone is damaged may be, too)
            assert json.loads(out)["step"] >= 0
        else:
            assert err.startswith("error: ") and kind not in LOADS, (kind, err)
        rc, out, err = run_cli("resume", rid, "--quiet")
        assert rc in (0, 1) and "Traceback" not in err and (rc == 0 or err.startswith("error: ")), (kind, err)
        assert_no_server_path(err, damaged_dir)
    assert run_cli("eval", f"{family}-good", "--n", "100")[0] == 0  # the good run still works


# -- resume falls back (item 5) --------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_resume_falls_back_to_the_checkpoint_before_a_damaged_newest_one(family, runs_dir, good_runs):
    path = damaged_copy(good_runs[family], runs_dir, "checkpoint-newest-damaged", "r")
    run = Run(path)
    steps = [s for s, _ in run.checkpoints()]
    run.set_status(state="interrupted", error="killed")
    rc, out, err = run_cli("resume", "r", "--quiet")
    assert rc == 0, err
    status = run.status()
    assert status.state == "done" and status.step == 20
    assert f"resumed from the checkpoint at step {steps[-2]:,}" in status.raw["resume_note"]
    assert run.checkpoint_token()[0] == 20 and load_run(run).step == 20  # the damaged one was written again


def test_resume_with_no_checkpoint_that_loads_fails_saying_why(runs_dir, good_runs):
    path = damaged_copy(good_runs["ae"], runs_dir, "checkpoint-header-lies", "r")
    Run(path).set_status(state="interrupted", error="killed")
    rc, out, err = run_cli("resume", "r", "--quiet")
    assert rc == 1 and "no checkpoint of run r loads" in err and "Traceback" not in err
    assert_no_server_path(err, runs_dir)
    error = Run(path).status().error  # the run panel shows it, traceback lines and all, to every visitor
    assert "no checkpoint of run r loads" in error and 'File "engine/train/loop.py"' in error
    assert_no_server_path(error, runs_dir)
    assert str(Path(cli.__file__).resolve().parents[1]) not in error


def test_the_pages_load_the_newest_checkpoint_that_loads(runs_dir, good_runs):
    run = Run(damaged_copy(good_runs["ae"], runs_dir, "checkpoint-newest-damaged", "r"))
    steps = [s for s, _ in run.checkpoints()]
    assert run.checkpoint_token()[0] == steps[-2]
    assert checkpoint_near(run)[0] == steps[-2] and checkpoint_near(run, steps[-1])[0] == steps[-2]
    assert load_run(run, steps[-1]).step == steps[-2]
    assert "is damaged, so this is step" in run.problem_note() and run.problem() is None


# -- stale temp files (item 6) ---------------------------------------------------------------------


def _stale(folder: Path, name: str, age_s: float, tag: str = "abc123") -> Path:
    p = folder / f".{name}.{tag}.tmp"
    p.write_bytes(b"half a file")
    os.utime(p, (time.time() - age_s, time.time() - age_s))
    return p


def test_stale_temp_files_are_removed_fresh_ones_kept(tmp_path):
    old, fresh = _stale(tmp_path, "status.json", 120), _stale(tmp_path, "control.json", 1)
    keep = tmp_path / "status.json"
    keep.write_text("{}")
    assert remove_stale_temp_files(tmp_path) == [old]
    assert fresh.exists() and keep.exists() and not old.exists()


def test_resume_and_the_job_manager_remove_a_killed_writers_temp_files(runs_dir, good_runs):
    run = Run(shutil.copytree(good_runs["ae"], runs_dir / "r"))
    ckpt_tmp = _stale(run.path / "checkpoints", "step_00000020.safetensors", 0)  # the worker is gone: stale now
    status_old, status_fresh = _stale(run.path, "status.json", 120), _stale(run.path, "status.json", 0, "def456")
    JobManager(runs_dir, poll_interval=None)
    assert not ckpt_tmp.exists() and not status_old.exists()
    assert status_fresh.exists()  # the server itself may be writing status.json right now
    ckpt_tmp = _stale(run.path / "snapshots", "recon_00000020.png", 0)
    run.set_status(state="interrupted")
    assert run_cli("resume", "r", "--quiet")[0] == 0
    assert not ckpt_tmp.exists()


def test_the_job_manager_polls_past_damaged_runs(damaged_dir, monkeypatch):
    """Issue 16: a binary status.json broke every poll, so a new run stayed queued."""
    from engine.runs import make_run_config

    started = []
    monkeypatch.setattr(JobManager, "_start", lambda self, run: started.append(run.id))
    Run.create(damaged_dir, make_run_config("ae", "mnist-5k", {}, {"steps": 1}), run_id="zz-new")
    jm = JobManager(damaged_dir, poll_interval=None)
    assert started == ["zz-new"]
    assert jm.active() == [] and list(jm.queue()) == ["zz-new"]
    assert len(jm.runs()) == 3 + 2 * len(DAMAGE)
    with pytest.raises(RunError, match="config.json is not text"):
        jm.resume("ae-good-config-binary")
