"""Small requests that inflate to huge attributes cannot break the store.

Three ~100 KB gzip OTLP/JSON requests, each with one 20 MiB attribute value (under the
64 MiB request limit, over the store's 64 MiB memory limit), used to be answered 200 and
then to take the store down: later requests were dropped or stored several times. Now the
attribute limits cut them, the store stays ready, and every request is stored once.
"""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import duckdb
import httpx
import pytest

from faultlens.testing.process import start_server

pytestmark = pytest.mark.timeout(180)


def _request(service: str, n: int, big: bool) -> bytes:
    now = time.time_ns()
    attrs = [{"key": "blob", "value": {"stringValue": "x" * (20 * 2**20)}}] if big else []
    spans = [
        {
            "traceId": f"{n + 1:032x}",
            "spanId": f"{i + 1:016x}",
            "name": "op",
            "kind": 2,
            "startTimeUnixNano": str(now),
            "endTimeUnixNano": str(now + 1000),
            "attributes": attrs if i == 0 else [],
        }
        for i in range(5)
    ]
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeSpans": [{"spans": spans}],
            }
        ]
    }
    return json.dumps(body).encode()


def test_huge_attributes_are_cut_and_the_store_stays_healthy(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    url = f"http://127.0.0.1:{server.http_port}/v1/traces"
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    try:
        with httpx.Client(timeout=60) as client:
            for n in range(3):
                body = gzip.compress(_request(f"big-{n}", n, big=True))
                assert len(body) < 200_000
                assert client.post(url, content=body, headers=headers).status_code == 200
            for n in range(20):
                body = gzip.compress(_request(f"small-{n}", 100 + n, big=False))
                assert client.post(url, content=body, headers=headers).status_code == 200
        deadline = time.monotonic() + 30
        while server.stats()["spans"] < 115 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert httpx.get(f"{server.api}/readyz", timeout=5).status_code == 200
        metrics = httpx.get(f"{server.api}/metrics", timeout=5).text
        assert 'faultlens_truncated_values_total{signal="traces"' in metrics
    finally:
        assert server.stop() == 0
    con = duckdb.connect(str(tmp_path / "faultlens.duckdb"), read_only=True)
    try:
        counts = dict(con.execute("SELECT service_name, count(*) FROM spans GROUP BY 1").fetchall())
        longest = con.execute("SELECT max(length(attributes)) FROM spans").fetchone()
    finally:
        con.close()
    assert counts == {**{f"big-{n}": 5 for n in range(3)}, **{f"small-{n}": 5 for n in range(20)}}
    assert longest is not None and longest[0] < 64 * 1024
