"""Log signatures of spans: which log statements each request passed through.

Why: a code fault (an injected exception, a wrong return value, a new failure path)
changes *which log statements a request passes through* in the faulty operation: a
statement that always followed another goes missing, or a new one (often an ERROR)
appears. Counting templates per service sees that only when the change is large against
the service's whole log volume; looking at each span's own set of statements sees it for
every request.

1. Each log record gets a key: its code location (``code.location``, e.g. Java's
   ``Class#line``) when the record carries one, else its Drain template
   (:class:`faultlens.analysis.templates.Drain`, one tree per service).
2. Each span gets a *signature*: the sorted set of keys logged inside it ("" for none),
   joined to the span by the log's trace and span ids.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from faultlens.analysis.templates.drain import Drain
from faultlens.graph.frame import SpanFrame

__all__ = ["log_keys", "span_signatures", "usual_signatures"]

_LOCATION = r'"code\.location":\s*"(?P<loc>(?:[^"\\]|\\.)*)"'
TEMPLATE_PREFIX = "template:"


def log_keys(logs: pa.Table, drains: dict[str, Drain] | None = None) -> list[str]:
    """One key per log row: its code location, or its Drain template when it has none.

    ``drains`` (one per service) may be shared between calls so that the baseline and the
    window are mined into the same templates; templates may still generalise between the
    calls, so keys compare exactly only within one Drain's stable clusters.
    """
    if logs.num_rows == 0:
        return []
    attrs = pc.fill_null(logs.column("attributes"), "")
    loc = pc.struct_field(pc.extract_regex(attrs, _LOCATION), "loc")
    keys: list[str | None] = loc.to_pylist()
    missing = [i for i, k in enumerate(keys) if not k]
    if missing:
        drains = {} if drains is None else drains
        services = logs.column("service_name").to_pylist()
        bodies = logs.column("body").to_pylist()
        for i in missing:
            d = drains.setdefault(services[i] or "", Drain())
            line = (bodies[i] or "").split("\n", 1)[0][:2000]
            keys[i] = TEMPLATE_PREFIX + str(d.add(line).cluster_id)
    return [json.loads(f'"{k}"') if k and "\\" in k else (k or "") for k in keys]


def _span_rows(spans: pa.Table, logs: pa.Table) -> npt.NDArray[np.int64]:
    """Row of each log's span in ``spans`` (-1 when the span is not there)."""
    out = np.full(logs.num_rows, -1, dtype=np.int64)
    if logs.num_rows == 0 or spans.num_rows == 0:
        return out
    keys = (
        pa.table(
            {
                "trace_id": spans.column("trace_id"),
                "span_id": spans.column("span_id"),
                "row": pa.array(np.arange(spans.num_rows, dtype=np.int64)),
            }
        )
        .group_by(["trace_id", "span_id"], use_threads=False)
        .aggregate([("row", "min")])
    )
    refs = pa.table(
        {
            "trace_id": logs.column("trace_id"),
            "span_id": logs.column("span_id"),
            "log": pa.array(np.arange(logs.num_rows, dtype=np.int64)),
        }
    )
    j = refs.join(keys, ["trace_id", "span_id"], join_type="inner", use_threads=False)
    out[j.column("log").to_numpy()] = j.column("row_min").to_numpy()
    return out


def span_signatures(spans: pa.Table, logs: pa.Table, keys: list[str]) -> list[str]:
    """Per span row, the sorted distinct log keys logged inside it, joined by "|"."""
    sigs = [""] * spans.num_rows
    rows = _span_rows(spans, logs)
    order = np.argsort(rows, kind="stable")
    for row, grp in itertools.groupby(order.tolist(), key=lambda i: int(rows[i])):
        if row >= 0:
            sigs[row] = "|".join(sorted({keys[i] for i in grp}))
    return sigs


def usual_signatures(frame: SpanFrame, sigs: list[str]) -> dict[tuple[str, str], str]:
    """The most common signature of each operation: what "new" and "missing" are relative to."""
    counts = Counter(zip(frame.operation.tolist(), sigs, strict=True))
    best: dict[tuple[str, str], tuple[int, str]] = {}
    for (op, sig), c in counts.items():
        key = frame.operations[op]
        if key not in best or c > best[key][0]:
            best[key] = (c, sig)
    return {k: v[1] for k, v in best.items()}
