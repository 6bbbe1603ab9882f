"""OTLP/HTTP with protobuf or JSON bodies over httpx.

Each sender thread has its own ``httpx.Client`` (keep-alive pool of one), so threads never
share a connection and no lock sits on the hot path.
"""

from __future__ import annotations

import gzip
import ssl
import threading

import httpx
from google.rpc import status_pb2

from faultlens.export.config import ExporterConfig
from faultlens.export.otlp import partial_success, partial_success_json, to_json
from faultlens.export.outcome import Delivered, SendResult, classify_http, connection_failure
from faultlens.export.transport.base import USER_AGENT
from faultlens.types import Signal

# zlib level 6 is what curl and Go use by default: most of the gain for a fraction of level 9's CPU.
GZIP_LEVEL = 6


def _ssl_context(config: ExporterConfig, urls: list[str]) -> ssl.SSLContext:
    """The one TLS context every client of a transport shares.

    Building one loads the CA certificates (tens of milliseconds of CPU); a context per client
    paid that again in every sender thread, and for plain ``http://`` endpoints for nothing.
    """
    tls = config.tls
    if tls.ca_file is None and tls.cert_file is None:
        if not any(url.lower().startswith("https:") for url in urls):
            # Plain HTTP never uses TLS. A context that trusts no CA would fail closed if it did.
            return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        return httpx.create_ssl_context()  # certifi's CAs, or SSL_CERT_FILE / SSL_CERT_DIR
    ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file is not None and tls.key_file is not None:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return ctx


def _error_message(response: httpx.Response) -> str:
    """The ``google.rpc.Status`` message of an error body when there is one, else its text."""
    body = response.content
    if response.headers.get("content-type", "").startswith("application/x-protobuf"):
        try:
            return str(status_pb2.Status.FromString(body).message)
        except Exception:
            pass
    return body[:200].decode("utf-8", "replace")


class HttpTransport:
    def __init__(self, config: ExporterConfig, *, json: bool) -> None:
        self._json = json
        self._urls = {signal: config.endpoint_for(signal) for signal in config.signals}
        self._gzip = config.compression == "gzip"
        self._verify = _ssl_context(config, list(self._urls.values()))
        self._headers = {
            **config.headers,
            "Content-Type": "application/json" if json else "application/x-protobuf",
            "User-Agent": USER_AGENT,
        }
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(
                verify=self._verify,
                headers=self._headers,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                follow_redirects=False,
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def send(self, signal: Signal, body: bytes, timeout_s: float) -> SendResult:
        payload = to_json(signal, body) if self._json else body
        if self._gzip:
            payload = gzip.compress(payload, GZIP_LEVEL, mtime=0)
        try:
            response = self._client().post(self._urls[signal], content=payload, timeout=timeout_s)
        except httpx.TimeoutException as err:
            return connection_failure("timeout", str(err) or type(err).__name__)
        except (httpx.TransportError, OSError) as err:
            return connection_failure("connection", str(err) or type(err).__name__)
        if 200 <= response.status_code < 300:
            parse = partial_success_json if self._json else partial_success
            rejected, message = parse(signal, response.content)
            return Delivered(rejected, message)
        return classify_http(
            response.status_code, response.headers.get("retry-after"), _error_message(response)
        )

    def close(self) -> None:
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()
