"""The Draw page in a real browser: draw on the canvas with the mouse, watch the reconstruction follow.

Takes the draw screenshot (the README shows it).
"""

from __future__ import annotations

import math
import re

import pytest

from tests.browser.helpers import (assert_no_exception, expect, full_page_screenshot, images_loaded, open_page, seen,
                                   wait_until_idle)

pytestmark = pytest.mark.browser

CANVAS = ".st-key-draw_canvas_box canvas.upper-canvas"  # fabric.js's top layer takes the mouse events
RESULT_TIMEOUT_MS = 60_000  # the first stroke also encodes the train split and scores the test split
# the 28×28 input (an st.image), then the results block's images (ui/charts/draw.py), in page order
IMAGES = '[data-testid="stImage"] img, .st-key-draw_results img:not(.ll-bars)'


def stroke(page, points: list[tuple[float, float]]) -> None:
    """Press, move through `points` (canvas pixels, 0–280) and release: one freehand stroke.

    The canvas is a Streamlit v2 component, drawn in the page itself (no iframe), so its bounding
    box is in page coordinates, which page.mouse uses.
    """
    box = seen(page, CANVAS).bounding_box()
    assert box and box["width"] >= 250, f"the canvas is not fully visible: {box}"
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=3)
    page.mouse.up()


def shown_images(page) -> list[str]:
    """The src of every image the panel shows (Streamlit serves each new image under a new media URL)."""
    imgs = seen(page, IMAGES)
    return [imgs.nth(i).get_attribute("src") for i in range(imgs.count())]


def wait_for_new_result(page, before: list[str]) -> list[str]:
    """Wait until the panel shows a new 28×28 input (a new media URL: new bytes) and the page is idle.

    Only the input must change: an image whose bytes did not change (the same neighbours) keeps its URL.
    """
    page.wait_for_function(
        """([sel, before]) => {
            const now = [...shown(sel)].map(i => i.src);
            return now.length >= 5 && (before.length === 0 || now[0] !== before[0]);
        }""", arg=[IMAGES, before], timeout=RESULT_TIMEOUT_MS)
    wait_until_idle(page)
    return shown_images(page)


def image_pixels(page, index: int) -> str:
    """The pixels of the index-th shown image as a data URL, read from the loaded <img> in the page.

    (Fetching the media URL again can race a rerun, which frees replaced media files.)
    """
    page.wait_for_function("([sel, i]) => { const im = shown(sel)[i];"
                           " return im && im.complete && im.naturalWidth > 0; }",
                           arg=[IMAGES, index], timeout=RESULT_TIMEOUT_MS)
    return page.evaluate("""([sel, i]) => {
        const im = shown(sel)[i];
        const c = document.createElement('canvas');
        c.width = im.naturalWidth; c.height = im.naturalHeight;
        c.getContext('2d').drawImage(im, 0, 0);
        return c.toDataURL('image/png');
    }""", [IMAGES, index])


def test_draw_a_digit_and_see_it_reconstructed(lab_page, lab_server):
    page = lab_page
    # The server must have run app.py once (in any session) before a deep link is routed through
    # st.navigation; before that, Streamlit serves /draw as a bare page from the pages/ folder.
    open_page(page, lab_server.url, "Latent Lab")
    open_page(page, f"{lab_server.url}/draw?run=conv-ae", "Draw")
    expect(page.get_by_text("Draw a digit in the black square")).to_be_visible()
    expect(seen(page, ".st-key-draw_runs")).to_contain_text("conv-ae")
    assert not shown_images(page)

    # a "1": one vertical stroke
    stroke(page, [(140, 40 + 10 * i) for i in range(21)])
    first = wait_for_new_result(page, [])
    first_input, first_x_hat, first_error = (image_pixels(page, i) for i in (0, 2, 3))
    assert len(first) == 5  # the 28×28 input; x, x̂ and |x − x̂| of the model; the nearest training images
    assert images_loaded(seen(page, IMAGES))
    expect(seen(page, '[data-testid="stMetric"]').first).to_contain_text("Looks like")
    expect(page.get_by_text("Anomaly score (MSE)")).to_be_visible()
    # the code z, the score histogram: SVG images of bars, drawn, and the line at this image's score
    charts = seen(page, ".st-key-draw_results img.ll-bars")
    expect(charts).to_have_count(2)
    assert images_loaded(charts) and charts.first.evaluate("i => i.getBoundingClientRect().height") > 100
    expect(seen(page, ".st-key-draw_results .ll-mark")).to_have_attribute("title",
                                                                        re.compile(r"this image: MSE 0\.\d{4}"))
    assert_no_exception(page)

    # a "0" over it: the input, the reconstruction and the rest all change with the drawing
    stroke(page, [(140 + 80 * math.sin(2 * math.pi * t / 20), 140 - 100 * math.cos(2 * math.pi * t / 20))
                  for t in range(21)])
    wait_for_new_result(page, first)
    assert image_pixels(page, 0) != first_input  # the 28×28 input
    assert image_pixels(page, 2) != first_x_hat  # x̂
    assert image_pixels(page, 3) != first_error  # |x − x̂|
    # the block is still styled after a rerun of the panel alone (its style sheet comes with the page's run)
    assert seen(page, ".st-key-draw_results img.ll-xhat").evaluate("i => i.getBoundingClientRect().width") > 100
    assert seen(page, ".st-key-draw_results img.ll-bars").first.evaluate(
        "i => i.getBoundingClientRect().height") > 100
    assert re.search(r"[?&]run=conv-ae\b", page.url), page.url
    assert_no_exception(page)
    full_page_screenshot(page, "draw")
    assert not page.console_errors, page.console_errors


def test_a_link_restores_two_models_and_a_test_digit(lab_page, lab_server):
    page = lab_page
    open_page(page, lab_server.url, "Latent Lab")
    open_page(page, f"{lab_server.url}/draw?run=conv-ae,dense-ae&input=test&image=5", "Draw")
    runs = seen(page, ".st-key-draw_runs")
    expect(runs).to_contain_text("conv-ae")
    expect(runs).to_contain_text("dense-ae")
    expect(page.get_by_text("Test image 5 · label")).to_be_visible()
    # the input, then x, x̂ and |x − x̂| for each model, then the neighbours
    expect(seen(page, IMAGES)).to_have_count(1 + 3 * 2 + 1, timeout=RESULT_TIMEOUT_MS)
    # the code z, the histogram
    expect(seen(page, ".st-key-draw_results img.ll-bars")).to_have_count(2)
    assert_no_exception(page)


def test_the_canvas_toolbar_is_in_plain_sight_and_a_stroke_from_the_top_strip_counts(lab_page, lab_server):
    """Issue 10: a stroke that began in the canvas's top strip was lost under the toolbar's invisible box, the
    toolbar showed only on hover (over the model chips), and strokes piled up with no visible Clear."""
    page = lab_page
    open_page(page, lab_server.url, "Latent Lab")
    open_page(page, f"{lab_server.url}/draw?run=conv-ae", "Draw")
    canvas = seen(page, CANVAS)
    toolbar = seen(page, ".st-key-draw_canvas_box .dc-toolbar")  # Playwright's CSS reaches into the shadow root
    expect(toolbar).to_be_visible()
    assert toolbar.evaluate("el => getComputedStyle(el).opacity") == "1"  # without hovering
    bar, box = toolbar.bounding_box(), canvas.bounding_box()
    assert bar["y"] + bar["height"] <= box["y"] + 1, (bar, box)  # above the canvas, not over it
    chips = seen(page, ".st-key-draw_runs").bounding_box()
    assert chips["y"] + chips["height"] <= bar["y"] + 1, (chips, bar)  # and not over the model chips

    # a "1" drawn from the very top edge at the right, where the toolbar's box used to be
    stroke(page, [(250, 3 + 10 * i) for i in range(25)])
    first = wait_for_new_result(page, [])
    ink = page.evaluate("""() => {
        const im = shown('[data-testid="stImage"] img')[0];  // the 28×28 input
        const c = document.createElement('canvas'); c.width = im.naturalWidth; c.height = im.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(im, 0, 0);
        const d = g.getImageData(0, 0, c.width, c.height).data;
        let sum = 0; for (let i = 0; i < d.length; i += 4) sum += d[i];
        return sum / 255;
    }""")
    assert ink > 5, ink  # the stroke reached the model: its 28×28 input is not black
    assert_no_exception(page)

    # Clear: an empty canvas, and the page asks for a drawing again
    page.get_by_role("button", name="Clear", exact=True).click()
    expect(page.get_by_text("Draw a digit in the black square")).to_be_visible(timeout=30_000)
    wait_until_idle(page)
    assert shown_images(page) != first
    assert_no_exception(page)
