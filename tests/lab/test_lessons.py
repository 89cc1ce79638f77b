"""Lessons (engine/lab/lessons.py): the file format, its errors, and every shipped lesson checked against the app.

Each shipped lesson must open a page of the navigation, set only parameters that page reads, hide only controls
the page can hide, and carry text, a formula and two or three tasks that each say what to notice.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.lab import lessons
from engine.lab.lessons import LESSON_PAGES, LessonError, catalogue, load_lesson, parse_lesson
from ui.navigation import PAGES

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = catalogue(lessons.LESSONS_DIR)
COURSE = ("autoencoder", "pca_vs_ae", "denoising", "sparse_contractive", "vae", "anomaly", "gan_game", "gan_variants")

GOOD = """---
title: A lesson
order: 2
page: pages/noise_lab.py
summary: one line
state: noise=gaussian&level=0.5
hide: noise_seed
---
Some text with a formula.

$$
x = y
$$

## Try this

1. Do a thing.
   Notice: it changes.
2. Do **another** thing,
   over two lines.
   **Notice:** something else.
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.md"
    path.write_text(text, encoding="utf-8")
    return path


# -- the format ------------------------------------------------------------------------------------


def test_a_lesson_parses_into_its_fields_text_and_tasks():
    lesson = parse_lesson(GOOD, "good")
    assert (lesson.name, lesson.title, lesson.order, lesson.page) == ("good", "A lesson", 2, "pages/noise_lab.py")
    assert lesson.state == {"noise": "gaussian", "level": "0.5"} and lesson.hide == ("noise_seed",)
    assert lesson.text.startswith("Some text") and "$$\nx = y\n$$" in lesson.text and "Try this" not in lesson.text
    assert [(t.task, t.notice) for t in lesson.tasks] == [
        ("Do a thing.", "it changes."), ("Do **another** thing, over two lines.", "something else.")]
    assert lesson.query() == {"lesson": "good", "noise": "gaussian", "level": "0.5"}
    assert lesson.link("http://host:8501/") == "http://host:8501/?lesson=good"


def test_state_and_hide_are_optional():
    text = GOOD.replace("state: noise=gaussian&level=0.5\n", "").replace("hide: noise_seed\n", "")
    lesson = parse_lesson(text, "bare")
    assert lesson.state == {} and lesson.hide == () and lesson.query() == {"lesson": "bare"}


@pytest.mark.parametrize("change, says", [
    (lambda t: t.replace("---\n", "", 1), "must start with a line '---'"),
    (lambda t: t.replace("hide: noise_seed\n---\n", "hide: noise_seed\n"), "no closing '---'"),
    (lambda t: t.replace("order: 2\n", "order: second\n"), "order must be a whole number"),
    (lambda t: t.replace("title: A lesson\n", ""), "lacks title"),
    (lambda t: t.replace("summary: one line\n", "summary one line\n"), "expected `key: value`"),
    (lambda t: t.replace("order: 2\n", "order: 2\nlevel: 3\n"), "unknown field 'level'"),
    (lambda t: t.replace("order: 2\n", "order: 2\norder: 3\n"), "'order' is given twice"),
    (lambda t: t.replace("pages/noise_lab.py", "pages/nowhere.py"), "page 'pages/nowhere.py' is not one"),
    (lambda t: t.replace("level=0.5", "sigma=0.5"), "does not read the parameter 'sigma'"),
    (lambda t: t.replace("level=0.5", "level="), "'level' is empty"),
    (lambda t: t.replace("noise=gaussian&level=0.5", "noise gaussian"), "state must read like a link's query"),
    (lambda t: t.replace("hide: noise_seed", "hide: noise_seed, noise_colour"), "no control 'noise_colour'"),
    (lambda t: t.replace("## Try this", "## Things"), "no '## Try this' section"),
    (lambda t: t.split("1. Do")[0], "holds no numbered tasks"),
    (lambda t: t.replace("   Notice: it changes.\n", ""), "task 1 needs its text, then a line 'Notice: …'"),
])
def test_a_malformed_lesson_says_what_is_wrong_naming_its_file(change, says):
    with pytest.raises(LessonError) as e:
        parse_lesson(change(GOOD), "bad", "bad.md")
    assert str(e.value).startswith("bad.md") and says in str(e.value), str(e.value)


def test_the_catalogue_lists_lessons_in_order_and_keeps_a_broken_file_apart(tmp_path):
    folder = tmp_path / "lessons"
    write(folder, "later", GOOD.replace("order: 2", "order: 5").replace("A lesson", "Later"))
    write(folder, "first", GOOD.replace("order: 2", "order: 1").replace("A lesson", "First"))
    write(folder, "also-first", GOOD.replace("order: 2", "order: 1").replace("A lesson", "Also first"))
    write(folder, "broken", GOOD.replace("page: pages/noise_lab.py", "page: pages/gone.py"))
    write(folder, "Not A Name", GOOD)  # not a lesson name: not listed
    (folder / "notes.txt").write_text("not a lesson")
    cat = catalogue(folder)
    assert [lesson.name for lesson in cat.lessons] == ["also-first", "first", "later"]  # order, then name
    assert [b.name for b in cat.broken] == ["broken"] and "broken.md" in cat.broken[0].error
    assert "pages/gone.py" in cat.broken[0].error
    assert cat.neighbours("also-first") == (None, cat.get("first"))
    assert cat.neighbours("first") == (cat.get("also-first"), cat.get("later"))
    assert cat.neighbours("later") == (cat.get("first"), None)
    assert load_lesson("later", folder).title == "Later"
    with pytest.raises(LessonError, match="broken.md"):
        load_lesson("broken", folder)


@pytest.mark.parametrize("name", ["nope", "../lessons/first", "first.md", "", "x" * 500])
def test_a_name_that_is_no_lesson_says_which_there_are(tmp_path, name):
    folder = tmp_path / "lessons"
    write(folder, "first", GOOD)
    (tmp_path / "secret.md").write_text(GOOD)  # beside the folder: a crafted name must not reach it
    with pytest.raises(LessonError) as e:
        load_lesson(name, folder)
    assert "There is no lesson" in str(e.value) and "The lessons are: first." in str(e.value)
    assert len(str(e.value)) < 200


def test_the_folder_can_be_the_presenters_own(tmp_path, monkeypatch):
    write(tmp_path / "mine", "mine", GOOD)
    monkeypatch.setenv("LATENT_LAB_LESSONS", str(tmp_path / "mine"))
    assert [lesson.name for lesson in catalogue().lessons] == ["mine"]
    monkeypatch.delenv("LATENT_LAB_LESSONS")
    assert catalogue().get("mine") is None and catalogue().get("denoising") is not None


# -- the shipped lessons ---------------------------------------------------------------------------


def test_every_shipped_lesson_parses_and_the_course_is_all_there():
    assert not SHIPPED.broken, SHIPPED.broken
    names = [lesson.name for lesson in SHIPPED.lessons]
    assert names == list(COURSE)  # in the course's order
    orders = [lesson.order for lesson in SHIPPED.lessons]
    assert len(set(orders)) == len(orders), "two lessons share an order number"


def test_the_pages_lessons_can_open_are_pages_of_the_app():
    paths = {p.path for p in PAGES}
    assert set(LESSON_PAGES) <= paths, set(LESSON_PAGES) - paths
    for path in LESSON_PAGES:
        assert (ROOT / path).is_file()


@pytest.mark.parametrize("page", sorted(LESSON_PAGES))
def test_each_pages_declared_params_and_hide_keys_are_in_its_code(page):
    """The declaration cannot drift from the page: a parameter the page reads is quoted in its code (or, for
    `run`, read by its run picker); a hide key is quoted in a page that checks shown() (the browser test, for
    each lesson, sees the element of that key on the page without the lesson and not with it)."""
    source = (ROOT / page).read_text(encoding="utf-8")
    for param in LESSON_PAGES[page].params:
        assert f'"{param}"' in source or (param == "run" and "pick_run(" in source), (page, param)
    for key in LESSON_PAGES[page].hide:
        assert f'"{key}"' in source and "shown(" in source, (page, key)


@pytest.mark.parametrize("lesson", SHIPPED.lessons, ids=lambda lesson: lesson.name)
def test_each_shipped_lesson_teaches(lesson):
    known = LESSON_PAGES[lesson.page]
    assert set(lesson.state) <= set(known.params) and set(lesson.hide) <= set(known.hide)
    assert re.search(r"^\$\$\n.+?\n\$\$$", lesson.text, re.M | re.S), "a formula between $$ lines"
    sentences = [s for s in re.split(r"(?<=[.!?])\s", lesson.text.split("$$")[0]) if len(s.split()) > 3]
    assert len(sentences) >= 2, "the text: a few sentences before the formula"
    assert 2 <= len(lesson.tasks) <= 3
    for task in lesson.tasks:
        assert len(task.task.split()) >= 5 and len(task.notice.split()) >= 8, task
    assert len(lesson.summary) <= 160 and "\n" not in lesson.summary
