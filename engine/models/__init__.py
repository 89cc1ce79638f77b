"""The model registry: a short name → a model class, and the questions pages ask about models.

Every class declares what it is (engine.models.base): its `capabilities`, its `trainer`, its
`formula`, its config dataclass (`config_cls`, whose settings carry their help and choices) and
the training settings it prefers (`train_defaults`). The CLI, the UI and the engine ask here —

    models(encodes=True, conditional=False)   # names of every model that matches, in order
    capabilities("vae").prior                 # what one model can do

— and never test a model's name. A new variant is one class (in its own file, or beside its
family) plus one line in MODELS; `register` adds one at run time (tests, plugins).
"""

from __future__ import annotations

import torch
from torch import nn

from engine.models.ae import ContractiveAE, DenoisingAE, DenseAE, LinearAE, SparseAE
from engine.models.base import Capabilities, ModelConfig
from engine.models.conv_ae import ConvAE
from engine.models.gan import CGAN, DCGAN, GAN, WGANGP
from engine.models.pca import PCA
from engine.models.seq import SEQUENCE_MODELS
from engine.models.settings import config_from_dict, config_to_dict, describe
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
    **SEQUENCE_MODELS,  # rnn_ae, lstm_ae, gru_ae, conv1d_ae, seq_vae: series (T, C), trainer "sequence"
}


def register(name: str, cls: type[nn.Module]) -> None:
    """Add a model class under `name` (a new name only); it then shows up wherever models are listed."""
    if name in MODELS:
        raise ValueError(f"a model named {name!r} is registered already")
    for attr in ("config_cls", "capabilities", "trainer", "formula", "description"):
        if not hasattr(cls, attr):
            raise ValueError(f"{cls.__name__} must declare {attr} (see engine.models.base)")
    MODELS[name] = cls


def unregister(name: str) -> None:
    MODELS.pop(name, None)


def get_model_class(name: str) -> type[nn.Module]:
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"unknown model {str(name)[:60]!r}; registered models: {', '.join(MODELS)}")
    return MODELS[name]


def capabilities(name: str) -> Capabilities:
    """What model `name` can do; an unknown name is a ValueError."""
    return get_model_class(name).capabilities


def models(kind: str | None = None, **wanted: bool) -> list[str]:
    """Names of the registered models whose capabilities match every keyword, in registry order.

    models(encodes=True) are the image autoencoders and PCA; models(adversarial=True) the GANs;
    models(encodes=True, conditional=False) those that rebuild an image without its label;
    models(kind="sequence") the sequence autoencoders (kind: the family trainer a model declares).
    """
    return [name for name, cls in MODELS.items()
            if (kind is None or cls.trainer == kind) and cls.capabilities.matches(**wanted)]


def data_settings(name: str, dataset) -> dict:
    """The settings of model `name` that its training data fixes (a sequence model's length and channels), from a
    loaded dataset or its name; {} for models that take every dataset as it comes (the image models)."""
    fields = get_model_class(name).config_cls.__dataclass_fields__
    if "length" not in fields or "channels" not in fields:
        return {}
    if isinstance(dataset, str):
        from engine.data import load_dataset

        dataset = load_dataset(dataset)
    if getattr(dataset, "kind", "image") != "sequence":
        raise ValueError(f"{name} reads series (T, C); {dataset.name} holds images: choose a sequence dataset "
                         "such as gunpoint or seq-mnist")
    return {"length": dataset.length, "channels": dataset.channels}


def is_model(name, **wanted: bool) -> bool:
    """True when `name` is a registered model whose capabilities match (a run's config may name anything)."""
    return isinstance(name, str) and name in MODELS and MODELS[name].capabilities.matches(**wanted)


def label(name: str) -> str:
    """A short name for people ("conv AE"), or the registry name when the class gives none."""
    return get_model_class(name).label or name


def formulas(name: str) -> tuple[str, ...]:
    """The LaTeX of the loss model `name` minimises (one or more lines)."""
    formula = get_model_class(name).formula
    return (formula,) if isinstance(formula, str) else tuple(formula)


# Weights and buffers of one model. Training holds about 4× that (weights, gradients, Adam's two moments):
# 25 M numbers are 400 MB, while the largest default model has under a million.
MAX_PARAMETERS = 25_000_000


def parameter_count(name: str, config: ModelConfig) -> int:
    """The numbers in model `name`'s weights and buffers, counted on the meta device (shapes only, no memory)."""
    with torch.device("meta"):
        model = get_model_class(name)(config)
    return sum(t.numel() for t in (*model.parameters(), *model.buffers()))


def check_size(name: str, config: ModelConfig) -> None:
    """Refuse a config whose model would hold over MAX_PARAMETERS numbers, before anything is allocated."""
    n = parameter_count(name, config)
    if n > MAX_PARAMETERS:
        raise ValueError(f"this {name} model would have {n:,} parameters, over the limit of "
                         f"{MAX_PARAMETERS:,}: choose a smaller latent_dim, fewer or narrower hidden layers or "
                         "channels")


def make_config(name: str, values: dict | None = None, **overrides) -> ModelConfig:
    """The config of model `name` from defaults, then `values`, then keyword overrides (checked: names, types,
    ranges, and the size of the model it describes)."""
    config = config_from_dict(get_model_class(name).config_cls, values, **overrides)
    check_size(name, config)
    return config


def build_model(name: str, config: ModelConfig | dict | None = None, **overrides) -> nn.Module:
    cls = get_model_class(name)
    if not isinstance(config, ModelConfig):
        config = make_config(name, config, **overrides)
    elif overrides:
        config = make_config(name, config_to_dict(config), **overrides)
    else:
        check_size(name, config)  # a config built by hand skipped make_config's checks
    model = cls(config)
    model.registry_name = name
    return model


def describe_models() -> list[dict]:
    """One dict per registered model: name, what it can do, its formula and each setting's default and help."""
    out = []
    for name, cls in MODELS.items():
        caps = sorted(k for k, v in vars(cls.capabilities).items() if v)
        settings = {}
        for s in describe(cls.config_cls):
            entry = {"label": s.label, "default": list(s.default) if isinstance(s.default, tuple) else s.default,
                     "help": s.help}
            if s.range_text():
                entry["range"] = s.range_text()
            settings[s.name] = {**entry, "choices": list(s.choices)} if s.choices else entry
        out.append({"name": name, "label": label(name), "trainer": cls.trainer, "capabilities": caps,
                    "description": cls.description, "formula": list(formulas(name)), "settings": settings,
                    "train_defaults": cls.train_defaults})
    return out


__all__ = ["MAX_PARAMETERS", "MODELS", "Capabilities", "build_model", "capabilities", "check_size", "config_to_dict",
           "data_settings", "describe_models", "formulas", "get_model_class", "is_model", "label", "make_config",
           "models", "parameter_count", "register", "unregister"]
