"""Settings read from the environment: one reader, so every setting refuses nonsense the same way."""

from __future__ import annotations

import os


def env_number(var: str, default: float, minimum: float = 0) -> float:
    """The environment variable `var` as a number ≥ `minimum` (0 unless said), `default` when unset or blank;
    ValueError (naming the variable) for anything else, so a typo stops the server rather than quietly meaning
    something else."""
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{var} must be a number, not {raw[:40]!r}") from None
    if not value >= minimum:  # also refuses nan
        raise ValueError(f"{var} must be {'zero' if minimum == 0 else f'{minimum:g}'} or more, not {raw[:40]!r}")
    return value
