"""engine/lab/gan_studio.py: a GAN run's timeline, its generator at a checkpoint, memorisation, slow motion.

The runs are tiny real trainings (a dense GAN and a narrow cGAN, one epoch on one thread); the
reference values come from the run's own files (its snapshot at a step) or from brute force.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data import load_dataset
from engine.data.images import grid_png
from engine.lab import gan_studio as gan_lab
from engine.lab.gan_studio import Frame, SlowMotion, lr_history
from engine.runs import Run, RunError, Snapshot, make_run_config
from engine.runs.loaded import checkpoint_near
from engine.train import train_run
from ui.charts.gan_studio import Curve, timeline_panels

FAST = {"epochs": 1, "threads": 1, "judge": False, "snapshot_every_s": 0.1, "checkpoint_every_s": 0.2}


def tiny_run(parent: Path, run_id: str, model: str, model_config: dict, train: dict | None = None) -> Run:
    run = Run.create(parent, make_run_config(model, "mnist-5k", model_config, {**FAST, **(train or {})}),
                     run_id=run_id)
    train_run(run)
    assert run.status().state == "done", run.status()
    return run


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> Run:
    """A dense GAN (latent 8, hidden 32), one epoch: 63 steps, a checkpoint and a snapshot at step 0."""
    return tiny_run(tmp_path_factory.mktemp("gan"), "gan", "gan", {"latent_dim": 8, "hidden": [32]})


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory) -> Run:
    return tiny_run(tmp_path_factory.mktemp("cgan"), "cgan", "cgan", {"latent_dim": 8, "width": 8},
                    {"epochs": None, "seconds": 1.0})


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist-5k")


# -- which runs are GANs ---------------------------------------------------------------------------


def test_gan_runs_keeps_only_adversarial_runs(tmp_path, gan_run, finished_pca_run):
    runs = [Run(shutil.copytree(gan_run.path, tmp_path / "g")), Run(shutil.copytree(finished_pca_run, tmp_path / "p"))]
    (tmp_path / "g2").mkdir()
    broken = Run.create(tmp_path, {"model": "gan", "dataset": "mnist-5k", "model_config": {}, "train": {}}, "b")
    (broken.path / "config.json").write_text("{ not json")
    assert [r.id for r in gan_lab.gan_runs(runs + [broken])] == ["g"]
    assert gan_lab.is_gan_config({"model": "wgan_gp"}) and not gan_lab.is_gan_config({"model": "conv_ae"})
    assert not gan_lab.is_gan_config({"model": "no-such-model"}) and not gan_lab.is_gan_config(None)
    assert gan_lab.is_conditional({"model": "cgan"}) and not gan_lab.is_conditional({"model": "dcgan"})


# -- the timeline ----------------------------------------------------------------------------------


def test_nearest_step_prefers_the_earlier_on_a_tie_and_the_newest_without_a_step():
    assert gan_lab.nearest_step([], 5) is None
    assert gan_lab.nearest_step([0, 10, 20], None) == 20
    assert gan_lab.nearest_step([0, 10, 20], 14) == 10 and gan_lab.nearest_step([0, 10, 20], 16) == 20
    assert gan_lab.nearest_step([0, 10, 20], 15) == 10
    assert gan_lab.nearest_step([0, 10, 20], -3) == 0 and gan_lab.nearest_step([0, 10, 20], 99) == 20
    snaps = [Snapshot(s, "samples", Path(f"{s}.png")) for s in (30, 0, 12)]
    assert gan_lab.nearest_snapshot(snaps, 20).step == 12 and gan_lab.nearest_snapshot([], 3) is None


JUDGED = [
    {"step": 0, "judge/fid": 300.0, "judge/class_hist": [1.0] + [0.0] * 9, "judge/classes_covered": 1,
     "judge/mode_collapse": list(range(1, 10))},
    {"step": 50, "judge/fid": 90.0, "judge/class_hist": [0.1] * 10, "judge/classes_covered": 10,
     "judge/mode_collapse": []},
    {"step": 60, "train/d_loss": 1.0},
    {"step": 80, "eval/fid": 80.0, "eval/class_hist": [0.2, 0.2, 0.2, 0.2, 0.2] + [0.0] * 5, "eval/classes_covered": 5},
]


def test_judge_at_takes_the_judge_line_nearest_the_step_and_the_final_eval_line():
    assert gan_lab.judge_at([{"step": 3, "train/d_loss": 1.0}], 3) is None
    assert gan_lab.judge_at(JUDGED, 10)["judge/fid"] == 300.0
    assert gan_lab.judge_at(JUDGED, 55)["judge/fid"] == 90.0
    final = gan_lab.judge_at(JUDGED, None)
    assert final["judge/fid"] == 80.0 and final["step"] == 80 and final["final"]


def test_collapse_warning_names_the_missing_classes():
    early, fine, final = (gan_lab.judge_at(JUDGED, s) for s in (0, 50, 80))
    assert "1 of 10 classes" in gan_lab.collapse_warning(early) and "classes 1, 2, 3" in gan_lab.collapse_warning(early)
    assert gan_lab.collapse_warning(fine) is None and gan_lab.collapse_warning(None) is None
    assert "5 of 10 classes" in gan_lab.collapse_warning(final)  # no list of classes: the count alone says it
    assert gan_lab.collapse_warning({"judge/classes_covered": 9, "judge/class_hist": [0.1] * 10}) is None  # K − 1
    assert "class 4 is" in gan_lab.collapse_warning({"judge/mode_collapse": [4]})
    assert gan_lab.class_histogram(fine) == [0.1] * 10 and gan_lab.class_histogram({"judge/class_hist": "x"}) is None


def test_no_collapse_warning_before_the_generator_has_learned():
    """Few classes from an untrained or hardly trained generator are blur, not collapse (issue 10)."""
    early, final = gan_lab.judge_at(JUDGED, 0), gan_lab.judge_at(JUDGED, None)
    assert gan_lab.fid_share(JUDGED, early) == 1.0 and gan_lab.fid_share(JUDGED, final) == pytest.approx(80 / 300)
    assert gan_lab.collapse_warning(early, share=1.0) is None
    assert "5 of 10" in gan_lab.collapse_warning(final, share=gan_lab.fid_share(JUDGED, final))
    barely = {"step": 70, "judge/fid": 200.0, "judge/classes_covered": 2, "judge/class_hist": [0.5, 0.5] + [0.0] * 8}
    assert gan_lab.fid_share([*JUDGED, barely], barely) == pytest.approx(2 / 3)
    assert gan_lab.collapse_warning(barely, share=2 / 3) is None
    assert gan_lab.fid_share(JUDGED[1:], final) is None  # no step-0 line: nothing to compare with
    assert gan_lab.fid_share([{**JUDGED[0], "judge/fid": float("nan")}], early) is None


# -- a run's generator -----------------------------------------------------------------------------


def test_checkpoint_near_and_load_gan(gan_run, finished_pca_run, tmp_path):
    steps = [s for s, _ in gan_run.checkpoints()]
    assert steps[0] == 0 and len(steps) >= 2
    assert checkpoint_near(gan_run, 1)[0] == 0
    assert checkpoint_near(gan_run, None)[0] == steps[-1] == checkpoint_near(gan_run, 10**6)[0]
    loaded = gan_lab.load_gan(gan_run, 1)
    assert loaded.step == 0 and not loaded.model.training and loaded.latent_dim == 8 and not loaded.conditional
    with pytest.raises(RunError, match="not a GAN"):
        gan_lab.load_gan(Run(finished_pca_run))
    empty = Run.create(tmp_path, make_run_config("gan", "mnist-5k", {"latent_dim": 8}, FAST))
    with pytest.raises(RunError, match="no checkpoint"):
        gan_lab.load_gan(empty)


def test_samples_are_seeded_images(gan_run):
    loaded = gan_lab.load_gan(gan_run)
    a, b, c = gan_lab.samples(loaded, 6, seed=1), gan_lab.samples(loaded, 6, seed=1), gan_lab.samples(loaded, 6, seed=2)
    assert a.shape == (6, 28, 28) and a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    png = grid_png(a, ncol=3, scale=2)
    assert png.startswith(b"\x89PNG")


def test_a_cgan_samples_the_class_asked_for(cgan_run):
    loaded = gan_lab.load_gan(cgan_run)
    assert loaded.conditional and loaded.num_classes == 10
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        expected = loaded.model.generate(z, torch.full((5,), 7))[:, 0].numpy()
    np.testing.assert_allclose(gan_lab.samples(loaded, 5, seed=3, y=7), expected, atol=1e-6)
    assert not np.allclose(gan_lab.samples(loaded, 5, seed=3, y=2), expected)
    with pytest.raises(ValueError, match="classes 0–9"):
        gan_lab.samples(loaded, 2, y=10)


def test_interpolation_runs_from_the_first_code_to_the_second(cgan_run):
    loaded = gan_lab.load_gan(cgan_run)
    z = gan_lab.codes(8, [4, 9])
    with torch.inference_mode():
        ends = loaded.model.generate(z, torch.full((2,), 5))[:, 0].numpy()
    for method in ("slerp", "linear"):
        strip = gan_lab.interpolation(loaded, 4, 9, steps=7, method=method, y=5)
        assert strip.shape == (7, 28, 28)
        np.testing.assert_allclose(strip[[0, -1]], ends, atol=1e-5)
    np.testing.assert_array_equal(gan_lab.codes(8, [4]), gan_lab.codes(8, [4]))


# -- memorisation ----------------------------------------------------------------------------------


def test_nearest_train_pixels_matches_brute_force(data):
    x_train = data.x_train[:300]
    queries = torch.cat([x_train[[5, 17]], data.x_test[:4]])
    dist, idx = gan_lab.nearest_train_pixels(queries, x_train, batch=3)
    brute = np.linalg.norm(queries.flatten(1).numpy()[:, None] - x_train.flatten(1).numpy()[None], axis=2)
    np.testing.assert_array_equal(idx, brute.argmin(1))
    np.testing.assert_allclose(dist, brute.min(1), rtol=1e-4, atol=1e-4)
    assert idx[0] == 5 and idx[1] == 17 and dist[:2].max() < 1e-3  # a training image is its own neighbour


class FakeJudge:
    """Answers with made-up neighbours, to see that memorisation asks the judge when it has one."""

    def nearest_train(self, x):
        return torch.full((len(x),), 0.5), torch.arange(len(x))

    def nn_distance_real(self):
        return 1.25


def test_memorisation_pairs_samples_with_their_nearest_training_images(gan_run, data):
    loaded = gan_lab.load_gan(gan_run)
    memo = gan_lab.memorisation(loaded, data, n=4, seed=0)
    assert memo.samples.shape == memo.nearest.shape == (4, 28, 28)
    np.testing.assert_array_equal(memo.samples, gan_lab.samples(loaded, 4, 0))
    np.testing.assert_array_equal(memo.nearest, data.x_train[memo.indices][:, 0].numpy())
    np.testing.assert_allclose(memo.distances, np.linalg.norm((memo.samples - memo.nearest).reshape(4, -1), axis=1),
                               rtol=1e-4)
    real = gan_lab.nearest_train_pixels(data.x_test[:gan_lab.REFERENCE_IMAGES], data.x_train)[0].mean()
    assert memo.reference == pytest.approx(real) and memo.pair_png(0).startswith(b"\x89PNG")
    judged = gan_lab.memorisation(loaded, data, n=4, seed=0, judge=FakeJudge())
    assert list(judged.indices) == [0, 1, 2, 3] and judged.reference == 1.25 and set(judged.distances) == {0.5}
    np.testing.assert_array_equal(judged.nearest, data.x_train[:4, 0].numpy())
    close = gan_lab.Memorisation(memo.samples, memo.nearest, np.array([0.1, 5, 5, 5]), memo.indices, 1.0)
    assert close.closer_than_real(0) and not close.closer_than_real(1)


def test_judge_for_never_raises(tmp_path, monkeypatch):
    asked = {}

    def missing(*args, **kwargs):
        asked.update(kwargs)
        return None

    monkeypatch.setattr(gan_lab, "load_judge", missing)
    judge, why = gan_lab.judge_for("mnist-5k", tmp_path)
    assert judge is None and "no judge classifier" in why
    assert asked == {"train_if_missing": False}  # the app never trains a judge itself

    def broken(*args, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(gan_lab, "load_judge", broken)
    judge, why = gan_lab.judge_for("mnist-5k", tmp_path)
    assert judge is None and "disk on fire" in why


# -- slow motion -----------------------------------------------------------------------------------


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_slow_motion_starts_from_the_runs_own_snapshot(gan_run, data):
    sm = SlowMotion(gan_run, 0, data)
    first = sm.history[0]
    assert sm.checkpoint_step == 0 and first.click == 0 and first.action == "load"
    snapshot = next(s for s in gan_run.snapshots("samples") if s.step == 0)
    assert first.grid == snapshot.path.read_bytes()  # the same fixed z, the same weights: the same picture
    assert sm.learning_rates == {"lr_g": gan_run.config["train"]["lr"], "lr_d": gan_run.config["train"]["lr"]}


def test_a_d_step_moves_only_the_discriminator_and_a_g_step_only_the_generator(gan_run, data):
    sm = SlowMotion(gan_run, None, data)
    g0, d0, grid0 = params(sm.model.generator), params(sm.model.discriminator), sm.history[-1].grid
    frame = sm.step("d")
    assert same(params(sm.model.generator), g0) and not same(params(sm.model.discriminator), d0)
    assert frame.grid == grid0 and frame.d_loss is not None and frame.g_loss is None
    d1 = params(sm.model.discriminator)
    frame = sm.step("g")
    assert same(params(sm.model.discriminator), d1) and not same(params(sm.model.generator), g0)
    assert frame.grid != grid0 and frame.g_loss is not None
    assert (sm.d_updates, sm.g_updates) == (1, 1) and [f.action for f in sm.history] == ["load", "d", "g"]
    sm.step("both")
    assert (sm.d_updates, sm.g_updates) == (2, 2) and sm.history[-1].click == 3
    with pytest.raises(ValueError, match="action"):
        sm.step("x")


def test_d_steps_separate_real_from_fake_and_g_steps_close_the_gap(gan_run, data):
    """The game in slow motion: D's updates push D(x) up and D(G(z)) down; G's push D(G(z)) back up."""
    sm = SlowMotion(gan_run, 0, data)
    start = sm.history[0]
    for _ in range(3):
        sm.step("d")
    after_d = sm.history[-1]
    assert after_d.d_real > start.d_real and after_d.d_fake < start.d_fake
    for _ in range(3):
        sm.step("g")
    after_g = sm.history[-1]
    assert after_g.d_fake > after_d.d_fake and after_g.d_real == after_d.d_real  # D unchanged: D(x) too


def test_slow_motion_is_reproducible_and_frames_leave_batchnorm_alone(cgan_run, data):
    """The same checkpoint and the same clicks give the same numbers; measuring moves no running statistic."""
    a, b = SlowMotion(cgan_run, None, data), SlowMotion(cgan_run, None, data)
    for action in ("d", "g", "both"):
        fa, fb = a.step(action), b.step(action)
        assert (fa.d_real, fa.d_fake, fa.d_loss, fa.g_loss) == (fb.d_real, fb.d_fake, fb.d_loss, fb.g_loss)
    buffers = {k: v.clone() for k, v in a.model.named_buffers()}
    first, second = a.frame(), a.frame()
    assert (first.d_real, first.d_fake, first.grid) == (second.d_real, second.d_fake, second.grid)
    assert all(torch.equal(v, buffers[k]) for k, v in a.model.named_buffers())
    assert isinstance(first, Frame) and 0 < first.d_real < 1


def test_slow_motion_refuses_what_it_cannot_step(finished_pca_run, tmp_path):
    with pytest.raises(RunError, match="not a GAN"):
        SlowMotion(Run(finished_pca_run))
    empty = Run.create(tmp_path, make_run_config("gan", "mnist-5k", {"latent_dim": 8}, FAST))
    with pytest.raises(RunError, match="no checkpoint"):
        SlowMotion(empty)


# -- the timeline's charts (ui/charts/gan_studio.py) read what the trainer logs ------------------------


def test_the_timeline_charts_what_each_kind_of_game_logs(gan_run):
    gan = timeline_panels("dcgan")
    wgan = timeline_panels("wgan_gp")
    assert [p.title for p in gan][2:] == [p.title for p in wgan][2:]  # the judge's rows are shared
    assert Curve("train/d_real", "D(x)") in gan[1].curves and Curve("train/d_fake", "D(G(z))") in gan[1].curves
    assert {c.key for c in wgan[1].curves} >= {"train/critic_real", "train/critic_fake", "train/wasserstein"}
    assert "train/gp" in {c.key for c in wgan[0].curves}
    # every curve of a GAN's losses and D rows is in its metrics
    records = gan_run.metrics()
    for panel in gan[:2]:
        for curve in panel.curves:
            assert records.series(curve.key)[0], curve.key
    steps, lrs = lr_history(records)["lr_g"]
    assert steps and set(lrs) == {gan_run.config["train"]["lr"]}
