"""The Draw page's results block (ui/charts/draw.py), rebuilt on every stroke: what its images and bars show."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from ui.charts.draw import NEGATIVE, POSITIVE, Histogram, ModelRow, latent_bars, results_html, score_histogram


class Tags(HTMLParser):
    """Every start tag's (name, attributes), in document order, and the text right after each (`texts`)."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.texts: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.texts.append("")

    def handle_data(self, data):
        if self.texts and not self.texts[-1]:
            self.texts[-1] = data

    def text_of(self, css_class: str) -> list[str]:
        """The text of each element with this class."""
        return [t for (_, a), t in zip(self.tags, self.texts, strict=True) if a.get("class") == css_class]


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


def test_a_non_finite_value_in_the_code_gets_no_bar():
    drawn = bars(latent_bars(np.array([1.0, np.nan, -0.5])))
    assert [h for _, h, _ in drawn] == pytest.approx([50.0, 0.0, 25.0])


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


def test_a_far_off_score_is_pinned_to_the_edge_and_leaves_the_bins_alone():
    errors = np.linspace(0.01, 0.05, 1000)
    h = Histogram.of(errors, 0.4)  # a scribble: eight times the worst test image
    np.testing.assert_array_equal(h.counts, np.histogram(errors, bins=40)[0])  # the bins span the errors only
    assert (h.at, h.beyond) == (1.0, 1)
    assert "this image: 0.4000 →" in score_histogram(errors, 0.4)
    low = Histogram.of(errors, 0.001)
    assert (low.at, low.beyond) == (0.0, -1)
    assert "← this image: 0.0010" in score_histogram(errors, 0.001)
    assert Histogram.of(errors, 0.03).beyond == 0


def test_odd_inputs_still_give_a_histogram():
    flat = Histogram.of([0.02, 0.02], 0.02)  # one value: a range is made around it
    assert flat.edges[0] < 0.02 < flat.edges[-1] and 0 < flat.at < 1 and flat.counts.sum() == 2
    empty = Histogram.of([], 0.02)
    assert empty.counts.sum() == 0 and len(empty.edges) == 41
    mixed = Histogram.of([0.01, np.nan, np.inf, 0.03], 0.02)
    assert mixed.counts.sum() == 2 and mixed.at == pytest.approx(0.5)
    no_score = Histogram.of([0.01, 0.03], float("nan"))
    assert np.isnan(no_score.at)
    text = score_histogram([0.01, 0.03], float("nan"))
    assert "ll-mark" not in text and "nan" not in text


def test_the_results_block_holds_each_models_images_and_escapes_names():
    rows = [ModelRow("run-<a>", "conv_ae<b>", b"xhat", b"err", 0.0123, "73%"),
            ModelRow("run-b", "dense_ae", b"xhat2", b"err2", 0.02, "–")]
    text = results_html(x_png=b"x", rows=rows, first_run_id="run-<a>", latent_dim=3, z=np.zeros(3),
                        neighbours_png=b"nn", distances=[1.0, 2.5], neighbour_classes=["7", "<i>1"],
                        test_errors=[0.01, 0.02], score=0.0123)
    tags = Tags(text)
    imgs = [a for t, a in tags.tags if t == "img" and a["src"].startswith("data:image/png")]
    assert [a["alt"] for a in imgs] == [
        "x: the input", "x̂: run-<a>'s reconstruction", "|x − x̂|: run-<a>'s error map",
        "x: the input", "x̂: run-b's reconstruction", "|x − x̂|: run-b's error map", "the nearest training images"]
    assert [t for (tag, _), t in zip(tags.tags, tags.texts, strict=True) if tag == "figcaption"] == \
        ["x", "x̂", "|x − x̂|"] * 2
    assert [a["class"] for a in imgs if "ll-xhat" in a["class"]] == ["ll-digit ll-xhat"] * 2
    assert imgs[1]["src"] == "data:image/png;base64,eGhhdA=="  # b"xhat"
    assert tags.text_of("ll-run") == ["run-<a>", "run-b"]
    for raw in ("run-<a>", "conv_ae<b>", "<i>1"):  # outside text is text, never markup
        assert raw not in text
    assert "run-&lt;a&gt;" in text and "conv_ae&lt;b&gt;" in text and "&lt;i&gt;1" in text
    assert "MSE <strong>0.0123</strong> · higher than 73% of the test images" in text
    assert "higher than – of the test images" in text  # a model with no test scores
    assert "distance ‖z − zᵢ‖: 1.00, 2.50<br>class: 7, &lt;i&gt;1" in text
    assert len([a for t, a in Tags(text).tags if a.get("class") == "ll-bars"]) == 2  # the code z, the histogram
