"""Latent explorer: move a code z with sliders and watch the decoder answer; interpolate, add, sample.

The sliders answer in the browser (ui/latent_sliders.py): the page hands them the decoded image at
every position of the slider with the focus, so a key press or a drag along it shows x̂ at once; a
committed move reruns the slider panel only (a fragment), as the other panels are fragments too.
The link restores the run, the slider positions (`?z=` in standard deviations), the start image
(`?image=`), the interpolation ends (`?a=&b=`), the arithmetic (`?arith=a,b,c`) and the sample seed
(`?seed=`).
"""

import functools
import math

import streamlit as st

from engine.data.images import grid_png, image_png
from engine.eval.codes import decode
from engine.lab.demos import demo_settings
from engine.lab.explorer import (MAX_SLIDERS, arithmetic, fills_every_panel, from_ticks, interpolation_images,
                                 manifold_images, sample_images, slider_directions, slider_strip, to_ticks)
from ui.entry import ensure_app
from ui.images import png_text
from ui.latent_sliders import latent_sliders, take_positions
from ui.lessons import shown
from ui.resources import dataset_tensors, loaded_at, loaded_run, on_model_thread, split_codes
from ui.runs import need_model, pick_run, run_config, run_label, usable_runs
from ui.sidebar import selected_dataset
from ui.text import explain
from ui.urlstate import query_value, set_query
from ui.escape import md, md_quote

SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")

ensure_app()  # a deep link on a fresh server runs app.py first (see ui/entry.py)
st.title("Latent explorer")
explain("explorer")


@st.cache_resource(max_entries=24, show_spinner=False)
def directions_of(run_path: str, token: tuple):
    """The slider directions (engine.lab.explorer.slider_directions of the test codes), once per checkpoint."""
    return slider_directions(split_codes(loaded_at(run_path, token)))


@st.cache_data(max_entries=64, show_spinner=False)
def grid_of(run_path: str, token: tuple, what: str, n: int, seed: int = 0, y: int | None = None) -> bytes:
    """PNG of a run's sample grid (what="samples", n×n images, seeded) or 2-D manifold (what="manifold", n×n)."""
    loaded = loaded_at(run_path, token)
    if what == "samples":
        images = sample_images(loaded, n * n, seed, y)
    else:
        images = manifold_images(loaded, n, split_codes(loaded), y)
    return grid_png(images, ncol=n, scale=2)


dataset_name = selected_dataset().name
runs = usable_runs(dataset_name)
if not runs:
    model, model_config, train = demo_settings("vae_2d")
    need_model("No autoencoder is trained on this dataset yet. A variational autoencoder with a 2-D latent "
               "shows every panel here (sliders, prior samples, the manifold grid); any run from the Train "
               "page works too.", model, model_config, train, key="explorer_need_model",
               button=f"Train a 2-D VAE now ({train['steps']:,} steps)", name="2-D VAE")
    st.stop()
linked_run = st.query_params.get("run")
if linked_run and linked_run not in {r.id for r in runs}:
    st.warning(f"There is no autoencoder run {md_quote(linked_run)} on {dataset_name} with a checkpoint; "
               "showing the newest run instead.")
run = pick_run(runs, key="explorer_run", prefer=fills_every_panel,
               prefer_why="a VAE with a 2-number code, which fills every panel here (sliders, prior samples, "
                           "the manifold grid)")
loaded = loaded_run(run)
if loaded is None:
    st.stop()
data = dataset_tensors(loaded.dataset)
codes = split_codes(loaded)  # (N, latent_dim): the test codes, in test-split order
x_test, y_test, classes = data.x_test, data.y_test, data.classes
n_test = len(codes)
INDEX_HELP = f"index into the test split (0–{n_test - 1})"
vae = loaded.capabilities.prior  # sample() draws from a prior N(0, I)

y = None  # the class a conditional model decodes with
if loaded.conditional:
    if "explorer_class" not in st.session_state:
        st.session_state["explorer_class"] = query_value("y", 0, int, lambda v: 0 <= v < len(classes))
    y = st.selectbox("Decode as class", range(len(classes)), key="explorer_class", format_func=lambda c: classes[c],
                     help=f"{loaded.model_name} is conditioned on the label: g(z, y)")
    set_query(y=y)


def show(container, png: bytes, caption: str | None = None) -> None:
    # output_format="PNG": left to "auto", st.image re-encodes a grey PNG as JPEG and blurs the pixels
    container.image(png, caption=caption, output_format="PNG")


def caption(i: int) -> str:
    label = int(y_test[i])
    return f"test image {i}" + (f" · {classes[label]}" if 0 <= label < len(classes) else "")


def image_picker(label: str, key: str, default: int, container) -> int:
    """A test-image index (its value from the URL on first view) and its thumbnail under it."""
    if not 0 <= st.session_state.get(key, -1) < n_test:  # first view (or a smaller dataset now): the link's
        st.session_state[key] = default
    i = int(container.number_input(label, 0, n_test - 1, step=1, key=key, help=INDEX_HELP))
    show(container, image_png(x_test[i, 0], scale=3), caption(i))
    return i


def linked_index(param: str, default: int) -> int:
    return query_value(param, default, int, lambda v: 0 <= v < n_test)


def linked_indices(param: str, default: list[int]) -> list[int]:
    return query_value(param, default, lambda s: [int(v) for v in s.split(",")],
                       lambda v: len(v) == len(default) and all(0 <= i < n_test for i in v))


@st.cache_data(max_entries=256, show_spinner=False)
def strip_of(run_path: str, token: tuple, image: int | None, y: int | None, i: int, ticks: tuple) -> list[str]:
    """Slider i's images at each of its positions, the others at `ticks`, from z₀ = the code of test image
    `image` (None: the mean code), as base64 PNGs: moving one slider asks the decoder nothing new."""
    loaded = loaded_at(run_path, token)
    directions = directions_of(run_path, token)
    z0 = directions.mean if image is None else split_codes(loaded)[image]
    images = on_model_thread(slider_strip, loaded, directions, z0, from_ticks(ticks), i, y)
    return [png_text(image_png(x)) for x in images]


def moved_by_the_server() -> None:
    """The page set the sliders itself (Reset, a link, another run): the browser takes its positions."""
    st.session_state["explorer_origin"] = st.session_state.get("explorer_origin", 0) + 1


def reset(keys: list[str]) -> None:
    for key in keys:
        st.session_state[key] = 0.0
    moved_by_the_server()


@st.fragment
def slider_panel() -> None:
    directions = directions_of(loaded.path, loaded.token)
    k = len(directions.std)
    keys = [f"explorer_c{i}" for i in range(k)]
    axes = loaded.latent_dim <= MAX_SLIDERS  # one slider per latent axis, else principal directions
    owner = loaded.run_id  # not the step: a run still training keeps its slider positions across checkpoints
    # First view, another run, or a session that lost them: the sliders from the link, else 0. (They are plain
    # session keys, not widgets, so a visit to another page keeps them.)
    if st.session_state.get("explorer_owner") != owner or any(key not in st.session_state for key in keys):
        linked = None
        if "z" in st.query_params:
            linked = query_value("z", None, lambda s: [float(v) for v in s.split(",")],
                                 lambda v: len(v) == k and all(math.isfinite(c) for c in v))
            if linked is None and "explorer_owner" not in st.session_state:  # a run switch: just start at 0
                st.warning(f"The link's slider positions (`?z=`) do not fit this run ({k} sliders); starting at 0.")
        for key, c in zip(keys, linked or [0.0] * k):
            st.session_state[key] = from_ticks(to_ticks([c]))[0]
        st.session_state["explorer_owner"] = owner
        st.session_state["explorer_active"] = 0
        moved_by_the_server()
    if not 0 <= st.session_state.get("explorer_image", -1) < n_test:
        st.session_state["explorer_image"] = linked_index("image", 0)
    if "explorer_start" not in st.session_state:
        st.session_state["explorer_start"] = "a test image" if "image" in st.query_params else "the mean code"

    top = st.columns([2, 1, 1, 2], vertical_alignment="bottom")
    top[0].radio("Start from", ["the mean code", "a test image"], key="explorer_start", horizontal=True,
                 help="z₀: the mean of the test codes, or the code of one test image")
    from_image = st.session_state["explorer_start"] == "a test image"
    top[1].number_input("Test image", 0, n_test - 1, step=1, key="explorer_image", disabled=not from_image,
                        help=INDEX_HELP)
    top[2].button("Reset", key="explorer_reset", icon=":material/restart_alt:", on_click=reset, args=(keys,),
                  help="every slider back to 0: z = z₀")
    image = int(st.session_state["explorer_image"])
    coords = [float(st.session_state[key]) for key in keys]
    active = min(max(int(st.session_state.get("explorer_active", 0)), 0), k - 1)
    ticks = to_ticks(coords)
    others = tuple(0 if i == active else t for i, t in enumerate(ticks))  # the strip does not depend on its own
    names = [f"z{str(i + 1).translate(SUB)}" if axes else f"direction {i + 1}" for i in range(k)]
    z0 = codes[image] if from_image else directions.mean
    with st.container(key="explorer_pad"):
        latent_sliders(
            "explorer_sliders", coords=coords, active=active, origin=st.session_state["explorer_origin"],
            labels=[f"{name} · {directions.explained[i]:.0%} of variance" for i, name in enumerate(names)],
            helps=[f"moves z by c·σ along {'this axis' if axes else 'this principal direction'}; "
                   f"σ = {directions.std[i]:.3g} is the test codes' spread along it" for i in range(k)],
            tiles=strip_of(loaded.path, loaded.token, image if from_image else None, y, active, others),
            caption="x̂ = g(z)",
            z={"z0": [float(v) for v in z0], "scaled": (directions.std[:, None] * directions.components).tolist()}
            if axes else None,
            start={"png": png_text(image_png(x_test[image, 0])), "caption": f"start: {caption(image)}"}
            if from_image else None,
            on_change=functools.partial(take_positions, "explorer_sliders", keys, "explorer_active",
                                        "explorer_origin"))
    set_query(z=",".join(f"{c:g}" for c in coords) if any(coords) else None, image=image if from_image else None)


@st.fragment
def interpolation_panel() -> None:
    st.subheader("Interpolation")
    a0, b0 = linked_index("a", 0), linked_index("b", 1)
    ca, cb, cs = st.columns([1, 1, 2])
    a = image_picker("Image a", "explorer_a", a0, ca)
    b = image_picker("Image b", "explorer_b", b0, cb)
    steps = cs.slider("Steps", 3, 15, 10, key="explorer_steps")
    for method, text in (("linear", "linear: z(t) = (1 − t)·z_a + t·z_b"),
                         ("slerp", "spherical (slerp): along the arc between z_a and z_b, keeping their norm")):
        with cs.container(key=f"explorer_strip_{method}"):
            show(st, image_png(interpolation_images(loaded, codes[a], codes[b], steps, method, y), scale=2), text)
    set_query(a=a, b=b)


@st.fragment
def arithmetic_panel() -> None:
    st.subheader("Latent arithmetic")
    st.caption("Decode z_a − z_b + z_c: the change from b to a, applied to c. On the right, the same sum done on "
               "pixels, which only overlays the images.")
    linked = linked_indices("arith", [0, 1, 2])
    cols = st.columns(5, vertical_alignment="bottom")
    a, b, c = (image_picker(label, f"explorer_arith_{name}", i, col)
               for label, name, i, col in zip(("a", "− b", "+ c"), "abc", linked, cols))
    with cols[3].container(key="explorer_arith_result"):
        show(st, image_png(decode(loaded, arithmetic(codes[a], codes[b], codes[c]), y)[0], scale=3),
             "= g(z_a − z_b + z_c)")
    show(cols[4], image_png(arithmetic(x_test[a, 0], x_test[b, 0], x_test[c, 0]), scale=3), "pixels: x_a − x_b + x_c")
    set_query(arith=f"{a},{b},{c}")


@st.fragment
def samples_panel() -> None:
    if "explorer_seed" not in st.session_state:
        st.session_state["explorer_seed"] = query_value("seed", 0, int, lambda v: 0 <= v < 2**31)
    st.subheader("Samples from the prior" if vae else "Samples")
    st.caption("Codes drawn from the prior z ~ N(0, I) that the VAE's KL term pulls every q(z|x) towards, "
               "decoded." if vae else
               f"A {loaded.model_name} has no prior: these codes are drawn from a Gaussian fitted to its "
               "training codes, N(mean, diag(std²)), after training; samples can land where no real code lies.")
    if st.button("New samples", key="explorer_reseed", icon=":material/casino:"):
        st.session_state["explorer_seed"] += 1
    seed = st.session_state["explorer_seed"]
    with st.container(key="explorer_samples"):
        show(st, grid_of(loaded.path, loaded.token, "samples", 8, seed, y), f"8×8 samples, seed {seed}")
    set_query(seed=seed or None)


st.subheader("Move through z")
slider_panel()
if shown("explorer_interpolation"):
    with st.container(key="explorer_interpolation"):
        interpolation_panel()
if shown("explorer_arithmetic"):
    with st.container(key="explorer_arithmetic"):
        arithmetic_panel()
if loaded.latent_dim == 2:
    left, right = st.columns(2, gap="large")
    with left:
        samples_panel()
    with right:
        st.subheader("The 2-D manifold")
        st.caption("Decoded codes on a 15×15 grid " + ("at the Gaussian quantiles of the prior N(0, I)"
                   if vae else "spanning the central 95% of the test codes") + "; the top row has the highest z₂.")
        with st.container(key="explorer_manifold"):
            show(st, grid_of(loaded.path, loaded.token, "manifold", 15, 0, y))
else:
    samples_panel()
    st.subheader("The 2-D manifold")
    two_d = [r for r in runs if ((run_config(r) or {}).get("model_config") or {}).get("latent_dim") == 2]
    if two_d:
        st.caption(f"The manifold grid needs a 2-number code: {md(run_label(two_d[0]))} has one. Pick it above.")
    else:
        model, model_config, train = demo_settings("vae_2d")
        need_model(f"A {loaded.latent_dim}-number code cannot be laid out on a page, so there is no manifold grid "
                   "for this run. A VAE with a 2-number code can: every point of its plane decodes to an image. "
                   f"Train one ({train['steps']:,} steps in the background) and pick it above.",
                   model, model_config, train, key="explorer_need_2d",
                   button=f"Train a 2-D VAE ({train['steps']:,} steps)", name="2-D VAE")
