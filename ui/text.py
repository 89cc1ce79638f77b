"""The pages' words: explanations read from assets/pages/ (Markdown with formulas), and number formats.

A page's explanation is `assets/pages/<page>.md` (further ones `<page>.<section>.md`): plain
Markdown a presenter can edit, where a formula stands on its own between `$$` lines and is drawn
as a display formula (st.latex); `$…$` inside a sentence is inline maths.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import streamlit as st

from engine.runs import finite

ASSETS = Path(__file__).resolve().parent.parent / "assets"
_FORMULA = re.compile(r"^\$\$\s*\n(.*?)\n\$\$\s*$", re.M | re.S)
# Material icons ship with Streamlit's own font, so they render on machines without an emoji font.
STATE_ICONS = {"queued": ":material/schedule:", "running": ":material/directions_run:",
               "done": ":material/check_circle:", "failed": ":material/error:", "cancelled": ":material/cancel:",
               "interrupted": ":material/warning:"}


@functools.lru_cache(maxsize=64)
def _parts(path: Path, mtime_ns: int) -> tuple[tuple[str, str], ...]:
    """(kind, text) pieces of an explanation file: ("markdown", …) and ("latex", …) in order."""
    text, parts, at = path.read_text(encoding="utf-8"), [], 0
    for m in _FORMULA.finditer(text):
        if text[at:m.start()].strip():
            parts.append(("markdown", text[at:m.start()].strip()))
        parts.append(("latex", m.group(1).strip()))
        at = m.end()
    if text[at:].strip():
        parts.append(("markdown", text[at:].strip()))
    return tuple(parts)


def explanation(page: str, section: str | None = None) -> tuple[tuple[str, str], ...]:
    """The pieces of assets/pages/<page>[.<section>].md (read again when the file changes)."""
    path = ASSETS / "pages" / (f"{page}.{section}.md" if section else f"{page}.md")
    return _parts(path, path.stat().st_mtime_ns)


def explain(page: str, section: str | None = None, container=st) -> None:
    """A page's short explanation: two or three sentences, then its formula(s)."""
    for kind, text in explanation(page, section):
        (container.latex if kind == "latex" else container.markdown)(text)


def fmt(value, spec: str, suffix: str = "") -> str:
    """A number formatted with `spec`, or a dash when it is missing or not a finite number (a damaged file)."""
    v = finite(value)
    return "–" if v is None else f"{(int(v) if isinstance(value, int) else v):{spec}}{suffix}"


def state_icon(state: str) -> str:
    """A markdown icon for a run state (markdown only: tables show the plain state)."""
    return STATE_ICONS.get(state, ":material/help:")


def percent(p: float) -> str:
    """A percentile for people: 99.7 stays 99.7 % rather than rounding up to a misleading 100 %."""
    return f"{p:.1f}%" if 99 < p < 100 else f"{p:.0f}%"
