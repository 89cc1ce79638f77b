"""A deep link on a fresh server runs app.py first, so every page gets the navigation and the sidebar."""

from __future__ import annotations

import contextlib
import runpy
import threading
from pathlib import Path

import streamlit as st

APP = Path(__file__).resolve().parent.parent / "app.py"
_ENTRY = threading.local()  # per script thread: is app.py running this page?


@contextlib.contextmanager
def app_entry():
    """app.py wraps page.run() in this, so a page can tell it was reached through the navigation."""
    _ENTRY.active = True
    try:
        yield
    finally:
        _ENTRY.active = False


def ensure_app() -> None:
    """Every page calls this first: when Streamlit serves the page straight from pages/, run app.py.

    Until some session has run app.py, a fresh server treats pages/ as a classic multipage folder,
    so a shared deep link (e.g. /draw?run=…) would run pages/draw.py alone: no sidebar, no wide
    layout, every file of pages/ in the menu. Running app.py here sets up st.navigation, which
    then runs the linked page itself; this run stops afterwards so the page is not drawn twice.
    """
    if getattr(_ENTRY, "active", False):
        return
    runpy.run_path(str(APP), run_name="__main__")
    st.stop()
