"""Noise lab: corrupt an image and compare what a denoising AE, a plain AE and PCA make of it.

Link state: `?dn=…&ae=…&pca=…` (the three runs), `?image=N`, `?noise=KIND&level=L&seed=S`.
"""

import math
import random

import plotly.graph_objects as go
import streamlit as st

from engine import compare
from engine.images import image_png
from pages.common import (ensure_app, dataset_tensors, explain, loaded_run, need_model, pick_run, query_value,
                          usable_dataset, set_query, usable_runs)

ensure_app()  # a deep link on a fresh server runs app.py first (see pages/common.py)

# (URL parameter, title, picker filter, the model a need_model button trains, its config, its training)
SLOTS = [
    ("dn", "Denoising AE", dict(models=compare.unconditional_models(), predicate=compare.is_denoising),
     "denoising_ae", {"latent_dim": 32}, {"seconds": 20}),
    ("ae", "Autoencoder", dict(models=("ae", "conv_ae"), predicate=compare.is_plain), "conv_ae", {"latent_dim": 32},
     {"seconds": 15}),
    ("pca", "PCA", dict(models=("pca",), predicate=compare.is_plain), "pca", {"latent_dim": 32}, {}),
]
COLOURS = {"Denoising AE": "#2ca02c", "Autoencoder": "#1f77b4", "PCA": "#ff7f0e", compare.NOISY: "#7f7f7f"}

st.title(":material/blur_on: Noise lab")
explain(
    "Corrupt an image $x$ into $\\tilde{x}$ and let three models rebuild it. A **denoising autoencoder** was "
    "trained on exactly this task, corrupted inputs with clean targets (Vincent et al. 2008). A plain autoencoder "
    "and PCA only ever saw clean images, yet squeezing $\\tilde{x}$ through what they learned removes some noise "
    "too. Every output is scored against the *clean* $x$ by its PSNR (higher is better); the noisy input's own "
    "PSNR is the baseline to beat.",
    r"\tilde{x} = \mathrm{corrupt}(x),\qquad \hat{x} = g\big(f(\tilde{x})\big),\qquad "
    r"\min_{f,g}\ \lVert x - g(f(\tilde{x}))\rVert^2,\qquad "
    r"\mathrm{PSNR}(x,\hat{x}) = 10\,\log_{10}\frac{1}{\mathrm{MSE}(x,\hat{x})}\ \text{dB}")
dataset = usable_dataset()

models, cache_key = {}, []
for column, (param, title, which, model, model_config, train) in zip(st.columns(3), SLOTS):
    with column:
        runs = usable_runs(dataset.name, **which)
        run = pick_run(runs, key=f"noise_{param}", label=title, param=param)
        if run is None:
            set_query(**{param: None})
            need_model(f"No {title.lower()} for {dataset.name} yet.", model, model_config, train,
                       key=f"noise_need_{param}",
                       button=f"Train a {model}" + (f" (~{train['seconds']:g} s)" if train else " (instant)"))
            continue
        loaded = loaded_run(run)
        if loaded is not None:
            models[title] = loaded.model
            cache_key.append((title, loaded.path, loaded.token))


@st.cache_data(max_entries=32, show_spinner="Scoring 200 test images at 8 noise levels…")
def psnr_chart_table(dataset_name: str, kind: str, key: tuple, _models: dict):
    """(levels, name → PSNR per level) on a fixed batch of test images; `key` names the checkpoints."""
    return compare.psnr_chart(_models, dataset_tensors(dataset_name), kind)


def psnr_figure(levels, table: dict, level: float, kind: str) -> go.Figure:
    fig = go.Figure()
    for name, values in table.items():
        fig.add_trace(go.Scatter(x=levels, y=values, name=name, mode="lines+markers",
                                 line=dict(color=COLOURS.get(name), dash="dot" if name == compare.NOISY else None)))
    fig.add_vline(x=level, line_dash="dash", line_color="#999", annotation_text="this image's level",
                  annotation_position="top right")
    fig.update_layout(height=330, margin=dict(l=10, r=10, t=40, b=10), yaxis_title="PSNR (dB)",
                      title=dict(text=f"PSNR against {compare.NOISE_LABELS[kind]} noise level "
                                      f"({compare.CHART_IMAGES} test images)", font_size=14),
                      xaxis_title=f"level: {compare.LEVEL_HELP[kind]}",
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"))
    return fig


def psnr_text(value: float) -> str:
    return f"{value:.1f} dB" if math.isfinite(value) else "∞ dB"


def show_image(x, caption: str, container) -> None:
    # PNG on purpose: Streamlit's default re-encodes to JPEG, which smears 28×28 digits (and the noise)
    container.image(image_png(x, scale=6), caption=caption, output_format="PNG")


def new_image(n_test: int) -> None:
    st.session_state["noise_image"] = random.randrange(n_test)


@st.fragment
def lab(models: dict, key: tuple) -> None:
    data = dataset_tensors(dataset.name)
    n_test = len(data.x_test)
    if "noise_image" not in st.session_state:
        st.session_state["noise_image"] = query_value("image", 0, int, lambda i: 0 <= i < n_test)
    if "noise_kind" not in st.session_state:
        st.session_state["noise_kind"] = query_value("noise", "gaussian", str, lambda k: k in compare.NOISE_KINDS)
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
    kind = kind_col.selectbox("Noise", compare.NOISE_KINDS, key="noise_kind",
                              format_func=lambda k: compare.NOISE_LABELS[k])
    level_key = f"noise_level_{kind}"  # one remembered level per kind: their ranges differ
    if level_key not in st.session_state:
        linked = query_value("level", None, float, lambda v: 0 <= v <= compare.LEVEL_MAX[kind])
        st.session_state[level_key] = linked if linked is not None and st.query_params.get("noise") == kind \
            else compare.DEFAULT_LEVEL[kind]
    level = level_col.slider("Noise level", 0.0, compare.LEVEL_MAX[kind], step=0.05 if kind != "salt_pepper" else 0.02,
                             key=level_key, help=compare.LEVEL_HELP[kind])
    seed = seed_col.number_input("Noise seed", 0, 10**6, key="noise_seed", help="The same seed, the same noise")
    set_query(noise=kind, level=f"{level:g}", seed=seed)

    try:
        out = compare.denoise(models, x, kind, level, seed)
        levels, table = psnr_chart_table(dataset.name, kind, key, models)
    except (ValueError, RuntimeError) as e:  # a damaged checkpoint, a drawing of the wrong shape…
        st.error(f"Cannot run the models on this image: {e}")
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
