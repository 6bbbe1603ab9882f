"""One request of a small shop as dataset records (no SDK): front -> orders -> inventory,
payment, with ids made from the request number, so tests and benchmarks can build minutes
of data time at once and slow one service down by a known amount.

The same topology as :mod:`faultlens.demo.shop` (which sends it through the OpenTelemetry
SDK); this one yields :class:`~faultlens.datasets.records.SpanRecord` values for the Nezha
converter and sender.
"""

from __future__ import annotations

from dataclasses import dataclass

from faultlens.datasets.records import SpanRecord

__all__ = ["SHOP_PODS", "ShopRequest", "shop_request"]

MS = 1_000_000
SHOP_PODS = {"front": "front-1", "orders": "orders-1", "inventory": "inventory-1", "payment": "payment-1"}


@dataclass(frozen=True, slots=True)
class ShopRequest:
    spans: list[SpanRecord]
    trace_id: bytes
    inventory_span_id: bytes  # the span of the service that ``slow_ns`` slows down


def shop_request(n: int, t: int, slow_ns: int, jitter_seed: int | None = None) -> ShopRequest:
    """Request number ``n`` (ids derive from it) starting at ``t``; inventory's own work takes
    ``slow_ns`` longer. ``jitter_seed`` (``n`` by default) spreads durations by up to 0.4 ms."""
    k = n if jitter_seed is None else jitter_seed
    trace = (n + 1).to_bytes(16, "big")
    ids = iter(((n << 8) | j).to_bytes(8, "big") for j in range(1, 10))
    spans: list[SpanRecord] = []

    def span(parent: bytes, service: str, name: str, start: int, dur: int) -> bytes:
        sid = next(ids)
        spans.append(SpanRecord(trace, sid, parent, name, start, start + dur, service, SHOP_PODS[service]))
        return sid

    jitter = (k * 7919) % 5 * MS // 10
    inv, pay = 5 * MS + jitter + slow_ns, 8 * MS + jitter
    orders = inv + pay + 6 * MS
    root = span(b"", "front", "GET /order", t, orders + 4 * MS)
    call = span(root, "front", "POST /orders", t + MS, orders + 2 * MS)
    o = span(call, "orders", "POST /orders", t + 2 * MS, orders)
    c1 = span(o, "orders", "GET /stock", t + 3 * MS, inv + MS)
    inv_span = span(c1, "inventory", "GET /stock", t + 3 * MS, inv)
    c2 = span(o, "orders", "POST /charge", t + 5 * MS + inv, pay + MS)
    span(c2, "payment", "POST /charge", t + 5 * MS + inv, pay)
    return ShopRequest(spans, trace, inv_span)
