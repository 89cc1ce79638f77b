"""The page list, written once: app.py routes with it, Home's tour shows it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageInfo:
    path: str  # the script, e.g. "pages/draw.py"
    title: str
    icon: str
    section: str  # the navigation's group
    blurb: str  # one line for Home's tour ("" for Home itself)
    url_path: str | None = None  # None: the default page at "/"
    state_prefix: str = ""  # the prefix of its session-state keys (STYLE: keys prefixed by page); "": none kept


PAGES = (
    PageInfo("pages/home.py", "Home", ":material/home:", "Start", ""),
    PageInfo("pages/train.py", "Train", ":material/model_training:", "Start",
             "pick any of the autoencoders, set its knobs, watch several train at once", "train",
             state_prefix="train_"),
    PageInfo("pages/lessons.py", "Lessons", ":material/school:", "Start",
             "the course step by step: each lesson is one link that opens a page ready to try", "lessons"),
    PageInfo("pages/draw.py", "Draw", ":material/draw:", "Autoencoders",
             "draw a digit and see it encoded, rebuilt and recognised", "draw", state_prefix="draw_"),
    PageInfo("pages/noise_lab.py", "Noise lab", ":material/blur_on:", "Autoencoders",
             "add noise and watch a denoising autoencoder remove it", "noise_lab", state_prefix="noise_"),
    PageInfo("pages/explorer.py", "Latent explorer", ":material/tune:", "Autoencoders",
             "scrub the code z with sliders, interpolate, sample", "explorer", state_prefix="explorer_"),
    PageInfo("pages/latent_map.py", "Latent map", ":material/scatter_plot:", "Autoencoders",
             "a UMAP map of the codes: watch clusters form", "latent_map"),
    PageInfo("pages/pca_vs_ae.py", "PCA vs autoencoder", ":material/compare:", "Autoencoders",
             "where a linear model stops and depth pays", "pca_vs_ae", state_prefix="pcae_"),
    PageInfo("pages/anomaly.py", "Anomaly detection", ":material/troubleshoot:", "Autoencoders",
             "train on one digit, spot the others", "anomaly", state_prefix="anomaly_"),
    PageInfo("pages/sequences.py", "Sequences", ":material/timeline:", "Sequences",
             "RNN, LSTM and GRU encoder–decoders on time series: z, the latent map, an LSTM's gates", "sequences"),
    PageInfo("pages/ts_anomaly.py", "Time-series anomalies", ":material/monitor_heart:", "Sequences",
             "windows of an ECG, their reconstruction error beside the matrix profile", "ts_anomaly"),
    PageInfo("pages/gan_studio.py", "GAN studio", ":material/auto_awesome:", "GANs",
             "train GANs and watch their samples evolve; judge them; step them by hand", "gan_studio",
             state_prefix="gan_"),
    PageInfo("pages/gan_playground.py", "2-D GAN playground", ":material/bubble_chart:", "GANs",
             "watch a GAN learn a ring of points, live: D's surface, G's gradients", "gan_playground",
             state_prefix="toy_"),
    PageInfo("pages/room.py", "Room", ":material/groups:", "Workshop",
             "the presenter's view of the room: who is here, what trains and waits, the class board", "room"),
)


def navigation() -> dict:
    """{section: [st.Page, …]} for st.navigation, in PAGES' order (the first page is the default)."""
    import streamlit as st

    out: dict[str, list] = {}
    for i, page in enumerate(PAGES):
        extra = {"url_path": page.url_path} if page.url_path else {}
        out.setdefault(page.section, []).append(st.Page(page.path, title=page.title, icon=page.icon,
                                                        default=i == 0, **extra))
    return out


def tour() -> tuple[PageInfo, ...]:
    """Every page but Home, for its tour."""
    return PAGES[1:]
