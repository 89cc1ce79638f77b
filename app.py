"""Latent Lab: the Streamlit entry point (`streamlit run app.py`).

Routes between pages with st.navigation (pages/ is listed here, not auto-discovered) and draws
the sidebar every page shares: the dataset picker and the device. All the work lives in engine/.
"""

import streamlit as st

from pages.common import app_entry, configure_server, sidebar, warm_umap

st.set_page_config(page_title="Latent Lab", page_icon=":material/science:", layout="wide")
configure_server()  # one torch thread for the pages' single-image requests
warm_umap()  # compile UMAP on a background thread once per server: the Latent map shows PCA meanwhile

page = st.navigation({
    "Start": [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    ],
    "Autoencoders": [
        st.Page("pages/draw.py", title="Draw", icon=":material/draw:", url_path="draw"),
        st.Page("pages/noise_lab.py", title="Noise lab", icon=":material/blur_on:", url_path="noise_lab"),
        st.Page("pages/explorer.py", title="Latent explorer", icon=":material/tune:", url_path="explorer"),
        st.Page("pages/latent_map.py", title="Latent map", icon=":material/scatter_plot:", url_path="latent_map"),
        st.Page("pages/pca_vs_ae.py", title="PCA vs autoencoder", icon=":material/compare:", url_path="pca_vs_ae"),
        st.Page("pages/anomaly.py", title="Anomaly detection", icon=":material/troubleshoot:", url_path="anomaly"),
    ],
    "GANs": [
        st.Page("pages/gan_studio.py", title="GAN studio", icon=":material/auto_awesome:", url_path="gan_studio"),
        st.Page("pages/gan_playground.py", title="2-D GAN playground", icon=":material/bubble_chart:",
                url_path="gan_playground"),
    ],
})
sidebar()
with app_entry():
    page.run()
