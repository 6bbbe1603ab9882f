"""The one rule that says whether a span counts as an error for RED metrics.

Kept in one function so that every RED figure agrees on it; the full error taxonomy
(classification, fingerprints) lives in :mod:`faultlens.analysis.errors` and is richer.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

STATUS_ERROR = 2  # OTLP Status.code ERROR

# Typed scalars made once (a Python scalar argument costs a conversion on every call).
_STATUS_ERROR = pa.scalar(STATUS_ERROR, pa.int8())
_HTTP_500 = pa.scalar(500, pa.int32())
_GRPC_OK = pa.scalar(0, pa.int32())
_FALSE = pa.scalar(False, pa.bool_())


def span_error_mask(table: pa.Table) -> npt.NDArray[np.bool_]:
    """True where a span failed: status ERROR, an HTTP status >= 500, or a gRPC status other than OK.

    Absent columns and null values count as "no evidence of error". HTTP 4xx is the
    caller's fault, not the server's, so it does not count here (per the semantic
    conventions for server spans).
    """
    n = table.num_rows
    mask = np.zeros(n, dtype=bool)
    names = set(table.column_names)
    if "status_code" in names and _any_values(table.column("status_code")):
        mask |= _filled(pc.equal(table.column("status_code"), _STATUS_ERROR))
    if "http_status_code" in names and _any_values(table.column("http_status_code")):
        mask |= _filled(pc.greater_equal(table.column("http_status_code"), _HTTP_500))
    if "rpc_grpc_status_code" in names and _any_values(table.column("rpc_grpc_status_code")):
        mask |= _filled(pc.not_equal(table.column("rpc_grpc_status_code"), _GRPC_OK))
    return mask


def _any_values(col: pa.ChunkedArray | pa.Array) -> bool:
    return bool(col.null_count < len(col))


def _filled(arr: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.bool_]:
    out = pc.fill_null(arr, _FALSE)
    if isinstance(out, pa.ChunkedArray):
        out = out.combine_chunks()
    return np.asarray(out.to_numpy(zero_copy_only=False), dtype=bool)
