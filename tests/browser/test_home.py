"""The home page in a real browser: render, train a starter model, watch it finish, follow a link.

Takes the home screenshot (the README shows it).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.runs import list_runs
from tests.browser import helpers
from tests.browser.helpers import assert_no_exception, expect, full_page_screenshot, images_loaded, seen

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.browser

PANEL = ".st-key-run_panel"
TRAIN_TIMEOUT_MS = 300_000  # the 800-step starter on a loaded machine: worker start-up, training, evaluation
# A process that keeps one core busy for at most BUSY_S seconds (it stops by itself), as a hosted server's
# other work would.
BUSY_S = 240
BUSY = f"import time\nend = time.monotonic() + {BUSY_S}\nwhile time.monotonic() < end:\n    pass\n"


def wait_until_idle(page, timeout_ms: int = 30_000) -> None:
    helpers.wait_until_idle(page, timeout_ms, "Latent Lab")


def test_home_trains_a_starter_model_that_beats_pca_on_a_busy_machine(page, app_server):
    """Issue 10: on a busy machine the 15-second starter reached only 0.85× PCA's error and said nothing of how
    long it would take. Now: a step budget, a panel that says what it is doing and for how long, a verdict."""
    page.goto(app_server.url)
    wait_until_idle(page, 60_000)
    assert_no_exception(page)
    expect(page.get_by_text("No runs yet")).to_be_visible()
    expect(page.get_by_text("Device:")).to_be_visible()

    busy = subprocess.Popen([sys.executable, "-c", BUSY], stdin=subprocess.DEVNULL)
    try:
        page.get_by_role("button", name="Train a starter model").click()
        panel = seen(page, PANEL)
        said = set()
        for _ in range(TRAIN_TIMEOUT_MS // 1000):
            text = panel.inner_text() if panel.count() else ""
            said.update(re.findall(r"(?:Queued|Starting|Preparing|Training):[^\n]*", text))
            if "State: done" in text:
                break
            page.wait_for_timeout(1000)
    finally:
        busy.kill()
        busy.wait()
    expect(panel).to_contain_text("State: done", timeout=30_000)
    (run,) = list_runs(app_server.runs_dir)
    assert run.status().state == "done"
    assert run.config["train"]["steps"] == 800 and run.config["name"] == "starter"
    assert any(re.fullmatch(r"Training: step [\d,]+ of 800, about [\d.]+ (s|min) left\.", line) for line in said), said
    ratio = run.status().final_metrics["mse_vs_pca"]
    assert ratio < 0.5, ratio  # 0.41 on a quiet machine, and the same on a busy one: the same 800 steps
    expect(panel).to_contain_text(f"{ratio:.2f}× PCA's test error")
    expect(panel).to_contain_text("clearly beats the best linear code")
    expect(panel).to_contain_text(run.id)
    expect(panel).to_contain_text("test MSE")
    imgs = seen(panel, "img")
    expect(imgs.nth(1)).to_be_visible()  # the inputs and the latest reconstructions, side by side
    page.wait_for_function("n => shown(n).length >= 2", arg=f"{PANEL} img")
    assert images_loaded(imgs)
    expect(seen(panel, ".js-plotly-plot")).to_be_visible()  # the loss curve
    assert re.search(rf"[?&]run={re.escape(run.id)}\b", page.url), page.url
    wait_until_idle(page)
    assert_no_exception(page)
    shot = full_page_screenshot(page, "home")
    assert shot.stat().st_size > 20_000
    assert not page.console_errors, page.console_errors


def test_a_link_restores_the_run(page, app_server):
    runs = list_runs(app_server.runs_dir)
    if not runs:
        pytest.skip("needs the run that test_home_trains_a_starter_model made")
    page.goto(f"{app_server.url}/?run={runs[0].id}")
    wait_until_idle(page, 60_000)
    expect(seen(page, PANEL)).to_contain_text(runs[0].id)
    expect(seen(page, PANEL)).to_contain_text("State: done")
    page.goto(f"{app_server.url}/?run=no-such-run")
    wait_until_idle(page, 60_000)
    expect(page.get_by_text("There is no run 'no-such-run'")).to_be_visible()
    assert_no_exception(page)


def test_cancel_resume_delete(page, app_server):
    page.goto(app_server.url)
    wait_until_idle(page, 60_000)
    before = {r.id for r in list_runs(app_server.runs_dir)}
    page.get_by_role("button", name="Train a starter model").click()
    panel = seen(page, PANEL)
    panel.get_by_role("button", name="Cancel").click()  # enabled while queued or running
    expect(panel).to_contain_text("State: cancelled", timeout=30_000)
    (run,) = [r for r in list_runs(app_server.runs_dir) if r.id not in before]
    assert run.status().state == "cancelled"

    panel.get_by_role("button", name="Resume").click()
    expect(panel).to_contain_text("State: done", timeout=TRAIN_TIMEOUT_MS)
    assert run.status().state == "done"

    panel.get_by_role("button", name="Delete").click()
    panel.get_by_role("button", name="Yes, delete it").click()
    expect(panel).not_to_contain_text(run.id, timeout=30_000)
    assert not run.path.exists()
    assert_no_exception(page)
