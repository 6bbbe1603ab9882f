"""Values of the service graph: nodes, edges with their RED figures, the graph itself."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from faultlens.types import TimeRange

__all__ = ["Edge", "EdgeKind", "EdgeStats", "Node", "NodeKind", "ServiceGraph"]


class NodeKind(enum.StrEnum):
    SERVICE = "service"  # emits spans itself
    DATABASE = "database"  # virtual: named by db.system / server.address / db.namespace
    MESSAGING = "messaging"  # virtual: a broker destination with no consumer spans seen
    EXTERNAL = "external"  # virtual: peer.service or server.address that emits no spans


class EdgeKind(enum.StrEnum):
    CALL = "call"  # parent span in one service, child span in another (no kinds needed)
    CLIENT_SERVER = "client_server"  # as CALL, and the kinds say CLIENT -> SERVER
    MESSAGING = "messaging"  # PRODUCER -> CONSUMER, by parent or by span link
    DATABASE = "database"  # client span to a database that emits no spans
    EXTERNAL = "external"  # client span to an endpoint that emits no spans


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    kind: NodeKind


@dataclass(frozen=True, slots=True)
class EdgeStats:
    """RED figures of an edge over the graph's time range.

    ``latency`` is the callee-side duration (the server span, or the client span for a
    virtual callee); ``network`` is the time the caller waited beyond it (client span
    minus server span), measured only where the caller's span has that single child.
    Quantiles come from :class:`faultlens.analysis.sketch.QuantileSketch` (1 % accuracy).
    """

    calls: int
    errors: int
    latency_p50_ns: float
    latency_p90_ns: float
    latency_p95_ns: float
    latency_p99_ns: float
    latency_mean_ns: float
    network_p50_ns: float | None = None
    network_p90_ns: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


@dataclass(frozen=True, slots=True)
class Edge:
    caller: str
    callee: str
    kind: EdgeKind
    stats: EdgeStats


@dataclass(frozen=True, slots=True)
class ServiceGraph:
    """The dependency graph seen in ``time_range``; edges sorted by (caller, callee, kind).

    It is a DAG in the common case; calls that loop back (A -> B -> A) are kept as they
    were seen, so consumers that walk it must keep a visited set.
    """

    time_range: TimeRange | None
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)

    def callees(self, service: str) -> tuple[Edge, ...]:
        return tuple(e for e in self.edges if e.caller == service)

    def callers(self, service: str) -> tuple[Edge, ...]:
        return tuple(e for e in self.edges if e.callee == service)

    def edge(self, caller: str, callee: str) -> Edge | None:
        return next((e for e in self.edges if e.caller == caller and e.callee == callee), None)

    def entry_services(self) -> tuple[str, ...]:
        """Services no other service calls: where requests come in."""
        called = {e.callee for e in self.edges}
        return tuple(n.name for n in self.nodes if n.kind is NodeKind.SERVICE and n.name not in called)
