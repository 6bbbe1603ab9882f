"""Service dependency graph and error propagation, from decoded span tables.

Entry points (pure: Arrow tables in, frozen values out):

- :func:`build_service_graph` - the dependency graph of a time range, RED figures per edge;
- :func:`span_frame` - spans as numpy columns with parents resolved (shared by every
  trace-level analysis, including :mod:`faultlens.rca`);
- :func:`trace_error_paths`, :func:`origin_counts` - per trace, which span originated an
  error and which only passed it on;
- :func:`propagation_chains` - per window, MicroHECL-style chains of anomalous edges.
"""

from faultlens.graph.build import build_service_graph, edge_stats
from faultlens.graph.frame import SpanFrame, span_frame
from faultlens.graph.model import Edge, EdgeKind, EdgeStats, Node, NodeKind, ServiceGraph
from faultlens.graph.propagation import (
    ChainConfig,
    ChainEdge,
    OriginCount,
    PropagationChain,
    SpanRef,
    TraceErrorPath,
    chain_ends,
    error_origins,
    has_flagged_descendant,
    origin_counts,
    propagation_chains,
    strongest_descendant,
    trace_error_paths,
)

__all__ = [
    "ChainConfig",
    "ChainEdge",
    "Edge",
    "EdgeKind",
    "EdgeStats",
    "Node",
    "NodeKind",
    "OriginCount",
    "PropagationChain",
    "ServiceGraph",
    "SpanFrame",
    "SpanRef",
    "TraceErrorPath",
    "build_service_graph",
    "chain_ends",
    "edge_stats",
    "error_origins",
    "has_flagged_descendant",
    "origin_counts",
    "propagation_chains",
    "span_frame",
    "strongest_descendant",
    "trace_error_paths",
]
