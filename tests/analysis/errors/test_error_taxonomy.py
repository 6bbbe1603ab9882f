# ruff: noqa: E501  (real exception strings are kept whole)
"""Taxonomy rules on real exception strings of each language, codes, and the model fallback."""

from __future__ import annotations

import pytest

from faultlens.analysis.errors import (
    CATEGORY_OF,
    Category,
    ClassificationSource,
    Classifier,
    ErrorEvent,
    ErrorType,
    SpanKind,
)
from faultlens.types import Signal

T = ErrorType
CLASSIFIER = Classifier()

REAL_ERRORS = [
    # Java
    ("java.net.SocketTimeoutException: Read timed out", T.READ_TIMEOUT),
    ("java.net.SocketTimeoutException: connect timed out", T.CONNECT_TIMEOUT),
    ("java.net.ConnectException: Connection refused (Connection refused)", T.CONNECTION_REFUSED),
    ("java.net.UnknownHostException: ts-order-service", T.DNS),
    ('java.lang.NullPointerException: Cannot invoke "String.length()" because "s" is null', T.NULL_REFERENCE),
    ("java.lang.OutOfMemoryError: Java heap space", T.OUT_OF_MEMORY),
    (
        "com.mysql.cj.jdbc.exceptions.MySQLTransactionRollbackException: Deadlock found when trying to get lock",
        T.DB_DEADLOCK,
    ),
    (
        "java.sql.SQLIntegrityConstraintViolationException: Duplicate entry '1' for key 'PRIMARY'",
        T.DB_CONSTRAINT,
    ),
    ("java.sql.SQLSyntaxErrorException: Table 'ts.orders' doesn't exist", T.DB_SYNTAX),
    (
        "java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, request timed out "
        "after 30000ms.",
        T.POOL_EXHAUSTED,
    ),
    (
        "feign.FeignException$ServiceUnavailable: [503 Service Unavailable] during [GET]",
        T.SERVICE_UNAVAILABLE,
    ),
    (
        "com.netflix.hystrix.exception.HystrixRuntimeException: getRoute short-circuited and fallback failed.",
        T.CIRCUIT_OPEN,
    ),
    (
        "org.springframework.web.client.HttpClientErrorException$Unauthorized: 401 Unauthorized",
        T.UNAUTHENTICATED,
    ),
    ("org.springframework.security.access.AccessDeniedException: Access is denied", T.PERMISSION_DENIED),
    ("java.lang.IllegalArgumentException: id must not be null", T.INVALID_ARGUMENT),
    ("javax.net.ssl.SSLHandshakeException: PKIX path building failed", T.TLS),
    ("java.lang.ClassCastException: class A cannot be cast to class B", T.TYPE_ERROR),
    ("java.lang.ArithmeticException: / by zero", T.DIVIDE_BY_ZERO),
    # Python
    (
        "requests.exceptions.ConnectionError: HTTPConnectionPool(host='x', port=80): Max retries exceeded with url: "
        "/ (Caused by NewConnectionError('Failed to establish a new connection: [Errno 111] Connection refused'))",
        T.CONNECTION_REFUSED,
    ),
    ("ConnectionResetError: [Errno 104] Connection reset by peer", T.CONNECTION_RESET),
    ("AttributeError: 'NoneType' object has no attribute 'id'", T.NULL_REFERENCE),
    ("KeyError: 'user'", T.INDEX_OUT_OF_RANGE),
    (
        'psycopg2.errors.UniqueViolation: duplicate key value violates unique constraint "users_pkey"',
        T.DB_CONSTRAINT,
    ),
    ("OSError: [Errno 28] No space left on device", T.DISK_FULL),
    ("OSError: [Errno 24] Too many open files", T.TOO_MANY_OPEN_FILES),
    ("MemoryError", T.OUT_OF_MEMORY),
    ("asyncio.exceptions.CancelledError", T.CANCELLED),
    ("json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)", T.PARSE_ERROR),
    # Go
    ("rpc error: code = DeadlineExceeded desc = context deadline exceeded", T.DEADLINE_EXCEEDED),
    ("dial tcp 10.0.0.1:5432: connect: connection refused", T.CONNECTION_REFUSED),
    ("panic: runtime error: invalid memory address or nil pointer dereference", T.NULL_REFERENCE),
    ("context canceled", T.CANCELLED),
    ("dial tcp: lookup redis on 10.96.0.10:53: no such host", T.DNS),
    ("x509: certificate has expired or is not yet valid", T.TLS),
    # JavaScript / Node
    ("Error: connect ECONNREFUSED 127.0.0.1:6379", T.CONNECTION_REFUSED),
    ("Error: connect ETIMEDOUT 10.0.0.3:443", T.CONNECT_TIMEOUT),
    ("TypeError: Cannot read properties of undefined (reading 'id')", T.NULL_REFERENCE),
    ("Error: socket hang up", T.CONNECTION_RESET),
    ("FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory", T.OUT_OF_MEMORY),
    ("RangeError: Maximum call stack size exceeded", T.STACK_OVERFLOW),
    # .NET
    (
        "System.NullReferenceException: Object reference not set to an instance of an object.",
        T.NULL_REFERENCE,
    ),
    ("System.TimeoutException: The operation has timed out.", T.TIMEOUT),
    (
        "System.Net.Http.HttpRequestException: No connection could be made because the target machine actively "
        "refused it.",
        T.CONNECTION_REFUSED,
    ),
    (
        "Microsoft.Data.SqlClient.SqlException: Transaction (Process ID 52) was deadlocked on lock resources",
        T.DB_DEADLOCK,
    ),
    (
        "System.Threading.Tasks.TaskCanceledException: The request was canceled due to the configured "
        "HttpClient.Timeout of 100 seconds elapsing.",
        T.TIMEOUT,
    ),
    ("System.OperationCanceledException: The operation was canceled.", T.CANCELLED),
    ("System.UnauthorizedAccessException: Access to the path '/data' is denied.", T.PERMISSION_DENIED),
]


@pytest.mark.parametrize(("text", "expected"), REAL_ERRORS)
def test_rules_place_real_exceptions(text: str, expected: ErrorType) -> None:
    c = CLASSIFIER.classify_text(text)
    assert (c.type, c.source) == (expected, ClassificationSource.RULE), c.rule
    assert c.category is CATEGORY_OF[expected] and c.confidence == 1.0


def event(**kw: object) -> ErrorEvent:
    return ErrorEvent(0, Signal.TRACES, (), "svc", span_kind=SpanKind.CLIENT, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"http_status_code": 503}, T.SERVICE_UNAVAILABLE),
        ({"http_status_code": 429}, T.RATE_LIMITED),
        ({"http_status_code": 401}, T.UNAUTHENTICATED),
        ({"http_status_code": 403}, T.PERMISSION_DENIED),
        ({"http_status_code": 404}, T.NOT_FOUND),
        ({"http_status_code": 422}, T.INVALID_ARGUMENT),
        ({"http_status_code": 504}, T.GATEWAY_TIMEOUT),
        ({"http_status_code": 418}, T.HTTP_4XX),
        ({"grpc_status_code": 14}, T.SERVICE_UNAVAILABLE),
        ({"grpc_status_code": 4}, T.DEADLINE_EXCEEDED),
        ({"grpc_status_code": 1}, T.CANCELLED),
        ({"grpc_status_code": 8}, T.QUOTA_EXHAUSTED),
        ({"error_type": "503"}, T.SERVICE_UNAVAILABLE),
        ({"status_message": "Request failed with status code 429"}, T.RATE_LIMITED),
    ],
)
def test_status_codes(kw: dict[str, object], expected: ErrorType) -> None:
    c = CLASSIFIER.classify(event(**kw))
    assert c.type is expected and c.source is ClassificationSource.RULE


def test_text_beats_status_code() -> None:
    c = CLASSIFIER.classify(
        event(
            http_status_code=500,
            exception_type="java.net.SocketTimeoutException",
            exception_message="Read timed out",
        )
    )
    assert c.type is T.READ_TIMEOUT


def test_generic_500_stays_a_rule_without_a_confident_model() -> None:
    c = CLASSIFIER.classify(event(http_status_code=500))
    assert (c.type, c.source, c.category) == (
        T.HTTP_INTERNAL_ERROR,
        ClassificationSource.RULE,
        Category.SERVER_ERROR,
    )


def test_unplaced_text_gets_a_model_guess() -> None:
    c = CLASSIFIER.classify_text("the primary replica stopped answering our queries during failover")
    assert c.source is ClassificationSource.MODEL and 0.0 < c.confidence <= 1.0
    assert c.rule.startswith("model")


def test_nothing_to_go_on_is_unknown() -> None:
    c = CLASSIFIER.classify(event())
    assert (c.type, c.source) == (T.UNKNOWN, ClassificationSource.NONE)


def test_every_type_has_a_category() -> None:
    assert set(CATEGORY_OF) == set(ErrorType)
    assert set(CATEGORY_OF.values()) == set(Category)
