"""What keeps the store writing and answering: the cost of the limits, DuckDB's memory per
write, and reads sharing a budget.

Sections (all by default; pick with ``--sections``):

- ``limits``: :func:`faultlens.decode.limits.enforce_limits` on decoded 1,000-item requests
  where nothing exceeds (spans with 15 and 40 attributes, logs) beside the decode of the
  same request, and on 1,000 spans that are all over the record limit; the least CPU time
  of ``--repeats``.
- ``pin``: one :meth:`DuckDBStore.write` of ``--pin-rows`` spans whose attribute sets are
  each ``S`` bytes, for several ``S``, against ``store.memory_limit_mib`` (default 64): does
  it commit? DuckDB holds the strings of each 2,048-row vector of a write in memory until
  the commit, so what matters is ``2048 x S`` against the limit, not the write's size.
- ``reads``: eight threads reading (``find_traces`` with a duration filter,
  ``read_window``) and one writing for ``--read-seconds`` against a store of 200k spans,
  with the read budget (two at once) and with every read at once (nine slots): reads done
  and errors.

    python bench/store_limits.py                       # ~1-2 minutes on 2 cores
    python bench/store_limits.py --sections limits

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import duckdb

from faultlens.config.model import LimitsConfig
from faultlens.decode.limits import enforce_limits
from faultlens.decode.request import decode_bytes
from faultlens.store import DuckDBStore, TraceQuery
from faultlens.store._connection import ReadBudget
from faultlens.store.window import read_window
from faultlens.testing.payloads import build_logs_request, build_trace_request, key_values
from faultlens.types import Signal, TimeRange

S = 1_000_000_000


def _best_ms(fn: Callable[[], object], repeats: int) -> float:
    """The least CPU time of ``repeats`` calls (one thread: CPU time is steadier than wall
    time on a shared host)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return round(best * 1e3, 3)


def limits_section(repeats: int) -> dict[str, Any]:
    limits = LimitsConfig()
    out: dict[str, Any] = {}
    for attrs in (15, 40):
        raw = build_trace_request(n_spans=1000, attrs_per_span=attrs).SerializeToString()
        batch = decode_bytes(Signal.TRACES, raw)
        assert enforce_limits(batch, limits).batch is batch
        out[f"spans_1000_attrs_{attrs}"] = {
            "decode_ms": _best_ms(partial(decode_bytes, Signal.TRACES, raw), repeats),
            "limits_ms": _best_ms(partial(enforce_limits, batch, limits), repeats),
        }
    raw = build_logs_request(n_records=1000).SerializeToString()
    logs = decode_bytes(Signal.LOGS, raw)
    out["logs_1000"] = {
        "decode_ms": _best_ms(partial(decode_bytes, Signal.LOGS, raw), repeats),
        "limits_ms": _best_ms(partial(enforce_limits, logs, limits), repeats),
    }
    req = build_trace_request(n_spans=1000, attrs_per_span=2, error_ratio=0.0, seed=5)
    filler = {f"f{i}": "w" * 3000 for i in range(8)}
    for rs in req.resource_spans:
        for span in rs.scope_spans[0].spans:
            span.attributes.extend(key_values(filler))
    over = decode_bytes(Signal.TRACES, req.SerializeToString())
    out["spans_1000_all_over_the_record_limit"] = {
        "limits_ms": _best_ms(partial(enforce_limits, over, limits), max(1, repeats // 10))
    }
    return out


def _spans_with_sets(rows: int, set_bytes: int) -> Any:
    req = build_trace_request(n_spans=rows, attrs_per_span=1, error_ratio=0.0, seed=3)
    for rs in req.resource_spans:
        for span in rs.scope_spans[0].spans:
            span.attributes.extend(key_values({"pad": "p" * set_bytes}))
    return decode_bytes(Signal.TRACES, req.SerializeToString())


def pin_section(rows: int, memory_mib: int) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": rows, "memory_limit_mib": memory_mib, "writes": []}
    for set_bytes in (8_000, 16_000, 24_000, 27_000, 32_000, 64_000):
        batch = _spans_with_sets(rows, set_bytes)
        with tempfile.TemporaryDirectory() as tmp:
            store = DuckDBStore(Path(tmp) / "s.duckdb", memory_limit_mib=memory_mib)
            try:
                store.write([batch])
                outcome = "committed"
            except Exception as e:  # the outcome is the figure
                outcome = str(e).splitlines()[0][-80:]
            finally:
                store.close()
        out["writes"].append(
            {
                "attribute_set_bytes": set_bytes,
                "vector_mib": round(2048 * set_bytes / 2**20, 1),
                "write_mib": round(batch.table.nbytes / 2**20, 1),
                "outcome": outcome,
            }
        )
    return out


def _reads(path: Path, slots: int, seconds: float) -> dict[str, Any]:
    store = DuckDBStore(path)
    store._reads = ReadBudget(slots=slots, wait_s=600.0)  # this store's reads only
    more = decode_bytes(Signal.TRACES, build_trace_request(n_spans=5000, seed=2).SerializeToString())
    counts = {"reads": 0, "read_errors": 0, "writes": 0, "write_errors": 0}
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    window = TimeRange(time.time_ns() - 600 * S, time.time_ns())

    def note(key: str, error: BaseException | None = None) -> None:
        with lock:
            counts[key] += 1
            if error is not None and len(errors) < 3:
                errors.append(str(error).splitlines()[0][:120])

    def reader(k: int) -> None:
        while time.monotonic() < stop:
            try:
                if k % 2:
                    store.find_traces(TraceQuery(limit=200, min_duration_ns=1, status_error=k % 4 == 1))
                else:
                    read_window(store, window, signals=frozenset({Signal.TRACES}))
                note("reads")
            except Exception as e:
                note("read_errors", e)

    def writer() -> None:
        while time.monotonic() < stop:
            try:
                store.write([more])
                note("writes")
            except Exception as e:
                note("write_errors", e)

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(8)] + [
        threading.Thread(target=writer)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    return {"slots": slots, **counts, "wall_s": round(time.monotonic() - started, 1), "errors": errors}


def reads_section(seconds: float) -> dict[str, Any]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.duckdb"
        store = DuckDBStore(path)
        batch = decode_bytes(Signal.TRACES, build_trace_request(n_spans=10_000, seed=1).SerializeToString())
        for _ in range(20):
            store.write([batch])
        store.close()
        for slots in (2, 9):
            out.append(_reads(path, slots, seconds))
    return {"stored_spans": 200_000, "readers": 8, "writers": 1, "runs": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="limits,pin,reads")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--pin-rows", type=int, default=4096)
    parser.add_argument("--memory-mib", type=int, default=64)
    parser.add_argument("--read-seconds", type=float, default=5.0)
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    result: dict[str, Any] = {"python": platform.python_version(), "duckdb": duckdb.__version__}
    if "limits" in sections:
        result["limits"] = limits_section(args.repeats)
    if "pin" in sections:
        result["pin"] = pin_section(args.pin_rows, args.memory_mib)
    if "reads" in sections:
        result["reads"] = reads_section(args.read_seconds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
