"""The web UI over real data: a replayed slice of Nezha's train-ticket recordings (nezha-tt).

The slice is the first recorded fault's day from its first record until five minutes after
the injection (about seven minutes: 28k spans, logs and metric points of ~30 services), sent
as live telemetry (``replay_as_live``) into an in-process server configured as ``eval live``
configures it; the analysis then closes its windows and the root-cause worker ranks what it
opened. In the browser every page loads with no console error and nothing from outside, the
map draws the calls between the services, and an incident's page shows its ranked root
causes with their evidence. Skipped, saying why, when the shared data is not there.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from faultlens.datasets import NezhaDataset, make_sender
from faultlens.datasets.otlp import OtlpConverter
from faultlens.eval.detect import replay_as_live
from faultlens.eval.live import replay_config
from faultlens.testing.inprocess import InProcessServer
from faultlens.types import TimeRange, Transport

from .conftest import Watched, watch

NEZHA_TT = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "nezha-tt"
NS_PER_S = 1_000_000_000
AFTER_FAULT_NS = 5 * 60 * NS_PER_S


@dataclass(frozen=True)
class Replayed:
    url: str
    incident: dict[str, Any]  # the first incident, with ranked root causes
    trace_id: str
    error_group: str
    edges: int  # call edges the API's service graph has over the slice


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    if not (NEZHA_TT / "rca_data").is_dir():
        pytest.skip(f"Nezha-TT data not found at {NEZHA_TT} (the shared datasets are not mounted)")
    ds = NezhaDataset(NEZHA_TT)
    fault = ds.faults()[0]
    day = dt.datetime(fault.day.year, fault.day.month, fault.day.day, tzinfo=dt.UTC)
    rng = TimeRange(int(day.timestamp()) * NS_PER_S, fault.inject_time_ns + AFTER_FAULT_NS)
    server = InProcessServer(replay_config(tmp_path_factory.mktemp("nezha-ui")), shutdown_timeout_s=60)
    try:
        sender = make_sender(f"127.0.0.1:{server.ports['otlp-grpc']}", Transport.GRPC, timeout_s=60)
        try:
            summary = replay_as_live(ds.records(rng), sender, OtlpConverter(pod_nodes=ds.pod_nodes(rng)))
        finally:
            sender.close()
        assert not summary.aborted and summary.items > 10_000, summary.as_dict()
        analysis, ranking = server.server.analysis, server.server.root_causes
        assert analysis is not None and ranking is not None
        assert analysis.drain(120, close_windows=True), "the analysis did not drain"
        assert ranking.drain(120), "the root-cause worker did not finish"
        incidents = server.get("/api/v1/incidents")["incidents"]
        ranked = [i for i in incidents if i["rca_status"] == "ranked" and i["root_causes"]]
        assert ranked, f"no incident with ranked root causes: {incidents}"
        [trace] = server.get("/api/v1/traces", limit=1)["traces"]
        groups = server.get("/api/v1/errors", limit=1)["groups"]
        graph = server.get("/api/v1/graph", start=str(rng.start_ns), end=str(rng.end_ns))
        yield Replayed(
            f"http://127.0.0.1:{server.ports['api']}",
            ranked[0],
            trace["trace_id"],
            groups[0]["group_id"],
            len(graph["edges"]),
        )
    finally:
        server.stop()


@pytest.fixture
def watched(browser: Browser, replayed: Replayed) -> Iterator[Watched]:
    with watch(browser, replayed.url) as w:
        yield w


def _pages(r: Replayed) -> dict[str, tuple[str, str]]:
    service = r.incident["root_causes"][0]["service"]
    return {
        "overview": ("/", f"[data-red-service='{service}'][data-loaded]"),
        "traces": ("/traces", "#trace-scatter canvas"),
        "trace": (f"/traces/{r.trace_id}", "#waterfall[data-loaded]"),
        "map": ("/map", "#map[data-loaded]"),
        "map-incident": (f"/map?incident={r.incident['id']}", "#map[data-loaded]"),
        "service": (f"/services/{service}", "#service-red[data-loaded]"),
        "incidents": ("/incidents", "#incident-list"),
        "incident": (f"/incidents/{r.incident['id']}", "#root-causes"),
        "errors": ("/errors", "#error-groups"),
        "error-group": (f"/errors/{r.error_group}", "#error-counts canvas"),
        "logs": ("/logs", "#log-list"),
        "templates": ("/templates", "#template-list"),
    }


def test_every_page_over_the_replayed_slice_loads_with_no_console_error(
    watched: Watched, replayed: Replayed
) -> None:
    for name, (path, ready) in _pages(replayed).items():
        response = watched.open(path, ready)
        assert response is not None and response.status == 200, name
        assert watched.problems == [], name


def test_the_map_shows_the_calls_between_the_services(watched: Watched, replayed: Replayed) -> None:
    watched.open("/map", "#map[data-loaded]")
    drawn = watched.page.evaluate("window.faultlensMap.edges().length")
    rows = watched.page.locator("#edges tbody tr")
    assert replayed.edges >= 10  # train-ticket's services call each other a lot
    expect(rows).to_have_count(replayed.edges)  # the map's range is the slice's last 15 minutes
    assert drawn >= replayed.edges  # one drawn edge per call edge (and per kind)
    watched.screenshot("nezha-map")
    assert watched.problems == []


def test_an_incident_page_shows_its_ranked_root_causes(watched: Watched, replayed: Replayed) -> None:
    page = watched.page
    watched.open(f"/incidents/{replayed.incident['id']}", "#root-causes")
    causes = page.locator("#root-causes article.root-cause")
    expect(causes.first).to_be_visible()
    assert causes.count() == len(replayed.incident["root_causes"])
    first = replayed.incident["root_causes"][0]
    expect(causes.first).to_contain_text("#1")
    expect(causes.first).to_contain_text(first["service"])
    expect(causes.first.locator("ul.evidence li").first).to_have_text(re.compile(r"\S"))
    watched.screenshot("nezha-incident")
    assert watched.problems == []
