"""The contract every model follows, and the building blocks the autoencoders share.

A model is an `nn.Module` built from a config dataclass. Reconstruction models (autoencoders
and the PCA baseline) provide:

    encode(x, y=None)  -> z        x: (B, 1, 28, 28) in [0, 1]   z: (B, latent_dim)
    decode(z, y=None)  -> x_hat    x_hat: (B, 1, 28, 28) in [0, 1]
    sample(n, y=None)  -> x        images decoded from the model's prior over z
    loss_step(x, y)    -> StepOutput(loss, x_hat, z, logs)

so the trainer, the metrics and the UI never need to know which variant they hold.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from engine import noise as noise_lib

IMAGE_SHAPE = (1, 28, 28)
IMAGE_PIXELS = 28 * 28


# ---------------------------------------------------------------------------------------------
# helpers


def exists(v) -> bool:
    return v is not None


ACTIVATIONS: dict[str, typing.Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "none": nn.Identity,
}


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
    """Fields every model shares. Subclasses add their own, each with a one-line comment."""

    latent_dim: int = 32  # size of the code z (the bottleneck)

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """Field name → the comment written beside it (used by the CLI and the UI)."""
        import inspect
        import re

        help_: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            if not dataclasses.is_dataclass(klass):
                continue
            try:
                source = inspect.getsource(klass)
            except (OSError, TypeError):
                continue
            for m in re.finditer(r"^\s+(\w+): [^=\n]+=[^#\n]*#\s*(.+)$", source, re.M):
                help_[m.group(1)] = m.group(2).strip()
        return help_


@dataclass
class AEConfig(ModelConfig):
    loss: str = "mse"  # reconstruction loss: "mse" (mean squared error) or "bce" (binary cross-entropy)
    noise: str = "none"  # corruption of the input while training (denoising): none, gaussian, salt_pepper, masking, block
    noise_level: float = 0.0  # its strength: σ (gaussian), p (salt_pepper, masking), side fraction (block)

    def validate(self) -> None:
        """Raise a ValueError that says what to change; subclasses extend it."""
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be at least 1, not {self.latent_dim}")
        if self.loss not in ("mse", "bce"):
            raise ValueError(f"loss must be 'mse' or 'bce', not {self.loss!r}")
        noise_lib.check(self.noise, self.noise_level)


def config_to_dict(config) -> dict:
    return dataclasses.asdict(config)


def _coerce(value, tp, name: str):
    """Turn a JSON or command-line value into the field's declared type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):  # e.g. int | None
        if value is None or (isinstance(value, str) and value.lower() in ("", "none", "null")):
            return None
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _coerce(value, inner[0], name)
    if origin is tuple or tp is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} must be a list of numbers such as 256,128, not {value!r}")
        return tuple(int(v) for v in value)
    if tp is bool:
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{name} must be true or false, not {value!r}")
        return bool(value)
    if tp in (int, float):
        try:
            v = tp(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a {tp.__name__}, not {value!r}") from None
        if tp is int and isinstance(value, float) and value != int(value):
            raise ValueError(f"{name} must be a whole number, not {value!r}")
        return v
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be text, not {value!r}")
        return value
    return value


def config_from_dict(config_cls, values: dict | None = None, **overrides):
    """Build a config from a dict (config.json, --set key=value) with checked names and types."""
    values = {**(values or {}), **overrides}
    hints = typing.get_type_hints(config_cls)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(
            f"unknown setting(s) {', '.join(unknown)} for {config_cls.__name__}; "
            f"valid: {', '.join(sorted(fields))}"
        )
    kwargs = {k: _coerce(v, hints[k], k) for k, v in values.items()}
    config = config_cls(**kwargs)
    if hasattr(config, "validate"):
        config.validate()
    return config


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

    kind = "reconstruction"
    config_cls: type[ModelConfig] = AEConfig
    description = ""
    conditional = False  # True when encode/decode need the label y
    trainable = True  # False for closed-form models (PCA): the trainer calls fit() instead
    num_classes = 10
    prior_samples = False  # True when sample() draws from a trained prior (VAEs) rather than fitted codes
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
        if not self.training or getattr(cfg, "noise", "none") == "none":
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
        if not self.conditional:
            return None
        if y is None:  # cycle through the classes so a grid shows each one
            y = torch.arange(n, device=self.latent_mean.device) % self.num_classes
        return y

