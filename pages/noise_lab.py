"""Noise lab: corrupt an image and compare what a denoising AE, a plain AE and PCA make of it.

Link state: `?dn=…&ae=…&pca=…` (the three runs), `?image=N`, `?noise=KIND&level=L&seed=S`.
"""

import math
import random

import streamlit as st

from engine.data.noise import LEVEL_HELP
from engine.lab import noise_lab
from engine.lab.demos import DEMOS, demo_settings
from engine.runs import is_denoising, is_plain
from ui.charts.noise_lab import NOISE_LABELS, psnr_figure
from ui.entry import ensure_app
from ui.images import show_image
from ui.lessons import shown
from ui.resources import dataset_tensors, loaded_run
from ui.runs import need_model, pick_run, run_config, usable_runs
from ui.sidebar import usable_dataset
from ui.text import explain
from ui.urlstate import query_value, set_query
from ui.escape import md

ensure_app()  # a deep link on a fresh server runs app.py first (see ui/entry.py)

# (URL parameter, title, picker filter, the demo a need_model button trains: engine.lab.demos, or PCA's settings)
SLOTS = [
    ("dn", "Denoising AE", dict(models=noise_lab.unconditional_models(), predicate=is_denoising), "denoiser"),
    ("ae", "Autoencoder", dict(models=noise_lab.autoencoders(), predicate=is_plain), "starter"),
    ("pca", "PCA", dict(models=noise_lab.baselines(), predicate=is_plain), ("pca", {"latent_dim": 32}, {})),
]

st.title(":material/blur_on: Noise lab")
explain("noise_lab")
dataset = usable_dataset()

models, cache_key = {}, []
for column, (param, title, which, demo) in zip(st.columns(3), SLOTS):
    with column:
        runs = usable_runs(dataset.name, **which)
        run = pick_run(runs, key=f"noise_{param}", label=title, param=param)
        if run is None:
            set_query(**{param: None})
            model, model_config, train = demo_settings(demo) if isinstance(demo, str) else demo
            if isinstance(demo, str):
                what, button = DEMOS[demo].what, f"Train the {demo} ({train['steps']:,} steps)"
            else:
                what = f"a PCA with {model_config['latent_dim']} components, fitted at once"
                button = "Fit a PCA (instant)"
            need_model(f"No {title.lower()} for {dataset.name} yet: train {what}.", model, model_config, train,
                       key=f"noise_need_{param}", button=button, name=title)
            continue
        if param != "pca":
            st.caption(f"Trained on {md(noise_lab.trained_on(run_config(run) or {}))}.")
        loaded = loaded_run(run)
        if loaded is not None:
            models[title] = loaded.model
            cache_key.append((title, loaded.path, loaded.token))


@st.cache_data(max_entries=32, show_spinner="Scoring 200 test images at 8 noise levels…")
def psnr_chart_table(dataset_name: str, kind: str, key: tuple, _models: dict):
    """(levels, name → PSNR per level) on a fixed batch of test images; `key` names the checkpoints."""
    return noise_lab.psnr_chart(_models, dataset_tensors(dataset_name), kind)


def psnr_text(value: float) -> str:
    return f"{value:.1f} dB" if math.isfinite(value) else "∞ dB"


def new_image(n_test: int) -> None:
    st.session_state["noise_image"] = random.randrange(n_test)


@st.fragment
def lab(models: dict, key: tuple) -> None:
    data = dataset_tensors(dataset.name)
    n_test = len(data.x_test)
    if "noise_image" not in st.session_state:
        st.session_state["noise_image"] = query_value("image", 0, int, lambda i: 0 <= i < n_test)
    if "noise_kind" not in st.session_state:
        st.session_state["noise_kind"] = query_value("noise", "gaussian", str, lambda k: k in noise_lab.NOISE_KINDS)
    if "noise_seed" not in st.session_state:
        st.session_state["noise_seed"] = query_value("seed", 0, int, lambda s: 0 <= s <= 10**6)

    source, kind_col, level_col, seed_col = st.columns([1.3, 1, 1.4, 1], vertical_alignment="bottom")
    drawing = st.session_state.get("drawing")
    use_drawing = drawing is not None and source.radio(
        "Image", ["Test image", "Your drawing"], key="noise_source", horizontal=True) == "Your drawing"
    if use_drawing:
        x = drawing
    else:
        left, right = source.columns([3, 1], vertical_alignment="bottom")
        index = left.number_input("Test image", 0, n_test - 1, key="noise_image",
                                  help=f"An index into {dataset.name}'s test split")
        right.button(":material/casino:", key="noise_random", on_click=new_image, args=(n_test,),
                     help="A random test image")
        x = data.x_test[index, 0]
        set_query(image=index)
    kind = kind_col.selectbox("Noise", noise_lab.NOISE_KINDS, key="noise_kind", format_func=lambda k: NOISE_LABELS[k]) \
        if shown("noise_kind") else st.session_state["noise_kind"]
    level_key = f"noise_level_{kind}"  # one remembered level per kind: their ranges differ
    if level_key not in st.session_state:
        linked = query_value("level", None, float, lambda v: 0 <= v <= noise_lab.LEVEL_MAX[kind])
        st.session_state[level_key] = linked if linked is not None and st.query_params.get("noise") == kind \
            else noise_lab.DEFAULT_LEVEL[kind]
    level = level_col.slider("Noise level", 0.0, noise_lab.LEVEL_MAX[kind],
                             step=0.05 if kind != "salt_pepper" else 0.02, key=level_key, help=LEVEL_HELP[kind])
    seed = seed_col.number_input("Noise seed", 0, 10**6, key="noise_seed", help="The same seed, the same noise") \
        if shown("noise_seed") else st.session_state["noise_seed"]
    set_query(noise=kind, level=f"{level:g}", seed=seed)

    try:
        out = noise_lab.denoise(models, x, kind, level, seed)
        levels, table = psnr_chart_table(dataset.name, kind, key, models)
    except (ValueError, RuntimeError) as e:  # a damaged checkpoint, a drawing of the wrong shape…
        st.error(f"Cannot run the models on this image: {md(e)}")
        return
    cells = [("clean", "clean x", out.x, None), ("noisy", "noisy x̃", out.x_noisy, out.noisy_psnr)]
    cells += [(param, f"{title} x̂", out.outputs.get(title), out.psnr.get(title)) for param, title, *_ in SLOTS]
    for column, (name, caption, image, score) in zip(st.columns(5), cells):
        cell = column.container(key=f"noise_out_{name}")  # keyed: tests find each image by it
        if image is None:
            cell.caption(f"{caption[:-3]}: no model yet (see above)")
            continue
        show_image(image, caption, container=cell)
        if name == "clean":
            cell.metric("PSNR", "∞ dB", help="The clean image against itself")
        elif name == "noisy":
            cell.metric("PSNR", psnr_text(score), help="The noisy input against the clean x: the baseline to beat")
        else:
            gain = score - out.noisy_psnr
            cell.metric("PSNR", psnr_text(score), help="This model's x̂ of the noisy input, against the clean x",
                        delta=f"{gain:+.1f} dB vs noisy" if math.isfinite(gain) else None)

    st.plotly_chart(psnr_figure(levels, table, level, kind), key="noise_chart")
    st.caption("PSNR of each level's mean MSE over the same test images (all models see the same noise). "
               "Above the dotted grey line a model removes noise; below it, it makes the image worse.")


lab(models, tuple(cache_key))
