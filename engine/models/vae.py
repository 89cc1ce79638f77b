"""Variational autoencoders (Kingma & Welling 2014): dense, convolutional and conditional.

The encoder gives q(z|x) = N(μ, diag(σ²)); training maximises the ELBO

    ELBO(x) = E_q[log p(x|z)] − KL(q(z|x) ‖ N(0, I))

with z = μ + σ·ε, ε ~ N(0, I) (the reparameterisation trick) so gradients reach μ and σ.
β weighs the KL term (β-VAE, Higgins et al. 2017). Losses are per image, summed over pixels,
so the reported ELBO is in nats per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.ae import DenseAEConfig
from engine.models.base import (IMAGE_PIXELS, IMAGE_SHAPE, MAX_LATENT, MAX_LAYERS, MAX_WIDTH, Capabilities,
                                ReconstructionModel, StepOutput, mlp, one_hot)
from engine.models.conv_ae import ConvAEConfig, conv_decoder, conv_encoder
from engine.models.settings import setting

ELBO_FORMULA = (r"-\mathrm{ELBO} = -\mathbb{E}_{q(z|x)}[\log p(x|z)]"
                r" + \beta\,\mathrm{KL}\big(q(z|x)\,\|\,\mathcal{N}(0, I)\big)")


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) summed over latent dims, per sample (B,).

    Closed form, Kingma & Welling 2014, appendix B: −½ Σ (1 + log σ² − μ² − σ²).
    """
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)


class VAEMixin:
    """ELBO loss step and prior sampling; the class provides encode_dist() and decode_logits()."""

    capabilities = Capabilities(encodes=True, generates=True, prior=True, variational=True)
    formula = ELBO_FORMULA

    def encode_dist(self, x, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def encode(self, x, y=None):
        return self.encode_dist(x, y)[0]  # the mean μ is the deterministic code

    def reparameterise(self, mu, logvar, generator=None):
        eps = torch.randn(mu.shape, generator=generator, device=generator.device if generator else mu.device)
        return mu + torch.exp(0.5 * logvar) * eps.to(mu.device)

    def loss_step(self, x, y=None, generator=None) -> StepOutput:
        x_in = self.corrupt(x, generator)
        mu, logvar = self.encode_dist(x_in, y)  # (B, latent_dim) each
        z = self.reparameterise(mu, logvar, generator)  # one-sample Monte Carlo estimate of E_q
        logits = self.decode_logits(z, y)  # (B, 1, 28, 28)
        x_hat = torch.sigmoid(logits)
        # −log p(x|z) per image: Bernoulli (BCE) or Gaussian with unit variance up to a constant (½·SSE)
        bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)  # (B,)
        sse = (x_hat - x).pow(2).flatten(1).sum(1)  # (B,)
        rec = bce if self.config.loss == "bce" else 0.5 * sse
        kl = kl_to_standard_normal(mu, logvar)  # (B,)
        loss = (rec + self.config.beta * kl).mean()
        logs = {
            "loss": loss.detach(),
            "rec": rec.mean().detach(),
            "kl": kl.mean().detach(),
            "elbo": -(bce + kl).mean().detach(),  # Bernoulli ELBO, nats per image, whatever the loss
            "mse": sse.mean().detach() / IMAGE_PIXELS,
        }
        return StepOutput(loss=loss, x_hat=x_hat, z=z, logs=logs)

    @torch.no_grad()
    def sample(self, n, y=None, generator=None):
        """Decode z ~ N(0, I), the prior the KL term pulls q(z|x) towards."""
        device = self.latent_mean.device
        z = torch.randn(n, self.config.latent_dim, generator=generator,
                        device=generator.device if generator else device).to(device)
        return self.decode(z, self._sample_labels(n, y))


# ---------------------------------------------------------------------------------------------
# dense VAE


@dataclass
class VariationalFields:
    """The settings every VAE adds to its autoencoder's config (mixed in before it)."""

    latent_dim: int = setting(16, "size of the code z", label="Latent size", low=1, high=MAX_LATENT)
    loss: Literal["bce", "mse"] = setting("bce", "reconstruction term −log p(x|z): 'bce' (Bernoulli) or 'mse' "
                                          "(Gaussian)", label="Reconstruction loss")
    beta: float = setting(1.0, "weight β of the KL term; β > 1 trades reconstruction for a smoother latent "
                               "space", label="KL weight β", low=0, high=1e6)


@dataclass
class VAEConfig(VariationalFields, DenseAEConfig):
    hidden: tuple[int, ...] = setting((512,), "hidden layer widths (the decoder mirrors them)", label="Hidden layers",
                                      low=1, high=MAX_WIDTH, max_len=MAX_LAYERS)


class VAE(VAEMixin, ReconstructionModel):
    label = "VAE"
    config_cls = VAEConfig
    description = "Variational autoencoder: Gaussian q(z|x), reparameterisation, ELBO = reconstruction − β·KL."

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        cond = self.num_classes if self.capabilities.conditional else 0
        trunk = [IMAGE_PIXELS + cond, *config.hidden]
        self.trunk = mlp(trunk, config.activation, last_act=config.activation)
        self.to_mu = nn.Linear(trunk[-1], config.latent_dim)
        self.to_logvar = nn.Linear(trunk[-1], config.latent_dim)
        self.decoder = mlp([config.latent_dim + cond, *config.hidden[::-1], IMAGE_PIXELS], config.activation)

    def _condition(self, v, y):
        return torch.cat([v, one_hot(y, self.num_classes)], 1) if self.capabilities.conditional else v

    def encode_dist(self, x, y=None):
        h = self.trunk(self._condition(x.flatten(1), y))  # (B, hidden[-1])
        return self.to_mu(h), self.to_logvar(h)

    def decode_logits(self, z, y=None):
        return self.decoder(self._condition(z, y)).view(-1, *IMAGE_SHAPE)


# ---------------------------------------------------------------------------------------------
# conditional VAE (Sohn et al. 2015): encoder and decoder both see the one-hot label


@dataclass
class CVAEConfig(VAEConfig):
    pass


class CVAE(VAE):
    label = "conditional VAE"
    config_cls = CVAEConfig
    capabilities = Capabilities(encodes=True, generates=True, prior=True, variational=True, conditional=True)
    formula = ELBO_FORMULA.replace("|x)", "|x, y)").replace("|z)", "|z, y)")
    description = "Conditional VAE: encoder and decoder see the label, so you can ask for a class."


# ---------------------------------------------------------------------------------------------
# convolutional VAE


@dataclass
class ConvVAEConfig(VariationalFields, ConvAEConfig):
    pass


class ConvVAE(VAEMixin, ReconstructionModel):
    label = "conv VAE"
    config_cls = ConvVAEConfig
    description = "Convolutional VAE: the conv autoencoder's layers with a Gaussian code and β-weighted KL."
    train_defaults = {"batch_size": 64, "lr": 2e-3}

    def __init__(self, config: ConvVAEConfig):
        super().__init__(config)
        self.trunk, width = conv_encoder(config.channels, config.negative_slope)
        self.to_mu = nn.Linear(width, config.latent_dim)
        self.to_logvar = nn.Linear(width, config.latent_dim)
        self.decoder = conv_decoder(config.latent_dim, config.channels, config.negative_slope)

    def encode_dist(self, x, y=None):
        h = self.trunk(x)  # (B, width)
        return self.to_mu(h), self.to_logvar(h)

    def decode_logits(self, z, y=None):
        return self.decoder(z)  # (B, 1, 28, 28)
