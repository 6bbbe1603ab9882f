"""Fingerprints: what makes two errors "the same error".

fingerprint = stable hash of (service, normalised exception type, message template, top
application frame). Each part is computed so that what varies between occurrences of one
error does not reach the hash:

- the exception type loses its package/namespace (``java.net.ConnectException`` and a log
  line's ``ConnectException`` are the same) and Python's ``builtins.`` prefix;
- the message keeps its first line only, and numbers, ids, UUIDs, hex, IPs, emails, URL
  queries, quoted values and paths become placeholders (:data:`FINGERPRINT_MASKS`);
- the top frame is the innermost frame of *application* code: frames of frameworks, the
  standard libraries and runtimes (:data:`FRAMEWORK_FRAMES`, data not code) are skipped, and
  line numbers are dropped, so a redeploy that shifts lines keeps the group.

:func:`fingerprints` does a batch at once: the message templates of all its events are
masked in one pass per rule (:func:`~faultlens.analysis.templates.masking.mask_many`), and
what each stack-trace line says is remembered (stack traces repeat their frames).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from faultlens.analysis.errors.model import ErrorEvent, SpanKind
from faultlens.analysis.templates.masking import FINGERPRINT_MASKS, mask, mask_many

MAX_TEMPLATE_CHARS = 300

# Frames to skip when looking for the top application frame: (language, pattern on the frame).
FRAMEWORK_FRAMES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (lang, re.compile(p))
    for lang, p in (
        ("java", r"^(java|javax|jakarta|jdk|sun|com\.sun|kotlin|kotlinx|scala|groovy)\."),
        ("java", r"^(org\.springframework|org\.apache|org\.hibernate|org\.eclipse\.jetty|org\.glassfish)\."),
        ("java", r"^(io\.netty|reactor|io\.grpc|io\.micrometer|io\.opentelemetry|io\.undertow|akka)\."),
        (
            "java",
            r"^(feign|com\.netflix|com\.fasterxml|com\.zaxxer|okhttp3|retrofit2|com\.mysql|org\.postgresql)\.",
        ),
        ("java", r"^(org\.junit|net\.bytebuddy|io\.github\.resilience4j|ch\.qos\.logback|org\.slf4j)\."),
        ("java", r"\$\$(Enhancer|FastClass|Lambda)|^jdk\.internal|CGLIB"),
        ("dotnet", r"^(System|Microsoft|Npgsql|Grpc|Newtonsoft|Polly|StackExchange|MySqlConnector)\."),
        ("python", r"(site-packages|dist-packages|/lib/python\d|<frozen |\\lib\\)"),
        ("node", r"(^node:|\(node:|internal/|node_modules/|<anonymous>)"),
        ("go", r"^(runtime|net/http|net|reflect|sync|testing|syscall|internal/\w+)\.|^created by "),
        (
            "go",
            r"^(google\.golang\.org|github\.com/(gin-gonic|labstack|gorilla|grpc-ecosystem)|golang\.org)/",
        ),
        ("go", r"^go\.opentelemetry\.io/"),
    )
)

_JAVA_DOTNET = re.compile(r"^\s*at\s+(?:[\w.]+/)?([\w$.<>`\[\],+|-]+)\s*\((.*)\)\s*(?:in\s+.*)?$")
_NODE = re.compile(r"^\s*at\s+(?:async\s+)?(?:(\S+)\s+\()?(.+?)(?::\d+){1,2}\)?\s*$")
_PYTHON = re.compile(r'^\s*File "([^"]+)", line \d+, in (\S+)')
_GO_FUNC = re.compile(r"^([\w./*()\-]+)\(.*\)$")
_GO_FILE = re.compile(r"^\s+(\S+\.go):\d+")
_TYPE_IN_TEXT = re.compile(
    r"\b((?:[A-Za-z_][\w$]*\.)*[A-Z][\w$]*(?:Exception|Error|Fault|Throwable|Panic))\b"
)
_VOLATILE = re.compile(r"\$\d+|\$\$Lambda\$[^.]*|0x[0-9a-fA-F]+|\blambda\$(\w+)\$\d+|`\d+")


@functools.lru_cache(maxsize=16_384)
def is_framework_frame(frame: str) -> bool:
    return any(p.search(frame) for _, p in FRAMEWORK_FRAMES)


def _clean(frame: str) -> str:
    return _VOLATILE.sub(lambda m: f"lambda${m.group(1)}" if m.group(1) else "", frame)


_NONE, _PY, _FRAME, _GO = range(4)
_NODE_LINE_COL = re.compile(r":\d+:\d+\)?\s*$")


@functools.lru_cache(maxsize=16_384)
def _line_frame(line: str) -> tuple[int, str]:
    """What one stack-trace line holds: a Python frame, a Java/.NET/Node frame, a Go function
    (a frame only when the next line is its file), or nothing. Memoised: traces repeat lines."""
    m = _PYTHON.match(line)
    if m:
        return _PY, f"{m.group(1)}:{m.group(2)}"
    m = _JAVA_DOTNET.match(line)
    if m and not _NODE_LINE_COL.search(line):
        return _FRAME, _clean(m.group(1))
    m = _NODE.match(line)
    if m and line.lstrip().startswith("at "):
        func, where = m.group(1), m.group(2)
        return _FRAME, _clean(f"{func} ({where})" if func else where)
    m = _GO_FUNC.match(line)
    if m:
        return _GO, _clean(m.group(1))
    return _NONE, ""


@functools.lru_cache(maxsize=16_384)
def _is_go_file(line: str) -> bool:
    return _GO_FILE.match(line) is not None


def parse_frames(stacktrace: str) -> list[str]:
    """Frames of a Java, .NET, Python, Go or Node stack trace, innermost first, without line numbers."""
    lines = stacktrace.splitlines()
    python: list[str] = []
    out: list[str] = []
    for i, line in enumerate(lines):
        kind, frame = _line_frame(line)
        if kind == _PY:
            python.append(frame)
        elif kind == _FRAME or (kind == _GO and i + 1 < len(lines) and _is_go_file(lines[i + 1])):
            out.append(frame)
    # Python prints the innermost frame last.
    return list(reversed(python)) + out


def top_frame(stacktrace: str | None) -> str:
    """The innermost application frame; the innermost frame if all are framework's; '' if none."""
    if not stacktrace:
        return ""
    frames = parse_frames(stacktrace)
    for frame in frames:
        if not is_framework_frame(frame):
            return frame
    return frames[0] if frames else ""


@functools.lru_cache(maxsize=4096)
def normalise_type(exception_type: str | None) -> str:
    """Short name of an exception type: ``java.net.ConnectException`` -> ``ConnectException``."""
    if not exception_type:
        return ""
    name = exception_type.strip().split("<", 1)[0].rstrip(":")
    name = name.removeprefix("builtins.").lstrip("*")
    for sep in ("::", "."):
        name = name.rsplit(sep, 1)[-1]
    return name


def exception_type_of(event: ErrorEvent) -> str:
    """The exception type of an event, read from its message when no attribute carries it."""
    for candidate in (event.exception_type, event.error_type):
        if candidate and not candidate.isdigit() and candidate != "_OTHER":
            return normalise_type(candidate)
    m = _TYPE_IN_TEXT.search(event.message.split("\n", 1)[0])
    return normalise_type(m.group(1)) if m else ""


def _first_line(message: str) -> str:
    return message.strip().split("\n", 1)[0]


def message_template(message: str) -> str:
    """The first line of ``message`` with its variable parts masked."""
    return mask(_first_line(message), FINGERPRINT_MASKS)[:MAX_TEMPLATE_CHARS]


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """The parts that identify an error group, and their hash (``group_id``)."""

    service: str
    exception_type: str
    message_template: str
    top_frame: str
    group_id: str


def fingerprint(event: ErrorEvent) -> Fingerprint:
    """The fingerprint of ``event``. Pure and stable across processes and versions of Python."""
    return _fingerprint(event, message_template(event.message))


def fingerprints(events: Sequence[ErrorEvent]) -> list[Fingerprint]:
    """``[fingerprint(e) for e in events]``, with the message templates masked all at once."""
    firsts = [_first_line(e.message) for e in events]
    distinct = list(dict.fromkeys(firsts))
    templates = dict(zip(distinct, mask_many(distinct, FINGERPRINT_MASKS), strict=True))
    return [
        _fingerprint(e, templates[first][:MAX_TEMPLATE_CHARS])
        for e, first in zip(events, firsts, strict=True)
    ]


_OUTGOING = (SpanKind.CLIENT, SpanKind.PRODUCER)


def _call_template(event: ErrorEvent) -> str:
    """What a failed outgoing call says when it says nothing else (status ERROR alone): which
    call failed, and to which dependency. Without it every such call of a service would be one
    blank group, whatever it called; this way each dependency's failures group apart, and
    beside the callee's own group (seen in the same traces) it reads as the caller's view."""
    what = event.operation or "call"
    return f"{what} to {event.peer} failed" if event.peer else f"{what} failed"


def _fingerprint(event: ErrorEvent, template: str) -> Fingerprint:
    etype = exception_type_of(event)
    if event.body and not event.exception_stacktrace and "\n" in event.body:
        stack: str | None = event.body  # a log body holding its stack trace
    else:
        stack = event.exception_stacktrace
    if not template and event.http_status_code:
        template = f"HTTP {event.http_status_code}"
    if not template and event.grpc_status_code:
        template = f"gRPC {event.grpc_status_code}"
    if not template and not etype and event.span_kind in _OUTGOING:
        template = _call_template(event)
    frame = top_frame(stack)
    parts = "\x1f".join((event.service, etype, template, frame))
    digest = hashlib.blake2b(parts.encode("utf-8"), digest_size=8).hexdigest()
    return Fingerprint(event.service, etype, template, frame, digest)
