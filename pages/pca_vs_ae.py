"""PCA vs autoencoder: error against latent size, the same images through each, and principal angles.

Link state: `?k=…` (the latent size), `?lin=…&ae=…` (the linear and the non-linear autoencoder run).
"""

import numpy as np
import streamlit as st

from engine.data.images import image_png
from engine.lab import pca_vs_ae as lab
from engine.models import label as model_label
from engine.runs import ACTIVE, is_plain
from engine.train import fixed_test_batch
from ui.charts.pca_vs_ae import angle_figure, error_figure
from ui.entry import ensure_app
from ui.resources import dataset_tensors, job_manager, loaded_run
from ui.session import actor, shared_runs
from ui.runs import pick_run, usable_runs
from ui.sidebar import usable_dataset
from ui.text import explain
from ui.urlstate import query_value, set_query
from ui.escape import md

ensure_app()  # a deep link on a fresh server runs app.py first (see ui/entry.py)

PCA_FIT = max(lab.PCA_LATENT_DIMS)

st.title(":material/compare: PCA vs autoencoder")
explain("pca_vs_ae")
dataset = usable_dataset()


@st.cache_resource(max_entries=4, show_spinner="Fitting PCA on the train split…")
def pca_fit(dataset_name: str, latent_dim: int):
    return lab.fit_pca(dataset_tensors(dataset_name), latent_dim)


@st.cache_data(max_entries=4, show_spinner="PCA's error at every latent size…")
def pca_errors(dataset_name: str) -> dict[int, float]:
    data = dataset_tensors(dataset_name)
    return lab.pca_curve(data, pca=pca_fit(dataset_name, min(PCA_FIT, len(data.x_train))))


def sweep_rows() -> list[dict]:
    return lab.sweep_rows(job_manager().runs(actor(), shared_runs()), dataset.name)


def cancel_sweep(run_ids: list[str]) -> None:
    for run_id in run_ids:
        try:
            job_manager().cancel(run_id, actor=actor())
        except Exception as e:  # finished or deleted meanwhile: nothing left to stop
            st.toast(f"Run {md(run_id)}: {md(e)}")


def sweep_panel() -> None:
    rows = sweep_rows()
    missing = lab.missing_sweep(rows)
    active = [r for r in rows if r["state"] in ACTIVE]
    sweeping = [r["run"] for r in active if r["sweep"]]
    left, mid, right = st.columns([1.2, 1, 3], vertical_alignment="center")
    label = f"Run the sweep ({len(missing)} runs)" if missing else "Sweep running…" if active else "Sweep complete"
    steps = sorted({lab.sweep_train(m, k)["steps"] for m in lab.SWEEP_TRAIN for k in lab.SWEEP_LATENT_DIMS})
    if left.button(label, key="pcae_sweep", type="primary", icon=":material/play_arrow:", disabled=not missing,
                   help=f"Trains a {' and a '.join(model_label(m) for m in lab.SWEEP_TRAIN)} at each latent size "
                        f"{', '.join(map(str, lab.SWEEP_LATENT_DIMS))} that has none, "
                        f"{' to '.join(f'{s:,}' for s in steps)} steps each, two at a time"):
        try:
            for model, k in missing:
                job_manager().submit(model, dataset.name, {"latent_dim": k}, lab.sweep_train(model, k),
                                     name=lab.sweep_run_name(model, k), actor=actor())
        except Exception as e:
            st.error(f"Could not start the sweep: {md(e)}")
        else:
            st.rerun(scope="app")  # redraw with the live panel
    if sweeping:
        mid.button(f"Cancel the sweep ({len(sweeping)} left)", key="pcae_cancel", icon=":material/stop:",
                   on_click=cancel_sweep, args=(sweeping,),
                   help="Stops the sweep's runs still queued or training; finished points stay on the chart")
    if active:
        done = sum(1 for r in rows if r["sweep"] and r["state"] == "done")
        right.caption(f"{len(active)} run(s) training or queued, {done} finished; the chart fills in as they "
                      "finish.")
    else:
        right.caption("Points are finished runs (the best test MSE at each size); the line is PCA, fitted on the "
                      "train split.")
    pca, points = pca_errors(dataset.name), lab.curve_points(rows)
    st.plotly_chart(error_figure(pca, points), key="pcae_error_chart")
    for model, k, ratio in lab.behind_pca(points, pca):
        trained = max((r["step"] for r in rows if r["model"] == model and r["latent_dim"] == k and r["mse"]),
                      default=0)
        st.caption(f"At k = {k} the {model_label(model)} is at {ratio:.2f}× PCA's error after {trained:,} steps. "
                   "PCA's error falls as k grows, so a non-linear AE needs ever more steps to beat it: it is "
                   "undertrained, not worse in principle (the sweep gives its largest size more steps for that "
                   "reason). Train one for more steps from the Train page to see it pull ahead.")
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


@st.fragment
def same_size_panel(sizes: list[int]) -> None:
    if st.session_state.get("pcae_k") not in sizes:
        st.session_state["pcae_k"] = query_value("k", 16 if 16 in sizes else sizes[0], int, lambda v: v in sizes)
    k = st.select_slider("Latent size k", sizes, key="pcae_k")
    set_query(k=k)
    def at_k(config: dict) -> bool:
        return is_plain(config) and config["model_config"].get("latent_dim") == k

    linear_models = lab.linear_models()
    nonlinear_models = [m for m in lab.curve_models() if m not in linear_models]
    pickers = st.columns(2)
    runs = {}
    for column, param, models, kind in ((pickers[0], "lin", linear_models, "linear AE"),
                                        (pickers[1], "ae", nonlinear_models, "non-linear AE")):
        runs[param] = pick_run(usable_runs(dataset.name, models=models, predicate=at_k), key=f"pcae_{param}",
                               label=f"{kind[0].upper()}{kind[1:]} run", param=param, container=column)
        if runs[param] is None:
            set_query(**{param: None})
            column.info(f"No {kind} with latent size {k} yet: run the sweep above.", icon=":material/model_training:")
    try:
        pca = pca_fit(dataset.name, max(PCA_FIT, k)).truncate(k)
    except ValueError as e:  # a small dataset of the user's: fewer images than directions
        st.error(f"Cannot fit PCA with {k} directions on {dataset.name}: {md(e)}")
        return
    models = {f"PCA, k = {k}": pca}
    linear = loaded_run(runs["lin"]) if runs["lin"] else None
    for loaded in (linear, loaded_run(runs["ae"]) if runs["ae"] else None):
        if loaded is not None:
            models[f"{model_label(loaded.model_name)} ({loaded.run_id})"] = loaded.model
    data = dataset_tensors(dataset.name)
    x = data.x_test[fixed_test_batch(data, 10)]
    strips = st.container(key="pcae_images")  # keyed: tests find the images by it
    strips.image(image_png(x[:, 0], scale=3), caption="x: ten test images", output_format="PNG")
    for name, (x_hat, mse) in lab.reconstructions(models, x).items():
        strips.image(image_png(x_hat, scale=3), caption=f"{name}: MSE {mse:.4f} on these images",
                     output_format="PNG")

    st.subheader("Does the linear AE span PCA's subspace?")
    if linear is None:
        st.info(f"Principal angles need a linear AE with latent size {k}: run the sweep above, or pick a size "
                "that has one.", icon=":material/model_training:")
        return
    pca_basis, ae_basis = lab.basis(pca), lab.basis(linear.model)
    angles = lab.principal_angles(ae_basis, pca_basis)
    chance = lab.principal_angles(lab.random_basis(k, seed=k), pca_basis)
    st.plotly_chart(angle_figure(np.cos(angles), np.cos(chance)), key="pcae_angle_chart")
    m1, m2, m3 = st.columns(3)
    m1.metric("mean cos θᵢ", f"{np.cos(angles).mean():.3f}", help="1: the same subspace; a random one scores "
                                                                   f"{np.cos(chance).mean():.3f}")
    m2.metric("largest angle", f"{np.degrees(angles.max()):.1f}°")
    m3.metric("overlap of the AE's axes", f"{lab.axis_overlap(ae_basis):.2f}",
              help="mean |cos| between two decoder columns; PCA's axes are orthogonal: 0")
    st.caption("The columns of the linear AE's decoder weight $W_2 \\in \\mathbb{R}^{784\\times k}$ span the plane "
               "its reconstructions lie in. With MSE the optimum is PCA's subspace, but any invertible mix of PCA's "
               "axes spans it equally well, so the AE's own axes overlap and carry no order of importance. Angles "
               "that stay large mean the AE has not converged yet (train it longer).")


rows = sweep_rows()
st.subheader("Reconstruction error against latent size")
(live_sweep_panel if any(r["state"] in ACTIVE for r in rows) else still_sweep_panel)()
st.subheader("The same images through each model")
same_size_panel(sorted(set(lab.SWEEP_LATENT_DIMS) | {r["latent_dim"] for r in rows if 0 < r["latent_dim"] <= 784}))
