"""A test-only variant: the whole of what a new model takes, one class here and one `register` call.

tests/engine/test_registry.py registers it with a fixture (or, for a pytest run of the model suite
in a subprocess, with the plugin below, `-p tests.variants.tiny_ae`) and checks that the CLI, the
Train form, the Latent explorer and the parametrised model suite pick it up with no other edit.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.models import register, unregister
from engine.models.base import IMAGE_PIXELS, IMAGE_SHAPE, Activation, AEConfig, Capabilities, ReconstructionModel, mlp
from engine.models.settings import setting

NAME = "tiny_ae"


@dataclass
class TinyAEConfig(AEConfig):
    latent_dim: int = setting(4, "size of the code z", label="Latent size")
    width: int = setting(16, "the one hidden layer's width, each way", label="Hidden width")
    activation: Activation = setting("elu", "non-linearity of the hidden layer", label="Activation")


class TinyAE(ReconstructionModel):
    """784 → width → z → width → 784: a dense autoencoder small enough to train in a second."""

    label = "tiny AE"
    config_cls = TinyAEConfig
    capabilities = Capabilities(encodes=True, generates=True)
    formula = r"\mathcal{L} = \tfrac{1}{n}\lVert x - g(f(x)) \rVert^2"
    description = "Tiny autoencoder: one narrow hidden layer each way (a test-only variant)."

    def __init__(self, config: TinyAEConfig):
        super().__init__(config)
        self.encoder = mlp([IMAGE_PIXELS, config.width, config.latent_dim], config.activation)
        self.decoder = mlp([config.latent_dim, config.width, IMAGE_PIXELS], config.activation)

    def encode(self, x, y=None):
        return self.encoder(x.flatten(1))  # (B, latent_dim)

    def decode_logits(self, z, y=None):
        return self.decoder(z).view(-1, *IMAGE_SHAPE)  # (B, 1, 28, 28)


def add() -> None:
    register(NAME, TinyAE)


def remove() -> None:
    unregister(NAME)


def pytest_configure(config) -> None:  # as a plugin (-p tests.variants.tiny_ae): registered before collection
    add()
