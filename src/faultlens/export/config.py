"""Typed configuration of one export destination, and the standard ``OTEL_EXPORTER_OTLP_*`` variables.

Every model is frozen with ``extra="forbid"`` (as in :mod:`faultlens.config.model`), so a
misspelt key is an error naming its path. :func:`config_from_env` reads the variables of the
OpenTelemetry SDK exporter specification for one signal, applying its rules:

- ``OTEL_EXPORTER_OTLP_<SIGNAL>_<X>`` wins over ``OTEL_EXPORTER_OTLP_<X>``; an empty value
  counts as unset.
- Protocol defaults to ``http/protobuf``; endpoint defaults to ``http://localhost:4318`` for
  HTTP and ``http://localhost:4317`` for gRPC.
- For OTLP/HTTP the *base* endpoint gets ``v1/<signal>`` appended (a ``/`` is inserted when
  the path does not end with one); a per-signal endpoint is used exactly as given.
- For gRPC the scheme decides security (``https`` = TLS, ``http`` = plaintext); only a
  scheme-less endpoint consults ``OTEL_EXPORTER_OTLP_INSECURE``.
- ``OTEL_EXPORTER_OTLP_TIMEOUT`` is in milliseconds (default 10000).
- ``OTEL_EXPORTER_OTLP_HEADERS`` is ``k1=v1,k2=v2`` with URL-encoded values; a malformed
  entry is skipped with a warning, as the SDKs do.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from faultlens.durations import Seconds
from faultlens.errors import ConfigError
from faultlens.types import Signal

log = logging.getLogger(__name__)


class Protocol(enum.StrEnum):
    GRPC = "grpc"
    HTTP_PROTOBUF = "http/protobuf"
    HTTP_JSON = "http/json"


class Compression(enum.StrEnum):
    NONE = "none"
    GZIP = "gzip"


class QueueKind(enum.StrEnum):
    DISK = "disk"
    MEMORY = "memory"


class OverflowPolicy(enum.StrEnum):
    """What happens to a new batch when the queue is full.

    ``block`` never drops: the server answers ingest with a retryable refusal (back-pressure)
    and SDK exporters wait; ``drop_oldest`` evicts the oldest waiting items; ``drop_newest``
    refuses the new batch. Every drop is counted with reason ``queue_full``.
    """

    BLOCK = "block"
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"


class SyncMode(enum.StrEnum):
    """SQLite ``synchronous`` for the disk queue; see :mod:`faultlens.export.queue.sqlite`."""

    NORMAL = "normal"
    FULL = "full"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClientTlsConfig(_Section):
    """Client TLS. ``insecure`` sends gRPC in plaintext; for HTTP the URL scheme decides."""

    insecure: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> ClientTlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (client certificate and its key)")
        return self


class RetryConfig(_Section):
    """Exponential backoff with jitter, as the Collector's ``retry_on_failure``.

    ``max_elapsed_time`` bounds one item's uninterrupted retrying (0 = no bound); once it is
    spent the item is dropped and counted (``retry_exhausted``). While the circuit breaker is
    open nothing is attempted, so an outage fills the queue instead of spending that budget.
    """

    enabled: bool = True
    initial_interval: Seconds = 1.0
    max_interval: Seconds = 30.0
    multiplier: float = Field(default=1.5, ge=1.0)
    randomization_factor: float = Field(default=0.5, ge=0.0, le=1.0)
    max_elapsed_time: Seconds = 300.0


class BreakerConfig(_Section):
    """Circuit breaker per destination.

    Closed -> open after ``failure_threshold`` consecutive retryable failures; open ->
    half-open after ``open_duration``; half-open lets ``half_open_probes`` requests through at
    once and closes after ``success_threshold`` successes; any failure re-opens it.
    """

    enabled: bool = True
    failure_threshold: int = Field(default=5, ge=1)
    open_duration: Seconds = 10.0
    half_open_probes: int = Field(default=1, ge=1)
    success_threshold: int = Field(default=1, ge=1)


class QueueConfig(_Section):
    """Where batches wait before sending. ``max_items`` counts spans, log records and points."""

    kind: QueueKind = QueueKind.DISK
    # Directory of the disk queue; one SQLite file per destination is kept in it.
    directory: Path = Path("./data/export")
    max_items: int = Field(default=2_000_000, gt=0)
    max_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    overflow: OverflowPolicy = OverflowPolicy.DROP_OLDEST
    synchronous: SyncMode = SyncMode.NORMAL
    # Batches accepted by consume() but not yet in the queue (the spool thread's input).
    intake_max_batches: int = Field(default=1024, gt=0)


class DegradationConfig(_Section):
    """Above ``high_water_mark`` (fraction of the queue's item or byte capacity) keep error
    spans, error logs (severity >= ERROR) and every span and log of their traces, and keep
    ``sample_ratio`` of the other traces (consistently by trace id). Metrics are never sampled.
    """

    enabled: bool = True
    high_water_mark: float = Field(default=0.8, gt=0.0, le=1.0)
    sample_ratio: float = Field(default=0.1, ge=0.0, le=1.0)
    # How many error trace ids are remembered so later spans of those traces are kept too.
    remembered_error_traces: int = Field(default=100_000, ge=0)


class ExporterConfig(_Section):
    """One OTLP destination: where, how, and the queue/retry/breaker in front of it."""

    name: str = Field(default="otlp", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    protocol: Protocol = Protocol.GRPC
    # gRPC: ``host:port`` or ``http(s)://host:port``. HTTP: base URL, ``v1/<signal>`` is appended.
    endpoint: str = "http://localhost:4317"
    # Per-signal URLs used exactly as given (HTTP) or as the gRPC target.
    traces_endpoint: str | None = None
    metrics_endpoint: str | None = None
    logs_endpoint: str | None = None
    signals: tuple[Signal, ...] = (Signal.TRACES, Signal.METRICS, Signal.LOGS)
    headers: dict[str, str] = Field(default_factory=dict)
    compression: Compression = Compression.GZIP
    # Per attempt.
    timeout: Seconds = 10.0
    tls: ClientTlsConfig = ClientTlsConfig()
    retry: RetryConfig = RetryConfig()
    breaker: BreakerConfig = BreakerConfig()
    queue: QueueConfig = QueueConfig()
    degradation: DegradationConfig = DegradationConfig()
    # Requests in flight at once to this destination.
    senders: int = Field(default=2, ge=1, le=64)

    @model_validator(mode="after")
    def _check(self) -> ExporterConfig:
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        for signal in Signal:
            url = self.endpoint_for(signal)
            if self.protocol is not Protocol.GRPC and urlsplit(url).scheme not in ("http", "https"):
                shown = _redact_url(url)
                raise ValueError(f"{signal.value} endpoint {shown!r} needs an http:// or https:// scheme")
        return self

    def endpoint_for(self, signal: Signal) -> str:
        """The URL (HTTP) or target (gRPC) that ``signal`` is sent to."""
        override = {
            Signal.TRACES: self.traces_endpoint,
            Signal.METRICS: self.metrics_endpoint,
            Signal.LOGS: self.logs_endpoint,
        }[signal]
        if override:
            return override
        if self.protocol is Protocol.GRPC:
            return self.endpoint
        return append_signal_path(self.endpoint, signal)


def append_signal_path(base: str, signal: Signal) -> str:
    """``http://h:4318`` -> ``http://h:4318/v1/traces``; ``http://h/otlp/`` -> ``.../otlp/v1/traces``."""
    parts = urlsplit(base)
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return parts._replace(path=f"{path}v1/{signal.value}").geturl()


def grpc_target(endpoint: str, insecure: bool) -> tuple[str, bool]:
    """Split a gRPC endpoint into ``host:port`` and whether to use TLS, per the spec's scheme rule."""
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"gRPC endpoint {_redact_url(endpoint)!r}: scheme must be http or https")
        return parts.netloc, parts.scheme == "https"
    return endpoint, not insecure


def _redact_url(url: str) -> str:
    """An endpoint as an error message may show it (no password, no query values)."""
    # Imported here: faultlens.config's package imports this module (a cycle at import time).
    from faultlens.config.redact import redact_url

    return redact_url(url)


# --- OTEL_EXPORTER_OTLP_* ------------------------------------------------------------------

_PREFIX = "OTEL_EXPORTER_OTLP_"
_DEFAULT_ENDPOINT = {Protocol.GRPC: "http://localhost:4317"}
_HTTP_DEFAULT_ENDPOINT = "http://localhost:4318"


def _env(environ: Mapping[str, str], signal: Signal, key: str) -> tuple[str, str] | None:
    """The value of the per-signal variable, else the generic one, with the name it came from."""
    for name in (f"{_PREFIX}{signal.value.upper()}_{key}", f"{_PREFIX}{key}"):
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return None


def parse_headers(value: str, source: str = _PREFIX + "HEADERS") -> dict[str, str]:
    """Parse ``k1=v1,k2=v2`` (values URL-encoded). Malformed entries are skipped with a warning."""
    headers: dict[str, str] = {}
    for entry in value.split(","):
        if not entry.strip():
            continue
        key, sep, val = entry.partition("=")
        key = key.strip()
        if not sep or not key:
            # The entry is not shown: a malformed one may be a credential without its '='.
            log.warning("%s: skipping a malformed header entry (expected key=value)", source)
            continue
        headers[unquote(key).lower()] = unquote(val.strip())
    return headers


def _bool(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise ConfigError(name, f"expected true or false, got {value!r}")


def config_from_env(
    signal: Signal,
    environ: Mapping[str, str] | None = None,
    **overrides: object,
) -> ExporterConfig:
    """An :class:`ExporterConfig` for one signal from the standard variables.

    ``overrides`` are further :class:`ExporterConfig` fields (``name``, ``queue``, ``retry``,
    ...) that the variables do not cover. Bad values raise :class:`ConfigError` naming the
    variable.
    """
    env = os.environ if environ is None else environ
    fields: dict[str, object] = {"signals": (signal,)}

    protocol = Protocol.HTTP_PROTOBUF
    if found := _env(env, signal, "PROTOCOL"):
        try:
            protocol = Protocol(found[1])
        except ValueError:
            raise ConfigError(
                found[0], f"unknown protocol {found[1]!r} (grpc, http/protobuf, http/json)"
            ) from None
    fields["protocol"] = protocol

    insecure = False
    if found := _env(env, signal, "INSECURE"):
        insecure = _bool(*found)

    signal_endpoint = env.get(f"{_PREFIX}{signal.value.upper()}_ENDPOINT", "").strip()
    base_endpoint = env.get(f"{_PREFIX}ENDPOINT", "").strip()
    if protocol is Protocol.GRPC:
        endpoint = signal_endpoint or base_endpoint or _DEFAULT_ENDPOINT[Protocol.GRPC]
        fields["endpoint"] = endpoint
    else:
        fields["endpoint"] = base_endpoint or _HTTP_DEFAULT_ENDPOINT
        if signal_endpoint:
            fields[f"{signal.value}_endpoint"] = signal_endpoint
    fields["tls"] = _tls_from_env(env, signal, insecure)

    if found := _env(env, signal, "HEADERS"):
        fields["headers"] = parse_headers(found[1], found[0])
    if found := _env(env, signal, "COMPRESSION"):
        try:
            fields["compression"] = Compression(found[1].lower())
        except ValueError:
            raise ConfigError(found[0], f"unknown compression {found[1]!r} (gzip or none)") from None
    else:
        fields["compression"] = Compression.NONE
    if found := _env(env, signal, "TIMEOUT"):
        try:
            millis = float(found[1])
        except ValueError:
            raise ConfigError(found[0], f"expected milliseconds, got {found[1]!r}") from None
        if millis <= 0:
            raise ConfigError(found[0], "timeout must be positive")
        fields["timeout"] = millis / 1000.0
    fields.update(overrides)
    try:
        return ExporterConfig.model_validate(fields)
    except ValueError as exc:
        raise ConfigError(f"{_PREFIX}*", str(exc)) from None


def _tls_from_env(env: Mapping[str, str], signal: Signal, insecure: bool) -> ClientTlsConfig:
    files: dict[str, Path] = {}
    for key, field in (
        ("CERTIFICATE", "ca_file"),
        ("CLIENT_CERTIFICATE", "cert_file"),
        ("CLIENT_KEY", "key_file"),
    ):
        if found := _env(env, signal, key):
            files[field] = Path(found[1])
    try:
        return ClientTlsConfig(insecure=insecure, **files)
    except ValueError as exc:
        raise ConfigError(f"{_PREFIX}CLIENT_CERTIFICATE", str(exc)) from None
