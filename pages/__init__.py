"""Latent Lab's screens (one file per page) and the helpers they share (common.py).

Pages read widgets, call one or two engine functions and draw; no tensor math lives here.
app.py lists the pages explicitly with st.navigation, so this folder is not auto-discovered.
"""
