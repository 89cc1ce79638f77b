"""Outside text shown as text: a run's name, a link's `?run=`, an error read from a run folder.

Streamlit renders the body of st.markdown, st.caption, st.info/warning/error/success and st.toast as
Markdown (with `$…$` as LaTeX and `:name[…]` directives), and it has no escape of its own. Text that
comes from outside the app (a URL, an imported status.json, a file's contents quoted in an error)
goes through `md` before it joins a message, so `[log in](https://evil.example)` shows as those
characters rather than as a link inside the app's own warning.
"""

from __future__ import annotations

import re

# CommonMark lets a backslash escape any ASCII punctuation; these are the characters that open or close inline
# Markdown (links and images need their "[", emphasis, code spans, autolinks and HTML "<", strikethrough,
# tables) or Streamlit's own syntax ($ for LaTeX). A ":" is escaped where it could begin an icon, a colour
# (":red[…]") or a URL ("https://"): before anything but a space.
_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#!|~$&])|(:)(?=[^\s])|(?<=www)(\.)", re.I)
_BLOCK_START = re.compile(r"^(\s*\d*)([-+>.)])(?=\s|$)")  # a list or quote marker at the start: "- ", "1. ", "> "
MAX_CHARS = 500  # outside text in a message: enough for a reason, not a page of someone else's text


def md(text, limit: int = MAX_CHARS) -> str:
    """`text` (any value, via str) escaped so that Streamlit's Markdown shows it literally, on one line.

    Line breaks become spaces (a new line could start a heading, a list or a code block), and text longer
    than `limit` characters is cut with an ellipsis.
    """
    s = " ".join(str(text).split()) if "\n" in str(text) or "\r" in str(text) else str(text).strip()
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    s = _SPECIAL.sub(lambda m: "\\" + m.group(0), s)
    return _BLOCK_START.sub(lambda m: m.group(1) + "\\" + m.group(2), s)


def md_quote(text, limit: int = 80) -> str:
    """`text` as a quoted name in a sentence ('…', escaped as `md` does, at most `limit` characters)."""
    return f"'{md(text, limit)}'"
