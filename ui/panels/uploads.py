"""Own data from the browser: upload a dataset into a workspace, see what was kept and skipped, delete it.

`upload_panel(workspace)` draws into whatever container is current (the sidebar puts it there);
`workspace_datasets(workspace)` is what a dataset picker offers: the server's datasets, then the
workspace's uploads. The checks and the storing are engine/data/uploads.py's.
"""

from __future__ import annotations

import math

import streamlit as st

from engine.data import DataError, DatasetInfo, delete_upload, list_uploads, max_upload_bytes, save_upload
from engine.data.uploads import UploadResult, parse_name
from ui.escape import md, md_quote
from ui.resources import datasets

KEY = "uploads"  # every session-state key of the panel starts with it


def workspace_datasets(workspace: str) -> list[DatasetInfo]:
    """The server's datasets (available or not), then the workspace's uploads, oldest first."""
    return [*datasets(), *list_uploads(workspace)]


def _summary(result: UploadResult) -> str:
    labels = f"in {len(result.classes)} classes" if result.classes else "without labels"
    text = (f"Kept **{result.n_images:,}** images {labels} as {md_quote(result.slug)} "
            f"({result.n_train:,} to train on, {result.n_test:,} to test)")
    if result.n_skipped:
        text += f"; skipped {result.n_skipped:,} file{'s' if result.n_skipped > 1 else ''}"
    return text + ". Pick it in the dataset box of a page to train on it."


def _save(workspace: str, file, name: str) -> None:
    try:
        result = save_upload(workspace, file.name, file.getvalue(), name or None)
    except DataError as e:  # every refusal, a full disk included, names no server path
        st.session_state[f"{KEY}_result"] = ("error", f"{file.name} was not stored: {e}")
        return
    st.session_state[f"{KEY}_result"] = ("ok", result)
    st.session_state[f"{KEY}_round"] = st.session_state.get(f"{KEY}_round", 0) + 1  # fresh, empty widgets


def _show_result() -> None:
    kind, value = st.session_state.get(f"{KEY}_result", (None, None))
    if kind == "error":
        st.error(md(value, limit=1000), icon=":material/error:")
    elif kind == "ok":
        st.success(_summary(value), icon=":material/check_circle:")
        if value.skipped:
            more = value.n_skipped - len(value.skipped)
            with st.expander(f"Skipped files ({value.n_skipped:,})"):
                st.markdown("\n".join(f"- {md(s.file, 120)}: {md(s.why, 200)}" for s in value.skipped)
                            + (f"\n- … and {more:,} more" if more > 0 else ""))


def _listing(workspace: str) -> None:
    rows = list_uploads(workspace)
    if not rows:
        st.caption("No uploads yet.")
        return
    for info in rows:
        _, slug = parse_name(info.name)  # the name is checked: letters, digits, ':', '/', '-'
        text, delete = st.columns([5, 1], vertical_alignment="center")
        text.markdown(f"`{info.name}`  \n{md(info.description)}")
        if delete.button("Delete", key=f"{KEY}_delete_{slug}", icon=":material/delete:",
                         help=f"Remove the upload {slug} (runs trained on it keep their weights)"):
            try:
                delete_upload(workspace, slug)
            except DataError as e:  # deleted meanwhile, in another tab
                st.session_state[f"{KEY}_result"] = ("error", str(e))
            else:
                st.session_state.pop(f"{KEY}_result", None)
            st.rerun()


def upload_panel(workspace: str) -> None:
    """The uploader, the last upload's result, and the workspace's uploads with a Delete button each."""
    limit_mb = max_upload_bytes() / 2**20
    round_ = st.session_state.get(f"{KEY}_round", 0)
    file = st.file_uploader(
        "A .zip of PNG/JPEG images, or an .npz", type=["zip", "npz"], key=f"{KEY}_file_{round_}",
        max_upload_size=max(1, math.ceil(limit_mb)),
        help=f"A .zip with one folder per class (the folder's name is the label), or images at the top "
             f"for an unlabelled set; or an .npz with x (N×28×28, uint8 or floats in [0, 1]) and optionally "
             f"y (labels). At most {limit_mb:g} MB. Every image becomes 28×28 grey; files that are no "
             "image or do not read are skipped and listed.")
    name = st.text_input("Name (optional)", key=f"{KEY}_name_{round_}", max_chars=40,
                         placeholder="from the file's name")
    if st.button("Upload dataset", key=f"{KEY}_save", icon=":material/upload:", disabled=file is None):
        with st.spinner("Checking the images…"):
            _save(workspace, file, name.strip())
        if st.session_state[f"{KEY}_result"][0] == "ok":
            st.rerun()  # drawn again with empty widgets, so a second click cannot store the same file twice
    _show_result()
    _listing(workspace)
