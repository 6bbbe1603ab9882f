"""The server's wiring: readiness follows whether the store can write."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from faultlens.config.model import Config
from faultlens.store import DuckDBStore
from faultlens.testing.inprocess import InProcessServer
from faultlens.testing.payloads import build_trace_request

PROTOBUF = {"content-type": "application/x-protobuf"}


def _until(check: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_a_store_that_cannot_write_makes_the_server_unready_until_it_writes_again(tmp_path: Path) -> None:
    config = Config.model_validate(
        {
            "store": {"data_dir": str(tmp_path / "data"), "flush_interval": 0.1},
            "receivers": {"grpc": {"port": 0}, "http": {"port": 0}},
            "api": {"port": 0},
            "analysis": {"enabled": False},
        }
    )
    srv = InProcessServer(config)
    try:

        def post(seed: int) -> int:
            body = build_trace_request(20, services=2, seed=seed).SerializeToString()
            return srv.otlp.post("/v1/traces", content=body, headers=PROTOBUF).status_code

        def send(seed: int) -> None:
            assert post(seed) == 200

        def stored() -> int:
            return int(srv.get("/api/v1/stats")["spans"])

        def dropped() -> float:
            for line in srv.api.get("/metrics").text.splitlines():
                if line.startswith("faultlens_dropped_items_total") and 'consumer="store"' in line:
                    return float(line.rsplit(" ", 1)[1])
            return 0.0

        send(1)
        assert _until(lambda: stored() == 20)
        assert srv.api.get("/readyz").status_code == 200

        # A real failure of the real store: the table the writer inserts into goes away.
        assert isinstance(srv.server.store, DuckDBStore)  # the failure is made in its file
        with srv.server.store.cursor() as cur:
            cur.execute("ALTER TABLE spans RENAME TO spans_away")
        send(2)
        assert _until(lambda: srv.api.get("/readyz").status_code == 503)
        body = srv.api.get("/readyz").json()
        assert body["components"]["store"].startswith("writes failing:")
        assert "spans" in body["components"]["store"]
        assert dropped() == 0  # accepted before the failure showed: kept, tried again
        assert post(3) == 503  # now refused, so the client keeps it and retries

        with srv.server.store.cursor() as cur:
            cur.execute("ALTER TABLE spans_away RENAME TO spans")
        # A retrying client gets through within the probe interval (admission.retry_after).
        assert _until(lambda: post(3) == 200)
        assert _until(lambda: srv.api.get("/readyz").status_code == 200)
        assert _until(lambda: stored() == 60)  # the kept batch landed too, once
        assert dropped() == 0
    finally:
        srv.stop()
