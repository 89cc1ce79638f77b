"""The Train page's engine: which models it offers, the settings a new-run form shows, and reading the form.

A form is generated from the registry: one input per setting of the model's config and per training
setting in TRAIN_SETTINGS (engine.models.settings.describe says each one's kind, default, help and
choices). Lists are typed as text ("256, 128"); `parse_values` turns them back into lists.
"""

from __future__ import annotations

import dataclasses

from engine.models import get_model_class, models
from engine.models.settings import MAX_LIST, Setting, describe, shown_value
from engine.runs import DEFAULT_EPOCHS, TrainConfig

TRAIN_SETTINGS = ("epochs", "steps", "seconds", "batch_size", "lr", "schedule", "weight_decay", "seed",
                  "classes")  # shown in the form
EMPTY_MEANS = {"lr_d": "same as lr", "classes": "all"}  # what an empty optional setting means (else: no limit)


def trainable_models() -> list[str]:
    """The models the Train page offers: every autoencoder and PCA (GANs have their studio)."""
    return models(encodes=True)


def _with_defaults(settings: list[Setting], defaults: dict) -> list[Setting]:
    return [dataclasses.replace(s, default=defaults[s.name]) if s.name in defaults else s for s in settings]


def model_settings(model: str) -> list[Setting]:
    """Every setting of the model's config, with its default."""
    return describe(get_model_class(model).config_cls)


def train_settings(model: str, names=TRAIN_SETTINGS, defaults: dict | None = None) -> list[Setting]:
    """The training settings in `names`, defaulting to TrainConfig's, then the model's preferences, then `defaults`.

    Without any budget the form shows DEFAULT_EPOCHS, which is what training would do anyway.
    """
    chosen = {**get_model_class(model).train_defaults, **(defaults or {})}
    values = {s.name: s.default for s in describe(TrainConfig)} | chosen
    if values["epochs"] is None and values["seconds"] is None and values["steps"] is None:
        values["epochs"] = DEFAULT_EPOCHS
    return _with_defaults([s for s in describe(TrainConfig) if s.name in names], values)


def parse_int_list(name: str, text: str, optional: bool = False) -> list[int] | None:
    """'256, 128' → [256, 128]; '' → [] (None when the setting is optional: `classes` empty means all)."""
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
    try:
        if len(parts) > MAX_LIST:
            raise ValueError
        values = [int(p) for p in parts]  # over 4,300 digits is a ValueError too
    except ValueError:
        raise ValueError(f"{name}: write whole numbers separated by commas, e.g. 256, 128 (not "
                         f"{shown_value(text)})") from None
    return (values or None) if optional else values


def parse_values(settings: list[Setting], values: dict) -> dict:
    """A form's values with list settings parsed from their text (ValueError on bad text)."""
    kinds = {s.name: s for s in settings}
    return {k: parse_int_list(k, v, kinds[k].optional) if k in kinds and kinds[k].kind == "ints" and isinstance(v, str)
            else v for k, v in values.items()}
