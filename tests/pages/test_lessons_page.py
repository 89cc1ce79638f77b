"""The Lessons page and lesson links without a browser (streamlit's AppTest).

The Lessons page lists every lesson with its link; `?lesson=NAME` on any page switches to the lesson's page, in
its preset state, with the lesson in the sidebar and its hidden controls left out. The pages used here work
without a trained model (the Noise lab shows each slot's "train one" button, the playground trains its own),
so the preset can be read back from the widgets.
"""

from __future__ import annotations

import shutil

import pytest

from engine.lab.lessons import LESSONS_DIR, catalogue
from tests.apptest import render_page, rerun, texts

pytestmark = pytest.mark.usefixtures("fresh_data_cache")

LESSONS = catalogue(LESSONS_DIR).lessons


def page_links(at) -> list:
    return [e.proto for e in at.sidebar.get("page_link")]


def keys(at, kind: str) -> list[str]:
    return [w.key for w in getattr(at, kind)]


def test_the_lessons_page_lists_every_lesson_in_order_with_its_link(runs_dir):
    at = render_page("pages/lessons.py")
    assert "Lessons" in texts(at.title) and r"\min_G \max_D" in texts(at.latex)
    assert not at.error
    links = [c.value for c in at.code]
    assert links == [f"?lesson={lesson.name}" for lesson in LESSONS]  # AppTest has no address: the link's query
    shown = texts(at.markdown)
    positions = [shown.index(f"{i}. {lesson.title}") for i, lesson in enumerate(LESSONS, start=1)]
    assert positions == sorted(positions)
    captions = texts(at.caption)
    for lesson in LESSONS:
        assert lesson.summary in captions
    opens = [e.proto for e in at.main.get("page_link")]
    assert [(p.label, p.query_string) for p in opens if p.label == "Open"] == [
        ("Open", "&".join(f"{k}={v}" for k, v in lesson.query().items())) for lesson in LESSONS]
    assert "Hides the noise seed." in captions  # the denoising lesson's, in words


def test_a_broken_lesson_file_is_listed_with_its_error_and_the_others_stay(runs_dir, tmp_path, monkeypatch):
    folder = shutil.copytree(LESSONS_DIR, tmp_path / "lessons")
    (folder / "zz_broken.md").write_text("---\ntitle: Broken\norder: 9\npage: pages/nowhere.py\nsummary: x\n---\n")
    monkeypatch.setenv("LATENT_LAB_LESSONS", str(folder))
    at = render_page("pages/lessons.py")
    assert len(at.code) == len(LESSONS)
    (error,) = at.error
    message = error.value.replace("\\", "")  # shown escaped: the file is the presenter's text
    assert "zz_broken.md: page 'pages/nowhere.py' is not one lessons can open" in message


def test_a_lesson_link_opens_its_page_in_its_preset_state_with_the_lesson_beside_it(runs_dir):
    at = render_page(None, {"lesson": "denoising"})  # the short link: the home page's address
    assert "Noise lab" in texts(at.title) and not at.warning
    panel = texts(at.sidebar.markdown)
    assert "#### Denoising autoencoders" in panel and "Vincent et al." in panel and r"\mathrm{PSNR}" in panel
    assert "1. Compare the three outputs" in panel
    assert "Lesson 3 of 8" in texts(at.sidebar.caption)
    assert at.selectbox(key="noise_kind").value == "gaussian"
    (level,) = [s for s in at.slider if s.key == "noise_level_gaussian"]
    assert level.value == 0.5
    assert "noise_seed" not in keys(at, "number_input") and "noise_image" in keys(at, "number_input")
    assert at.query_params["lesson"] == "denoising"
    links = {p.label: p for p in page_links(at)}
    assert links["Previous: PCA against the autoencoder"].query_string == "lesson=pca_vs_ae&k=16"
    following = links["Next: Sparse and contractive autoencoders"]
    assert following.page == "train" and following.query_string == "lesson=sparse_contractive&model=sparse_ae"
    assert links["This page with every control"].query_string == "noise=gaussian&level=0.5"

    at.selectbox(key="noise_kind").set_value("block")  # within the lesson: the visitor's choice stands
    rerun(at)
    assert at.selectbox(key="noise_kind").value == "block" and "noise_seed" not in keys(at, "number_input")


def test_without_the_lesson_the_same_page_shows_every_control(runs_dir):
    at = render_page("pages/noise_lab.py", {"noise": "gaussian", "level": "0.5"})
    assert "noise_seed" in keys(at, "number_input")
    assert not at.sidebar.get("page_link") or all("Next:" not in p.label for p in page_links(at))


def test_entering_a_lesson_replaces_what_the_session_had_set_on_its_page(runs_dir):
    at = render_page("pages/noise_lab.py")
    at.selectbox(key="noise_kind").set_value("masking")
    rerun(at)
    for key in list(at.query_params):  # what a Next link does: the lesson's page with the lesson's query only
        del at.query_params[key]
    at.query_params.update(next(lesson for lesson in LESSONS if lesson.name == "denoising").query())
    rerun(at)
    assert at.selectbox(key="noise_kind").value == "gaussian"


def test_a_lesson_hides_a_group_of_controls_and_the_page_still_runs(runs_dir):
    at = render_page(None, {"lesson": "gan_game"})
    assert "2-D GAN playground" in texts(at.title)
    assert at.selectbox(key="toy_loss").value == "minimax" and at.selectbox(key="toy_dist").value == "ring"
    assert not {"toy_d_steps", "toy_layers"} & set(keys(at, "slider"))  # More settings: not drawn
    assert "toy_seed" not in keys(at, "number_input")
    assert "More settings" not in [e.label for e in at.expander]
    assert at.metric and "Step" in [m.label for m in at.metric]  # the playground itself is there


@pytest.mark.parametrize("name", ["no-such-lesson", "../../README", "x" * 300])
def test_a_link_to_no_lesson_says_so_and_the_page_works(runs_dir, name):
    at = render_page(None, {"lesson": name})
    assert "Latent Lab" in texts(at.title)  # the home page, as the link's address
    warning = texts(at.warning)
    assert "There is no lesson" in warning and "Lessons" in warning
    assert at.button(key="home_starter")
    assert not page_links(at) or "Next:" not in " ".join(p.label for p in page_links(at))


def test_a_link_to_a_broken_lesson_names_its_file(runs_dir, tmp_path, monkeypatch):
    folder = tmp_path / "lessons"
    folder.mkdir()
    (folder / "half.md").write_text("---\ntitle: Half a lesson\n")
    monkeypatch.setenv("LATENT_LAB_LESSONS", str(folder))
    at = render_page("pages/draw.py", {"lesson": "half"})
    assert "Draw" in texts(at.title)
    assert "half.md" in texts(at.warning) and "no closing '---'" in texts(at.warning)
