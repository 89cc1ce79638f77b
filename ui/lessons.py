"""Lessons in the app: `?lesson=NAME` opens the lesson's page in its preset state, the lesson in the sidebar.

app.py calls `lesson_route(page)` before running the page. A link may name only the lesson (`/?lesson=denoising`):
the route switches to the lesson's page with the lesson's preset state as that page's URL parameters, which the
page reads as it reads any link. Entering a lesson forgets that page's widget state in this session, so the preset
wins over what the visitor had set there before; a reload keeps the URL's values (the address bar is the view).
The controls the lesson does not need are hidden, in the manner of TensorFlow Playground's `_hide` parameters:
a page draws such a control only `if shown(KEY)`, KEY being the Streamlit key of the element that holds it
(engine.lab.lessons.LESSON_PAGES lists each page's). Leaving through the navigation drops the link's parameters,
and with them the lesson.
"""

from __future__ import annotations

import streamlit as st

from engine.lab.lessons import Catalogue, Lesson, LessonError, catalogue, load_lesson
from ui.escape import md
from ui.navigation import PAGES

HIDDEN = "lesson_hidden"  # session key: the hide keys of the lesson on screen (fragments rerun without app.py)
ENTERED = "lesson_entered"  # session key: the lesson whose preset this session applied last
LESSONS_PAGE = "pages/lessons.py"
# The sidebar is narrow for a lesson: wider while one is on screen, and a formula wider still scrolls, not cut off.
LESSON_CSS = ("<style>section[data-testid=\"stSidebar\"] {width: 28rem !important; min-width: 28rem;}"
              ".st-key-lesson_panel .katex-display {overflow-x: auto; overflow-y: hidden;}</style>")



def shown(key: str) -> bool:
    """Whether a page draws the control `key`: False while the lesson on screen hides it."""
    return key not in st.session_state.get(HIDDEN, ())


def url_path(page: str) -> str | None:
    """The navigation's URL path of a page script ("" for the default page); None when it is not in PAGES."""
    info = next((p for p in PAGES if p.path == page), None)
    return None if info is None else info.url_path or ""


def _forget(page: str) -> None:
    # entering a lesson drops the page's own keys, so its widgets start again from the URL (the lesson's preset)
    prefix = next((p.state_prefix for p in PAGES if p.path == page), "")
    if prefix:
        for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(prefix)]:
            del st.session_state[key]


def lesson_route(page) -> Lesson | None:
    """The lesson the link names (`?lesson=NAME`), on its own page in its preset state, drawn in the sidebar.

    `page` is st.navigation's page about to run. On another page this switches to the lesson's (the run stops
    here). A name that is not a lesson, or a lesson file that is broken, gets a message; the page runs as usual.
    """
    st.session_state[HIDDEN] = frozenset()
    name = st.query_params.get("lesson")
    if name is None:
        st.session_state.pop(ENTERED, None)
        return None
    try:
        lesson = load_lesson(name)
        target = url_path(lesson.page)
        if target is None:
            raise LessonError(f"{lesson.name}.md: its page {lesson.page} is not in this app's navigation.")
    except LessonError as e:
        st.warning(f"This link's lesson cannot be opened: {md(e)} The page works as usual; the **Lessons** page "
                   "lists every lesson with its link.", icon=":material/link_off:")
        return None
    if page.url_path != target:
        st.switch_page(lesson.page, query_params=lesson.query())
    if st.session_state.get(ENTERED) != lesson.name:  # entering: the preset, not this session's old settings
        _forget(lesson.page)
        for key, value in lesson.state.items():
            if key not in st.query_params:
                st.query_params[key] = value
        st.session_state[ENTERED] = lesson.name
    st.session_state[HIDDEN] = frozenset(lesson.hide)
    lesson_panel(lesson, catalogue())
    return lesson


def lesson_panel(lesson: Lesson, lessons: Catalogue) -> None:
    """The lesson beside its page: its text and formula, the tasks (what to notice folded), previous and next."""
    names = [item.name for item in lessons.lessons]
    st.html(LESSON_CSS)
    with st.sidebar.container(key="lesson_panel", border=True):
        if lesson.name in names:
            st.caption(f":material/school: Lesson {names.index(lesson.name) + 1} of {len(names)}")
        st.markdown(f"#### {lesson.title}")
        st.markdown(lesson.text)
        st.markdown("**Try this**")
        for number, task in enumerate(lesson.tasks, start=1):
            st.markdown(f"{number}. {task.task}")
            with st.expander("What to notice", icon=":material/visibility:"):
                st.markdown(task.notice[:1].upper() + task.notice[1:])
        previous, following = lessons.neighbours(lesson.name) if lesson.name in names else (None, None)
        if previous is not None:
            st.page_link(previous.page, label=f"Previous: {previous.title}", icon=":material/arrow_back:",
                         query_params=previous.query())
        if following is not None:
            st.page_link(following.page, label=f"Next: {following.title}", icon=":material/arrow_forward:",
                         query_params=following.query())
        st.page_link(LESSONS_PAGE, label="All lessons", icon=":material/list:")
        if lesson.hide:
            st.page_link(lesson.page, label="This page with every control", icon=":material/tune:",
                         query_params=lesson.state,
                         help="Leaves the lesson: the same page and preset, nothing hidden")
