"""(being written)"""

import streamlit as st

st.title("noise_lab")
