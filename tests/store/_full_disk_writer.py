"""Run by test_reattach.py in a process of its own: writes to a store whose file may not grow
past a size limit (RLIMIT_FSIZE, the process's "disk full"), until a checkpoint fails and
DuckDB invalidates the file; then lifts the limit and goes on the way the store writer
does (three attempts per batch). Prints what happened as JSON.

A process of its own because the limit applies to every file the process writes.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from faultlens.decode import decode_request
from faultlens.decode.base import DecodedBatch
from faultlens.errors import StoreError
from faultlens.store.duckdb_store import DuckDBStore
from faultlens.testing.payloads import build_trace_request
from faultlens.types import Signal

SPANS = 500
ATTEMPTS = 3


def batch(seed: int) -> DecodedBatch:
    body = build_trace_request(n_spans=SPANS, seed=seed).SerializeToString()
    return decode_request(Signal.TRACES, body, json=False)


def main() -> None:
    path = Path(sys.argv[1])
    store = DuckDBStore(path)
    other = DuckDBStore(path)  # a second opener shares the instance, as the analysis store does
    with store.cursor() as cur:
        cur.execute("SET checkpoint_threshold = '1MB'")  # checkpoint at nearly every commit
    store.write([batch(0)])
    limit = path.stat().st_size + 3 * 2**20
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    written, invalidated, failed = [0], "", 200
    for seed in range(1, 200):
        try:
            store.write([batch(seed)])
            written.append(seed)
        except StoreError as e:
            invalidated, failed = str(e), seed
            break
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    attempts_needed = []
    for seed in range(failed, failed + 5):  # the failed batch first, as the writer retries it
        for attempt in range(1, ATTEMPTS + 1):
            try:
                store.write([batch(seed)])
                written.append(seed)
                attempts_needed.append(attempt)
                break
            except StoreError:
                continue
    print(
        json.dumps(
            {
                "invalidated": invalidated,
                "written_batches": len(written),
                "attempts_needed": attempts_needed,
                "spans": store.stats().spans,
                "spans_seen_by_other_opener": other.stats().spans,
                "spans_per_batch": SPANS,
            }
        )
    )
    other.close()
    store.close()


if __name__ == "__main__":
    main()
