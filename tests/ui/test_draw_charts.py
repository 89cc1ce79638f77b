"""The Draw page's results block (ui/charts/draw.py), rebuilt on every stroke: what its images and bars show."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from ui.charts.draw import NEGATIVE, POSITIVE, Histogram, ModelRow, latent_bars, results_html, score_histogram


class Tags(HTMLParser):
    """Every start tag's (name, attributes), in document order."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def bars(text: str) -> list[tuple[float, float, str]]:
    """(y, height, colour) of each bar of the chart image in `text` (an SVG data: URI, 100 units tall)."""
    (src,) = [a["src"] for t, a in Tags(text).tags if t == "img"]
    svg = base64.b64decode(src.removeprefix("data:image/svg+xml;base64,")).decode()
    return [(float(y), float(h), c) for y, h, c in re.findall(r'<rect x="[^"]+" y="([^"]+)" width="[^"]+" '
                                                               r'height="([^"]+)" fill="([^"]+)"/>', svg)]


def test_the_code_is_one_bar_per_dimension_up_or_down_by_sign():
    z = np.array([0.5, -1.25, 0.0, 2.0], dtype=np.float32)
    text = latent_bars(z)
    drawn = bars(text)
    assert len(drawn) == 4
    # the largest |z| (2.0) reaches the edge: half the plot's height (50 of 100) from the middle line
    assert [h for _, h, _ in drawn] == pytest.approx([12.5, 31.25, 0.0, 50.0])
    # positive bars end at the middle line (y + height = 50), negative ones start there (y = 50)
    assert [y for y, _, _ in drawn] == pytest.approx([37.5, 50.0, 50.0, 0.0])
    assert [c for _, _, c in drawn] == [POSITIVE, NEGATIVE, POSITIVE, POSITIVE]
    assert 'title="z = (0.50, -1.25, 0.00, 2.00)"' in text and "±2.00" in text


def test_an_all_zero_code_draws_flat_bars():
    assert [h for _, h, _ in bars(latent_bars(np.zeros(3)))] == [0.0, 0.0, 0.0]


def test_the_score_histogram_counts_the_test_errors_and_marks_the_score():
    errors = np.linspace(0.01, 0.09, 50)
    text = score_histogram(errors, 0.042)
    h = Histogram.of(errors, 0.042)
    counts, edges = np.histogram(errors, bins=40)
    np.testing.assert_array_equal(h.counts, counts)
    np.testing.assert_allclose(h.edges, edges)
    drawn = bars(text)
    assert [h for _, h, _ in drawn] == pytest.approx(100 * counts / counts.max())
    assert [y + h for y, h, _ in drawn] == pytest.approx([100.0] * 40)  # standing on the axis
    assert h.at == pytest.approx((0.042 - 0.01) / 0.08)
    mark = next(a for t, a in Tags(text).tags if "ll-mark" in a.get("class", "").split())
    assert float(re.search(r"left:([0-9.]+)%", mark["style"]).group(1)) == pytest.approx(100 * h.at, rel=1e-3)
    assert "50 test images" in text and f"tallest bar {counts.max()} test images" in text


def test_a_score_beyond_every_test_error_stays_on_the_plot():
    h = Histogram.of([0.01, 0.02, 0.03], 0.5)
    assert h.edges[-1] == pytest.approx(0.5) and h.at == pytest.approx(1.0)
    assert h.counts.sum() == 3
    flat = Histogram.of([0.02, 0.02], 0.02)  # one value: a range is made around it
    assert flat.edges[0] < 0.02 < flat.edges[-1] and 0 < flat.at < 1


def test_the_results_block_holds_each_models_images_and_escapes_names():
    row = ModelRow("run-<a>", "conv_ae", b"xhat", b"err", 0.0123, "73%")
    text = results_html(b"x", [row, ModelRow("run-b", "dense_ae", b"xhat2", b"err2", 0.02, "80%")], "run-<a>", 3,
                        np.zeros(3), b"nn", [1.0, 2.5], ["7", "1"], [0.01, 0.02], 0.0123)
    imgs = [a for t, a in Tags(text).tags if t == "img" and a["src"].startswith("data:image/png")]
    assert [a["alt"] for a in imgs] == ["x", "x̂", "|x − x̂|", "x", "x̂", "|x − x̂|", "the nearest training images"]
    assert [a["class"] for a in imgs if "ll-xhat" in a["class"]] == ["ll-digit ll-xhat"] * 2
    assert imgs[1]["src"] == "data:image/png;base64,eGhhdA=="  # b"xhat"
    assert "run-&lt;a&gt;" in text and "run-<a>" not in text
    assert "MSE <strong>0.0123</strong> · higher than 73% of the test images" in text
    assert "distance ‖z − zᵢ‖: 1.00, 2.50<br>class: 7, 1" in text
    assert len([a for t, a in Tags(text).tags if a.get("class") == "ll-bars"]) == 2  # the code z, the histogram
