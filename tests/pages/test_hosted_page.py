"""Hosted mode through the pages (AppTest): the private link, crafted URLs, share links read-only, the presenter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.runs import Run
from engine.runs import workspace as ws
from tests.apptest import add_run, render_page, texts

pytestmark = pytest.mark.usefixtures("fresh_data_cache")


@pytest.fixture
def hosted(monkeypatch, runs_dir):
    monkeypatch.setenv("LATENT_LAB_MODE", "hosted")
    monkeypatch.setenv("LATENT_LAB_PRESENTER_SECRET", "correct horse battery staple")
    monkeypatch.delenv("LATENT_LAB_SECRET", raising=False)
    return runs_dir


def owned(runs_dir: Path, source: Path, run_id: str, key: str | None) -> Run:
    """A copy of a finished run, in the workspace that `key` opens (None: the server's)."""
    path = add_run(runs_dir, source, run_id)
    config = json.loads((path / "config.json").read_text())
    if key is not None:
        config["workspace"] = ws.workspace_of_key(key)
    (path / "config.json").write_text(json.dumps(config))
    return Run(path)


KEY_A, KEY_B = ws.new_key(), ws.new_key()


def buttons(at) -> set[str]:
    return {b.label for b in at.button}


def test_a_first_visit_gets_a_private_link_that_brings_it_back(hosted, finished_pca_run):
    at = render_page("pages/train.py")
    key = at.query_params["ws"][0] if isinstance(at.query_params["ws"], list) else at.query_params["ws"]
    assert ws.KEY.match(key)
    assert "private link" in texts(at.sidebar.caption)
    owned(hosted, finished_pca_run, "mine", key)
    again = render_page("pages/train.py", {"ws": key})
    assert "mine" in list(again.dataframe[0].value["id"])
    stranger = render_page("pages/train.py", {"ws": KEY_B})
    assert not stranger.dataframe or "mine" not in list(stranger.dataframe[0].value["id"])


def test_a_crafted_url_cannot_open_or_act_on_another_workspaces_run(hosted, finished_pca_run):
    run = owned(hosted, finished_pca_run, "theirs", KEY_A)
    before = (run.path / "status.json").read_bytes()
    for page in ("pages/train.py", "pages/draw.py", "pages/explorer.py"):
        at = render_page(page, {"ws": KEY_B, "run": "theirs"})
        assert "theirs" not in texts(at.selectbox), page
        assert not {"Cancel", "Delete", "Resume", "Download run (.zip)"} & buttons(at), page
    owned(hosted, finished_pca_run, "mine", KEY_B)  # with a run of their own, the pages say the link's is not there
    at = render_page("pages/draw.py", {"ws": KEY_B, "run": "theirs"})
    assert "There is no autoencoder run" in texts(at.warning) and at.session_state["draw_runs"] == ["mine"]
    at = render_page("pages/explorer.py", {"ws": KEY_B, "run": "theirs"})
    assert "not one you can open here" in texts(at.warning) and at.session_state["explorer_run"] == "mine"
    forged = render_page("pages/train.py", {"ws": KEY_B, "run": "theirs", "share": "0" * 32})
    assert "share token is not the one of run" in texts(forged.sidebar.warning)
    assert "theirs" not in texts(forged.selectbox)
    assert (run.path / "status.json").read_bytes() == before and (run.path / "config.json").exists()


def test_a_share_link_shows_the_run_read_only_with_a_copy_button(hosted, finished_pca_run):
    run = owned(hosted, finished_pca_run, "theirs", KEY_A)
    token = ws.share_token(hosted, "theirs")
    at = render_page("pages/train.py", {"ws": KEY_B, "run": "theirs", "share": token})
    assert at.session_state["train_run"] == "theirs"
    assert "belongs to another workspace" in texts(at.info)
    assert not {"Cancel", "Delete", "Resume"} & buttons(at)
    assert not list(at.get("download_button"))
    at.button(key="run_panel_copy").click().run()
    assert not at.exception
    copies = [r for r in (Run(p) for p in hosted.iterdir() if (p / "config.json").exists()) if r.id != "theirs"]
    assert len(copies) == 1 and ws.owner(copies[0].config) == ws.workspace_of_key(KEY_B)
    assert ws.owner(run.config) == ws.workspace_of_key(KEY_A)
    assert at.session_state["train_run"] == copies[0].id and "Delete" in buttons(at)  # the copy is theirs


def test_the_owner_gets_the_share_link_not_their_key(hosted, finished_pca_run):
    owned(hosted, finished_pca_run, "mine", KEY_A)
    at = render_page("pages/train.py", {"ws": KEY_A, "run": "mine"})
    assert {"Cancel", "Resume", "Delete"} <= buttons(at)
    (link,) = [c.value for c in at.code if "share=" in c.value]
    assert "run=mine" in link and KEY_A not in link and ws.share_token(hosted, "mine") in link


def test_the_presenter_secret_unlocks_every_workspace_and_the_gallery(hosted, finished_pca_run):
    owned(hosted, finished_pca_run, "theirs", KEY_A)
    at = render_page("pages/train.py", {"ws": KEY_B})
    (secret,) = [t for t in at.text_input if t.key == "presenter_given"]
    secret.set_value("wrong").run()
    assert "not the presenter secret" in texts(at.error)
    [t for t in at.text_input if t.key == "presenter_given"][0].set_value("correct horse battery staple").run()
    assert at.session_state["presenter"] is True
    assert "theirs" in list(at.dataframe[0].value["id"])
    assert "battery" not in json.dumps(dict(at.query_params.items()))  # the secret never reaches the URL
    at.session_state["train_run"] = "theirs"
    at.run()
    at.button(key="run_panel_pin").click().run()
    assert ws.pinned(hosted) == {"theirs"}
    visitor = render_page("pages/train.py", {"ws": ws.new_key()})
    assert "theirs" in list(visitor.dataframe[0].value["id"])  # the gallery is everyone's, read-only
    visitor.session_state["train_run"] = "theirs"
    visitor.run()
    assert "Delete" not in buttons(visitor) and "Copy into my workspace" in buttons(visitor)


def test_the_presenter_sees_every_workspace_on_home(hosted, finished_pca_run):
    owned(hosted, finished_pca_run, "a-run", KEY_A)
    owned(hosted, finished_pca_run, "b-run", KEY_B)
    at = render_page(None, {"ws": KEY_B}, {"presenter": True})
    (table,) = [d for d in at.dataframe if "workspace" in d.value.columns]
    assert sorted(table.value["runs"]) == [1, 1] and len(table.value) == 2
    visitor = render_page(None, {"ws": KEY_B})
    assert not [d for d in visitor.dataframe if "workspace" in d.value.columns]
    assert list(visitor.dataframe[0].value["id"]) == ["b-run"]


def test_an_empty_workspace_opens_on_the_kits_run_and_a_visitor_on_their_own(hosted, finished_pca_run):
    """Issue 13: with no run of their own, a visitor's pages open on the workshop kit's model (pinned, the
    server's), not on the operator's newest run; once they have a finished run, on theirs."""
    kit = owned(hosted, finished_pca_run, "kit-pca", None)
    config = json.loads((kit.path / "config.json").read_text())
    config.update(kit={"name": "workshop", "entry": "pca"}, name="PCA · 8 components")
    (kit.path / "config.json").write_text(json.dumps(config))
    ws.set_pinned(hosted, kit.id, True)
    operator = owned(hosted, finished_pca_run, "operator-pca", None)  # newer: the old rule's choice
    config = json.loads((operator.path / "config.json").read_text())
    config["created_at"] += 60
    (operator.path / "config.json").write_text(json.dumps(config))
    for page, key in (("pages/explorer.py", "explorer_run"), ("pages/latent_map.py", "map_run")):
        at = render_page(page, {"ws": KEY_B})
        assert not at.exception, page
        assert at.session_state[key] == "kit-pca", page
        assert "workshop kit" in texts(at.caption), page
    at = render_page("pages/draw.py", {"ws": KEY_B})
    assert not at.exception and at.session_state["draw_runs"] == ["kit-pca"]
    owned(hosted, finished_pca_run, "mine", KEY_B)
    at = render_page("pages/explorer.py", {"ws": KEY_B})
    assert at.session_state["explorer_run"] == "mine" and "of your own" in texts(at.caption)
