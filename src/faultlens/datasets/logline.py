"""Parse one application log line into severity, logger and message.

Container runtimes hand us the line as the application printed it. Two shapes are common
in microservice benchmarks and both are understood here, with no rule tied to one system:

- text, as Java/Logback prints it: ``16:51:24.967 INFO  u.c.UserController#48 TraceID: ...
  SpanID: ... [getUserByUserId][...]`` -> level ``INFO``, logger ``u.c.UserController#48``,
  message from ``[getUserByUserId]`` on (the trace and span ids are carried as ids, not text);
- one JSON object, as structured loggers print it (``{"severity": "info", "message": ...}``).

A line that matches neither keeps its whole text as the message, with no severity. Pure
functions, no I/O: they run once per log record, so they stay cheap.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

# OTLP SeverityNumber of the first level of each range (TRACE=1, DEBUG=5, INFO=9, WARN=13,
# ERROR=17, FATAL=21). Aliases used by common logging libraries map onto the same ranges.
SEVERITY_NUMBERS: dict[str, int] = {
    "TRACE": 1,
    "FINEST": 1,
    "FINER": 2,
    "DEBUG": 5,
    "FINE": 5,
    "CONFIG": 7,
    "INFO": 9,
    "NOTICE": 10,
    "WARN": 13,
    "WARNING": 13,
    "ERROR": 17,
    "ERR": 17,
    "SEVERE": 17,
    "CRITICAL": 21,
    "FATAL": 21,
    "PANIC": 21,
    "ALERT": 22,
    "EMERGENCY": 23,
}

_LEVELS = "|".join(sorted(SEVERITY_NUMBERS, key=len, reverse=True))
_TEXT_LINE = re.compile(
    r"^\s*"
    r"(?:(?:\d{4}-\d{2}-\d{2}[ T])?\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\s+)?"  # time
    r"(?:\[[^\]\s]*\]\s+)?"  # an optional [thread]
    rf"(?P<level>{_LEVELS})\b:?\s+"
    r"(?P<rest>.*)$",
    re.DOTALL,  # levels in upper case only: "error connecting" is a message, not a level
)
# A logger printed with its line number (``Class#line``, ``pkg.Class:42``) or a dotted path.
_LOGGER = re.compile(r"^(?:[\w$.\[\]/-]+[#:]\d+|[A-Za-z_$][\w$]*(?:\.[\w$\[\]]+)+):?$")
_IDS_PREFIX = re.compile(r"^trace_?id[:=]\s*\S+\s+span_?id[:=]\s*\S+\s*", re.IGNORECASE)

_JSON_LEVEL_KEYS = ("severity", "level", "levelname", "log.level", "lvl")
_JSON_MESSAGE_KEYS = ("message", "msg", "log", "body")
_JSON_LOGGER_KEYS = ("logger", "logger_name", "name", "caller")


@dataclass(frozen=True, slots=True)
class ParsedLine:
    severity_text: str  # as printed, upper-cased; "" when the line has no level
    severity_number: int  # OTLP SeverityNumber; 0 (unspecified) when unknown
    logger: str  # "" when none could be told apart from the message
    message: str


def severity_number(level: str) -> int:
    """OTLP SeverityNumber of a level name; 0 when the name is not a known level."""
    return SEVERITY_NUMBERS.get(level.strip().upper(), 0)


def parse_line(line: str) -> ParsedLine:
    """Split one printed log line; never raises."""
    text = line.rstrip("\r\n")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        parsed = _parse_json_line(stripped)
        if parsed is not None:
            return parsed
    m = _TEXT_LINE.match(text)
    if m is None:
        return ParsedLine("", 0, "", text.strip())
    level = m.group("level").upper()
    rest = m.group("rest")
    logger = ""
    head, _, tail = rest.partition(" ")
    if _LOGGER.match(head):
        logger, rest = head.rstrip(":"), tail
    return ParsedLine(level, severity_number(level), logger, _IDS_PREFIX.sub("", rest.strip()))


def _parse_json_line(text: str) -> ParsedLine | None:
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    level = _first_str(obj, _JSON_LEVEL_KEYS).upper()
    message = _first_str(obj, _JSON_MESSAGE_KEYS)
    if not message:
        return None
    return ParsedLine(level, severity_number(level), _first_str(obj, _JSON_LOGGER_KEYS), message.strip())


def _first_str(obj: dict[str, object], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
    return ""
