"""Points in time as users write them -> Unix nanoseconds: the one time syntax of the API,
the UI and every CLI command.

==============================  ==========================================================
``2024-05-01T12:00:00.5Z``      RFC 3339 with an offset (``Z``, ``+02:00``), up to nine
                                fractional digits, kept exactly; ``T`` or a space
``2024-05-01T12:00:00``         the same without an offset: UTC
``2024-05-01``                  midnight UTC of that day
``now``, ``now-15m``, ``now+30s``  the wall clock, moved by a duration with its unit
``1714564800s``, ``...ms``,     Unix seconds, milliseconds, microseconds or nanoseconds,
``...us``, ``...ns``            the unit written out
``1714564800000000000``         a bare integer: always nanoseconds, never a guess from its
                                size (that would answer a different question silently)
==============================  ==========================================================

Before 1970 and after the int64 nanosecond range (2262) are refused.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

__all__ = ["INT64_MAX", "TIME_SYNTAX", "parse_time"]

INT64_MAX = (1 << 63) - 1
TIME_SYNTAX = (
    "an RFC 3339 timestamp (2024-05-01T12:00:00.5Z; UTC without an offset), a date, now or "
    "now-15m, Unix time with its unit (1714564800s, 1714564800000ms), or an integer of nanoseconds"
)

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})?)?$",
    re.ASCII,
)
_UNIX = re.compile(r"^(\d+)(s|ms|us|ns)$", re.ASCII)
_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_NOW = re.compile(r"^now\s*(?:([+-])\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d))?$", re.IGNORECASE | re.ASCII)
_OFFSET_NS = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_OFFSET_NS["d"] = 24 * _OFFSET_NS["h"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(value: Any, *, now_ns: int | None = None) -> int:
    """``value`` in the syntax of the module docstring, as Unix nanoseconds.

    ``now_ns`` is what ``now`` means (the wall clock when not given). Raises
    :class:`ValueError` saying what is accepted.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        ns = value
    elif isinstance(value, str):
        ns = _parse_text(value.strip(), now_ns)
    else:
        raise ValueError(f"expected a time: {TIME_SYNTAX}")
    if ns < 0:
        raise ValueError("times before 1970-01-01T00:00:00Z are not supported")
    if ns > INT64_MAX:
        raise ValueError("time is past the int64 nanosecond range (year 2262)")
    return ns


def _parse_text(text: str, now_ns: int | None) -> int:
    if text.isascii() and text.isdigit():
        return int(text)
    if m := _UNIX.match(text):
        return int(m.group(1)) * _UNIT_NS[m.group(2)]
    if m := _NOW.match(text):
        now = time.time_ns() if now_ns is None else now_ns
        if m.group(1) is None:
            return now
        shift = round(float(m.group(2)) * _OFFSET_NS[m.group(3).lower()])
        return now + shift if m.group(1) == "+" else now - shift
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"expected {TIME_SYNTAX}")
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    if fraction is not None and len(fraction) > 9:
        raise ValueError("at most 9 fractional second digits (nanoseconds) are supported")
    if offset is None or offset in ("Z", "z"):
        tz = UTC
    else:
        sign = 1 if offset[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    try:
        clock = (int(hour or 0), int(minute or 0), int(second or 0))
        dt = datetime(int(year), int(month), int(day), *clock, tzinfo=tz)
    except ValueError as e:
        raise ValueError(f"invalid date or time: {e}") from None
    delta = dt - _EPOCH
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000
    return ns + int((fraction or "").ljust(9, "0"))
