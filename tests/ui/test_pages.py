"""Every page of the web UI in a real browser, over data sent by the OpenTelemetry SDK.

What a person would check by looking: each page loads with no console error and nothing
fetched from outside the server; times show in the browser's zone; the trace search finds a
trace and keeps its filters in the URL; the waterfall shows every span (also for a trace of
2,000 spans, rendering only the rows in view); the map draws every call edge; the incident
page names its root cause with the evidence; ``/docs`` works offline.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from playwright.sync_api import Browser, Dialog, expect

from faultlens.api import ApiServer, HealthState, create_app
from faultlens.config.model import StoreConfig
from faultlens.demo.shop import BIG_SPANS, HOSTILE_ATTR, HOSTILE_LOG, HOSTILE_NAME
from faultlens.selfmetrics import SelfMetrics
from faultlens.store import open_store

from .conftest import Shopfront, Watched

PAGES = {
    "overview": ("/", "[data-red-service='front'][data-loaded]"),
    "traces": ("/traces", "#trace-scatter canvas"),
    "trace": ("/traces/{error_trace}", "#waterfall[data-loaded]"),
    "map": ("/map", "#map[data-loaded]"),
    "service": ("/services/orders", "#service-red[data-loaded]"),
    "incidents": ("/incidents", "#incident-list"),
    "incident": ("/incidents/{incident}", "#root-causes"),
    "errors": ("/errors", "#error-groups"),
    "error-group": ("/errors/{error_group}", "#error-counts canvas"),
    "logs": ("/logs", "#log-list"),
    "templates": ("/templates", "#template-list"),
    "docs": ("/docs", ".swagger-ui .info .title"),
}


def _ms(shown: str) -> float:
    """A duration as the UI shows it (``9.2 ms``, ``850 us``, ``1.2 s``) in milliseconds."""
    value, unit = shown.split()
    return float(value) * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def _path(shopfront: Shopfront, template: str) -> str:
    return template.format(
        error_trace=shopfront.sent.error_trace,
        incident=shopfront.incident["id"],
        error_group=shopfront.error_group,
    )


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_loads_with_no_console_error_and_nothing_from_outside(
    watched: Watched, shopfront: Shopfront, name: str
) -> None:
    path, ready = PAGES[name]
    response = watched.open(_path(shopfront, path), ready)
    assert response is not None and response.status == 200
    assert watched.problems == []
    watched.screenshot(name)


def test_times_are_shown_in_the_browsers_zone_as_rfc3339(watched: Watched, shopfront: Shopfront) -> None:
    watched.open("/incidents", "#incident-list time")
    shown = watched.page.locator("#incident-list time").first
    utc = shown.get_attribute("datetime") or ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", utc)
    text = shown.inner_text()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+01:00", text), text  # Paris in December
    assert shown.get_attribute("title") == utc
    assert "Europe/Paris" in watched.page.locator("#tz-name").inner_text()


def test_the_overview_shows_red_charts_the_open_incident_and_ingest(
    watched: Watched, shopfront: Shopfront
) -> None:
    watched.open("/", "[data-red-service='payment'][data-loaded]")
    for service in ("front", "orders", "inventory", "payment"):
        card = watched.page.locator(f"[data-red-service='{service}']")
        expect(card.locator("canvas")).to_have_count(3)  # requests, errors, latency
    incident = shopfront.incident["id"]  # its title may have changed as it grew
    expect(watched.page.locator(f"#open-incidents a[href='/incidents/{incident}']")).to_be_visible()
    traces_row = watched.page.locator("#ingest tr", has_text="traces")
    assert f"{shopfront.sent.spans:,}" in traces_row.inner_text()  # received = written = sent
    assert watched.problems == []


def test_trace_search_finds_the_trace_and_keeps_the_filters_in_the_url(
    watched: Watched, shopfront: Shopfront
) -> None:
    page = watched.page
    watched.open("/traces", "#trace-list")
    page.select_option("select[name=service]", "payment")
    expect(page.locator("#operation-options option[value='POST /charge']")).to_have_count(1)  # htmx swap
    page.select_option("select[name=status]", "error")
    page.fill("input[name=limit]", "500")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"service=payment.*status=error"))
    row = page.locator(f"tr[data-trace-id='{shopfront.sent.error_trace}']")
    expect(row).to_be_visible()
    expect(page.locator("#trace-list tbody tr")).to_have_count(54)  # 3 declined payments x 18 windows
    expect(page.locator("#trace-scatter canvas").first).to_be_visible()
    # the URL is shareable: opening it again gives the same results without the form
    page.goto(page.url)
    expect(page.locator(f"tr[data-trace-id='{shopfront.sent.error_trace}']")).to_be_visible()
    # tick two traces to compare them
    rows = page.locator("#trace-list tbody tr")
    rows.nth(0).locator(".compare-pick").check()
    expect(page.locator("#compare-picked")).to_be_disabled()
    rows.nth(1).locator(".compare-pick").check()
    page.locator("#compare-picked").click()
    page.wait_for_selector("#compare-table")
    assert re.search(r"/traces/[0-9a-f]{32}\?compare=[0-9a-f]{32}$", page.url)
    page.go_back()
    row = page.locator(f"tr[data-trace-id='{shopfront.sent.error_trace}']")
    row.locator("a").click()
    page.wait_for_selector("#waterfall[data-loaded]")
    assert watched.problems == []


def test_the_waterfall_shows_every_span_with_details_logs_and_the_critical_path(
    watched: Watched, shopfront: Shopfront
) -> None:
    page = watched.page
    watched.open(f"/traces/{shopfront.sent.error_trace}", "#waterfall[data-loaded]")
    assert page.locator("#span-count").inner_text() == "8"
    rows = page.locator("#wf-rows .wf-row")
    expect(rows).to_have_count(8)
    names = rows.locator(".wf-label").all_inner_texts()
    assert names == [
        "front GET /order",
        "front POST /orders",
        "orders POST /orders",
        "orders SELECT stock",
        "orders GET /stock",
        "inventory GET /stock",
        "orders POST /charge",
        "payment POST /charge",
    ]
    assert rows.and_(page.locator(".critical")).count() >= 3
    # the error span is selected first: its exception, status and log are in the details
    details = page.locator("#span-details")
    expect(details).to_contain_text("ERROR: card declined")
    expect(details.locator("pre.stack")).to_contain_text("ValueError: card declined for order")
    expect(details).to_contain_text("payment declined: card declined")
    expect(page.locator("#trace-log-list")).to_contain_text("stock checked for sku-")
    # fold the root: one row left; unfold: all back
    page.locator(".wf-row").first.locator("[data-toggle]").click()
    expect(rows).to_have_count(1)
    page.locator(".wf-row").first.locator("[data-toggle]").click()
    expect(rows).to_have_count(8)
    # a log's span link selects that span, and the URL names it: opening that URL selects it
    page.locator("#trace-log-list a[data-select]").first.click()
    expect(details.locator("h3")).to_contain_text("inventory")
    shared = page.url
    assert re.search(r"#span-[0-9a-f]{16}$", shared), shared
    page.goto("about:blank")
    page.goto(shared)
    page.wait_for_selector("#waterfall[data-loaded]")
    expect(details.locator("h3")).to_contain_text("inventory")
    expect(page.locator(".wf-row.selected .wf-label")).to_have_text("inventory GET /stock")
    assert watched.problems == []


def test_a_large_trace_renders_only_the_rows_in_view_and_reaches_every_span(
    watched: Watched, shopfront: Shopfront
) -> None:
    page = watched.page
    watched.open(f"/traces/{shopfront.sent.big_trace}", "#waterfall[data-loaded]")
    assert page.locator("#span-count").inner_text() == str(BIG_SPANS)
    assert page.evaluate("window.faultlensWaterfall.rows.length") == BIG_SPANS
    in_dom = page.locator("#wf-rows .wf-row").count()
    assert 0 < in_dom < 100, in_dom
    page.locator("#wf-scroll").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    last = page.evaluate("window.faultlensWaterfall.rows.at(-1).span.span_id")
    expect(page.locator(f".wf-row[data-span-id='{last}']")).to_be_visible()
    assert page.locator("#wf-rows .wf-row").count() < 100
    watched.screenshot("trace-large")
    assert watched.problems == []


def test_the_map_shows_every_call_edge_with_its_figures(watched: Watched, shopfront: Shopfront) -> None:
    page = watched.page
    watched.open("/map?service=orders", "#map[data-loaded]")
    edges = {
        (a, b)
        for a, b in page.evaluate("window.faultlensMap.edges().map(e => [e.source().id(), e.target().id()])")
    }
    assert edges == {
        ("front", "orders"),
        ("orders", "inventory"),
        ("orders", "payment"),
        ("orders", "postgresql"),
    }
    payment = page.locator("#edges tr[data-callee='payment']")
    expect(payment).to_contain_text("5.0%")  # every 20th charge declined
    expect(page.locator("#edges thead")).to_contain_text("p95")
    p50, p95, p99 = (_ms(c) for c in payment.inner_text().split("\t")[6:9])
    assert 8 <= p50 <= p95 <= p99 <= 10  # payment's own span takes 8-8.4 ms
    assert page.evaluate("window.faultlensMap.getElementById('batch').hasClass('faded')")
    watched.screenshot("map")
    assert watched.problems == []


def test_a_service_page_shows_red_per_operation_and_its_calls_in_and_out(
    watched: Watched, shopfront: Shopfront
) -> None:
    page = watched.page
    watched.open("/services/orders", "#service-edges[data-loaded]")
    page.wait_for_selector("#service-red[data-loaded]")
    rows = page.locator("#service-red .red-row")
    operations = set(rows.evaluate_all("rows => rows.map(r => r.dataset.operation)"))
    assert {"POST /orders", "GET /stock", "POST /charge", "SELECT stock"} <= operations
    expect(rows.first.locator("canvas")).to_have_count(3)
    expect(rows.first).to_contain_text("SERVER")  # what it serves comes first
    expect(rows.first.locator(".chart-title").nth(2)).to_have_text("latency ms p50/p95/p99")
    # the range per operation and per call it makes, with p95 beside p50 and p99
    summary = page.locator("#service-red-summary")
    expect(summary.locator("th")).to_contain_text(["p50", "p95", "p99"])
    charge = summary.locator("tr[data-operation='POST /charge']").inner_text().split("\t")
    assert charge[0] == "CLIENT" and int(charge[2]) > 0 and int(charge[3]) == 0
    p50, p95, p99 = (_ms(c) for c in charge[5:8])
    assert 8 <= p50 <= p95 <= p99 <= 12  # the call to payment takes 9-9.4 ms
    edges = page.locator("#service-edges tbody tr").all_inner_texts()
    assert sorted(e.split("\t")[:2] for e in edges) == [
        ["front", "orders"],
        ["orders", "inventory"],
        ["orders", "payment"],
        ["orders", "postgresql"],
    ]
    assert watched.problems == []


def test_the_map_draws_how_an_incident_spread(watched: Watched, shopfront: Shopfront) -> None:
    page = watched.page
    watched.open(f"/incidents/{shopfront.incident['id']}", "#incident-map")
    page.locator("#incident-map").click()
    page.wait_for_selector("#map[data-loaded]")
    expect(page.locator("#chain-list li").first).to_contain_text("orders → inventory")
    chain = page.evaluate(
        "window.faultlensMap.edges('.chain').map(e => e.source().id() + '>' + e.target().id())"
    )
    assert "orders>inventory" in chain
    assert page.evaluate("window.faultlensMap.getElementById('inventory').hasClass('root')")
    watched.screenshot("map-incident")
    assert watched.problems == []


def test_the_incident_page_names_its_root_cause_with_evidence_and_traces(
    watched: Watched, shopfront: Shopfront
) -> None:
    page = watched.page
    watched.open("/incidents", "#incident-list")
    page.locator(f"#incident-list a[href='/incidents/{shopfront.incident['id']}']").click()
    page.wait_for_selector("#root-causes")
    first = page.locator("article.root-cause").first
    expect(first).to_contain_text("#1")
    expect(first).to_contain_text("inventory")
    expect(first).to_contain_text("slow_execution")
    expect(first.locator("ul.evidence li").first).to_contain_text("exclusive time")
    now = httpx.get(f"{shopfront.url}/api/v1/incidents/{shopfront.incident['id']}", timeout=10).json()
    assert page.locator("#anomalies tbody tr").count() == now["anomaly_count"] == len(now["anomalies"])
    expect(page.locator("#anomaly-timeline canvas").first).to_be_visible()
    first.locator("ul.evidence a.mono").first.click()
    page.wait_for_selector("#waterfall[data-loaded]")
    expect(page.locator("#trace-summary")).to_contain_text("inventory")
    assert watched.problems == []


def test_comparing_two_traces_shows_where_the_time_went(watched: Watched, shopfront: Shopfront) -> None:
    page = watched.page
    sent = shopfront.sent
    watched.open(f"/traces/{sent.error_trace}?compare={sent.slow_trace}", "#compare-table")
    top = page.locator("#compare-table tbody tr").first
    expect(top).to_contain_text("GET /stock")  # the slowed-down operation moved most
    expect(top.locator("td").nth(5)).to_contain_text("+")
    assert watched.problems == []


def test_trace_search_by_attributes_suggested_from_the_spans_and_by_duration_bounds(
    watched: Watched, shopfront: Shopfront
) -> None:
    page = watched.page
    rows = page.locator("#trace-list tbody tr")
    watched.open("/traces?service=orders", "#trace-list")
    page.focus("#attr-key")  # the keys of the service's newest spans, their own and their resource's
    expect(page.locator("#attr-keys option[value='db.system']")).to_have_count(1)
    expect(page.locator("#attr-keys option[value='k8s.pod.name']")).to_have_count(1)
    page.fill("#attr-key", "db.system")
    page.focus("#attr-value")
    expect(page.locator("#attr-values option[value='postgresql']")).to_have_count(1)
    page.fill("#attr-value", "postgresql")
    page.click("#attr-add")
    page.fill("#attr-key", "k8s.pod.name")
    page.fill("#attr-value", "orders-1")
    page.press("#attr-value", "Enter")  # adds, does not submit
    expect(page.locator("#attrs")).to_have_value("db.system=postgresql k8s.pod.name=orders-1")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"attrs=db\.system%3Dpostgresql(\+|%20)k8s\.pod\.name%3Dorders-1"))
    expect(rows).to_have_count(50)  # every order made a SELECT on postgresql: the default limit
    page.focus("#attr-key")
    page.fill("#attr-key", "db.system")
    page.focus("#attr-value")
    expect(page.locator("#attr-values option[value='postgresql']")).to_have_count(1)
    watched.screenshot("traces-attributes")
    # all on one span: no postgresql call was made from the payment pod
    watched.open("/traces?attrs=db.system%3Dpostgresql+k8s.pod.name%3Dpayment-1", "#no-traces")
    watched.open("/traces?service=orders&attrs=db.system%3Dmysql", "#no-traces")
    watched.open("/traces?attrs=k8s.pod.name%3Dbatch-1", "#trace-list")  # a resource attribute
    expect(rows).to_have_count(1)
    expect(page.locator(f"tr[data-trace-id='{shopfront.sent.big_trace}']")).to_have_count(1)
    # durations: the declined payments of the 6 slow windows took 300 ms more than the 12 others
    watched.open("/traces?service=payment&status=error&limit=500&max_duration_ms=100", "#trace-list")
    expect(rows).to_have_count(36)
    expect(page.locator("input[name=max_duration_ms]")).to_have_value("100")
    watched.open("/traces?service=payment&status=error&limit=500&min_duration_ms=100", "#trace-list")
    expect(rows).to_have_count(18)
    assert watched.problems == []


def test_bad_filters_are_named_with_422_and_the_page_still_works(
    watched: Watched, shopfront: Shopfront
) -> None:
    response = watched.open("/traces?start=yesterday&min_duration_ms=-3")
    assert response is not None and response.status == 422
    alert = watched.page.locator(".problems")
    expect(alert).to_contain_text("start: expected an RFC 3339 timestamp")
    expect(alert).to_contain_text("min_duration_ms")
    response = watched.open("/traces?attrs=k%3D%22unclosed&min_duration_ms=5&max_duration_ms=2")
    assert response is not None and response.status == 422
    expect(alert).to_contain_text("attrs: not logfmt")
    expect(alert).to_contain_text("max_duration_ms: below the minimum duration")
    response = watched.open("/traces/not-a-trace-id")
    assert response is not None and response.status == 422
    response = watched.open("/traces/" + "ab" * 16, "#trace-summary.bad")
    expect(watched.page.locator("#trace-summary")).to_contain_text("not stored")
    watched.problems.clear()  # the API's 404 for that trace is the expected answer
    response = watched.open("/", "[data-red-service='front'][data-loaded]")
    assert response is not None and response.status == 200


def test_html_in_names_attributes_and_logs_is_shown_as_text_never_run(
    watched: Watched, shopfront: Shopfront
) -> None:
    page = watched.page
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    hostile = shopfront.sent.hostile_trace
    watched.open(f"/traces/{hostile}", "#waterfall[data-loaded]")
    expect(page.locator("#wf-rows .wf-label").first).to_have_text(f"front {HOSTILE_NAME}")
    expect(page.locator("#span-details table.kv td", has_text="alert(2)")).to_have_text(HOSTILE_ATTR)
    expect(page.locator("#trace-log-list td.body")).to_have_text(HOSTILE_LOG)
    watched.open(
        "/traces?service=front&operation="
        + HOSTILE_NAME.replace("?", "%3F").replace("=", "%3D").replace("&", "%26")
    )
    expect(page.locator("#trace-list tbody tr")).to_have_count(1)
    expect(page.locator("#trace-list tbody tr td").nth(2)).to_contain_text(HOSTILE_NAME)
    watched.open("/logs?severity=WARN", "#log-list")
    expect(page.locator("#log-list td.body", has_text="searched")).to_have_text(HOSTILE_LOG)
    assert page.locator("img[src='x'], img[src='y']").count() == 0
    assert dialogs == []
    assert watched.problems == []


def test_an_error_group_shows_its_counts_sample_and_traces(watched: Watched, shopfront: Shopfront) -> None:
    page = watched.page
    watched.open("/errors?service=payment", "#error-groups")
    page.locator("#error-groups a", has_text="ValueError").click()
    page.wait_for_selector("#error-counts canvas")
    expect(page.locator("h1")).to_contain_text("card declined for order")
    expect(page.locator("#sample-message")).to_contain_text("card declined for order")
    assert page.locator("#error-traces a").count() >= 1
    page.locator("#error-traces a").first.click()
    page.wait_for_selector("#waterfall[data-loaded]")
    expect(page.locator("#trace-summary")).to_contain_text("1 error span")
    assert watched.problems == []


def test_a_declined_payment_logged_and_on_its_span_is_linked_merged_and_split_again(
    watched: Watched, shopfront: Shopfront
) -> None:
    page = watched.page
    api = f"{shopfront.url}/api/v1/errors"
    span_group = shopfront.error_group
    groups = httpx.get(api, params={"service": "payment"}, timeout=10).json()["groups"]
    [log_group] = [g for g in groups if g["message_template"].startswith("payment declined")]
    before = {g["group_id"]: g["count"] for g in groups}
    try:
        watched.open(f"/errors/{span_group}", "#linked-groups")
        linked = page.locator(f"#linked-groups tr[data-group-id='{log_group['group_id']}']")
        expect(linked).to_contain_text("payment declined")
        linked.locator("input[name=group]").check()
        watched.screenshot("error-group-linked")
        page.click("#merge-linked")
        page.wait_for_selector("#merged-groups")
        assert page.url.endswith(f"/errors/{span_group}")
        expect(page.locator("#merged-groups")).to_contain_text(log_group["group_id"])
        total = before[span_group] + before[log_group["group_id"]]
        expect(page.locator("dl.timeline")).to_contain_text(f"{total:,}")
        # the listing shows them as one; the member's page is the merged group's
        watched.open("/errors?service=payment", "#error-groups")
        rows = page.locator("#error-groups tbody tr")
        expect(rows).to_have_count(len(groups) - 1)
        expect(page.locator(f"tr[data-group-id='{span_group}']")).to_contain_text("+1 merged")
        watched.open(f"/errors/{log_group['group_id']}", "#merged-note")
        expect(page.locator("h1")).to_contain_text("card declined for order")
        # kept in the store: the API answers the same, and a post from another site is refused
        detail = httpx.get(f"{api}/{log_group['group_id']}", timeout=10).json()
        assert detail["group_id"] == span_group and detail["merged"] == [log_group["group_id"]]
        evil = {"Origin": "http://evil.example"}
        refused = httpx.post(f"{shopfront.url}/errors/{span_group}/split", headers=evil, timeout=10)
        assert refused.status_code == 403
        # split it off again from the page
        page.locator("#merged-groups button.split").click()
        page.wait_for_selector("#linked-groups")
        expect(page.locator("#merged-groups")).to_have_count(0)
        after = httpx.get(api, params={"service": "payment"}, timeout=10).json()["groups"]
        assert {g["group_id"]: g["count"] for g in after} == before
    finally:  # the other tests see the groups apart whatever happened here
        httpx.delete(f"{api}/{span_group}/merges", timeout=10)
    assert watched.problems == []


def test_without_the_analysis_and_graph_every_page_still_loads_cleanly(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """An API app with no analysis and no graph over an empty store: no RED, incidents or
    map to fetch, and no page tries."""
    store = open_store(StoreConfig(data_dir=tmp_path_factory.mktemp("no-analysis")))
    server = ApiServer(create_app(store, SelfMetrics(), HealthState()), port=0)
    server.start()
    context = browser.new_context()
    try:
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        for path in (
            "/",
            "/traces",
            "/map",
            "/services/front",
            "/incidents",
            "/errors",
            "/logs",
            "/templates",
        ):
            page.goto(server.url + path)
            page.wait_for_load_state("networkidle")
        assert problems == []
        expect(page.locator("main")).to_contain_text("No log template (the analysis is off)")
    finally:
        context.close()
        server.shutdown()
        store.close()


def test_spans_whose_parents_form_a_cycle_are_all_shown(watched: Watched, shopfront: Shopfront) -> None:
    """Bad data (A's parent is B, B's is A) must not hide spans or hang the page."""
    trace_id = bytes.fromhex("c1c1e" + "0" * 26 + "1")
    a, b, c = (bytes([i]) * 8 for i in (0xA1, 0xB2, 0xC3))
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "cyclic"
    t = shopfront.sent.t0
    for sid, parent, name, start in ((a, b, "a", t), (b, a, "b", t + 1_000_000), (c, a, "c", t + 2_000_000)):
        span = rs.scope_spans.add().spans.add(
            trace_id=trace_id, span_id=sid, parent_span_id=parent, name=name
        )
        span.start_time_unix_nano, span.end_time_unix_nano = start, start + 5_000_000
    sent = httpx.post(
        f"http://127.0.0.1:{shopfront.server.http_port}/v1/traces",
        content=req.SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
        timeout=10,
    )
    assert sent.status_code == 200
    api = f"{shopfront.url}/api/v1/traces/{trace_id.hex()}"
    deadline = time.monotonic() + 15
    while httpx.get(api, timeout=10).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    watched.open(f"/traces/{trace_id.hex()}", "#waterfall[data-loaded]")
    expect(watched.page.locator("#wf-rows .wf-row")).to_have_count(3)
    assert watched.problems == []
