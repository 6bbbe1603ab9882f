"""The Nezha reader on small synthetic directories holding the messy cases of real ones."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

from nezha_builder import (
    CART,
    DAY,
    FRONTEND,
    LOG_HEADER,
    METRIC_HEADER,
    REDIS,
    T0,
    TRACE_HEADER,
    S,
    Synthetic,
    build_synthetic,
    tid,
    write_csv,
)

from faultlens.datasets import NezhaDataset, SpanRecord, service_of_pod
from faultlens.datasets.otlp import OtlpConverter
from faultlens.types import TimeRange


def test_days_and_faults_use_inject_time_as_utc(synthetic: Synthetic) -> None:
    ds = NezhaDataset(synthetic.root)
    assert ds.days() == [DAY]
    faults = ds.faults()
    assert len(faults) == 1
    fault = faults[0]
    assert fault.inject_time == dt.datetime(2024, 3, 1, 10, 1, 30, tzinfo=dt.UTC)
    assert fault.inject_time_ns == T0 + 90 * S  # not inject_timestamp, which is 8 h off
    assert (fault.pod, fault.service, fault.fault_type, fault.day) == (CART, "cartservice", "exception", DAY)
    assert fault.minute_ns == T0 + 60 * S
    assert ds.report.rows_skipped("fault_list", "unparseable inject_time") == 1


def test_spans_read_from_gz_and_plain_csv_skipping_broken_rows_and_duplicates(synthetic: Synthetic) -> None:
    ds = NezhaDataset(synthetic.root)
    spans = list(ds.spans())
    assert len(spans) == synthetic.spans
    assert len({(s.trace_id, s.span_id) for s in spans}) == len(spans)
    assert ds.report.rows_read("trace") == synthetic.spans
    assert ds.report.rows_skipped("trace", "wrong number of CSV fields") == 1
    assert ds.report.rows_skipped("trace", "duplicate span") == 1
    assert ds.report.files_skipped("trace", "not a .csv or .csv.gz file") == 1
    times = [s.start_ns for s in spans]
    assert times == sorted(times)


def test_span_fields_and_service_naming(synthetic: Synthetic) -> None:
    spans = {s.span_id: s for s in NezhaDataset(synthetic.root).spans()}
    root = spans[bytes.fromhex(f"{100:016x}")]
    child = spans[bytes.fromhex(f"{200:016x}")]
    redis = spans[bytes.fromhex(f"{300:016x}")]
    assert root.parent_span_id == b""
    assert child.parent_span_id == root.span_id
    assert root.trace_id == bytes.fromhex(tid(1))
    assert (root.service, root.pod, root.name) == ("frontend", FRONTEND, "GET /cart")
    assert (child.service, redis.service) == ("cartservice", "redis-cart")
    assert root.end_ns - root.start_ns == 5_000_000


def test_logs_parsed_with_ids_severity_logger_and_broken_row_counted(synthetic: Synthetic) -> None:
    ds = NezhaDataset(synthetic.root)
    logs = list(ds.logs())
    assert len(logs) == synthetic.logs
    error = next(r for r in logs if r.severity_text == "ERROR")
    assert error.severity_number == 17
    assert error.logger == "c.s.CartServiceImpl#88"
    assert error.body == "[getCart][cart not found]"
    assert (error.pod, error.service, error.node, error.container) == (
        CART,
        "cartservice",
        "10.0.0.7",
        "server",
    )
    assert error.trace_id == bytes.fromhex(tid(1))
    assert error.span_id == bytes.fromhex(f"{200:016x}")
    assert error.stream == "stdout"
    assert ds.report.rows_skipped("log", "wrong number of CSV fields") == 1


def test_missing_log_directory_and_missing_minute_do_not_stop_reading(synthetic: Synthetic) -> None:
    ds = NezhaDataset(synthetic.root)
    # construct_data has no log directory; minute 10_03 is missing everywhere.
    assert [s.start_ns for s in ds.spans(TimeRange(T0 + 120 * S, T0 + 240 * S))] == [T0 + 185 * S]
    assert list(ds.logs(TimeRange(T0 - 600 * S, T0))) == []


def test_metrics_skip_other_columns_and_identical_copies_and_leave_out_nan(synthetic: Synthetic) -> None:
    ds = NezhaDataset(synthetic.root)
    rows = list(ds.metrics())
    assert len(rows) == synthetic.metric_rows
    assert ds.report.files_skipped("metric", "other columns (no TimeStamp)") == 1
    assert ds.report.files_skipped("metric", "identical copy of a rca_data file") == 1
    assert ds.report.kinds["metric"].values_skipped["NaN, empty or non-numeric value"] == 2
    pod_row = next(r for r in rows if r.pod == FRONTEND)
    assert pod_row.service == "frontend"
    assert dict(pod_row.values) == {"CpuUsage(m)": 12.5, "MemoryUsage(Mi)": 300.25, "PodLatencyP90(s)": 0.05}
    service_row = next(r for r in rows if not r.pod)
    assert (service_row.service, service_row.time_ns) == ("Frontend", T0)
    times = [r.time_ns for r in rows]
    assert times == sorted(times)


def test_time_range_filters_rows_by_their_own_time(synthetic: Synthetic) -> None:
    ds = NezhaDataset(synthetic.root)
    window = TimeRange(T0 + 10 * S, T0 + 30 * S)
    spans = list(ds.spans(window))
    assert spans and all(window.contains(s.start_ns) for s in spans)
    assert {s.start_ns // S for s in spans} == {(T0 + 10 * S) // S, (T0 + 20 * S) // S}
    assert all(window.contains(r.time_ns) for r in ds.metrics(window))


def test_records_merge_signals_in_time_order(synthetic: Synthetic) -> None:
    records = list(NezhaDataset(synthetic.root).records())
    assert len(records) == synthetic.spans + synthetic.logs + synthetic.metric_rows
    times = [r.time_ns for r in records]
    assert times == sorted(times)


def test_normal_periods_span_the_data_of_construct_minutes(synthetic: Synthetic) -> None:
    periods = NezhaDataset(synthetic.root).normal_periods()
    assert len(periods) == 1
    period = periods[0]
    assert period.minute_ns == T0 - 4 * 60 * S
    assert period.time_range.start_ns == T0 - 300 * S
    assert period.time_range.end_ns == T0 - 300 * S + 2_000_000 + 1


def test_file_level_skips_are_counted_once_however_often_met(synthetic: Synthetic) -> None:
    ds = NezhaDataset(synthetic.root)
    for _ in range(3):
        list(ds.spans())
        ds.normal_periods()
    assert ds.report.files_skipped("trace", "not a .csv or .csv.gz file") == 1


def test_time_bounds_cover_minute_files_and_metrics(synthetic: Synthetic) -> None:
    bounds = NezhaDataset(synthetic.root).time_bounds()
    assert bounds is not None
    assert bounds.start_ns <= T0 - 300 * S
    assert bounds.end_ns > T0 + 185 * S


def test_directory_with_only_rca_data_and_no_fault_list(tmp_path: Path) -> None:
    syn = build_synthetic(tmp_path / "x")
    (syn.root / "rca_data" / DAY.isoformat() / f"{DAY.isoformat()}-fault_list.json").unlink()
    ds = NezhaDataset(syn.root)
    assert ds.faults() == []
    assert ds.report.files_skipped("fault_list", "no fault list for a day") == 1
    assert ds.normal_periods()  # construct_data still there


def test_truncated_gzip_keeps_rows_before_the_cut(tmp_path: Path) -> None:
    syn = build_synthetic(tmp_path / "x")
    path = syn.root / "rca_data" / DAY.isoformat() / "trace" / "10_01_trace.csv.gz"
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data)[: len(gzip.compress(data)) * 2 // 3])
    ds = NezhaDataset(syn.root)
    spans = list(ds.spans())
    assert 0 < len(spans) < syn.spans
    assert sum(ds.report.kinds["trace"].files_skipped.values()) >= 1


def test_log_column_holding_plain_text_or_trailing_garbage(tmp_path: Path) -> None:
    day = tmp_path / "rca_data" / DAY.isoformat()
    base = [str(T0), str(T0), "n1", "web-abc1234-xyz12", "c", "", ""]
    good = json.dumps({"log": "WARN a.B#3 careful\n", "stream": "stderr"})
    write_csv(
        day / "log" / "10_00_log.csv",
        LOG_HEADER,
        [[*base, "ERROR plain text line"], [*base, good + 'junk"'], [*base, '{"log": "cut']],
    )
    ds = NezhaDataset(tmp_path)
    logs = list(ds.logs())
    assert [(r.severity_text, r.body) for r in logs] == [("ERROR", "plain text line"), ("WARN", "careful")]
    assert logs[1].stream == "stderr"
    assert logs[0].trace_id == b"" and logs[0].service == "web"
    assert ds.report.rows_skipped("log", "Log is not valid JSON") == 1


def test_service_of_pod_naming_rules() -> None:
    assert service_of_pod("ts-basic-service-5dc8d4f9fd-46997") == "ts-basic-service"
    assert service_of_pod("ts-ui-dashboard-5477b965f-2chkr") == "ts-ui-dashboard"
    assert service_of_pod(FRONTEND) == "frontend"
    assert service_of_pod(REDIS) == "redis-cart"
    assert service_of_pod("a-b-c") == "a"  # the documented rule when nothing looks generated
    assert service_of_pod("Frontend") == "Frontend"


def test_custom_service_naming(synthetic: Synthetic) -> None:
    ds = NezhaDataset(synthetic.root, service_of=lambda pod: pod.upper())
    span = next(iter(ds.spans()))
    assert isinstance(span, SpanRecord)
    assert span.service == span.pod.upper()


def test_garbage_times_fall_back_to_timestamp_or_skip_the_row(tmp_path: Path) -> None:
    day = tmp_path / "rca_data" / DAY.isoformat()
    ok = json.dumps({"log": "ERROR a.B#1 boom\n"})
    pod = "web-abc1234-xyz12"
    write_csv(
        day / "log" / "10_01_log.csv.gz",
        LOG_HEADER,
        [
            ["2024-03-01T10:00:05.250", "-6795364578871345152", "n", pod, "c", "", "", ok],
            ["garbage", "-1", "n", pod, "c", "", "", ok],
        ],
    )
    write_csv(
        day / "trace" / "10_01_trace.csv.gz",
        TRACE_HEADER,
        [
            [tid(1), f"{1:016x}", "root", pod, "op", "-5", "10", "1"],
            [tid(1), f"{2:016x}", "root", pod, "op", "x", "", ""],
        ],
    )
    ds = NezhaDataset(tmp_path)
    logs = list(ds.logs())
    assert [r.time_ns for r in logs] == [T0 + 5 * S + 250_000_000]
    assert ds.report.rows_skipped("log", "invalid TimeUnixNano and Timestamp") == 1
    assert ds.report.kinds["log"].values_skipped["invalid TimeUnixNano (time taken from Timestamp)"] == 1
    assert list(ds.spans()) == []
    assert ds.report.rows_skipped("trace", "invalid start or end time") == 2


def test_a_metric_file_whose_timestamp_contradicts_its_time_text_is_read_at_the_text(tmp_path: Path) -> None:
    day = tmp_path / "rca_data" / DAY.isoformat()
    pod = "web-abc1234-xyz12"
    years = 200_000_000  # as one OnlineBoutique pod's file has it
    rows = []
    for m in range(3):
        t = T0 // S + m * 60
        text = (
            dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
            + ".607158889 +0000 UTC m=+0.1"
        )
        rows.append([text, str(t + years), pod, "1", "2", "0.05"])
    write_csv(day / "metric" / f"{pod}_metric.csv.gz", METRIC_HEADER, rows)
    ok = "web2-abc1234-xyz12"
    write_csv(
        day / "metric" / f"{ok}_metric.csv.gz", METRIC_HEADER, [["garbage", str(T0 // S), ok, "1", "2", "3"]]
    )
    ds = NezhaDataset(tmp_path)
    got = {(r.pod, r.time_ns) for r in ds.metrics()}
    assert got == {(pod, T0 + m * 60 * S + 607_158_889) for m in range(3)} | {(ok, T0)}
    assert ds.report.kinds["metric"].rows_corrected == {
        "TimeStamp contradicts the Time text: the text is used": 3
    }
    assert "corrected 3 rows" in "\n".join(ds.report.lines())


def test_edge_latency_files_become_one_row_per_edge_from_the_end_that_reported_it(tmp_path: Path) -> None:
    day = tmp_path / "rca_data" / DAY.isoformat()
    header = ["time", "timestamp", "frontend_cartservice", "checkoutservice_cartservice", "weird"]
    t = T0 // S
    write_csv(day / "metric" / "source_50.csv.gz", header, [["x UTC", str(t), "0.3", "NaN", "1"]])
    write_csv(day / "metric" / "destination_50.csv.gz", header, [["x UTC", str(t), "0.004", "0.005", "1"]])
    ds = NezhaDataset(tmp_path)
    got = sorted((r.service, r.peer, r.values) for r in ds.metrics())
    assert got == [
        ("cartservice", "checkoutservice", (("ServerLatencyP50(s)", 0.005),)),
        ("cartservice", "frontend", (("ServerLatencyP50(s)", 0.004),)),
        ("frontend", "cartservice", (("ClientLatencyP50(s)", 0.3),)),
    ]
    assert ds.report.kinds["metric"].values_skipped["NaN, empty or non-numeric value"] == 1
    request = OtlpConverter().metrics([r for r in ds.metrics() if r.service == "frontend"])
    (metric,) = request.resource_metrics[0].scope_metrics[0].metrics
    assert (metric.name, metric.unit) == ("service.client.latency.p50", "s")
    attrs = {kv.key: kv.value.string_value for kv in metric.gauge.data_points[0].attributes}
    assert attrs["peer.service"] == "cartservice"
