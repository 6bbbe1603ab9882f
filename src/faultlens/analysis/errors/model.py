"""The values of error intelligence: detected events, their classification and their groups.

Every value is a frozen dataclass or an enum (STYLE rule 6), shared by detection,
classification, fingerprinting and grouping so that none of them imports another's internals.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from faultlens.types import Signal


class ErrorReason(enum.StrEnum):
    """Why a span or log record counts as an error. One item may have several reasons."""

    SPAN_STATUS = "span_status"  # status.code == ERROR
    EXCEPTION = "exception"  # an exception event (span) or exception.* attributes (log)
    HTTP_STATUS = "http_status"  # server >= 500, client >= 400
    GRPC_STATUS = "grpc_status"  # per the rpc.grpc semantic conventions
    ERROR_TYPE = "error_type"  # error.type is set
    LOG_SEVERITY = "log_severity"  # severity ERROR or above


class SpanKind(enum.IntEnum):
    """OTLP ``Span.SpanKind`` values, as decoded into the ``kind`` column."""

    UNSPECIFIED = 0
    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """One erroneous span or log record, with every field that helps classify and group it.

    ``operation`` is the span name; for a log, the name of the span it was correlated with
    (same trace and span id) when that span was given to detection, else None.
    ``correlated`` says whether that correlation happened.
    """

    time_ns: int
    signal: Signal
    reasons: tuple[ErrorReason, ...]
    service: str
    operation: str | None = None
    trace_id: bytes | None = None
    span_id: bytes | None = None
    span_kind: SpanKind | None = None
    pod: str | None = None
    exception_type: str | None = None
    exception_message: str | None = None
    exception_stacktrace: str | None = None
    status_message: str | None = None
    http_status_code: int | None = None
    grpc_status_code: int | None = None
    error_type: str | None = None
    severity_number: int | None = None
    severity_text: str | None = None
    body: str | None = None
    peer: str | None = None  # peer.service or server.address: the dependency called, if any
    correlated: bool = False

    @property
    def message(self) -> str:
        """The most telling text of the event: exception message, status message, then body."""
        for text in (self.exception_message, self.status_message, self.body):
            if text:
                return text
        return ""

    @property
    def text(self) -> str:
        """Everything textual, for classification: type, error.type, message, first body line."""
        parts = [p for p in (self.exception_type, self.error_type, self.message) if p]
        if self.body and self.body != self.message:
            parts.append(self.body.split("\n", 1)[0])
        return " | ".join(parts)


class Category(enum.StrEnum):
    """Coarse kind of failure. Each :class:`ErrorType` belongs to exactly one category."""

    TIMEOUT = "timeout"
    NETWORK = "network"
    DEPENDENCY_UNAVAILABLE = "dependency_unavailable"
    SERVER_ERROR = "server_error"
    CLIENT_ERROR = "client_error"
    DATABASE = "database"
    RESOURCE_EXHAUSTION = "resource_exhaustion"
    RATE_LIMITED = "rate_limited"
    AUTH = "auth"
    VALIDATION = "validation"
    CODE = "code"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


class ErrorType(enum.StrEnum):
    """Fine-grained kind of failure; its category is :data:`CATEGORY_OF` [type]."""

    # timeout
    TIMEOUT = "timeout"
    CONNECT_TIMEOUT = "connect_timeout"
    READ_TIMEOUT = "read_timeout"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    GATEWAY_TIMEOUT = "gateway_timeout"  # HTTP 504
    # network
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_RESET = "connection_reset"
    CONNECTION_CLOSED = "connection_closed"  # broken pipe, unexpected EOF
    HOST_UNREACHABLE = "host_unreachable"
    DNS = "dns"
    TLS = "tls"
    # dependency unavailable
    SERVICE_UNAVAILABLE = "service_unavailable"  # HTTP 503, gRPC UNAVAILABLE
    BAD_GATEWAY = "bad_gateway"  # HTTP 502
    CIRCUIT_OPEN = "circuit_open"
    # server error (protocol status with nothing more specific)
    HTTP_INTERNAL_ERROR = "http_internal_error"  # HTTP 500
    HTTP_NOT_IMPLEMENTED = "http_not_implemented"  # HTTP 501
    HTTP_5XX = "http_5xx"
    GRPC_UNKNOWN = "grpc_unknown"
    GRPC_INTERNAL = "grpc_internal"
    GRPC_UNIMPLEMENTED = "grpc_unimplemented"
    GRPC_DATA_LOSS = "grpc_data_loss"
    # client error
    NOT_FOUND = "not_found"  # HTTP 404, gRPC NOT_FOUND, missing entity
    CONFLICT = "conflict"  # HTTP 409, gRPC ALREADY_EXISTS / ABORTED
    PRECONDITION_FAILED = "precondition_failed"  # HTTP 412, gRPC FAILED_PRECONDITION
    PAYLOAD_TOO_LARGE = "payload_too_large"  # HTTP 413
    HTTP_4XX = "http_4xx"
    # database
    DB_DEADLOCK = "db_deadlock"
    DB_CONSTRAINT = "db_constraint"
    DB_CONNECTION = "db_connection"
    DB_SYNTAX = "db_syntax"
    DB_ERROR = "db_error"
    # resource exhaustion
    OUT_OF_MEMORY = "out_of_memory"
    POOL_EXHAUSTED = "pool_exhausted"
    DISK_FULL = "disk_full"
    TOO_MANY_OPEN_FILES = "too_many_open_files"
    STACK_OVERFLOW = "stack_overflow"
    QUOTA_EXHAUSTED = "quota_exhausted"  # gRPC RESOURCE_EXHAUSTED, quotas
    # rate limited
    RATE_LIMITED = "rate_limited"  # HTTP 429, throttling
    # auth
    UNAUTHENTICATED = "unauthenticated"  # HTTP 401, gRPC UNAUTHENTICATED, bad/expired token
    PERMISSION_DENIED = "permission_denied"  # HTTP 403, gRPC PERMISSION_DENIED
    # validation
    INVALID_ARGUMENT = "invalid_argument"  # HTTP 400/422, gRPC INVALID_ARGUMENT/OUT_OF_RANGE
    PARSE_ERROR = "parse_error"  # malformed JSON/number/date
    # code
    NULL_REFERENCE = "null_reference"
    INDEX_OUT_OF_RANGE = "index_out_of_range"
    TYPE_ERROR = "type_error"
    ILLEGAL_STATE = "illegal_state"
    DIVIDE_BY_ZERO = "divide_by_zero"
    NOT_IMPLEMENTED = "not_implemented"
    UNHANDLED_EXCEPTION = "unhandled_exception"
    # cancelled
    CANCELLED = "cancelled"
    # unknown
    UNKNOWN = "unknown"


_C = Category
_T = ErrorType
CATEGORY_OF: dict[ErrorType, Category] = {
    _T.TIMEOUT: _C.TIMEOUT,
    _T.CONNECT_TIMEOUT: _C.TIMEOUT,
    _T.READ_TIMEOUT: _C.TIMEOUT,
    _T.DEADLINE_EXCEEDED: _C.TIMEOUT,
    _T.GATEWAY_TIMEOUT: _C.TIMEOUT,
    _T.CONNECTION_REFUSED: _C.NETWORK,
    _T.CONNECTION_RESET: _C.NETWORK,
    _T.CONNECTION_CLOSED: _C.NETWORK,
    _T.HOST_UNREACHABLE: _C.NETWORK,
    _T.DNS: _C.NETWORK,
    _T.TLS: _C.NETWORK,
    _T.SERVICE_UNAVAILABLE: _C.DEPENDENCY_UNAVAILABLE,
    _T.BAD_GATEWAY: _C.DEPENDENCY_UNAVAILABLE,
    _T.CIRCUIT_OPEN: _C.DEPENDENCY_UNAVAILABLE,
    _T.HTTP_INTERNAL_ERROR: _C.SERVER_ERROR,
    _T.HTTP_NOT_IMPLEMENTED: _C.SERVER_ERROR,
    _T.HTTP_5XX: _C.SERVER_ERROR,
    _T.GRPC_UNKNOWN: _C.SERVER_ERROR,
    _T.GRPC_INTERNAL: _C.SERVER_ERROR,
    _T.GRPC_UNIMPLEMENTED: _C.SERVER_ERROR,
    _T.GRPC_DATA_LOSS: _C.SERVER_ERROR,
    _T.NOT_FOUND: _C.CLIENT_ERROR,
    _T.CONFLICT: _C.CLIENT_ERROR,
    _T.PRECONDITION_FAILED: _C.CLIENT_ERROR,
    _T.PAYLOAD_TOO_LARGE: _C.CLIENT_ERROR,
    _T.HTTP_4XX: _C.CLIENT_ERROR,
    _T.DB_DEADLOCK: _C.DATABASE,
    _T.DB_CONSTRAINT: _C.DATABASE,
    _T.DB_CONNECTION: _C.DATABASE,
    _T.DB_SYNTAX: _C.DATABASE,
    _T.DB_ERROR: _C.DATABASE,
    _T.OUT_OF_MEMORY: _C.RESOURCE_EXHAUSTION,
    _T.POOL_EXHAUSTED: _C.RESOURCE_EXHAUSTION,
    _T.DISK_FULL: _C.RESOURCE_EXHAUSTION,
    _T.TOO_MANY_OPEN_FILES: _C.RESOURCE_EXHAUSTION,
    _T.STACK_OVERFLOW: _C.RESOURCE_EXHAUSTION,
    _T.QUOTA_EXHAUSTED: _C.RESOURCE_EXHAUSTION,
    _T.RATE_LIMITED: _C.RATE_LIMITED,
    _T.UNAUTHENTICATED: _C.AUTH,
    _T.PERMISSION_DENIED: _C.AUTH,
    _T.INVALID_ARGUMENT: _C.VALIDATION,
    _T.PARSE_ERROR: _C.VALIDATION,
    _T.NULL_REFERENCE: _C.CODE,
    _T.INDEX_OUT_OF_RANGE: _C.CODE,
    _T.TYPE_ERROR: _C.CODE,
    _T.ILLEGAL_STATE: _C.CODE,
    _T.DIVIDE_BY_ZERO: _C.CODE,
    _T.NOT_IMPLEMENTED: _C.CODE,
    _T.UNHANDLED_EXCEPTION: _C.CODE,
    _T.CANCELLED: _C.CANCELLED,
    _T.UNKNOWN: _C.UNKNOWN,
}


class ClassificationSource(enum.StrEnum):
    """Who placed an error: a rule (certain), the text model (a guess), or nobody."""

    RULE = "rule"
    MODEL = "model"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Classification:
    """Where an error sits in the taxonomy, and the evidence: ``rule`` names the rule that
    matched (or the model's top features); ``confidence`` is 1.0 for rules."""

    category: Category
    type: ErrorType
    source: ClassificationSource
    confidence: float
    rule: str = ""

    @staticmethod
    def unknown() -> Classification:
        return Classification(Category.UNKNOWN, ErrorType.UNKNOWN, ClassificationSource.NONE, 0.0)
