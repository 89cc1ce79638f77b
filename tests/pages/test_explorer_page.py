"""The Latent explorer page without a browser (streamlit's AppTest), and the engine's explorer section.

The decoded images are compared byte for byte with what the engine makes for the same code, so a
slider that moved nothing, a link that restored the wrong start or a wrong arithmetic all fail.
Runs: the shared PCA (latent_dim 8: one slider per axis), a PCA with latent_dim 16 (principal
directions) and a 2-D VAE trained for a moment (prior samples and the manifold grid).
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from engine.data import load_dataset
from engine.data.images import grid_png, image_png
from engine.eval.codes import decode, interpolate, reconstruct, split_codes
from engine.lab.explorer import (MAX_SLIDERS, STEP, TICKS, arithmetic, axis_directions, from_ticks,
                                 manifold_codes, manifold_images, move, sample_images, slider_directions,
                                 slider_strip)
from engine.runs import Run
from engine.runs.loaded import load_run
from tests.apptest import add_run, keyed_block, media_bytes, render_page, rerun, texts, train_tiny, walk

KEYS = [f"explorer_c{i}" for i in range(MAX_SLIDERS)]


pytestmark = pytest.mark.usefixtures("fresh_caches")


@pytest.fixture(scope="module")
def pca_16(tmp_path_factory) -> Path:
    """PCA with latent_dim 16 > 8: the sliders follow principal directions of the codes."""
    return train_tiny(tmp_path_factory.mktemp("pca16"), "pca-16", "pca", {"latent_dim": 16}, {})


@pytest.fixture(scope="module")
def vae_2d(tmp_path_factory) -> Path:
    """A dense VAE with a 2-D latent, one short epoch: enough for the prior and the manifold grid."""
    return train_tiny(tmp_path_factory.mktemp("vae2d"), "vae-2d", "vae", {"latent_dim": 2},
                  {"epochs": 1, "seconds": 5})


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist-5k")


def render(query: dict | None = None) -> AppTest:
    return render_page("pages/explorer.py", query)


def image_in(at: AppTest, media: dict, key: str) -> bytes:
    """The bytes of the image inside the container st.container(key=key) (its id ends with the key)."""
    urls = [e.value[0] for e in walk(keyed_block(at, key)) if e.type == "image"]
    assert urls, f"no image in {key}"
    return media_bytes(media, urls[0])


def pad(at: AppTest) -> dict:
    """What the page handed the sliders' component (ui/latent_sliders.py): labels, positions, the strip."""
    found = [e for e in walk(keyed_block(at, "explorer_pad")) if e.type == "bidi_component"]
    assert found, "no latent sliders on the page"
    return json.loads(found[0].proto.json)


def coords_of(at: AppTest) -> list[float]:
    return from_ticks(pad(at)["ticks"])


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)), dtype=np.int16)


def tile(at: AppTest, tick: int | None = None) -> np.ndarray:
    """The image the browser shows with the strip's slider at `tick` (default: where the page has it)."""
    d = pad(at)
    strip = d["strip"]
    assert len(strip["tiles"]) == 2 * TICKS + 1 and strip["base"] == d["ticks"]
    t = d["ticks"][strip["slider"]] if tick is None else tick
    return pixels(base64.b64decode(strip["tiles"][t + TICKS]))


def decoded(at: AppTest) -> np.ndarray:
    """The decoded image the browser shows for the page's positions."""
    return tile(at)


def same_image(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal to a grey level: the strip decodes 61 codes in one batch, the reference one at a time."""
    return a.shape == b.shape and int(np.abs(a - b).max()) <= 1


def move_sliders(at: AppTest, coords: dict[int, float], active: int | None = None) -> None:
    """What the component's callback does with a move the browser sends (ui.latent_sliders.take_positions)."""
    for i, c in coords.items():
        at.session_state[KEYS[i]] = c
    if active is not None:
        at.session_state["explorer_active"] = active


class Reference:
    """What the page should show for a run, computed by the engine directly (no Streamlit)."""

    def __init__(self, path: Path, data):
        self.loaded = load_run(Run(path))
        self.codes = split_codes(self.loaded, data, "test")  # (N, latent_dim)
        self.directions = slider_directions(self.codes)
        self.data = data

    def slider_image(self, coords, image: int | None = None) -> np.ndarray:
        z0 = self.directions.mean if image is None else self.codes[image]
        return pixels(image_png(decode(self.loaded, move(self.directions, z0, coords))[0]))


# -- the page --------------------------------------------------------------------------------------


def test_without_a_run_it_offers_to_train_one(runs_dir):
    at = render()
    assert "Latent explorer" in texts(at.title)
    assert r"\hat{x} = g(z)" in texts(at.latex) and r"\sin\Omega" in texts(at.latex)
    assert "No autoencoder is trained" in texts(at.info)
    assert at.button(key="explorer_need_model").label.startswith("Train a 2-D VAE")
    assert not at.get("bidi_component") and not at.error


def test_sliders_move_the_decoded_image(runs_dir, finished_pca_run, data, media):
    add_run(runs_dir, finished_pca_run)
    ref = Reference(finished_pca_run, data)
    at = render()
    d = pad(at)
    assert d["ticks"] == [0] * 8 and len(d["labels"]) == 8
    assert d["labels"][0].startswith("z₁ · ") and "% of variance" in d["labels"][0]  # latent_dim 8: the axes
    assert d["z"] is not None and len(d["z"]["z0"]) == 8  # the axes: z is printed under the image
    start = decoded(at)
    assert same_image(start, ref.slider_image([0.0] * 8))  # g(mean code)
    origin = d["origin"]

    move_sliders(at, {0: 1.5, 3: -2.0}, active=3)
    rerun(at)
    d = pad(at)
    assert d["ticks"] == [15, 0, 0, -20, 0, 0, 0, 0] and d["strip"]["slider"] == 3
    assert d["origin"] == origin  # the browser moved them: it keeps its own positions
    moved = decoded(at)
    assert not same_image(moved, start)
    assert same_image(moved, ref.slider_image([1.5, 0, 0, -2.0, 0, 0, 0, 0]))
    assert at.query_params["z"] == "1.5,0,0,-2,0,0,0,0"

    at.button(key="explorer_reset").click()
    rerun(at)
    assert coords_of(at) == [0.0] * 8 and pad(at)["origin"] != origin  # the browser takes the server's zeros
    assert "z" not in at.query_params
    assert same_image(decoded(at), start)


def test_the_strip_holds_the_decoded_image_at_every_position_of_the_slider_with_the_focus(
        runs_dir, finished_pca_run, data):
    """What the browser shows while a slider moves is the decoder's own image at that position."""
    add_run(runs_dir, finished_pca_run)
    ref = Reference(finished_pca_run, data)
    at = render()
    move_sliders(at, {1: 0.7, 5: -1.2}, active=5)
    rerun(at)
    assert pad(at)["strip"]["slider"] == 5
    for t in (-TICKS, -13, 0, 4, TICKS):
        assert same_image(tile(at, t), ref.slider_image([0, 0.7, 0, 0, 0, t * STEP, 0, 0])), t
    strip = slider_strip(ref.loaded, ref.directions, ref.directions.mean, [0, 0.7, 0, 0, 0, 0, 0, 0], 5)
    assert strip.shape == (2 * TICKS + 1, 28, 28)
    with pytest.raises(ValueError, match="slider positions"):
        slider_strip(ref.loaded, ref.directions, ref.directions.mean, [0.0] * 3, 0)


def test_the_component_s_positions_are_checked_before_they_are_taken():
    """A crafted widget message (wrong length, out of range, not whole ticks, a bad index) changes nothing, nor
    does a move made before the server's last Reset (an older origin)."""

    def script():
        import streamlit as st

        from ui.latent_sliders import take_positions

        keys = ["c0", "c1", "c2"]
        for k in keys:
            st.session_state.setdefault(k, 0.0)
        st.session_state.setdefault("active", 0)
        st.session_state.setdefault("origin", 4)
        sent = st.session_state.pop("sent", None)
        if sent is not None:
            st.session_state["pad"] = {"pos": {"origin": 4, **sent}}
            take_positions("pad", keys, "active", "origin")
        st.write(repr([st.session_state[k] for k in keys] + [st.session_state["active"]]))

    at = AppTest.from_function(script).run()
    for sent, expected in (({"ticks": [5, -30, 30], "active": 2}, [0.5, -3.0, 3.0, 2]),
                           ({"ticks": [1, 2], "active": 0}, [0.5, -3.0, 3.0, 2]),
                           ({"ticks": [1, 2, 31], "active": 0}, [0.5, -3.0, 3.0, 2]),
                           ({"ticks": [1, 2.5, 3], "active": 0}, [0.5, -3.0, 3.0, 2]),
                           ({"ticks": [1, True, 3], "active": 0}, [0.5, -3.0, 3.0, 2]),
                           ({"ticks": [1, 2, 3], "active": 3}, [0.5, -3.0, 3.0, 2]),
                           ({"ticks": "1,2,3", "active": 0}, [0.5, -3.0, 3.0, 2]),
                           ({"ticks": [1, 2, 3], "active": 0, "origin": 3}, [0.5, -3.0, 3.0, 2]),  # before a Reset
                           ({"ticks": [-7, 0, 12], "active": 1}, [-0.7, 0.0, 1.2, 1])):
        at.session_state["sent"] = sent
        at.run()
        assert at.markdown[-1].value == repr(expected), sent


def test_starting_from_an_image_shows_its_reconstruction(runs_dir, finished_pca_run, data, media):
    add_run(runs_dir, finished_pca_run)
    ref = Reference(finished_pca_run, data)
    at = render()
    assert at.number_input(key="explorer_image").disabled  # the index matters only when starting from an image
    at.radio(key="explorer_start").set_value("a test image")
    rerun(at)
    at.number_input(key="explorer_image").set_value(7)
    rerun(at)
    assert at.query_params["image"] == "7"
    x_hat = reconstruct(ref.loaded, data.x_test[7])[0]  # sliders at 0 from image 7: z = f(x₇), x̂ = g(f(x₇))
    assert same_image(decoded(at), pixels(image_png(x_hat)))
    assert pad(at)["start"] == {"png": base64.b64encode(image_png(data.x_test[7, 0])).decode(),
                                "caption": f"start: test image 7 · {data.classes[int(data.y_test[7])]}"}


def test_a_link_restores_the_explorer(runs_dir, finished_pca_run, data, media):
    add_run(runs_dir, finished_pca_run)
    ref = Reference(finished_pca_run, data)
    coords = [0.5, -1.0, 0, 0, 2.0, 0, 0, -3.0]
    at = render({"run": "pca-finished", "z": "0.5,-1,0,0,2,0,0,-3", "image": "12", "a": "3", "b": "9",
                 "arith": "4,5,6", "seed": "2"})
    assert coords_of(at) == coords
    assert at.radio(key="explorer_start").value == "a test image" and at.number_input(key="explorer_image").value == 12
    assert same_image(decoded(at), ref.slider_image(coords, image=12))
    assert pad(at)["start"]["caption"].startswith("start: test image 12")
    assert (at.number_input(key="explorer_a").value, at.number_input(key="explorer_b").value) == (3, 9)
    assert [at.number_input(key=f"explorer_arith_{n}").value for n in "abc"] == [4, 5, 6]
    assert at.session_state["explorer_seed"] == 2
    # and the page writes back what it shows, so the link stays the same
    assert {k: at.query_params[k] for k in ("z", "image", "a", "b", "arith", "seed")} == {
        "z": "0.5,-1,0,0,2,0,0,-3", "image": "12", "a": "3", "b": "9", "arith": "4,5,6", "seed": "2"}


def test_bad_links_fall_back_with_a_warning(runs_dir, finished_pca_run):
    add_run(runs_dir, finished_pca_run)
    at = render({"z": "1,2", "a": "999999", "b": "-4", "arith": "1,x,3", "image": "nope", "seed": "many"})
    assert "do not fit this run" in texts(at.warning)
    assert coords_of(at) == [0.0] * 8
    assert (at.number_input(key="explorer_a").value, at.number_input(key="explorer_b").value) == (0, 1)
    assert [at.number_input(key=f"explorer_arith_{n}").value for n in "abc"] == [0, 1, 2]
    assert at.radio(key="explorer_start").value == "a test image" and at.number_input(key="explorer_image").value == 0
    assert not at.error


def test_interpolation_and_arithmetic(runs_dir, finished_pca_run, data, media):
    add_run(runs_dir, finished_pca_run)
    ref = Reference(finished_pca_run, data)
    at = render({"a": "3", "b": "9", "arith": "4,5,6"})
    z_a, z_b = ref.codes[3], ref.codes[9]
    for method in ("linear", "slerp"):
        strip = decode(ref.loaded, interpolate(z_a, z_b, 10, method))
        assert image_in(at, media, f"explorer_strip_{method}") == image_png(strip, scale=2)
    assert image_in(at, media, "explorer_strip_linear") != image_in(at, media, "explorer_strip_slerp")
    z = ref.codes[4] - ref.codes[5] + ref.codes[6]
    assert image_in(at, media, "explorer_arith_result") == image_png(decode(ref.loaded, z)[0], scale=3)

    at.slider(key="explorer_steps").set_value(5)
    at.number_input(key="explorer_b").set_value(20)
    rerun(at)
    assert image_in(at, media, "explorer_strip_linear") == image_png(
        decode(ref.loaded, interpolate(z_a, ref.codes[20], 5, "linear")), scale=2)
    assert at.query_params["b"] == "20"


def test_non_vae_samples_say_where_they_come_from(runs_dir, finished_pca_run, media):
    add_run(runs_dir, finished_pca_run)
    at = render()
    assert "Samples" in texts(at.subheader) and "Samples from the prior" not in texts(at.subheader)
    assert "Gaussian fitted to its training codes" in texts(at.caption)
    # latent_dim 8: no manifold grid, but a button that trains a model with one (issue 10)
    assert "cannot be laid out on a page" in texts(at.info) and "2-D VAE" in at.button(key="explorer_need_2d").label
    assert not at.get("imgs") or "explorer_manifold" not in str(at)
    first = image_in(at, media, "explorer_samples")
    at.button(key="explorer_reseed").click()
    rerun(at)
    assert image_in(at, media, "explorer_samples") != first
    assert at.query_params["seed"] == "1"


def test_a_large_latent_gets_principal_directions(runs_dir, pca_16, data, media):
    add_run(runs_dir, pca_16)
    ref = Reference(pca_16, data)
    at = render()
    labels = pad(at)["labels"]
    assert len(labels) == 8 and pad(at)["z"] is None  # a 16-d z is not printed
    assert labels[0].startswith("direction 1 · ") and labels[7].startswith("direction 8 · ")
    shares = [int(label.split("· ")[1].split("%")[0]) for label in labels]
    assert shares == sorted(shares, reverse=True) and shares[0] > shares[7]
    assert "explorer_c8" not in at.session_state
    move_sliders(at, {1: -2.5}, active=1)
    rerun(at)
    assert same_image(decoded(at), ref.slider_image([0, -2.5, 0, 0, 0, 0, 0, 0]))


def test_a_2d_vae_shows_the_manifold_and_prior_samples(runs_dir, vae_2d, data, media):
    add_run(runs_dir, vae_2d)
    ref = Reference(vae_2d, data)
    at = render()
    assert len(pad(at)["labels"]) == 2 and pad(at)["labels"][1].startswith("z₂ · ")
    assert "The 2-D manifold" in texts(at.subheader) and "Samples from the prior" in texts(at.subheader)
    assert "prior N(0, I)" in texts(at.caption)
    grid = decode(ref.loaded, manifold_codes(15, prior=True))  # the VAE's grid sits at N(0, 1) quantiles
    assert image_in(at, media, "explorer_manifold") == grid_png(grid, ncol=15, scale=2)
    g = torch.Generator().manual_seed(0)
    prior = decode(ref.loaded, torch.randn(64, 2, generator=g).numpy())  # z ~ N(0, I), seed 0
    assert image_in(at, media, "explorer_samples") == grid_png(prior, ncol=8, scale=2)


# -- the engine's explorer section -----------------------------------------------------------------


def test_slider_directions_axes_or_principal_directions():
    rng = np.random.default_rng(0)
    small = rng.normal(size=(500, 5)) * [3, 2, 1, 0.5, 0.1]
    axes = slider_directions(small)
    np.testing.assert_allclose(axes.components, np.eye(5))
    np.testing.assert_allclose(axes.std, small.std(0), rtol=1e-6)

    big = rng.normal(size=(500, 20)) @ rng.normal(size=(20, 20))
    pcs = slider_directions(big)
    assert pcs.components.shape == (MAX_SLIDERS, 20)
    centred = big - big.mean(0)
    _, sing, vt = np.linalg.svd(centred, full_matrices=False)  # reference: the SVD of the centred codes
    np.testing.assert_allclose(np.abs(pcs.components @ vt[:MAX_SLIDERS].T), np.eye(MAX_SLIDERS), atol=1e-6)
    np.testing.assert_allclose(pcs.std, sing[:MAX_SLIDERS] / np.sqrt(len(big) - 1), rtol=1e-6)
    assert np.all(np.diff(pcs.explained) <= 0)


def test_move_from_the_mean_matches_to_code():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(300, 12))
    d = slider_directions(z)
    coords = rng.uniform(-3, 3, size=MAX_SLIDERS)
    np.testing.assert_allclose(move(d, d.mean, coords), d.to_code(coords))
    np.testing.assert_allclose(move(d, z[3], np.zeros(MAX_SLIDERS)), z[3])  # 0 keeps the start, off-span parts too
    np.testing.assert_allclose(d.to_coords(move(d, d.mean, coords)), coords)
    with pytest.raises(ValueError, match="slider positions"):
        move(d, d.mean, [1.0, 2.0])
    a = axis_directions(z[:, :3])
    np.testing.assert_allclose(move(a, z[0, :3], [1, 0, 0]), z[0, :3] + [a.std[0], 0, 0])


def test_arithmetic_and_samples(vae_2d, finished_pca_run):
    np.testing.assert_allclose(arithmetic([1, 2], [3, 5], [10, 10]), [8, 7])
    vae = load_run(Run(vae_2d))
    np.testing.assert_array_equal(sample_images(vae, 6, seed=3), sample_images(vae, 6, seed=3))
    assert not np.array_equal(sample_images(vae, 6, seed=3), sample_images(vae, 6, seed=4))
    pca = load_run(Run(finished_pca_run))
    fitted = pca.model.latent_mean.numpy() + pca.model.latent_std.numpy() * torch.randn(
        4, 8, generator=torch.Generator().manual_seed(5)).numpy()  # N(mean, diag(std²)) of the training codes
    np.testing.assert_allclose(sample_images(pca, 4, seed=5), decode(pca, fitted), atol=1e-6)
    with pytest.raises(ValueError, match="latent_dim 2"):
        manifold_images(pca, 5)
    assert manifold_images(vae, 4).shape == (16, 28, 28)


def test_back_from_another_page_the_sliders_are_where_they_were(runs_dir, finished_pca_run):
    """The positions live in the session, not in a widget Streamlit forgets when another page is drawn: coming
    back shows them again, and the link gets its ?z= back."""
    add_run(runs_dir, finished_pca_run)
    at = render()
    move_sliders(at, {2: 1.0}, active=2)
    rerun(at)
    origin = pad(at)["origin"]
    at.switch_page("pages/home.py")
    rerun(at)
    at.query_params.pop("z", None)  # a page switch in the browser drops the explorer's query parameters
    at.switch_page("pages/explorer.py")
    rerun(at)
    assert coords_of(at) == [0, 0, 1.0, 0, 0, 0, 0, 0] and pad(at)["origin"] == origin
    assert at.query_params["z"] == "0,0,1,0,0,0,0,0"
    for key in KEYS:  # a session that lost them, with no link to restore them from: 0, not the minimum
        del at.session_state[key]
    at.query_params.pop("z", None)
    rerun(at)
    assert coords_of(at) == [0.0] * 8 and pad(at)["origin"] != origin


def test_a_link_to_a_missing_run_says_so(runs_dir, finished_pca_run):
    add_run(runs_dir, finished_pca_run)
    at = render({"run": "deleted-long-ago"})
    assert "no autoencoder run 'deleted-long-ago'" in texts(at.warning)
    assert at.selectbox(key="explorer_run").value == "pca-finished" and at.query_params["run"] == "pca-finished"


def test_without_a_link_it_opens_on_the_run_that_fills_every_panel_and_says_why(runs_dir, vae_2d, pca_16):
    """Issue 10: the explorer opened on the newest run, the PCA baseline. A 2-D VAE fills every panel."""
    add_run(runs_dir, vae_2d)
    add_run(runs_dir, pca_16)  # newer
    at = render()
    assert at.selectbox(key="explorer_run").value == "vae-2d"
    reason = texts(at.caption)
    assert "Opened on vae-2d" in reason and "a VAE with a 2-number code" in reason
    assert at.query_params["run"] == "vae-2d"
    linked = render({"run": "pca-16"})  # a link still wins, and needs no reason
    assert linked.selectbox(key="explorer_run").value == "pca-16" and "Opened on" not in texts(linked.caption)
