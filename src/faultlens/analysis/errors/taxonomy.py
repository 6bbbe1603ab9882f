"""Rules that place an error in the taxonomy (category and type), as ordered data tables.

Three tables, tried in this order; the first match wins:

1. :data:`TEXT_RULES`: patterns over the error's text (exception type, ``error.type``,
   message, first body line), most specific first. Text says *why* something failed, so it
   beats a status code: a 500 whose exception is ``SocketTimeoutException`` is a timeout.
2. :data:`GRPC_CODE_TYPES`, then :data:`HTTP_CODE_TYPES`: the span's status codes, or a
   numeric ``error.type``, or a status code quoted in the text ("status code 503").
3. Nothing matched: :mod:`.textmodel` guesses from the text (``source=MODEL``, with a
   confidence). The model also overrides a *generic* code rule (plain 500, 5xx, 4xx, gRPC
   UNKNOWN/INTERNAL) when it is at least ``model_override_confidence`` sure.

The taxonomy and the exception names per language are documented in ``docs/errors.md``.
Patterns are case-insensitive unless they opt out with ``(?-i:...)``.
"""

from __future__ import annotations

import functools
import re
from collections import OrderedDict
from dataclasses import dataclass

from faultlens.analysis.errors.model import (
    CATEGORY_OF,
    Classification,
    ClassificationSource,
    ErrorEvent,
    ErrorType,
)
from faultlens.analysis.errors.textmodel import TextModel, load_examples
from faultlens.types import Signal

T = ErrorType


@dataclass(frozen=True, slots=True)
class TextRule:
    """``pattern`` found anywhere in the text places the error as ``type``."""

    name: str
    type: ErrorType
    pattern: re.Pattern[str]


def _r(name: str, type_: ErrorType, *alternatives: str) -> TextRule:
    return TextRule(name, type_, re.compile("|".join(f"(?:{a})" for a in alternatives), re.IGNORECASE))


# Ordered: specific before general. Resource exhaustion and pools before timeouts (a pool
# timeout is exhaustion); DB before network (a DB connection error names its driver); TLS and
# DNS before connection errors; timeouts before cancellation (.NET reports HttpClient
# timeouts as TaskCanceledException); code errors after everything that explains them.
# fmt: off
TEXT_RULES: tuple[TextRule, ...] = (
    _r("out of memory", T.OUT_OF_MEMORY,
       r"OutOfMemory(Error|Exception)", r"\bMemoryError\b", r"out of memory", r"OOM ?Killed",
       r"heap out of memory", r"Cannot allocate memory", r"\bENOMEM\b", r"GC overhead limit exceeded",
       r"Java heap space", r"\bMetaspace\b", r"memory limit exceeded", r"InsufficientMemory"),
    _r("stack overflow", T.STACK_OVERFLOW,
       r"StackOverflow(Error|Exception)", r"RecursionError", r"maximum recursion depth",
       r"Maximum call stack size exceeded", r"goroutine stack exceeds"),
    _r("too many open files", T.TOO_MANY_OPEN_FILES, r"too many open files", r"\bE[MN]FILE\b"),
    _r("disk full", T.DISK_FULL,
       r"no space left on device", r"\bENOSPC\b", r"disk (is )?full", r"DiskFull",
       r"(insufficient|not enough) (disk )?space", r"quota exceeded on disk", r"\bInsufficient Storage\b"),
    _r("pool exhausted", T.POOL_EXHAUSTED,
       r"(connection|thread|worker|db|jdbc) ?pool\b.{0,80}(exhaust|full|timed? ?out|not available|limit)",
       r"HikariPool.{0,40}Connection is not available", r"Unable to acquire JDBC Connection",
       r"Timeout waiting for idle object", r"Cannot get a connection, pool error", r"pool exhausted",
       r"QueuePool limit of size", r"RejectedExecutionException", r"too many connections",
       r"remaining connection slots are reserved", r"obtaining a connection from the pool",
       r"max(imum)? pool size", r"pool (is )?(exhausted|full|closed)", r"no (free|idle) connections?"),
    _r("rate limited", T.RATE_LIMITED,
       r"rate[ _-]?limit", r"too many requests", r"throttl", r"RequestLimitExceeded", r"\bSlowDown\b",
       r"\b429\b.{0,20}Too Many", r"TooManyRequests"),
    _r("quota exhausted", T.QUOTA_EXHAUSTED,
       r"quota (exceeded|exhausted)", r"QuotaExceeded", r"(?-i:RESOURCE_EXHAUSTED)", r"ResourceExhausted",
       r"exceed(s|ed)? (the )?quota"),
    _r("hystrix timeout", T.TIMEOUT, r"timed-out and (no )?fallback"),
    _r("circuit open", T.CIRCUIT_OPEN,
       r"circuit ?breaker.{0,40}(open|not permit)", r"CallNotPermittedException", r"short-circuited",
       r"BrokenCircuitException", r"circuit (is )?open", r"HystrixRuntimeException"),
    _r("bean validation", T.INVALID_ARGUMENT,
       r"(javax|jakarta)\.validation\.ConstraintViolationException", r"MethodArgumentNotValidException"),
    _r("db deadlock", T.DB_DEADLOCK,
       r"deadlock", r"CannotAcquireLockException", r"could not serialize access",
       r"SQLSTATE\[?40001", r"\b40P01\b", r"lock wait timeout exceeded", r"LockTimeoutException",
       r"PessimisticLockException", r"LockAcquisitionException"),
    _r("db constraint", T.DB_CONSTRAINT,
       r"ConstraintViolation", r"DataIntegrityViolation", r"IntegrityError", r"unique constraint",
       r"duplicate key", r"Duplicate entry", r"violates (foreign key|unique|not-null|check) constraint",
       r"(UNIQUE|FOREIGN KEY|NOT NULL|CHECK) constraint failed", r"IntegrityConstraintViolation",
       r"cannot insert (duplicate key|the value NULL)", r"SQLSTATE\[?23\d{3}", r"SequelizeUniqueConstraint",
       r"E11000 duplicate key", r"SequelizeForeignKeyConstraint"),
    _r("db syntax", T.DB_SYNTAX,
       r"SQLSyntaxError", r"syntax error at or near", r"error in your SQL syntax", r"BadSqlGrammar",
       r"ProgrammingError", r"no such (table|column)", r"relation \S+ does not exist",
       r"column \S+ does not exist", r"Unknown column", r"Invalid object name", r"Incorrect syntax near",
       r"SQLGrammarException", r"SQLSTATE\[?42\w{3}", r"ORA-009(00|04|42)"),
    _r("db timeout", T.TIMEOUT,
       r"SQLTimeoutException", r"QueryTimeoutException", r"statement timeout",
       r"canceling statement due to", r"Execution Timeout Expired"),
    _r("db connection", T.DB_CONNECTION,
       r"CannotGetJdbcConnection", r"JDBCConnectionException", r"CommunicationsException",
       r"Communications link failure", r"could not connect to server", r"SQLTransientConnectionException",
       r"SQLNonTransientConnectionException", r"MongoTimeoutException", r"MongoSocket\w*Exception",
       r"MongoServerSelectionError", r"RedisConnection(Failure)?Exception", r"Unable to connect to Redis",
       r"driver: bad connection", r"the database system is (starting up|shutting down|in recovery)",
       r"OperationalError.{0,80}(connect|server closed|Lost connection|gone away)",
       r"Lost connection to MySQL", r"MySQL server has gone away", r"terminating connection due to",
       r"(postgres|postgresql|mysql|redis|mongo\w*|database|db)\b.{0,40}connection (refused|reset|closed)",
       r"connection to (the )?(database|db)", r"A network-related or instance-specific error",
       r"SqlException.{0,80}(connection|network)", r"NpgsqlException.{0,80}(connect|network)"),
    _r("db error", T.DB_ERROR,
       r"SQL(Exception|State)", r"SqlException", r"PSQLException", r"MySQL\w*Exception",
       r"DataAccessException",
       r"sqlalchemy\.exc", r"psycopg2?\.", r"pymysql\.", r"\bORA-\d{5}\b", r"MongoError", r"MongoException",
       r"SequelizeDatabaseError", r"QueryFailedError", r"DbUpdateException", r"NpgsqlException",
       r"PersistenceException", r"HibernateException", r"\bpq: ", r"DatabaseError", r"RedisException",
       r"JedisDataException", r"ReplyError"),
    _r("tls", T.TLS,
       r"SSLHandshakeException", r"SSL(Exception|Error)", r"CERTIFICATE_VERIFY_FAILED",
       r"certificate (has )?expired", r"\bx509: ", r"\btls: ", r"SSL routines", r"handshake failure",
       r"The remote certificate is invalid", r"unable to verify the first certificate",
       r"self[- ]signed certificate", r"ERR_TLS", r"PKIX path building failed", r"CERT_HAS_EXPIRED",
       r"AuthenticationException: The remote certificate", r"bad certificate", r"TLS handshake"),
    _r("dns", T.DNS,
       r"UnknownHostException", r"Name or service not known", r"nodename nor servname",
       r"\bENOTFOUND\b", r"\bEAI_AGAIN\b", r"no such host", r"Temporary failure in name resolution",
       r"NameResolutionError", r"Failed to resolve", r"could not resolve (host|proxy|address)?",
       r"No such host is known", r"\bDNS\b", r"gaierror", r"name resolution"),
    _r("connect timeout", T.CONNECT_TIMEOUT,
       r"ConnectTimeout", r"connect timed out", r"Connection timed out", r"connection timeout",
       r"dial tcp.{0,80}i/o timeout", r"connect ETIMEDOUT", r"timed out (while )?connecting",
       r"timeout (while )?(connecting|establishing)"),
    _r("read timeout", T.READ_TIMEOUT,
       r"Read timed out", r"ReadTimeout", r"read timeout", r"ESOCKETTIMEDOUT", r"read tcp.{0,80}i/o timeout",
       r"response timeout", r"timed out (reading|waiting for (a )?response)", r"socket timeout"),
    _r("deadline exceeded", T.DEADLINE_EXCEEDED,
       r"(?-i:DEADLINE_EXCEEDED)", r"deadline exceeded", r"DeadlineExceeded"),
    _r("gateway timeout", T.GATEWAY_TIMEOUT, r"Gateway Time-?out", r"GatewayTimeout"),
    _r("timeout", T.TIMEOUT,
       r"timed? ?out", r"timeout", r"\bETIMEDOUT\b", r"took too long", r"HttpClient\.Timeout",
       r"exceeded .{0,30}time ?limit", r"expired while waiting"),
    _r("cancelled", T.CANCELLED,
       r"OperationCanceledException", r"TaskCanceledException", r"CancellationException",
       r"context canceled", r"CancelledError", r"\bAbortError\b", r"request (was )?(cancell?ed|aborted)",
       r"ClientAbortException", r"(?-i:\bCANCELLED\b)", r"operation was cancell?ed",
       r"client closed request"),
    _r("connection refused", T.CONNECTION_REFUSED,
       r"ConnectException", r"Connection refused", r"\bECONNREFUSED\b", r"connection was refused",
       r"actively refused", r"ConnectionRefusedError", r"No connection could be made", r"connect failed",
       r"failed to connect", r"could not connect", r"unable to connect", r"ConnectError"),
    _r("connection reset", T.CONNECTION_RESET,
       r"Connection reset", r"\bECONNRESET\b", r"ConnectionResetError", r"forcibly closed",
       r"reset by peer", r"socket hang up", r"RST_STREAM", r"ConnectionAbortedError", r"ECONNABORTED"),
    _r("connection closed", T.CONNECTION_CLOSED,
       r"Broken pipe", r"\bEPIPE\b", r"unexpected EOF", r"EOFException", r"Premature end",
       r"connection (was |has been )?closed", r"prematurely closed", r"ClosedChannelException",
       r"server closed the connection", r"RemoteDisconnected", r"ServerDisconnected", r"IncompleteRead",
       r"\bEOF\b", r"ChunkedEncodingError", r"connection aborted"),
    _r("host unreachable", T.HOST_UNREACHABLE,
       r"No route to host", r"\bEHOSTUNREACH\b", r"Network is unreachable", r"\bENETUNREACH\b",
       r"NoRouteToHostException", r"host (is )?unreachable", r"network unreachable"),
    _r("service unavailable", T.SERVICE_UNAVAILABLE,
       r"Service Unavailable", r"ServiceUnavailable", r"(?-i:\bUNAVAILABLE\b)", r"no healthy upstream",
       r"upstream connect error", r"no available server", r"does not have available server",
       r"NoAvailableServers?Exception", r"No instances available", r"Service \S+ is unavailable",
       r"dependency .{0,40}unavailable", r"temporarily unavailable", r"NoHostAvailableException"),
    _r("bad gateway", T.BAD_GATEWAY, r"Bad Gateway", r"BadGateway"),
    _r("permission denied", T.PERMISSION_DENIED,
       r"Forbidden", r"Access ?Denied", r"PermissionError", r"(?-i:PERMISSION_DENIED)", r"permission denied",
       r"\bEACCES\b", r"\bEPERM\b", r"not authori[sz]ed to", r"UnauthorizedAccessException",
       r"SecurityException", r"insufficient (scope|privileges|permissions)", r"Operation not permitted",
       r"AuthorizationException", r"does not have (the )?permission"),
    _r("unauthenticated", T.UNAUTHENTICATED,
       r"Unauthori[sz]ed", r"Unauthenticated", r"Authentication(Exception|Error|Failed)",
       r"InvalidToken", r"TokenExpired", r"ExpiredJwtException", r"\bJwt\w*Exception",
       r"jwt (expired|malformed)", r"invalid (token|credentials|api key|signature)",
       r"token (has |is )?(expired|invalid)", r"Bad credentials", r"BadCredentialsException",
       r"authentication failed", r"login failed", r"NotAuthorizedException", r"invalid_grant",
       r"InvalidCredentials", r"Unable to authenticate"),
    _r("parse error", T.PARSE_ERROR,
       r"JsonParseException", r"JsonProcessingException", r"JSONDecodeError", r"Unexpected token .{0,20}JSON",
       r"in JSON at position", r"NumberFormatException", r"(?<!\w)FormatException", r"DateTimeParseException",
       r"\bParseException", r"invalid character .{0,20}looking for", r"cannot unmarshal", r"\bjson: ",
       r"strconv\.\w+: parsing", r"HttpMessageNotReadableException", r"JsonException", r"XmlException",
       r"malformed", r"MismatchedInputException", r"could not parse", r"failed to parse",
       r"invalid literal for int", r"Unexpected end of JSON input", r"UnmarshalException",
       r"SerializationException"),
    _r("invalid argument", T.INVALID_ARGUMENT,
       r"IllegalArgumentException", r"Argument(Null|OutOfRange)?Exception", r"\bValueError\b",
       r"Validation(Exception|Error)", r"BindException", r"(?-i:INVALID_ARGUMENT|OUT_OF_RANGE)",
       r"invalid (argument|input|parameter|request|value|format|email|id)", r"Bad Request", r"BadRequest",
       r"Unprocessable Entity", r"must not be (null|blank|empty)", r"is required",
       r"required (field|parameter)",
       r"missing (required )?(parameter|field|argument|header)", r"MissingServletRequestParameter",
       r"TypeMismatchException", r"ErrInvalid", r"is not valid", r"InvalidParameter", r"validation failed",
       r"UnprocessableEntity", r"ValidationError"),
    _r("null reference", T.NULL_REFERENCE,
       r"NullPointerException", r"NullReferenceException", r"Object reference not set to an instance",
       r"nil pointer dereference", r"invalid memory address",
       r"Cannot (read|set) propert(y|ies) of (undefined|null)",
       r"(undefined|null) is not an object", r"'NoneType' object", r"NoneType",
       r"UninitializedPropertyAccess",
       r"Cannot destructure property", r"of (undefined|null) \(reading", r"is null\b", r"null value",
       r"KotlinNullPointerException", r"nil map", r"Cannot invoke .{0,80} because .{0,120} is null"),
    _r("index out of range", T.INDEX_OUT_OF_RANGE,
       r"IndexOutOfBounds", r"ArrayIndexOutOfBounds", r"StringIndexOutOfBounds", r"IndexOutOfRange",
       r"\bIndexError\b", r"index out of range", r"\bKeyError\b", r"KeyNotFoundException",
       r"NoSuchElementException",
       r"\bRangeError\b", r"slice bounds out of range", r"list index out of range", r"out of bounds"),
    _r("divide by zero", T.DIVIDE_BY_ZERO,
       r"/ by zero", r"ZeroDivisionError", r"DivideByZeroException", r"divide by zero", r"division by zero"),
    _r("type error", T.TYPE_ERROR,
       r"ClassCastException", r"\bTypeError\b", r"InvalidCastException", r"AttributeError", r"\bNameError\b",
       r"\bReferenceError\b", r"is not a function", r"interface conversion", r"MissingMethodException",
       r"NoSuchMethodError", r"NoSuchFieldError", r"ClassNotFoundException", r"NoClassDefFoundError",
       r"ModuleNotFoundError", r"ImportError", r"Cannot find module", r"TypeLoadException",
       r"is not iterable", r"unsupported operand", r"object has no attribute", r"cannot be cast to"),
    _r("not implemented", T.NOT_IMPLEMENTED,
       r"NotImplemented(Error|Exception)", r"UnsupportedOperationException", r"not implemented",
       r"PlatformNotSupportedException", r"not supported"),
    _r("illegal state", T.ILLEGAL_STATE,
       r"IllegalStateException", r"InvalidOperationException", r"ConcurrentModificationException",
       r"IllegalMonitorStateException", r"dictionary changed size",
       r"concurrent map (writes|read and map write)",
       r"Assertion ?(Error|failed)", r"invariant", r"unreachable", r"invalid state", r"unexpected state"),
    _r("not found", T.NOT_FOUND,
       r"NotFound", r"Not Found", r"NoSuchKey", r"NoSuchBucket", r"EntityNotFound", r"ObjectDoesNotExist",
       r"DoesNotExist", r"FileNotFound", r"\bENOENT\b", r"no such file or directory", r"NoResultException",
       r"EmptyResultDataAccessException", r"ResourceNotFound", r"record not found", r"(?-i:NOT_FOUND)",
       r"does not exist", r"could not be found", r"no such \w+", r"unknown (user|product|order|item|id)"),
    _r("conflict", T.CONFLICT,
       r"\bConflict\b", r"(?-i:ALREADY_EXISTS|ABORTED)", r"AlreadyExists", r"already exists",
       r"OptimisticLock", r"StaleObjectStateException", r"DbUpdateConcurrencyException", r"version conflict",
       r"StaleStateException"),
    _r("precondition failed", T.PRECONDITION_FAILED,
       r"(?-i:FAILED_PRECONDITION)", r"Precondition Failed", r"PreconditionFailed"),
    _r("payload too large", T.PAYLOAD_TOO_LARGE,
       r"Payload Too Large", r"Request Entity Too Large", r"MaxUploadSizeExceeded", r"body exceeded",
       r"larger than max", r"too large"),
    _r("grpc data loss", T.GRPC_DATA_LOSS, r"(?-i:DATA_LOSS)"),
    _r("grpc unimplemented", T.GRPC_UNIMPLEMENTED, r"(?-i:UNIMPLEMENTED)"),
    _r("http 500", T.HTTP_INTERNAL_ERROR, r"Internal Server Error", r"InternalServerError"),
    _r("unhandled exception", T.UNHANDLED_EXCEPTION,
       r"Unhandled (exception|rejection|error)", r"UnhandledPromiseRejection", r"uncaught", r"\bpanic: ",
       r"goroutine \d+ \[running\]", r"Traceback \(most recent call last\)", r"\bRuntimeException\b",
       r"Exception in thread", r"UndeclaredThrowableException", r"ServletException", r"AggregateException",
       r"\bRuntimeError\b", r"\bSystemError\b", r"UnexpectedRollbackException", r"\bException\b: "),
)
# fmt: on

HTTP_CODE_TYPES: dict[int, ErrorType] = {
    400: T.INVALID_ARGUMENT,
    401: T.UNAUTHENTICATED,
    403: T.PERMISSION_DENIED,
    404: T.NOT_FOUND,
    408: T.TIMEOUT,
    409: T.CONFLICT,
    410: T.NOT_FOUND,
    412: T.PRECONDITION_FAILED,
    413: T.PAYLOAD_TOO_LARGE,
    422: T.INVALID_ARGUMENT,
    429: T.RATE_LIMITED,
    499: T.CANCELLED,  # nginx: client closed request
    500: T.HTTP_INTERNAL_ERROR,
    501: T.HTTP_NOT_IMPLEMENTED,
    502: T.BAD_GATEWAY,
    503: T.SERVICE_UNAVAILABLE,
    504: T.GATEWAY_TIMEOUT,
    507: T.DISK_FULL,  # insufficient storage
}

GRPC_CODE_TYPES: dict[int, ErrorType] = {
    1: T.CANCELLED,
    2: T.GRPC_UNKNOWN,
    3: T.INVALID_ARGUMENT,
    4: T.DEADLINE_EXCEEDED,
    5: T.NOT_FOUND,
    6: T.CONFLICT,  # ALREADY_EXISTS
    7: T.PERMISSION_DENIED,
    8: T.QUOTA_EXHAUSTED,  # RESOURCE_EXHAUSTED
    9: T.PRECONDITION_FAILED,
    10: T.CONFLICT,  # ABORTED
    11: T.INVALID_ARGUMENT,  # OUT_OF_RANGE
    12: T.GRPC_UNIMPLEMENTED,
    13: T.GRPC_INTERNAL,
    14: T.SERVICE_UNAVAILABLE,
    15: T.GRPC_DATA_LOSS,
    16: T.UNAUTHENTICATED,
}

# Code rules that say only "the server failed": the text model may refine them.
GENERIC_TYPES: frozenset[ErrorType] = frozenset(
    {T.HTTP_INTERNAL_ERROR, T.HTTP_5XX, T.HTTP_4XX, T.GRPC_UNKNOWN, T.GRPC_INTERNAL, T.UNHANDLED_EXCEPTION}
)

# "status code 503", "HTTP 503", "[503]", "status=503", "503 Service ...": a status quoted in text.
_STATUS_IN_TEXT = re.compile(
    r"(?:status(?:[ _]?code)?|HTTP(?:/\d(?:\.\d)?)?|response code|code)\s*[:=]?\s*\[?(\d{3})\b|\[(\d{3})\]",
    re.IGNORECASE,
)


def http_type(code: int) -> ErrorType | None:
    """The type of an HTTP status code, or None when it is not an error (< 400)."""
    if code in HTTP_CODE_TYPES:
        return HTTP_CODE_TYPES[code]
    if 500 <= code <= 599:
        return T.HTTP_5XX
    if 400 <= code <= 499:
        return T.HTTP_4XX
    return None


def match_text(text: str) -> TextRule | None:
    """The first text rule that matches ``text``."""
    if not text:
        return None
    for rule in TEXT_RULES:
        if rule.pattern.search(text):
            return rule
    return None


def match_codes(event: ErrorEvent) -> tuple[ErrorType, str] | None:
    """The type given by the event's status codes, with the name of the rule that gave it."""
    if event.grpc_status_code and event.grpc_status_code in GRPC_CODE_TYPES:
        return GRPC_CODE_TYPES[event.grpc_status_code], f"grpc status {event.grpc_status_code}"
    if event.http_status_code:
        t = http_type(event.http_status_code)
        if t is not None:
            return t, f"http status {event.http_status_code}"
    if event.error_type and event.error_type.isdigit():
        t = http_type(int(event.error_type))
        if t is not None:
            return t, f"error.type {event.error_type}"
    for m in _STATUS_IN_TEXT.finditer(event.text):
        code = int(m.group(1) or m.group(2))
        t = http_type(code)
        if t is not None:
            return t, f"status {code} in text"
    return None


@dataclass(frozen=True, slots=True)
class ClassifierConfig:
    model_override_confidence: float = 0.6  # the model refines a generic code rule above this
    cache_size: int = 4096


class Classifier:
    """Rules first, then the text model. Pure; results are memoised by their inputs."""

    def __init__(self, config: ClassifierConfig | None = None, model: TextModel | None = None) -> None:
        self.config = config or ClassifierConfig()
        self._model = model
        self._cache: OrderedDict[tuple[object, ...], Classification] = OrderedDict()

    @property
    def model(self) -> TextModel:
        if self._model is None:
            self._model = default_model()
        return self._model

    def classify(self, event: ErrorEvent) -> Classification:
        key = (event.text, event.http_status_code, event.grpc_status_code, event.error_type)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        result = self._classify(event)
        self._cache[key] = result
        if len(self._cache) > self.config.cache_size:
            self._cache.popitem(last=False)
        return result

    def _classify(self, event: ErrorEvent) -> Classification:
        text = event.text
        rule = match_text(text)
        if rule is not None and rule.type not in GENERIC_TYPES:
            return _by_rule(rule.type, f"text: {rule.name}")
        codes = match_codes(event)
        if codes is not None and codes[0] not in GENERIC_TYPES:
            return _by_rule(*codes)
        fallback = (
            _by_rule(codes[0], codes[1])
            if codes is not None
            else (_by_rule(rule.type, f"text: {rule.name}") if rule is not None else None)
        )
        if not text.strip():
            return fallback or Classification.unknown()
        guess = self.model.predict(text)
        if fallback is None or (
            guess.type not in GENERIC_TYPES and guess.confidence >= self.config.model_override_confidence
        ):
            return Classification(
                CATEGORY_OF[guess.type],
                guess.type,
                ClassificationSource.MODEL,
                guess.confidence,
                guess.evidence,
            )
        return fallback

    def classify_text(self, text: str) -> Classification:
        """Classify a bare message (no codes)."""
        return self.classify(ErrorEvent(0, Signal.LOGS, (), "", exception_message=text))


def _by_rule(type_: ErrorType, name: str) -> Classification:
    return Classification(CATEGORY_OF[type_], type_, ClassificationSource.RULE, 1.0, name)


def _literal(alternative: str) -> str:
    """A phrase from one regex alternative: ``OutOfMemory(Error|Exception)`` -> ``OutOfMemoryError``."""
    p = alternative.replace("(?-i:", "(")
    p = re.sub(r"\(\?<[!=][^)]*\)", "", p)
    p = re.sub(r"\\[bsSdw][+*]?|\\d\{\d+\}", " ", p)
    p = re.sub(r"\.\{\d+,\d+\}|\.\*|\.\+", " ", p)
    p = re.sub(r"\[[^\]]*\][?*+]?", " ", p)
    while True:
        q = re.sub(r"\(([^()|]*)(\|[^()]*)?\)\??", r"\1", p)
        if q == p:
            break
        p = q
    for ch in "\\?^$":
        p = p.replace(ch, "")
    return " ".join(p.split())


def rule_phrases() -> list[tuple[str, ErrorType]]:
    """One example per alternative of every text rule: the rules' vocabulary, taught to the model.

    The model sees what the rules know, so a message that misses a rule by a spelling or a
    word order still lands near it (measured: +19 points of held-out accuracy; docs/errors.md).
    """
    out = []
    for rule in TEXT_RULES:
        for alternative in rule.pattern.pattern.split("|(?:"):
            phrase = _literal(alternative.removeprefix("(?:").removesuffix(")"))
            if phrase:
                out.append((phrase, rule.type))
    return out


@functools.lru_cache(maxsize=1)
def default_model() -> TextModel:
    """The model trained on the shipped examples and the rule phrases (once per process)."""
    return TextModel.train([*load_examples(), *rule_phrases()])
