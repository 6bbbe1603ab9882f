"""Incidents: related anomalies grouped in time and over the service graph.

Entry point: :class:`IncidentTracker` (pure state machine; state as plain data).
:func:`graph_from_edges` builds its adjacency from closed edge windows.
"""

from collections.abc import Iterable

from faultlens.analysis.incidents.tracker import Graph, IncidentTracker, IncidentUpdate
from faultlens.analysis.incidents.types import (
    Incident,
    IncidentConfig,
    IncidentEvent,
    IncidentState,
    Severity,
)
from faultlens.analysis.red.types import EdgeWindow


def graph_from_edges(
    edges: Iterable[EdgeWindow], into: dict[str, set[str]] | None = None
) -> dict[str, set[str]]:
    """Caller -> callees adjacency from edge windows (added to ``into`` when given)."""
    graph = into if into is not None else {}
    for e in edges:
        graph.setdefault(e.caller, set()).add(e.callee)
    return graph


__all__ = [
    "Graph",
    "Incident",
    "IncidentConfig",
    "IncidentEvent",
    "IncidentState",
    "IncidentTracker",
    "IncidentUpdate",
    "Severity",
    "graph_from_edges",
]
