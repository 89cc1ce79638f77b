"""Hosted mode in real browsers: two visitors, each in a workspace of their own, on one server.

Visitor A owns a run. Visitor B, in another browser context, tries it through crafted URLs (not shown, no
buttons), follows its share link (read-only, then Copy makes B's own), and A's run stays as it was.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse

import pytest

from engine.runs import Run, list_runs
from engine.runs import workspace as ws
from tests.browser.conftest import _serve
from tests.browser.helpers import assert_no_exception, expect, open_page, seen, wait_until_idle

pytestmark = pytest.mark.browser

KEY_A, KEY_B = ws.new_key(), ws.new_key()


@pytest.fixture(scope="module")
def hosted_server(tmp_path_factory, finished_pca_run):
    base = tmp_path_factory.mktemp("hosted")
    runs_dir = base / "runs"
    runs_dir.mkdir()
    path = shutil.copytree(finished_pca_run, runs_dir / "alice-ae")  # A's run (a PCA: every page takes it)
    config = json.loads((path / "config.json").read_text())
    config["workspace"] = ws.workspace_of_key(KEY_A)
    (path / "config.json").write_text(json.dumps(config))
    yield from _serve(base, runs_dir, {"LATENT_LAB_MODE": "hosted", "LATENT_LAB_SECRET": "browser-test-secret",
                                       "LATENT_LAB_UMAP_WARMUP": "0"})


@pytest.fixture
def two_visitors(browser):
    contexts = [browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(2)]
    pages = [c.new_page() for c in contexts]
    for p in pages:
        p.set_default_timeout(30_000)
    try:
        yield pages
    finally:
        for c in contexts:
            c.close()


def run_choice(page) -> str | None:
    """The value of the page's Run picker, None when it has none (once the page's widgets have drawn: the
    Train page always has its Model picker)."""
    if "/train" in page.url:
        seen(page, '[data-testid="stSelectbox"] input').first.wait_for(timeout=30_000)
    for box in seen(page, '[data-testid="stSelectbox"]').all():
        if box.inner_text().strip().split("\n")[0] == "Run":
            return box.locator("input").input_value()
    return None


def buttons(page) -> list[str]:
    return [b.strip() for b in seen(page, '[data-testid="stButton"] button').all_inner_texts()]


def test_the_owner_acts_and_a_stranger_cannot_even_see_the_run(hosted_server, two_visitors):
    alice, bob = two_visitors
    before = (hosted_server.runs_dir / "alice-ae" / "status.json").read_bytes()

    open_page(alice, f"{hosted_server.url}/train?ws={KEY_A}&run=alice-ae", "Train")
    assert run_choice(alice) == "alice-ae"
    # the run panel draws after the pickers (a loaded machine: seconds later): its last button first
    seen(alice, '[data-testid="stButton"] button').filter(has_text="Delete").first.wait_for(timeout=60_000)
    assert {"Cancel", "Resume", "Delete"} <= {b.split("\n")[-1] for b in buttons(alice)}
    alice.reload()
    wait_until_idle(alice, 60_000, "Train")
    assert f"ws={KEY_A}" in alice.url  # the private link survives a reload
    assert run_choice(alice) == "alice-ae"

    for page_path, title in (("train", "Train"), ("draw", "Draw"), ("explorer", "Latent explorer")):
        open_page(bob, f"{hosted_server.url}/{page_path}?ws={KEY_B}&run=alice-ae", title)
        assert_no_exception(bob)
        assert "alice-ae" not in seen(bob, '[data-testid="stMain"]').inner_text(), page_path
        assert run_choice(bob) in (None, ""), page_path
        assert not {"Cancel", "Delete", "Resume"} & {b.split("\n")[-1] for b in buttons(bob)}, page_path
    forged = f"{hosted_server.url}/train?ws={KEY_B}&run=alice-ae&share={'0' * 32}"
    open_page(bob, forged, "Train")
    expect(seen(bob, '[data-testid="stSidebar"]')).to_contain_text("share token is not the one of run")
    assert (hosted_server.runs_dir / "alice-ae" / "status.json").read_bytes() == before


def test_a_share_link_is_read_only_and_copy_makes_the_visitors_own(hosted_server, two_visitors):
    alice, bob = two_visitors
    open_page(alice, f"{hosted_server.url}/train?ws={KEY_A}&run=alice-ae", "Train")
    seen(alice, '[data-testid="stExpander"]').filter(has_text="Share this run").first.click()
    link = seen(alice, '[data-testid="stCode"]').filter(has_text="share=").first.inner_text().strip()
    assert KEY_A not in link and "ws=" not in link

    open_page(bob, link, "Train")
    main = seen(bob, '[data-testid="stMain"]')
    expect(main).to_contain_text("belongs to another workspace")
    assert not {"Cancel", "Delete", "Resume"} & {b.split("\n")[-1] for b in buttons(bob)}
    bob_key = urllib.parse.parse_qs(urllib.parse.urlsplit(bob.url).query)["ws"][0]  # a new workspace of their own
    assert bob_key != KEY_A
    seen(bob, "button").filter(has_text="Copy into my workspace").first.click()
    expect(seen(bob, '[data-testid="stButton"]').filter(has_text="Delete").first).to_be_visible(timeout=60_000)
    wait_until_idle(bob, 60_000)
    copies = [r for r in list_runs(hosted_server.runs_dir) if r.id != "alice-ae"]
    assert len(copies) == 1 and ws.owner(copies[0].config) == ws.workspace_of_key(bob_key)
    assert_no_exception(bob)
    assert ws.owner(Run(hosted_server.runs_dir / "alice-ae").config) == ws.workspace_of_key(KEY_A)


def test_the_dockerfiles_health_check_passes_on_a_hosted_server(hosted_server):
    """The image's HEALTHCHECK command, pointed at this server, says healthy (the image itself is not built here)."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    assert "LATENT_LAB_MODE=hosted" in text and "VOLUME /data" in text
    (code,) = re.findall(r'HEALTHCHECK[^\n]*\\\n\s*CMD \.venv/bin/python -c "([^"]+)"', text)
    port = hosted_server.url.rsplit(":", 1)[1]
    ok = subprocess.run([sys.executable, "-c", code.replace("8501", port)], timeout=30)
    assert ok.returncode == 0
    down = subprocess.run([sys.executable, "-c", code.replace("8501", "9")], timeout=30, capture_output=True)
    assert down.returncode != 0  # and it fails when nothing answers
