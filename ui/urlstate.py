"""The view's state in the URL: every page reads its link's values once and writes its own back."""

from __future__ import annotations

import math

import streamlit as st


def query_value(name: str, default, cast=float, valid=None):
    """A value from the URL (`?name=…`) cast with `cast`, or `default` when absent, unreadable or not valid."""
    raw = st.query_params.get(name)
    if raw is None:
        return default
    try:
        value = cast(raw)
    except (TypeError, ValueError):
        return default
    if isinstance(value, float) and not math.isfinite(value):
        return default
    if valid is not None and not valid(value):
        return default
    return value


def set_query(**values) -> None:
    """Write values into the URL so a link restores the view; None removes a key."""
    for name, value in values.items():
        if value is None:
            st.query_params.pop(name, None)
        elif st.query_params.get(name) != str(value):
            st.query_params[name] = str(value)
