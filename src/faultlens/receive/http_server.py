"""OTLP/HTTP receiver: a raw ASGI app for ``POST /v1/traces``, ``/v1/metrics``, ``/v1/logs``.

A raw ASGI app (no framework) because the body must be read as a stream and refused
early, and because each response is a protobuf/JSON message whose content type follows
the request's, as the OTLP specification requires.

Order of checks, cheapest first, all before decoding::

    path (404) -> method (405 + Allow) -> bearer token (401 + WWW-Authenticate)
    -> Content-Type (415) -> Content-Encoding (415) -> memory soft limit (503 + Retry-After)
    -> Content-Length (413) -> streamed body: wire and inflated size (413), corrupt or
    truncated compression (400), in-flight bytes (503) -> decode (400) -> pipeline (503)
    -> 200 with Export*ServiceResponse (partial_success set when items were rejected)

Every error body is a ``google.rpc.Status`` in the request's encoding (protobuf or JSON),
with a RetryInfo detail on 503 and a BadRequest detail on 400 (:mod:`.status`).
A request over the listener's connection cap gets the same kind of 503 from
:meth:`OtlpHttpApp.refuse_overloaded`, which :mod:`faultlens.httpguard` calls; that module
also closes idle and slow (headers, body) connections.
When the request's Content-Type is not OTLP (404/405/415) the answer is JSON if the client's
``Accept`` asks for it and protobuf otherwise, the specification's default. A bug in a
handler is answered 500 with a Status body and logged; the server keeps serving.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from faultlens.errors import (
    MethodNotAllowed,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RequestError,
    UnsupportedMediaType,
    status_for,
)
from faultlens.receive.accounting import RefusalReason
from faultlens.receive.body import ENCODINGS, ClientDisconnected, read_body
from faultlens.receive.ingest import Ingest
from faultlens.receive.status import encode_rich_status
from faultlens.types import Signal, Transport

__all__ = ["JSON_CONTENT_TYPE", "PATHS", "PROTOBUF_CONTENT_TYPE", "OtlpHttpApp"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PROTOBUF_CONTENT_TYPE = "application/x-protobuf"
JSON_CONTENT_TYPE = "application/json"
PATHS: dict[str, Signal] = {f"/v1/{s.value}": s for s in Signal}
_FALLBACK_500 = b'{"code": 13, "message": "internal error"}'


def _media_type(value: str | None) -> str:
    """``application/json; charset=utf-8`` -> ``application/json``."""
    return (value or "").split(";", 1)[0].strip().lower()


class OtlpHttpApp:
    """The ASGI application. Build it with an :class:`Ingest`; serve it with any ASGI server."""

    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest
        self._acct = ingest.accounting(Transport.HTTP)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":  # websocket: not ours; closing refuses the upgrade
            await send({"type": "websocket.close", "code": 1003})
            return
        headers = _headers(scope)
        signal = PATHS.get(scope["path"])
        json = _error_body_is_json(headers)
        try:
            body, json = await self._handle(scope, receive, headers, signal)
        except ClientDisconnected as gone:
            self._acct.refused(signal, gone, RefusalReason.DISCONNECTED)
            return
        except RequestError as error:
            self._acct.refused(signal, error)
            await _send_status(send, error, json=json)
            return
        except Exception as error:
            log.exception("OTLP/HTTP %s %s failed", scope.get("method"), scope.get("path"))
            self._acct.refused(signal, error)
            await _send_status(send, error, json=json)
            return
        await _send(send, 200, body, json=json)

    async def refuse_overloaded(self, scope: Scope, receive: Receive, send: Send, message: str) -> None:
        """Answer a request the listener will not take now (:data:`faultlens.httpguard.Refusal`):
        a retryable 503 in the request's encoding, counted, and the connection closed."""
        error = Overloaded(message, self._ingest.admission.retry_after_s)
        self._acct.refused(PATHS.get(scope["path"]), error)
        await _send_status(send, error, json=_error_body_is_json(_headers(scope)), close=True)

    async def _handle(
        self, scope: Scope, receive: Receive, headers: dict[str, str], signal: Signal | None
    ) -> tuple[bytes, bool]:
        """Everything that can refuse the request; returns the 200 body and its encoding."""
        if signal is None:
            raise NotFound(f"no OTLP endpoint at {scope['path']}; use one of {', '.join(PATHS)}")
        if scope["method"] != "POST":
            raise MethodNotAllowed(f"{scope['method']} is not allowed on {scope['path']}; use POST")
        ingest = self._ingest
        ingest.auth.check(headers.get("authorization"))
        media = _media_type(headers.get("content-type"))
        if media not in (PROTOBUF_CONTENT_TYPE, JSON_CONTENT_TYPE):
            raise UnsupportedMediaType(
                f"unsupported Content-Type {headers.get('content-type', '')!r}; "
                f"use {PROTOBUF_CONTENT_TYPE} or {JSON_CONTENT_TYPE}"
            )
        json = media == JSON_CONTENT_TYPE
        encoding = headers.get("content-encoding", "identity").strip().lower() or "identity"
        if encoding not in ENCODINGS:
            raise UnsupportedMediaType(
                f"unsupported Content-Encoding {encoding!r}; use one of {', '.join(ENCODINGS)}"
            )
        limit = ingest.max_request_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"Content-Length {declared} is larger than the limit of {limit} bytes")
        with ingest.admission.admit() as ticket:
            body = await read_body(receive, encoding=encoding, limit=limit, ticket=ticket)
            return await ingest.export(signal, Transport.HTTP, body, json=json), json


def _error_body_is_json(headers: dict[str, str]) -> bool:
    """Errors answer in the request's encoding; for a non-OTLP request, JSON only if accepted."""
    media = _media_type(headers.get("content-type"))
    if media in (JSON_CONTENT_TYPE, PROTOBUF_CONTENT_TYPE):
        return media == JSON_CONTENT_TYPE
    return JSON_CONTENT_TYPE in headers.get("accept", "")


def _headers(scope: Scope) -> dict[str, str]:
    """Header names lower-cased (ASGI already does); a repeated header keeps its first value."""
    out: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        out.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return out


async def _send_status(send: Send, error: BaseException, *, json: bool, close: bool = False) -> None:
    status = status_for(error)
    extra: list[tuple[bytes, bytes]] = [(b"connection", b"close")] if close else []
    if status.retry_after_s is not None:
        # Retry-After is whole seconds (RFC 9110); round up so the client never comes early.
        extra.append((b"retry-after", str(max(0, math.ceil(status.retry_after_s))).encode()))
    if status.http_status == 401:
        extra.append((b"www-authenticate", b'Bearer realm="faultlens"'))
    if status.http_status == 405:
        extra.append((b"allow", b"POST"))
    try:
        body = encode_rich_status(status, error, json=json)
    except Exception:  # never let an encoding bug turn into a dropped connection
        log.exception("cannot encode a google.rpc.Status")
        await _send(send, 500, _FALLBACK_500, json=True)
        return
    await _send(send, status.http_status, body, json=json, extra=extra)


async def _send(
    send: Send, status: int, body: bytes, *, json: bool, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    content_type = JSON_CONTENT_TYPE if json else PROTOBUF_CONTENT_TYPE
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *(extra or ()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    """Nothing to set up: the app is ready when constructed. Answer the protocol politely."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
