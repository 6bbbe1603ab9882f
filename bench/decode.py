"""Decode benchmark: items/s turned from OTLP bytes into Arrow tables, per signal.

Side by side with the raw upb ``ParseFromString`` rate of the same bytes (the floor of
any Python decoder) and, for traces, the OTLP/JSON path. Requests come from
:mod:`faultlens.testing.payloads`: 1,000 spans over 5 services with ~15 attributes each,
1,000 log records, and ~1,000 metric points of every kind.

``spans_native_vs_python`` decodes the same trace request with the native decoder
(``decode_spans_native``, Arrow wrapping included) and the Python one
(``decode_spans_python``), interleaved in one run: spans/s, CPU us per span (best and
median of the rounds) and the ratio. ``traces`` goes through ``decode_request``, which
uses the native decoder when it is built (``FAULTLENS_NATIVE_DECODE=0`` turns it off).

``json_fast_vs_reference`` decodes the same OTLP/JSON trace, log and metric requests through
``decode_request`` (the fast path, :mod:`faultlens.decode._jsonwire`) and through the
json_format reference (``json_reference_bytes`` then ``decode_bytes``), interleaved the
same way, and says whether the fast path took each body.

Times are CPU time of this process (``time.process_time``), best of ``--repeat`` runs,
so other work on a shared machine disturbs the figures less.

    python bench/decode.py
    python bench/decode.py --spans 5000 --repeat 30

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

from faultlens.decode import decode_bytes, decode_request
from faultlens.decode._jsonwire import json_to_wire
from faultlens.decode.parse import REQUEST_TYPES
from faultlens.decode.request import json_reference_bytes
from faultlens.decode.spans import NATIVE, decode_spans_native, decode_spans_python, native_available
from faultlens.testing.payloads import (
    build_logs_request,
    build_metrics_request,
    build_trace_request,
    to_otlp_json,
)
from faultlens.types import Signal

BASE_NS = 1_700_000_000_000_000_000


def best_seconds(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm up caches and lazy imports
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def measure(signal: Signal, body: bytes, items: int, repeat: int, as_json: bool = False) -> dict[str, Any]:
    cls = REQUEST_TYPES[signal]
    decode_s = best_seconds(lambda: decode_request(signal, body, json=as_json), repeat)
    out = {
        "items": items,
        "bytes": len(body),
        "decode_ms": round(decode_s * 1e3, 2),
        "decode_items_per_s": round(items / decode_s),
    }
    if not as_json:
        parse_s = best_seconds(lambda: cls.FromString(body), repeat)
        out["parse_only_items_per_s"] = round(items / parse_s)
        out["decode_vs_parse"] = round(parse_s / decode_s, 3)
    return out


def interleaved(
    decoders: dict[str, Callable[[], Any]], loops: dict[str, int], items: int, what: str, repeat: int
) -> dict[str, Any]:
    """Rounds of each decoder in turn, so load affects all alike: best and median per item."""
    times: dict[str, list[float]] = {name: [] for name in decoders}
    for fn in decoders.values():
        fn()  # warm up
    for _ in range(repeat):
        for name, fn in decoders.items():
            start = time.process_time()
            for _ in range(loops[name]):
                fn()
            times[name].append((time.process_time() - start) / loops[name])
    out: dict[str, Any] = {}
    for name, ts in times.items():
        best, median = min(ts), statistics.median(ts)
        out[name] = {
            f"{what}_per_s": round(items / best),
            f"cpu_us_per_{what.rstrip('s')}": round(best / items * 1e6, 2),
            f"median_{what}_per_s": round(items / median),
            f"median_cpu_us_per_{what.rstrip('s')}": round(median / items * 1e6, 2),
        }
    return {"times": times, **out}


def native_vs_python(body: bytes, spans: int, repeat: int) -> dict[str, Any]:
    """Both span decoders on the same bytes, rounds interleaved so load affects both alike."""
    decoders: dict[str, Callable[[], Any]] = {"python": lambda: decode_spans_python(body)}
    if native_available():
        decoders["native"] = lambda: decode_spans_native(body)
    # a round lasts ~50 ms of CPU for either decoder
    loops = {"python": max(1, 50_000 // (36 * spans)), "native": max(1, 50_000 // (3 * spans))}
    res = interleaved(decoders, loops, spans, "spans", repeat)
    times = res.pop("times")
    out: dict[str, Any] = {"spans": spans, "bytes": len(body), "native_built": native_available(), **res}
    if "native" in times:
        out["native_speedup"] = round(min(times["python"]) / min(times["native"]), 1)
        out["native_speedup_median"] = round(
            statistics.median(times["python"]) / statistics.median(times["native"]), 1
        )
    return out


def json_fast_vs_reference(signal: Signal, body: bytes, items: int, repeat: int) -> dict[str, Any]:
    """One OTLP/JSON body decoded by the fast path and by the json_format reference."""
    decoders: dict[str, Callable[[], Any]] = {
        "reference": lambda: decode_bytes(signal, json_reference_bytes(signal, body)),
        "fast": lambda: decode_request(signal, body, json=True),
    }
    # a round lasts ~50-100 ms of CPU for either path
    loops = {"reference": max(1, 50_000 // (200 * items)), "fast": max(1, 50_000 // (15 * items))}
    res = interleaved(decoders, loops, items, "items", repeat)
    times = res.pop("times")
    return {
        "items": items,
        "bytes": len(body),
        "fast_path_taken": json_to_wire(signal, body) is not None,
        **res,
        "speedup": round(min(times["reference"]) / min(times["fast"]), 1),
        "speedup_median": round(statistics.median(times["reference"]) / statistics.median(times["fast"]), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1000)
    parser.add_argument("--attrs", type=int, default=15)
    parser.add_argument("--services", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--freeze-gc", action="store_true", help="gc.freeze() first, as a server may")
    args = parser.parse_args()
    if args.freeze_gc:
        gc.collect()
        gc.freeze()
    traces = build_trace_request(
        n_spans=args.spans, services=args.services, attrs_per_span=args.attrs, base_time_ns=BASE_NS
    )
    logs = build_logs_request(n_records=args.spans, services=args.services, base_time_ns=BASE_NS)
    points_per_metric = max(args.spans // (7 * args.services), 1)
    metrics = build_metrics_request(
        services=args.services, points_per_metric=points_per_metric, base_time_ns=BASE_NS
    )
    n_points = 7 * args.services * points_per_metric
    result = {
        "bench": "decode",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "repeat": args.repeat,
        "decode_spans_uses_native": NATIVE,
        "spans_native_vs_python": native_vs_python(traces.SerializeToString(), args.spans, args.repeat),
        "traces": measure(Signal.TRACES, traces.SerializeToString(), args.spans, args.repeat),
        "traces_json": measure(
            Signal.TRACES, to_otlp_json(traces), args.spans, max(args.repeat // 4, 3), as_json=True
        ),
        "json_fast_vs_reference": {
            "traces": json_fast_vs_reference(
                Signal.TRACES, to_otlp_json(traces), args.spans, max(args.repeat // 4, 3)
            ),
            "logs": json_fast_vs_reference(
                Signal.LOGS, to_otlp_json(logs), args.spans, max(args.repeat // 4, 3)
            ),
            "metrics": json_fast_vs_reference(
                Signal.METRICS, to_otlp_json(metrics), n_points, max(args.repeat // 4, 3)
            ),
        },
        "logs": measure(Signal.LOGS, logs.SerializeToString(), args.spans, args.repeat),
        "metrics": measure(Signal.METRICS, metrics.SerializeToString(), n_points, args.repeat),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
