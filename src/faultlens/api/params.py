"""Query-parameter types of the API: times, ids, severities and trace status.

Each is an ``Annotated`` type whose validator raises ``ValueError``, so FastAPI turns a bad
value into its standard 422 body naming the parameter (``loc: ["query", "start"]``). The one
check that spans two parameters (``end`` before ``start``) raises the same shape through
:func:`time_range`, so clients see one error format.
"""

from __future__ import annotations

import enum
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi.exceptions import RequestValidationError
from pydantic import BeforeValidator

from faultlens.types import TimeRange

INT64_MAX = 2**63 - 1

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HEX = re.compile(r"^[0-9a-fA-F]+$")

SEVERITY_NAMES: dict[str, int] = {
    "TRACE": 1,
    "DEBUG": 5,
    "INFO": 9,
    "WARN": 13,
    "ERROR": 17,
    "FATAL": 21,
}
"""The lowest SeverityNumber of each level of the OTLP log data model."""

SPAN_KIND_NAMES: dict[int, str] = {
    0: "UNSPECIFIED",
    1: "INTERNAL",
    2: "SERVER",
    3: "CLIENT",
    4: "PRODUCER",
    5: "CONSUMER",
}
STATUS_CODE_NAMES: dict[int, str] = {0: "UNSET", 1: "OK", 2: "ERROR"}


def parse_time(value: Any) -> int:
    """An RFC 3339 timestamp or a decimal count of Unix nanoseconds, as Unix nanoseconds.

    A bare integer is always nanoseconds, never seconds or milliseconds: guessing the unit
    from the magnitude would silently answer a different question. RFC 3339 needs its
    offset (``Z`` or ``+02:00``) and keeps up to nine fractional digits exactly.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValueError("expected an RFC 3339 timestamp or Unix nanoseconds")
    ns = int(text) if text.isascii() and text.isdigit() else _parse_rfc3339(text)
    if ns > INT64_MAX:
        raise ValueError("time is past the int64 nanosecond range (year 2262)")
    return ns


def _parse_rfc3339(text: str) -> int:
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(
            "expected an RFC 3339 timestamp with offset (e.g. 2024-05-01T12:00:00.5Z) "
            "or a non-negative integer of Unix nanoseconds"
        )
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    if fraction is not None and len(fraction) > 9:
        raise ValueError("at most 9 fractional second digits (nanoseconds) are supported")
    if offset in ("Z", "z"):
        tz = UTC
    else:
        sign = 1 if offset[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    try:
        dt = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=tz)
    except ValueError as e:
        raise ValueError(f"invalid date or time: {e}") from None
    delta = dt - _EPOCH
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000
    ns += int((fraction or "").ljust(9, "0"))
    if ns < 0:
        raise ValueError("times before 1970-01-01T00:00:00Z are not supported")
    return ns


def parse_trace_id(value: Any) -> bytes:
    """32 hex digits (either case) to the 16 raw bytes the store keys on."""
    if not isinstance(value, str) or len(value) != 32 or not _HEX.match(value):
        raise ValueError("a trace id is 32 hexadecimal digits")
    raw = bytes.fromhex(value)
    if raw == bytes(16):
        raise ValueError("the all-zero trace id is invalid")
    return raw


def parse_severity(value: Any) -> int:
    """A level name (that level and above) or a SeverityNumber 1..24, as a SeverityNumber."""
    text = str(value).strip()
    if text.upper() in SEVERITY_NAMES:
        return SEVERITY_NAMES[text.upper()]
    if text.isascii() and text.isdigit() and 1 <= int(text) <= 24:
        return int(text)
    raise ValueError(f"expected one of {', '.join(SEVERITY_NAMES)} or a SeverityNumber 1..24")


UnixNanos = Annotated[int, BeforeValidator(parse_time)]
TraceIdBytes = Annotated[bytes, BeforeValidator(parse_trace_id)]
Severity = Annotated[int, BeforeValidator(parse_severity)]


class TraceStatus(enum.StrEnum):
    """Trace status filter. ``ok`` is deliberately absent: the store can only say "has an
    error span", and "no error span" is a different query it cannot answer exactly."""

    ERROR = "error"
    ANY = "any"


def time_range(start: int | None, end: int | None) -> TimeRange | None:
    """The half-open ``[start, end)`` filter; either bound may be open. ``None`` if both are."""
    if start is None and end is None:
        return None
    lo = 0 if start is None else start
    hi = INT64_MAX if end is None else end
    if hi < lo:
        raise invalid_param("end", "end is before start", end)
    return TimeRange(lo, hi)


def invalid_param(param: str, message: str, value: Any) -> RequestValidationError:
    """The 422 of a query parameter that is malformed or out of range, naming it."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", param), "msg": message, "input": value}]
    )


def hex_id(raw: bytes | None) -> str | None:
    return None if raw is None else raw.hex()
