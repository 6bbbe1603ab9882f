"""Query-parameter types of the API: times, ids, severities and trace status.

Each is an ``Annotated`` type whose validator raises ``ValueError``, so FastAPI turns a bad
value into its standard 422 body naming the parameter (``loc: ["query", "start"]``). The one
check that spans two parameters (``end`` before ``start``) raises the same shape through
:func:`time_range`, so clients see one error format.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Any

from fastapi.exceptions import RequestValidationError
from pydantic import BeforeValidator

from faultlens.timeparse import INT64_MAX, parse_time
from faultlens.types import TimeRange

__all__ = [  # INT64_MAX and parse_time are the shared ones of faultlens.timeparse
    "INT64_MAX",
    "SEVERITY_NAMES",
    "SPAN_KIND_NAMES",
    "STATUS_CODE_NAMES",
    "Severity",
    "TraceIdBytes",
    "TraceStatus",
    "UnixNanos",
    "hex_id",
    "invalid_param",
    "parse_severity",
    "parse_time",
    "parse_trace_id",
    "time_range",
]

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
