"""The receivers' counters, in one place, so every outcome of a request is counted once.

Every request ends in exactly one of: accepted (items counted received/accepted/rejected),
refused before or while decoding (``refused_requests{reason}``), or decoded and then
refused as a whole by the pipeline (``refused_items`` plus ``refused_requests{overloaded}``).
An unexpected failure (a bug, answered 500 / INTERNAL) is counted with reason ``internal``.
"""

from __future__ import annotations

import enum

from faultlens.decode.base import DecodedBatch
from faultlens.errors import (
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    Unauthenticated,
    UnsupportedMediaType,
)
from faultlens.selfmetrics import SelfMetrics
from faultlens.types import Signal, Transport

__all__ = ["UNKNOWN_SIGNAL", "Accounting", "RefusalReason"]

# Label used when a request is refused before its signal is known (unknown HTTP path).
UNKNOWN_SIGNAL = "unknown"


class RefusalReason(enum.StrEnum):
    """The ``reason`` label of ``faultlens_receiver_refused_requests_total``."""

    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    MALFORMED = "malformed"
    UNAUTHENTICATED = "unauthenticated"
    OVERLOADED = "overloaded"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_FOUND = "not_found"
    DISCONNECTED = "disconnected"  # the client left before the body was complete
    INTERNAL = "internal"

    @staticmethod
    def for_error(error: BaseException) -> RefusalReason:
        for cls, reason in _REASONS:
            if isinstance(error, cls):
                return reason
        return RefusalReason.INTERNAL


_REASONS: tuple[tuple[type[BaseException], RefusalReason], ...] = (
    (PayloadTooLarge, RefusalReason.TOO_LARGE),
    (UnsupportedMediaType, RefusalReason.UNSUPPORTED_MEDIA_TYPE),
    (InvalidRequest, RefusalReason.MALFORMED),
    (Unauthenticated, RefusalReason.UNAUTHENTICATED),
    (Overloaded, RefusalReason.OVERLOADED),
    (MethodNotAllowed, RefusalReason.METHOD_NOT_ALLOWED),
    (NotFound, RefusalReason.NOT_FOUND),
)


class Accounting:
    """Writes one transport's outcomes into :class:`SelfMetrics`."""

    def __init__(self, metrics: SelfMetrics, transport: Transport) -> None:
        self._m = metrics
        self._t = transport.value

    def refused(
        self, signal: Signal | None, error: BaseException, reason: RefusalReason | None = None
    ) -> RefusalReason:
        """Count a request refused as a whole; returns the reason used as label."""
        reason = reason or RefusalReason.for_error(error)
        label = signal.value if signal is not None else UNKNOWN_SIGNAL
        self._m.refused_requests.labels(label, self._t, reason.value).inc()
        return reason

    def body(self, signal: Signal, nbytes: int) -> None:
        """Request bytes after decompression that reached the decoder."""
        self._m.request_bytes.labels(signal.value, self._t).inc(nbytes)

    def decoded(self, batch: DecodedBatch) -> None:
        s = batch.signal.value
        self._m.received_items.labels(s, self._t).inc(batch.accepted + batch.rejected)
        if batch.rejected:
            self._m.rejected_items.labels(s, self._t).inc(batch.rejected)

    def accepted(self, batch: DecodedBatch) -> None:
        self._m.accepted_items.labels(batch.signal.value, self._t).inc(batch.accepted)

    def refused_items(self, batch: DecodedBatch) -> None:
        """The items of a decoded batch the pipeline would not take (the request itself is
        counted by :meth:`refused`, like every other refusal)."""
        self._m.refused_items.labels(batch.signal.value, self._t).inc(batch.accepted)
