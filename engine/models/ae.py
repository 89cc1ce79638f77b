"""Dense autoencoders: plain, linear, denoising, sparse and contractive.

    x (B,1,28,28) → flatten (B,784) → encoder → z (B,latent_dim) → decoder → logits (B,784) → x̂
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from engine.data.noise import NoiseKind
from engine.models.base import (IMAGE_PIXELS, IMAGE_SHAPE, MAX_LATENT, MAX_LAYERS, MAX_WIDTH, Activation, AEConfig,
                                Capabilities, ReconstructionModel, mlp)
from engine.models.settings import setting

# ---------------------------------------------------------------------------------------------
# plain dense autoencoder


def glorot(module: nn.Module) -> None:
    """Glorot-uniform weights, U(±√(6 / (fan_in + fan_out))), and zero biases for every dense layer: Keras's
    defaults, which the course's code relies on. PyTorch's own default (±1/√fan_in, biases too) starts the
    lecture's 784 → 64 → 784 network with a too-small encoder and random output biases, and after the same ten
    epochs it ended 12 % worse (bench/bench_lecture.py)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


@dataclass
class DenseAEConfig(AEConfig):
    hidden: tuple[int, ...] = setting((256,), "hidden layer widths between the 784 pixels and the code (the "
                                              "decoder mirrors them)", label="Hidden layers", low=1,
                                      high=MAX_WIDTH, max_len=MAX_LAYERS)
    activation: Activation = setting("relu", "non-linearity of the hidden layers", label="Activation")
    latent_activation: Activation = setting("none", "non-linearity on the code itself (the lecture's 784→64 "
                                                    "example uses relu)", label="Code activation")
    init: Literal["data", "glorot", "torch"] = setting(
        "data", "how the layers start: glorot (Glorot-uniform weights, zero biases: Keras's defaults), data (glorot, "
                "and the output bias at the training images' mean pixel, so training starts from the average "
                "digit instead of grey), or torch (PyTorch's own: uniform ±1/√fan_in weights and biases)",
        label="Initialisation")


class DenseAE(ReconstructionModel):
    """Fully connected encoder and mirrored decoder, sigmoid output.

    The lecture's example is DenseAEConfig(hidden=(), latent_dim=64, latent_activation="relu"):
    784 → 64 (ReLU) → 784 (sigmoid).
    """

    label = "dense AE"
    config_cls = DenseAEConfig
    description = "Dense autoencoder: 784 → hidden → z → hidden → 784, sigmoid output."

    def __init__(self, config: DenseAEConfig):
        super().__init__(config)
        sizes = [IMAGE_PIXELS, *config.hidden, config.latent_dim]
        self.encoder = mlp(sizes, config.activation, last_act=self.code_activation())
        self.decoder = mlp(sizes[::-1], config.activation, last_act="none")
        if config.init != "torch":
            glorot(self)

    def start_from_data(self, mean_image):
        if self.config.init == "data":
            output = [m for m in self.decoder if isinstance(m, nn.Linear)][-1]
            with torch.no_grad():  # sigmoid(bias) = the mean pixel: the untrained model draws the average image
                output.bias.copy_(torch.logit(mean_image.flatten().clamp(1e-3, 1 - 1e-3)))

    def code_activation(self) -> str:
        """The non-linearity on z; variants with a fixed one (sparse) override this."""
        return self.config.latent_activation

    def encode(self, x, y=None):
        return self.encoder(x.flatten(1))  # (B, latent_dim)

    def decode_logits(self, z, y=None):
        return self.decoder(z).view(-1, *IMAGE_SHAPE)  # (B, 1, 28, 28)


# ---------------------------------------------------------------------------------------------
# linear autoencoder: with MSE its optimum spans the same subspace as PCA (Baldi & Hornik 1989)


@dataclass
class LinearAEConfig(AEConfig):
    pass


class LinearAE(ReconstructionModel):
    """z = W₁x + b₁, x̂ = W₂z + b₂: no non-linearity, so under MSE it learns PCA's subspace
    (though not PCA's orthogonal axes). With loss="bce" the output goes through a sigmoid."""

    label = "linear AE"
    config_cls = LinearAEConfig
    capabilities = Capabilities(encodes=True, generates=True, linear=True)
    description = "Linear autoencoder: one linear map each way; under MSE it spans the PCA subspace."

    def __init__(self, config: LinearAEConfig):
        super().__init__(config)
        self.encoder = nn.Linear(IMAGE_PIXELS, config.latent_dim)
        self.decoder = nn.Linear(config.latent_dim, IMAGE_PIXELS)

    def encode(self, x, y=None):
        return self.encoder(x.flatten(1))  # (B, latent_dim)

    def decode_logits(self, z, y=None):
        return self.decoder(z).view(-1, *IMAGE_SHAPE)  # (B, 1, 28, 28)

    def to_image(self, logits):
        return logits if self.config.loss == "mse" else torch.sigmoid(logits)

    def decode(self, z, y=None):
        return self.to_image(self.decode_logits(z, y)).clamp(0.0, 1.0)

    def decoder_basis(self) -> torch.Tensor:
        """W₂ (784, k): x̂ = W₂z + b₂ lies in the span of its columns (plus b₂)."""
        return self.decoder.weight.detach()  # nn.Linear stores (out, in) = (784, k)


# ---------------------------------------------------------------------------------------------
# denoising autoencoder (Vincent et al. 2008): the dense AE with corruption on by default


@dataclass
class DenoisingAEConfig(DenseAEConfig):
    noise: NoiseKind = setting("gaussian", "corruption of the input while training: gaussian, salt_pepper, "
                                           "masking, block", label="Input noise")
    noise_level: float = setting(0.4, "its strength: σ (gaussian), p (salt_pepper, masking), side fraction "
                                      "(block)", label="Noise level")


class DenoisingAE(DenseAE):
    """Trained on corrupted x̃ to rebuild the clean x: loss = ‖x − g(f(x̃))‖²."""

    label = "denoising AE"
    config_cls = DenoisingAEConfig
    description = "Denoising autoencoder: corrupt the input, reconstruct the clean image."
    formula = r"\mathcal{L} = \ell\big(x,\ g(f(\tilde{x}))\big), \quad \tilde{x} = \text{noise}(x)"


# ---------------------------------------------------------------------------------------------
# sparse autoencoder


@dataclass
class SparseAEConfig(DenseAEConfig):
    latent_dim: int = setting(64, "size of the code z (sparse codes are often over-complete)", label="Latent size",
                              low=1, high=MAX_LATENT)
    sparsity: Literal["kl", "l1"] = setting("kl", "penalty: kl (β·Σⱼ KL(ρ‖ρ̂ⱼ) on sigmoid codes) or l1 (β·Σⱼ|zⱼ| on "
                                                  "ReLU codes)", label="Sparsity penalty")
    rho: float = setting(0.05, "target mean activation ρ of each code unit (kl only)", label="Target activation ρ",
                         low=0, high=1, low_open=True, high_open=True)
    beta: float = setting(3e-3, "weight β of the sparsity penalty", label="Penalty weight β", low=0, high=1e6)


def kl_sparsity(rho: float, rho_hat: torch.Tensor) -> torch.Tensor:
    """Σⱼ KL(ρ‖ρ̂ⱼ) between Bernoulli(ρ) and Bernoulli(ρ̂ⱼ) (Ng, CS294A notes)."""
    rho_hat = rho_hat.clamp(1e-6, 1 - 1e-6)
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


class SparseAE(DenseAE):
    """Reconstruction plus a penalty that keeps most code units silent for any one input."""

    label = "sparse AE"
    config_cls = SparseAEConfig
    description = "Sparse autoencoder: L1 or KL(ρ‖ρ̂) penalty keeps most code units inactive."
    formula = (r"\mathcal{L} = \ell(x, \hat{x}) + \beta \textstyle\sum_j \mathrm{KL}(\rho \,\|\, \hat{\rho}_j)"
               r"\quad \text{or} \quad \ell(x, \hat{x}) + \beta \textstyle\sum_j |z_j|")

    def code_activation(self) -> str:
        # KL needs activations in (0, 1) to read as firing rates; L1 pairs with ReLU's exact zeros
        return "sigmoid" if self.config.sparsity == "kl" else "relu"

    def penalty(self, x_in, z):
        cfg = self.config
        if cfg.sparsity == "kl":
            rho_hat = z.mean(0)  # (latent_dim,) mean activation of each unit over the batch
            term = kl_sparsity(cfg.rho, rho_hat)
        else:
            term = z.abs().sum(1).mean()
        active = (z > (0.1 if cfg.sparsity == "kl" else 0.0)).float().mean()
        return cfg.beta * term, {"sparsity": term.detach(), "active_fraction": active.detach()}


# ---------------------------------------------------------------------------------------------
# contractive autoencoder (Rifai et al. 2011)


@dataclass
class ContractiveAEConfig(AEConfig):
    hidden: tuple[int, ...] = setting((256,), "hidden layer widths of the decoder (the encoder is one sigmoid "
                                              "layer)", label="Hidden layers", low=1, high=MAX_WIDTH,
                                      max_len=MAX_LAYERS)
    activation: Activation = setting("relu", "non-linearity of the decoder's hidden layers", label="Activation")
    lam: float = setting(1e-4, "weight λ of the contraction penalty λ‖∂h/∂x‖²_F", label="Contraction weight λ",
                         low=0, high=1e6)


class ContractiveAE(ReconstructionModel):
    """Encoder h = σ(Wx + b), penalised by the Jacobian's squared Frobenius norm

        ‖∂h/∂x‖²_F = Σⱼ (hⱼ(1 − hⱼ))² Σᵢ Wⱼᵢ²

    (closed form for a sigmoid layer), so the code changes little when x moves off the data.
    """

    label = "contractive AE"
    config_cls = ContractiveAEConfig
    description = "Contractive autoencoder: penalises λ‖∂h/∂x‖²_F so codes resist small input changes."
    formula = r"\mathcal{L} = \ell(x, \hat{x}) + \lambda \lVert \partial h / \partial x \rVert_F^2"

    def __init__(self, config: ContractiveAEConfig):
        super().__init__(config)
        self.encoder = nn.Linear(IMAGE_PIXELS, config.latent_dim)
        self.decoder = mlp([config.latent_dim, *config.hidden[::-1], IMAGE_PIXELS], config.activation)

    def encode(self, x, y=None):
        return torch.sigmoid(self.encoder(x.flatten(1)))  # (B, latent_dim)

    def decode_logits(self, z, y=None):
        return self.decoder(z).view(-1, *IMAGE_SHAPE)

    def jacobian_norm(self, h: torch.Tensor) -> torch.Tensor:
        """‖∂h/∂x‖²_F per sample (B,), from h = σ(Wx + b)."""
        w_sq = self.encoder.weight.pow(2).sum(1)  # (latent_dim,) Σᵢ Wⱼᵢ²
        return (h * (1 - h)).pow(2) @ w_sq  # (B,)

    def penalty(self, x_in, z):
        j = self.jacobian_norm(z).mean()
        return self.config.lam * j, {"contraction": j.detach()}
