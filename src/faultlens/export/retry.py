"""Exponential backoff with jitter: a pure schedule, no sleeping here.

The n-th delay (from 0) is ``min(initial * multiplier**n, max_interval)`` spread uniformly over
``[d * (1 - r), d * (1 + r)]`` (``r`` = randomization factor), so that many exporters that
failed together do not retry together. A server hint (RetryInfo, Retry-After) replaces the
computed delay for that attempt: the OTLP specification asks clients to wait exactly that long.
"""

from __future__ import annotations

import random

from faultlens.export.config import RetryConfig


class Backoff:
    """The delays of one item's retry sequence. Not thread-safe: one per item being retried."""

    def __init__(self, config: RetryConfig, rng: random.Random | None = None) -> None:
        self._config = config
        self._rng = rng or random.Random()
        self._attempt = 0
        self.elapsed_s = 0.0  # sum of the delays handed out so far

    def next_delay(self, hint_s: float | None = None) -> float:
        """The delay before the next attempt; ``hint_s`` is the server's, when it gave one."""
        c = self._config
        if hint_s is not None:
            delay = hint_s
        else:
            base = min(c.initial_interval * c.multiplier**self._attempt, c.max_interval)
            r = c.randomization_factor
            delay = base * (1 - r + 2 * r * self._rng.random())
        self._attempt += 1
        return delay

    def exhausted(self, spent_s: float, delay_s: float) -> bool:
        """Whether waiting ``delay_s`` more after ``spent_s`` would pass ``max_elapsed_time``."""
        limit = self._config.max_elapsed_time
        return limit > 0 and spent_s + delay_s > limit
