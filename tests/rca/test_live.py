"""Root causes attached live: a real server fed OTLP over gRPC opens an incident and ranks it.

An in-process server (10 s analysis windows) receives, over gRPC, two minutes of a small
shop's traffic (front -> orders -> {inventory, payment}, one trace per request, with a log
line per request), then a minute in which inventory's own work takes 300 ms longer. No label
and no hint goes to the server. What is checked: the streaming analysis opens an incident;
``GET /api/v1/incidents/{id}`` soon carries ``root_causes`` naming inventory first, with
evidence and traces; the list carries them too; a real local HTTP receiver gets the
``incident.opened`` webhook with the top 3; the attach time is counted in ``/metrics``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from faultlens.config.model import Config
from faultlens.datasets.otlp import OtlpConverter
from faultlens.datasets.records import LogRecord, SpanRecord
from faultlens.datasets.sender import GrpcSender
from faultlens.testing.inprocess import InProcessServer
from faultlens.testing.shop_records import SHOP_PODS, shop_request
from faultlens.types import Signal

S = 1_000_000_000
MS = 1_000_000
W = 10 * S
T0 = (time.time_ns() // W - 360) * W  # an hour ago, on a window boundary
REQUESTS = 60  # per window
NORMAL = range(0, 12)
FAULT = range(12, 18)


def window_records(i: int, slow_ns: int) -> tuple[list[SpanRecord], list[LogRecord]]:
    """The requests of window ``i``: every span and log ends inside the window."""
    spans: list[SpanRecord] = []
    logs: list[LogRecord] = []
    for k in range(REQUESTS):
        t = T0 + i * W + k * (W // REQUESTS)
        request = shop_request(i * REQUESTS + k, t, slow_ns, jitter_seed=k)
        spans += request.spans
        logs.append(
            LogRecord(
                t + 4 * MS, "inventory", SHOP_PODS["inventory"], "", "server", request.trace_id,
                request.inventory_span_id, "INFO", 9, "i.StockController#41",
                f"stock checked for sku-{k} in 1 lookup",
            )
        )  # fmt: skip
    return spans, logs


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            got.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    server.shutdown()


def _until(what: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s")


def test_an_incident_opened_from_live_otlp_carries_its_root_causes(
    tmp_path: Path, hook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, posted = hook
    config = Config.model_validate(
        {
            "store": {"data_dir": str(tmp_path), "flush_interval": 0.5},
            "receivers": {"grpc": {"port": 0}, "http": {"port": 0}},
            "api": {"port": 0},
            "analysis": {"window": 10, "state_interval": 3600, "webhook": {"url": url}},
        }
    )
    server = InProcessServer(config)
    sender = GrpcSender(f"127.0.0.1:{server.ports['otlp-grpc']}")
    convert = OtlpConverter()
    try:
        for i in [*NORMAL, *FAULT]:
            spans, logs = window_records(i, 300 * MS if i in FAULT else 0)
            assert sender.send(Signal.TRACES, convert.traces(spans), len(spans)).accepted == len(spans)
            assert sender.send(Signal.LOGS, convert.logs(logs), len(logs)).accepted == len(logs)

        incidents = _until(lambda: server.get("/api/v1/incidents")["incidents"], 30)
        seen = time.monotonic()
        first = incidents[-1]  # the earliest opened
        detail = _until(
            lambda: (d := server.get(f"/api/v1/incidents/{first['id']}"))["rca_status"] != "pending" and d,
            15,
        )
        attached_s = time.monotonic() - seen
        assert detail["rca_status"] == "ranked", detail["rca_reason"]
        causes = detail["root_causes"]
        assert causes[0]["service"] == "inventory", [c["service"] for c in causes]
        assert causes[0]["reason"] == "slow_execution" and causes[0]["pod"] == "inventory-1"
        evidence = causes[0]["evidence"][0]
        assert "exclusive time" in evidence["text"]
        assert evidence["first_seen_unix_nano"] >= T0 + FAULT[0] * W
        assert evidence["first_seen"].endswith("Z")
        assert causes[0]["sample_trace_ids"] and 0 < causes[0]["confidence"] <= 1
        assert detail["rca_at_unix_nano"] and detail["rca_at"].endswith("Z")
        assert attached_s < 5
        listed = server.get("/api/v1/incidents")["incidents"]
        assert next(i for i in listed if i["id"] == first["id"])["root_causes"][0]["service"] == "inventory"

        opened = _until(lambda: [p for p in posted if p["event"] == "incident.opened"], 15)
        assert opened[0]["incident"]["id"] == first["id"]
        assert opened[0]["rca_status"] == "ranked"
        assert 1 <= len(opened[0]["root_causes"]) <= 3
        assert opened[0]["root_causes"][0]["service"] == "inventory"
        metrics = server.api.get("/metrics").text
        assert 'faultlens_rca_rankings_total{outcome="ranked"}' in metrics
        assert "faultlens_rca_attach_seconds_count" in metrics
    finally:
        sender.close()
        server.stop()
