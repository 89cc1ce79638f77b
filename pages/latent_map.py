"""(being written)"""

import streamlit as st

st.title("latent_map")
