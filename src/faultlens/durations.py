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


Seconds = Annotated[float, BeforeValidator(parse_duration_s)]
