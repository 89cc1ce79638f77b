"""The class board through the pages (AppTest): Draw's "Send to the class", the drawings on the Latent map (everyone's
for the presenter, one's own for a visitor), the presenter's Clear, and projector mode.

AppTest cannot draw on the canvas (a custom component), so the drawing is put where the canvas leaves it (the
session's "drawing"); tests/browser/test_classboard.py draws for real. A finished PCA run stands in for an
autoencoder.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.lab import classboard as cb
from engine.lab import latent_map as maps
from engine.runs import Run
from engine.runs import workspace as ws
from engine.runs.loaded import load_run
from engine.runs.workspace import Actor
from tests.apptest import add_run, plotly_values, render_page, texts

pytestmark = pytest.mark.usefixtures("fresh_caches")

KEY_A, KEY_B = ws.new_key(), ws.new_key()


def drawing(col: int = 12) -> np.ndarray:
    x = np.zeros((28, 28), np.float32)
    x[6:22, col:col + 4] = 1.0
    return x


@pytest.fixture
def pca_run(runs_dir, finished_pca_run) -> str:
    add_run(runs_dir, finished_pca_run, "pca-run")
    return "pca-run"


@pytest.fixture
def hosted(monkeypatch, runs_dir):
    monkeypatch.setenv("LATENT_LAB_MODE", "hosted")
    monkeypatch.setenv("LATENT_LAB_PRESENTER_SECRET", "correct horse battery staple")
    return runs_dir


def draw_page(query=None, state=None):
    return render_page("pages/draw.py", {"run": "pca-run", **(query or {})},
                       {"drawing": drawing(), "draw_source": "draw", **(state or {})})


def send(at, nickname: str):
    at.text_input(key="draw_nickname").set_value(nickname)
    return at.button(key="draw_send_button").click().run()


def class_traces(at) -> list[dict]:
    """The "the class" traces of every chart on the page."""
    figures = [json.loads(e.proto.spec) for e in at.get("plotly_chart")]
    return [t for f in figures for t in f["data"] if t.get("name") == "the class"]


def test_a_drawing_is_sent_to_the_class_with_a_nickname(runs_dir, pca_run):
    at = draw_page()
    assert not class_traces(at)  # nothing on the board yet
    at = send(at, "  Ada <b>L</b> ")
    assert "Sent to the class as **Ada bLb**" in texts(at.success)
    (sent,) = cb.ClassBoard(runs_dir).drawings()
    assert sent.nickname == "Ada bLb" and sent.run_id == "pca-run" and sent.dataset == "mnist-5k"
    assert np.abs(sent.x - at.session_state["drawing"]).max() <= 0.5 / 255 + 1e-6  # what the page showed as x
    at.run()  # the next run draws the board (the send reran only the drawing's panel)
    assert "The class board" in texts(at.subheader)
    (trace,) = class_traces(at)
    assert trace["text"] == ["Ada bLb"]


def test_sending_without_a_nickname_says_what_to_give(runs_dir, pca_run):
    at = send(draw_page(), "  ** ")
    assert "Not sent: give a nickname" in texts(at.error)
    assert cb.ClassBoard(runs_dir).count() == 0


def test_a_test_digit_is_not_offered_to_the_class(runs_dir, pca_run):
    at = render_page("pages/draw.py", {"run": "pca-run", "input": "test", "image": "3"})
    assert not [t for t in at.text_input if t.key == "draw_nickname"]


def test_hosted_a_visitor_hits_the_cap_and_takes_their_drawings_back(hosted, pca_run, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_CLASS_PER_WS", "1")
    at = send(draw_page({"ws": KEY_A}), "Ada")
    assert "Sent to the class" in texts(at.success)
    at = send(at, "Ada")
    assert "the most one visitor may have" in texts(at.error)
    assert cb.ClassBoard(hosted).count() == 1
    at.button(key="draw_withdraw").click().run()
    assert cb.ClassBoard(hosted).count() == 0
    assert "Sent to the class" in texts(send(at, "Ada").success)  # room again


def test_the_presenters_map_shows_everyones_drawings_and_a_visitors_only_their_own(hosted, pca_run):
    board = cb.ClassBoard(hosted)
    board.send(drawing(8), "Ada", "pca-run", "mnist-5k", Actor(ws.workspace_of_key(KEY_A)))
    board.send(drawing(16), "Bob", "pca-run", "mnist-5k", Actor(ws.workspace_of_key(KEY_B)))
    board.send(drawing(12), "Fashionista", "pca-run", "fashion-mnist", Actor(ws.workspace_of_key(KEY_B)))

    presenter = render_page("pages/latent_map.py", {"ws": KEY_B, "run": "pca-run", "method": "pca"},
                            {"presenter": True})
    (trace,) = class_traces(presenter)
    assert trace["text"] == ["Ada", "Bob"]  # the map's dataset only
    # placed by the map's own PCA: the drawings' codes through the same (z − z̄) W as the test codes
    loaded = load_run(Run(hosted / "pca-run"), encodes=True)
    from engine.data import load_dataset
    from engine.eval.codes import encode, split_codes

    z = split_codes(loaded, load_dataset("mnist-5k"))
    projection = maps.fit(z[maps.subset_indices(len(z))], "pca")
    expected = projection.place(encode(loaded, np.stack([drawing(8), drawing(16)])[:, None]))
    np.testing.assert_allclose(np.stack([plotly_values(trace["x"]), plotly_values(trace["y"])], 1), expected,
                               atol=1e-4)
    assert "2 drawings on mnist-5k (3 in all)" in texts(presenter.caption)

    visitor = render_page("pages/latent_map.py", {"ws": KEY_A, "run": "pca-run", "method": "pca"})
    (trace,) = class_traces(visitor)
    assert trace["text"] == ["Ada"]
    assert not [b for b in visitor.button if b.key == "map_clear_board"]

    presenter.button(key="map_clear_board").click().run()
    assert cb.ClassBoard(hosted).count() == 0
    assert not class_traces(presenter.run())


def test_projector_mode_from_a_link_styles_every_page_until_left(runs_dir, pca_run):
    at = render_page(None, {"projector": "1"})
    styles = [e.proto.body for e in at.get("html")]
    assert any("font-size: 22px" in s and 'data-testid="stSidebar"' in s for s in styles)
    assert at.query_params["projector"] in ("1", ["1"])
    at.switch_page("pages/latent_map.py")
    at.query_params["run"], at.query_params["method"] = "pca-run", "pca"
    at.run()  # the session keeps it as pages change
    assert any("font-size: 22px" in e.proto.body for e in at.get("html"))
    at.button(key="projector_leave").click().run()
    assert not any("font-size: 22px" in e.proto.body for e in at.get("html"))
    assert "projector" not in at.query_params
    cb.ClassBoard(runs_dir).send(drawing(), "Ada", "pca-run", "mnist-5k", Actor.local())
    at.toggle(key="projector").set_value(True).run()  # the sidebar's switch (local mode), on a map with the class
    assert not at.exception, [e.value for e in at.exception]
    assert any("font-size: 22px" in e.proto.body for e in at.get("html"))
    (trace,) = class_traces(at)
    assert trace["text"] == ["Ada"] and trace["textfont"]["size"] > 13  # nicknames in large type too
    at.run()  # the next run (the URL now says ?projector=1) keeps it
    assert not at.exception and any("font-size: 22px" in e.proto.body for e in at.get("html"))
