"""Attribute and record limits: what keeps one request from breaking the store.

A request under the size limit may still carry a single 20 MiB attribute. Stored as is, a
few of them fill DuckDB's memory limit in one write and the store stops writing
(:data:`~faultlens.config.model.STORE_INLINE_STRING_BYTES` has the measurement). So, as
the OpenTelemetry SDK applies its attribute limits before export, every decoded batch is
limited here before any consumer sees it (:class:`~faultlens.config.model.LimitsConfig`):

- **values**: every string longer than ``attribute_value_max_bytes`` (attribute values,
  also inside arrays and maps; names, status messages, the columns promoted from
  attributes) is cut at a UTF-8 boundary and ends with ``...[truncated N bytes]``, N the
  bytes removed; the result is at most the limit long. A log body has its own limit.
- **counts**: an attribute set (of an item, its resource, a span event or link) keeps its
  first ``attribute_count_max`` attributes; the rest are dropped.
- **records**: an attribute set whose JSON is still longer than ``attributes_max_bytes``
  keeps, in order, the attributes that fit (the last one that does not is cut to fit when
  it is a string); the others are dropped. An attribute with a key over the value limit
  is dropped too. Dropped attributes of an item are added to its
  ``dropped_attributes_count``, as the SDK reports its own drops.

The cost where nothing exceeds is a length check per string column (Arrow kernels), and a
count of ``":`` in attribute sets long enough to hold more attributes than the count
limit; only the values found over a limit are touched in Python. The result has the
batch's schema exactly. ``raw`` (the request as received) is kept: exporters forward
what the client sent, and other backends apply limits of their own.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from faultlens.config.model import LimitsConfig
from faultlens.decode.base import DecodedBatch

if TYPE_CHECKING:
    from faultlens.selfmetrics import SelfMetrics

__all__ = ["LimitOutcome", "LimitedWhat", "apply_limits", "enforce_limits", "record_bytes", "truncate_text"]

MARKER = "...[truncated {} bytes]"
_MARKED = re.compile(r"\.\.\.\[truncated (\d+) bytes\]\Z")
_MAP_COLUMNS = ("attributes", "resource_attributes")
_NESTED = {"events": ("name",), "links": ("trace_state",)}  # list<struct> columns: their string fields
_UNLIMITED = frozenset({"metric_type"})  # one of a few short names the decoder writes itself


class LimitedWhat(Enum):
    """What a limit changed (the ``what`` label of ``faultlens_truncated_values_total``)."""

    ATTRIBUTE_VALUE = "attribute_value"  # a string inside an attribute set
    FIELD = "field"  # a string column: a name, a message, a column promoted from attributes
    LOG_BODY = "log_body"
    ATTRIBUTE_DROPPED = "attribute_dropped"  # an attribute left out (count, size or key)


@dataclass(frozen=True, slots=True)
class LimitOutcome:
    """The limited batch (the same object when nothing exceeded) and what was changed."""

    batch: DecodedBatch
    counts: tuple[tuple[LimitedWhat, int], ...] = ()

    def count(self, what: LimitedWhat) -> int:
        return sum(n for w, n in self.counts if w is what)

    @property
    def truncated_values(self) -> int:
        return sum(n for w, n in self.counts if w is not LimitedWhat.ATTRIBUTE_DROPPED)

    @property
    def dropped_attributes(self) -> int:
        return self.count(LimitedWhat.ATTRIBUTE_DROPPED)


def truncate_text(text: str, limit: int) -> str:
    """``text`` if its UTF-8 form fits in ``limit`` bytes, else its start and the marker,
    together at most ``limit`` bytes (``limit`` must leave room for the marker). Cutting a
    cut text again counts the bytes removed by both cuts in the one marker."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    earlier = 0
    found = _MARKED.search(text)
    if found:
        earlier = int(found.group(1))
        data = text[: found.start()].encode("utf-8", "surrogatepass")
    # The marker's number has at most as many digits as the whole length.
    keep = max(0, limit - len(MARKER.format(len(data) + earlier)))
    prefix = data[:keep].decode("utf-8", "ignore")  # a character cut in two goes whole
    removed = len(data) - len(prefix.encode("utf-8", "surrogatepass")) + earlier
    return prefix + MARKER.format(removed)


def enforce_limits(batch: DecodedBatch, limits: LimitsConfig) -> LimitOutcome:
    """``batch`` within ``limits`` (see the module docstring). Pure: nothing is mutated."""
    table = batch.table
    if not table.num_rows:
        return LimitOutcome(batch)
    counts: Counter[LimitedWhat] = Counter()
    new_columns: dict[str, pa.ChunkedArray] = {}
    item_drops: np.ndarray | None = None
    row_bytes = np.zeros(table.num_rows, dtype=np.int64)  # every string of each record
    for field in table.schema:
        column = table.column(field.name)
        if field.name in _MAP_COLUMNS:
            lengths = _lengths(column)
            changed, drops = _limit_maps(column, limits, counts, lengths)
            if changed is not None:
                new_columns[field.name] = changed
                lengths = _lengths(changed)
                if field.name == "attributes" and drops.any():
                    item_drops = drops
            row_bytes += lengths
        elif field.name in _NESTED:
            changed = _limit_nested(column, _NESTED[field.name], limits, counts)
            if changed is not None:
                new_columns[field.name] = changed
            row_bytes += _nested_row_bytes(changed if changed is not None else column, _NESTED[field.name])
        elif pa.types.is_string(field.type) and field.name not in _UNLIMITED:
            body = field.name == "body"
            what = LimitedWhat.LOG_BODY if body else LimitedWhat.FIELD
            limit = limits.log_body_max_bytes if body else limits.attribute_value_max_bytes
            lengths = _lengths(column)
            cut = _limit_strings(column, limit, what, counts, lengths)
            if cut is not None:
                new_columns[field.name] = cut
                lengths = _lengths(cut)
            row_bytes += lengths
    if item_drops is not None and "dropped_attributes_count" in table.schema.names:
        new_columns["dropped_attributes_count"] = _add_counts(
            table.column("dropped_attributes_count"), item_drops
        )
    table = _set_columns(table, new_columns)
    table = _limit_records(table, limits, counts, row_bytes)
    if table is batch.table:
        return LimitOutcome(batch)
    ordered = tuple(sorted(((w, n) for w, n in counts.items() if n), key=lambda kv: kv[0].value))
    return LimitOutcome(replace(batch, table=table), ordered)


def _set_columns(table: pa.Table, columns: dict[str, pa.ChunkedArray]) -> pa.Table:
    for name, column in columns.items():
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), column.cast(table.schema.field(i).type))
    return table


def _add_counts(column: pa.ChunkedArray, added: np.ndarray) -> pa.ChunkedArray:
    before = column.to_numpy(zero_copy_only=False)
    before = np.nan_to_num(before.astype(np.float64), nan=0.0).astype(np.int64)
    total = np.minimum(before + added, np.iinfo(np.int32).max)
    return pa.chunked_array([pa.array(total, pa.int32())])


def apply_limits(batch: DecodedBatch, limits: LimitsConfig, metrics: SelfMetrics) -> DecodedBatch:
    """:func:`enforce_limits`, its counts added to ``faultlens_truncated_values_total``."""
    outcome = enforce_limits(batch, limits)
    for what, n in outcome.counts:
        metrics.truncated_values.labels(signal=batch.signal.value, what=what.value).inc(n)
    return outcome.batch


# --- plain string columns ---------------------------------------------------------------


def _lengths(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Bytes of each string, read from the offsets without a kernel. A null counts what its
    offsets span: 0 as Arrow's builders write it; the paths that then look at the values
    themselves leave a null as it is."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = []
    for chunk in chunks:
        if not len(chunk):
            continue
        buffer = chunk.buffers()[1]
        if buffer is None:
            parts.append(np.zeros(len(chunk), dtype=np.int64))
            continue
        width = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
        offsets = np.frombuffer(buffer, dtype=width)[chunk.offset : chunk.offset + len(chunk) + 1]
        parts.append(np.diff(offsets).astype(np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _over(lengths: np.ndarray, limit: int) -> np.ndarray | None:
    """Rows whose string is longer than ``limit`` bytes, or None when there are none."""
    if not len(lengths) or lengths.max() <= limit:
        return None
    return np.flatnonzero(lengths > limit)


def _replace(
    column: pa.ChunkedArray | pa.Array, rows: np.ndarray, values: list[str | None]
) -> pa.ChunkedArray:
    mask = np.zeros(len(column), dtype=bool)
    mask[rows] = True
    flat = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    out = pc.replace_with_mask(flat, pa.array(mask), pa.array(values, flat.type))
    return pa.chunked_array([out])


def _limit_strings(
    column: pa.ChunkedArray | pa.Array,
    limit: int,
    what: LimitedWhat,
    counts: Counter[LimitedWhat],
    lengths: np.ndarray | None = None,
) -> pa.ChunkedArray | None:
    rows = _over(_lengths(column) if lengths is None else lengths, limit)
    if rows is None:
        return None
    olds = column.take(pa.array(rows)).to_pylist()
    counts[what] += sum(s is not None for s in olds)
    return _replace(column, rows, [None if s is None else truncate_text(s, limit) for s in olds])


# --- attribute sets (JSON objects) ------------------------------------------------------


def _map_candidates(
    column: pa.ChunkedArray | pa.Array, limits: LimitsConfig, lengths: np.ndarray | None = None
) -> np.ndarray | None:
    """Rows whose attribute set may exceed a limit: longer than the value or set limit (no
    shorter JSON can hold a longer value), or long enough to hold more attributes than the
    count limit and with more ``":`` (each key ends with one) than it."""
    if lengths is None:
        lengths = _lengths(column)
    if not len(lengths):
        return None
    top = int(lengths.max())
    long_limit = min(limits.attribute_value_max_bytes, limits.attributes_max_bytes)
    # The shortest JSON of n attributes is {"":0,"":0...}: 5n + 1 bytes.
    count_floor = 5 * (limits.attribute_count_max + 1) + 1
    if top <= long_limit and top < count_floor:
        return None
    suspect = lengths > long_limit
    if top >= count_floor:
        suspect |= (lengths >= count_floor) & (_key_marks(column) > limits.attribute_count_max)
    found = np.flatnonzero(suspect)
    return found if len(found) else None


def _key_marks(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """How many ``":`` each string holds (numpy over the data buffer: ~2.5x faster than
    ``pc.count_substring``); at least the number of keys of a compact JSON object."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = []
    for chunk in chunks:
        n = len(chunk)
        buffers = chunk.buffers()
        if not n or buffers[1] is None or buffers[2] is None or pa.types.is_large_string(chunk.type):
            parts.append(
                pc.fill_null(pc.count_substring(chunk, pattern='":'), 0).to_numpy(zero_copy_only=False)
            )
            continue
        offsets = np.frombuffer(buffers[1], dtype=np.int32)[chunk.offset : chunk.offset + n + 1]
        data = np.frombuffer(buffers[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
        hits = np.flatnonzero((data[1:] == 0x3A) & (data[:-1] == 0x22)) + 1 + offsets[0]  # '"' then ':'
        parts.append(np.bincount(np.searchsorted(offsets, hits, side="right") - 1, minlength=n)[:n])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _limit_maps(
    column: pa.ChunkedArray | pa.Array,
    limits: LimitsConfig,
    counts: Counter[LimitedWhat],
    lengths: np.ndarray | None = None,
) -> tuple[pa.ChunkedArray | None, np.ndarray]:
    """The limited column (None if unchanged) and the attributes dropped from each row."""
    drops = np.zeros(len(column), dtype=np.int64)
    rows = _map_candidates(column, limits, lengths)
    if rows is None:
        return None, drops
    olds = column.take(pa.array(rows)).to_pylist()
    news: list[str | None] = []
    changed = False
    for row, text in zip(rows, olds, strict=True):
        new, cut, dropped = _limit_map(text, limits)
        counts[LimitedWhat.ATTRIBUTE_VALUE] += cut
        counts[LimitedWhat.ATTRIBUTE_DROPPED] += dropped
        drops[row] = dropped
        changed = changed or new != text
        news.append(new)
    if not changed:
        return None, drops
    return _replace(column, rows, news), drops


# The decoder's JSON (compact, UTF-8 kept); one encoder, since json.dumps with options
# builds a new one at every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _json(value: Any) -> str:
    return _ENCODER.encode(value)


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _cut_value(value: Any, limit: int) -> tuple[Any, int]:
    """``value`` with every string in it cut to ``limit``; how many were cut."""
    if isinstance(value, str):
        cut = truncate_text(value, limit)
        return cut, int(cut is not value and not _MARKED.search(value))
    if isinstance(value, list):
        out, n = [], 0
        for v in value:
            c, k = _cut_value(v, limit)
            out.append(c)
            n += k
        return out, n
    if isinstance(value, dict):
        items, n = {}, 0
        for k, v in value.items():
            c, m = _cut_value(v, limit)
            items[truncate_text(k, limit)] = c
            n += m
        return items, n
    return value, 0


def _limit_map(text: str | None, limits: LimitsConfig) -> tuple[str | None, int, int]:
    """One attribute set within the limits: (new JSON, values cut, attributes dropped)."""
    if text is None:
        return None, 0, 0
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):  # not an attribute set: a plain string cut
        short = truncate_text(text, limits.attributes_max_bytes)
        return short, int(short is not text), 0
    items = list(obj.items())
    dropped = max(0, len(items) - limits.attribute_count_max)
    items = items[: limits.attribute_count_max]
    parts: list[str] = []
    size = 2  # the braces
    cut_total = 0
    for key, value in items:
        if len(key) > limits.attribute_value_max_bytes or _size(key) > limits.attribute_value_max_bytes:
            dropped += 1
            continue
        new, cut = _cut_value(value, limits.attribute_value_max_bytes)
        entry = f"{_json(key)}:{_json(new)}"
        entry_size = _size(entry)
        room = limits.attributes_max_bytes - size - (1 if parts else 0)
        if entry_size > room and isinstance(value, str):
            fitted = _fit_string(key, value, room)
            if fitted is not None:
                entry = f"{_json(key)}:{_json(fitted)}"
                entry_size = _size(entry)
                cut = int(not _MARKED.search(value))
        if entry_size > room:
            dropped += 1
            continue
        cut_total += cut
        size += entry_size + (1 if parts else 0)
        parts.append(entry)
    if not dropped and not cut_total:
        return text, 0, 0
    return "{" + ",".join(parts) + "}", cut_total, dropped


def _fit_string(key: str, value: str, room: int) -> str | None:
    """``value`` cut so that ``"key":"value"`` takes at most ``room`` bytes, or None when
    not even the marker fits."""
    target = room - _size(_json(key)) - 3  # the colon and the value's quotes
    budget = target
    while budget >= len(MARKER.format(_size(value))) + 16:
        cut = truncate_text(value, budget)
        over = _size(_json(cut)) - 2 - target  # escapes make JSON longer than the text
        if over <= 0:
            return cut
        budget -= over
    return None


# --- span events and links (list<struct>) ------------------------------------------------


def _limit_nested(
    column: pa.ChunkedArray, strings: tuple[str, ...], limits: LimitsConfig, counts: Counter[LimitedWhat]
) -> pa.ChunkedArray | None:
    """Events or links within the limits: their attribute sets and their string fields."""
    flat = pc.list_flatten(column)
    if not len(flat):
        return None
    attrs = pc.struct_field(flat, "attributes")
    names = {name: pc.struct_field(flat, name) for name in strings}
    if _map_candidates(attrs, limits) is None and all(
        _over(_lengths(arr), limits.attribute_value_max_bytes) is None for arr in names.values()
    ):
        return None
    lists = column.combine_chunks()
    first, last = lists.offsets[0].as_py(), lists.offsets[-1].as_py()
    values = lists.values.slice(first, last - first)  # what the offsets point into
    struct_type = values.type
    children: list[pa.Array] = []
    for i in range(struct_type.num_fields):
        child = struct_type.field(i)
        arr = pc.struct_field(values, child.name)
        if child.name == "attributes":
            changed, _ = _limit_maps(arr, limits, counts)
            arr = changed.combine_chunks() if changed is not None else arr
        elif child.name in strings:
            cut = _limit_strings(arr, limits.attribute_value_max_bytes, LimitedWhat.FIELD, counts)
            arr = cut.combine_chunks() if cut is not None else arr
        children.append(arr)
    struct = pa.StructArray.from_arrays(
        children, fields=list(struct_type), mask=pc.is_null(values) if values.null_count else None
    )
    offsets = pc.subtract(lists.offsets, lists.offsets[0])
    rebuilt = pa.ListArray.from_arrays(
        offsets, struct, type=lists.type, mask=pc.is_null(lists) if lists.null_count else None
    )
    return pa.chunked_array([rebuilt])


# --- whole records ------------------------------------------------------------------------


def _string_parts(schema: pa.Schema) -> list[str]:
    """The columns holding a record's strings (plain, attribute sets, events and links)."""
    return [
        f.name
        for f in schema
        if f.name in _NESTED or (pa.types.is_string(f.type) and f.name not in _UNLIMITED)
    ]


def _nested_row_bytes(column: pa.ChunkedArray, fields: tuple[str, ...]) -> np.ndarray:
    """The string bytes of each row's events or links (attribute sets and ``fields``)."""
    out = []
    for chunk in column.chunks:
        if not len(chunk):
            continue
        offsets = chunk.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
        values = chunk.values
        sizes = np.zeros(len(values), dtype=np.int64)
        for child in ("attributes", *fields):
            sizes += _lengths(pc.struct_field(values, child))
        total = np.concatenate(([0], np.cumsum(sizes)))
        out.append(total[offsets[1:]] - total[offsets[:-1]])
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def record_bytes(table: pa.Table) -> np.ndarray:
    """The bytes of every string of each row, what ``record_max_bytes`` bounds."""
    total = np.zeros(table.num_rows, dtype=np.int64)
    for name in _string_parts(table.schema):
        column = table.column(name)
        total += _nested_row_bytes(column, _NESTED[name]) if name in _NESTED else _lengths(column)
    return total


def _level(sizes: list[int], budget: int) -> int:
    """The largest length ``c`` with ``sum(min(size, c)) <= budget`` (water filling)."""
    left = budget
    ordered = sorted(sizes)
    for i, size in enumerate(ordered):
        share = left // (len(ordered) - i)
        if size > share:
            return share
        left -= size
    return max(ordered, default=budget)


def _item_bytes(item: dict[str, Any] | None, fields: tuple[str, ...]) -> int:
    if item is None:
        return 0
    return sum(_size(item[f]) for f in ("attributes", *fields) if item.get(f) is not None)


def _limit_records(
    table: pa.Table, limits: LimitsConfig, counts: Counter[LimitedWhat], sizes: np.ndarray
) -> pa.Table:
    """Rows whose strings together pass ``record_max_bytes``: every part longer than a common
    length is cut to it (strings with the marker, attribute sets by dropping attributes,
    events and links by dropping the ones that no longer fit)."""
    if not len(sizes) or sizes.max() <= limits.record_max_bytes:
        return table
    rows = np.flatnonzero(sizes > limits.record_max_bytes)
    parts = _string_parts(table.schema)
    updates: dict[str, dict[int, Any]] = {}
    drops = {name: np.zeros(table.num_rows, dtype=np.int64) for name in ("attributes", *_NESTED)}
    # Each part's bytes in the rows over the limit, from the offsets: only the parts to cut
    # are turned into Python values.
    part_sizes = np.stack(
        [
            (_nested_row_bytes(table.column(n), _NESTED[n]) if n in _NESTED else _lengths(table.column(n)))[
                rows
            ]
            for n in parts
        ],
        axis=1,
    )
    for row, row_sizes in zip(map(int, rows), part_sizes.tolist(), strict=True):
        cap = max(_level(row_sizes, limits.record_max_bytes), 64)
        for name, size in zip(parts, row_sizes, strict=True):
            if size <= cap:
                continue
            v = table.column(name)[row].as_py()
            if v is None:
                continue
            changes = updates.setdefault(name, {})
            if name in _NESTED:
                kept, used = [], 0
                for item in v:
                    size = _item_bytes(item, _NESTED[name])
                    if used + size > cap and item is not None:
                        # The first that does not fit keeps what of its attributes does.
                        room = cap - used - (size - _size(item["attributes"] or ""))
                        if room >= 256:
                            narrow = limits.model_copy(update={"attributes_max_bytes": room})
                            attrs, cut, dropped = _limit_map(item["attributes"], narrow)
                            kept.append({**item, "attributes": attrs})
                            counts[LimitedWhat.ATTRIBUTE_VALUE] += cut
                            counts[LimitedWhat.ATTRIBUTE_DROPPED] += dropped
                        break
                    used += size
                    kept.append(item)
                changes[row] = kept
                drops[name][row] += len(v) - len(kept)
            elif name in _MAP_COLUMNS:
                narrow = limits.model_copy(update={"attributes_max_bytes": cap})
                new, cut, dropped = _limit_map(v, narrow)
                changes[row] = new
                counts[LimitedWhat.ATTRIBUTE_VALUE] += cut
                counts[LimitedWhat.ATTRIBUTE_DROPPED] += dropped
                drops["attributes"][row] += dropped if name == "attributes" else 0
            else:
                changes[row] = truncate_text(v, cap)
                if not _MARKED.search(v):  # a value cut before is counted once
                    counts[LimitedWhat.LOG_BODY if name == "body" else LimitedWhat.FIELD] += 1
    changed: dict[str, pa.ChunkedArray] = {}
    for name, changes in updates.items():
        if name not in _NESTED:
            changed[name] = _replace(
                table.column(name), np.fromiter(changes, dtype=np.int64), list(changes.values())
            )
            continue
        values = table.column(name).to_pylist()
        for row, value in changes.items():
            values[row] = value
        changed[name] = pa.chunked_array([pa.array(values, table.schema.field(name).type)])
    for name, count_column in (
        ("attributes", "dropped_attributes_count"),
        ("events", "dropped_events_count"),
        ("links", "dropped_links_count"),
    ):
        if count_column in table.schema.names and drops[name].any():
            changed[count_column] = _add_counts(table.column(count_column), drops[name])
    counts[LimitedWhat.ATTRIBUTE_DROPPED] += int(drops["events"].sum() + drops["links"].sum())
    return _set_columns(table, changed)
