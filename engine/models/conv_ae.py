"""Convolutional autoencoder: Conv + BatchNorm + LeakyReLU down, ConvTranspose up.

    x (B,1,28,28) → conv s2 (B,c₁,14,14) → conv s2 (B,c₂,7,7) → linear → z (B,latent_dim)
    z → linear (B,c₂,7,7) → convT s2 (B,c₁,14,14) → convT s2 → logits (B,1,28,28)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from engine.models.base import MAX_CHANNELS, AEConfig, ReconstructionModel
from engine.models.settings import setting


@dataclass
class ConvAEConfig(AEConfig):
    channels: tuple[int, ...] = setting((16, 32), "conv widths; each stride-2 layer halves the image (28 → 14 → "
                                                  "7)", label="Conv channels", low=1, high=MAX_CHANNELS,
                                        min_len=2, max_len=2)
    negative_slope: float = setting(0.2, "slope of LeakyReLU for negative inputs", label="LeakyReLU slope",
                                    low=0, high=1)


# ---------------------------------------------------------------------------------------------
# building blocks, shared with the convolutional VAE


def conv_encoder(channels: tuple[int, ...], slope: float) -> tuple[nn.Sequential, int]:
    """Strided convs: (B,1,28,28) → (B, channels[-1]·7·7). Returns the trunk and its width."""
    layers: list[nn.Module] = []
    c_in = 1
    for c_out in channels:
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.LeakyReLU(slope)]
        c_in = c_out
    return nn.Sequential(*layers, nn.Flatten()), c_in * 7 * 7


class Unflatten(nn.Unflatten):
    """nn.Unflatten whose image comes out in `memory_format`. The trainer sets it to the layout it gives the
    weights (engine.train.trainer.to_memory_format): a Linear's output is contiguous, and a channels_last
    model fed it runs the BatchNorm, LeakyReLU and transposed conv that follow, and their backward, on a mix
    of layouts, the slow path of those kernels (conv_ae's channels_last bfloat16 step on one CPU thread: 0.95×
    the time with the image made channels_last here, 0.88–1.06 over 11 interleaved pairs)."""

    memory_format = torch.contiguous_format

    def forward(self, x):
        return super().forward(x).contiguous(memory_format=self.memory_format)


def conv_decoder(latent_dim: int, channels: tuple[int, ...], slope: float) -> nn.Sequential:
    """z (B,latent_dim) → logits (B,1,28,28): the encoder mirrored with transposed convs."""
    c_top = channels[-1]
    layers: list[nn.Module] = [
        nn.Linear(latent_dim, c_top * 7 * 7),
        Unflatten(1, (c_top, 7, 7)),
        nn.BatchNorm2d(c_top),
        nn.LeakyReLU(slope),
    ]
    widths = [*channels[::-1], 1]  # e.g. 64 → 32 → 1
    for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
        # kernel 4, stride 2, padding 1 doubles the size exactly: 7 → 14 → 28
        layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))
        if i < len(widths) - 2:
            layers += [nn.BatchNorm2d(c_out), nn.LeakyReLU(slope)]
    return nn.Sequential(*layers)


class ConvAE(ReconstructionModel):
    label = "conv AE"
    config_cls = ConvAEConfig
    description = "Convolutional autoencoder: Conv+BatchNorm+LeakyReLU encoder, ConvTranspose decoder."
    # Measured on mnist-5k, 2-core CPU (bench/bench_starter.py): a 5-second budget, one thread beside other
    # work, reached 0.64-0.67 of PCA(32)'s test MSE with batch 64 / constant lr 2e-3, 0.57-0.61 with the
    # one-cycle schedule at a 1e-2 peak (the Home starter's recipe), 0.47-0.54 with the output started at the
    # mean pixel as well; batch 128 / lr 1e-3 was worse still at 15 s (fewer, more cautious steps).
    train_defaults = {"batch_size": 64, "lr": 1e-2, "schedule": "one_cycle"}

    def __init__(self, config: ConvAEConfig):
        super().__init__(config)
        self.trunk, width = conv_encoder(config.channels, config.negative_slope)
        self.to_z = nn.Linear(width, config.latent_dim)
        self.decoder = conv_decoder(config.latent_dim, config.channels, config.negative_slope)

    def start_from_data(self, mean_image):
        # sigmoid(bias) = the mean pixel (≈ 0.13 on MNIST): the untrained model draws a faint grey, not 0.5
        # everywhere, so the first steps learn digits instead of darkening the background
        with torch.no_grad():
            self.decoder[-1].bias.fill_(float(torch.logit(mean_image.mean().clamp(1e-3, 1 - 1e-3))))

    def encode(self, x, y=None):
        return self.to_z(self.trunk(x))  # (B, latent_dim)

    def decode_logits(self, z, y=None):
        return self.decoder(z)  # (B, 1, 28, 28)
