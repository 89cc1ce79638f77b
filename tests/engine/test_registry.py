"""The registry answers questions about models; every model declares what it is; a new variant is one file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from engine.models import (MODELS, Capabilities, build_model, capabilities, formulas, get_model_class, is_model, label,
                           models, register)
from engine.models.settings import describe
from engine.runs import Run, make_run_config
from engine.train import TRAINERS, train_run
from tests.apptest import render_page, texts
from tests.variants import tiny_ae

ROOT = Path(__file__).resolve().parents[2]


def test_the_registry_answers_questions_by_capability():
    assert models(adversarial=True) == ["gan", "dcgan", "wgan_gp", "cgan"]
    assert models(encodes=True, closed_form=True) == ["pca"]
    assert set(models(variational=True)) == {"vae", "conv_vae", "cvae"}
    assert models(conditional=True) == ["cvae", "cgan"]
    assert models(linear=True) == ["linear_ae", "pca"] and models(wasserstein=True) == ["wgan_gp"]
    assert "cvae" not in models(encodes=True, conditional=False) and "pca" in models(encodes=True, conditional=False)
    # every model is an image encoder, a GAN, or a sequence autoencoder (its own family, which image pages never offer)
    assert set(models(encodes=True)) | set(models(adversarial=True)) | set(models(kind="sequence")) == set(MODELS)
    assert not set(models(kind="sequence")) & (set(models(encodes=True)) | set(models(adversarial=True)))
    assert set(models(kind="sequence")) >= {"rnn_ae", "lstm_ae", "gru_ae", "conv1d_ae", "seq_vae"}
    assert capabilities("vae").prior and not capabilities("ae").prior
    assert is_model("dcgan", adversarial=True) and not is_model("dcgan", encodes=True)
    assert not is_model("no-such-model") and not is_model(None) and not is_model(["ae"], encodes=True)
    with pytest.raises(ValueError, match="unknown capabilities sideways"):
        models(sideways=True)
    with pytest.raises(ValueError, match="unknown model"):
        capabilities("no-such-model")


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_declares_what_it_is(name):
    cls = get_model_class(name)
    assert isinstance(cls.capabilities, Capabilities) and cls.trainer in TRAINERS
    assert formulas(name) and all(isinstance(f, str) and "\\" in f for f in formulas(name))
    assert cls.description and label(name) != name  # every built-in model has a name for people
    for s in describe(cls.config_cls):
        assert s.help, f"{name}.{s.name} has no help"
        if s.kind == "choice":
            assert s.default in s.choices, f"{name}.{s.name}: default {s.default!r} is not one of {s.choices}"
    caps = cls.capabilities
    model = build_model(name, latent_dim=2)
    # what a capability promises, the model has
    assert caps.adversarial or hasattr(model, "encode") == (caps.encodes or cls.trainer == "sequence")
    assert not caps.variational or callable(getattr(model, "encode_dist", None))
    assert not caps.linear or model.decoder_basis().shape == (784, 2)
    assert not caps.closed_form or callable(getattr(model, "fit", None))
    assert not caps.adversarial or (hasattr(model, "generator") and hasattr(model, "discriminator"))


def test_choices_are_literals_the_config_enforces():
    loss = next(s for s in describe(get_model_class("ae").config_cls) if s.name == "loss")
    assert loss.kind == "choice" and loss.choices == ("mse", "bce")
    g_loss = next(s for s in describe(get_model_class("wgan_gp").config_cls) if s.name == "g_loss")
    assert g_loss.choices == ("wasserstein",)  # a Wasserstein GAN has exactly one generator loss
    hints = typing.get_type_hints(get_model_class("sparse_ae").config_cls)
    assert typing.get_args(hints["sparsity"]) == ("kl", "l1")
    with pytest.raises(ValueError, match="sparsity must be one of kl, l1, not 'l2'"):
        build_model("sparse_ae", sparsity="l2")
    with pytest.raises(ValueError, match="activation must be one of"):
        build_model("ae", activation="swish")


def test_a_registration_must_declare_what_it_is():
    class Bare:
        pass

    with pytest.raises(ValueError, match="must declare config_cls"):
        register("bare", Bare)
    with pytest.raises(ValueError, match="registered already"):
        register("ae", get_model_class("ae"))


# -- the one-file claim ----------------------------------------------------------------------------


@pytest.fixture
def tiny_variant():
    """tests/variants/tiny_ae.py registered for this test only."""
    tiny_ae.add()
    yield tiny_ae.NAME
    tiny_ae.remove()


def test_the_variant_is_in_the_clis_models(tiny_variant, capsys):
    from engine.cli import main

    assert main(["models"]) == 0
    listed = {m["name"]: m for m in map(json.loads, capsys.readouterr().out.splitlines())}
    assert tiny_variant in listed and set(listed) == set(MODELS)
    entry = listed[tiny_variant]
    assert entry["label"] == "tiny AE" and entry["trainer"] == "reconstruction"
    assert entry["capabilities"] == ["encodes", "generates"]
    assert entry["settings"]["width"] == {"label": "Hidden width", "default": 16,
                                          "help": "the one hidden layer's width, each way"}
    assert entry["settings"]["activation"]["choices"][0] == "relu"


def test_the_variant_is_in_the_train_form(tiny_variant, runs_dir):
    at = render_page("pages/train.py")
    assert tiny_variant in at.selectbox(key="train_model").options
    at.selectbox(key="train_model").set_value(tiny_variant).run()
    assert not at.exception
    assert "Tiny autoencoder" in texts(at.markdown) and r"g(f(x))" in texts(at.latex)
    width = at.number_input(key=f"train_{tiny_variant}_width")
    assert width.value == 16 and width.label == "Hidden width"
    assert width.help.startswith("the one hidden layer's width, each way")
    assert at.selectbox(key=f"train_{tiny_variant}_activation").value == "elu"


def test_the_variant_trains_and_opens_in_the_explorer(tiny_variant, runs_dir, media):
    run = Run.create(runs_dir, make_run_config(tiny_variant, "mnist-5k", {}, {"epochs": 1, "threads": 1}),
                     run_id="tiny-run")
    train_run(run)
    assert run.status().state == "done" and run.status().final_metrics["mse"] > 0
    at = render_page("pages/explorer.py", {"run": "tiny-run"})
    assert at.selectbox(key="explorer_run").value == "tiny-run"
    sliders = json.loads(at.get("bidi_component")[0].proto.json)  # the explorer's sliders (ui/latent_sliders.py)
    assert len(sliders["labels"]) == 4 and len(sliders["strip"]["tiles"]) == 61  # latent_dim 4: a slider per axis
    assert at.get("image") and not at.error


def test_the_variant_runs_the_whole_parametrised_model_suite():
    """The model suite collects every registered model: with the variant's plugin it runs it too."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.variants.tiny_ae",
           "tests/engine/test_models.py", "-k", "tiny_ae"]
    proc = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    summary = proc.stdout.strip().splitlines()[-1]  # e.g. "9 passed, 171 deselected in 4.2s"
    assert int(summary.split(" passed")[0].split()[-1]) >= 6, summary  # shapes, loss, gradients, save/load, …
