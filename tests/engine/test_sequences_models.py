"""The model suite of tests/engine/test_models.py, over every sequence model (series (B, T, C) instead of images),
plus the LSTM's hand-stepped gates against nn.LSTM itself."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from engine.models import build_model, data_settings, make_config, models
from engine.runs import load_model_from_checkpoint, save_checkpoint

SEQUENCE = models(kind="sequence")
B, T, C = 6, 12, 3
VARIANTS = [(name, {}) for name in SEQUENCE] + [
    ("lstm_ae", {"bidirectional": True, "layers": 2}),
    ("gru_ae", {"decoder": "autoregressive", "teacher_forcing": 0.5}),
    ("rnn_ae", {"decoder": "autoregressive", "teacher_forcing": 1.0}),
    ("lstm_ae", {"positions": False, "linear_path": False}),  # the plain seq2seq decoder
    ("gru_ae", {"decoder": "autoregressive", "positions": False}),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in o.items())}" if o else n for n, o in VARIANTS]


@pytest.fixture
def batch():
    return torch.randn(B, T, C, generator=torch.Generator().manual_seed(0))


def tiny(name: str, **options):
    torch.manual_seed(0)
    return build_model(name, latent_dim=4, length=T, channels=C, **({"hidden": 8} if "hidden" in
                                                                     _fields(name) else {}), **options)


def _fields(name):
    from engine.models import get_model_class

    return get_model_class(name).config_cls.__dataclass_fields__


def test_the_family_is_registered_apart_from_the_image_models():
    assert SEQUENCE == ["rnn_ae", "lstm_ae", "gru_ae", "conv1d_ae", "seq_vae"]
    assert not set(SEQUENCE) & set(models(encodes=True)) and not set(SEQUENCE) & set(models(adversarial=True))


@pytest.mark.parametrize("name, options", VARIANTS, ids=IDS)
class TestEverySequenceModel:
    def test_shapes(self, name, options, batch):
        model = tiny(name, **options).eval()
        z = model.encode(batch)
        assert z.shape == (B, 4)
        x_hat = model.decode(z)
        assert x_hat.shape == (B, T, C)
        assert torch.allclose(model(batch), x_hat)
        assert model.sample(3).shape == (3, T, C)

    def test_loss_is_finite_and_named(self, name, options, batch):
        out = tiny(name, **options).train().loss_step(batch, generator=torch.Generator().manual_seed(0))
        assert out.loss.dim() == 0 and torch.isfinite(out.loss)
        assert out.x_hat.shape == (B, T, C) and out.z.shape == (B, 4)
        assert {"loss", "mse"} <= set(out.logs) and all(torch.isfinite(v) for v in out.logs.values())

    def test_gradients_reach_every_parameter(self, name, options, batch):
        model = tiny(name, **options).train()
        model.loss_step(batch, generator=torch.Generator().manual_seed(0)).loss.backward()
        for pname, p in model.named_parameters():
            assert p.grad is not None, f"{pname} got no gradient"
            assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname

    def test_one_step_changes_every_weight(self, name, options, batch):
        model = tiny(name, **options).train()
        before = [p.detach().clone() for p in model.parameters()]
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        model.loss_step(batch, generator=torch.Generator().manual_seed(0)).loss.backward()
        opt.step()
        assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))

    def test_save_load_gives_identical_outputs(self, name, options, batch, tmp_path):
        model = tiny(name, **options)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(3):
            opt.zero_grad()
            model.train().loss_step(batch).loss.backward()
            opt.step()
        model.fit_latent_stats(torch.randn(32, 4))
        model.eval()
        path = tmp_path / "step_00000003.safetensors"
        save_checkpoint(path, model, {"model": name, "model_config": dataclasses.asdict(model.config), "step": 3,
                                      "epoch": 0})
        loaded, header = load_model_from_checkpoint(path)
        assert header["model"] == name
        with torch.no_grad():
            assert torch.equal(model.encode(batch), loaded.encode(batch))
            assert torch.equal(model(batch), loaded(batch))
            g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
            assert torch.equal(model.sample(4, generator=g1), loaded.sample(4, generator=g2))

    def test_config_round_trips_through_json(self, name, options):
        config = make_config(name, {"latent_dim": 3, **options})
        assert make_config(name, json.loads(json.dumps(dataclasses.asdict(config)))) == config


def test_lstm_gates_stepped_by_hand_match_nn_lstm():
    """h_t from i, f, g, o computed off the weights equals the hidden states nn.LSTM returns."""
    model = tiny("lstm_ae").eval()
    x = torch.randn(T, C, generator=torch.Generator().manual_seed(1))
    trace = model.gate_trace(x)
    with torch.no_grad():
        h_ref, _ = model.encoder(x[None])  # (1, T, H)
    assert torch.allclose(trace["hidden"], h_ref[0], atol=1e-5)
    for gate in ("input", "forget", "output"):
        assert trace[gate].shape == (T, 8) and 0 <= trace[gate].min() and trace[gate].max() <= 1
    assert torch.allclose(trace["hidden"], trace["output"] * torch.tanh(trace["cell"]), atol=1e-6)


def test_teacher_forcing_feeds_the_true_previous_value_only_while_training(batch):
    model = tiny("gru_ae", decoder="autoregressive", teacher_forcing=1.0)
    z = model.encode(batch)
    forced = model.decode_train(z, batch)
    free = model.decode(z)
    assert not torch.allclose(forced, free)
    assert torch.allclose(forced[:, 0], free[:, 0])  # step 1 sees no previous value either way


def test_the_decoder_is_the_mean_plus_a_linear_path_plus_what_the_recurrent_part_adds(batch):
    """x̂ = m + V z + R Dec(z, p): with the recurrent read-out zeroed, x̂ − m is exactly V z (PCA's decoder shape);
    with the linear path off, x̂ − m is the recurrent part alone."""
    model = tiny("lstm_ae").eval()
    mean = torch.randn(T, C, generator=torch.Generator().manual_seed(2))
    model.start_from_data(mean)
    with torch.no_grad():
        model.readout.weight.zero_(), model.readout.bias.zero_()
        z = model.encode(batch)
        assert torch.allclose(model.decode(z) - mean, model.linear(z).view(B, T, C), atol=1e-6)
    plain = tiny("lstm_ae", linear_path=False)
    assert plain.linear is None and not any("linear" in k for k in plain.state_dict())


def test_the_decoder_is_told_where_it_is_in_the_series(batch):
    """positions=True: the decoder reads p_t = (t/(T−1), cos(π t/(T−1))) beside z, so two steps with the same z
    and the same state see different inputs; the clock is not a weight (a checkpoint does not hold it)."""
    model = tiny("lstm_ae")
    z = model.encode(batch)
    inputs = model._inputs(z)
    assert inputs.shape == (B, T, 4 + 2)
    assert torch.allclose(inputs[0, :, 4], torch.linspace(0, 1, T))
    assert torch.allclose(inputs[0, :, 5], torch.cos(torch.pi * torch.linspace(0, 1, T)), atol=1e-6)
    assert torch.allclose(inputs[:, :, :4], z[:, None].expand(B, T, 4))
    assert "position" not in model.state_dict()
    assert tiny("lstm_ae", positions=False)._inputs(z).shape == (B, T, 4)


def test_wrong_shapes_and_settings_are_refused_clearly(batch):
    with pytest.raises(ValueError, match="12 steps × 3 channels"):
        tiny("lstm_ae").encode(torch.randn(2, 10, 3))
    with pytest.raises(ValueError, match="kernel must be odd"):
        build_model("conv1d_ae", kernel=4)
    with pytest.raises(ValueError, match="holds images"):
        data_settings("lstm_ae", "mnist-5k")
    assert data_settings("lstm_ae", "basic-motions") == {"length": 100, "channels": 6}
    assert data_settings("conv_ae", "mnist-5k") == {}
