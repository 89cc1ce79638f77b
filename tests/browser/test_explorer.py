"""The Latent explorer in a real browser: a slider moved by keyboard redraws the decoded image.

Takes the explorer screenshot (the conv-ae run, one slider moved).
"""

from __future__ import annotations

import re

import pytest

from tests.browser.helpers import (LOADED, SRC_CHANGED, assert_no_exception, expect, full_page_screenshot,
                                   images_loaded, open_page, seen, wait_until_idle)

pytestmark = pytest.mark.browser

DECODED = ".st-key-explorer_pad img.ll-decoded"  # the sliders' component (ui/latent_sliders.py)
THUMB = '.st-key-explorer_pad [data-slider="{}"] input[type=range]'


def open_explorer(page, server, query: str) -> None:
    open_page(page, f"{server.url}/explorer?{query}", "Latent explorer")
    # a deep link went through app.py (ensure_app): its navigation and sidebar, not pages/ served alone
    expect(page.get_by_role("link", name="Latent explorer")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Device:")).to_be_visible()
    expect(seen(page, DECODED)).to_be_visible(timeout=60_000)
    # The samples are drawn last: wait for the first run to end before interacting. Keys pressed while
    # a fresh server's first full run still goes can be lost (the slider shows 0.5, x̂ stays at 0.1).
    expect(seen(page, ".st-key-explorer_samples img")).to_be_visible(timeout=60_000)
    wait_until_idle(page)


def test_a_slider_redraws_the_decoded_image(lab_page, lab_server):
    page = lab_page
    open_explorer(page, lab_server, "run=conv-ae&image=3")
    expect(page.get_by_text("start: test image 3")).to_be_visible()  # the link's start image
    sliders = seen(page, ".st-key-explorer_pad .ll-slider")
    expect(sliders).to_have_count(8)  # latent_dim 32: the 8 principal directions
    expect(sliders.first).to_contain_text("direction 1")
    expect(seen(page, DECODED)).to_be_visible()
    before = seen(page, DECODED).get_attribute("src")

    thumb = seen(page, THUMB.format(0))
    thumb.focus()
    thumb.press("ArrowRight")  # one step (0.1 σ): the browser shows the strip's next image at once …
    assert seen(page, DECODED).get_attribute("src") != before
    for _ in range(4):
        thumb.press("ArrowRight")  # … and each press reaches the server too (one fragment rerun each)
    expect(thumb).to_have_value("0.5")
    expect(seen(page, '[data-slider="0"] output')).to_have_text("+0.5 σ")
    expect(page).to_have_url(re.compile(r"[?&]z=0\.5(%2C|,)0"), timeout=30_000)  # the server saw every press
    wait_until_idle(page)
    assert_no_exception(page)
    page.wait_for_function(LOADED, arg=DECODED)
    assert images_loaded(seen(page, DECODED))

    # another slider: its strip comes with the focus (or with its first move, from the server), and a drag
    # along it shows images before the mouse is released (a Streamlit slider shows nothing until then)
    after = seen(page, DECODED).get_attribute("src")
    seen(page, THUMB.format(1)).press("ArrowLeft")
    page.wait_for_function(SRC_CHANGED, arg=[DECODED, after])
    expect(page).to_have_url(re.compile(r"[?&]z=0\.5(%2C|,)-0\.1(%2C|,)0"), timeout=30_000)
    wait_until_idle(page)
    box = seen(page, THUMB.format(1)).bounding_box()
    y_mid = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.5, y_mid)
    page.mouse.down()
    dragged = seen(page, DECODED).get_attribute("src")
    page.mouse.move(box["x"] + box["width"] * 0.8, y_mid, steps=8)
    page.wait_for_function(SRC_CHANGED, arg=[DECODED, dragged])  # still held down
    page.mouse.up()
    expect(page).to_have_url(re.compile(r"[?&]z=0\.5(%2C|,)[12]\.\d(%2C|,)0"), timeout=30_000)
    for key in ("explorer_strip_linear", "explorer_strip_slerp", "explorer_arith_result", "explorer_samples"):
        expect(seen(page, f".st-key-{key} img")).to_be_visible()

    # Reset, then the same move twice over: each reaches the server (the move carries the Reset it follows, so
    # the same positions after a Reset are a new value, and the link gets its ?z= back every time)
    thumb = seen(page, THUMB.format(0))
    for _ in range(2):
        page.get_by_role("button", name="Reset").click()
        expect(page).not_to_have_url(re.compile(r"[?&]z="), timeout=30_000)
        expect(thumb).to_have_value("0")
        wait_until_idle(page)
        thumb.focus()
        thumb.press("ArrowRight")
        expect(page).to_have_url(re.compile(r"[?&]z=0\.1(%2C|,)0(%2C|,)0"), timeout=30_000)
        wait_until_idle(page)
    page.evaluate("document.activeElement.blur()")
    wait_until_idle(page)
    assert_no_exception(page)
    full_page_screenshot(page, "explorer")  # resizes the viewport to the page, which may start a rerun:
    page.wait_for_timeout(1000)  # let it start, finish, and take the picture again
    shot = full_page_screenshot(page, "explorer")
    assert shot.stat().st_size > 50_000
    assert not page.console_errors, page.console_errors


def test_a_2d_vae_shows_its_manifold(lab_page, lab_server):
    page = lab_page
    open_explorer(page, lab_server, "run=vae-2d&z=1,-1")
    # the panels below the sliders draw later in the same run: give a loaded machine time
    expect(page.get_by_role("heading", name="The 2-D manifold")).to_be_visible(timeout=60_000)
    manifold = seen(page, ".st-key-explorer_manifold img")
    expect(manifold).to_be_visible(timeout=60_000)
    page.wait_for_function(LOADED, arg=".st-key-explorer_manifold img")
    assert images_loaded(manifold)
    assert manifold.evaluate("img => img.naturalWidth") >= 15 * 28  # a 15×15 grid of digits
    expect(page.get_by_role("heading", name="Samples from the prior")).to_be_visible()
    expect(seen(page, THUMB.format(0))).to_have_value("1")  # from ?z=
    expect(seen(page, THUMB.format(1))).to_have_value("-1")
    samples = seen(page, ".st-key-explorer_samples img")
    before = samples.get_attribute("src")
    page.get_by_role("button", name="New samples").click()
    page.wait_for_function(SRC_CHANGED, arg=[".st-key-explorer_samples img", before])
    wait_until_idle(page)
    assert_no_exception(page)
    expect(page).to_have_url(re.compile(r"[?&]seed=1\b"))
