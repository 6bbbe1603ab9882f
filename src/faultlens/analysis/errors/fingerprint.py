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
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from faultlens.analysis.errors.model import ErrorEvent
from faultlens.analysis.templates.masking import FINGERPRINT_MASKS, mask

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


def is_framework_frame(frame: str) -> bool:
    return any(p.search(frame) for _, p in FRAMEWORK_FRAMES)


def _clean(frame: str) -> str:
    return _VOLATILE.sub(lambda m: f"lambda${m.group(1)}" if m.group(1) else "", frame)


def parse_frames(stacktrace: str) -> list[str]:
    """Frames of a Java, .NET, Python, Go or Node stack trace, innermost first, without line numbers."""
    lines = stacktrace.splitlines()
    python: list[str] = []
    out: list[str] = []
    for i, line in enumerate(lines):
        m = _PYTHON.match(line)
        if m:
            python.append(f"{m.group(1)}:{m.group(2)}")
            continue
        m = _JAVA_DOTNET.match(line)
        if m and not re.search(r":\d+:\d+\)?\s*$", line):
            out.append(_clean(m.group(1)))
            continue
        m = _NODE.match(line)
        if m and line.lstrip().startswith("at "):
            func, where = m.group(1), m.group(2)
            out.append(_clean(f"{func} ({where})" if func else where))
            continue
        m = _GO_FUNC.match(line)
        if m and i + 1 < len(lines) and _GO_FILE.match(lines[i + 1]):
            out.append(_clean(m.group(1)))
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


def message_template(message: str) -> str:
    """The first line of ``message`` with its variable parts masked."""
    first = message.strip().split("\n", 1)[0]
    return mask(first, FINGERPRINT_MASKS)[:MAX_TEMPLATE_CHARS]


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
    etype = exception_type_of(event)
    message = event.message
    if event.body and not event.exception_stacktrace and "\n" in event.body:
        stack: str | None = event.body  # a log body holding its stack trace
    else:
        stack = event.exception_stacktrace
    template = message_template(message)
    if not template and event.http_status_code:
        template = f"HTTP {event.http_status_code}"
    if not template and event.grpc_status_code:
        template = f"gRPC {event.grpc_status_code}"
    frame = top_frame(stack)
    parts = "\x1f".join((event.service, etype, template, frame))
    digest = hashlib.blake2b(parts.encode("utf-8"), digest_size=8).hexdigest()
    return Fingerprint(event.service, etype, template, frame, digest)
