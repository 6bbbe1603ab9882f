"""Log templates in a real browser: filtered by their last change, each linked to the log lines
that fit it, over the shop's logs sent by the OpenTelemetry SDK."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pyarrow as pa
from playwright.sync_api import Browser, expect

from faultlens.analysis.templates.counter import ChangeKind, TemplateChange
from faultlens.api import ApiServer, HealthState, create_app
from faultlens.config.model import StoreConfig
from faultlens.decode.base import DecodedBatch
from faultlens.decode.schema import LOG_SCHEMA
from faultlens.selfmetrics import SelfMetrics
from faultlens.store import open_store
from faultlens.store.analysis_base import AnalysisResults, TemplateSeen
from faultlens.store.analysis_duckdb import DuckDBAnalysisStore
from faultlens.types import Signal, TimeRange
from faultlens.ui.logmatch import TemplateShape

from .conftest import Shopfront, Watched, watch

T0 = 1_714_564_800_000_000_000  # 2024-05-01T12:00:00Z
S = 1_000_000_000


def _templates(shopfront: Shopfront) -> list[dict[str, object]]:
    body = httpx.get(f"{shopfront.url}/api/v1/templates", params={"limit": 1000}, timeout=10).json()
    templates: list[dict[str, object]] = body["templates"]
    return templates


def test_templates_filter_by_their_last_change(browser: Browser, tmp_path: Path) -> None:
    """Over stored templates flagged new, missing and never (the shop's short run flags none),
    each filter shows exactly its own, and the new template's link finds its lines."""
    store = open_store(StoreConfig(data_dir=tmp_path / "data"))
    analysis = DuckDBAnalysisStore(tmp_path / "analysis.duckdb")
    window = TimeRange(T0, T0 + 60 * S)
    flagged = {1: ChangeKind.NEW, 2: ChangeKind.MISSING}
    texts = {1: "payment <*> declined after <NUM> ms", 2: "cache warmed in <NUM> ms", 3: "request served"}
    analysis.write_results(
        AnalysisResults(
            templates=tuple(TemplateSeen("cart", i, text, T0, T0 + S, 10 * i) for i, text in texts.items()),
            template_changes=tuple(
                TemplateChange(kind, "cart", i, texts[i], window, 1, 0.0, 0.0) for i, kind in flagged.items()
            ),
        )
    )
    bodies = [
        "payment p-17 declined after 35 ms",
        "payment 7f3a-18 declined after 40 ms",
        "payment p-19 declined twice after 40 ms",  # another shape
        "cache warmed in 12 ms",
        "request served",
    ]
    store.write([DecodedBatch(Signal.LOGS, _logs("cart", bodies))])
    server = ApiServer(create_app(store, SelfMetrics(), HealthState(), analysis=analysis), port=0)
    server.start()
    try:
        with watch(browser, server.url) as watched:
            page = watched.page
            for change, shown in (("new", [1]), ("missing", [2]), ("all", [3, 2, 1])):
                watched.open(f"/templates?change={change}", "#template-list")
                expect(page.locator("select[name=change]")).to_have_value(change)
                expect(page.locator("#template-list tbody td code")).to_have_text([texts[i] for i in shown])
            watched.open("/templates?change=new", "#template-list")
            page.locator("#template-list a.template-logs").click()
            page.wait_for_selector("#log-list")
            assert parse_qs(urlsplit(page.url).query) == {"service": ["cart"], "template": ["1"]}
            expect(page.locator("#log-list td.body")).to_have_text(
                ["payment 7f3a-18 declined after 40 ms", "payment p-17 declined after 35 ms"]
            )
            expect(page.locator("#log-template")).to_contain_text("2 shown of the 3 newest lines holding")
            assert watched.problems == []
    finally:
        server.shutdown()
        analysis.close()
        store.close()


def _logs(service: str, bodies: list[str]) -> pa.Table:
    rows = [
        {
            "time_unix_nano": T0 + i * S,
            "observed_time_unix_nano": T0 + i * S,
            "severity_number": 9,
            "severity_text": "INFO",
            "body": body,
            "service_name": service,
            "resource_attributes": json.dumps({"service.name": service}),
            "attributes": "{}",
        }
        for i, body in enumerate(bodies)
    ]
    return pa.Table.from_pylist(rows, schema=LOG_SCHEMA)


def test_a_template_links_to_the_log_lines_that_fit_it(watched: Watched, shopfront: Shopfront) -> None:
    page = watched.page
    watched.open("/templates", "#template-list")
    link = page.locator("#template-list a.template-logs").first
    template = link.inner_text()
    link.click()
    page.wait_for_selector("#log-template")
    query = parse_qs(urlsplit(page.url).query)
    service, template_id = query["service"][0], int(query["template"][0])
    stored = next(
        t for t in _templates(shopfront) if (t["service"], t["template_id"]) == (service, template_id)
    )
    assert stored["template"] == template
    expect(page.locator("#log-template code")).to_have_text(template)
    bodies = page.locator("#log-list td.body").all_inner_texts()
    shape = TemplateShape.of(template)
    assert bodies and all(shape.fits(b) for b in bodies)
    # every line of the service that fits is shown (the shop sends far fewer than a page holds)
    logs = httpx.get(
        f"{shopfront.url}/api/v1/logs", params={"service": service, "limit": 1000}, timeout=10
    ).json()["logs"]
    assert len(bodies) == min(100, sum(shape.fits(r["body"]) for r in logs))
    assert watched.problems == []


def test_a_bad_template_or_change_is_named_with_422(watched: Watched, shopfront: Shopfront) -> None:
    page = watched.page
    for path, problem in (
        ("/templates?change=old", "change: one of all, new, missing"),
        ("/logs?template=7", "template: a template id (a whole number), with its service"),
        ("/logs?service=front&template=x", "template: a template id"),
        ("/logs?service=front&template=999999", "front has no template 999999"),
    ):
        response = watched.open(path)
        assert response is not None and response.status == 422, path
        expect(page.locator(".problems")).to_contain_text(problem)
    # the browser logs each 422 document it was given: the expected answers, nothing else
    assert [p for p in watched.problems if "status of 422" not in p] == []
    response = watched.open("/templates", "#template-list")
    assert response is not None and response.status == 200
