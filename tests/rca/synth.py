"""A small synthetic system for RCA tests: front -> a -> {b, c}, with logs and pod metrics.

Each request is one trace: front's server span, its call span into a, a's server span, and
a's call spans into b and c (client span, then the callee's server span). Server spans log
at code locations (``B#1``, ``B#2`` ...). Knobs change one thing at a time, so a test can
inject exactly one kind of fault and check that it is found, with the right reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa

from faultlens.decode.schema import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA
from faultlens.rca import Observations
from faultlens.store.testing import log_row, metric_row, span_row

MS = 1_000_000
MIN = 60_000_000_000
PODS = {
    "front": "front-7d9f8c6b5d-aaaaa",
    "a": "a-7d9f8c6b5d-bbbbb",
    "b": "b-7d9f8c6b5d-ccccc",
    "c": "c-7d9f8c6b5d-ddddd",
    "d": "d-7d9f8c6b5d-eeeee",
}


@dataclass(frozen=True)
class Knobs:
    b_locations: tuple[str, ...] = ("B#1", "B#2")  # what b logs per request
    front_error_log: bool = False  # front logs an ERROR when it sees a bad answer
    c_extra_ns: int = 0  # exclusive time added in c
    ab_gap_ns: int = 0  # time added on the call a -> b, outside b's own span
    b_status_error: bool = False  # b's span fails, and a and front pass it on
    cpu_c: float = 5.0  # c's CPU utilisation (%)
    b_new_every: int = 0  # when > 0, every n-th request b also logs B#7 (a partial change)
    d_every: int = 0  # when > 0, every n-th request c also calls d (a small service)
    cd_gap_ns: int = 0  # time added on the call c -> d, outside d's own span
    a_skips_c_every: int = 0  # when > 0, every n-th request b answers something that makes a
    # log A#9 (an ERROR) and not call c: a wrong answer from b, nothing changed in b itself
    span_kinds: bool = False  # spans say SERVER / CLIENT, and CLIENT spans name peer.service
    c_down: bool = False  # c sends no spans or logs; a's calls into it fail, and a and front fail
    c_answer_rejected: bool = False  # c's span is fine, a's CLIENT span into it fails (a bad
    # answer); a and front fail


SERVER, CLIENT = 2, 3  # OTLP SpanKind values


def _span(
    trace: int, span: int, parent: int | None, svc: str, name: str, start: int, dur: int, **kw: object
) -> dict:
    kw.setdefault("kind", 0)
    return span_row(
        trace,
        span,
        parent,
        start=start,
        duration=dur,
        name=name,
        service_name=svc,
        k8s_pod_name=PODS[svc],
        **kw,
    )


def _log(trace: int, span: int, svc: str, t: int, loc: str, sev: int = 9) -> dict:
    return log_row(
        time=t,
        trace=trace,
        span=span,
        service_name=svc,
        k8s_pod_name=PODS[svc],
        severity_number=sev,
        severity_text="ERROR" if sev >= 17 else "INFO",
        body=f"{loc} did something 42",
        attributes=json.dumps({"code.location": loc}),
    )


def observations(n: int, t0: int, k: Knobs, *, first_trace: int = 1, minutes: int = 3) -> Observations:
    spans: list[dict] = []
    logs: list[dict] = []
    step = minutes * MIN // n
    for i in range(n):
        tr = first_trace + i
        t = t0 + i * step
        jitter = (i * 7919) % 5 * MS // 10
        calls_d = bool(k.d_every) and i % k.d_every == 0
        cd_call = 2 * MS + k.cd_gap_ns if calls_d else 0
        b_dur, c_dur = 5 * MS + jitter, 8 * MS + jitter + k.c_extra_ns + cd_call
        ab_call = b_dur + MS + k.ab_gap_ns
        ac_call = c_dur + MS
        skip_c = bool(k.a_skips_c_every) and i % k.a_skips_c_every == 0
        a_dur = ab_call + (0 if skip_c else ac_call) + 2 * MS
        fa_call = a_dur + MS
        f_dur = fa_call + 2 * MS
        c_fails = k.c_down or k.c_answer_rejected
        err = {"status_code": 2} if k.b_status_error else {}
        passed_on = {"status_code": 2} if k.b_status_error or c_fails else {}
        server: dict[str, object] = {"kind": SERVER} if k.span_kinds else {}

        def client(callee: str) -> dict[str, object]:
            return {"kind": CLIENT, "peer_service": callee} if k.span_kinds else {}

        spans += [
            _span(tr, 1, None, "front", "GET /home", t, f_dur, **passed_on, **server),
            _span(tr, 2, 1, "front", "HTTP GET", t + MS, fa_call, **passed_on, **client("a")),
            _span(tr, 3, 2, "a", "/api/a", t + MS, a_dur, **passed_on, **server),
            _span(tr, 4, 3, "a", "HTTP GET", t + 2 * MS, ab_call, **client("b")),
            _span(tr, 5, 4, "b", "/api/b", t + 2 * MS + k.ab_gap_ns // 2, b_dur, **err, **server),
        ]
        logs += [_log(tr, 1, "front", t, "F#1"), _log(tr, 3, "a", t + MS, "A#1")]
        if skip_c:
            logs.append(_log(tr, 3, "a", t + 3 * MS + ab_call, "A#9", sev=17))
        else:
            failed = {"status_code": 2} if c_fails else {}
            spans.append(
                _span(tr, 6, 3, "a", "HTTP POST", t + 3 * MS + ab_call, ac_call, **failed, **client("c"))
            )
            if not k.c_down:
                spans.append(_span(tr, 7, 6, "c", "/api/c", t + 3 * MS + ab_call, c_dur, **server))
                logs.append(_log(tr, 7, "c", t + 4 * MS, "C#1"))
        logs += [_log(tr, 5, "b", t + 3 * MS, loc) for loc in k.b_locations]
        if k.b_new_every and i % k.b_new_every == 0:
            logs.append(_log(tr, 5, "b", t + 3 * MS, "B#7"))
        if calls_d and not skip_c and not k.c_down:
            d_start = t + 4 * MS + ab_call
            spans += [
                _span(tr, 8, 7, "c", "HTTP GET", d_start, cd_call, **client("d")),
                _span(tr, 9, 8, "d", "/api/d", d_start + k.cd_gap_ns // 2, MS + jitter, **server),
            ]
            logs.append(_log(tr, 9, "d", d_start + MS, "D#1"))
        if k.front_error_log:
            logs.append(_log(tr, 1, "front", t + f_dur, "F#9", sev=17))
    metrics = [
        metric_row(
            name="container.cpu.usage.rate",
            time=t0 + m * MIN,
            value=v,
            metric_unit="%",
            service_name=svc,
            k8s_pod_name=PODS[svc],
        )
        for m in range(minutes)
        for svc, v in (("front", 10.0), ("a", 6.0 + m % 2), ("b", 4.0), ("c", k.cpu_c + m % 2))
    ]
    return Observations(
        pa.Table.from_pylist(spans, schema=SPAN_SCHEMA),
        pa.Table.from_pylist(logs, schema=LOG_SCHEMA),
        pa.Table.from_pylist(metrics, schema=METRIC_SCHEMA),
    )


def baseline(k: Knobs | None = None) -> Observations:
    return observations(300, 0, k or Knobs(), minutes=10)


def window(k: Knobs, n: int = 120) -> Observations:
    return observations(n, 20 * MIN, k, first_trace=100_000)


def concat(*parts: Observations) -> Observations:
    """One stretch of time made of several (e.g. baseline minutes with different workloads)."""
    return Observations(
        pa.concat_tables([p.spans for p in parts]),
        pa.concat_tables([p.logs for p in parts]),
        pa.concat_tables([p.metrics for p in parts]),
    )
