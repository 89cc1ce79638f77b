"""A shared link into a page works on a server nobody has visited yet.

Until some session has run app.py, Streamlit treats pages/ as a classic multipage folder and would
run the linked page alone (no sidebar, every file of pages/ in the menu); ui.entry.ensure_app
runs app.py first. This needs a server of its own: any earlier visit hides the problem.
"""

from __future__ import annotations

import pytest

from tests.browser.conftest import _serve
from tests.browser.helpers import assert_no_exception, expect, open_page, seen

pytestmark = pytest.mark.browser


@pytest.fixture
def fresh_server(tmp_path):
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    yield from _serve(tmp_path, runs_dir)


def test_a_deep_link_on_a_fresh_server_gets_the_whole_app(browser, fresh_server):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        open_page(page, f"{fresh_server.url}/draw?run=no-such-run", "Draw")
        nav = seen(page, '[data-testid="stSidebarNav"]')
        expect(nav).to_contain_text("Latent explorer")
        for stray in ("noise_lab", "pca_vs_ae", "latent_map"):  # file names: the classic folder menu
            expect(nav).not_to_contain_text(stray)
        expect(seen(page, '[data-testid="stSidebar"]')).to_contain_text("Dataset")
        assert seen(page, "h1").count() == 1  # the page is drawn once, not twice
        assert "/draw" in page.url
        assert_no_exception(page)
    finally:
        page.close()
