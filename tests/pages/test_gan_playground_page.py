"""The 2-D GAN playground page without a browser (streamlit's AppTest).

AppTest has no timer ticks and cannot run the drawing canvas (it returns its empty default): the
tests press the buttons, set the widgets and pass drawn points through the link (`?points=`).
"""

from __future__ import annotations

import numpy as np
from streamlit.testing.v1 import AppTest

from engine.lab import gan_playground as toy2d
from tests.apptest import render_page, rerun, texts

POINTS = "-1.00,1.00;1.00,1.00;0.00,0.00;-1.00,-1.00;1.00,-1.00;0.50,1.50"


def render(query: dict | None = None) -> AppTest:
    return render_page("pages/gan_playground.py", query)


def metric(at: AppTest, label: str) -> str:
    (m,) = [m for m in at.metric if m.label == label]
    return m.value


def model(at: AppTest) -> toy2d.Toy2DGAN:
    return at.session_state["toy_model"]


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click()
    return rerun(at)


def test_the_page_draws_the_playground():
    at = render()
    assert "2-D GAN playground" in texts(at.title)
    formulas = texts(at.latex)
    for part in (r"\min_G \max_D", r"\ell_G^\mathrm{minimax}", r"\ell_G^\text{non-sat}", r"D(x)\,\nabla_x s(x)"):
        assert part in formulas, part
    assert r"\lVert \nabla f(\hat x) \rVert - 1" in formulas  # the gradient penalty
    assert metric(at, "Step") == "0" and metric(at, "Modes covered") == "0 / 8"
    assert float(metric(at, "Energy distance")) > 0.5  # an untrained generator is far from the ring
    assert "D(x), green where D says real" in texts(at.caption)
    assert {k: at.query_params[k] for k in ("dist", "loss", "lr_g", "lr_d")} == {
        "dist": "ring", "loss": "non_saturating", "lr_g": "0.001", "lr_d": "0.001"}
    assert not at.error and not at.warning
    plane, history = at.get("plotly_chart")
    assert plane.proto.spec and history.proto.spec


def test_step_buttons_advance_the_game():
    at = render()
    g_before = [p.detach().clone() for p in model(at).G.parameters()]
    click(at, "toy_step_d")
    assert metric(at, "Step") == "1" and (model(at).d_updates, model(at).g_updates) == (1, 0)
    assert all(np.array_equal(a, b.detach()) for a, b in zip(g_before, model(at).G.parameters()))
    click(at, "toy_step_g")
    assert metric(at, "Step") == "2" and (model(at).d_updates, model(at).g_updates) == (1, 1)
    click(at, "toy_step_both")
    assert metric(at, "Step") == "3" and (model(at).d_updates, model(at).g_updates) == (2, 2)
    click(at, "toy_reset")
    assert metric(at, "Step") == "0"


def test_play_and_pause():
    at = render()
    at.slider(key="toy_speed").set_value(7)
    rerun(at)
    click(at, "toy_play")  # the page reruns with the fragment ticking; each run advances 7 steps
    assert at.session_state["toy_playing"] is True
    assert metric(at, "Step") == "7"
    assert at.button(key="toy_step_d").disabled and at.button(key="toy_pause").label == "Pause"
    click(at, "toy_pause")
    assert at.session_state["toy_playing"] is False
    steps = metric(at, "Step")
    rerun(at)
    assert metric(at, "Step") == steps and not at.button(key="toy_step_d").disabled


def test_learning_rates_and_the_loss_change_the_running_model():
    at = render()
    click(at, "toy_step_both")
    running = model(at)
    at.select_slider(key="toy_lr_g").set_value(5e-3)
    at.select_slider(key="toy_lr_d").set_value(2e-4)
    at.selectbox(key="toy_loss").set_value("minimax")
    rerun(at)
    assert model(at) is running and metric(at, "Step") == "1"  # no reset
    assert running.opt_g.param_groups[0]["lr"] == 5e-3 and running.opt_d.param_groups[0]["lr"] == 2e-4
    assert running.config.loss == "minimax"
    assert (at.query_params["lr_g"], at.query_params["lr_d"], at.query_params["loss"]) == ("0.005", "0.0002", "minimax")

    at.selectbox(key="toy_loss").set_value("wasserstein")
    rerun(at)
    assert model(at) is not running and model(at).wasserstein and metric(at, "Step") == "0"
    assert at.slider(key="toy_d_steps").value == 5 and model(at).config.d_steps == 5  # WGAN-GP's n_critic
    assert "f(x) on real" in [m.label for m in at.metric]
    click(at, "toy_step_both")
    assert (model(at).d_updates, model(at).g_updates) == (5, 1)


def test_changing_the_distribution_starts_a_new_game():
    at = render()
    click(at, "toy_step_both")
    at.selectbox(key="toy_dist").set_value("spiral")
    rerun(at)
    assert model(at).config.distribution == "spiral" and metric(at, "Step") == "0"
    assert metric(at, "Modes covered") == "—" and at.query_params["dist"] == "spiral"
    at.selectbox(key="toy_dist").set_value("gaussians")
    rerun(at)
    assert metric(at, "Modes covered").endswith(" / 3") and model(at).config.distribution == "gaussians"


def test_a_link_restores_the_settings():
    at = render({"dist": "spiral", "loss": "minimax", "lr_g": "0.005", "lr_d": "0.0002"})
    assert at.selectbox(key="toy_dist").value == "spiral" and at.selectbox(key="toy_loss").value == "minimax"
    assert at.select_slider(key="toy_lr_g").value == 5e-3 and at.select_slider(key="toy_lr_d").value == 2e-4
    config = model(at).config
    assert (config.distribution, config.loss, config.lr_g, config.lr_d) == ("spiral", "minimax", 5e-3, 2e-4)


def test_a_wasserstein_link_gets_several_critic_steps():
    at = render({"loss": "wasserstein"})
    assert at.slider(key="toy_d_steps").value == 5 and model(at).wasserstein


def test_bad_links_fall_back_to_the_defaults():
    at = render({"dist": "moons", "loss": "hinge", "lr_g": "7", "lr_d": "nan"})
    assert at.selectbox(key="toy_dist").value == "ring" and at.selectbox(key="toy_loss").value == "non_saturating"
    assert at.select_slider(key="toy_lr_g").value == 1e-3 and at.select_slider(key="toy_lr_d").value == 1e-3
    assert not at.error and metric(at, "Step") == "0"


def test_drawn_points_without_points_ask_for_them():
    at = render({"dist": "points"})
    assert "Click in the square to place at least 5 points" in texts(at.info)
    assert not at.metric and "toy_model" not in at.session_state  # nothing to learn yet
    assert "points" not in at.query_params


def test_points_from_a_link_are_learned():
    at = render({"dist": "points", "points": POINTS})
    assert "Learning your **6 points**" in texts(at.caption)
    m = model(at)
    assert m.config.distribution == "points" and len(m.config.points) == 6
    np.testing.assert_allclose(m.config.points[0], (-1.0, 1.0))
    click(at, "toy_step_both")
    assert metric(at, "Step") == "1" and at.query_params["points"] == POINTS


def test_bad_points_in_a_link_say_why():
    at = render({"dist": "points", "points": "0,0;1,1"})
    assert "cannot be used: place at least 5 points (there are 2)" in texts(at.warning)
    assert "Click in the square" in texts(at.info) and not at.metric
    at = render({"dist": "points", "points": "0,0;1,x;2,2"})
    assert "cannot be used" in texts(at.warning) and not at.exception


def test_back_from_another_page_the_game_goes_on():
    """Streamlit forgets the state of widgets a page does not draw, and a page switch drops the link."""
    at = render({"dist": "spiral", "loss": "minimax"})
    at.select_slider(key="toy_lr_g").set_value(5e-3)
    at.slider(key="toy_layers").set_value(3)
    rerun(at)
    click(at, "toy_step_both")
    running = model(at)
    at.switch_page("pages/home.py")
    rerun(at)
    for key in [k for k in at.session_state if k.startswith("toy_") and k not in ("toy_kept", "toy_model")]:
        if key not in ("toy_playing", "toy_points"):
            del at.session_state[key]  # what Streamlit does with the state of widgets a run did not draw
    for param in ("dist", "loss", "lr_g", "lr_d"):
        at.query_params.pop(param, None)
    at.switch_page("pages/gan_playground.py")
    rerun(at)
    assert model(at) is running and metric(at, "Step") == "1"
    assert (at.selectbox(key="toy_dist").value, at.selectbox(key="toy_loss").value) == ("spiral", "minimax")
    assert at.select_slider(key="toy_lr_g").value == 5e-3 and at.slider(key="toy_layers").value == 3
    assert at.query_params["dist"] == "spiral"  # and the link is written again
