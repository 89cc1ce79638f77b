"""What every browser test does: wait for Streamlit to settle, check for exceptions, take screenshots."""

from __future__ import annotations

import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# `make test` leaves the page shots in test-results/screenshots/; `make screenshots` sets LATENT_LAB_SCREENSHOTS to
# docs/screenshots/, the README's, so an ordinary test run never rewrites tracked files.
SCREENSHOTS = ROOT / os.environ.get("LATENT_LAB_SCREENSHOTS", "test-results/screenshots")


def for_the_readme() -> bool:
    """Whether this run takes the README's screenshots (`make screenshots`): a test may then spend longer
    getting its page to a state worth showing."""
    return "LATENT_LAB_SCREENSHOTS" in os.environ


def expect(locator):
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator)


# Streamlit marks its root element with the script's state (notRunning, running, rerunRequested, ...) and the
# connection's. Its "Running..." widget is no signal: it appears only after a run has lasted 500 ms.
_IDLE = """quiet => {
    const app = document.querySelector('[data-testid="stApp"]');
    const now = performance.now();
    if (!app || app.dataset.testConnectionState !== 'CONNECTED' || app.dataset.testScriptState !== 'notRunning') {
        window.__latentLabBusy = now;
        return false;
    }
    return now - window.__latentLabBusy >= quiet;
}"""


# Page-side waits over the shown elements (shown(): tests/browser/conftest.py) of a CSS selector:
# every image has loaded; the first image has a new src.
LOADED = "sel => [...shown(sel)].every(i => i.complete && i.naturalWidth > 0)"
SRC_CHANGED = "([sel, old]) => { const img = shown(sel)[0]; return img && img.src !== old; }"


def seen(root, selector: str, **kwargs):
    """The elements of `selector` under `root` (a page or a locator) that a user sees. When a keyed element moves
    during a run, Streamlit keeps the old copy mounted but hidden (display: none, data-retained) until the run ends;
    a plain locator finds both, and Playwright's strict mode refuses it."""
    return root.locator(selector, **kwargs).filter(visible=True)


def wait_until_idle(page, timeout_ms: int = 30_000, title: str | None = None, quiet_ms: int = 300) -> None:
    """The app is drawn (with an h1 containing `title`, when given) and no script run has been in flight
    for `quiet_ms`: a rerun asked for by the last click or key press has had time to start and finish."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    if title:
        expect(page.locator("h1").first).to_contain_text(title, timeout=timeout_ms)
    page.evaluate("() => { window.__latentLabBusy = performance.now(); }")
    page.wait_for_function(_IDLE, arg=quiet_ms, polling=50, timeout=timeout_ms)


def open_page(page, url: str, title: str, timeout_ms: int = 90_000) -> None:
    """Go to `url` (e.g. f"{server.url}/draw?run=conv-ae") and wait until its page has drawn."""
    page.goto(url)
    wait_until_idle(page, timeout_ms, title)
    assert_no_exception(page)


def assert_no_exception(page) -> None:
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.first.inner_text()


def images_loaded(locator, timeout_ms: int = 30_000) -> bool:
    """Whether every image under `locator` (at least one) has loaded, waiting up to `timeout_ms` for it:
    a new image's bytes arrive after the run that shows it."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        done = locator.evaluate_all("imgs => imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0)")
        if done or time.monotonic() > deadline:
            return done
        time.sleep(0.1)


def full_page_screenshot(page, name: str) -> Path:
    """SCREENSHOTS/{name}.png of the whole page (Streamlit scrolls inside its main container)."""
    height = page.evaluate("""() => {
        const main = document.querySelector('[data-testid="stMain"]') || document.body;
        return Math.max(main.scrollHeight, document.body.scrollHeight);
    }""")
    page.mouse.move(0, 0)  # no tooltip over the page
    page.set_viewport_size({"width": 1280, "height": min(max(int(height) + 40, 900), 4000)})
    wait_until_idle(page)
    page.wait_for_timeout(500)  # let the resized layout settle
    path = SCREENSHOTS / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def fill_and_submit(page, values: dict[str, str], button: str = "Start training") -> None:
    """Type each value into the form's number input with that label, then press the form's button.

    Each input is committed (Tab: it loses focus) before the click, and the click waits for an idle page,
    so it never lands while a rerun redraws the form under the pointer.
    """
    for name, value in values.items():
        field = page.get_by_role("spinbutton", name=name, exact=True)
        field.fill(value)
        field.press("Tab")
        expect(field).to_have_value(value)
    wait_until_idle(page)
    page.get_by_role("button", name=button).click()
