"""Admission control: refuse work the process cannot afford *before* decoding it.

Both receivers ask the same :class:`Admission` before they buffer or decode a request, so
overload turns into back-pressure (503 + Retry-After / UNAVAILABLE + RetryInfo) instead of
a growing process. Two independent checks:

- **memory soft limit**: the process RSS (via psutil) against
  ``AdmissionConfig.memory_soft_limit_mib``. Reading RSS costs a system call, so it is
  sampled at most every :data:`RSS_SAMPLE_INTERVAL_S` and the cached value is used in
  between: at thousands of requests per second the limit is still seen within 100 ms.
- **in-flight bytes**: the bytes of request bodies currently held in memory (being read,
  inflated or decoded) against ``AdmissionConfig.max_inflight_bytes``. A request takes a
  :class:`Ticket` and grows it as its body arrives; the ticket gives the bytes back when the
  request is done, whatever the outcome.

A request that alone is larger than ``max_inflight_bytes`` is let through when nothing
else is in flight; otherwise it could never succeed and a retrying client would loop for
ever (the per-request size limit is the receivers' job, not admission's).

All methods are cheap and thread-safe, so a decode running off the event loop may hold a
ticket too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType

import psutil

from faultlens.config.model import AdmissionConfig
from faultlens.errors import Overloaded
from faultlens.selfmetrics import SelfMetrics

__all__ = ["RSS_SAMPLE_INTERVAL_S", "Admission", "Ticket"]

RSS_SAMPLE_INTERVAL_S = 0.1
_MIB = 1024 * 1024


def _process_rss() -> int:
    return int(psutil.Process().memory_info().rss)


class Admission:
    """The shared gate in front of decoding. One per server instance."""

    def __init__(
        self,
        config: AdmissionConfig,
        metrics: SelfMetrics,
        *,
        rss: Callable[[], int] = _process_rss,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._rss = rss
        self._clock = clock
        self._lock = threading.Lock()
        self._inflight = 0
        self._rss_bytes = 0
        self._rss_at = float("-inf")
        self._soft_limit = (
            config.memory_soft_limit_mib * _MIB if config.memory_soft_limit_mib is not None else None
        )
        metrics.memory_soft_limit_bytes.set(self._soft_limit or 0)

    @property
    def retry_after_s(self) -> float:
        return self._config.retry_after

    @property
    def inflight_bytes(self) -> int:
        return self._inflight

    def rss_bytes(self) -> int:
        """The process RSS, read again only when the cached sample is older than 100 ms."""
        now = self._clock()
        if now - self._rss_at >= RSS_SAMPLE_INTERVAL_S:
            self._rss_bytes = self._rss()
            self._rss_at = now
            self._metrics.process_rss_bytes.set(self._rss_bytes)
        return self._rss_bytes

    def check_memory(self) -> None:
        """Raise :class:`Overloaded` when the process is above its memory soft limit."""
        if self._soft_limit is None:
            return
        rss = self.rss_bytes()
        if rss > self._soft_limit:
            raise Overloaded(
                f"faultlens is above its memory soft limit ({rss // _MIB} MiB used, "
                f"limit {self._soft_limit // _MIB} MiB); retry later",
                retry_after_s=self.retry_after_s,
            )

    def admit(self, nbytes: int = 0) -> Ticket:
        """Check memory, then take a ticket holding ``nbytes`` in-flight bytes.

        Raises :class:`Overloaded` (nothing is held then). Use the ticket as a context
        manager, or call :meth:`Ticket.release`, so the bytes are always given back.
        """
        self.check_memory()
        ticket = Ticket(self)
        ticket.grow(nbytes)
        return ticket

    def _take(self, nbytes: int, already_held: int) -> None:
        with self._lock:
            others = self._inflight - already_held
            if self._inflight + nbytes > self._config.max_inflight_bytes and others > 0:
                raise Overloaded(
                    f"too many request bytes in flight ({self._inflight + nbytes} > "
                    f"{self._config.max_inflight_bytes}); retry later",
                    retry_after_s=self.retry_after_s,
                )
            self._inflight += nbytes
            self._metrics.inflight_bytes.set(self._inflight)

    def _give_back(self, nbytes: int) -> None:
        with self._lock:
            self._inflight -= nbytes
            self._metrics.inflight_bytes.set(self._inflight)


class Ticket:
    """In-flight bytes held by one request; released exactly once."""

    __slots__ = ("_admission", "_held", "_released")

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._held = 0
        self._released = False

    @property
    def held(self) -> int:
        return self._held

    def grow(self, nbytes: int) -> None:
        """Hold ``nbytes`` more, or raise :class:`Overloaded` (what was held stays held)."""
        if nbytes <= 0:
            return
        if self._released:
            raise RuntimeError("ticket already released")
        self._admission._take(nbytes, self._held)
        self._held += nbytes

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._admission._give_back(self._held)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
