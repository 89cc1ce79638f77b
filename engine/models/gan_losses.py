"""The GAN family's losses, as plain functions of the discriminator's logits: the image GANs and the
2-D playground (engine.lab.gan_playground) train with exactly these.

    discriminator   −[log D(x) + log(1 − D(G(z)))]   or, for a critic,  −[f(x) − f(G(z))]
    generator       −log D(G(z)) (non-saturating), log(1 − D(G(z))) (minimax), −f(G(z)) (Wasserstein)
    penalty         E[(‖∇f(x̃)‖₂ − 1)²] on points x̃ between real and generated images (WGAN-GP)
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from engine.device import random_tensor

GLoss = Literal["non_saturating", "minimax"]
G_LOSSES = ("non_saturating", "minimax")


G_LOSS_FORMULA = (r"\mathcal{L}_G^{\text{minimax}} = \mathbb{E}_z\big[\log\big(1 - D(G(z))\big)\big]"
                  r"\qquad \mathcal{L}_G^{\text{non-saturating}} = -\,\mathbb{E}_z\big[\log D(G(z))\big]")
WASSERSTEIN_FORMULA = (r"\mathcal{L}_f = \mathbb{E}_z[f(G(z))] - \mathbb{E}_x[f(x)]"
                       r" + \lambda\, \mathbb{E}_{\hat{x}}"
                       r"\big[(\lVert \nabla_{\hat{x}} f(\hat{x}) \rVert_2 - 1)^2\big],"
                       r"\quad \hat{x} = \epsilon x + (1 - \epsilon) G(z),"
                       r" \qquad \mathcal{L}_G = -\,\mathbb{E}_z[f(G(z))]")
CONDITIONAL_FORMULA = (r"\min_G \max_D \; \mathbb{E}_{x, y}\big[\log D(x \mid y)\big]"
                       r" + \mathbb{E}_{z, y}\big[\log\big(1 - D(G(z \mid y) \mid y)\big)\big]")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, loss: str = "gan",
                       real_label: float = 1.0) -> torch.Tensor:
    """The discriminator's (critic's) loss, to minimise.

    gan:          −[log D(x) + log(1 − D(G(z)))]  with D = sigmoid(logits), i.e. BCE with labels 1 / 0
                  (real_label < 1: one-sided label smoothing, BCE against that target for real images)
    wasserstein:  −[f(x) − f(G(z))]               the critic maximises the gap
    """
    if loss == "wasserstein":
        return fake_logits.mean() - real_logits.mean()
    return (F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, real_label))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def generator_loss(fake_logits: torch.Tensor, loss: str = "non_saturating") -> torch.Tensor:
    """The generator's loss, to minimise.

    non_saturating:  −log D(G(z))           strong gradients while D rejects the fakes
    minimax:          log(1 − D(G(z)))      the game's own objective; saturates when D(G(z)) ≈ 0
    wasserstein:     −f(G(z))
    """
    if loss == "wasserstein":
        return -fake_logits.mean()
    if loss == "minimax":
        return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))  # = E log(1 − D)
    if loss == "non_saturating":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    raise ValueError(f"unknown generator loss {loss!r}: choose one of {', '.join(G_LOSSES)} or wasserstein")


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """E[(‖∇f(x̃)‖₂ − 1)²] on x̃ = εx + (1 − ε)G(z), ε ~ U(0, 1) per example (Gulrajani et al.).

    critic: a callable x → scores (B,); real, fake: (B, …) on the same device.
    """
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = random_tensor(shape, generator, real.device)
    mixed = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
