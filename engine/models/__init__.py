"""The model registry: a short name → a model class (whose `config_cls` is its config).

A new variant is one class in its own file (or beside its family) plus one line here; the CLI,
the UI's model picker and the parametrised test suite all loop over MODELS.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from engine.models.ae import ContractiveAE, DenoisingAE, DenseAE, LinearAE, SparseAE
from engine.models.base import ModelConfig, config_from_dict, config_to_dict
from engine.models.conv_ae import ConvAE
from engine.models.gan import CGAN, DCGAN, GAN, WGANGP
from engine.models.pca import PCA
from engine.models.vae import CVAE, VAE, ConvVAE

MODELS: dict[str, type[nn.Module]] = {
    "ae": DenseAE,
    "linear_ae": LinearAE,
    "conv_ae": ConvAE,
    "denoising_ae": DenoisingAE,
    "sparse_ae": SparseAE,
    "contractive_ae": ContractiveAE,
    "vae": VAE,
    "conv_vae": ConvVAE,
    "cvae": CVAE,
    "pca": PCA,
    "gan": GAN,
    "dcgan": DCGAN,
    "wgan_gp": WGANGP,
    "cgan": CGAN,
}


def get_model_class(name: str) -> type[nn.Module]:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(MODELS)}")
    return MODELS[name]


def make_config(name: str, values: dict | None = None, **overrides) -> ModelConfig:
    """The config of model `name` from defaults, then `values`, then keyword overrides (checked)."""
    return config_from_dict(get_model_class(name).config_cls, values, **overrides)


def build_model(name: str, config: ModelConfig | dict | None = None, **overrides) -> nn.Module:
    cls = get_model_class(name)
    if not isinstance(config, ModelConfig):
        config = make_config(name, config, **overrides)
    elif overrides:
        config = make_config(name, config_to_dict(config), **overrides)
    model = cls(config)
    model.registry_name = name
    return model


def describe_models() -> list[dict]:
    """One dict per registered model: name, kind, description and each setting's default and help."""
    out = []
    for name, cls in MODELS.items():
        helps = cls.config_cls.field_help()
        settings = {
            f.name: {"default": _jsonable(getattr(cls.config_cls(), f.name)), "help": helps.get(f.name, "")}
            for f in dataclasses.fields(cls.config_cls)
        }
        out.append({"name": name, "kind": cls.kind, "description": cls.description,
                    "conditional": cls.conditional, "settings": settings, "train_defaults": cls.train_defaults})
    return out


def _jsonable(v):
    return list(v) if isinstance(v, tuple) else v


__all__ = ["MODELS", "build_model", "describe_models", "get_model_class", "make_config", "config_to_dict"]
