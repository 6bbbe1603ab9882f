"""The faultlens error tree and the one place that maps errors to OTLP status codes.

::

    FaultlensError
     ├── ConfigError                 bad configuration; the message names the key path
     ├── RequestError                a request refused as a whole (carries its OTLP status)
     │    ├── InvalidRequest         malformed protobuf/JSON, too deep   -> 400 / INVALID_ARGUMENT
     │    ├── UnsupportedMediaType   content type or encoding not OTLP  -> 415 / INVALID_ARGUMENT
     │    ├── MethodNotAllowed       not a POST                          -> 405 / UNIMPLEMENTED
     │    ├── NotFound               unknown path                        -> 404 / UNIMPLEMENTED
     │    ├── PayloadTooLarge        over the size limit, after inflation -> 413 / RESOURCE_EXHAUSTED
     │    ├── Unauthenticated        missing or wrong bearer token        -> 401 / UNAUTHENTICATED
     │    └── Overloaded             retryable (memory soft limit, full queue)
     │                                  -> 503 + Retry-After / UNAVAILABLE + RetryInfo
     ├── StoreError                  the store failed or refused a query
     │    ├── UnsupportedQuery       a query the store cannot answer exactly (never approximated)
     │    └── StoreBusy              retryable: reads queued past their wait -> 503 + Retry-After
     └── QueueLocked                 an export disk queue is in use by another process
                                     (faultlens.export.queue.sqlite)

Receivers catch ``RequestError`` and call :func:`status_for`; anything else that escapes a
handler is a bug and is answered 500 / INTERNAL, and the server keeps serving.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc


class FaultlensError(Exception):
    """Root of every error faultlens raises on purpose."""


class ConfigError(FaultlensError):
    """Configuration that cannot be used; ``key`` is the dotted path of the offending key.

    ``more`` holds the other (key, problem) pairs found in the same pass, so that a user
    fixes every key at once; the message lists them all, one a line."""

    def __init__(self, key: str, problem: str, more: tuple[tuple[str, str], ...] = ()) -> None:
        lines = [f"config key '{k}': {p}" if k else f"config: {p}" for k, p in ((key, problem), *more)]
        super().__init__("\n".join(lines))
        self.key = key
        self.problem = problem
        self.more = more


class RequestError(FaultlensError):
    """A request refused as a whole. Subclasses fix the HTTP and gRPC status."""

    http_status: int = 400
    grpc_code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT
    retryable: bool = False


class InvalidRequest(RequestError):
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class UnsupportedMediaType(RequestError):
    http_status = 415
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class MethodNotAllowed(RequestError):
    http_status = 405
    grpc_code = grpc.StatusCode.UNIMPLEMENTED


class NotFound(RequestError):
    http_status = 404
    grpc_code = grpc.StatusCode.UNIMPLEMENTED


class PayloadTooLarge(RequestError):
    http_status = 413
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthenticated(RequestError):
    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED


class Overloaded(RequestError):
    """Retryable refusal: the client should back off for ``retry_after_s`` and send again."""

    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE
    retryable = True

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StoreError(FaultlensError):
    """The store failed to write or read."""


class UnsupportedQuery(StoreError):
    """The store cannot answer this query exactly; it refuses rather than approximates."""


class StoreBusy(StoreError):
    """Retryable: the store's reads were all busy for longer than a read may wait."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class OtlpStatus:
    """How one error is answered on each transport."""

    http_status: int
    grpc_code: grpc.StatusCode
    message: str
    retry_after_s: float | None = None


def status_for(error: BaseException) -> OtlpStatus:
    """Map any error to the status an OTLP client must see. Unknown errors are INTERNAL/500."""
    if isinstance(error, Overloaded):
        return OtlpStatus(error.http_status, error.grpc_code, str(error), error.retry_after_s)
    if isinstance(error, RequestError):
        return OtlpStatus(error.http_status, error.grpc_code, str(error) or type(error).__name__)
    return OtlpStatus(500, grpc.StatusCode.INTERNAL, "internal error")


def cannot_listen(listener: str, host: str, port: int, setting: str, cause: BaseException) -> OSError:
    """The error for a listener that cannot bind its address: it names the listener, the
    address and the setting that chose it, so that "address in use" says which port. Its
    ``errno`` is the cause's, and its message has no ``[Errno N]`` prefix."""
    os_error = cause if isinstance(cause, OSError) else None
    reason = (os_error.strerror if os_error else None) or "the address is in use or not available"
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    error = OSError(f"the {listener} cannot listen on {where}: {reason} (set by {setting})")
    error.errno = os_error.errno if os_error else None
    return error
