"""Own data from the browser: upload a dataset into a workspace, see what was kept and skipped, delete it.

`upload_panel(workspace)` draws into whatever container is current (the sidebar puts it there);
`workspace_datasets(workspace)` is what an image page's dataset picker offers: the server's datasets, then
the workspace's image uploads. `series_upload_panel(workspace, key, page)` is the same panel for a .csv of
series (the Sequences and Time-series anomalies pages); `take_pick(key)` hands its page the dataset just
stored, to select it. The checks and the storing are engine/data/uploads.py's.
"""

from __future__ import annotations

import math

import streamlit as st

from engine.data import DataError, DatasetInfo, delete_upload, list_uploads, max_upload_bytes, save_upload
from engine.data.uploads import SeriesUpload, UploadResult, parse_name, save_series_upload
from ui.escape import md, md_quote
from ui.resources import datasets

KEY = "uploads"  # every session-state key of the panel starts with it


def workspace_datasets(workspace: str) -> list[DatasetInfo]:
    """The server's datasets (available or not), then the workspace's uploads, oldest first."""
    return [*datasets(), *list_uploads(workspace, kind="images")]


def _summary(result: UploadResult) -> str:
    labels = f"in {len(result.classes)} classes" if result.classes else "without labels"
    text = (f"Kept **{result.n_images:,}** images {labels} as {md_quote(result.slug)} "
            f"({result.n_train:,} to train on, {result.n_test:,} to test)")
    if result.n_skipped:
        text += f"; skipped {result.n_skipped:,} file{'s' if result.n_skipped > 1 else ''}"
    return text + ". Pick it in the dataset box of a page to train on it."


_PAGES = {"rows": "Sequences", "long": "Time-series anomalies"}  # where each form of series is offered


def _series_summary(result: SeriesUpload, page: str) -> str:
    labels = f" in {len(result.classes)} classes" if result.classes and result.form == "rows" else ""
    what = (f"one series of **{result.steps:,}** steps, cut into windows of {result.length} "
            f"({result.n_train:,} from its normal start to train on, {result.n_test:,} to test)"
            if result.form == "long" else
            f"**{result.n_train + result.n_test:,}** series of {result.length:,} steps{labels} "
            f"({result.n_train:,} to train on, {result.n_test:,} to test)")
    where = ("Pick it in the dataset box above to train on it." if _PAGES[result.form] == page else
             f"It is offered on the **{_PAGES[result.form]}** page" + (
                 ", which reads one long series." if result.form == "long" else
                 ", which reads one series per row."))
    return f"Kept {what} as {md_quote(result.slug)}. {where}"


def _save(workspace: str, file, name: str, key: str = KEY, save=save_upload) -> None:
    try:
        result = save(workspace, file.name, file.getvalue(), name or None)
    except DataError as e:  # every refusal, a full disk included, names no server path
        st.session_state[f"{key}_result"] = ("error", f"{file.name} was not stored: {e}")
        return
    st.session_state[f"{key}_result"] = ("ok", result)
    st.session_state[f"{key}_round"] = st.session_state.get(f"{key}_round", 0) + 1  # fresh, empty widgets


def _show_result(key: str = KEY, page: str = "") -> None:
    kind, value = st.session_state.get(f"{key}_result", (None, None))
    if kind == "error":
        st.error(md(value, limit=1000), icon=":material/error:")
    elif kind == "ok" and isinstance(value, SeriesUpload):
        st.success(_series_summary(value, page), icon=":material/check_circle:")
    elif kind == "ok":
        st.success(_summary(value), icon=":material/check_circle:")
        if value.skipped:
            more = value.n_skipped - len(value.skipped)
            with st.expander(f"Skipped files ({value.n_skipped:,})"):
                st.markdown("\n".join(f"- {md(s.file, 120)}: {md(s.why, 200)}" for s in value.skipped)
                            + (f"\n- … and {more:,} more" if more > 0 else ""))


def _listing(workspace: str, key: str = KEY) -> None:
    rows = list_uploads(workspace)  # images and series: one limit counts both, so both are listed to delete
    if not rows:
        st.caption("No uploads yet.")
        return
    for info in rows:
        _, slug = parse_name(info.name)  # the name is checked: letters, digits, ':', '/', '-'
        text, delete = st.columns([5, 1], vertical_alignment="center")
        text.markdown(f"`{info.name}`  \n{md(info.description)}")
        if delete.button("Delete", key=f"{key}_delete_{slug}", icon=":material/delete:",
                         help=f"Remove the upload {slug} (runs trained on it keep their weights)"):
            try:
                delete_upload(workspace, slug)
            except DataError as e:  # deleted meanwhile, in another tab
                st.session_state[f"{key}_result"] = ("error", str(e))
            else:
                st.session_state.pop(f"{key}_result", None)
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


def take_pick(key: str) -> str | None:
    """The dataset `series_upload_panel(…, key, …)` has just stored for its page to select (once), else None.
    Call it before the page's dataset picker is drawn: a widget's value can be set only before that."""
    return st.session_state.pop(f"{key}_pick", None)


def series_upload_panel(workspace: str, key: str, page: str) -> None:
    """The upload panel for a .csv of series on `page` ("Sequences" or "Time-series anomalies"): checked as
    csv:FILE is, stored in the workspace beside its image uploads, and selected on the page that reads it."""
    limit_mb = max_upload_bytes() / 2**20
    round_ = st.session_state.get(f"{key}_round", 0)
    file = st.file_uploader(
        "A .csv of series", type=["csv"], key=f"{key}_file_{round_}", max_upload_size=max(1, math.ceil(limit_mb)),
        help=f"One series per row, numbers separated by commas (a header whose first field is label makes the "
             f"first column each series' class), or one long series in one column (a second column label holds "
             f"0 or 1: 1 marks an anomaly). UTF-8, at most {limit_mb:g} MB; no gaps (NaN), every row as long.")
    name = st.text_input("Name (optional)", key=f"{key}_name_{round_}", max_chars=40,
                         placeholder="from the file's name")
    if st.button("Upload series", key=f"{key}_save", icon=":material/upload:", disabled=file is None):
        with st.spinner("Checking the series…"):
            _save(workspace, file, name.strip(), key, save_series_upload)
        kind, result = st.session_state[f"{key}_result"]
        if kind == "ok":
            if _PAGES[result.form] == page:
                st.session_state[f"{key}_pick"] = result.dataset
            st.rerun()  # drawn again with empty widgets, so a second click cannot store the same file twice
    _show_result(key, page)
    _listing(workspace, key)
