"""The contract every model follows, what a model declares about itself, and the shared building blocks.

A model is an `nn.Module` built from a config dataclass (engine.models.settings). It declares:

    capabilities   what it can do (Capabilities below): pages, the CLI and the trainers ask these
                   through the registry (engine.models.models(encodes=True, …)), never by name
    trainer        which family trainer trains it ("reconstruction" or "adversarial", engine.train)
    formula        the loss it minimises, in LaTeX (the pages show it)
    description    one line for listings; label, a short name for people ("conv AE")

Reconstruction models (autoencoders and the PCA baseline) provide:

    encode(x, y=None)  -> z        x: (B, 1, 28, 28) in [0, 1]   z: (B, latent_dim)
    decode(z, y=None)  -> x_hat    x_hat: (B, 1, 28, 28) in [0, 1]
    sample(n, y=None)  -> x        images decoded from the model's prior over z
    loss_step(x, y)    -> StepOutput(loss, x_hat, z, logs)

so the trainer, the metrics and the UI never need to know which variant they hold.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from engine.data import noise as noise_lib
from engine.data.noise import NoiseKind
from engine.models.settings import setting

IMAGE_SHAPE = (1, 28, 28)
IMAGE_PIXELS = 28 * 28
# Hosted limits on a model's size fields (a setting may come from a link or an uploaded run): each is far
# above what 28×28 images need, and build_model also bounds the total (MAX_PARAMETERS in engine.models).
MAX_LATENT = 4096  # a code wider than 5× the 784 pixels (sparse codes are over-complete, not that much)
MAX_WIDTH = 4096  # a dense hidden layer
MAX_LAYERS = 8  # dense hidden layers
MAX_CHANNELS = 256  # a conv layer: 256 × 14 × 14 activations per image is already 200 kB
MAX_CLASSES = 1000

# The reconstruction loss every autoencoder pays (n = 784 pixels).
RECONSTRUCTION_FORMULA = (r"\mathcal{L} = \ell(x, \hat{x}),"
                          r"\quad \ell_{\text{MSE}} = \tfrac{1}{n}\lVert x - \hat{x} \rVert^2,"
                          r"\quad \ell_{\text{BCE}} = -\tfrac{1}{n}\textstyle\sum_i x_i \log \hat{x}_i"
                          r" + (1 - x_i) \log(1 - \hat{x}_i)")


# ---------------------------------------------------------------------------------------------
# what a model declares


@dataclass(frozen=True)
class Capabilities:
    """What a model can do. The registry answers questions about these (engine.models.models)."""

    encodes: bool = False  # encode(x) → z: every image gets a code (autoencoders, PCA)
    generates: bool = False  # decode(z) / generate(z) → an image for any code z, and sample(n)
    conditional: bool = False  # encode, decode and generate need the class y as well
    prior: bool = False  # sample() draws z from the prior it was trained towards (a VAE's N(0, I), a GAN's z)
    variational: bool = False  # encode_dist(x) → (μ, log σ²) of q(z|x): an ELBO to report
    linear: bool = False  # x̂ is an affine function of z: decoder_basis() spans what it can output
    closed_form: bool = False  # fitted in one step by fit(x); no training loop
    adversarial: bool = False  # a generator and a discriminator (or critic) trained against each other
    wasserstein: bool = False  # the discriminator is a critic with unbounded scores f(x), not a probability

    def matches(self, **wanted) -> bool:
        unknown = set(wanted) - set(self.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown capabilities {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(self.__dataclass_fields__)}")
        return all(getattr(self, k) == bool(v) for k, v in wanted.items())


# ---------------------------------------------------------------------------------------------
# helpers


def exists(v) -> bool:
    return v is not None


Activation = Literal["relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid", "none"]
ACTIVATIONS: dict[str, typing.Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "none": nn.Identity,
}
assert tuple(ACTIVATIONS) == typing.get_args(Activation)


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}: choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def mlp(sizes: typing.Sequence[int], act: str, last_act: str = "none") -> nn.Sequential:
    """Dense layers sizes[0] → sizes[1] → … with `act` between them and `last_act` at the end."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        layers.append(activation(act if i < len(sizes) - 2 else last_act))
    return nn.Sequential(*layers)


def one_hot(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    if y is None:
        raise ValueError("this model is conditioned on the label: pass y (class indices)")
    return F.one_hot(y.long().clamp(min=0), num_classes).float()  # (B, num_classes)


# ---------------------------------------------------------------------------------------------
# configs


@dataclass
class ModelConfig:
    """Fields every model shares. Subclasses add their own, each a `setting` with its help."""

    latent_dim: int = setting(32, "size of the code z (the bottleneck)", label="Latent size", low=1, high=MAX_LATENT)

    def validate(self) -> None:
        """What a field's declared range cannot say (relations between fields); ValueError says what to change."""


@dataclass
class AEConfig(ModelConfig):
    loss: Literal["mse", "bce"] = setting("mse", "reconstruction loss: mse (mean squared error) or bce "
                                                 "(binary cross-entropy)", label="Reconstruction loss")
    noise: NoiseKind = setting("none", "corruption of the input while training (denoising): none, gaussian, "
                                       "salt_pepper, masking, block", label="Input noise")
    noise_level: float = setting(0.0, "its strength: σ (gaussian), p (salt_pepper, masking), side fraction "
                                      "(block)", label="Noise level", low=0, high=10)

    def validate(self) -> None:
        """Raise a ValueError that says what to change (ranges are declared on the fields); subclasses extend it."""
        noise_lib.check(self.noise, self.noise_level)


# ---------------------------------------------------------------------------------------------
# outputs


@dataclass
class StepOutput:
    loss: torch.Tensor  # scalar to minimise
    x_hat: torch.Tensor  # (B, 1, 28, 28) reconstruction in [0, 1]
    z: torch.Tensor  # (B, latent_dim) code
    logs: dict[str, torch.Tensor] = field(default_factory=dict)  # named detached scalars for metrics.jsonl


# ---------------------------------------------------------------------------------------------
# the reconstruction-model base


class ReconstructionModel(nn.Module):
    """Base of every autoencoder: generic loss step, sampling, input corruption.

    Subclasses implement `encode` and `decode_logits` (and may add a `penalty`).
    """

    config_cls: type[ModelConfig] = AEConfig
    label = ""  # a short name for people ("conv AE"); the registry name when empty
    capabilities = Capabilities(encodes=True, generates=True)
    trainer = "reconstruction"
    formula = RECONSTRUCTION_FORMULA
    description = ""
    num_classes = 10
    train_defaults: dict = {}  # training settings this model trains best with (overridable per run)

    def __init__(self, config: AEConfig):
        super().__init__()
        self.config = config
        # A Gaussian fitted to the training codes, so a plain autoencoder can sample too
        # (a VAE overrides sample() with its N(0, I) prior). Set by fit_latent_stats().
        self.register_buffer("latent_mean", torch.zeros(config.latent_dim))
        self.register_buffer("latent_std", torch.ones(config.latent_dim))

    # -- the interface -------------------------------------------------------------------------

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def to_image(self, logits: torch.Tensor) -> torch.Tensor:
        """Decoder output → pixel intensities; a sigmoid unless the model is linear."""
        return torch.sigmoid(logits)

    def start_from_data(self, mean_image: torch.Tensor) -> None:
        """Called once before a new run's first step with the training images' mean (1, 28, 28); a model whose
        settings ask for it starts its output there. Not called on resume: the checkpoint's weights win."""

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.to_image(self.decode_logits(z, y))  # (B, 1, 28, 28) in [0, 1]

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.encode(x, y), y)

    def penalty(self, x_in: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Extra regulariser added to the reconstruction loss (sparsity, contraction…)."""
        return z.new_zeros(()), {}

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """Decode n codes drawn from N(latent_mean, latent_std²), the Gaussian fitted to training codes."""
        eps = torch.randn(n, self.config.latent_dim, generator=generator, device=self.latent_mean.device)
        return self.decode(self.latent_mean + self.latent_std * eps, self._sample_labels(n, y))

    # -- training ------------------------------------------------------------------------------

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The denoising option of every autoencoder: corrupt the input, reconstruct the clean x."""
        cfg = self.config
        if not self.training or cfg.noise == "none":
            return x
        return noise_lib.corrupt(x, cfg.noise, cfg.noise_level, generator=generator)

    def reconstruction_loss(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Mean over pixels and batch: MSE on sigmoid(logits), or BCE straight from the logits."""
        if self.config.loss == "bce":
            return F.binary_cross_entropy_with_logits(logits, x)
        return F.mse_loss(self.to_image(logits), x)

    def loss_step(self, x: torch.Tensor, y: torch.Tensor | None = None,
                  generator: torch.Generator | None = None) -> StepOutput:
        x_in = self.corrupt(x, generator)
        z = self.encode(x_in, y)  # (B, latent_dim)
        logits = self.decode_logits(z, y)  # (B, 1, 28, 28)
        rec = self.reconstruction_loss(logits, x)
        extra, logs = self.penalty(x_in, z)
        loss = rec + extra
        x_hat = self.to_image(logits)
        logs = {"loss": loss.detach(), "rec": rec.detach(), "mse": F.mse_loss(x_hat, x).detach(), **logs}
        return StepOutput(loss=loss, x_hat=x_hat, z=z, logs=logs)

    @torch.no_grad()
    def fit_latent_stats(self, z: torch.Tensor) -> None:
        """Store the mean and spread of training codes z (N, latent_dim) for sample()."""
        self.latent_mean.copy_(z.mean(0))
        self.latent_std.copy_(z.std(0).clamp_min(1e-6))

    def _sample_labels(self, n: int, y: torch.Tensor | None) -> torch.Tensor | None:
        if not self.capabilities.conditional:
            return None
        if y is None:  # cycle through the classes so a grid shows each one
            y = torch.arange(n, device=self.latent_mean.device) % self.num_classes
        return y

