"""The Train page in a real browser: start a run with a 3-second budget, watch it finish, overlay it on
another run, download it and check the zip. Takes the train screenshot.

Uses lab_server (runs already trained) and deletes the run it makes, so the other pages' tests see
the lab runs only.
"""

from __future__ import annotations

import re
import shutil
import time
import zipfile

import pytest
from playwright.sync_api import Error as PlaywrightError

from engine.runs.transfer import import_run
from tests.browser.conftest import new_runs, started_run
from tests.browser.helpers import (assert_no_exception, expect, fill_and_submit, full_page_screenshot, images_loaded,
                                   open_page, seen, wait_until_idle)

pytestmark = pytest.mark.browser

PANEL = ".st-key-run_panel"
TRAIN_TIMEOUT_MS = 120_000  # worker start-up, 3 s of training, the final evaluation, on a busy 2-core machine


def choose(page, multiselect, option: str) -> None:
    """Pick `option` in the overlay's multiselect; wait until the server has it (in `?compare=`).

    A rerun that lands while typing re-mounts the widget and loses the text (or the pick), and for a moment the
    old and the new mount are both there (two inputs: strict mode refuses the click): try again then.
    """
    in_url = "o => (new URLSearchParams(location.search).get('compare') || '').split(',').includes(o)"
    for attempt in range(3):
        try:
            seen(multiselect, "input").click(timeout=10_000)
            page.keyboard.type(option)
            page.get_by_role("option", name=option, exact=True).click(timeout=10_000)
            page.wait_for_function(in_url, arg=option, timeout=15_000)  # the pick can be lost to a rerun too
            break
        except PlaywrightError:  # a timeout, or two inputs
            page.keyboard.press("Escape")
            wait_until_idle(page)
            if page.evaluate(f"({in_url})", option):  # it did land, late
                break
            if attempt == 2:
                raise
    wait_until_idle(page)


def test_train_watch_compare_download(lab_page, lab_server, tmp_path):
    page = lab_page
    open_page(page, f"{lab_server.url}/train?model=ae", "Train")
    expect(page.get_by_text("Dense autoencoder: 784 → hidden → z")).to_be_visible()
    assert not new_runs(lab_server)

    latent = page.get_by_role("spinbutton", name="Latent size", exact=True)
    expect(latent).to_have_value("32", timeout=30_000)  # the config's default (input widgets load lazily)
    fill_and_submit(page, {"Latent size": "16", "Seconds": "3"})

    run = started_run(page, lab_server)
    try:
        panel = seen(page, PANEL)
        expect(panel).to_contain_text(run.id, timeout=30_000)  # the new run is the one shown live
        expect(panel).to_contain_text("State: done", timeout=TRAIN_TIMEOUT_MS)
        config = run.config
        assert config["model"] == "ae" and config["model_config"]["latent_dim"] == 16
        assert config["train"]["seconds"] == 3.0 and run.status().state == "done"
        assert re.search(rf"[?&]run={re.escape(run.id)}\b", page.url), page.url
        page.wait_for_function("n => shown(n).length >= 2", arg=f"{PANEL} img")
        assert images_loaded(panel.locator("img"))
        # the run's loss curve, once (seen: not a hidden copy Streamlit keeps of an element that moved)
        expect(seen(panel, ".js-plotly-plot").first).to_be_visible()
        expect(seen(panel, ".js-plotly-plot")).to_have_count(1, timeout=30_000)

        # overlay the new run on a lab run
        overlay = seen(page, ".st-key-train_compare")
        for rid in (run.id, "dense-ae"):
            choose(page, overlay, rid)
        # until the fragment's rerun ends, the chart of the earlier choice can still be shown: pick by content
        charts = seen(page, ".st-key-train_compare_chart .js-plotly-plot")
        chart = charts.filter(has_text="dense-ae")
        expect(chart).to_have_count(1, timeout=30_000)
        legend = chart.locator(".legendtext")  # one entry per run (its two curves share it)
        wanted = sorted([run.id, "dense-ae"])
        deadline = time.monotonic() + 30  # a stale chart of an earlier choice can match for a moment
        while sorted(legend.all_text_contents()) != wanted and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        assert sorted(legend.all_text_contents()) == wanted
        assert re.search(rf"compare={re.escape(run.id)}(%2C|,)dense-ae", page.url), page.url
        page.get_by_text("Against seconds of training").click()
        expect(page.get_by_role("switch", name="Against seconds of training")).to_be_checked()
        wait_until_idle(page)
        expect(charts.filter(has_text="seconds of training")).to_have_count(1, timeout=30_000)
        expect(charts).to_have_count(1, timeout=30_000)

        # download: the zip is built on click
        with page.expect_download() as info:
            page.get_by_role("button", name="Download run (.zip)").click()
        download = info.value
        assert download.suggested_filename == f"{run.id}.zip"
        path = tmp_path / download.suggested_filename
        download.save_as(path)
        with zipfile.ZipFile(path) as zf:
            assert zf.testzip() is None
            assert {"manifest.json", "config.json", "status.json", "metrics.jsonl"} <= set(zf.namelist())
        copy = import_run(tmp_path / "imported", path.read_bytes())  # the upload side accepts it
        assert copy.config["model_config"] == config["model_config"] and copy.status().state == "done"

        assert_no_exception(page)
        assert not page.console_errors, page.console_errors
        shot = full_page_screenshot(page, "train")
        assert shot.stat().st_size > 50_000

        # delete it from the page: the lab runs stay as they were for the other pages' tests
        panel.get_by_role("button", name="Delete").click()
        panel.get_by_role("button", name="Yes, delete it").click()
        expect(panel).not_to_contain_text(run.id, timeout=30_000)
        assert not run.path.exists()
        assert_no_exception(page)
    finally:
        if run.path.exists():
            shutil.rmtree(run.path)
