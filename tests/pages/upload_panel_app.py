"""The upload panel alone, for AppTest (tests/ui/test_upload_panel.py): the workspace comes from ?ws=."""

import streamlit as st

from ui.panels.uploads import upload_panel, workspace_datasets

workspace = st.query_params.get("ws", "local")
upload_panel(workspace)
st.selectbox("Dataset", [d.name for d in workspace_datasets(workspace)], key="picker")
