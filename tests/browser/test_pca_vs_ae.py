"""PCA vs autoencoder in a real browser: the error-vs-latent chart, the images, the principal angles.

Takes the pca_vs_ae screenshot (latent size 16: PCA, linear-ae and the angle chart).
"""

from __future__ import annotations

import re

import pytest

from tests.browser.helpers import (assert_no_exception, expect, full_page_screenshot, images_loaded, open_page, seen,
                                   wait_until_idle)

pytestmark = pytest.mark.browser
SLOW_MS = 60_000  # first draws on a busy 2-core machine: PCA fits, model loads, plotly



STRIPS = ".st-key-pcae_images img"
SRC_CHANGED = "([sel, old]) => { const imgs = shown(sel); " \
              "return imgs.length > 1 && imgs[1].src !== old; }"


def test_charts_images_and_a_new_latent_size(lab_page, lab_server):
    page = lab_page
    open_page(page, f"{lab_server.url}/pca_vs_ae?k=16&lin=linear-ae", "PCA vs autoencoder")
    error_chart = seen(page, ".st-key-pcae_error_chart .js-plotly-plot")
    expect(error_chart).to_be_visible(timeout=SLOW_MS)
    legend = error_chart.locator(".legendtext")
    expect(legend).to_have_text(["PCA (closed form)", "linear AE", "dense AE", "conv AE"])
    expect(error_chart.locator(".scatterlayer .trace").first.locator(".point")).to_have_count(12)  # PCA's k values
    angle_chart = seen(page, ".st-key-pcae_angle_chart .js-plotly-plot")
    expect(angle_chart).to_be_visible(timeout=SLOW_MS)
    expect(angle_chart.locator(".barlayer .point")).to_have_count(2 * 16)  # k = 16 angles, AE and chance
    expect(seen(page, STRIPS)).to_have_count(3)  # x, PCA, linear AE (no non-linear AE at 16)
    assert images_loaded(seen(page, STRIPS))
    expect(page.get_by_text("No non-linear AE with latent size 16 yet")).to_be_visible()
    mean_cos = float(seen(page, "[data-testid='stMetricValue']").first.inner_text())
    assert 0 < mean_cos <= 1

    # a larger latent size: PCA keeps more, there is a non-linear AE but no linear one
    pca_before = seen(page, STRIPS).nth(1).get_attribute("src")
    thumb = seen(page, ".st-key-pcae_k").get_by_role("slider")
    thumb.focus()
    thumb.press("ArrowRight")  # 16 → 32
    page.wait_for_function(SRC_CHANGED, arg=[STRIPS, pca_before], timeout=SLOW_MS)
    wait_until_idle(page)
    assert_no_exception(page)
    expect(page).to_have_url(re.compile(r"[?&]k=32\b"))
    expect(seen(page, ".st-key-pcae_angle_chart")).to_have_count(0)
    expect(page.get_by_text("Principal angles need a linear AE with latent size 32")).to_be_visible()
    expect(seen(page, STRIPS)).to_have_count(3)  # x, PCA, the non-linear AE

    thumb.focus()
    thumb.press("ArrowLeft")  # back to 16 for the screenshot
    expect(seen(page, ".st-key-pcae_angle_chart .js-plotly-plot")).to_be_visible(timeout=SLOW_MS)
    wait_until_idle(page)
    assert_no_exception(page)
    shot = full_page_screenshot(page, "pca_vs_ae")
    assert shot.stat().st_size > 50_000
    assert not page.console_errors, page.console_errors
