"""Every page over a runs folder of damaged runs (issue 16, items 2, 3 and 6), without a browser (AppTest).

The folder holds a good autoencoder and a good GAN and a copy of each damaged as every kind of tests/damage.py.
Each page opens with no exception, names every damaged run with why (the sidebar's "Damaged runs", and the
gallery on Home), and still offers the good runs. Home opens each damaged run's panel. Outside text (a link's
`?run=`, a status.json error, a run's name) reaches the page escaped, never as a working Markdown link, and
the sidebar shows no server path.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.apptest import render_page, texts, train_tiny, walk
from tests.damage import DAMAGE, MARKDOWN_ERROR, NOT_DAMAGED, damaged_copy

FAST = {"steps": 20, "threads": 1, "judge": False, "snapshot_every_s": 0.1, "checkpoint_every_s": 0.2}
PAGES = [None, "pages/train.py", "pages/draw.py", "pages/explorer.py", "pages/latent_map.py", "pages/pca_vs_ae.py",
         "pages/anomaly.py", "pages/noise_lab.py", "pages/gan_studio.py", "pages/gan_playground.py"]
EVIL = "[Your session expired: log in again](https://evil.example/login)"


@pytest.fixture(scope="module")
def damaged_dir(tmp_path_factory) -> Path:
    """A runs folder (LATENT_LAB_RUNS for the module) with the two good runs and every damaged copy of both."""
    parent = tmp_path_factory.mktemp("damaged-pages")
    good = [train_tiny(parent, "ae-good", "ae", {"latent_dim": 2, "hidden": [32]}, FAST),
            train_tiny(parent, "gan-good", "gan", {"latent_dim": 8, "hidden": [32]}, FAST)]
    runs = parent / "runs"
    runs.mkdir()
    for path in good:
        shutil.copytree(path, runs / path.name)
        for kind in DAMAGE:
            damaged_copy(path, runs, kind)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LATENT_LAB_RUNS", str(runs))
        yield runs


@pytest.fixture(autouse=True)
def fresh():
    st.cache_data.clear()
    st.cache_resource.clear()


def damaged_ids(runs: Path) -> list[str]:
    return sorted(p.name for p in runs.iterdir() if "-good-" in p.name and p.name.split("-good-")[1] not in NOT_DAMAGED)


def everything(at: AppTest) -> str:
    """Every text the page drew: markdown, captions, alerts, expander labels, tables' cells."""
    parts = []
    for node in walk(at.main):
        for attr in ("value", "body", "label"):
            v = getattr(node, attr, None)
            if isinstance(v, str):
                parts.append(v)
    for node in walk(at.sidebar):
        for attr in ("value", "body", "label"):
            v = getattr(node, attr, None)
            if isinstance(v, str):
                parts.append(v)
    for table in at.dataframe:
        parts.append(table.value.to_csv())
    return "\n".join(parts)


def unescaped(markdown: str) -> str:
    """The Markdown with its backslash escapes removed: what is left is syntax Streamlit would act on."""
    return re.sub(r"\\.", "", markdown)


def assert_no_live_link(at: AppTest) -> None:
    """No Markdown the page drew (main and sidebar) holds a link, a URL or emphasis made of outside text."""
    for element in [*at.markdown, *at.caption, *at.error, *at.warning, *at.info, *at.success, *at.toast]:
        body = element.value
        if isinstance(body, str) and "evil.example" in body:
            syntax = unescaped(body)
            assert "](" not in syntax and "https://" not in syntax and "**now**" not in syntax, body


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p or "home")
def test_every_page_opens_over_damaged_runs_and_names_them(page, damaged_dir):
    at = render_page(page)  # asserts no exception
    shown = everything(at)
    for rid in damaged_ids(damaged_dir):  # each damaged run named, with why, in the sidebar
        assert rid in texts(at.sidebar.markdown), rid
    assert "Damaged runs" in shown
    assert str(damaged_dir) not in shown and str(damaged_dir.parent) not in shown  # no server path anywhere
    assert_no_live_link(at)


def test_the_good_runs_are_still_offered(damaged_dir):
    home = render_page(None)
    table = home.dataframe[0].value
    rows = dict(zip(table["id"], table["state"], strict=True))
    assert "done" in rows["ae-good"] and "done" in rows["gan-good"]
    assert all(rows[rid] == "damaged" for rid in damaged_ids(damaged_dir))
    draw = render_page("pages/draw.py", {"run": "ae-good"})
    assert draw.multiselect(key="draw_runs").value == ["ae-good"]
    # item 5: a run whose newest checkpoint is damaged opens on the one before, it is not refused
    explorer = render_page("pages/explorer.py", {"run": "ae-good-checkpoint-newest-damaged"})
    assert explorer.selectbox(key="explorer_run").value == "ae-good-checkpoint-newest-damaged"
    assert not explorer.error and explorer.get("bidi_component")  # the latent sliders: the model loaded
    draw = render_page("pages/draw.py", {"run": "ae-good-checkpoint-newest-damaged"})
    assert draw.multiselect(key="draw_runs").value == ["ae-good-checkpoint-newest-damaged"] and not draw.error
    studio = render_page("pages/gan_studio.py", {"run": "gan-good"})
    assert studio.selectbox(key="gan_run").value == "gan-good"


def test_home_opens_the_panel_of_every_damaged_run(damaged_dir):
    at, damaged = render_page(None), damaged_ids(damaged_dir)
    for rid in sorted(p.name for p in damaged_dir.iterdir()):
        at.selectbox(key="home_run").set_value(rid).run()
        assert not at.exception, (rid, [e.value for e in at.exception])
        if rid in damaged:
            panel = texts(at.error) + texts(at.warning)
            assert "damaged" in panel or "missing" in panel or "symbolic link" in panel, (rid, panel)
        assert str(damaged_dir) not in everything(at)
        assert_no_live_link(at)


@pytest.mark.parametrize("page", ["home", "pages/train.py", "pages/draw.py", "pages/explorer.py",
                                  "pages/gan_studio.py"])
def test_a_link_naming_markdown_shows_it_as_text(page, damaged_dir):
    at = render_page(None if page == "home" else page, {"run": EVIL})
    alerts = [e.value for e in [*at.warning, *at.error]]
    said = [a for a in alerts if "evil.example" in a]
    assert said, alerts  # the page says there is no such run …
    for body in said:  # … naming it as text: every bracket, colon of the URL escaped
        assert "](" not in unescaped(body) and "https://" not in unescaped(body), body
        assert r"\[Your session expired" in body


def test_a_status_error_and_a_run_name_in_markdown_show_as_text(damaged_dir):
    at = render_page(None, {"run": "ae-good-status-markdown-error"})
    error = texts(at.error)
    assert "evil.example" in error and "](" not in unescaped(error)
    at = render_page(None, {"run": "ae-good-config-name-markdown"})
    heading = next(m.value for m in at.markdown if m.value.startswith("####"))
    assert "evil.example" in heading and "](" not in unescaped(heading) and "**" not in unescaped(heading)
    assert MARKDOWN_ERROR[:10] not in unescaped(heading)


def test_the_sidebar_shows_the_runs_folder_without_the_server_path(damaged_dir):
    at = render_page(None)
    caption = next(c.value for c in at.sidebar.caption if c.value.startswith("Runs folder"))
    assert caption == "Runs folder: runs" and str(damaged_dir) not in caption
