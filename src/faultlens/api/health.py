"""Readiness of the server's components, as reported by ``/readyz``.

Liveness (``/healthz``) only says the process answers HTTP. Readiness says it can do its
job: whoever starts a component (the store, the receivers, ...) declares it here, marks it
ready once started and not ready, with a reason, when it stops or fails. A load balancer
then sends traffic only to a server whose components are all ready.

``/readyz`` answers without auth (probes have no token), so a snapshot holds no secret:
reasons and details pass through :mod:`faultlens.config.redact` as they are taken (an
exporter's ``https://user:password@host`` endpoint shows as ``https://user:***@host``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from faultlens.config.redact import redact_text, redact_tree

log = logging.getLogger(__name__)

NOT_STARTED = "not started"


@dataclass(frozen=True, slots=True)
class Readiness:
    """A snapshot: each component maps to ``None`` when ready, else the reason it is not."""

    components: dict[str, str | None]
    # Figures that inform but do not decide readiness (e.g. each export destination's
    # breaker and queue: a dead destination queues to disk, the server stays ready).
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(reason is None for reason in self.components.values())

    @property
    def reasons(self) -> list[str]:
        return [f"{name}: {reason}" for name, reason in sorted(self.components.items()) if reason is not None]


class HealthState:
    """Thread-safe readiness flags, one per named component.

    Components named at construction start as not ready ("not started"), so a server whose
    wiring has not finished is never reported ready. A component first named in
    :meth:`set_ready` or :meth:`set_not_ready` is added then. With no components at all the
    server is ready (there is nothing to wait for).
    """

    def __init__(self, components: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._reasons: dict[str, str | None] = dict.fromkeys(components, NOT_STARTED)
        self._details: dict[str, Callable[[], Any]] = {}

    def add_details(self, name: str, provider: Callable[[], Any]) -> None:
        """Report ``provider()`` under ``name`` in every readiness snapshot."""
        with self._lock:
            self._details[name] = provider

    def set_ready(self, component: str) -> None:
        with self._lock:
            self._reasons[component] = None

    def set_not_ready(self, component: str, reason: str) -> None:
        if not reason:
            raise ValueError("a component that is not ready needs a reason")
        with self._lock:
            self._reasons[component] = reason

    def readiness(self) -> Readiness:
        """A snapshot with secrets redacted (module docstring)."""
        with self._lock:
            reasons = {name: None if r is None else redact_text(r) for name, r in self._reasons.items()}
            providers = dict(self._details)
        details: dict[str, Any] = {}
        for name, provider in providers.items():
            try:
                details[name] = redact_tree(provider(), (name,))
            except Exception as e:  # a broken provider must not break /readyz
                log.exception("readiness details %r failed", name)
                details[name] = {"error": redact_text(str(e))}
        return Readiness(reasons, details)
