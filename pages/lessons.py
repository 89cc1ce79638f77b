"""Lessons: the course step by step, each lesson one link (`?lesson=NAME`) that opens its page ready to try.

The lessons are assets/lessons/*.md, read by engine/lab/lessons.py; ui/lessons.py shows one beside its page.
A lesson file that does not parse is listed with its error, and the others stay usable.
"""

import streamlit as st

from engine.lab.lessons import LESSON_PAGES, catalogue
from ui.entry import ensure_app
from ui.escape import md
from ui.lessons import url_path
from ui.navigation import PAGES
from ui.text import explain

ensure_app()  # a deep link on a fresh server runs app.py first (see ui/entry.py)

st.title(":material/school: Lessons")
explain("lessons")


def app_root() -> str:
    """The app's root address as this browser reached it ("http://host:8501/"), for links to copy; "" unknown."""
    url = (st.context.url or "").split("?", 1)[0].rstrip("/")
    own = url_path("pages/lessons.py")
    if own and url.endswith(f"/{own}"):
        url = url[: -len(own) - 1]
    return f"{url}/" if url else ""


lessons = catalogue()
titles = {p.path: p.title for p in PAGES}
root = app_root()
if not lessons.lessons:
    st.info("No lessons yet: add a Markdown file to assets/lessons/ (the README's *Lessons* says how).",
            icon=":material/school:")
for number, lesson in enumerate(lessons.lessons, start=1):
    with st.container(border=True, key=f"lessons_{lesson.name}"):
        text, action = st.columns([4, 1], vertical_alignment="center")
        text.markdown(f"**{number}. {lesson.title}** · on the *{titles.get(lesson.page, lesson.page)}* page")
        text.caption(lesson.summary)
        action.page_link(lesson.page, label="Open", icon=":material/play_arrow:", query_params=lesson.query())
        st.code(lesson.link(root), language=None, wrap_lines=True)  # its copy button is the presenter's
        hides = LESSON_PAGES[lesson.page].hide
        if lesson.hide:
            st.caption("Hides " + "; ".join(hides[key] for key in lesson.hide) + ".")
for broken in lessons.broken:
    st.error(f"This lesson cannot be used: {md(broken.error)}", icon=":material/error:")  # the error names its file
