"""PCA vs autoencoder: error against latent size, the same images through each, and principal angles.

Link state: `?k=…` (the latent size), `?lin=…&ae=…` (the linear and the non-linear autoencoder run).
"""

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from engine import compare
from engine.images import image_png
from engine.runs import ACTIVE
from engine.train import fixed_test_batch
from pages.common import (ensure_app, dataset_tensors, explain, job_manager, loaded_run, pick_run, query_value,
                          usable_dataset, set_query, usable_runs)

ensure_app()  # a deep link on a fresh server runs app.py first (see pages/common.py)

NAMES = {"pca": "PCA", "linear_ae": "linear AE", "ae": "dense AE", "conv_ae": "conv AE"}
COLOURS = {"pca": "#ff7f0e", "linear_ae": "#9467bd", "ae": "#1f77b4", "conv_ae": "#2ca02c"}
SYMBOLS = {"linear_ae": "square", "ae": "circle", "conv_ae": "diamond"}
PCA_FIT = max(compare.PCA_LATENT_DIMS)

st.title(":material/compare: PCA vs autoencoder")
explain(
    "PCA keeps the $k$ directions of largest variance and projects onto them: the best any *linear* map "
    "through $k$ numbers can do under squared error. A **linear autoencoder** trained with MSE ends up spanning "
    "exactly that subspace (Baldi & Hornik 1989), only with axes that are neither orthogonal nor ordered; a "
    "**non-linear** autoencoder can bend its code around the data and beat PCA at the same $k$. Principal angles "
    "$\\theta_i$ measure how far two $k$-dimensional subspaces are apart ($\\cos\\theta_i = 1$: a shared direction).",
    r"\text{PCA: }\hat{x} = \mu + W W^\top (x - \mu),\quad W \in \mathbb{R}^{784\times k},\ W^\top W = I"
    r"\qquad\quad \text{AE: }\hat{x} = g\big(f(x)\big)",
    r"\cos\theta_i = \sigma_i\big(Q_A^\top Q_B\big),\qquad Q_A, Q_B \text{ orthonormal bases of the two subspaces}")
dataset = usable_dataset()


@st.cache_resource(max_entries=4, show_spinner="Fitting PCA on the train split…")
def pca_fit(dataset_name: str, latent_dim: int):
    return compare.fit_pca(dataset_tensors(dataset_name), latent_dim)


@st.cache_data(max_entries=4, show_spinner="PCA's error at every latent size…")
def pca_errors(dataset_name: str) -> dict[int, float]:
    data = dataset_tensors(dataset_name)
    return compare.pca_curve(data, pca=pca_fit(dataset_name, min(PCA_FIT, len(data.x_train))))


def sweep_rows() -> list[dict]:
    return compare.sweep_rows(job_manager().runs(), dataset.name)


def error_figure(rows: list[dict]) -> go.Figure:
    pca = pca_errors(dataset.name)
    fig = go.Figure(go.Scatter(x=list(pca), y=list(pca.values()), name="PCA (closed form)", mode="lines+markers",
                               line=dict(color=COLOURS["pca"]), marker=dict(size=5)))
    for model, points in compare.curve_points(rows).items():
        k, mse, ids = zip(*points)
        fig.add_trace(go.Scatter(x=k, y=mse, name=NAMES[model], mode="lines+markers", customdata=ids,
                                 hovertemplate="latent %{x}: MSE %{y:.4f}<br>run %{customdata}<extra></extra>",
                                 marker=dict(size=11, symbol=SYMBOLS[model], color=COLOURS[model]),
                                 line=dict(color=COLOURS[model], dash="dot", width=1)))
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=10),
                      title=dict(text="Test reconstruction error against latent size", font_size=14),
                      xaxis=dict(type="log", title="latent size k", tickvals=list(pca)),
                      yaxis=dict(title="test MSE per pixel", rangemode="tozero"),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"))
    return fig


def sweep_panel() -> None:
    rows = sweep_rows()
    missing = compare.missing_sweep(rows)
    active = [r for r in rows if r["state"] in ACTIVE]
    left, right = st.columns([1, 3], vertical_alignment="center")
    label = f"Run the sweep ({len(missing)} runs)" if missing else "Sweep running…" if active else "Sweep complete"
    if left.button(label, key="pcae_sweep", type="primary", icon=":material/play_arrow:", disabled=not missing,
                   help=f"Trains a {' and a '.join(NAMES[m] for m in compare.SWEEP_MODELS)} at each latent size "
                        f"{', '.join(map(str, compare.SWEEP_LATENT_DIMS))} that has none, "
                        f"~{compare.SWEEP_TRAIN['ae']['seconds']:g} s each, two at a time"):
        try:
            for model, k in missing:
                job_manager().submit(model, dataset.name, {"latent_dim": k}, compare.SWEEP_TRAIN[model])
        except Exception as e:  # noqa: BLE001 - whatever went wrong, say it on the page
            st.error(f"Could not start the sweep: {e}")
        else:
            st.rerun(scope="app")  # redraw with the live panel
    right.caption(f"{len(active)} run(s) training or queued; the chart fills in as they finish." if active else
                  "Points are finished runs (the best test MSE at each size); the line is PCA, fitted on the "
                  "train split.")
    st.plotly_chart(error_figure(rows), key="pcae_error_chart")
    if st.session_state.get("pcae_was_active") and not active:
        st.session_state["pcae_was_active"] = False
        st.rerun(scope="app")  # the sweep finished: stop polling, offer the new runs below
    st.session_state["pcae_was_active"] = bool(active)


@st.fragment(run_every=2.0)
def live_sweep_panel() -> None:
    sweep_panel()


@st.fragment
def still_sweep_panel() -> None:
    sweep_panel()


def angle_figure(cos_ae: np.ndarray, cos_random: np.ndarray) -> go.Figure:
    i = np.arange(1, len(cos_ae) + 1)
    fig = go.Figure([go.Bar(x=i, y=cos_ae, name="linear AE vs PCA", marker_color=COLOURS["linear_ae"]),
                     go.Bar(x=i, y=cos_random, name="random subspace vs PCA (chance)", marker_color="#c7c7c7")])
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10), barmode="group",
                      title=dict(text="cos θᵢ between the linear AE's decoder subspace and PCA's", font_size=14),
                      xaxis=dict(title="i (smallest angle first)", dtick=1 if len(i) <= 32 else None),
                      yaxis=dict(title="cos θᵢ", range=[0, 1.05]),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"))
    return fig


@st.fragment
def same_size_panel(sizes: list[int]) -> None:
    if st.session_state.get("pcae_k") not in sizes:
        st.session_state["pcae_k"] = query_value("k", 16 if 16 in sizes else sizes[0], int, lambda v: v in sizes)
    k = st.select_slider("Latent size k", sizes, key="pcae_k")
    set_query(k=k)
    at_k = lambda config: compare.is_plain(config) and config["model_config"].get("latent_dim") == k  # noqa: E731
    pickers = st.columns(2)
    runs = {}
    for column, param, models, kind in ((pickers[0], "lin", ("linear_ae",), "linear AE"),
                                        (pickers[1], "ae", ("ae", "conv_ae"), "non-linear AE")):
        runs[param] = pick_run(usable_runs(dataset.name, models=models, predicate=at_k), key=f"pcae_{param}",
                               label=f"{kind[0].upper()}{kind[1:]} run", param=param, container=column)
        if runs[param] is None:
            set_query(**{param: None})
            column.info(f"No {kind} with latent size {k} yet: run the sweep above.", icon=":material/model_training:")
    try:
        pca = compare.truncate_pca(pca_fit(dataset.name, max(PCA_FIT, k)), k)
    except ValueError as e:  # a small dataset of the user's: fewer images than directions
        st.error(f"Cannot fit PCA with {k} directions on {dataset.name}: {e}")
        return
    models = {f"PCA, k = {k}": pca}
    linear = loaded_run(runs["lin"]) if runs["lin"] else None
    for loaded in (linear, loaded_run(runs["ae"]) if runs["ae"] else None):
        if loaded is not None:
            models[f"{NAMES[loaded.model_name]} ({loaded.run_id})"] = loaded.model
    data = dataset_tensors(dataset.name)
    x = data.x_test[fixed_test_batch(data, 10)]
    strips = st.container(key="pcae_images")  # keyed: tests find the images by it
    strips.image(image_png(x[:, 0], scale=3), caption="x: ten test images", output_format="PNG")
    for name, (x_hat, mse) in compare.reconstructions(models, x).items():
        strips.image(image_png(x_hat, scale=3), caption=f"{name}: MSE {mse:.4f} on these images",
                     output_format="PNG")

    st.subheader("Does the linear AE span PCA's subspace?")
    if linear is None:
        st.info(f"Principal angles need a linear AE with latent size {k}: run the sweep above, or pick a size "
                "that has one.", icon=":material/model_training:")
        return
    pca_basis = compare.pca_basis(pca)
    angles = compare.principal_angles(compare.decoder_basis(linear.model), pca_basis)
    chance = compare.principal_angles(compare.random_basis(k, seed=k), pca_basis)
    st.plotly_chart(angle_figure(np.cos(angles), np.cos(chance)), key="pcae_angle_chart")
    m1, m2, m3 = st.columns(3)
    m1.metric("mean cos θᵢ", f"{np.cos(angles).mean():.3f}", help="1: the same subspace; a random one scores "
                                                                   f"{np.cos(chance).mean():.3f}")
    m2.metric("largest angle", f"{np.degrees(angles.max()):.1f}°")
    m3.metric("overlap of the AE's axes", f"{compare.axis_overlap(compare.decoder_basis(linear.model)):.2f}",
              help="mean |cos| between two decoder columns; PCA's axes are orthogonal: 0")
    st.caption("The columns of the linear AE's decoder weight $W_2 \\in \\mathbb{R}^{784\\times k}$ span the plane "
               "its reconstructions lie in. With MSE the optimum is PCA's subspace, but any invertible mix of PCA's "
               "axes spans it equally well, so the AE's own axes overlap and carry no order of importance. Angles "
               "that stay large mean the AE has not converged yet (train it longer).")


rows = sweep_rows()
st.subheader("Reconstruction error against latent size")
(live_sweep_panel if any(r["state"] in ACTIVE for r in rows) else still_sweep_panel)()
st.subheader("The same images through each model")
same_size_panel(sorted(set(compare.SWEEP_LATENT_DIMS) | {r["latent_dim"] for r in rows if 0 < r["latent_dim"] <= 784}))
