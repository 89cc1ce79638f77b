"""Settings: config dataclasses whose fields say what they are, and the one way values get into them.

A field is declared with `setting(default, help)`; its type annotation says what it holds, and a
`typing.Literal[...]` annotation lists its choices:

    loss: Literal["mse", "bce"] = setting("mse", "reconstruction loss: mean squared error or cross-entropy")

A field's range is declared beside it, so the CLI, the form (the min and max of its number input),
config.json and an imported run all meet the same limits:

    latent_dim: int = setting(32, "size of the code z", low=1, high=4096)
    lr: float = setting(1e-3, "learning rate", low=0, low_open=True, high=10)   # 0 < lr ≤ 10
    hidden: tuple[int, ...] = setting((256,), "widths", low=1, high=4096, max_len=8)  # each, and how many

`describe(config_cls)` reads those declarations back (name, kind, default, help, choices,
optional, label, range) for the CLI's `models` listing and the UI's forms; `config_from_dict` builds a
config from JSON or command-line text with checked names, types, choices and ranges (every float must
be finite), then runs the config's own `validate()` for what a declaration cannot say (relations
between fields). Every refusal is a ValueError that names the setting and says what it takes.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass


def setting(default, help: str, *, low: float | None = None, high: float | None = None, low_open: bool = False,
            high_open: bool = False, min_len: int | None = None, max_len: int | None = None,
            **metadata) -> dataclasses.Field:
    """A config field with its one-line help (shown by the CLI and as the UI's tooltip) and its range.

    `label="Latent size"` names it in forms and charts; the field name stays what the CLI,
    config.json and the URL use. `low`/`high` bound a number (inclusive; `low_open`/`high_open`
    make a bound strict) or each number of a list; `min_len`/`max_len` bound a list's length.
    """
    if isinstance(default, (list, dict, set)):
        raise TypeError("a setting's default must be immutable (use a tuple)")
    bounds = {"low": low, "high": high, "low_open": low_open, "high_open": high_open, "min_len": min_len,
              "max_len": max_len}
    return dataclasses.field(default=default, metadata={"help": help, **bounds, **metadata})


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
    low: float | None = None  # the smallest value (of a number, or of each number of a list); None: no bound
    high: float | None = None  # the largest
    low_open: bool = False  # the value must be strictly above `low` (e.g. a learning rate above 0)
    high_open: bool = False  # strictly below `high` (e.g. Adam's β below 1)
    min_len: int | None = None  # a list's fewest numbers
    max_len: int | None = None  # a list's most numbers

    def range_text(self) -> str:
        """The declared range in words: 'between 1 and 4,096', 'above 0 and at most 10', ''."""
        lo, hi = _num_text(self.low), _num_text(self.high)
        if self.low is not None and self.high is not None and not (self.low_open or self.high_open):
            return f"between {lo} and {hi}"
        parts = []
        if self.low is not None:
            parts.append(self._low_text())
        if self.high is not None:
            parts.append(f"{'below' if self.high_open else 'at most'} {hi}")
        return " and ".join(parts)

    def _low_text(self) -> str:
        if self.low_open:
            return "positive" if self.low == 0 else f"above {_num_text(self.low)}"
        return f"at least {_num_text(self.low)}"

    def _refusal(self, v, what: str) -> ValueError:
        """'steps must be at least 1, not 0 (the range is between 1 and 10,000,000)'."""
        if self.low is not None and not (v > self.low if self.low_open else v >= self.low):
            side = self._low_text()
        else:
            side = f"{'below' if self.high_open else 'at most'} {_num_text(self.high)}"
        full = self.range_text()
        return ValueError(f"{what} must be {side}, not {shown_value(v)}"
                          + (f" (the range is {full})" if full != side else ""))

    def in_range(self, v: float) -> bool:
        return ((self.low is None or (v > self.low if self.low_open else v >= self.low))
                and (self.high is None or (v < self.high if self.high_open else v <= self.high)))

    def check(self, value) -> None:
        """Raise a ValueError when a coerced value lies outside the declared range or length."""
        if value is None:
            return
        if self.kind == "ints":
            n = len(value)
            if (self.min_len is not None and n < self.min_len) or (self.max_len is not None and n > self.max_len):
                raise ValueError(f"{self.name} must hold {_count_text(self.min_len, self.max_len)} numbers, "
                                 f"not {n}")
            bad = [v for v in value if not self.in_range(v)]
            if bad:
                raise self._refusal(bad[0], f"each number of {self.name}")
        elif self.kind in ("int", "float") and not self.in_range(value):
            raise self._refusal(value, self.name)


def _count_text(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"exactly {low}" if low == high else f"{low} to {high}"
    return f"at least {low}" if low is not None else f"at most {high}"


def _num_text(v) -> str:
    """10000000 → '10,000,000'; 0.001 → '0.001'."""
    if v is None:
        return ""
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:g}"


def shown_value(value, limit: int = 60) -> str:
    """A value as a message shows it: its repr, cut short (a pasted megabyte must not fill the page)."""
    if isinstance(value, int) and value.bit_length() > 1000:  # repr refuses ints of over 4,300 digits
        return f"a number of about {int(value.bit_length() * 0.30103):,} digits"
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


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
        meta = f.metadata
        out.append(Setting(f.name, kind, default, meta.get("help", ""),
                           typing.get_args(tp) if kind == "choice" else (), optional,
                           meta.get("label") or f.name.replace("_", " ").capitalize(),
                           meta.get("low"), meta.get("high"), meta.get("low_open", False),
                           meta.get("high_open", False), meta.get("min_len"), meta.get("max_len")))
    return tuple(out)


def config_to_dict(config) -> dict:
    return dataclasses.asdict(config)


MAX_LIST = 1000  # numbers in any list setting, whatever its own max_len: text is split before it is checked


def _coerce(value, tp, name: str):
    """Turn a JSON or command-line value into the field's declared type; ValueError when it is not one."""
    tp, optional = _unwrap(tp)
    if optional and (value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null"))):
        return None
    origin = typing.get_origin(tp) or tp
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, not {shown_value(value)}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} must be a list of whole numbers such as 256,128, not {shown_value(value)}")
        if len(value) > MAX_LIST:
            raise ValueError(f"{name} must hold at most {MAX_LIST} numbers, not {len(value)}")
        return origin(_whole(v, name) for v in value)
    if tp is bool:
        if isinstance(value, str):
            if value.strip().lower() in ("1", "true", "yes", "on"):
                return True
            if value.strip().lower() in ("0", "false", "no", "off"):
                return False
        elif isinstance(value, bool) or (type(value) is int and value in (0, 1)):
            return bool(value)
        raise ValueError(f"{name} must be true or false, not {shown_value(value)}")
    if tp is int:
        return _whole(value, name)
    if tp is float:
        return _number(value, name)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be text, not {shown_value(value)}")
        return value
    return value


def _number(value, name: str) -> float:
    """A finite float from a number or its text: inf and nan are never a setting (they poison training and JSON)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{name} must be a number, not {shown_value(value)}")
    try:
        v = float(value)
    except (ValueError, OverflowError):
        raise ValueError(f"{name} must be a number, not {shown_value(value)}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, not {shown_value(value)}")
    return v


def _whole(value, name: str) -> int:
    """An int from an int, a whole float (3.0) or its text; anything else is a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{name} must be a whole number, not {shown_value(value)}")
    if isinstance(value, float) and not (math.isfinite(value) and value == int(value)):
        raise ValueError(f"{name} must be a whole number, not {shown_value(value)}")
    try:
        return int(value)  # text of over 4,300 digits is a ValueError too
    except (ValueError, OverflowError):
        raise ValueError(f"{name} must be a whole number, not {shown_value(value)}") from None


def config_from_dict(config_cls, values: dict | None = None, **overrides):
    """Build a config from a dict (config.json, --set key=value) with checked names, types, choices and ranges.

    Anything wrong is a ValueError that names the setting: an unknown name, a value of the wrong type,
    inf or nan, a number outside the range its `setting` declares, or what the config's `validate()`
    refuses.
    """
    if values is not None and not isinstance(values, dict):
        raise ValueError(f"{config_cls.__name__} settings must be an object of name: value, not {shown_value(values)}")
    values = {**(values or {}), **overrides}
    hints = typing.get_type_hints(config_cls)
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - names, key=str)
    if unknown:
        raise ValueError(
            f"unknown setting(s) {', '.join(shown_value(k, 40) for k in unknown[:5])} for {config_cls.__name__}; "
            f"valid: {', '.join(sorted(names))}"
        )
    config = config_cls(**{k: _coerce(v, hints[k], k) for k, v in values.items()})
    for s in describe(config_cls):  # defaults too: a subclass may narrow an inherited range
        s.check(getattr(config, s.name))
    if hasattr(config, "validate"):
        config.validate()
    return config
