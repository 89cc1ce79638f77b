"""The Anomaly detection page in a real browser, on the lab server's one-class run (anomaly-0).

Takes the anomaly screenshot.
"""

from __future__ import annotations

import re
import urllib.parse

import pytest

from tests.browser.helpers import (assert_no_exception, expect, full_page_screenshot, images_loaded, open_page, seen,
                                   wait_until_idle)

pytestmark = pytest.mark.browser

TITLE = "Anomaly detection"
WAIT_MS = 60_000  # a busy machine takes a while to load the widgets' code after the page's first draw


def metric_value(page, label: str) -> str:
    box = seen(page, '[data-testid="stMetric"]').filter(has_text=label)
    return seen(box, '[data-testid="stMetricValue"]').inner_text().strip()


def tau_in_url(page) -> float:
    return float(urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["tau"][0])


def test_anomaly_page_scores_and_thresholds(lab_page, lab_server):
    page = lab_page
    # Streamlit runs a fresh server's first session in its old pages/-folder mode (the page alone,
    # without app.py) until some session has run app.py's st.navigation: open the home page first.
    open_page(page, lab_server.url, "Latent Lab")
    open_page(page, f"{lab_server.url}/anomaly?run=anomaly-0", TITLE)
    expect(page.get_by_text("Dataset", exact=True).first).to_be_visible(timeout=WAIT_MS)  # app.py's sidebar ran
    expect(page.get_by_text("One-class run")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("ROC curve · AUROC")).to_be_visible(timeout=WAIT_MS)  # the ROC chart's title
    expect(seen(page, '[data-testid="stMetric"]')).to_have_count(4, timeout=WAIT_MS)
    auroc = float(metric_value(page, "AUROC"))
    assert 0.8 < auroc <= 1.0, auroc  # conv_ae, 8 epochs on zeros: well above chance
    assert seen(page, ".js-plotly-plot").count() == 2  # histograms and ROC curve
    summary = seen(page, '[data-testid="stMarkdownContainer"]').filter(has_text="Normal:")
    expect(summary).to_contain_text("Normal: 0 ·", timeout=WAIT_MS)

    # Raise τ with the keyboard: fewer images flagged, so recall falls and the link follows.
    before = {k: metric_value(page, k) for k in ("Precision", "Recall", "False positive rate")}
    tau_before = tau_in_url(page)
    thumb = page.get_by_role("slider", name="Threshold τ")  # an <input type="range"> under the thumb
    thumb.focus()
    for _ in range(12):
        thumb.press("ArrowRight")
        page.wait_for_timeout(150)
    wait_until_idle(page)
    recall = seen(seen(page, '[data-testid="stMetric"]').filter(has_text="Recall"), '[data-testid="stMetricValue"]')
    expect(recall).not_to_have_text(before["Recall"], timeout=WAIT_MS)
    after = {k: metric_value(page, k) for k in before}
    assert float(after["Recall"].rstrip("%")) < float(before["Recall"].rstrip("%")), (before, after)
    assert float(after["False positive rate"].rstrip("%")) <= float(before["False positive rate"].rstrip("%"))
    page.wait_for_function("t => new URL(location.href).searchParams.get('tau') !== t", arg=f"{tau_before:.3g}")
    assert tau_in_url(page) > tau_before
    assert re.search(r"[?&]run=anomaly-0\b", page.url), page.url
    assert_no_exception(page)

    # The examples: (x, x̂) pairs with their class and score, most anomalous first.
    examples = seen(page, '[data-testid="stTabs"] [data-testid="stImage"] img')
    page.wait_for_function("n => shown(n).length > 0",
                           arg='[data-testid="stTabs"] [data-testid="stImage"] img')
    assert images_loaded(examples.filter(visible=True))
    expect(page.get_by_text(re.compile(r"· s = 0\.\d{4}")).first).to_be_visible(timeout=WAIT_MS)
    page.get_by_role("tab", name="Anomalies that look normal").click()
    expect(page.get_by_text("rebuilds them well")).to_be_visible(timeout=WAIT_MS)
    page.get_by_role("tab", name="Most anomalous").click()

    assert_no_exception(page)
    shot = full_page_screenshot(page, "anomaly")
    assert shot.stat().st_size > 30_000
    assert not page.console_errors, page.console_errors
