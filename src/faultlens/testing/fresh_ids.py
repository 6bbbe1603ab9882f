"""Serialized trace requests with fresh ids, for load generators that must not rebuild them.

A benchmark sends a few pre-serialized requests over and over, because building them is
slower than the server under test. Sent as they are, the same span ids come back every few
requests, and whatever the server keeps per span id (the RED span index, recent spans for log
correlation) stays as small as the few requests instead of growing as it would with real
traffic. :class:`FreshIds` finds where every id lies in the serialized bytes once, and then
makes each copy with every trace, span, parent and link id XORed with a salt of the copy's
number: ids become unique across copies, parent links and links between spans stay intact,
and a copy costs a memory copy and one vectorised XOR (~0.3 ms for 1,000 spans).

Sent as they are, the same timestamps come back too, and the server's data time stands
still: windows that close by data time never close, and what waits for them piles up. A
copy can therefore also move every span's start and end and every event's time by a shift
(the time since the payloads were built), so that data time advances as with live traffic.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["FreshIds", "id_offsets", "time_offsets"]

# Field numbers on the path to the ids (opentelemetry/proto/trace/v1/trace.proto and
# collector/trace/v1/trace_service.proto).
_RESOURCE_SPANS = 1  # ExportTraceServiceRequest.resource_spans
_SCOPE_SPANS = 2  # ResourceSpans.scope_spans
_SPANS = 2  # ScopeSpans.spans
_SPAN_IDS = {1: 16, 2: 8, 4: 8}  # Span: trace_id, span_id, parent_span_id
_SPAN_TIMES = (7, 8)  # Span: start_time_unix_nano, end_time_unix_nano (fixed64)
_EVENTS = 11  # Span.events
_EVENT_TIMES = (1,)  # Event.time_unix_nano (fixed64)
_LINKS = 13  # Span.links
_LINK_IDS = {1: 16, 2: 8}  # Link: trace_id, span_id
_LEN = 2  # wire type of length-delimited fields
_FIXED64 = 1


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(field number, wire type, value start, value end) of every field in buf[start:end]."""
    out = []
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, after = _varint(buf, pos)
        elif wire == 1:
            after = pos + 8
        elif wire == _LEN:
            length, pos = _varint(buf, pos)
            after = pos + length
        elif wire == 5:
            after = pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire} at byte {pos}")
        out.append((number, wire, pos, after))
        pos = after
    return out


def _ids_in(buf: bytes, start: int, end: int, ids: dict[int, int], out: list[int]) -> None:
    for number, wire, a, b in _fields(buf, start, end):
        if wire == _LEN and ids.get(number) == b - a:  # empty or odd-sized ids are left alone
            out.extend(range(a, b))


def _times_in(buf: bytes, start: int, end: int, numbers: tuple[int, ...], out: list[int]) -> None:
    for number, wire, a, _ in _fields(buf, start, end):
        if wire == _FIXED64 and number in numbers:
            out.append(a)


def _span_ranges(payload: bytes) -> list[tuple[int, int]]:
    """(start, end) of every serialized Span in an ``ExportTraceServiceRequest``."""
    out: list[tuple[int, int]] = []
    for n1, w1, a1, b1 in _fields(payload, 0, len(payload)):
        if n1 != _RESOURCE_SPANS or w1 != _LEN:
            continue
        for n2, w2, a2, b2 in _fields(payload, a1, b1):
            if n2 != _SCOPE_SPANS or w2 != _LEN:
                continue
            out.extend((a3, b3) for n3, w3, a3, b3 in _fields(payload, a2, b2) if n3 == _SPANS and w3 == _LEN)
    return out


def id_offsets(payload: bytes) -> npt.NDArray[np.int64]:
    """Byte offsets of every id byte in a serialized ``ExportTraceServiceRequest``."""
    out: list[int] = []
    for a3, b3 in _span_ranges(payload):
        _ids_in(payload, a3, b3, _SPAN_IDS, out)
        for n4, w4, a4, b4 in _fields(payload, a3, b3):
            if n4 == _LINKS and w4 == _LEN:
                _ids_in(payload, a4, b4, _LINK_IDS, out)
    return np.asarray(out, dtype=np.int64)


def time_offsets(payload: bytes) -> npt.NDArray[np.int64]:
    """Offsets of every span start/end and event time (8 little-endian bytes each)."""
    out: list[int] = []
    for a3, b3 in _span_ranges(payload):
        _times_in(payload, a3, b3, _SPAN_TIMES, out)
        for n4, w4, a4, b4 in _fields(payload, a3, b3):
            if n4 == _EVENTS and w4 == _LEN:
                _times_in(payload, a4, b4, _EVENT_TIMES, out)
    return np.asarray(out, dtype=np.int64)


class FreshIds:
    """Copies of one serialized trace request, each with ids of its own.

    Ids are 8 or 16 bytes and every one starts on its own offset, so byte ``k`` of an id is
    XORed with byte ``k % 8`` of the salt: copy 0 is the request as it is.
    """

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.offsets = id_offsets(payload)
        times = time_offsets(payload)
        self._time_bytes = times[:, None] + np.arange(8)  # every byte of every time field
        starts = np.ones(self.offsets.size, dtype=bool)
        starts[1:] = self.offsets[1:] != self.offsets[:-1] + 1
        run_start = np.maximum.accumulate(np.where(starts, np.arange(self.offsets.size), 0))
        self._phase = (np.arange(self.offsets.size) - run_start) % 8

    def copy(self, number: int, *, shift_ns: int = 0) -> bytes:
        """The request with every id XORed with ``number`` (as 8 little-endian bytes), and
        every span and event time plus ``shift_ns`` (not negative)."""
        if shift_ns < 0:
            raise ValueError("shift_ns must not be negative")
        if number == 0 and shift_ns == 0:
            return self.payload
        buf = bytearray(self.payload)
        view = np.frombuffer(buf, dtype=np.uint8)
        if number:
            salt = np.frombuffer(number.to_bytes(8, "little"), dtype=np.uint8)
            view[self.offsets] ^= salt[self._phase]
        if shift_ns:
            times = np.ascontiguousarray(view[self._time_bytes]).view("<u8")
            times += np.uint64(shift_ns)
            view[self._time_bytes] = times.view(np.uint8).reshape(self._time_bytes.shape)
        return bytes(buf)
