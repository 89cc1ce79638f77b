"""Sequence autoencoders: series x (B, T, C) → code z (B, latent_dim) → x̂ (B, T, C).

    rnn_ae, lstm_ae, gru_ae   a recurrent encoder reads x₁…x_T into hidden states h_t = Cell(x_t, h_{t−1});
                              the last one is the context vector, z = W h_T + b; a recurrent decoder unrolls
                              z back into T steps (the encoder–decoder / seq2seq architecture, Sutskever et
                              al. 2014; as an autoencoder, Srivastava et al. 2015)
    conv1d_ae                 the non-recurrent baseline: strided Conv1d + BatchNorm + LeakyReLU down,
                              ConvTranspose1d up
    seq_vae                   the recurrent encoder gives q(z|x) = N(μ, σ²); ELBO with β-weighted KL

The read-out is x̂_t = m_t + (V z)_t + R Dec_t(z, p_t): m the training series' mean (where training starts, as
PCA's x̂ = m + V z does), V z the linear path (PCA's decoder; `linear_path`), and what the recurrent decoder adds.
The decoder reads p_t = (t/(T−1), cos(π t/(T−1))) beside z (`positions`), so its state need not count the steps:
on GunPoint (T = 150, latent 2, 1,500 steps) the two together took the test error from 1.7× PCA's to 0.44×;
bench/bench_sequences.py: 0.34× (median of 3 seeds, 60 s each).

Decoders (`decoder=`): `repeat` feeds z at every step (one fused recurrent call: fast); `autoregressive`
feeds z beside the previous output x̂_{t−1}, and while training the true x_{t−1} with probability
`teacher_forcing` (Williams & Zipser 1989). The series' length T and channels C are settings that training
fills in from the dataset (engine.models.data_settings); they fix the layer sizes a checkpoint holds.

Sequence models declare trainer "sequence" (engine.train.sequences) and none of the image capabilities:
pages that ask for image autoencoders (models(encodes=True)) never offer them; models(kind="sequence")
lists them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.base import MAX_LATENT, MAX_LAYERS, Capabilities, ModelConfig, StepOutput
from engine.models.settings import setting
from engine.models.vae import ELBO_FORMULA, kl_to_standard_normal

MAX_STEPS = 10_000  # T of one series
MAX_CHANNELS = 1024  # C: seq-mnist has 28, JapaneseVowels 12
MAX_HIDDEN = 1024
SEQ_FORMULA = (r"h_t = \mathrm{Cell}(x_t, h_{t-1}),\quad z = W h_T + b,\quad "
               r"\hat{x}_t = m_t + (Vz)_t + R\,\mathrm{Dec}_t(z, p_t),\quad "
               r"\mathcal{L} = \tfrac{1}{TC}\textstyle\sum_{t,c} (x_{t,c} - \hat{x}_{t,c})^2")
CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
POSITION_FEATURES = 2  # p_t = (t/(T−1), cos(π t/(T−1))): the decoder's clock


@dataclass
class SeqConfig(ModelConfig):
    latent_dim: int = setting(16, "size of the context vector z (the bottleneck)", label="Latent size", low=1,
                              high=MAX_LATENT)
    length: int = setting(150, "steps T per series (training sets it from the dataset)", label="Steps T", low=2,
                          high=MAX_STEPS)
    channels: int = setting(1, "values per step C (training sets it from the dataset)", label="Channels C", low=1,
                            high=MAX_CHANNELS)


@dataclass
class RecurrentConfig(SeqConfig):
    hidden: int = setting(64, "hidden units of the recurrent cell (the width of h_t)", label="Hidden units", low=1,
                          high=MAX_HIDDEN)
    layers: int = setting(1, "stacked recurrent layers in the encoder and in the decoder", label="Layers", low=1,
                          high=MAX_LAYERS)
    bidirectional: bool = setting(False, "the encoder also reads the series backwards; z sees both final states",
                                  label="Bidirectional encoder")
    decoder: Literal["repeat", "autoregressive"] = setting(
        "repeat", "repeat: z is the decoder's input at every step; autoregressive: z beside the previous output",
        label="Decoder")
    teacher_forcing: float = setting(0.0, "autoregressive decoder: the share of training steps fed the true "
                                          "previous value instead of the decoder's own output", label="Teacher forcing",
                                     low=0, high=1)
    positions: bool = setting(True, "the decoder also reads where it is in the series, p_t = (t/(T−1), "
                                    "cos(π t/(T−1))), so its state need not count the steps", label="Decoder knows t")
    linear_path: bool = setting(True, "x̂ also gets V z, a linear read-out of the code (PCA's decoder); the "
                                      "recurrent decoder adds what a line cannot", label="Linear path z → x̂")


@dataclass
class SeqVAEConfig(RecurrentConfig):
    beta: float = setting(1.0, "weight of the KL term (β-VAE)", label="β", low=0, high=1000)


@dataclass
class Conv1dConfig(SeqConfig):
    channels_hidden: tuple[int, ...] = setting((32, 64), "Conv1d widths; each stride-2 layer halves T",
                                               label="Conv channels", low=1, high=256, min_len=2, max_len=2)
    kernel: int = setting(5, "Conv1d kernel width (odd)", label="Kernel", low=3, high=31)

    def validate(self) -> None:
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd (so stride 2 halves T exactly), not {self.kernel}")


# ---------------------------------------------------------------------------------------------
# the base every sequence model shares


class SequenceModel(nn.Module):
    """encode(x) → z, decode(z) → x̂, sample(n), loss_step(x) → StepOutput; x and x̂ are (B, T, C)."""

    config_cls: type[SeqConfig] = SeqConfig
    label = ""
    capabilities = Capabilities()  # no image capability: the image pages never list these
    trainer = "sequence"
    formula = SEQ_FORMULA
    description = ""
    num_classes = 0
    variational = False  # a seq_vae reports an ELBO
    has_gates = False  # an LSTM: gate_trace() shows its gates
    # One CPU thread: these small recurrent steps are latency-bound, and two threads on a busy 2-core machine fight.
    train_defaults: dict = {"batch_size": 32, "lr": 3e-3, "threads": 1}

    def __init__(self, config: SeqConfig):
        super().__init__()
        self.config = config
        self.register_buffer("latent_mean", torch.zeros(config.latent_dim))
        self.register_buffer("latent_std", torch.ones(config.latent_dim))
        # x̂ = mean training series + what the decoder adds: training starts at the mean predictor, as PCA does
        # (x̂ = m + W z) and as the dense image AEs start at the mean digit. Set by start_from_data.
        self.register_buffer("offset", torch.zeros(config.length, config.channels))

    def encode(self, x: torch.Tensor, y=None) -> torch.Tensor:
        raise NotImplementedError

    def decode_residual(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, z: torch.Tensor, y=None) -> torch.Tensor:
        return self.offset + self.decode_residual(z)  # (B, T, C)

    def forward(self, x: torch.Tensor, y=None) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def start_from_data(self, mean_series: torch.Tensor) -> None:
        """Called once before a new run's first step with the training series' mean (T, C); not on resume."""
        self.offset.copy_(mean_series)

    def check_input(self, x: torch.Tensor) -> None:
        cfg = self.config
        if x.ndim != 3 or tuple(x.shape[1:]) != (cfg.length, cfg.channels):
            raise ValueError(f"this model reads series of {cfg.length} steps × {cfg.channels} channels (B, T, C), "
                             f"got {tuple(x.shape)}; train a new one on this dataset")

    def loss_step(self, x: torch.Tensor, y=None, generator: torch.Generator | None = None) -> StepOutput:
        z = self.encode(x)  # (B, latent_dim)
        x_hat = self.decode_train(z, x, generator)  # (B, T, C)
        mse = F.mse_loss(x_hat, x)
        return StepOutput(loss=mse, x_hat=x_hat, z=z, logs={"loss": mse.detach(), "mse": mse.detach()})

    def decode_train(self, z, x, generator=None):
        """The decoder while training (an autoregressive one may see the true x); decode(z) elsewhere."""
        return self.decode(z)

    @torch.no_grad()
    def sample(self, n: int, y=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode n codes from N(latent_mean, latent_std²), the Gaussian fitted to the training codes."""
        eps = torch.randn(n, self.config.latent_dim, generator=generator).to(self.latent_mean.device)
        return self.decode(self.latent_mean + self.latent_std * eps)

    @torch.no_grad()
    def fit_latent_stats(self, z: torch.Tensor) -> None:
        self.latent_mean.copy_(z.mean(0))
        self.latent_std.copy_(z.std(0).clamp_min(1e-6))


# ---------------------------------------------------------------------------------------------
# recurrent encoder–decoders


class RecurrentAE(SequenceModel):
    """Encoder cell over x → z = W h_T + b → decoder cell unrolled T steps → per-step linear read-out."""

    config_cls = RecurrentConfig
    cell = "rnn"

    def __init__(self, config: RecurrentConfig):
        super().__init__(config)
        cfg, rnn = config, CELLS[self.cell]
        self.encoder = rnn(cfg.channels, cfg.hidden, cfg.layers, batch_first=True, bidirectional=cfg.bidirectional)
        self.to_z = nn.Linear(cfg.hidden * (2 if cfg.bidirectional else 1), self.code_width())
        # z → the decoder's first state (and an LSTM's first cell state): every layer starts from z
        self.init_state = nn.Linear(cfg.latent_dim, cfg.hidden * cfg.layers * (2 if self.cell == "lstm" else 1))
        dec_in = cfg.latent_dim + (POSITION_FEATURES if cfg.positions else 0) + \
            (cfg.channels if cfg.decoder == "autoregressive" else 0)
        self.decoder = rnn(dec_in, cfg.hidden, cfg.layers, batch_first=True)
        self.readout = nn.Linear(cfg.hidden, cfg.channels)
        self.linear = nn.Linear(cfg.latent_dim, cfg.length * cfg.channels) if cfg.linear_path else None
        t = torch.linspace(0, 1, cfg.length)
        self.register_buffer("position", torch.stack([t, torch.cos(math.pi * t)], 1), persistent=False)  # (T, 2)

    def code_width(self) -> int:
        return self.config.latent_dim

    def final_state(self, x: torch.Tensor) -> torch.Tensor:
        """h_T of the last encoder layer (both directions side by side when bidirectional): (B, H or 2H)."""
        self.check_input(x)
        _, h = self.encoder(x)
        h = h[0] if self.cell == "lstm" else h  # an LSTM returns (h_n, c_n); h_n is (layers·dirs, B, H)
        if self.config.bidirectional:
            return torch.cat([h[-2], h[-1]], dim=1)  # the last layer's forward and backward final states
        return h[-1]

    def encode(self, x, y=None):
        return self.to_z(self.final_state(x))  # (B, latent_dim): the context vector z

    def start_state(self, z: torch.Tensor):
        cfg = self.config
        s = torch.tanh(self.init_state(z))  # (B, L·H) or (B, 2·L·H)
        if self.cell == "lstm":
            h, c = s.chunk(2, dim=1)
            return (h.reshape(-1, cfg.layers, cfg.hidden).transpose(0, 1).contiguous(),
                    c.reshape(-1, cfg.layers, cfg.hidden).transpose(0, 1).contiguous())
        return s.reshape(-1, cfg.layers, cfg.hidden).transpose(0, 1).contiguous()  # (L, B, H)

    def decode_residual(self, z):
        return self._with_linear(z, self._unroll(z, None, 0.0, None))

    def decode_train(self, z, x, generator=None):
        return self.offset + self._with_linear(z, self._unroll(z, x, self.config.teacher_forcing, generator))

    def _with_linear(self, z, recurrent):
        """x̂ − m = V z + the recurrent decoder's read-out: the line PCA draws, and the bend the decoder adds."""
        if self.linear is None:
            return recurrent
        return recurrent + self.linear(z).view(recurrent.shape)

    def _inputs(self, z):
        """The decoder's input at every step: z, and where the step is when `positions` is on: (B, T, ·)."""
        B, T = z.shape[0], self.config.length
        steps = z[:, None].expand(B, T, z.shape[1])
        if not self.config.positions:
            return steps
        return torch.cat([steps, self.position[None].expand(B, T, POSITION_FEATURES)], 2)

    def _unroll(self, z, x, forcing: float, generator):
        cfg, state = self.config, self.start_state(z)
        B, T = z.shape[0], cfg.length
        inputs = self._inputs(z)  # (B, T, latent [+ 2])
        if cfg.decoder == "repeat":
            out, _ = self.decoder(inputs, state)  # (B, T, H)
            return self.readout(out)  # (B, T, C)
        if x is not None and forcing >= 1.0:  # every step sees the true x_{t−1}: one fused call
            prev = torch.cat([x.new_zeros(B, 1, cfg.channels), x[:, :-1]], dim=1)  # (B, T, C)
            out, _ = self.decoder(torch.cat([inputs, prev], 2), state)
            return self.readout(out)
        prev, outs = z.new_zeros(B, cfg.channels), []
        for t in range(T):
            out, state = self.decoder(torch.cat([inputs[:, t], prev], 1)[:, None], state)
            r_t = self.readout(out[:, 0])  # (B, C): the residual at step t
            outs.append(r_t)
            prev = x_t = r_t + self.offset[t]  # the decoder reads back its full output x̂_t
            if x is not None and forcing > 0:
                coin = torch.rand(B, 1, generator=generator, device=generator.device if generator else z.device)
                prev = torch.where(coin.to(z.device) < forcing, x[:, t], x_t)
        return torch.stack(outs, 1)  # (B, T, C)


class RNNAE(RecurrentAE):
    label = "RNN AE"
    cell = "rnn"
    description = "Elman RNN encoder → context vector z = W h_T + b → RNN decoder (tanh cells)."


class GRUAE(RecurrentAE):
    label = "GRU AE"
    cell = "gru"
    description = "GRU encoder → context vector z → GRU decoder (update and reset gates)."


LSTM_FORMULA = (r"i_t = \sigma(W_i x_t + U_i h_{t-1} + b_i),\ f_t = \sigma(W_f x_t + U_f h_{t-1} + b_f),\ "
                r"o_t = \sigma(W_o x_t + U_o h_{t-1} + b_o)",
                r"c_t = f_t \odot c_{t-1} + i_t \odot \tanh(W_g x_t + U_g h_{t-1} + b_g),\quad "
                r"h_t = o_t \odot \tanh(c_t),\quad z = W h_T + b")


class LSTMAE(RecurrentAE):
    label = "LSTM AE"
    cell = "lstm"
    has_gates = True
    formula = (*LSTM_FORMULA, SEQ_FORMULA)
    description = "LSTM encoder → context vector z = W h_T + b → LSTM decoder; gates carry long-range memory."

    @torch.no_grad()
    def gate_trace(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The first encoder layer's gates and states over one series x (T, C), stepped by hand from its weights.

        Returns input, forget, output gates, the candidate g, the cell state c and h, each (T, H). PyTorch's
        LSTM stacks its weights as [i, f, g, o] (torch.nn.LSTM docs); tests check h against nn.LSTM's own.
        """
        self.check_input(x[None])
        enc, H = self.encoder, self.config.hidden
        w_ih, w_hh = enc.weight_ih_l0, enc.weight_hh_l0  # (4H, C), (4H, H)
        b = enc.bias_ih_l0 + enc.bias_hh_l0  # (4H,)
        h, c = x.new_zeros(H), x.new_zeros(H)
        rows = {k: [] for k in ("input", "forget", "output", "candidate", "cell", "hidden")}
        for x_t in x:
            a = w_ih @ x_t + w_hh @ h + b  # (4H,)
            i, f, g, o = torch.sigmoid(a[:H]), torch.sigmoid(a[H:2 * H]), torch.tanh(a[2 * H:3 * H]), \
                torch.sigmoid(a[3 * H:])
            c = f * c + i * g
            h = o * torch.tanh(c)
            for k, v in zip(rows, (i, f, o, g, c, h)):
                rows[k].append(v)
        return {k: torch.stack(v) for k, v in rows.items()}  # each (T, H)


# ---------------------------------------------------------------------------------------------
# the sequence VAE


class SeqVAE(RecurrentAE):
    """A GRU encoder gives μ and log σ² of q(z|x); z = μ + σ·ε; the decoder as the GRU AE's."""

    label = "sequence VAE"
    cell = "gru"
    config_cls = SeqVAEConfig
    variational = True
    formula = (ELBO_FORMULA, SEQ_FORMULA)
    description = "Sequence VAE: GRU encoder → q(z|x) = N(μ, σ²) → GRU decoder; ELBO = reconstruction + β·KL."

    def code_width(self) -> int:
        return 2 * self.config.latent_dim  # μ and log σ²

    def encode_dist(self, x):
        mu, logvar = self.to_z(self.final_state(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-12, 12)

    def encode(self, x, y=None):
        return self.encode_dist(x)[0]  # the mean μ is the deterministic code

    def loss_step(self, x, y=None, generator=None) -> StepOutput:
        mu, logvar = self.encode_dist(x)  # (B, latent_dim) each
        eps = torch.randn(mu.shape, generator=generator, device=generator.device if generator else mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps.to(mu.device)  # the reparameterisation trick
        x_hat = self.decode_train(z, x, generator)
        sse = (x_hat - x).pow(2).flatten(1).sum(1)  # (B,) −log p(x|z) for a unit Gaussian, up to ½ and a constant
        kl = kl_to_standard_normal(mu, logvar)  # (B,)
        n = x[0].numel()
        loss = (0.5 * sse + self.config.beta * kl).mean() / n  # per value, so Adam's lr suits every T·C
        logs = {"loss": loss.detach(), "rec": (0.5 * sse).mean().detach(), "kl": kl.mean().detach(),
                "elbo": -(0.5 * sse + kl).mean().detach(), "mse": sse.mean().detach() / n}
        return StepOutput(loss=loss, x_hat=x_hat, z=z, logs=logs)

    @torch.no_grad()
    def sample(self, n, y=None, generator=None):
        z = torch.randn(n, self.config.latent_dim, generator=generator).to(self.latent_mean.device)
        return self.decode(z)  # z ~ N(0, I), the prior


# ---------------------------------------------------------------------------------------------
# the 1-D convolutional baseline


class Conv1dAE(SequenceModel):
    """(B, T, C) → Conv1d s2 → Conv1d s2 → linear → z → linear → ConvTranspose1d ×2 → cropped to T."""

    label = "1-D conv AE"
    config_cls = Conv1dConfig
    description = "1-D convolutional autoencoder: strided Conv1d+BatchNorm+LeakyReLU down, ConvTranspose1d up."

    def __init__(self, config: Conv1dConfig):
        super().__init__(config)
        c1, c2 = config.channels_hidden
        k, p = config.kernel, config.kernel // 2
        self.t4 = math.ceil(math.ceil(config.length / 2) / 2)  # T after two stride-2 convs
        self.down = nn.Sequential(
            nn.Conv1d(config.channels, c1, k, stride=2, padding=p), nn.BatchNorm1d(c1), nn.LeakyReLU(0.2),
            nn.Conv1d(c1, c2, k, stride=2, padding=p), nn.BatchNorm1d(c2), nn.LeakyReLU(0.2), nn.Flatten())
        self.to_z = nn.Linear(c2 * self.t4, config.latent_dim)
        self.up = nn.Sequential(
            nn.Linear(config.latent_dim, c2 * self.t4), nn.Unflatten(1, (c2, self.t4)), nn.LeakyReLU(0.2),
            nn.ConvTranspose1d(c2, c1, 4, stride=2, padding=1), nn.BatchNorm1d(c1), nn.LeakyReLU(0.2),
            nn.ConvTranspose1d(c1, config.channels, 4, stride=2, padding=1))  # kernel 4, stride 2: ×2 exactly

    def encode(self, x, y=None):
        self.check_input(x)
        return self.to_z(self.down(x.transpose(1, 2)))  # (B, C, T) for Conv1d → (B, latent_dim)

    def decode_residual(self, z):
        return self.up(z)[:, :, :self.config.length].transpose(1, 2)  # (B, C, 4·t4) → (B, T, C)


SEQUENCE_MODELS = {"rnn_ae": RNNAE, "lstm_ae": LSTMAE, "gru_ae": GRUAE, "conv1d_ae": Conv1dAE, "seq_vae": SeqVAE}
