"""The 2-D GAN of the playground (engine/lab/gan_playground.py): shapes, updates, learning, vanishing gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.lab import gan_playground as toy2d
from engine.lab.gan_playground import LIM, Toy2DConfig, Toy2DGAN
from engine.models.gan_losses import generator_loss
from ui.charts.gan_playground import canvas_points

POINTS = [(-1.0, 1.0), (1.0, 1.0), (0.0, 0.0), (-1.0, -1.0), (1.0, -1.0), (0.5, 1.5)]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """As the app runs it (ui.resources.configure_server): ops this small only lose by waking a second thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


# -- the view ------------------------------------------------------------------------------------


@pytest.mark.parametrize("distribution", toy2d.DISTRIBUTIONS)
def test_view_shapes_and_ranges(distribution):
    model = Toy2DGAN(Toy2DConfig(distribution=distribution, points=POINTS if distribution == "points" else ()))
    model.step(3)
    v = model.view()
    assert v.real.shape == (toy2d.N_REAL_VIEW, 2) and v.fake.shape == (toy2d.N_VIEW, 2)
    assert v.push.shape == v.fake.shape
    assert v.grid.shape == (toy2d.GRID,) and v.surface.shape == (toy2d.GRID, toy2d.GRID)
    assert v.grid[0] == -LIM and v.grid[-1] == LIM
    assert v.surface_kind == "probability" and 0 <= v.surface.min() and v.surface.max() <= 1
    for a in (v.real, v.fake, v.push, v.surface):
        assert np.isfinite(a).all()
    assert set(v.history) == {"step", *toy2d.LOG_KEYS} and all(len(h) == 3 for h in v.history.values())
    assert (v.steps, v.d_updates, v.g_updates) == (3, 3, 3)
    assert v.energy > 0 and 0 <= v.d_real <= 1 and 0 <= v.d_fake <= 1
    if distribution in ("ring", "gaussians"):
        assert v.n_modes == (8 if distribution == "ring" else 3) and 0 <= v.modes <= v.n_modes
    else:
        assert v.modes is None and v.n_modes is None


def test_the_surface_is_d_on_the_grid():
    """surface[row, col] is D at (x = grid[col], y = grid[row]): the layout a plotly heatmap expects."""
    model = Toy2DGAN()
    model.step(20)
    v = model.view()
    for row, col in ((0, 0), (5, 40), (59, 17)):
        x = torch.tensor([[v.grid[col], v.grid[row]]], dtype=torch.float32)
        with torch.no_grad():
            expected = torch.sigmoid(model.critic(x)).item()
        assert v.surface[row, col] == pytest.approx(expected, abs=1e-6)


def test_the_real_distributions():
    gen = torch.Generator().manual_seed(0)
    ring = toy2d.RealData("ring").sample(4000, gen).numpy()
    radius = np.linalg.norm(ring, axis=1)
    assert abs(radius.mean() - 1.5) < 0.02 and radius.std() < 0.1
    angles = np.round(np.arctan2(ring[:, 1], ring[:, 0]) / (2 * np.pi / 8)) % 8
    assert np.bincount(angles.astype(int), minlength=8).min() > 4000 / 8 * 0.8  # all 8 modes, about equally
    spiral = toy2d.RealData("spiral").sample(2000, gen).numpy()
    assert np.abs(spiral).max() < LIM and np.linalg.norm(spiral, axis=1).std() > 0.3
    mix = toy2d.RealData("gaussians").sample(2000, gen).numpy()
    assert toy2d.modes_covered(mix, toy2d.RealData("gaussians").modes())[0] == 3


# -- the updates -----------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", toy2d.LOSSES)
def test_a_step_updates_both_nets_with_finite_losses(loss):
    model = Toy2DGAN(Toy2DConfig(loss=loss))
    g, d = params(model.G), params(model.D)
    logs = model.step()
    assert changed(g, model.G) and changed(d, model.D)
    assert all(math.isfinite(logs[k]) for k in toy2d.LOG_KEYS), logs
    assert logs["step"] == 1 and model.d_updates == toy2d.default_d_steps(loss) and model.g_updates == 1


def test_step_d_changes_only_d_and_step_g_only_g():
    model = Toy2DGAN()
    g, d = params(model.G), params(model.D)
    model.step(1, which="d")
    assert changed(d, model.D) and not changed(g, model.G)
    assert (model.steps, model.d_updates, model.g_updates) == (1, 1, 0)
    d = params(model.D)
    model.step(2, which="g")
    assert changed(g, model.G) and not changed(d, model.D)
    assert (model.steps, model.d_updates, model.g_updates) == (3, 1, 2)
    with pytest.raises(ValueError, match="which"):
        model.step(1, which="both_nets")


def test_d_steps_per_g_step():
    model = Toy2DGAN(Toy2DConfig(d_steps=3))
    model.step(2)
    assert (model.d_updates, model.g_updates) == (6, 2)
    model.set_d_steps(1)
    model.step(1)
    assert (model.d_updates, model.g_updates) == (7, 3)


def test_the_same_seed_gives_the_same_game():
    a, b, c = Toy2DGAN(Toy2DConfig(seed=3)), Toy2DGAN(Toy2DConfig(seed=3)), Toy2DGAN(Toy2DConfig(seed=4))
    torch.manual_seed(123)  # the global RNG plays no part
    a.step(25)
    torch.manual_seed(999)
    b.step(25)
    c.step(25)
    va, vb, vc = a.view(), b.view(), c.view()
    for name in ("real", "fake", "push", "surface"):
        np.testing.assert_array_equal(getattr(va, name), getattr(vb, name))
    assert a.logs() == b.logs()
    assert not np.array_equal(va.fake, vc.fake)


def test_learning_rates_change_while_running():
    model = Toy2DGAN()
    model.step(5)
    model.set_lrs(lr_g=5e-3)
    assert model.opt_g.param_groups[0]["lr"] == 5e-3 and model.opt_d.param_groups[0]["lr"] == 1e-3
    assert model.config.lr_g == 5e-3 and model.steps == 5
    model.set_lrs(lr_d=2e-4)
    assert model.opt_d.param_groups[0]["lr"] == 2e-4
    model.step(1)
    for bad in (0.0, -1e-3, math.nan, 3.0):
        with pytest.raises(ValueError, match="learning rate"):
            model.set_lrs(lr_g=bad)


def test_switching_the_generator_loss():
    model = Toy2DGAN()
    model.step(3)
    model.set_loss("minimax")
    assert model.config.loss == "minimax"
    model.step(1)
    with pytest.raises(ValueError, match="new Toy2DGAN"):
        model.set_loss("wasserstein")
    with pytest.raises(ValueError, match="loss"):
        model.set_loss("hinge")


def test_sync_model_keeps_the_model_for_live_settings_only():
    model = toy2d.sync_model(None, Toy2DConfig())
    model.step(4)
    same = toy2d.sync_model(model, Toy2DConfig(loss="minimax", lr_g=2e-3, lr_d=5e-4, d_steps=2))
    assert same is model and model.steps == 4
    assert (model.config.loss, model.config.lr_g, model.config.d_steps) == ("minimax", 2e-3, 2)
    assert model.opt_d.param_groups[0]["lr"] == 5e-4
    for change in (dict(distribution="spiral"), dict(loss="wasserstein"), dict(seed=1), dict(hidden=32),
                   dict(layers=3)):
        fresh = toy2d.sync_model(model, Toy2DConfig(**{"loss": "minimax", **change}))
        assert fresh is not model and fresh.steps == 0, change
    wass = toy2d.sync_model(None, Toy2DConfig(loss="wasserstein"))
    assert wass.config.d_steps == 5  # WGAN-GP's n_critic by default
    drawn = toy2d.sync_model(None, Toy2DConfig(distribution="points", points=POINTS))
    drawn.step(2)
    more = POINTS + [(1.5, 0.0)]
    assert toy2d.sync_model(drawn, Toy2DConfig(distribution="points", points=more)) is drawn
    assert len(drawn.config.points) == 7 and drawn.steps == 2
    with pytest.raises(ValueError, match="at least 5"):
        toy2d.sync_model(drawn, Toy2DConfig(distribution="points", points=POINTS[:2]))


def test_history_keeps_the_whole_curve(monkeypatch):
    monkeypatch.setattr(toy2d, "MAX_HISTORY", 50)
    model = Toy2DGAN()
    model.step(130)
    steps = model.view().history["step"]
    assert len(steps) <= 50 and steps[0] <= 4 and steps[-1] >= 120
    assert np.all(np.diff(steps) > 0)


# -- what the playground teaches -------------------------------------------------------------------


def ring_learned(view) -> bool:
    """The bar: most of the ring's modes have their share of points, and the distance fell a lot."""
    return view.modes >= 6 and view.energy < 0.15


@pytest.mark.parametrize("loss", ["non_saturating", "minimax"])
def test_the_gan_learns_the_ring(loss):
    model = Toy2DGAN(Toy2DConfig(loss=loss))
    start = model.view()
    assert not ring_learned(start)  # the bar is not met by an untrained generator
    model.step(400)
    end = model.view()
    assert ring_learned(end), (start.energy, end.energy, end.modes)
    assert end.energy < start.energy / 5
    assert 0.3 < end.d_real < 0.7 and 0.3 < end.d_fake < 0.7  # near the equilibrium D = ½


def test_a_generator_that_does_not_learn_fails_the_bar():
    model = Toy2DGAN()
    model.step(400, which="d")  # only D learns: the generator stays where it started
    assert not ring_learned(model.view())


def test_wasserstein_learns_the_ring():
    model = Toy2DGAN(Toy2DConfig(loss="wasserstein"))
    start = model.view()
    assert start.surface_kind == "critic"
    model.step(300)
    end = model.view()
    assert ring_learned(end), (start.energy, end.energy, end.modes)
    assert math.isfinite(model.logs()["d_loss"])


def test_the_gradient_penalty_is_part_of_the_critic_loss():
    a = Toy2DGAN(Toy2DConfig(loss="wasserstein", gp_weight=0.0))
    b = Toy2DGAN(Toy2DConfig(loss="wasserstein", gp_weight=10.0))
    la, lb = a.step(1, which="d"), b.step(1, which="d")
    assert lb["d_loss"] > la["d_loss"]  # same weights and batches; λ(‖∇f‖ − 1)² ≥ 0 added
    assert la["d_real"] == lb["d_real"]


def test_minimax_gradients_vanish_when_d_is_strong():
    """Goodfellow et al. (2014), §3: log(1 − D(G(z))) saturates when D rejects the fakes; −log D(G(z)) does not."""
    norms, pushes = {}, {}
    for loss in ("minimax", "non_saturating"):
        model = Toy2DGAN(Toy2DConfig(loss=loss))
        model.step(200, which="d")  # the same D for both: D updates do not depend on the generator loss
        assert model.view().d_fake < 0.05  # D confidently rejects the fakes
        pushes[loss] = np.linalg.norm(model.view().push, axis=1).mean()
        norms[loss] = model.step(1, which="g")["g_grad_norm"]
    assert norms["minimax"] < norms["non_saturating"] / 10, norms
    assert pushes["minimax"] < pushes["non_saturating"] / 10, pushes


def test_the_push_is_the_textbook_formula():
    """−∂ℓ/∂x = D(x)·∇s(x) (minimax) and (1 − D(x))·∇s(x) (non-saturating), s the logit."""
    model = Toy2DGAN()
    model.step(30)
    x = model.view().fake[:50]
    xt = torch.tensor(x, requires_grad=True)
    logits = model.critic(xt)
    (grad_s,) = torch.autograd.grad(logits.sum(), xt)
    d = torch.sigmoid(logits).detach()[:, None]
    xt = torch.tensor(x)
    model.set_loss("minimax")
    np.testing.assert_allclose(model.push(xt).numpy(), (d * grad_s).numpy(), rtol=1e-4, atol=1e-6)
    model.set_loss("non_saturating")
    np.testing.assert_allclose(model.push(xt).numpy(), ((1 - d) * grad_s).numpy(), rtol=1e-4, atol=1e-6)
    # and it is what the generator loss of engine.models.gan says, point by point
    xt.requires_grad_(True)
    (g,) = torch.autograd.grad(generator_loss(model.critic(xt[:1]), "non_saturating"), xt)
    np.testing.assert_allclose(-g[0].numpy(), model.push(torch.tensor(x[:1]))[0].numpy(), rtol=1e-5)


# -- quality numbers -------------------------------------------------------------------------------


def test_energy_distance_against_a_direct_computation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 2)), rng.normal(size=(30, 2)) + [1.0, 0.0]

    def mean_dist(p, q):
        return np.mean([np.linalg.norm(u - v) for u in p for v in q])

    expected = 2 * mean_dist(a, b) - mean_dist(a, a) - mean_dist(b, b)
    assert toy2d.energy_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert toy2d.energy_distance(a, b, mean_dist(a, a)) == pytest.approx(expected, rel=1e-9)
    assert toy2d.energy_distance(a, a) == pytest.approx(0.0, abs=1e-12)
    assert toy2d.energy_distance([[0.0, 0.0]], [[3.0, 4.0]]) == pytest.approx(10.0)  # two masses: 2·‖x − y‖


def test_modes_covered():
    modes = toy2d.RealData("ring").modes()
    centres = modes[0]
    assert toy2d.modes_covered(np.repeat(centres, 10, axis=0), modes) == (8, 1.0)
    collapsed = np.repeat(centres[:1], 80, axis=0)
    assert toy2d.modes_covered(collapsed, modes) == (1, 1.0)
    assert toy2d.modes_covered(np.zeros((80, 2)), modes) == (0, 0.0)  # the centre is far from every mode


# -- the user's points -----------------------------------------------------------------------------


def test_user_points_are_validated():
    p = toy2d.validate_points(POINTS + [(9.0, -9.0)])
    assert p.shape == (7, 2) and tuple(p[-1]) == (LIM, -LIM)  # clipped to the plane
    for bad, message in (([(0.0, 0.0)] * 4, "at least 5 points"), ([], "at least 5 points"),
                         (POINTS[:4] + [(math.nan, 0.0)], "finite"), (POINTS[:4] + [(0.0, math.inf)], "finite"),
                         ([(1, 2, 3)] * 6, "pairs"), ("abc", "pairs|numbers"), ([(0.0, 0.0)] * 501, "at most")):
        with pytest.raises(ValueError, match=message):
            toy2d.validate_points(bad)
    with pytest.raises(ValueError, match="at least 5"):
        Toy2DGAN(Toy2DConfig(distribution="points", points=POINTS[:3]))
    with pytest.raises(ValueError, match="distribution"):
        Toy2DGAN(Toy2DConfig(distribution="moons"))


def test_the_real_points_come_from_the_users_points():
    model = Toy2DGAN(Toy2DConfig(distribution="points", points=POINTS))
    real = model.view().real
    nearest = np.min(np.linalg.norm(real[:, None] - np.array(POINTS)[None], axis=2), axis=1)
    assert nearest.max() < 0.3  # a blur of σ = 0.05 around each point
    model.set_points([(1.5, 1.5)] * 5)
    assert np.abs(model.view().real - 1.5).max() < 0.3
    with pytest.raises(ValueError, match="points"):
        Toy2DGAN().set_points(POINTS)


def test_canvas_points_follow_the_point_tool():
    """The canvas's point tool stores a circle with left = x − (r + w/2), top = y, origin left/center."""
    size = 300

    def circle(x, y, r=4, w=1):
        return {"type": "Circle", "left": x - (r + w / 2), "top": y, "radius": r, "strokeWidth": w,
                "originX": "left", "originY": "center", "scaleX": 1, "scaleY": 1}

    drawing = {"objects": [circle(0, 0), circle(150, 150), circle(300, 75), {"type": "path", "left": 1, "top": 1},
                           {"type": "circle", "radius": 2}]}
    pts = canvas_points(drawing, size)
    np.testing.assert_allclose(pts, [(-LIM, LIM), (0.0, 0.0), (LIM, 1.0)], atol=1e-9)
    assert canvas_points(None, size) == [] and canvas_points({"objects": []}, size) == []
    centred = {"type": "circle", "left": 75, "top": 225, "radius": 3, "originX": "center", "originY": "center"}
    np.testing.assert_allclose(canvas_points({"objects": [centred]}, size), [(-1.0, -1.0)])


def test_points_in_a_link():
    text = toy2d.points_to_text(POINTS)
    assert text.startswith("-1.00,1.00;1.00,1.00")
    np.testing.assert_allclose(toy2d.points_from_text(text), POINTS)
    for bad in ("1,2;3", "a,b;c,d", "1,2;3,4"):
        with pytest.raises(ValueError):
            toy2d.points_from_text(bad)
