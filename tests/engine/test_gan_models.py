"""Every adversarial model of the registry: shapes, finite losses, one step updates both nets, save → load.

The suite loops over the registry, so a new GAN variant is tested by adding its registry line.
"""

from __future__ import annotations

import pytest
import torch

from engine.data import load_dataset
from engine.models import MODELS, build_model, make_config, models
from engine.models.gan_losses import discriminator_loss, generator_loss, gradient_penalty
from engine.runs import Run, TrainConfig, load_model_from_checkpoint, make_run_config, read_checkpoint
from engine.train import train_run
from engine.train.adversarial import AdversarialTrainer

ADVERSARIAL = models(adversarial=True)
TINY = {"gan": {"latent_dim": 8, "hidden": [16]}, "dcgan": {"latent_dim": 8, "width": 4},
        "wgan_gp": {"latent_dim": 8, "width": 4}, "cgan": {"latent_dim": 8, "width": 4}}
FAST = {"log_every_s": 0.05, "snapshot_every_s": 0.1, "checkpoint_every_s": 0.2, "eval_batch": 100,
        "judge": False}


def test_the_registry_has_the_four_gans():
    assert set(ADVERSARIAL) >= {"gan", "dcgan", "wgan_gp", "cgan"}
    assert set(TINY) >= set(ADVERSARIAL), "add a tiny config for the new model to TINY"


def tiny(name):
    torch.manual_seed(0)
    return build_model(name, TINY[name])


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist-5k")


def trainer_for(name, data, **train):
    model = tiny(name).train()
    cfg = TrainConfig(**{**FAST, "batch_size": 16, "lr": 1e-3, **MODELS[name].train_defaults, **train})
    return AdversarialTrainer(model, data, cfg, torch.device("cpu"))


@pytest.mark.parametrize("name", ADVERSARIAL)
class TestEveryGAN:
    def test_shapes_and_ranges(self, name):
        model = tiny(name).eval()
        z = torch.randn(5, model.config.latent_dim)
        y = torch.arange(5) % 10
        x = model.generate(z, y)
        assert x.shape == (5, 1, 28, 28)
        assert 0 <= x.min() and x.max() <= 1
        assert model.critic(x, y).shape == (5,)
        assert model.sample(3).shape == (3, 1, 28, 28)
        assert model.capabilities.adversarial and model.trainer == "adversarial"

    def test_losses_are_finite_and_named(self, name):
        model = tiny(name).train()
        x, y = torch.rand(8, 1, 28, 28), torch.arange(8) % 10
        gen = torch.Generator().manual_seed(0)
        d = model.d_loss_step(x, y, gen)
        g = model.g_loss_step(8, None, gen)
        assert torch.isfinite(d.loss) and torch.isfinite(g.loss)
        assert "d_loss" in d.logs and "g_loss" in g.logs
        if model.capabilities.wasserstein:
            assert {"wasserstein", "critic_real", "critic_fake"} <= set(d.logs)
        else:
            assert 0 < float(d.logs["d_real"]) < 1 and 0 < float(d.logs["d_fake"]) < 1

    def test_one_step_updates_both_nets_and_logs_their_gradients(self, name, data):
        trainer = trainer_for(name, data)
        model = trainer.model
        g_before = [p.detach().clone() for p in model.generator.parameters()]
        d_before = [p.detach().clone() for p in model.discriminator.parameters()]
        logs = {}
        for _ in range(model.n_critic):  # a WGAN updates its generator once per n_critic critic steps
            logs = trainer.train_step(torch.arange(16))
        g_changed = sum(not torch.equal(a, b) for a, b in zip(g_before, model.generator.parameters()))
        d_changed = sum(not torch.equal(a, b) for a, b in zip(d_before, model.discriminator.parameters()))
        assert g_changed == len(g_before) and d_changed == len(d_before)
        for key in ("d_loss", "g_loss", "grad_norm_d", "grad_norm_g"):
            assert torch.isfinite(logs[key]), key
        assert float(logs["grad_norm_d"]) > 0 and float(logs["grad_norm_g"]) > 0

    def test_d_step_leaves_the_generator_and_g_step_the_discriminator(self, name, data):
        trainer = trainer_for(name, data)
        model = trainer.model
        g_before = [p.detach().clone() for p in model.generator.parameters()]
        trainer.d_step(torch.arange(16))
        assert all(torch.equal(a, b) for a, b in zip(g_before, model.generator.parameters()))
        d_before = [p.detach().clone() for p in model.discriminator.parameters()]
        d_buffers = [b.detach().clone() for b in model.discriminator.buffers()]
        trainer.g_step(16)
        assert all(torch.equal(a, b) for a, b in zip(d_before, model.discriminator.parameters()))
        assert all(p.requires_grad for p in model.discriminator.parameters())  # unfrozen again
        assert len(d_buffers) == len(list(model.discriminator.buffers()))

    def test_save_then_load_gives_the_same_generator_and_optimizers(self, name, data, tmp_path):
        trainer = trainer_for(name, data)
        for i in range(2):
            trainer.train_step(torch.arange(16) + 16 * i)
        run = Run.create(tmp_path, make_run_config(name, model_config=TINY[name], train=FAST))
        header = {"model": name, "model_config": run.config["model_config"], "kind": "adversarial", "epoch": 0}
        path = run.save_checkpoint(trainer.model, 2, header, trainer.optimizers)
        again, header = load_model_from_checkpoint(path)
        z = torch.randn(4, trainer.model.config.latent_dim)
        trainer.model.eval()
        assert torch.equal(again.generate(z, torch.arange(4)), trainer.model.generate(z, torch.arange(4)))
        _, tensors = read_checkpoint(path)
        fresh = trainer_for(name, data)
        fresh.load_state(header, tensors)
        assert fresh.opt_g.state_dict()["state"].keys() == trainer.opt_g.state_dict()["state"].keys()
        assert fresh.d_updates == 2

    def test_a_short_run_writes_samples_from_a_fixed_z(self, name, tmp_path):
        run = Run.create(tmp_path, make_run_config(name, model_config=TINY[name],
                                                   train={**FAST, "epochs": 1, "batch_size": 256}))
        train_run(run)
        assert run.state == "done"
        snaps = run.snapshots("samples")
        assert snaps[0].step == 0 and len(snaps) >= 2
        records = [r for r in run.metrics() if "train/d_loss" in r]
        # a WGAN's first lines may precede G's first step
        g_losses = [r["train/g_loss"] for r in records if "train/g_loss" in r]
        assert g_losses and all(torch.isfinite(torch.tensor(v)) for v in g_losses)
        assert all(torch.isfinite(torch.tensor(r["train/d_loss"])) for r in records)
        assert {"lr_g", "lr_d"} <= set(records[-1])


def test_the_generator_losses_differ_where_d_rejects_the_fakes():
    """The vanishing gradient: log(1 − D) is flat where D(G(z)) ≈ 0, −log D is steep there."""
    logits = torch.full((4,), -6.0, requires_grad=True)  # D(G(z)) ≈ 0.0025: D easily rejects
    (g_minimax,) = torch.autograd.grad(generator_loss(logits, "minimax"), logits)
    (g_ns,) = torch.autograd.grad(generator_loss(logits, "non_saturating"), logits)
    assert g_ns.abs().mean() > 100 * g_minimax.abs().mean()
    # the same fixed point: both push D(G(z)) up
    assert (g_ns < 0).all() and (g_minimax < 0).all()


def test_discriminator_loss_is_bce_and_the_wasserstein_gap():
    real, fake = torch.tensor([3.0, 1.0]), torch.tensor([-1.0, 0.0])
    expected = -(torch.log(torch.sigmoid(real)).mean() + torch.log(1 - torch.sigmoid(fake)).mean())
    assert torch.allclose(discriminator_loss(real, fake, "gan"), expected)
    assert discriminator_loss(real, fake, "wasserstein").item() == pytest.approx(-(2.0 - (-0.5)))
    with pytest.raises(ValueError, match="generator loss"):
        generator_loss(fake, "hinge")


def test_gradient_penalty_is_zero_for_a_unit_slope_critic():
    w = torch.tensor([0.6, 0.8])  # ‖w‖ = 1: f(x) = w·x has gradient norm 1 everywhere
    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    assert gradient_penalty(lambda x: x @ w, real, fake).item() == pytest.approx(0.0, abs=1e-10)
    assert gradient_penalty(lambda x: x @ (3 * w), real, fake).item() == pytest.approx(4.0)  # (3 − 1)²


def test_weight_clipping_keeps_the_critic_in_the_box(data):
    trainer = trainer_for("wgan_gp", data)
    trainer.model.config.constraint = "clip"
    trainer.model.config.clip = 0.01
    trainer.d_step(torch.arange(16))
    assert all(p.abs().max() <= 0.01 + 1e-7 for p in trainer.model.discriminator.parameters())
    logs = trainer.d_step(torch.arange(16))
    assert "gp" not in logs


def test_the_conditional_generator_listens_to_the_class():
    model = tiny("cgan").eval()
    z = torch.randn(1, 8).repeat(10, 1)
    x = model.generate(z, torch.arange(10))
    assert not torch.allclose(x[0], x[1])  # same z, different class → different image
    with pytest.raises(ValueError, match="conditioned"):
        model.d_loss_step(torch.rand(2, 1, 28, 28), None)


def test_bad_gan_settings_raise_clear_errors():
    with pytest.raises(ValueError, match="g_loss"):
        make_config("gan", g_loss="hinge")
    with pytest.raises(ValueError, match="wasserstein"):
        make_config("wgan_gp", g_loss="minimax")
    with pytest.raises(ValueError, match="constraint"):
        make_config("wgan_gp", constraint="spectral")
    with pytest.raises(ValueError, match="n_critic"):
        make_config("wgan_gp", n_critic=0)
    with pytest.raises(ValueError, match="width"):
        make_config("dcgan", width=3)


def test_learning_rates_change_while_it_trains(tmp_path):
    run = Run.create(tmp_path, make_run_config("gan", model_config=TINY["gan"],
                                               train={**FAST, "seconds": 1.5, "batch_size": 32}))
    run.set_control(lr=1e-5, lr_d=3e-5)
    train_run(run)
    last = [r for r in run.metrics() if "lr_g" in r][-1]
    assert last["lr_g"] == pytest.approx(1e-5) and last["lr_d"] == pytest.approx(3e-5)
    assert run.status().control == {"lr": 1e-5, "lr_d": 3e-5}


def test_minibatch_std_lets_d_see_a_collapsed_batch():
    """With minibatch_std, D's score of an image depends on how varied its batch is; without, it does not."""
    from engine.models.gan import _ConvDiscriminator

    torch.manual_seed(0)
    x = torch.rand(8, 1, 28, 28)
    same = x[:1].repeat(8, 1, 1, 1)  # a collapsed batch: eight copies of x[0]
    for flag in (False, True):
        d = _ConvDiscriminator(4, norm="none", minibatch_std=flag)  # no BatchNorm: only the spread couples the batch
        with torch.no_grad():
            varied, collapsed = d(x)[0], d(same)[0]
        assert torch.equal(varied, collapsed) != flag
    assert build_model("dcgan", {**TINY["dcgan"], "minibatch_std": True}).critic(x).shape == (8,)
    with pytest.raises(ValueError, match="real_label"):
        make_config("dcgan", real_label=0.3)
