"""(being written)"""

import streamlit as st

st.title("pca_vs_ae")
