"""The GAN family: a generator G(z) against a discriminator (or critic) D(x).

The minimax game of Goodfellow et al.:

    min_G max_D  E_x[log D(x)] + E_z[log(1 − D(G(z)))]

D is trained to tell real images from generated ones; G is trained to fool it. With the
*minimax* generator loss G minimises log(1 − D(G(z))), whose gradient vanishes while D easily
rejects the fakes (early in training); the *non-saturating* loss −log D(G(z)) has the same fixed
point and strong gradients there. The Wasserstein GAN replaces D by a 1-Lipschitz critic f and
the game by

    min_G max_f  E_x[f(x)] − E_z[f(G(z))]      (≈ the earth mover's distance W(p_data, p_G))

with the Lipschitz constraint enforced by a gradient penalty λ·(‖∇f(x̃)‖ − 1)² on points x̃
between real and fake images (WGAN-GP), or by clipping the critic's weights (the original WGAN).

Every adversarial model provides:

    generate(z, y=None) -> x        z: (B, latent_dim)  x: (B, 1, 28, 28) in [0, 1]
    sample(n, y=None, generator=None) -> x   images from z ~ N(0, I)
    critic(x, y=None) -> logits     x: (B, 1, 28, 28) in [0, 1]  logits: (B,)
    d_loss_step(x, y, generator) -> AdversarialStep   the discriminator's loss on a real batch
    g_loss_step(n, y, generator) -> AdversarialStep   the generator's loss on n fresh samples

The loss functions are plain functions (engine.models.gan_losses) so the 2-D playground uses exactly the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from engine.device import random_tensor
from engine.models.base import (IMAGE_PIXELS, MAX_CHANNELS, MAX_CLASSES, MAX_LATENT, MAX_LAYERS, MAX_WIDTH,
                                Capabilities, ModelConfig, mlp, one_hot)
from engine.models.gan_losses import (CONDITIONAL_FORMULA, G_LOSS_FORMULA, WASSERSTEIN_FORMULA, GLoss,
                                      discriminator_loss, generator_loss, gradient_penalty)
from engine.models.settings import setting

# ---------------------------------------------------------------------------------------------
# configs


@dataclass
class GANConfig(ModelConfig):
    latent_dim: int = setting(100, "size of the noise vector z ~ N(0, I) that the generator turns into an "
                                   "image", label="Noise size", low=1, high=MAX_LATENT)
    hidden: tuple[int, ...] = setting((128,), "hidden layer sizes of the generator (the discriminator mirrors "
                                              "them)", label="Hidden layers", low=1, high=MAX_WIDTH,
                                      max_len=MAX_LAYERS)
    g_loss: GLoss = setting("non_saturating", "generator loss: non_saturating (−log D(G(z))) or minimax (log(1 − "
                            "D(G(z))))", label="Generator loss")
    real_label: float = setting(1.0, "D's target for real images; 0.9 is one-sided label smoothing (a less "
                                     "overconfident D)", label="Real label", low=0.5, low_open=True, high=1)


@dataclass
class DCGANConfig(GANConfig):
    latent_dim: int = setting(64, "size of the noise vector z ~ N(0, I) that the generator turns into an "
                                  "image", label="Noise size", low=1, high=MAX_LATENT)
    width: int = setting(32, "channels of the narrower convolution layer (the other has twice as many); 32 suits a "
                             "CPU", label="Conv width", low=4, high=MAX_CHANNELS // 2)
    hidden: tuple[int, ...] = setting((), "unused by the convolutional "
                                          "models", label="Hidden layers", low=1, high=MAX_WIDTH,
                                      max_len=MAX_LAYERS)
    minibatch_std: bool = setting(False, "D also sees its features' spread across the batch (a collapsed G's batch is "
                                         "uniform)", label="Minibatch spread")

    def validate(self) -> None:
        super().validate()
        if self.width % 2:
            raise ValueError(f"width must be an even number of channels, not {self.width}")


@dataclass
class WGANGPConfig(DCGANConfig):
    g_loss: Literal["wasserstein"] = setting("wasserstein", "the generator minimises −f(G(z)) (fixed for a Wasserstein "
                                             "GAN)", label="Generator loss")
    constraint: Literal["gp", "clip"] = setting("gp", "how the critic is kept 1-Lipschitz: gp (gradient penalty) or "
                                                "clip (weight clipping)", label="Lipschitz constraint")
    gp_weight: float = setting(10.0, "λ of the gradient penalty λ·(‖∇f(x̃)‖ − 1)²", label="Penalty weight λ",
                               low=0, high=1e6)
    clip: float = setting(0.01, "weight clipping bound c (constraint = clip): every critic weight stays in [−c, "
                                "c]", label="Clip bound c", low=0, low_open=True, high=100)
    n_critic: int = setting(5, "critic updates per generator update", label="Critic steps per G step",
                            low=1, high=100)


@dataclass
class CGANConfig(DCGANConfig):
    num_classes: int = setting(10, "classes the generator and the discriminator are conditioned on", label="Classes",
                               low=1, high=MAX_CLASSES)


# ---------------------------------------------------------------------------------------------
# outputs


@dataclass
class AdversarialStep:
    loss: torch.Tensor  # scalar to minimise (the discriminator's or the generator's)
    logs: dict[str, torch.Tensor] = field(default_factory=dict)  # named detached scalars for metrics.jsonl


# ---------------------------------------------------------------------------------------------
# the base


class AdversarialModel(nn.Module):
    """A generator and a discriminator and the game between them; subclasses build the two nets.

    The generator ends in tanh (images in [−1, 1], as DCGAN prescribes); `generate` maps them to
    [0, 1] like every other image in the engine, and `critic` maps real images the other way.
    """

    config_cls: type[GANConfig] = GANConfig
    label = ""  # a short name for people ("DCGAN"); the registry name when empty
    capabilities = Capabilities(generates=True, prior=True, adversarial=True)
    trainer = "adversarial"
    formula = G_LOSS_FORMULA
    description = ""
    num_classes = 10
    n_critic = 1  # discriminator updates per generator update
    train_defaults: dict = {"lr": 2e-4, "beta1": 0.5, "batch_size": 64}

    generator: nn.Module  # (z (B, latent_dim), y one-hot (B, K) or None) → (B, 1, 28, 28) in [−1, 1]
    discriminator: nn.Module  # (x (B, 1, 28, 28) in [−1, 1], y one-hot or None) → logits (B,)

    def __init__(self, config: GANConfig):
        super().__init__()
        self.config = config
        self.register_buffer("_device_probe", torch.zeros(()), persistent=False)

    @property
    def device(self) -> torch.device:
        return self._device_probe.device

    # -- the interface -------------------------------------------------------------------------

    @property
    def output_keys(self) -> tuple[str, str]:
        """The log names of the discriminator's mean output on real and on generated images."""
        return ("critic_real", "critic_fake") if self.capabilities.wasserstein else ("d_real", "d_fake")

    def d_output(self, logits: torch.Tensor) -> torch.Tensor:
        """What the discriminator says: D(x) = σ(logit), a probability; a critic's score f(x) as it is."""
        return logits if self.capabilities.wasserstein else torch.sigmoid(logits)

    def _labels(self, y: torch.Tensor | None, n: int) -> torch.Tensor | None:
        if not self.capabilities.conditional:
            return None
        if y is None:  # cycle through the classes so a grid shows each one
            y = torch.arange(n, device=self.device) % self.num_classes
        return one_hot(y.to(self.device), self.num_classes)  # (B, K)

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return (self.generator(z, self._labels(y, len(z))) + 1) / 2  # (B, 1, 28, 28) in [0, 1]

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.generate(z, y)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.generate(z, y)

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(0, I): (n, latent_dim)."""
        return random_tensor((n, self.config.latent_dim), generator, self.device, normal=True)

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """n images from z ~ N(0, I) (of class y for a conditional model; every class in turn when None)."""
        return self.generate(self.noise(n, generator), y)

    def critic(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The discriminator's logits (the critic's score for a WGAN) of images x in [0, 1]."""
        return self.discriminator(x * 2 - 1, self._labels(y, len(x)))  # (B,)

    # -- the game ------------------------------------------------------------------------------

    def d_loss_step(self, x: torch.Tensor, y: torch.Tensor | None = None,
                    generator: torch.Generator | None = None) -> AdversarialStep:
        """The discriminator's loss on a real batch x (B, 1, 28, 28) in [0, 1] and as many fakes."""
        n = len(x)
        if self.capabilities.conditional and y is None:
            raise ValueError("this model is conditioned on the label: pass the real images' classes y")
        labels = self._labels(y, n)
        with torch.no_grad():
            fake = self.generator(self.noise(n, generator), labels)  # (B, 1, 28, 28) in [−1, 1]
        real = x * 2 - 1
        real_logits = self.discriminator(real, labels)
        fake_logits = self.discriminator(fake, labels)
        wasserstein = self.capabilities.wasserstein
        loss = discriminator_loss(real_logits, fake_logits, "wasserstein" if wasserstein else "gan",
                                  self.config.real_label)
        real_key, fake_key = self.output_keys
        # D(x) ↑ 1 and D(G(z)) ↓ 0 when D wins; a critic's mean scores E f(x) and E f(G(z))
        logs = {"d_loss": loss.detach(), real_key: self.d_output(real_logits).mean().detach(),
                fake_key: self.d_output(fake_logits).mean().detach()}
        if wasserstein:
            logs["wasserstein"] = (real_logits.mean() - fake_logits.mean()).detach()  # E f(x) − E f(G(z))
        extra = self.d_penalty(real, fake, labels, generator)
        if extra is not None:
            loss = loss + extra[0]
            logs.update(extra[1])
        return AdversarialStep(loss=loss, logs=logs)

    def d_penalty(self, real, fake, labels, generator):
        """Extra critic term (the gradient penalty of WGAN-GP): (value, logs) or None."""
        return None

    def g_loss_step(self, n: int, y: torch.Tensor | None = None,
                    generator: torch.Generator | None = None) -> AdversarialStep:
        """The generator's loss on n fresh samples (classes y, or drawn uniformly when conditional)."""
        if self.capabilities.conditional and y is None:
            y = (random_tensor((n,), generator, self.device) * self.num_classes).long().clamp(max=self.num_classes - 1)
        labels = self._labels(y, n)
        fake_logits = self.discriminator(self.generator(self.noise(n, generator), labels), labels)
        loss = generator_loss(fake_logits, self.config.g_loss)
        logs = {"g_loss": loss.detach()}
        if not self.capabilities.wasserstein:
            logs["d_fake_g"] = torch.sigmoid(fake_logits).mean().detach()  # D(G(z)) as the generator saw it
        return AdversarialStep(loss=loss, logs=logs)

    def after_d_step(self) -> None:
        """Called after each discriminator update (weight clipping lives here)."""


# ---------------------------------------------------------------------------------------------
# the nets


class _DenseGenerator(nn.Module):
    def __init__(self, latent_dim: int, hidden: tuple[int, ...], cond: int = 0):
        super().__init__()
        self.net = mlp((latent_dim + cond, *hidden, IMAGE_PIXELS), "leaky_relu", last_act="tanh")

    def forward(self, z, y1h=None):
        h = z if y1h is None else torch.cat([z, y1h], 1)
        return self.net(h).view(-1, 1, 28, 28)


class _DenseDiscriminator(nn.Module):
    def __init__(self, hidden: tuple[int, ...], cond: int = 0):
        super().__init__()
        self.net = mlp((IMAGE_PIXELS + cond, *reversed(hidden), 1), "leaky_relu")

    def forward(self, x, y1h=None):
        h = x.flatten(1) if y1h is None else torch.cat([x.flatten(1), y1h], 1)
        return self.net(h).squeeze(1)


class _ConvGenerator(nn.Module):
    """z (+ one-hot y) → Linear → (2w, 7, 7) → ConvT → (w, 14, 14) → ConvT → (1, 28, 28), tanh."""

    def __init__(self, latent_dim: int, width: int, cond: int = 0, batchnorm: bool = True):
        super().__init__()
        w = width
        norm = (lambda c: nn.BatchNorm2d(c)) if batchnorm else (lambda c: nn.Identity())
        self.fc = nn.Sequential(nn.Linear(latent_dim + cond, 2 * w * 7 * 7, bias=not batchnorm),
                                nn.BatchNorm1d(2 * w * 7 * 7) if batchnorm else nn.Identity(), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=not batchnorm), norm(w), nn.ReLU(),  # (w, 14, 14)
            nn.ConvTranspose2d(w, 1, 4, 2, 1), nn.Tanh(),  # (1, 28, 28)
        )
        self.width = w

    def forward(self, z, y1h=None):
        h = z if y1h is None else torch.cat([z, y1h], 1)
        return self.net(self.fc(h).view(-1, 2 * self.width, 7, 7))


class _ConvDiscriminator(nn.Module):
    """(1 + K label planes, 28, 28) → Conv → (w/2·… ) strided convolutions → logits (B,)."""

    def __init__(self, width: int, cond: int = 0, norm: str = "batch", bias: bool = True,
                 minibatch_std: bool = False):
        super().__init__()
        w = width
        # batch statistics always, in eval mode too: D sees real and fake batches apart while training, and
        # running averages over both would score a batch of real images as neither
        norms = {"batch": lambda c: nn.BatchNorm2d(c, track_running_stats=False), "layer": lambda c: nn.GroupNorm(1, c),
                 "none": lambda c: nn.Identity()}
        self.features = nn.Sequential(
            nn.Conv2d(1 + cond, w, 4, 2, 1), nn.LeakyReLU(0.2),  # (w, 14, 14)
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=norm == "none"), norms[norm](2 * w), nn.LeakyReLU(0.2),  # (2w, 7, 7)
        )
        self.minibatch_std = minibatch_std
        extra = 1 if minibatch_std else 0
        self.head = nn.Sequential(nn.Flatten(), nn.Linear((2 * w + extra) * 7 * 7, 1, bias=bias))

    def forward(self, x, y1h=None):
        if y1h is not None:  # the label as constant planes beside the image
            x = torch.cat([x, y1h[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
        h = self.features(x)  # (B, 2w, 7, 7)
        if self.minibatch_std:  # how varied the batch is, as one more plane: a collapsed G's batch is uniform
            spread = h.std(0, unbiased=False).mean() if len(h) > 1 else h.new_zeros(())
            h = torch.cat([h, spread.expand(len(h), 1, *h.shape[2:])], 1)
        return self.head(h).squeeze(1)


def _dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: weights ~ N(0, 0.02), BatchNorm scales ~ N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------------------------------
# the variants


class GAN(AdversarialModel):
    """The lecture's GAN: dense G 100 → 128 (LeakyReLU 0.2) → 784 (tanh), dense D 784 → 128 → 1."""

    label = "GAN"
    config_cls = GANConfig
    description = "Dense GAN: generator z → hidden → 784 (tanh), discriminator 784 → hidden → D(x)"

    def __init__(self, config: GANConfig):
        super().__init__(config)
        self.generator = _DenseGenerator(config.latent_dim, config.hidden)
        self.discriminator = _DenseDiscriminator(config.hidden)


class DCGAN(AdversarialModel):
    """Deep convolutional GAN: transposed convolutions up, strided convolutions down, BatchNorm."""

    label = "DCGAN"
    config_cls = DCGANConfig
    description = "DCGAN: transposed-convolution generator, strided-convolution discriminator, BatchNorm"

    def __init__(self, config: DCGANConfig):
        super().__init__(config)
        self.generator = _ConvGenerator(config.latent_dim, config.width)
        self.discriminator = _ConvDiscriminator(config.width, norm="batch", minibatch_std=config.minibatch_std)
        _dcgan_init(self)


class WGANGP(AdversarialModel):
    """Wasserstein GAN with a gradient penalty (or weight clipping): a critic instead of a discriminator."""

    label = "WGAN-GP"
    config_cls = WGANGPConfig
    capabilities = Capabilities(generates=True, prior=True, adversarial=True, wasserstein=True)
    formula = WASSERSTEIN_FORMULA
    description = "WGAN-GP: convolutional generator and critic, Wasserstein loss, gradient penalty (or clipping)"
    train_defaults = {"lr": 1e-4, "beta1": 0.5, "beta2": 0.9, "batch_size": 64}

    def __init__(self, config: WGANGPConfig):
        super().__init__(config)
        self.n_critic = config.n_critic
        self.generator = _ConvGenerator(config.latent_dim, config.width)
        # no BatchNorm in the critic: the penalty is per example, and BatchNorm mixes the batch
        # a constant shifts f(x) and f(G(z)) alike, so the Wasserstein loss gives it no gradient: no bias
        self.discriminator = _ConvDiscriminator(config.width, norm="layer", bias=False,
                                                minibatch_std=config.minibatch_std)
        _dcgan_init(self)

    def d_penalty(self, real, fake, labels, generator):
        if self.config.constraint != "gp" or self.config.gp_weight == 0:
            return None
        gp = gradient_penalty(lambda x: self.discriminator(x, labels), real, fake, generator)
        return self.config.gp_weight * gp, {"gp": gp.detach()}

    @torch.no_grad()
    def after_d_step(self) -> None:
        if self.config.constraint == "clip":
            for p in self.discriminator.parameters():
                p.clamp_(-self.config.clip, self.config.clip)


class CGAN(AdversarialModel):
    """Conditional GAN: G(z, y) and D(x, y); ask for a class and get an image of it."""

    label = "conditional GAN"
    config_cls = CGANConfig
    capabilities = Capabilities(generates=True, prior=True, adversarial=True, conditional=True)
    formula = (CONDITIONAL_FORMULA, G_LOSS_FORMULA)
    description = "Conditional DCGAN: the class y (one-hot) joins z in the generator and the image in the discriminator"

    def __init__(self, config: CGANConfig):
        super().__init__(config)
        self.num_classes = config.num_classes
        self.generator = _ConvGenerator(config.latent_dim, config.width, cond=config.num_classes)
        self.discriminator = _ConvDiscriminator(config.width, cond=config.num_classes, norm="batch",
                                                minibatch_std=config.minibatch_std)
        _dcgan_init(self)
