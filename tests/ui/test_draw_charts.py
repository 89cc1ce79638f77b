"""The Draw page's two figures (ui/charts/draw.py), built from dicts on every stroke: what they plot."""

from __future__ import annotations

import numpy as np
import plotly.io as pio

from ui.charts.draw import NEGATIVE, POSITIVE, draw_latent_figure, draw_score_figure


def test_the_code_is_one_bar_per_dimension_coloured_by_sign():
    z = np.array([0.5, -1.25, 0.0, 2.0], dtype=np.float32)
    fig = draw_latent_figure(z)
    bar = fig.data[0]
    assert bar.type == "bar" and list(bar.x) == [0, 1, 2, 3]
    np.testing.assert_allclose(bar.y, z)
    assert list(bar.marker.color) == [POSITIVE, NEGATIVE, POSITIVE, POSITIVE]
    assert fig.layout.xaxis.title.text == "latent dimension" and fig.layout.height == 240


def test_the_score_is_a_line_over_the_test_errors_histogram():
    errors = np.linspace(0.01, 0.09, 50)
    fig = draw_score_figure(errors, 0.042, height=300)
    hist = fig.data[0]
    assert hist.type == "histogram" and len(hist.x) == 50 and hist.nbinsx == 40
    (line,) = fig.layout.shapes
    assert (line.type, line.x0, line.x1, line.yref) == ("line", 0.042, 0.042, "paper")
    assert fig.layout.annotations[0].text == "this image" and fig.layout.annotations[0].x == 0.042
    assert fig.layout.height == 300
    pio.to_json(fig, validate=True)  # a valid figure, as st.plotly_chart checks it
