"""The OTLP/HTTP receiver closes idle and slow clients and caps its connections.

Real sockets against a real receiver (uvicorn with :mod:`faultlens.httpguard`), with short
timeouts so each test takes about a second: a connection that says nothing, one whose
headers or body trickle in, and one left idle after a response are all closed within their
deadline, while a normal client keeps getting 200s; over ``max_connections`` a request is
answered with a retryable 503 ``google.rpc.Status`` and the server keeps serving.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2
from receive_payloads import traces

from conftest import RunningReceivers
from faultlens.config.model import HttpReceiverConfig

HEADER_TIMEOUT = 0.5
BODY_TIMEOUT = 0.8
IDLE_TIMEOUT = 0.6
SLACK = 1.5  # timers fire on the server's event loop; allow for a busy CI machine


@pytest.fixture(scope="module")
def limited(start_receivers: Callable[..., RunningReceivers]) -> RunningReceivers:
    http = HttpReceiverConfig(
        port=0,
        header_timeout=HEADER_TIMEOUT,
        body_timeout=BODY_TIMEOUT,
        idle_timeout=IDLE_TIMEOUT,
        max_connections=3,
    )
    return start_receivers(http=http)


@contextmanager
def raw_connection(port: int) -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        yield sock
    finally:
        sock.close()


def read_until_closed(
    sock: socket.socket, within_s: float, started: float | None = None
) -> tuple[bytes, float]:
    """Everything the server sends until it closes; and how long since ``started`` (default: now)."""
    started = time.monotonic() if started is None else started
    sock.settimeout(within_s)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data, time.monotonic() - started
        data += chunk


def post_traces(server: RunningReceivers) -> httpx.Response:
    return httpx.post(
        f"{server.http_url}/v1/traces",
        content=traces(2).SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
        timeout=10,
    )


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    limited: RunningReceivers,
) -> None:
    assert limited.ports.http is not None
    with raw_connection(limited.ports.http) as sock:
        connected = time.monotonic()
        assert post_traces(limited).status_code == 200  # others are served meanwhile
        data, took = read_until_closed(sock, HEADER_TIMEOUT + SLACK, connected)
    assert data == b""  # nothing was asked, nothing is answered
    assert HEADER_TIMEOUT * 0.8 <= took <= HEADER_TIMEOUT + SLACK


def test_slow_headers_get_408_and_are_closed_while_a_normal_client_is_served(
    limited: RunningReceivers,
) -> None:
    assert limited.ports.http is not None
    with raw_connection(limited.ports.http) as sock:
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        served = 0
        closed = False
        # One header byte every 100 ms: never a complete head.
        while time.monotonic() - started < HEADER_TIMEOUT + SLACK:
            try:
                sock.sendall(b"x")
            except OSError:  # the server closed the connection
                closed = True
                break
            assert post_traces(limited).status_code == 200
            served += 1
            time.sleep(0.1)
        data, _ = read_until_closed(sock, SLACK)
        took = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert b"request headers not received within 0.5 s" in data
    assert closed or took <= HEADER_TIMEOUT + 2 * SLACK
    assert served >= 1


def test_a_slow_body_is_cut_off_after_the_body_timeout_and_counted(limited: RunningReceivers) -> None:
    assert limited.ports.http is not None
    before = limited.counter(
        "faultlens_receiver_refused_requests_total", signal="traces", transport="http", reason="disconnected"
    )
    with raw_connection(limited.ports.http) as sock:
        sock.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\n"
        )
        started = time.monotonic()
        took: float | None = None
        while time.monotonic() - started < BODY_TIMEOUT + 2 * SLACK:
            try:
                sock.sendall(b"\x00")  # one byte every 50 ms
            except OSError:  # the server closed the connection
                took = time.monotonic() - started
                break
            time.sleep(0.05)
    assert took is not None, "the slow body was not cut off"
    assert BODY_TIMEOUT * 0.8 <= took <= BODY_TIMEOUT + 2 * SLACK
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        after = limited.counter(
            "faultlens_receiver_refused_requests_total",
            signal="traces",
            transport="http",
            reason="disconnected",
        )
        if after == before + 1:
            break
        time.sleep(0.05)
    assert after == before + 1
    assert post_traces(limited).status_code == 200


def test_a_keep_alive_connection_left_idle_is_closed_after_the_idle_timeout(
    limited: RunningReceivers,
) -> None:
    assert limited.ports.http is not None
    body = traces(1).SerializeToString()
    with raw_connection(limited.ports.http) as sock:
        sock.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        data, took = read_until_closed(sock, IDLE_TIMEOUT + SLACK)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert took <= IDLE_TIMEOUT + SLACK


def test_a_request_over_the_connection_cap_is_a_retryable_503_and_the_server_keeps_serving(
    start_receivers: Callable[..., RunningReceivers],
) -> None:
    # Long timeouts here: the held connections must stay open for the whole test.
    limited = start_receivers(http=HttpReceiverConfig(port=0, max_connections=3))
    assert limited.ports.http is not None
    idle = [socket.create_connection(("127.0.0.1", limited.ports.http), timeout=10) for _ in range(3)]
    try:
        deadline = time.monotonic() + 10
        while True:  # until the server has accepted the three (at once, unless the host is busy)
            resp = httpx.post(
                f"{limited.http_url}/v1/traces",
                content=b"{}",
                headers={"content-type": "application/json"},
                timeout=10,
            )
            if resp.status_code != 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert resp.status_code == 503
        assert resp.headers["retry-after"] == "1"
        assert resp.headers["connection"] == "close"
        status = json_format.Parse(resp.content, status_pb2.Status())
        assert status.code == code_pb2.UNAVAILABLE
        assert "too many connections (over 3)" in status.message
        assert (
            limited.counter(
                "faultlens_receiver_refused_requests_total",
                signal="traces",
                transport="http",
                reason="overloaded",
            )
            >= 1
        )
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 5
    while post_traces(limited).status_code != 200:  # the server notices the closes at once
        assert time.monotonic() < deadline
        time.sleep(0.05)
