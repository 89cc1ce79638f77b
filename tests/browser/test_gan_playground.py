"""The 2-D GAN playground in a real browser: play, pause, step in slow motion, switch data, draw points.

Takes the gan_playground screenshot.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.browser.helpers import (assert_no_exception, expect, for_the_readme, full_page_screenshot, open_page, seen,
                                   wait_until_idle)

pytestmark = pytest.mark.browser

PLANE = ".st-key-toy_plane .js-plotly-plot"
CANVAS = ".st-key-toy_canvas canvas.upper-canvas"  # fabric.js's top layer takes the mouse events
WAIT_MS = 60_000  # a busy 2-core machine: first draws, and frames while other tests run
# A trace's coordinates as plotted ([xs, ys]); plotly keeps numpy arrays as typed arrays (dtype + base64).
TRACE = """([sel, name]) => {
    const gd = shown(sel)[0];
    const t = gd && gd.data && gd.data.find(d => d.name === name);
    if (!t) return null;
    const types = {f4: Float32Array, f8: Float64Array};
    const values = a => a && a.bdata
        ? Array.from(new types[a.dtype](Uint8Array.from(atob(a.bdata), c => c.charCodeAt(0)).buffer))
        : Array.from(a);
    return [values(t.x), values(t.y)]; }"""


def trace(page, name: str) -> list[list[float]]:
    points = page.evaluate(TRACE, [PLANE, name])
    assert points and points[0], f"no points in the trace {name!r}"
    return points


def wait_until_moved(page, before: list[list[float]]) -> None:
    """Until the plotted generated points differ from `before` (the chart redraws just after the metrics)."""
    page.wait_for_function(f"([sel, name, before]) => JSON.stringify(({TRACE})([sel, name])) !== before",
                           arg=[PLANE, "generated G(z)", json.dumps(before)], timeout=WAIT_MS)


def step_metric(page):
    metric = seen(page, ".st-key-toy_metrics [data-testid='stMetric']").filter(has_text="Step")
    return seen(metric, "[data-testid='stMetricValue']")


def step_count(page) -> int:
    return int(step_metric(page).inner_text().replace(",", ""))


def wait_for_step(page, at_least: int) -> None:
    page.wait_for_function(
        """n => { const m = [...shown(".st-key-toy_metrics [data-testid='stMetric']")]
                 .find(e => e.innerText.includes('Step'));
                 const value = m && m.querySelector("[data-testid='stMetricValue']").innerText;
                 return value && parseInt(value.replace(/,/g, '')) >= n; }""",
        arg=at_least, timeout=WAIT_MS)


def choose(page, key: str, option: str) -> None:
    seen(page, f".st-key-{key}").click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_until_idle(page, WAIT_MS)


def test_play_pause_step_and_switch(page, app_server):
    # The server must have run app.py once before a deep link is routed through st.navigation.
    open_page(page, app_server.url, "Latent Lab")
    open_page(page, f"{app_server.url}/gan_playground", "2-D GAN playground")
    expect(seen(page, PLANE)).to_be_visible(timeout=WAIT_MS)
    assert step_count(page) == 0
    expect(page).to_have_url(re.compile(r"[?&]dist=ring\b"))
    expect(page).to_have_url(re.compile(r"[?&]loss=non_saturating\b"))
    before = trace(page, "generated G(z)")
    assert len(before[0]) == 300

    page.get_by_role("button", name="Play").click()
    wait_for_step(page, 60)  # frames keep coming without any click: the fragment ticks
    wait_until_moved(page, before)  # the generated points moved
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("button", name="Play")).to_be_visible(timeout=WAIT_MS)
    wait_until_idle(page, WAIT_MS)
    paused = step_count(page)
    page.wait_for_timeout(1500)  # paused: no frame advances it
    assert step_count(page) == paused

    page.get_by_role("button", name="Step D").click()
    wait_for_step(page, paused + 1)
    wait_until_idle(page)
    frame = trace(page, "generated G(z)")
    page.get_by_role("button", name="Step G").click()
    wait_for_step(page, paused + 2)
    wait_until_idle(page)
    assert step_count(page) == paused + 2
    wait_until_moved(page, frame)  # a generator update moves the points
    assert_no_exception(page)

    # playing on after the steps; for the README's screenshot a few hundred, so the modes are found and the
    # arrows point at them (an ordinary run stops sooner: those steps test nothing more)
    page.get_by_role("button", name="Play").click()
    wait_for_step(page, paused + (300 if for_the_readme() else 40))
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("button", name="Play")).to_be_visible(timeout=WAIT_MS)
    wait_until_idle(page, WAIT_MS)
    assert_no_exception(page)
    shot = full_page_screenshot(page, "gan_playground")
    assert shot.stat().st_size > 50_000
    page.set_viewport_size({"width": 1280, "height": 900})

    choose(page, "toy_dist", "Spiral")
    expect(page).to_have_url(re.compile(r"[?&]dist=spiral\b"))
    expect(step_metric(page)).to_have_text("0", timeout=WAIT_MS)  # a new distribution: a new model
    page.wait_for_timeout(1000)
    assert step_count(page) == 0  # and it is not playing
    choose(page, "toy_loss", "Minimax: log(1 − D(G(z)))")
    expect(page).to_have_url(re.compile(r"[?&]loss=minimax\b"))
    assert_no_exception(page)
    assert not page.console_errors, page.console_errors


def test_draw_points_and_learn_them(page, app_server):
    open_page(page, app_server.url, "Latent Lab")
    open_page(page, f"{app_server.url}/gan_playground?dist=points", "2-D GAN playground")
    expect(page.get_by_text("Click in the square to place at least 5 points")).to_be_visible(timeout=WAIT_MS)
    canvas = seen(page, CANVAS)
    expect(canvas).to_be_visible(timeout=WAIT_MS)
    clicks = [(60, 60), (240, 60), (150, 150), (60, 240), (240, 240), (150, 40)]
    for i, (x, y) in enumerate(clicks, 1):
        canvas.scroll_into_view_if_needed()  # a click outside the viewport is lost
        box = canvas.bounding_box()
        assert box and box["width"] >= 250, box
        page.mouse.click(box["x"] + x, box["y"] + y)
        if i < 5:
            expect(page.get_by_text(f"place at least 5 points (there {'is' if i == 1 else 'are'} {i})")
                   ).to_be_visible(timeout=WAIT_MS)
            assert seen(page, PLANE).count() == 0  # nothing to learn yet
        wait_until_idle(page, WAIT_MS)
    expect(page.get_by_text("Learning your 6 points")).to_be_visible(timeout=WAIT_MS)
    expect(seen(page, PLANE)).to_be_visible(timeout=WAIT_MS)
    # the real points sit around the clicks: (60, 60) px on a 300 px square is (−1.2, 1.2)
    reals = trace(page, "real x")
    near = sum(1 for x, y in zip(*reals) if abs(x + 1.2) < 0.3 and abs(y - 1.2) < 0.3)
    assert near > len(reals[0]) / 12, near
    expect(page).to_have_url(re.compile(r"[?&]points=-1\.[12]\d(,|%2C)1\.[12]\d"))
    page.get_by_role("button", name="Step both").click()
    wait_for_step(page, 1)
    assert_no_exception(page)
    assert not page.console_errors, page.console_errors
