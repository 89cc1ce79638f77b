"""The GAN studio without a browser (AppTest): the form, the timeline and its link, two runs side by side,
slow motion, learning rates, the judge's views, a cGAN's classes, memorisation, and every bad state.

Runs are tiny real trainings (judge off); the judge's lines are appended to a copy's metrics.jsonl
where a test needs them, as a judged run writes them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine.data.images import grid_png
from engine.lab import gan_studio as gan_lab
from engine.models import MODELS, models
from engine.models.settings import describe
from engine.runs import FINISHED, Run, TrainConfig, process_start_time
from engine.runs.jobs import get_manager
from tests.apptest import add_run, media_bytes, plotly_values, render_page, rerun, texts, train_tiny

PAGE = "pages/gan_studio.py"
GANS = models(adversarial=True)
FAST = {"epochs": 3, "threads": 1, "judge": False, "snapshot_every_s": 0.1, "checkpoint_every_s": 0.2}


pytestmark = pytest.mark.usefixtures("fresh_data_cache")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """Finished runs: two dense GANs (non-saturating, minimax) and a narrow cGAN, one epoch each."""
    parent = tmp_path_factory.mktemp("gan-studio")
    train_tiny(parent, "gan-ns", "gan", {"latent_dim": 8, "hidden": [32]}, FAST)
    train_tiny(parent, "gan-mm", "gan", {"latent_dim": 8, "hidden": [32], "g_loss": "minimax"}, FAST)
    train_tiny(parent, "cgan", "cgan", {"latent_dim": 8, "width": 8}, {**FAST, "epochs": None, "seconds": 1.0})
    return parent


@pytest.fixture
def lab(runs_dir, trained) -> Path:
    for run in ("gan-ns", "gan-mm", "cgan"):
        add_run(runs_dir, trained / run)
    return runs_dir


def studio(query: dict | None = None, state: dict | None = None) -> AppTest:
    return render_page(PAGE, query, state)


def captions(at) -> list[str]:
    return [c for image in at.get("image") for c in image.captions]


def charts(at) -> dict[str, dict]:
    """Plotly chart specs by the chart's key (the element id ends with it)."""
    return {el.proto.id.rsplit("-", 1)[-1]: json.loads(el.proto.spec) for el in at.get("plotly_chart")}


def snapshot_steps(path: Path) -> list[int]:
    return [s.step for s in Run(path).snapshots("samples")]


@contextlib.contextmanager
def training(path: Path, held_back: int = 1, progress: float = 0.9):
    """The finished run at `path` as if it still trained: its newest `held_back` sample grids not written yet and
    its status "running", this live process its worker (so the job manager leaves it alone). Yields write_next,
    which writes the next held grid as training would; at the end every grid is back and the run is done."""
    later = sorted((path / "snapshots").glob("samples_*.png"))[-held_back:]
    held = [(p, p.read_bytes()) for p in later]
    for p in later:
        p.unlink()
    pid = os.getpid()
    Run(path).set_status(state="running", pid=pid, pid_start=process_start_time(pid), progress=progress)

    def write_next() -> None:
        p, data = held.pop(0)
        p.write_bytes(data)

    try:
        yield write_next
    finally:
        for p, data in held:
            p.write_bytes(data)
        Run(path).set_status(state="done")


def wait_finished(run: Run, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while run.status().state not in FINISHED and time.monotonic() < deadline:
        time.sleep(0.3)
    return run.status().state


def judge_line(step: int, hist: list[float], covered: int, collapse: list[int], fid: float) -> dict:
    return {"step": step, "epoch": 0, "elapsed": 1.0, "judge/fid": fid, "judge/inception_score": 2.0,
            "judge/class_hist": hist, "judge/classes_covered": covered, "judge/mode_collapse": collapse,
            "judge/min_class_share": min(hist), "judge/nn_distance": 7.0, "judge/nn_distance_real": 5.0}


# -- no GAN yet ------------------------------------------------------------------------------------


def test_without_a_gan_it_explains_and_offers_one(runs_dir, finished_pca_run):
    add_run(runs_dir, finished_pca_run)  # an autoencoder run is no GAN
    at = studio({"run": "pca-finished", "step": "3"})
    assert "GAN studio" in texts(at.title) and r"\log D(x)" in texts(at.latex)
    assert "No GAN has been trained yet" in texts(at.info)
    assert at.button(key="gan_starter").label == "Train a short DCGAN (400 steps)"
    assert "run" not in at.query_params and "step" not in at.query_params
    assert not at.error and not at.get("plotly_chart")


def test_the_starter_button_trains_a_dcgan_and_shows_it(runs_dir, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_DEMO_SCALE", "0.05")
    at = studio()
    assert any("20 steps" in b.label for b in at.button)
    at.button(key="gan_starter").click()
    rerun(at)
    (run,) = [Run(p) for p in runs_dir.iterdir() if not p.name.startswith(".")]
    try:
        assert run.config["model"] == "dcgan" and run.config["train"]["steps"] == 20
        assert run.config["name"] == "short DCGAN"
        assert at.selectbox(key="gan_run").value == run.id and at.query_params["run"] == run.id
        assert "No GAN has been trained yet" not in texts(at.info)
    finally:
        get_manager(runs_dir).cancel(run.id)  # it would train the judge first: stop it, let it finish stopping
        assert wait_finished(run) in FINISHED


# -- the form --------------------------------------------------------------------------------------


def test_the_form_offers_every_gan_with_its_own_defaults(runs_dir):
    at = studio()
    assert at.selectbox(key="gan_model").options == GANS
    for name in GANS:
        at.selectbox(key="gan_model").set_value(name)
        rerun(at)
        cls = MODELS[name]
        assert cls.description in texts(at.markdown)
        for f in dataclasses.fields(cls.config_cls):
            value = getattr(cls.config_cls(), f.name)
            widget = next(w for kind in ("number_input", "text_input", "selectbox", "checkbox")
                          for w in getattr(at, kind) if w.key == f"gan_{name}_{f.name}")
            assert widget.value == (", ".join(map(str, value)) if isinstance(value, tuple) else value), (name, f.name)
        g_loss = at.selectbox(key=f"gan_{name}_g_loss")
        assert g_loss.options == list(next(s for s in describe(cls.config_cls) if s.name == "g_loss").choices)
        train = {**asdict(TrainConfig()), **cls.train_defaults}
        assert at.number_input(key=f"gan_{name}_t_steps").value == 1000
        assert at.number_input(key=f"gan_{name}_t_seconds").value is None
        assert at.number_input(key=f"gan_{name}_t_epochs").value is None
        for key in ("lr", "beta1", "beta2", "batch_size"):
            assert at.number_input(key=f"gan_{name}_t_{key}").value == train[key], (name, key)
        lr_d = at.number_input(key=f"gan_{name}_t_lr_d")
        assert lr_d.value is None and lr_d.placeholder == "same as lr"
        assert at.checkbox(key=f"gan_{name}_t_judge").value is True
        formulas = texts(at.latex)
        assert {"gan": "non-saturating", "dcgan": "non-saturating", "wgan_gp": r"\lambda",
                "cgan": r"D(x \mid y)"}[name] in formulas, name


def test_the_form_starts_a_run_with_its_settings(runs_dir):
    at = studio()
    at.selectbox(key="gan_model").set_value("gan")
    rerun(at)
    at.selectbox(key="gan_gan_g_loss").set_value("minimax")
    at.text_input(key="gan_gan_hidden").input("64")
    at.number_input(key="gan_gan_t_seconds").set_value(1.0)
    at.number_input(key="gan_gan_t_lr_d").set_value(4e-4)
    at.checkbox(key="gan_gan_t_judge").uncheck()
    next(b for b in at.button if b.label == "Start training").click()
    rerun(at)
    (run,) = [Run(p) for p in runs_dir.iterdir() if not p.name.startswith(".")]
    try:
        config = run.config
        assert config["model"] == "gan" and config["model_config"]["g_loss"] == "minimax"
        assert config["model_config"]["hidden"] == [64]
        assert config["train"]["seconds"] == 1.0 and config["train"]["lr_d"] == 4e-4 and not config["train"]["judge"]
        assert at.selectbox(key="gan_run").value == run.id
        assert wait_finished(run) == "done", run.status()
    finally:
        get_manager(runs_dir).cancel(run.id)
        wait_finished(run)
    at.run()
    assert not at.exception and "A · " + run.id in " ".join(captions(at))


def test_a_bad_setting_is_a_message(runs_dir):
    at = studio()
    at.text_input(key="gan_gan_hidden").input("six")
    next(b for b in at.button if b.label == "Start training").click()
    rerun(at)
    assert "Could not start training" in texts(at.error) and "whole numbers" in texts(at.error)
    assert not [p for p in runs_dir.iterdir() if not p.name.startswith(".")]


# -- the timeline ----------------------------------------------------------------------------------


def test_a_link_restores_both_runs_and_the_step(lab):
    steps = snapshot_steps(lab / "gan-ns")
    middle = steps[len(steps) // 2]
    at = studio({"run": "gan-ns", "compare": "gan-mm", "step": str(middle + 1)})
    assert at.selectbox(key="gan_run").value == "gan-ns" and at.selectbox(key="gan_compare").value == "gan-mm"
    nearest = gan_lab.nearest_step(steps, middle + 1)
    assert at.select_slider(key="gan_step").value == nearest
    assert at.query_params["step"] == str(nearest) and at.query_params["compare"] == "gan-mm"
    shown = captions(at)
    assert any(c.startswith(f"A · gan-ns · G(z) at step {nearest:,}") for c in shown), shown
    b_step = gan_lab.nearest_step(snapshot_steps(lab / "gan-mm"), nearest)
    assert any(c.startswith(f"B · gan-mm · G(z) at step {b_step:,}") for c in shown), shown
    spec = charts(at)["gan_timeline_chart"]
    names = {t["name"] for t in spec["data"]}
    assert {"D loss (A)", "G loss (B)", "D(x) (A)", "D(G(z)) (B)"} <= names
    lines = [s for s in spec["layout"]["shapes"] if s.get("type") == "line"]
    assert lines and {s["x0"] for s in lines} == {nearest}  # one line at the step, in every row


def test_scrubbing_moves_the_grids_the_line_and_the_link(lab):
    steps = snapshot_steps(lab / "gan-ns")
    at = studio({"run": "gan-ns"})
    assert at.select_slider(key="gan_step").value == steps[-1]  # no step in the link: the newest
    at.select_slider(key="gan_step").set_value(steps[1])
    rerun(at)
    assert at.query_params["step"] == str(steps[1])
    assert any(c.startswith(f"A · gan-ns · G(z) at step {steps[1]:,}") for c in captions(at))
    assert {s["x0"] for s in charts(at)["gan_timeline_chart"]["layout"]["shapes"]} == {steps[1]}
    assert "real images from the training split, for comparison" in captions(at)  # no run B: the real images


def test_the_timeline_follows_training_to_the_newest_snapshot_whatever_the_browser_sends(lab):
    """Issue 10: the timeline stopped following at step 14 while training went on to 73. The cause: every
    rerun request carries the browser's widget values, and one sent by another fragment's timer before the
    browser had the newest step set the slider back; the page then took it for a person's choice."""
    steps = snapshot_steps(lab / "gan-ns")
    assert len(steps) >= 4, steps
    with training(lab / "gan-ns", held_back=2, progress=0.5) as write_next:  # the last two: not written yet
        at = studio({"run": "gan-ns"})
        assert at.select_slider(key="gan_step").value == steps[-3] and at.toggle(key="gan_follow").value
        assert at.select_slider(key="gan_step").disabled  # following: the page moves the step, not the slider
        for step in steps[-2:]:
            write_next()  # a new snapshot…
            at.session_state["gan_step"] = steps[0]  # … while a stale request re-sends an older step
            rerun(at)
            assert at.select_slider(key="gan_step").value == step, (step, at.select_slider(key="gan_step").value)
            assert any(c.startswith(f"A · gan-ns · G(z) at step {step:,}") for c in captions(at))
        at.toggle(key="gan_follow").set_value(False)  # scrub while it trains
        rerun(at)
        assert not at.select_slider(key="gan_step").disabled
        at.select_slider(key="gan_step").set_value(steps[1])
        rerun(at)
        assert at.select_slider(key="gan_step").value == steps[1] and at.query_params["step"] == str(steps[1])
    at.run()  # done: no toggle, an enabled slider where the person left it
    assert not at.main.toggle and not at.select_slider(key="gan_step").disabled  # (the sidebar: projector)
    assert at.select_slider(key="gan_step").value == steps[1]


def test_a_followed_timeline_lands_on_the_last_snapshot_written_as_training_ends(lab):
    """The short-DCGAN browser test saw the grid stay at step 394 when the run ended at 400: the last snapshot
    and the state "done" came in one poll, and the page, no longer following a finished run, kept the old step."""
    steps = snapshot_steps(lab / "gan-ns")
    with training(lab / "gan-ns"):  # then the last snapshot, then the end
        at = studio({"run": "gan-ns"})
        assert at.select_slider(key="gan_step").value == steps[-2] and at.toggle(key="gan_follow").value
    at.run()
    assert at.select_slider(key="gan_step").value == steps[-1] and not at.select_slider(key="gan_step").disabled
    assert any(c.startswith(f"A · gan-ns · G(z) at step {steps[-1]:,}") for c in captions(at))
    at.select_slider(key="gan_step").set_value(steps[1])  # then it stays where the person puts it
    rerun(at)
    assert at.select_slider(key="gan_step").value == steps[1]


def test_a_followed_timeline_still_lands_on_the_last_snapshot_after_a_page_run_that_read_the_run_as_stopped(lab):
    """A clean clone's suite saw the grid stay on step 391 of 400 with `?step=391` in the URL: a page run that read
    the training run as not active had ended following, so the end of training no longer moved the timeline."""
    steps = snapshot_steps(lab / "gan-ns")
    with training(lab / "gan-ns"):  # … then its last snapshot, and the end
        at = studio({"run": "gan-ns"})
        assert at.select_slider(key="gan_step").value == steps[-2] and at.toggle(key="gan_follow").value
        Run(lab / "gan-ns").set_status(state="interrupted")  # one read of the run as not training …
        rerun(at)
        assert at.select_slider(key="gan_step").value == steps[-2]
    rerun(at)
    assert at.select_slider(key="gan_step").value == steps[-1] and at.query_params["step"] == str(steps[-1])
    assert any(c.startswith(f"A · gan-ns · G(z) at step {steps[-1]:,}") for c in captions(at))
    at.select_slider(key="gan_step").set_value(steps[1])  # a person takes over: it stays where they put it
    rerun(at)
    rerun(at)
    assert at.select_slider(key="gan_step").value == steps[1]


def test_a_followed_timeline_leaves_the_step_out_of_the_link_so_a_reload_follows_on(lab):
    """CI saw the short-DCGAN grid stay at step 59 of 400 with `?step=59` in the URL: a session that starts on a
    link with a step (a reload, a reconnect) reads it as a link to that step and stops following. While it follows,
    the page now writes no step, so the same link opened again follows the newest snapshot too."""
    steps = snapshot_steps(lab / "gan-ns")
    with training(lab / "gan-ns") as write_next:
        at = studio({"run": "gan-ns"})
        assert at.select_slider(key="gan_step").value == steps[-2] and at.toggle(key="gan_follow").value
        assert "step" not in at.query_params, at.query_params  # following: the newest, whichever it is
        again = studio(dict(at.query_params))  # the same link in a new session
        assert again.toggle(key="gan_follow").value and again.select_slider(key="gan_step").value == steps[-2]
        write_next()
        rerun(again)
        assert again.select_slider(key="gan_step").value == steps[-1]  # it follows on
        again.toggle(key="gan_follow").set_value(False)  # a person stops following: now the link holds the step
        rerun(again)
        assert again.query_params["step"] == str(steps[-1])
        linked = studio({"run": "gan-ns", "step": str(steps[1])})  # a link to a step while it trains stays there
        assert not linked.toggle(key="gan_follow").value and linked.select_slider(key="gan_step").value == steps[1]


def test_play_walks_the_snapshots_and_stops_at_the_end(lab):
    steps = snapshot_steps(lab / "gan-ns")
    at = studio({"run": "gan-ns"})
    at.button(key="gan_play").click()
    rerun(at)  # at the end, Play starts from the first snapshot
    assert at.session_state["gan_playing"] and at.select_slider(key="gan_step").value == steps[0]
    assert at.button(key="gan_play").label == "Pause"
    seen = [steps[0]]
    for _ in range(len(steps)):
        rerun(at)  # a tick of the fragment's timer (AppTest reruns the page)
        seen.append(at.select_slider(key="gan_step").value)
        if not at.session_state["gan_playing"]:
            break
    assert seen[:len(steps)] == steps and not at.session_state["gan_playing"]
    at.button(key="gan_play").click()  # from the middle: one step on, then every tick
    at.select_slider(key="gan_step").set_value(steps[1])
    rerun(at)
    assert at.session_state["gan_playing"] and at.select_slider(key="gan_step").value == steps[2]


def test_the_judges_view_warns_of_mode_collapse_once_the_generator_has_learned(lab):
    """Few classes at step 0 or before the FID has halved are blur, not collapse (issue 10): no warning then."""
    steps = snapshot_steps(lab / "gan-ns")
    few = [0.9, 0.1] + [0.0] * 8
    with open(lab / "gan-ns" / "metrics.jsonl", "a") as f:
        f.write(json.dumps(judge_line(0, few, 2, list(range(2, 10)), 400.0)) + "\n")
        f.write(json.dumps(judge_line(steps[1], few, 2, list(range(2, 10)), 300.0)) + "\n")  # 75 %: not learned
        f.write(json.dumps(judge_line(steps[2], few, 2, list(range(2, 10)), 100.0)) + "\n")  # 25 %: learned
        f.write(json.dumps(judge_line(steps[-1], [0.1] * 10, 10, [], 60.0)) + "\n")
    at = studio({"run": "gan-ns", "step": "0"})
    assert "Mode collapse" not in texts(at.warning) and "the untrained generator" in texts(at.caption)
    at.select_slider(key="gan_step").set_value(steps[1])
    rerun(at)
    assert "Mode collapse" not in texts(at.warning) and "not learned yet. FID is 75%" in texts(at.caption)
    at.select_slider(key="gan_step").set_value(steps[2])
    rerun(at)
    warning = texts(at.warning)
    assert "Mode collapse" in warning and "2 of 10 classes" in warning and "classes 2, 3, 4" in warning
    at.select_slider(key="gan_step").set_value(0)
    rerun(at)
    spec = charts(at)
    assert list(plotly_values(spec["gan_hist_A"]["data"][0]["y"])) == pytest.approx([0.9, 0.1] + [0.0] * 8)
    assert any(s.get("y0") == pytest.approx(0.1) for s in spec["gan_hist_A"]["layout"]["shapes"])  # the 1/K line
    assert {"FID", "IS", "samples", "real test images"} <= {t["name"] for t in spec["gan_timeline_chart"]["data"]}
    assert {m.label: m.value for m in at.metric}["A: FID"] == "400.0"
    at.select_slider(key="gan_step").set_value(steps[-1])
    rerun(at)
    assert "Mode collapse" not in texts(at.warning) and {m.label: m.value for m in at.metric}["A: FID"] == "60.0"


def test_without_judge_scores_it_says_why(lab):
    at = studio({"run": "gan-mm"})
    assert "no judge scores for this run" in texts(at.caption)
    assert not any(t["name"] == "FID" for t in charts(at)["gan_timeline_chart"]["data"])


# -- the tools -------------------------------------------------------------------------------------


def test_slow_motion_steps_d_then_g(lab):
    at = studio({"run": "gan-ns", "step": "0"})
    assert at.button(key="gan_slowmo_d").disabled
    at.button(key="gan_slowmo_load").click()
    rerun(at)
    metrics = {m.label: m for m in at.metric}
    assert set(metrics) >= {"D(x)", "D(G(z))", "D loss", "G loss"} and metrics["D loss"].value == "–"
    assert any("checkpoint step 0 + 0 D and 0 G updates" in c for c in captions(at))
    start = float(metrics["D(x)"].value), float(metrics["D(G(z))"].value)
    at.button(key="gan_slowmo_d").click()
    rerun(at)
    metrics = {m.label: m for m in at.metric}
    assert float(metrics["D(x)"].value) > start[0] and float(metrics["D(G(z))"].value) < start[1]
    assert metrics["D(x)"].delta.startswith("+") and metrics["D loss"].value != "–"
    at.button(key="gan_slowmo_g").click()
    rerun(at)
    assert {m.label: m for m in at.metric}["D(G(z))"].delta.startswith("+")  # G learned to fool this D
    assert any("+ 1 D and 1 G updates" in c for c in captions(at))
    history = charts(at)["gan_slowmo_chart"]["data"]
    assert list(history[0]["x"]) == ["0: loaded", "1: D step", "2: G step"]
    assert isinstance(at.session_state["gan_slowmo"], gan_lab.SlowMotion)


def test_learning_rates_of_a_training_run_can_be_changed(lab):
    run = Run(lab / "gan-ns")
    pid = os.getpid()  # alive, so the job manager leaves this "running" run alone
    run.set_status(state="running", pid=pid, pid_start=process_start_time(pid), progress=0.5)
    at = studio({"run": "gan-ns"})
    lr = run.config["train"]["lr"]
    assert at.number_input(key="gan_lr_g_gan-ns").value == lr and at.number_input(key="gan_lr_d_gan-ns").value == lr
    at.number_input(key="gan_lr_g_gan-ns").set_value(1e-4)
    at.number_input(key="gan_lr_d_gan-ns").set_value(5e-4)
    next(b for b in at.button if b.label == "Apply").click()
    rerun(at)
    assert "Sent η_G = 0.0001, η_D = 0.0005" in texts(at.success)
    control = run.control()
    assert control["lr"] == 1e-4 and control["lr_d"] == 5e-4
    run.set_status(state="running", control={"lr": 1e-4, "lr_d": 5e-4})  # what the trainer writes back
    at.run()
    assert "Last change applied by the trainer: lr = 0.0001, lr_d = 0.0005" in texts(at.caption)
    names = {t["name"] for t in charts(at)["gan_lr_chart"]["data"]}
    assert names == {"η_G (generator)", "η_D (discriminator)"}
    run.set_status(state="done")


def test_learning_rates_of_a_finished_run_are_history_only(lab):
    at = studio({"run": "gan-ns"})
    assert "learning rates can be changed while a run trains" in texts(at.info)
    assert not [b for b in at.button if b.label == "Apply"] and "gan_lr_chart" in charts(at)


def test_memorisation_shows_samples_beside_their_nearest_training_images(lab):
    at = studio({"run": "gan-ns"})
    at.button(key="gan_memo_go").click()
    rerun(at)
    pairs = [c for c in captions(at) if c.startswith("d = ")]
    assert len(pairs) == 8
    assert "nearest training image" in texts(at.caption) and "No judge" in texts(at.caption)
    memo = at.session_state["gan_memo"][2]
    assert [f"d = {d:.2f}" for d in memo.distances] == [c.split(" · ")[0] for c in pairs]


def test_a_cgan_draws_the_class_asked_for(lab, media):
    at = studio({"run": "cgan", "class": "3"})
    assert [t.label for t in at.tabs][-1] == "Class samples"
    assert at.selectbox(key="gan_class").value == 3 and at.query_params["class"] == "3"
    at.selectbox(key="gan_class").set_value(7)
    rerun(at)
    assert at.query_params["class"] == "7"
    loaded = gan_lab.load_gan(Run(lab / "cgan"))
    image = next(i for i in at.get("image") if i.captions and i.captions[0].startswith("32 samples G(z, y = 7)"))
    expected = grid_png(gan_lab.samples(loaded, 32, 0, 7), ncol=8, scale=2)
    assert media_bytes(media, image.proto.imgs[0].url) == expected
    at.segmented_control(key="gan_path").set_value("linear")
    rerun(at)
    assert "from z₀ to z₁ (linear), the class fixed to 7" in captions(at)
    assert "one column per class y" in texts(at.caption)


def test_an_unconditional_run_drops_the_class_from_the_link(lab):
    at = studio({"run": "gan-ns", "class": "3"})
    assert "class" not in at.query_params and "Class samples" not in [t.label for t in at.tabs]


# -- bad states ------------------------------------------------------------------------------------


def test_stale_links_say_so(lab):
    at = studio({"run": "gone", "compare": "also-gone"})
    warning = texts(at.warning)
    assert "no GAN run 'gone'" in warning and "no GAN run to compare 'also-gone'" in warning
    assert at.selectbox(key="gan_run").value == "gan-ns" and "compare" not in at.query_params


def test_a_run_deleted_while_shown(lab):
    """AppTest reruns the whole page on a click (a browser reruns the fragment, which says the run is gone)."""
    at = studio({"run": "gan-mm", "compare": "gan-ns"})
    shutil.rmtree(lab / "gan-ns")  # run B goes: A alone
    at.button(key="gan_slowmo_load").click()
    rerun(at)
    assert at.selectbox(key="gan_compare").value == "" and "compare" not in at.query_params
    assert any(c.startswith("A · gan-mm") for c in captions(at))
    shutil.rmtree(lab / "gan-mm")  # run A goes too
    at.button(key="gan_slowmo_d").click()
    rerun(at)
    assert "no GAN run 'gan-mm'" in texts(at.warning) and "deleted" in texts(at.warning)
    assert at.selectbox(key="gan_run").value == "cgan" and at.query_params["run"] == "cgan"
    assert "gan_slowmo" not in at.session_state or at.session_state["gan_slowmo"].run_id != "cgan"


def test_the_panels_say_when_their_run_is_gone(runs_dir, trained):
    """A panel drawn for a run deleted since the page listed it: a message, no exception."""
    from ui.panels import gan_studio as gan_ui

    run = Run(add_run(runs_dir, trained / "gan-ns"))
    shutil.rmtree(run.path)
    for panel in (gan_ui.learning_rates, gan_ui.class_samples):
        assert panel(run) is None  # outside a script run Streamlit only logs the warning
    assert gan_ui.gone(run)


def test_a_run_without_snapshots_yet(lab):
    shutil.rmtree(lab / "gan-ns" / "snapshots")
    (lab / "gan-ns" / "snapshots").mkdir()
    at = studio({"run": "gan-ns"})
    assert "has no sample grid yet" in texts(at.info)


# -- the pages shared with autoencoders ------------------------------------------------------------


def test_home_shows_a_gan_run(lab):
    at = render_page(None, {"run": "gan-ns"})
    shown = captions(at)
    assert "real images (the training split)" in shown and any("G(z) for a fixed z at step" in c for c in shown)
    assert {t["name"] for t in charts(at)["run_panel_loss"]["data"]} == {"D loss", "G loss"}
    assert "No judge scores" in texts(at.caption)


def test_the_train_page_keeps_to_autoencoders_with_gans_around(lab):
    at = render_page("pages/train.py", {"compare": "gan-ns"})
    assert not set(GANS) & set(at.selectbox(key="train_model").options)
    assert "None of these runs has logged a step yet" in texts(at.caption)


def test_loss_figure_of_a_gan_keeps_negative_losses():
    from ui.charts.losses import loss_figure

    fig = loss_figure([{"step": s, "train/d_loss": -1.0 * s, "train/g_loss": 0.5} for s in (1, 2, 3)])
    assert [t.name for t in fig.data] == ["D loss", "G loss"] and list(fig.data[0].y) == [-1.0, -2.0, -3.0]
    assert fig.layout.yaxis.type != "log"


def test_hosted_a_shared_gans_rates_and_slow_motion_are_its_owners(lab, monkeypatch):
    """Through a share link a GAN is read-only: no learning-rate form, slow motion refused with why, its control
    file untouched; the owner still has both."""
    import json

    from engine.runs import workspace as ws

    monkeypatch.setenv("LATENT_LAB_MODE", "hosted")
    owner, visitor = ws.new_key(), ws.new_key()
    config = json.loads((lab / "gan-ns" / "config.json").read_text())
    (lab / "gan-ns" / "config.json").write_text(json.dumps({**config, "workspace": ws.workspace_of_key(owner)}))
    run = Run(lab / "gan-ns")
    pid = os.getpid()
    run.set_status(state="running", pid=pid, pid_start=process_start_time(pid), progress=0.5)
    token = ws.share_token(lab, "gan-ns")
    at = studio({"run": "gan-ns", "share": token, "ws": visitor, "step": "0"})
    assert "belongs to another workspace" in texts(at.info)
    assert not [b for b in at.button if b.label == "Apply"]
    at.button(key="gan_slowmo_load").click()
    rerun(at)
    assert "not step it in slow motion" in texts(at.error) and "gan_slowmo" not in at.session_state
    assert run.control() == {}
    mine = studio({"run": "gan-ns", "ws": owner})
    assert [b for b in mine.button if b.label == "Apply"]
    run.set_status(state="done")
