"""Latent Lab: the Streamlit entry point (`streamlit run app.py`).

Routes between the pages of ui/navigation.py with st.navigation (pages/ is listed there, not
auto-discovered) and draws the sidebar every page shares. The work lives in engine/.
"""

import streamlit as st

from engine.lab.ts_anomaly import warm_up_at_server_start as warm_matrix_profile
from ui.entry import app_entry
from ui.lessons import lesson_route
from ui.navigation import navigation
from ui.resources import configure_server, warm_umap
from ui.sidebar import sidebar

# An emoji favicon is drawn in the page: a ":material/…:" one is fetched from fonts.gstatic.com, a request to
# an outside host on every page load (it fails offline, and leaks each visit on a hosted link).
st.set_page_config(page_title="Latent Lab", page_icon="🧪", layout="wide")
configure_server()  # one torch thread for the pages' single-image requests
warm_umap()  # compile UMAP on a background thread once per server: the Latent map shows PCA meanwhile
warm_matrix_profile()  # and stumpy's matrix profile (once per process): Time-series anomalies says so meanwhile

page = st.navigation(navigation())
lesson_route(page)  # ?lesson=NAME: its page in its preset state, the lesson beside it
sidebar()
with app_entry():
    page.run()
