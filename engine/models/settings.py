"""Settings: config dataclasses whose fields say what they are, and the one way values get into them.

A field is declared with `setting(default, help)`; its type annotation says what it holds, and a
`typing.Literal[...]` annotation lists its choices:

    loss: Literal["mse", "bce"] = setting("mse", "reconstruction loss: mean squared error or cross-entropy")

`describe(config_cls)` reads those declarations back (name, kind, default, help, choices,
optional, label) for the CLI's `models` listing and the UI's forms; `config_from_dict` builds a config
from JSON or command-line text with checked names, types and choices, then runs the config's own
`validate()` for what a type cannot say (ranges, relations between fields).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass


def setting(default, help: str, **metadata) -> dataclasses.Field:
    """A config field with its one-line help (shown by the CLI and as the UI's tooltip).

    `label="Latent size"` names it in forms and charts; the field name stays what the CLI,
    config.json and the URL use.
    """
    if isinstance(default, (list, dict, set)):
        raise TypeError("a setting's default must be immutable (use a tuple)")
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


@dataclass(frozen=True)
class Setting:
    """One field of a config, as a form or a listing needs it."""

    name: str
    kind: str  # "int", "float", "bool", "str", "choice" or "ints" (a list of whole numbers)
    default: object
    help: str
    choices: tuple = ()  # the allowed values of a "choice"
    optional: bool = False  # None (empty) is allowed: e.g. no epoch limit, every class
    label: str = ""  # the human name a form shows ("Latent size"); the field name when not declared


def _unwrap(tp) -> tuple[object, bool]:
    """(the type inside Optional, whether None is allowed): `int | None` → (int, True)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return inner[0], len(inner) < len(typing.get_args(tp))
    return tp, False


def _kind(tp) -> str:
    origin = typing.get_origin(tp) or tp
    if origin is typing.Literal:
        return "choice"
    if origin in (tuple, list):
        return "ints"
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(origin, "str")


@functools.cache
def describe(config_cls) -> tuple[Setting, ...]:
    """Every field of a config dataclass, in declaration order (inherited fields first); computed once per class."""
    hints = typing.get_type_hints(config_cls)
    out = []
    for f in dataclasses.fields(config_cls):
        tp, optional = _unwrap(hints[f.name])
        kind = _kind(tp)
        default = f.default if f.default is not dataclasses.MISSING else None
        out.append(Setting(f.name, kind, default, f.metadata.get("help", ""),
                           typing.get_args(tp) if kind == "choice" else (), optional,
                           f.metadata.get("label") or f.name.replace("_", " ").capitalize()))
    return tuple(out)


def config_to_dict(config) -> dict:
    return dataclasses.asdict(config)


def _coerce(value, tp, name: str):
    """Turn a JSON or command-line value into the field's declared type."""
    tp, optional = _unwrap(tp)
    if optional and (value is None or (isinstance(value, str) and value.lower() in ("", "none", "null"))):
        return None
    origin = typing.get_origin(tp) or tp
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, not {value!r}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} must be a list of numbers such as 256,128, not {value!r}")
        return origin(_whole(v, name) for v in value)
    if tp is bool:
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{name} must be true or false, not {value!r}")
        return bool(value)
    if tp is int:
        return _whole(value, name)
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"{name} must be a number, not {value!r}") from None
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be text, not {value!r}")
        return value
    return value


def _whole(value, name: str) -> int:
    """An int from an int, a whole float (3.0) or its text; anything else is a ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    try:
        v = int(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be a whole number, not {value!r}") from None
    if isinstance(value, float) and not (math.isfinite(value) and value == v):
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    return v


def config_from_dict(config_cls, values: dict | None = None, **overrides):
    """Build a config from a dict (config.json, --set key=value) with checked names, types and choices."""
    values = {**(values or {}), **overrides}
    hints = typing.get_type_hints(config_cls)
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(
            f"unknown setting(s) {', '.join(unknown)} for {config_cls.__name__}; "
            f"valid: {', '.join(sorted(names))}"
        )
    config = config_cls(**{k: _coerce(v, hints[k], k) for k, v in values.items()})
    if hasattr(config, "validate"):
        config.validate()
    return config
