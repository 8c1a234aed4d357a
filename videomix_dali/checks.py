"""The argument checks shared by the loaders, the recipes, the mixing op and the command
lines: each returns the checked value or raises ValueError naming the argument."""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from typing import Any


def checked_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int in [low, high]; ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}={value!r} must be an integer")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name}={value!r} must be an integer {bound}")
    return int(value)


def checked_choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    """``value`` where it is one of ``choices``; ValueError naming ``name`` otherwise."""
    if value not in choices:
        raise ValueError(f"{name}={value!r} must be one of {tuple(choices)}")
    return value


def finite_floats(name: str, value: Any, layout: tuple[str, ...]) -> tuple[float, ...]:
    """``value`` as one finite float per name of ``layout``; ValueError naming ``name``
    otherwise."""
    try:
        items = () if isinstance(value, str | bytes) else tuple(value)
    except TypeError:  # not iterable
        items = ()
    if len(items) != len(layout) or not all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in items
    ):
        raise ValueError(
            f"{name}={value!r} must be {len(layout)} finite numbers ({', '.join(layout)})"
        )
    return tuple(float(v) for v in items)
