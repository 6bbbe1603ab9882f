"""Circuit breaker for one destination: a pure state machine driven by a clock.

::

                 failure_threshold consecutive
                 retryable failures
      ┌────────┐ ─────────────────────────────> ┌──────┐
      │ CLOSED │                                 │ OPEN │ <──────────────┐
      └────────┘ <───────┐                       └──────┘                │
                         │ success_threshold        │ open_duration      │ any failure
                         │ successes                v passed             │
                         │                     ┌───────────┐             │
                         └──────────────────── │ HALF_OPEN │ ────────────┘
                                               └───────────┘
                                        at most half_open_probes requests at once

While open, senders do not take items from the queue: data waits there (on disk) instead of
being retried against a destination that is down. Permanent failures (400 and the like)
prove the destination is up and count as successes here. Thread-safe.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from faultlens.export.config import BreakerConfig


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"

    @property
    def gauge(self) -> int:
        """0 closed, 1 half-open, 2 open: the value of the ``breaker_state`` gauge."""
        return {"closed": 0, "half_open": 1, "open": 2}[self.value]


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to send one request. ``probe`` permits are the half-open state's limited ones."""

    probe: bool
    generation: int


_UNCHECKED = Permit(False, 0)  # the permit of a disabled breaker


class CircuitBreaker:
    def __init__(self, config: BreakerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probes = 0
        self._successes = 0
        # Bumped on every transition so that results of requests started in an earlier state
        # cannot close or open the breaker by mistake.
        self._generation = 0
        self.transitions = 0
        # Permits are values: the closed state hands out one per generation, not one per send.
        self._closed_permit = Permit(False, 0)

    @property
    def state(self) -> BreakerState:
        with self._lock:
            self._maybe_half_open()
            return self._state

    def _set(self, state: BreakerState) -> None:
        self._state = state
        self._generation += 1
        self._closed_permit = Permit(False, self._generation)
        self.transitions += 1
        self._probes = 0
        self._successes = 0
        if state is BreakerState.OPEN:
            self._opened_at = self._clock()
        if state is BreakerState.CLOSED:
            self._failures = 0

    def _maybe_half_open(self) -> None:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._config.open_duration:
            self._set(BreakerState.HALF_OPEN)

    def try_acquire(self) -> Permit | None:
        """A permit to send now, or ``None`` while open or while every probe slot is taken."""
        if not self._config.enabled:
            return _UNCHECKED
        with self._lock:
            self._maybe_half_open()
            if self._state is BreakerState.CLOSED:
                return self._closed_permit
            if self._state is BreakerState.HALF_OPEN and self._probes < self._config.half_open_probes:
                self._probes += 1
                return Permit(True, self._generation)
            return None

    def wait_hint(self) -> float:
        """Seconds until a permit may become available (0 when one may be free now)."""
        if self._state is BreakerState.CLOSED:
            return 0.0  # the common case, read without the lock (one attribute read)
        with self._lock:
            if self._state is BreakerState.OPEN:
                return max(0.0, self._opened_at + self._config.open_duration - self._clock())
            return 0.0

    def release(self, permit: Permit) -> None:
        """Give back a permit that was not used (nothing was sent)."""
        with self._lock:
            if permit.probe and permit.generation == self._generation:
                self._probes -= 1

    def record_success(self, permit: Permit) -> None:
        if not self._config.enabled:
            return
        with self._lock:
            if permit.generation != self._generation:
                return
            if self._state is BreakerState.CLOSED:
                self._failures = 0
            elif self._state is BreakerState.HALF_OPEN:
                self._probes -= 1
                self._successes += 1
                if self._successes >= self._config.success_threshold:
                    self._set(BreakerState.CLOSED)

    def record_failure(self, permit: Permit) -> None:
        if not self._config.enabled:
            return
        with self._lock:
            if permit.generation != self._generation:
                return
            if self._state is BreakerState.CLOSED:
                self._failures += 1
                if self._failures >= self._config.failure_threshold:
                    self._set(BreakerState.OPEN)
            elif self._state is BreakerState.HALF_OPEN:
                self._set(BreakerState.OPEN)
