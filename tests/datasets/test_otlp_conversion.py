"""Records to OTLP requests: resources per pod, ids and times kept, nothing invented."""

from __future__ import annotations

from typing import Any

from faultlens.datasets import LogRecord, MetricRecord, OtlpConverter, SpanRecord, metric_identity

TID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def attrs(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which)
    return out


def span(n: int, pod: str, parent: bytes = b"") -> SpanRecord:
    return SpanRecord(
        TID, n.to_bytes(8, "big"), parent, f"op{n}", 1_000 + n, 2_000 + n, pod.rsplit("-", 2)[0], pod
    )


def test_spans_grouped_by_pod_with_ids_times_and_no_kind_or_status() -> None:
    a, b = "svc-a-5dc8d4f9fd-46997", "svc-b-6f6cfc45b-h5m2n"
    conv = OtlpConverter(pod_nodes={a: "node-1"})
    req = conv.traces([span(1, a), span(2, b, parent=(1).to_bytes(8, "big")), span(3, a)])
    assert len(req.resource_spans) == 2
    first = req.resource_spans[0]
    assert attrs(first.resource.attributes) == {
        "service.name": "svc-a",
        "k8s.pod.name": a,
        "service.instance.id": a,
        "k8s.node.name": "node-1",
    }
    spans = first.scope_spans[0].spans
    assert [s.name for s in spans] == ["op1", "op3"]
    s1 = spans[0]
    assert (s1.trace_id, s1.span_id, s1.parent_span_id) == (TID, (1).to_bytes(8, "big"), b"")
    assert (s1.start_time_unix_nano, s1.end_time_unix_nano) == (1_001, 2_001)
    assert s1.kind == 0 and not s1.HasField("status")
    child = req.resource_spans[1].scope_spans[0].spans[0]
    assert child.parent_span_id == (1).to_bytes(8, "big")
    assert "k8s.node.name" not in attrs(req.resource_spans[1].resource.attributes)


def test_time_offset_shifts_every_timestamp_alike() -> None:
    conv = OtlpConverter(time_offset_ns=1_000_000)
    s = conv.traces([span(1, "x-5dc8d4f9fd-46997")]).resource_spans[0].scope_spans[0].spans[0]
    assert (s.start_time_unix_nano, s.end_time_unix_nano) == (1_001_001, 1_002_001)
    log = LogRecord(5, "x", "x-1", "", "", b"", b"", "", 0, "", "hi")
    assert conv.logs([log]).resource_logs[0].scope_logs[0].log_records[0].time_unix_nano == 1_000_005


def test_logs_carry_ids_severity_body_and_attributes() -> None:
    rec = LogRecord(
        time_ns=42,
        service="ts-user-service",
        pod="ts-user-service-687d654649-lrcwv",
        node="33.33.33.76",
        container="server",
        trace_id=TID,
        span_id=b"\x01" * 8,
        severity_text="ERROR",
        severity_number=17,
        logger="u.c.UserController#48",
        body="[getUser][failed]",
        stream="stdout",
    )
    conv = OtlpConverter()
    rl = conv.logs([rec]).resource_logs[0]
    assert attrs(rl.resource.attributes)["k8s.container.name"] == "server"
    assert attrs(rl.resource.attributes)["k8s.node.name"] == "33.33.33.76"
    lr = rl.scope_logs[0].log_records[0]
    assert (lr.time_unix_nano, lr.observed_time_unix_nano) == (42, 42)
    assert (lr.severity_number, lr.severity_text) == (17, "ERROR")
    assert lr.body.string_value == "[getUser][failed]"
    assert (lr.trace_id, lr.span_id) == (TID, b"\x01" * 8)
    assert attrs(lr.attributes) == {
        "code.location": "u.c.UserController#48",
        "code.line.number": 48,
        "log.iostream": "stdout",
    }
    assert conv.pod_nodes == {rec.pod: "33.33.33.76"}  # learnt for later spans and metrics


def test_metric_rows_become_one_gauge_per_column() -> None:
    pod = "ts-basic-service-5dc8d4f9fd-46997"
    rows = [
        MetricRecord(60, "ts-basic-service", pod, (("CpuUsage(m)", 4.5), ("PodClientLatencyP90(s)", 0.03))),
        MetricRecord(120, "ts-basic-service", pod, (("CpuUsage(m)", 5.5),)),
    ]
    req = OtlpConverter().metrics(rows)
    rm = req.resource_metrics[0]
    assert attrs(rm.resource.attributes)["service.name"] == "ts-basic-service"
    metrics = {m.name: m for m in rm.scope_metrics[0].metrics}
    assert set(metrics) == {"container.cpu.usage", "pod.client.latency.p90"}
    cpu = metrics["container.cpu.usage"]
    assert cpu.unit == "{millicpu}"
    assert [(p.time_unix_nano, p.as_double) for p in cpu.gauge.data_points] == [(60, 4.5), (120, 5.5)]
    assert attrs(cpu.gauge.data_points[0].attributes) == {"nezha.column": "CpuUsage(m)"}
    assert metrics["pod.client.latency.p90"].unit == "s"


def test_metric_identity_generic_naming() -> None:
    assert metric_identity("MemoryUsage(Mi)") == metric_identity("MemoryUsage(Mi)", True)
    assert (metric_identity("MemoryUsage(Mi)").name, metric_identity("MemoryUsage(Mi)").unit) == (
        "container.memory.usage",
        "MiBy",
    )
    assert metric_identity("NodeCpuUsageRate(%)").name == "node.cpu.usage.rate"
    assert metric_identity("NetworkReceiveBytes").unit == "By"
    assert metric_identity("SuccessRate(%)", per_pod=False).name == "service.success.rate"
    assert metric_identity("SomethingNew(widgets)").unit == "widgets"
