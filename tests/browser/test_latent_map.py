"""The Latent map in a real browser: PCA at once, UMAP swapped in, a clicked point shows its image, a replay plays.

Takes the latent_map screenshot (the conv-ae run's UMAP map with one test image selected).
"""

from __future__ import annotations

import re
import time

import pytest

from tests.browser.helpers import (LOADED, assert_no_exception, expect, full_page_screenshot, images_loaded, open_page,
                                   seen, wait_until_idle)

pytestmark = pytest.mark.browser

SCATTER = ".st-key-map_scatter .js-plotly-plot"
REPLAY = ".st-key-map_replay .js-plotly-plot"
PANEL = ".st-key-map_selection"
UMAP_TIMEOUT_MS = 300_000  # numba compiles UMAP once per server (~30 s alone; minutes on a busy 2-core box)


# The most isolated marker of the class traces, in viewport pixels: a click there hits that marker only.
# l2p maps data to pixels inside the axis; _offset is the axis' start inside the figure.
ISOLATED_POINT = """gd => {
    gd.scrollIntoView({block: 'center'});
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
    const pts = [];
    for (const t of gd._fullData) {
        if (t.name === 'selected' || t.name === 'your drawing') continue;
        for (let i = 0; i < t.x.length; i++)
            pts.push([xa.l2p(t.x[i]) + xa._offset, ya.l2p(t.y[i]) + ya._offset, t.customdata[i]]);
    }
    const inside = p => p[0] > xa._offset + 20 && p[0] < xa._offset + xa._length - 20
                        && p[1] > ya._offset + 20 && p[1] < ya._offset + ya._length - 20;
    let best = null, bestGap = -1;
    for (const p of pts.filter(inside)) {
        let gap = Infinity;
        for (const q of pts) if (q !== p) gap = Math.min(gap, (p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2);
        if (gap > bestGap) { bestGap = gap; best = p; }
    }
    return {x: box.left + best[0], y: box.top + best[1], id: best[2], gap: Math.sqrt(bestGap)};
}"""

# The pixel position of the median marker of the biggest class trace, and that class's name.
CLASS_CENTRE = """gd => {
    gd.scrollIntoView({block: 'center'});
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
    const traces = gd._fullData.filter(t => t.name !== 'selected' && t.name !== 'your drawing');
    const t = traces.reduce((a, b) => (b.x.length > a.x.length ? b : a));
    const median = v => Array.from(v).sort((a, b) => a - b)[Math.floor(v.length / 2)];
    return {x: box.left + xa._offset + xa.l2p(median(t.x)), y: box.top + ya._offset + ya.l2p(median(t.y)),
            name: t.name};
}"""


def hover_isolated_marker(page, timeout_s: float = 30.0) -> dict:
    """Hover the most isolated marker until plotly reports it; returns it ({x, y, id, gap}).

    The position is measured again on every try: a chart that was still being redrawn moves its markers.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        expect(seen(page, SCATTER)).to_have_count(1)  # React may hold the old plot a moment
        scatter = seen(page, SCATTER)
        target = scatter.evaluate(ISOLATED_POINT)
        page.mouse.move(target["x"] - 8, target["y"] - 8)
        page.mouse.move(target["x"], target["y"], steps=2)
        page.wait_for_timeout(250)
        hovered = scatter.evaluate("gd => (gd._hoverdata || []).map(h => h.customdata)")
        if target["id"] in hovered:
            return target
        assert time.monotonic() < deadline, f"plotly never hovered marker {target}: {hovered}"




def test_umap_map_select_a_point_and_replay(lab_page, lab_server):
    page = lab_page
    open_page(page, f"{lab_server.url}/latent_map?run=conv-ae", "Latent map")
    expect(seen(page, SCATTER)).to_be_visible(timeout=60_000)  # at once: PCA while UMAP compiles or computes
    expect(page.get_by_text("showing the PCA map meanwhile")).to_have_count(0, timeout=UMAP_TIMEOUT_MS)
    wait_until_idle(page)
    assert_no_exception(page)
    expect(seen(page, SCATTER).locator(".gtitle")).to_contain_text("UMAP of 1,000 test codes")
    assert re.search(r"[?&]method=umap\b", page.url) and re.search(r"[?&]run=conv-ae\b", page.url), page.url
    expect(seen(page, PANEL)).to_contain_text("Select a point")
    expect(seen(page, PANEL)).to_contain_text("on the UMAP map")

    # click one marker: its image and reconstruction appear, and the link names it
    target = hover_isolated_marker(page)
    assert target["gap"] > 3, target  # a marker no other one overlaps
    page.mouse.click(target["x"], target["y"])
    # while the rerun draws, the panel's old copy may still show beside the new one: wait for the new one, then
    # for the old one to go
    expect(seen(page, PANEL).filter(has_text=f"Test image #{target['id']}").first).to_be_visible(timeout=30_000)
    expect(page).to_have_url(re.compile(rf"[?&]image={target['id']}\b"))
    wait_until_idle(page)
    expect(seen(page, PANEL)).to_have_count(1, timeout=30_000)
    images = seen(page, f"{PANEL} img")
    expect(images).to_have_count(2)  # x and x̂
    page.wait_for_function(LOADED, arg=f"{PANEL} img")
    assert images_loaded(images)
    expect(seen(page, PANEL)).to_contain_text("x̂ (reconstruction)")
    assert_no_exception(page)

    # a box around the middle of one class's markers: a group, its class counts and a grid of its images
    expect(seen(page, SCATTER)).to_have_count(1)
    box = seen(page, SCATTER).evaluate(CLASS_CENTRE)
    seen(page, SCATTER).locator(".modebar-btn[data-title='Box Select']").click()
    page.mouse.move(box["x"] - 30, box["y"] - 30)
    page.mouse.down()
    page.mouse.move(box["x"], box["y"], steps=5)
    page.mouse.move(box["x"] + 30, box["y"] + 30, steps=5)
    page.mouse.up()
    expect(seen(page, PANEL)).to_contain_text("images selected", timeout=30_000)
    wait_until_idle(page)
    expect(seen(page, PANEL)).to_contain_text(f"{box['name']}: ")
    expect(page).not_to_have_url(re.compile(r"[?&]image="))  # a group is not one image
    page.wait_for_function(LOADED, arg=f"{PANEL} img")
    assert_no_exception(page)

    # the replay over checkpoints: several frames, and Play moves the slider along them
    replay = seen(page, REPLAY)
    replay.scroll_into_view_if_needed()
    frames = replay.evaluate("gd => (gd._transitionData && gd._transitionData._frames || []).length")
    assert frames >= 2, frames
    assert replay.evaluate("gd => gd._fullLayout.sliders[0].active") == 0
    replay.locator(".updatemenu-button", has_text="Play").click()
    page.wait_for_function("gd => gd._fullLayout.sliders[0].active > 0", arg=replay.element_handle(),
                           timeout=15_000)
    # and plays to the end (Pause would interrupt plotly's animate(), whose promise then rejects unhandled)
    page.wait_for_function("([gd, n]) => gd._fullLayout.sliders[0].active === n - 1",
                           arg=[replay.element_handle(), frames], timeout=60_000)
    assert_no_exception(page)

    seen(page, SCATTER).first.scroll_into_view_if_needed()
    shot = full_page_screenshot(page, "latent_map")
    assert shot.stat().st_size > 50_000
    assert not page.console_errors, page.console_errors
