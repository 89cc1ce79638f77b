"""Latent Lab: the Streamlit entry point (`streamlit run app.py`).

Routes between pages with st.navigation (pages/ is listed here, not auto-discovered) and draws
the sidebar every page shares: the dataset picker and the device. All the work lives in engine/.
"""

import streamlit as st

from pages.common import sidebar

st.set_page_config(page_title="Latent Lab", page_icon=":material/science:", layout="wide")

page = st.navigation([
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
])
sidebar()
page.run()
