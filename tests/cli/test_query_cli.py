"""``faultlens traces``, ``errors`` and ``incidents`` against a real server, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from faultlens.config.model import Config
from faultlens.testing.inprocess import InProcessServer
from faultlens.testing.payloads import build_trace_request

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InProcessServer, str]]:
    data = tmp_path_factory.mktemp("query-cli")
    config = Config.model_validate(
        {
            "store": {"data_dir": str(data), "flush_interval": 0.1},
            "receivers": {"grpc": {"port": 0}, "http": {"port": 0}, "auth": {"bearer_tokens": [TOKEN]}},
            "api": {"port": 0},
        }
    )
    srv = InProcessServer(config)
    req = build_trace_request(n_spans=200, services=3, seed=5, error_ratio=0.2)
    r = srv.otlp.post(
        "/v1/traces",
        content=req.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {TOKEN}"},
    )
    assert r.status_code == 200
    deadline = time.monotonic() + 20
    headers = {"Authorization": f"Bearer {TOKEN}"}
    while srv.api.get("/api/v1/stats", headers=headers).json()["spans"] < 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        yield srv, f"http://127.0.0.1:{srv.ports['api']}"
    finally:
        srv.stop()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "faultlens.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_traces_list_and_show(server: tuple[InProcessServer, str]) -> None:
    _, url = server
    listed = _run("traces", "--server", url, "--token", TOKEN, "--errors", "--json", "--limit", "5")
    assert listed.returncode == 0, listed.stderr
    traces = json.loads(listed.stdout)["traces"]
    assert traces and all(t["error_count"] > 0 for t in traces)
    table = _run("traces", "--server", url, "--token", TOKEN, "--limit", "5")
    assert table.returncode == 0 and traces[0]["trace_id"][:8] in table.stdout
    shown = _run("traces", "show", traces[0]["trace_id"], "--server", url, "--token", TOKEN)
    assert shown.returncode == 0, shown.stderr
    assert f"{traces[0]['span_count']} spans" in shown.stdout
    assert "ERROR" in shown.stdout


def test_errors_and_incidents(server: tuple[InProcessServer, str]) -> None:
    srv, url = server
    deadline = time.monotonic() + 20
    while not srv.api.get("/api/v1/errors", headers={"Authorization": f"Bearer {TOKEN}"}).json()["groups"]:
        assert time.monotonic() < deadline, "no error group was formed"
        time.sleep(0.2)
    errors = _run("errors", "--server", url, "--token", TOKEN, "--json")
    assert errors.returncode == 0, errors.stderr
    group = json.loads(errors.stdout)["groups"][0]
    table = _run("errors", "--server", url, "--token", TOKEN)
    assert table.returncode == 0 and group["group_id"] in table.stdout
    incidents = _run("incidents", "--server", url, "--token", TOKEN, "--status", "open")
    assert incidents.returncode == 0, incidents.stderr
    assert "incidents (" in incidents.stdout


def test_a_missing_token_an_unknown_id_and_a_bad_option_say_so(server: tuple[InProcessServer, str]) -> None:
    _, url = server
    unauthorised = _run("incidents", "--server", url)
    assert unauthorised.returncode == 1
    assert "401" in unauthorised.stderr and "--token" in unauthorised.stderr
    unknown = _run("incidents", "show", "inc-000000000000", "--server", url, "--token", TOKEN)
    assert unknown.returncode == 1 and "404" in unknown.stderr
    bad = _run("incidents", "--status", "closed", "--server", url, "--token", TOKEN)
    assert bad.returncode == 2 and "expected open or resolved" in bad.stderr
    down = _run("traces", "--server", "http://127.0.0.1:9", "--token", TOKEN)
    assert down.returncode == 1 and "cannot reach faultlens" in down.stderr


def _traces(url: str, *args: str) -> list[dict[str, Any]]:
    done = _run("traces", "--server", url, "--token", TOKEN, "--json", "--limit", "1000", *args)
    assert done.returncode == 0, done.stderr
    traces: list[dict[str, Any]] = json.loads(done.stdout)["traces"]
    return traces


def _spans(srv: InProcessServer, trace_id: str) -> list[dict[str, Any]]:
    r = srv.api.get(f"/api/v1/traces/{trace_id}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    spans: list[dict[str, Any]] = r.json()["spans"]
    return spans


def test_traces_by_attributes_on_one_span(server: tuple[InProcessServer, str]) -> None:
    srv, url = server
    every = {t["trace_id"] for t in _traces(url)}
    query = "db.query.text=SELECT * FROM orders WHERE id = $1"  # spaces, a '*' and a '$': quoted
    found = _traces(url, "--attr", query, "--attr", "server.port=5432")
    holding = {
        tid
        for tid in every
        if any(
            s["attributes"].get("db.query.text") == query.partition("=")[2]
            and s["attributes"].get("server.port") == 5432
            for s in _spans(srv, tid)
        )
    }
    assert holding and {t["trace_id"] for t in found} == holding
    assert len(holding) < len(every)
    assert _traces(url, "--attr", "db.system.name=oracle") == []
    on_two_spans = _traces(url, "--attr", "server.port=5432", "--attr", "rpc.system=grpc")
    assert on_two_spans == []  # no one span is both a database call and a gRPC call


def test_traces_by_max_duration(server: tuple[InProcessServer, str]) -> None:
    _, url = server
    durations = sorted(t["duration_ns"] for t in _traces(url))
    middle = durations[len(durations) // 2]
    at_most = _traces(url, "--max-duration-ms", str(middle / 1e6))
    assert {t["duration_ns"] for t in at_most} <= {d for d in durations if d <= middle}
    assert len(at_most) >= len(durations) // 2
    low, high = str(durations[1] / 1e6), str(middle / 1e6)
    between = _traces(url, "--min-duration-ms", low, "--max-duration-ms", high)
    assert between and all(durations[1] <= t["duration_ns"] <= middle for t in between)


def test_bad_trace_conditions_say_so(server: tuple[InProcessServer, str]) -> None:
    _, url = server
    no_value = _run("traces", "--server", url, "--token", TOKEN, "--attr", "http.route")
    assert no_value.returncode == 2 and "expected KEY=VALUE" in no_value.stderr
    crossed = _run(
        "traces", "--server", url, "--token", TOKEN, "--min-duration-ms", "10", "--max-duration-ms", "5"
    )
    assert crossed.returncode == 1 and "422" in crossed.stderr and "max_duration_ms" in crossed.stderr
