"""What every browser test does: wait for Streamlit to settle, check for exceptions, take screenshots."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"


def expect(locator):
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator)


def wait_until_idle(page, timeout_ms: int = 30_000, title: str | None = None) -> None:
    """The app is drawn (with an h1 containing `title`, when given) and no script run is in flight."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    if title:
        expect(page.locator("h1").first).to_contain_text(title, timeout=timeout_ms)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="hidden", timeout=timeout_ms)


def open_page(page, url: str, title: str, timeout_ms: int = 90_000) -> None:
    """Go to `url` (e.g. f"{server.url}/draw?run=conv-ae") and wait until its page has drawn."""
    page.goto(url)
    wait_until_idle(page, timeout_ms, title)
    assert_no_exception(page)


def assert_no_exception(page) -> None:
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.first.inner_text()


def images_loaded(locator) -> bool:
    return locator.evaluate_all("imgs => imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0)")


def full_page_screenshot(page, name: str) -> Path:
    """docs/screenshots/{name}.png of the whole page (Streamlit scrolls inside its main container)."""
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
