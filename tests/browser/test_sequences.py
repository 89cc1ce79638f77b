"""The Sequences and Time-series anomalies pages in a real browser: train in the background from each page, replay
the reconstructions, select a series, see the LSTM's gate heatmap, move the anomaly threshold; no exception.

Uses app_server (an empty runs folder) and deletes the runs it makes, so the other pages' tests never see them.
"""

from __future__ import annotations

import re
import shutil

import pytest

from tests.browser.conftest import new_runs, started_run
from tests.browser.helpers import assert_no_exception, expect, full_page_screenshot, open_page, seen, wait_until_idle

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]  # a training and a first matrix-profile compile each

PANEL = ".st-key-run_panel"
TRAIN_TIMEOUT_MS = 240_000  # worker start-up, 50 steps, the final evaluation, on a busy 2-core machine


def train_from_page(page, server, expander: str, steps_key: str):
    """Open the page's training expander, set the fewest steps (Home on the slider), press Train; the new run."""
    seen(page, "[data-testid=\"stExpander\"] summary").filter(has_text=expander).click()
    thumb = seen(page, f".st-key-{steps_key} input[type=range]")
    thumb.focus()
    thumb.press("Home")
    expect(thumb).to_have_value("50")
    wait_until_idle(page)
    before = {r.id for r in new_runs(server)}  # runs other tests started on this server stay
    page.get_by_role("button", name="Train in the background").click()
    run = started_run(page, server, before=before)
    expect(seen(page, PANEL)).to_contain_text("State: done", timeout=TRAIN_TIMEOUT_MS)
    # the page redraws on the finished run: on a fresh machine the matrix profile's first call compiles (~40 s)
    wait_until_idle(page, TRAIN_TIMEOUT_MS)
    return run


def remove(server, run) -> None:
    shutil.rmtree(run.path, ignore_errors=True)


def test_sequences_train_replay_select_and_gates(page, app_server):
    open_page(page, f"{app_server.url}/sequences?data=italy-power", "Sequences")
    expect(page.get_by_text("No sequence run on this dataset yet")).to_be_visible()
    run = train_from_page(page, app_server, "Train a sequence model", "seq_steps")
    try:
        assert run.config["model"] == "lstm_ae" and run.config["model_config"]["length"] == 24
        assert_no_exception(page)
        open_page(page, f"{app_server.url}/sequences?data=italy-power&run={run.id}", "Sequences")  # a shared link
        expect(page.get_by_text("Reconstructions over training")).to_be_visible(timeout=60_000)
        # replay: the snapshot slider's first step (Home), and the URL follows
        thumb = seen(page, f".st-key-seq_step_{run.id} input[type=range]")
        thumb.focus()
        thumb.press("Home")
        page.wait_for_function("() => new URLSearchParams(location.search).get('step') === '0'")
        wait_until_idle(page)
        # select another test series by its number
        field = seen(page, ".st-key-seq_i input")
        field.fill("42")
        field.press("Enter")
        page.wait_for_function("() => new URLSearchParams(location.search).get('i') === '42'")
        wait_until_idle(page)
        expect(page.get_by_text("Inside the LSTM: gates and cell state")).to_be_visible()
        heat = seen(page, ".st-key-seq_gates .js-plotly-plot, [class*='seq_gates'] .js-plotly-plot")
        if heat.count() == 0:  # older Streamlit builds key the chart's element differently
            heat = seen(page, ".js-plotly-plot").filter(has_text="forget gate")
        expect(heat.first).to_contain_text("forget gate", timeout=30_000)
        assert page.locator(".js-plotly-plot .heatmaplayer, .js-plotly-plot image").count() > 0
        assert re.search(rf"[?&]run={re.escape(run.id)}\b", page.url), page.url
        assert_no_exception(page)
        full_page_screenshot(page, "sequences")
    finally:
        remove(app_server, run)


def test_time_series_anomalies_train_and_threshold(page, app_server):
    open_page(page, f"{app_server.url}/ts_anomaly?series=yahoo", "Time-series anomalies")
    run = train_from_page(page, app_server, "Train an autoencoder on the normal start", "tsa_steps")
    try:
        assert run.config["dataset"] == "yahoo"
        open_page(page, f"{app_server.url}/ts_anomaly?series=yahoo&run={run.id}", "Time-series anomalies")
        expect(page.get_by_text("AUROC over steps").first).to_be_visible(timeout=120_000)  # stumpy may compile
        # the matrix profile shows once stumpy is prepared (the page began that when it was first opened)
        expect(page.get_by_text("Matrix profile", exact=True)).to_be_visible(timeout=120_000)
        thumb = seen(page, ".st-key-tsa_q input[type=range]")
        thumb.focus()
        thumb.press("End")
        page.wait_for_function("() => new URLSearchParams(location.search).get('q') === '100.0'")
        wait_until_idle(page)
        assert_no_exception(page)
        full_page_screenshot(page, "ts_anomaly")
    finally:
        remove(app_server, run)


def test_a_csv_uploaded_on_the_sequences_page_is_picked_and_a_bad_one_explained(page, app_server, monkeypatch):
    from engine.data.uploads import delete_upload, list_uploads
    from tests.engine.test_uploads import series_csv

    monkeypatch.setenv("LATENT_LAB_RUNS", str(app_server.runs_dir))  # list_uploads here reads the server's folder
    open_page(page, f"{app_server.url}/sequences", "Sequences")
    seen(page, "[data-testid=\"stExpander\"] summary").filter(has_text="Upload your own series (CSV)").click()
    try:
        for filename, data in (("ragged.csv", b"1,2,3,4\n5,6,7\n"), ("browser waves.csv", series_csv())):
            # the uploader's own input is invisible (0×0); a refused file leaves the uploader as it was (round 0)
            page.locator(".st-key-seq_uploads_file_0 input[type=file]").set_input_files(
                files=[{"name": filename, "mimeType": "text/csv", "buffer": data}])
            expect(seen(page, ".st-key-seq_uploads_file_0")).to_contain_text(filename)
            wait_until_idle(page)
            page.get_by_role("button", name="Upload series").click()
            wait_until_idle(page, 60_000)
            if filename == "ragged.csv":
                expect(seen(page, "[data-testid='stAlertContentError']")).to_contain_text("row 2 has 3 values")
        page.wait_for_function("() => new URLSearchParams(location.search).get('data') === "
                               "'upload:local/browser-waves'")
        expect(seen(page, ".st-key-seq_data input")).to_have_value("upload:local/browser-waves")
        expect(seen(page, "[data-testid='stCaptionContainer']").filter(has_text="30 series of 20 steps in 2 classes")
               .first).to_be_visible()  # its description under the picker
        expect(page.get_by_text("No sequence run on this dataset yet")).to_be_visible()
        assert [i.name for i in list_uploads("local")] == ["upload:local/browser-waves"]  # the ragged one: not kept
        assert_no_exception(page)
        full_page_screenshot(page, "sequences_upload")
    finally:
        for info in list_uploads("local"):
            delete_upload("local", info.name.rsplit("/", 1)[1])
