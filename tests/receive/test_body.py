"""Streaming body reading and bounded inflation, without a server."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Iterable
from typing import Any

import pytest
from receive_payloads import gzip_bomb

from faultlens.config.model import AdmissionConfig
from faultlens.errors import InvalidRequest, Overloaded, PayloadTooLarge
from faultlens.receive.admission import Admission
from faultlens.receive.body import ClientDisconnected, Inflater, read_body
from faultlens.selfmetrics import SelfMetrics


def receiver(chunks: Iterable[bytes], *, disconnect: bool = False) -> Any:
    messages: list[dict[str, Any]] = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    if disconnect:
        messages.append({"type": "http.disconnect"})
    else:
        messages.append({"type": "http.request", "body": b"", "more_body": False})
    read = 0

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        return messages[read - 1]

    receive.reads = lambda: read  # type: ignore[attr-defined]
    return receive


def read(chunks: Iterable[bytes], encoding: str = "identity", limit: int = 1000, **kw: Any) -> bytes:
    admission = Admission(AdmissionConfig(max_inflight_bytes=kw.pop("inflight", 10**9)), SelfMetrics())
    with admission.admit() as ticket:
        return asyncio.run(read_body(receiver(chunks, **kw), encoding=encoding, limit=limit, ticket=ticket))


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_identity_body_is_joined() -> None:
    assert read([b"ab", b"", b"cd"]) == b"abcd"


def test_identity_body_at_the_limit_passes_and_one_more_byte_fails() -> None:
    assert len(read(split(bytes(1000), 7))) == 1000
    with pytest.raises(PayloadTooLarge):
        read(split(bytes(1001), 7))


@pytest.mark.parametrize(("encoding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)])
def test_compressed_body_is_inflated_in_pieces(encoding: str, compress: Any) -> None:
    data = bytes(range(256)) * 3
    assert read(split(compress(data), 5), encoding) == data


def test_inflated_size_at_the_limit_passes_and_one_more_byte_fails() -> None:
    assert len(read([gzip.compress(bytes(1000))], "gzip")) == 1000
    with pytest.raises(PayloadTooLarge):
        read([gzip.compress(bytes(1001))], "gzip")


def test_compressed_bytes_on_the_wire_count_against_the_limit() -> None:
    noise = bytes((i * 7919) % 251 for i in range(5000))  # barely compressible
    with pytest.raises(PayloadTooLarge):
        read([gzip.compress(noise)], "gzip", limit=1000)


def test_bomb_output_is_bounded_by_the_limit() -> None:
    inflater = Inflater(16 + zlib.MAX_WBITS, 10 * 1024 * 1024, "gzip")
    produced = 0
    with pytest.raises(PayloadTooLarge):
        for piece in split(gzip_bomb(1), 64 * 1024):
            produced += sum(len(p) for p in inflater.feed(piece))
    assert produced <= 10 * 1024 * 1024


def test_concatenated_gzip_members_inflate_to_one_body() -> None:
    assert read([gzip.compress(b"one ") + gzip.compress(b"two")], "gzip") == b"one two"


def test_data_after_a_deflate_stream_is_invalid() -> None:
    with pytest.raises(InvalidRequest):
        read([zlib.compress(b"one") + b"trailing"], "deflate")


@pytest.mark.parametrize(
    "body", [gzip.compress(b"x" * 500)[:-9], b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage", b""]
)
def test_truncated_or_corrupt_gzip_is_invalid(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        read([body], "gzip")


def test_in_flight_bytes_are_held_while_reading() -> None:
    with pytest.raises(Overloaded):
        # Another request holds the budget, so this one cannot grow past it.
        admission = Admission(AdmissionConfig(max_inflight_bytes=100), SelfMetrics())
        admission.admit(60)
        with admission.admit() as ticket:
            asyncio.run(
                read_body(receiver([bytes(30), bytes(30)]), encoding="identity", limit=1000, ticket=ticket)
            )


def test_disconnect_before_the_end_is_reported() -> None:
    with pytest.raises(ClientDisconnected):
        read([b"abc"], disconnect=True)
