"""The Noise lab in a real browser: the noise level slider redraws the noisy image and every PSNR.

Takes the noise_lab screenshot (denoising-ae, dense-ae and pca-16 on a Gaussian-noised digit).
"""

from __future__ import annotations

import re

import pytest

from tests.browser.helpers import (SRC_CHANGED, assert_no_exception, expect, full_page_screenshot, open_page, seen,
                                   wait_until_idle)

pytestmark = pytest.mark.browser
SLOW_MS = 60_000  # first draws on a busy 2-core machine: PCA fits, model loads, plotly



NOISY = ".st-key-noise_out_noisy img"
CELL_IMAGES = "[class*='st-key-noise_out_'] img"
ALL_LOADED = "sel => { const imgs = [...shown(sel)]; " \
             "return imgs.length === 5 && imgs.every(i => i.complete && i.naturalWidth > 0); }"
CELLS = ("noisy", "dn", "ae", "pca")


def psnr_values(page) -> dict[str, float]:
    """The PSNR (dB) shown under the noisy image and under each model's output."""
    out = {}
    for name in CELLS:
        text = seen(page, f".st-key-noise_out_{name} [data-testid='stMetricValue']").inner_text()
        out[name] = float(text.split()[0])
    return out


def test_the_noise_level_changes_the_noisy_image_and_the_psnrs(lab_page, lab_server):
    page = lab_page
    # dense-ae: the plain twin of denoising-ae (same layers, trained on clean images)
    open_page(page, f"{lab_server.url}/noise_lab?dn=denoising-ae&ae=dense-ae&pca=pca-16&image=3", "Noise lab")
    for name in ("clean", *CELLS):
        expect(seen(page, f".st-key-noise_out_{name} img")).to_be_visible(timeout=SLOW_MS)
    page.wait_for_function(ALL_LOADED, arg=CELL_IMAGES)
    chart = seen(page, ".st-key-noise_chart .js-plotly-plot")
    expect(chart).to_be_visible(timeout=SLOW_MS)
    expect(chart.locator(".legendtext")).to_have_count(4)  # three models and the noisy input
    before_src = seen(page, NOISY).get_attribute("src")
    before = psnr_values(page)
    assert before["dn"] > before["noisy"]  # the denoising AE (trained on σ = 0.4 Gaussian noise) helps at σ = 0.4

    thumb = seen(page, ".st-key-noise_level_gaussian").get_by_role("slider")
    expect(thumb).to_have_value("0.4")
    thumb.focus()
    for _ in range(4):
        thumb.press("ArrowRight")  # one step (0.05) and one fragment rerun per press
    page.wait_for_function(SRC_CHANGED, arg=[NOISY, before_src], timeout=SLOW_MS)
    expect(thumb).to_have_value("0.6")
    expect(page).to_have_url(re.compile(r"[?&]level=0\.6\b"))
    wait_until_idle(page)
    assert_no_exception(page)
    after = psnr_values(page)
    assert after["noisy"] < before["noisy"] - 1, (before, after)  # σ 0.4 → 0.6: a noisier input
    for name in ("dn", "ae", "pca"):
        assert after[name] != before[name], (name, before, after)
    page.wait_for_function(ALL_LOADED, arg=CELL_IMAGES)  # the clean image and four new ones

    # back to σ = 0.4 for the screenshot, where the denoising AE shows what it is for
    thumb.focus()
    for _ in range(4):
        thumb.press("ArrowLeft")
    expect(thumb).to_have_value("0.4")
    expect(seen(page, ".st-key-noise_out_noisy [data-testid='stMetricValue']")).to_have_text(
        f"{before['noisy']:.1f} dB", timeout=SLOW_MS)
    wait_until_idle(page)
    assert psnr_values(page) == before  # the same seed: the same noise, the same outputs
    assert_no_exception(page)
    shot = full_page_screenshot(page, "noise_lab")
    assert shot.stat().st_size > 50_000
    assert not page.console_errors, page.console_errors
