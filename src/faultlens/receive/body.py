"""Reading an OTLP/HTTP request body: streaming, inflating, and stopping at the limit.

The body is read chunk by chunk from the ASGI ``receive`` callable and never held beyond
``limit`` bytes:

- the bytes read off the wire (compressed or not) may not exceed ``limit``;
- the inflated bytes may not exceed ``limit`` either. Inflation uses
  ``zlib.decompressobj(...).decompress(data, max_length)``, so each step produces at most
  the room left plus one byte: a gzip bomb (a few MB that would inflate to 10 GB) is
  stopped after producing ``limit + 1`` bytes, with memory bounded by the limit, long
  before it is fully read.

Every byte kept is also held in an admission :class:`~faultlens.receive.admission.Ticket`,
so many large bodies arriving at once turn into retryable refusals, not memory growth.

``gzip`` (including several concatenated gzip members, as RFC 1952 allows), ``deflate``
(the zlib format, which is what HTTP calls deflate and what the OpenTelemetry Python
exporter sends) and ``identity`` are accepted; the caller refuses any other encoding.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from faultlens.errors import InvalidRequest, PayloadTooLarge
from faultlens.receive.admission import Ticket

__all__ = ["ENCODINGS", "ClientDisconnected", "Inflater", "read_body"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]

# Content-Encoding value -> zlib wbits (None: no inflation).
ENCODINGS: dict[str, int | None] = {"identity": None, "gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class ClientDisconnected(Exception):
    """The client went away before sending the whole body; there is nobody to answer."""


class Inflater:
    """Incremental gzip/zlib inflation that never produces more than ``limit`` bytes in total."""

    def __init__(self, wbits: int, limit: int, encoding: str) -> None:
        self._wbits = wbits
        self._room = limit
        self._limit = limit
        self._encoding = encoding
        self._multi_member = wbits > zlib.MAX_WBITS  # gzip allows members back to back
        self._d = zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> list[bytes]:
        """Inflate ``data``; raise PayloadTooLarge past the limit, InvalidRequest if corrupt."""
        out: list[bytes] = []
        try:
            while data:
                if self._d.eof:
                    if not self._multi_member:
                        raise InvalidRequest(f"data after the end of the {self._encoding} stream")
                    self._d = zlib.decompressobj(self._wbits)
                piece = self._d.decompress(data, self._room + 1)
                self._room -= len(piece)
                if self._room < 0:
                    raise PayloadTooLarge(
                        f"request body inflates to more than the limit of {self._limit} bytes"
                    )
                if piece:
                    out.append(piece)
                data = self._d.unused_data if self._d.eof else self._d.unconsumed_tail
        except zlib.error as e:
            raise InvalidRequest(f"corrupt {self._encoding} body: {e}") from None
        return out

    def finish(self) -> None:
        """Raise InvalidRequest if the stream stopped before its end (truncated body)."""
        if not self._d.eof:
            raise InvalidRequest(f"truncated {self._encoding} body: the stream does not end")


async def read_body(
    receive: Receive,
    *,
    encoding: str,
    limit: int,
    ticket: Ticket,
    first: Message | None = None,
) -> bytes:
    """Read, inflate and return the whole body, holding its bytes in ``ticket``.

    Raises PayloadTooLarge, InvalidRequest, Overloaded (from the ticket) or
    ClientDisconnected. It stops reading at the first of these: the server answers at once
    and the HTTP server discards whatever the client still sends.
    """
    wbits = ENCODINGS[encoding]
    inflater = Inflater(wbits, limit, encoding) if wbits is not None else None
    chunks: list[bytes] = []
    wire = 0
    more = True
    while more:
        message = first if first is not None else await receive()
        first = None
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        wire += len(chunk)
        if wire > limit:
            raise PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")
        pieces = inflater.feed(chunk) if inflater is not None else [chunk] if chunk else []
        for piece in pieces:
            ticket.grow(len(piece))
            chunks.append(piece)
    if inflater is not None:
        inflater.finish()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
