"""``faultlens rca`` as users run it: a real process, against a data directory or a real server.

The data is the scenario of ``tests/api/test_rca_routes.py`` (payment's pod ``payment-b``
slows down in ``[T0+10m, T0+13m)``; cart fails in ``[T0+30m, T0+33m)``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from api.test_rca_routes import MIN, T0, write_scenario
from faultlens.api import ApiServer, HealthState, create_app
from faultlens.cli import rca as rca_cli
from faultlens.selfmetrics import SelfMetrics
from faultlens.store.analysis_duckdb import DuckDBAnalysisStore
from faultlens.store.duckdb_store import DuckDBStore
from faultlens.store.window import WindowReader

WINDOW = ["--start", str(T0 + 10 * MIN), "--end", "2023-11-14T22:27:00Z"]  # T0+10m .. T0+13m


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "faultlens.cli", "rca", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
    )


def finish(p: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=120)
    return p.returncode, out, err


@pytest.fixture(scope="module")
def stopped_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory no process holds."""
    data_dir = tmp_path_factory.mktemp("stopped")
    write_scenario(data_dir)
    return data_dir


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(API URL, its data directory): the store is held open by this process, as a server holds it."""
    data_dir = tmp_path_factory.mktemp("served")
    path = write_scenario(data_dir)
    store = DuckDBStore(path)
    analysis = DuckDBAnalysisStore(path)
    app = create_app(
        store, SelfMetrics(), HealthState([]), analysis=analysis, windows=WindowReader.for_store(store)
    )
    api = ApiServer(app, host="127.0.0.1", port=0)
    api.start()
    try:
        yield api.url, data_dir
    finally:
        api.shutdown()
        analysis.close()
        store.close()


def without_timing(body: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in body.items()
        if k not in ("duration_ms", "rca_at", "rca_at_unix_nano", "rca_duration_s")
    }


def test_data_dir_and_server_rank_the_slow_pod_first_alike(
    server: tuple[str, Path], stopped_dir: Path
) -> None:
    url, _ = server
    # the same baseline on both sides (by default a server steers around its incidents,
    # which a data directory read alone does not know of)
    base = ["--baseline-start", str(T0), "--baseline-end", str(T0 + 10 * MIN)]
    local = start(*WINDOW, *base, "--data-dir", str(stopped_dir), "--json")
    remote = start(*WINDOW, *base, "--server", url, "--json")
    (local_code, local_out, local_err), (remote_code, remote_out, remote_err) = finish(local), finish(remote)
    assert local_code == 0, local_err
    assert remote_code == 0, remote_err
    body = json.loads(local_out)
    top = body["candidates"][0]
    assert (top["service"], top["operation"], top["pod"], top["reason"]) == (
        "payment",
        "Charge",
        "payment-b",
        "slow_execution",
    )
    assert (
        body["window"]["start_unix_nano"] == T0 + 10 * MIN
        and body["window"]["end_unix_nano"] == T0 + 13 * MIN
    )
    assert (body["baseline"]["start_unix_nano"], body["baseline"]["end_unix_nano"]) == (T0, T0 + 10 * MIN)
    assert body["rca_status"] == "ranked" and body["root_causes"][0]["service"] == "payment"
    assert body["chains"][0]["services"] == ["frontend", "checkout", "payment"]
    assert without_timing(json.loads(remote_out)) == without_timing(body)


def test_data_dir_held_by_a_server_says_so(server: tuple[str, Path]) -> None:
    _, data_dir = server
    code, out, err = finish(start(*WINDOW, "--data-dir", str(data_dir)))
    assert code == 1
    assert f"locked by process {os.getpid()}" in err
    assert "--server URL" in err
    assert out == ""


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --- in process: rendering and errors -------------------------------------------------------


def invoke(*args: str) -> Any:
    app = typer.Typer()
    rca_cli.register(app)
    return CliRunner().invoke(app, list(args))


def test_table_shows_candidates_evidence_and_propagation(server: tuple[str, Path]) -> None:
    url, _ = server
    result = invoke(*WINDOW, "--server", url)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "window   2023-11-14T22:24:00Z .. 2023-11-14T22:27:00Z  (540 spans" in out
    assert "baseline 2023-11-14T22:03:00Z .. 2023-11-14T22:23:00Z" in out  # around the open incident
    assert "status   ranked: judged spans, logs" in out
    row = next(line for line in out.splitlines() if "payment-b" in line)
    assert "1" in row and "payment" in row and "Charge" in row and "slow_execution" in row
    assert "Evidence" in out and "1. payment" in out
    assert "exclusive time" in out
    assert "frontend -> checkout -> payment" in out
    assert "checkout -> payment: p90" in out


def test_explicit_baseline_reaches_the_server(server: tuple[str, Path]) -> None:
    url, _ = server
    result = invoke(
        "--start", "2023-11-14T22:43:00Z", "--end", str(T0 + 33 * MIN), "--json", "--server", url,
        "--baseline-start", str(T0 + 15 * MIN), "--baseline-end", str(T0 + 25 * MIN),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert (body["baseline"]["start_unix_nano"], body["baseline"]["end_unix_nano"]) == (
        T0 + 15 * MIN,
        T0 + 25 * MIN,
    )
    assert body["candidates"][0]["service"] == "cart"


def test_unreachable_server_is_a_clear_error(unused_port: int) -> None:
    result = invoke(*WINDOW, "--server", f"http://127.0.0.1:{unused_port}")
    assert result.exit_code == 1
    assert f"cannot reach the faultlens server at http://127.0.0.1:{unused_port}" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "yesterday", "--end", "now"], "--start 'yesterday': expected an RFC 3339"),
        (["--start", "now", "--end", "now-1h", "--data-dir", "x"], "--end: end must be after start"),
        (
            ["--start", "now-1h", "--end", "now", "--baseline-end", "now-30m", "--data-dir", "x"],
            "--baseline-end: the baseline must end at or before the window's start",
        ),
        (["--start", "now-1h", "--end", "now", "--server", "u", "--data-dir", "x"], "not both"),
    ],
)
def test_bad_options_exit_2_with_a_message(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_server_422_is_reported_with_the_parameter(server: tuple[str, Path]) -> None:
    url, _ = server
    # the CLI resolves only its own times; the server checks the ranges
    result = invoke("--start", "now-1h", "--end", "now", "--baseline-end", "now-30m", "--server", url)
    assert result.exit_code == 2
    assert "the server answered 422: baseline_end: " in result.output


def test_missing_data_dir_is_a_store_error(tmp_path: Path) -> None:
    result = invoke("--start", "now-1h", "--end", "now", "--data-dir", str(tmp_path / "none"))
    assert result.exit_code == 1
    assert "no faultlens store in" in result.output


def test_relative_times() -> None:
    now = T0
    assert rca_cli.parse_cli_time("now", now) == now
    assert rca_cli.parse_cli_time("now-15m", now) == now - 15 * 60 * 10**9
    assert rca_cli.parse_cli_time("NOW + 30s", now) == now + 30 * 10**9
    assert rca_cli.parse_cli_time("1970-01-01T00:00:01Z", now) == 10**9
    with pytest.raises(ValueError):
        rca_cli.parse_cli_time("now-15", now)
