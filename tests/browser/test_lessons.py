"""Every lesson link in a real browser: it opens the lesson's page, shows the lesson, hides what it says it hides,
and raises no exception; the same page without the lesson shows those controls (so the check can fail).
The Lessons page lists the links and its Open and Next links walk the course. Takes the lessons and
lesson_denoising screenshots.

One hosted server for the module, on a runs folder holding only the workshop kit (its entries with budgets of
seconds): each lesson opens in an empty workspace, and its page must answer with the kit's model.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from engine.lab.lessons import LESSONS_DIR, catalogue
from tests.browser.conftest import _new_page, _serve
from tests.browser.helpers import (SCREENSHOTS, assert_no_exception, expect, full_page_screenshot, open_page, seen,
                                   wait_until_idle)
from ui.navigation import PAGES

pytestmark = pytest.mark.browser

LESSONS = catalogue(LESSONS_DIR).lessons
PAGE = {p.path: p for p in PAGES}
PANEL = ".st-key-lesson_panel"
SLOW_MS = 90_000  # a page's first draw on a busy 2-core machine: model loads, PCA fits, plotly


def tiny_kit():
    """The workshop kit (assets/kits/workshop.toml), every entry but with a budget of seconds: the same runs, their
    names, kit keys and pinning, small enough to train here."""
    from dataclasses import replace

    from engine.runs.kit import load_kit

    kit = load_kit("workshop")
    short = {"steps": 40, "threads": 1}
    return replace(kit, entries=tuple(
        replace(e, train={**e.train, **short, **({"judge": False} if e.model in ("dcgan", "cgan", "wgan_gp", "gan")
                                                  else {})}) for e in kit.entries))


@pytest.fixture(scope="module")
def lesson_server(tmp_path_factory):
    """A hosted server whose runs folder holds only the workshop kit (pinned to the gallery): every visitor of
    these tests arrives in an empty workspace of their own, as a workshop's attendees do."""
    from engine.runs.kit import train_kit

    base = tmp_path_factory.mktemp("lessons")
    runs_dir = base / "runs"
    runs_dir.mkdir()
    outcomes = train_kit(tiny_kit(), runs_dir, jobs=2)
    assert [o.state for o in outcomes] == ["done"] * len(outcomes), outcomes
    yield from _serve(base, runs_dir, {"LATENT_LAB_UMAP_WARMUP": "0", "LATENT_LAB_MODE": "hosted",
                                       "LATENT_LAB_SECRET": "lessons-test-secret"})


@pytest.fixture
def page(browser, lesson_server, request):
    yield from _new_page(browser, request)


def screenshot_with_sidebar(page, name: str) -> None:
    """SCREENSHOTS/{name}.png, tall enough for the longer of the page and the sidebar (the lesson is there)."""
    height = page.evaluate("""() => Math.max(...['[data-testid="stMain"]', '[data-testid="stSidebarContent"]']
        .map(sel => (document.querySelector(sel) || document.body).scrollHeight))""")
    page.mouse.move(0, 0)
    page.set_viewport_size({"width": 1280, "height": min(max(int(height) + 40, 900), 4000)})
    wait_until_idle(page)
    page.wait_for_timeout(500)  # let the resized layout settle
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def open_lesson(page, server, lesson) -> None:
    """The short link, as the Lessons page gives it: the app's root address with ?lesson=NAME."""
    open_page(page, f"{server.url}/{lesson.link()}", PAGE[lesson.page].title, timeout_ms=SLOW_MS)


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_a_lesson_link_opens_its_page_with_the_lesson_and_hides_what_it_says(page, lesson_server, lesson):
    open_lesson(page, lesson_server, lesson)
    path = PAGE[lesson.page].url_path
    page.wait_for_function("p => location.pathname.endsWith('/' + p)", arg=path)
    assert f"lesson={lesson.name}" in page.url
    for key in lesson.state:  # the preset reached the page (which rewrites its own values)
        assert f"{key}=" in page.url, (key, page.url)
    panel = seen(page, PANEL)
    expect(panel).to_contain_text(lesson.title)
    expect(panel).to_contain_text(f"Lesson {LESSONS.index(lesson) + 1} of {len(LESSONS)}")
    expect(panel).to_contain_text("Try this")
    expect(panel.locator(".katex").first).to_be_visible()  # the formula, drawn
    expect(panel.get_by_text("What to notice")).to_have_count(len(lesson.tasks))
    for key in lesson.hide:
        expect(page.locator(f".st-key-{key}")).to_have_count(0)
    wait_until_idle(page, SLOW_MS)
    # an empty workspace, only the kit on the server: the page answers with the kit's model, asks to train nothing
    expect(page.locator("[class*='st-key-needs_model-']")).to_have_count(0)
    assert_no_exception(page)
    assert not page.console_errors, page.console_errors
    if lesson.name == "denoising":
        panel.get_by_text("What to notice").first.click()  # the first task's answer, unfolded
        expect(panel.locator("[data-testid='stExpanderDetails']").first).to_be_visible()
        screenshot_with_sidebar(page, "lesson_denoising")

    if lesson.hide:  # the same page and preset without the lesson: every one of those controls is there
        open_page(page, f"{lesson_server.url}/{path}?{urlencode(lesson.state)}", PAGE[lesson.page].title,
                  timeout_ms=SLOW_MS)
        for key in lesson.hide:
            assert page.locator(f".st-key-{key}").count() >= 1, f"no .st-key-{key} on {path} without the lesson"
        expect(page.locator(PANEL)).to_have_count(0)
        assert_no_exception(page)


def test_the_lessons_page_lists_the_links_and_its_links_walk_the_course(page, lesson_server):
    open_page(page, f"{lesson_server.url}/lessons", "Lessons", timeout_ms=SLOW_MS)
    codes = seen(page, "[data-testid='stCode']")
    expect(codes).to_have_count(len(LESSONS))
    expect(codes.first).to_contain_text(f"{lesson_server.url}/?lesson={LESSONS[0].name}")
    assert_no_exception(page)
    full_page_screenshot(page, "lessons")

    denoising = next(lesson for lesson in LESSONS if lesson.name == "denoising")
    card = seen(page, f".st-key-lessons_{denoising.name}")
    card.get_by_role("link", name="Open").click()
    wait_until_idle(page, SLOW_MS, "Noise lab")
    expect(seen(page, PANEL)).to_contain_text(denoising.title)
    expect(page.locator(".st-key-noise_seed")).to_have_count(0)

    following = LESSONS[LESSONS.index(denoising) + 1]
    seen(page, PANEL).get_by_role("link", name=f"Next: {following.title}").click()
    wait_until_idle(page, SLOW_MS, PAGE[following.page].title)
    expect(seen(page, PANEL)).to_contain_text(following.title)
    assert f"lesson={following.name}" in page.url
    for key in following.hide:
        expect(page.locator(f".st-key-{key}")).to_have_count(0)
    assert_no_exception(page)
