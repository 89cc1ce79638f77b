"""2-D GAN playground: a GAN learning a distribution of points, drawn live, in the manner of GAN Lab.

The model (engine/lab/gan_playground.py) is tiny and lives in st.session_state, one per browser session; a
fragment advances it a few steps per tick while playing and redraws the plane. Learning rates,
D steps and the generator loss (within one game) change the running model; a new distribution,
Wasserstein on or off, a new size or seed start a fresh one. The link restores the distribution,
the loss and the learning rates (`?dist=&loss=&lr_g=&lr_d=`) and drawn points (`?points=x,y;…`).
"""

import streamlit as st

from engine.data.images import png_bytes
from engine.lab import gan_playground as toy2d
from ui.charts.gan_playground import REAL, canvas_background_image, canvas_points, history_figure, plane_figure
from ui.entry import ensure_app
from ui.lessons import shown
from ui.text import explain
from ui.urlstate import query_value, set_query
from ui.escape import md

TICK_S = 0.3  # seconds between frames while playing
LRS = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2)
CANVAS = 300  # pixels of the drawing square, which spans the plane [−LIM, LIM]²
DISTRIBUTIONS = {"ring": "Ring of 8 Gaussians", "gaussians": "Gaussian mixture", "spiral": "Spiral",
                 "points": "Your points (draw them)"}
LOSSES = {"non_saturating": "Non-saturating: −log D(G(z))", "minimax": "Minimax: log(1 − D(G(z)))",
          "wasserstein": "Wasserstein: critic f + gradient penalty"}
DEFAULTS = {"toy_speed": 10, "toy_hidden": 64, "toy_layers": 2, "toy_seed": 0, "toy_arrow": 0.2}
LINKED = ("toy_dist", "toy_loss", "toy_lr_g", "toy_lr_d", "toy_d_steps")  # from the link on a first view

ensure_app()  # a deep link on a fresh server runs app.py first (see ui/entry.py)
st.title(":material/bubble_chart: 2-D GAN playground")
explain("gan_playground")


def linked(key: str, param: str, default, options, cast=str) -> None:
    """A widget's first value in this session: the link's, when it is one of `options`."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = query_value(param, default, cast, lambda v: v in options)


def restore_widgets() -> None:
    """Back from another page, the controls as they were (Streamlit drops the state of widgets it did not draw,
    and a page switch drops the link), so the running model is kept; on a first view, the defaults."""
    for key, value in {**DEFAULTS, **st.session_state.get("toy_kept", {})}.items():
        if key not in st.session_state:
            st.session_state[key] = value


def loss_changed() -> None:
    """A Wasserstein critic wants several updates per generator update (5, as WGAN-GP); a classifier one."""
    st.session_state["toy_d_steps"] = toy2d.default_d_steps(st.session_state["toy_loss"])


@st.cache_data(show_spinner=False)
def canvas_background() -> bytes:
    return png_bytes(canvas_background_image(CANVAS))


def drawn_points(container) -> list | None:
    """The points to learn: the canvas's (once it holds enough), else the last good ones; None: none yet."""
    from streamlit_drawable_canvas import st_canvas  # registers its component: only under a running app

    stored = st.session_state.get("toy_points")
    if stored is None and "points" in st.query_params:
        try:
            stored = toy2d.points_from_text(st.query_params["points"]).tolist()
        except ValueError as e:
            container.warning(f"The link's points cannot be used: {md(e)}.")
    left, right = container.columns([1, 2], vertical_alignment="center")
    with left:
        result = st_canvas(drawing_mode="point", point_display_radius=4, stroke_width=1, stroke_color=REAL,
                           fill_color=REAL, background_image=canvas_background(), width=CANVAS, height=CANVAS,
                           key="toy_canvas")
    drawn = canvas_points(result.json_data, CANVAS)
    if drawn:
        try:
            stored = toy2d.validate_points(drawn).tolist()
        except ValueError as e:
            right.warning(f"Cannot learn these points: {md(e)}."
                          + (f" Still learning your previous {len(stored)} points." if stored else ""))
    if stored is None:
        if not drawn:
            right.info("Click in the square to place at least "
                       f"{toy2d.MIN_POINTS} points: they become the real distribution.", icon=":material/touch_app:")
        return None
    st.session_state["toy_points"] = stored
    right.caption(f"Learning your **{len(stored)} points**, each drawn with a small Gaussian blur. The square is "
                  f"the plane [−{toy2d.LIM:g}, {toy2d.LIM:g}]², grid lines every 0.5. Clicks add points; the canvas "
                  "replaces the points once it holds at least "
                  f"{toy2d.MIN_POINTS}; its toolbar undoes or clears.")
    return stored


# -- the controls (a change reruns the page; the model follows, see toy2d.sync_model) -------------

restore_widgets()
linked("toy_dist", "dist", "ring", DISTRIBUTIONS)
linked("toy_loss", "loss", "non_saturating", LOSSES)
linked("toy_lr_g", "lr_g", 1e-3, LRS, float)
linked("toy_lr_d", "lr_d", 1e-3, LRS, float)
st.session_state.setdefault("toy_d_steps", toy2d.default_d_steps(st.session_state["toy_loss"]))
cols = st.columns([1.3, 1.7, 1, 1, 1])
dist = cols[0].selectbox("Real distribution", list(DISTRIBUTIONS), key="toy_dist", format_func=DISTRIBUTIONS.get)
loss = cols[1].selectbox("Generator loss", list(LOSSES), key="toy_loss", format_func=LOSSES.get,
                         on_change=loss_changed, help="Switching between the first two keeps training the same "
                         "model; Wasserstein on or off starts a new one.")
lr_g = cols[2].select_slider("G learning rate", LRS, key="toy_lr_g", format_func=lambda v: f"{v:g}",
                             help="Adam's step size for the generator; applies at once, without a reset")
lr_d = cols[3].select_slider("D learning rate", LRS, key="toy_lr_d", format_func=lambda v: f"{v:g}",
                             help="Adam's step size for the discriminator (critic); applies at once")
speed = cols[4].slider("Steps per frame", 1, 50, key="toy_speed", help="training steps between two frames "
                       "while playing")
if shown("toy_more"):
    with st.container(key="toy_more"), st.expander("More settings"):
        more = st.columns(5)
        d_steps = more[0].slider("D steps per G step", 1, 10, key="toy_d_steps")
        hidden = more[1].select_slider("Hidden width", (8, 16, 32, 64, 128), key="toy_hidden",
                                       help="neurons in each hidden layer of G and of D (a new model)")
        layers = more[2].slider("Hidden layers", 1, 4, key="toy_layers", help="for G and for D (a new model)")
        seed = int(more[3].number_input("Seed", 0, 10_000, key="toy_seed", help="initial weights and batches"))
        arrow = more[4].select_slider("Arrow length ×", (0.05, 0.1, 0.2, 0.5, 1.0, 2.0), key="toy_arrow",
                                      help="each arrow is this many times −∂ℓ_G/∂G(z) (capped at 0.75)")
else:  # a lesson hides them: the values kept in the session (restore_widgets: the defaults on a first view)
    d_steps, hidden, layers, arrow = (st.session_state[k] for k in ("toy_d_steps", "toy_hidden", "toy_layers",
                                                                    "toy_arrow"))
    seed = int(st.session_state["toy_seed"])
st.session_state["toy_kept"] = {key: st.session_state[key] for key in (*DEFAULTS, *LINKED)}

points = None
if dist == "points":
    points = drawn_points(st.container())
    if points is None:
        set_query(dist=dist, loss=loss, lr_g=lr_g, lr_d=lr_d, points=None)
        st.stop()
config = toy2d.Toy2DConfig(distribution=dist, loss=loss, hidden=hidden, layers=layers, lr_g=lr_g, lr_d=lr_d,
                           d_steps=d_steps, seed=seed, points=tuple(map(tuple, points or ())))
st.session_state["toy_model"] = toy2d.sync_model(st.session_state.get("toy_model"), config)
set_query(dist=dist, loss=loss, lr_g=lr_g, lr_d=lr_d, points=toy2d.points_to_text(points) if points else None)


# -- the playground: a fragment, so a step or a frame redraws only this part -----------------------

playing = st.session_state.setdefault("toy_playing", False)


@st.fragment(run_every=TICK_S if playing else None)
def playground() -> None:
    model: toy2d.Toy2DGAN = st.session_state["toy_model"]
    buttons = st.columns(5)
    # Two buttons, not one toggle: a click that reaches the server twice (a frame was in flight) must not undo itself.
    label, key, icon = ("Pause", "toy_pause", ":material/pause:") if playing else (
        "Play", "toy_play", ":material/play_arrow:")
    if buttons[0].button(label, key=key, type="primary", width="stretch", icon=icon):
        st.session_state["toy_playing"] = not playing
        st.rerun()  # the whole page: the fragment starts (or stops) ticking
    which = None
    for col, (label, kind, tip) in zip(buttons[1:4], (
            ("Step D", "d", "one discriminator update"), ("Step G", "g", "one generator update"),
            ("Step both", "both", "D steps per G step discriminator updates, then one generator update"))):
        if col.button(label, key=f"toy_step_{kind}", disabled=playing, width="stretch", help=tip):
            which = kind
    if buttons[4].button("Reset", key="toy_reset", icon=":material/restart_alt:", width="stretch",
                         help="new weights (same seed): start the game over"):
        model = st.session_state["toy_model"] = toy2d.Toy2DGAN(model.config)
    if playing:
        model.step(speed)
    elif which:
        model.step(1, which)
    view = model.view()

    wass = view.surface_kind == "critic"
    with st.container(key="toy_metrics"):
        m = st.columns(5)
        m[0].metric("Step", f"{view.steps:,}", help=f"{view.d_updates:,} D updates, {view.g_updates:,} G updates")
        m[1].metric("f(x) on real" if wass else "D(x) on real", f"{view.d_real:.3f}",
                    help="the mean over the real points drawn")
        m[2].metric("f(G(z)) on fake" if wass else "D(G(z)) on fake", f"{view.d_fake:.3f}",
                    help="the mean over the generated points drawn")
        m[3].metric("Energy distance", f"{view.energy:.3f}", help="2E‖x − G(z)‖ − E‖x − x′‖ − E‖G(z) − G(z′)‖ "
                    "between real and generated points: 0 when the two distributions match (lower is better)")
        m[4].metric("Modes covered", f"{view.modes} / {view.n_modes}" if view.n_modes else "—",
                    help="mixture components that got at least a quarter of their share of the generated points "
                         "(fewer: mode collapse)")
    left, right = st.columns([3, 2], gap="medium")
    with left:
        st.plotly_chart(plane_figure(view, arrow), key="toy_plane", config={"displayModeBar": False})
        surface = "the critic's score f(x), green high" if wass else "D(x), green where D says real, purple fake"
        st.caption(f"Background: {surface}. Green dots: real points x. Purple dots: G(z) for {len(view.fake)} "
                   "fixed z, the same every frame. Lines: −∂ℓ_G/∂G(z), where the generator's loss pushes each one.")
    with right:
        st.plotly_chart(history_figure(view), key="toy_history", config={"displayModeBar": False})
        st.caption("At the game's equilibrium D(x) = D(G(z)) = ½, the D loss is 2 log 2 ≈ 1.39 and the "
                   "non-saturating G loss log 2 ≈ 0.69." if not wass else
                   "The critic's gap E f(x) − E f(G(z)) estimates the earth mover's distance; it shrinks as G "
                   "learns.")


playground()
