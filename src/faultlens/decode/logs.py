"""Serialized ``ExportLogsServiceRequest`` to one Arrow table of :data:`LOG_SCHEMA`.

Same approach as :mod:`faultlens.decode.spans`: the fields of all records read with one
parse (:mod:`faultlens.decode._columns`), attributes and bodies decoded in bulk,
validation on numpy arrays.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from faultlens.decode import _shadow
from faultlens.decode._columns import Field, Layout, read_columns, read_one_by_one
from faultlens.decode._common import I64_MAX, Owners, Rejections
from faultlens.decode.attributes import AttrGroups, value_texts
from faultlens.decode.schema import EXCEPTION_COLUMNS, LOG_SCHEMA

__all__ = ["LOG_LAYOUT", "decode_logs"]

LOG_LAYOUT = Layout(
    cols=_shadow.LogCols,
    record=_shadow.LogRecord,
    what="log record",
    fields=(
        Field("time_unix_nano", "number", "fixed64", 0),
        Field("observed_time_unix_nano", "number", "fixed64", 0),
        Field("severity_number", "number", "uint64", 0),
        Field("severity_text", "value", "string", ""),
        Field("body", "message"),
        Field("trace_id", "value"),
        Field("span_id", "value"),
        Field("flags", "number", "fixed32", 0),
        Field("event_name", "value", "string", ""),
        Field("attributes", "repeated"),
        Field("dropped_attributes_count", "number", "uint64", 0),
    ),
)
_I32_MAX = 2**31 - 1
_PROMOTED = [((attr,), pa.string()) for _, attr in EXCEPTION_COLUMNS] + [(("error.type",), pa.string())]


def decode_logs(data: bytes) -> tuple[pa.Table, int, str]:
    """Decode a serialized logs request: (table of accepted records, rejected count, first reason)."""
    req = _shadow.parse(_shadow.LogsRequest, data, "logs request")
    owners = Owners()
    records: list[bytes] = []
    for rl in req.resource_logs:
        owners.resources.append(rl.resource)
        for sl in rl.scope_logs:
            batch = sl.log_records[:]
            owners.add_scope(sl.scope, len(batch))
            records.extend(batch)
    n = len(records)
    if n == 0:
        return LOG_SCHEMA.empty_table(), 0, ""
    f = read_columns(LOG_LAYOUT, records) or read_one_by_one(LOG_LAYOUT, records)
    trace_id, span_id = f["trace_id"], f["span_id"]
    times, observed_times, severities = (
        f["time_unix_nano"],
        f["observed_time_unix_nano"],
        f["severity_number"],
    )
    effective = np.where(times != 0, times, observed_times)

    rej = Rejections("log record", n)
    tid_len = np.fromiter(map(len, trace_id), dtype=np.int64, count=n)
    sid_len = np.fromiter(map(len, span_id), dtype=np.int64, count=n)
    rej.check(
        (tid_len != 0) & (tid_len != 16), lambda i: f"trace_id must be empty or 16 bytes, got {tid_len[i]}"
    )
    rej.check(
        (sid_len != 0) & (sid_len != 8), lambda i: f"span_id must be empty or 8 bytes, got {sid_len[i]}"
    )
    rej.check(effective == 0, lambda i: "neither time_unix_nano nor observed_time_unix_nano is set")
    rej.check(effective > I64_MAX, lambda i: f"time_unix_nano {effective[i]} is out of range")
    rej.check(
        observed_times > I64_MAX, lambda i: f"observed_time_unix_nano {observed_times[i]} is out of range"
    )

    attr_groups = AttrGroups(f["attributes"])
    exc_type, exc_message, exc_stack, error_type = attr_groups.promote_many(_PROMOTED)
    known_severity = severities <= 24
    cols: dict[str, pa.Array] = {
        "time_unix_nano": pa.array(np.where(effective <= I64_MAX, effective, 0).astype(np.int64)),
        "observed_time_unix_nano": pa.array(
            np.where(observed_times <= I64_MAX, observed_times, 0).astype(np.int64), mask=observed_times == 0
        ),
        "severity_number": pa.array(
            np.where(known_severity, severities, 0).astype(np.int8), mask=~known_severity
        ),
        "severity_text": pa.array(f["severity_text"], pa.string()),
        "body": value_texts(f["body"]),
        "trace_id": pa.array(trace_id, pa.binary(), mask=tid_len == 0),
        "span_id": pa.array(span_id, pa.binary(), mask=sid_len == 0),
        "flags": pa.array(f["flags"].astype(np.int64)),
        "event_name": pa.array(f["event_name"], pa.string()),
        "exception_type": exc_type,
        "exception_message": exc_message,
        "exception_stacktrace": exc_stack,
        "error_type": error_type,
        "attributes": attr_groups.json,
        "dropped_attributes_count": pa.array(
            np.minimum(f["dropped_attributes_count"], _I32_MAX).astype(np.int32)
        ),
    }
    keep = rej.keep
    if keep is not None:
        mask = pa.array(keep)
        cols = {k: v.filter(mask) for k, v in cols.items()}
    cols.update(owners.columns(keep))
    table = pa.Table.from_arrays([cols[f.name] for f in LOG_SCHEMA], schema=LOG_SCHEMA)
    return table, rej.count, rej.first
