"""Durations in configuration: ``90``, ``"90s"``, ``"5m"``, ``"168h"``, ``"7d"`` -> seconds.

A top-level module (not in ``faultlens.config``) so that every component's own config
model can use it without importing the whole configuration.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s|m|h|d)?\s*$")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration_s(value: Any) -> float:
    """Accept ``90``, ``"90s"``, ``"5m"``, ``"168h"``, ``"7d"``; return seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string such as '30s', '5m', '7d'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT_S[m.group(2) or "s"]
    else:
        raise ValueError(f"not a duration: {value!r} (use e.g. '30s', '5m', '7d')")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def parse_duration_ns(value: Any, *, max_s: float | None = None) -> int:
    """A duration with its unit (``500ms``, ``90s``, ``10m``, ``1h``) as ns, at most ``max_s``.

    For request parameters, where a bare number is ambiguous (seconds? nanoseconds?) and is
    refused; configuration takes bare seconds through :func:`parse_duration_s`.
    """
    m = _DURATION.match(value) if isinstance(value, str) else None
    if m is None or m.group(2) is None:
        raise ValueError("expected a duration with a unit, e.g. 90s, 10m or 1h")
    seconds = parse_duration_s(value)
    if max_s is not None and seconds > max_s:
        raise ValueError(f"at most {max_s:g} s")
    return round(seconds * 1e9)


Seconds = Annotated[float, BeforeValidator(parse_duration_s)]
