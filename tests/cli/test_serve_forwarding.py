"""``faultlens serve`` with a ``pipeline`` section: it stores and forwards at once.

A real OTLP backend (``faultlens.testing.otlp_backend``) receives what a real faultlens
process forwards; while the backend is down the data waits in the disk queue and
``/readyz`` shows the destination's state, and once it is back every span arrives.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import httpx
import pytest
import yaml

from faultlens.testing.otlp_backend import OtlpBackend
from faultlens.testing.payloads import build_trace_request
from faultlens.testing.process import ServerProcess, start_server

pytestmark = pytest.mark.timeout(180)


def _config(tmp_path: Path, backend: OtlpBackend) -> Path:
    cfg = {
        "pipeline": {
            "exporters": [
                {
                    "name": "downstream",
                    "protocol": "grpc",
                    "endpoint": backend.grpc_endpoint,
                    "signals": ["traces"],
                    "retry": {"initial_interval": "50ms", "max_interval": "200ms", "max_elapsed_time": "60s"},
                    "breaker": {"failure_threshold": 3, "open_duration": "300ms"},
                }
            ]
        }
    }
    path = tmp_path / "faultlens.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _send(server: ServerProcess, n_spans: int, seed: int) -> set[bytes]:
    req = build_trace_request(n_spans=n_spans, services=3, seed=seed)
    r = httpx.post(
        f"http://127.0.0.1:{server.http_port}/v1/traces",
        content=req.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert r.status_code == 200, r.text
    return {s.span_id for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans}


def test_forwards_while_storing_and_survives_a_backend_outage(tmp_path: Path) -> None:
    backend = OtlpBackend().start()
    server = start_server(tmp_path / "data", "--config", str(_config(tmp_path, backend)))
    try:
        sent = _send(server, 200, seed=1)
        assert backend.wait_for_spans(200, timeout_s=20)
        ready = httpx.get(f"{server.api}/readyz").json()
        dest = ready["details"]["exporters"]["downstream"]
        assert dest["sent_items"] == 200
        assert dest["breaker"] == "closed"

        backend.stop()  # the destination goes away: data must wait on disk, ingest goes on
        sent |= _send(server, 300, seed=2)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            dest = httpx.get(f"{server.api}/readyz").json()["details"]["exporters"]["downstream"]
            if dest["queue_items"] == 300 and dest["last_error"]:
                break
            time.sleep(0.1)
        assert dest["queue_items"] == 300, dest
        assert dest["last_error"]
        assert httpx.get(f"{server.api}/readyz").status_code == 200  # a dead destination is not unreadiness
        deadline = time.monotonic() + 20
        while server.stats()["spans"] < 500 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.stats()["spans"] == 500  # the store got everything meanwhile

        backend.start()
        assert backend.wait_for_spans(500, timeout_s=30)
        assert backend.unique_span_ids() == sent
        metrics = httpx.get(f"{server.api}/metrics").text
        drops = [
            line
            for line in metrics.splitlines()
            if line.startswith("faultlens_dropped_items_total") and 'consumer="export/downstream"' in line
        ]
        assert drops == []  # nothing was dropped on the way
    finally:
        assert server.stop() == 0
        backend.stop()


def test_kill_9_loses_no_acknowledged_request_on_the_forwarding_path(tmp_path: Path) -> None:
    """Killed at random points while forwarding: every request answered OK reaches the
    destination after the restart (the intake log replays what no export queue committed)."""
    rng = random.Random(3)
    backend = OtlpBackend().start()
    config = _config(tmp_path, backend)
    acked: set[bytes] = set()
    seed = 0
    try:
        for _ in range(8):
            server = start_server(tmp_path / "data", "--config", str(config))
            deadline = time.monotonic() + rng.uniform(0.2, 1.0)
            with httpx.Client(timeout=5) as client:
                while time.monotonic() < deadline:
                    seed += 1
                    req = build_trace_request(n_spans=20, services=2, seed=seed)
                    r = client.post(
                        f"http://127.0.0.1:{server.http_port}/v1/traces",
                        content=req.SerializeToString(),
                        headers={"Content-Type": "application/x-protobuf"},
                    )
                    if r.status_code == 200:
                        spans = (s for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans)
                        acked |= {s.span_id for s in spans}
            server.proc.kill()
            server.proc.wait()
        server = start_server(tmp_path / "data", "--config", str(config))
        try:
            assert backend.wait_for_spans(len(acked), timeout_s=60)
            assert acked <= backend.unique_span_ids()
        finally:
            server.stop()
    finally:
        backend.stop()
