"""Typed configuration. Defaults live here, in code; unknown keys are rejected.

Every section is a frozen pydantic model with ``extra="forbid"``, so a misspelt key is an
error that names its path rather than a silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from faultlens.durations import Seconds, parse_duration_s
from faultlens.export.config import ExporterConfig

__all__ = ["Config", "ExporterConfig", "PipelineConfig", "Seconds", "parse_duration_s"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Section):
    """Server TLS. With ``client_ca_file`` set, clients must present a certificate (mTLS)."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


class AuthConfig(_Section):
    """Bearer-token auth for both receivers; empty ``bearer_tokens`` turns auth off."""

    bearer_tokens: list[str] = Field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return bool(self.bearer_tokens)


class GrpcReceiverConfig(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=4317, ge=0, le=65535)


class HttpListenerConfig(_Section):
    """Timeouts and a connection cap of one HTTP listener (OTLP/HTTP receiver, query API).

    Enforced by :mod:`faultlens.httpguard`; docs/api.md ("Security") describes each. A
    connection over ``max_connections`` is answered 503 (retryable) and closed.
    """

    # Keep-alive: a connection with no request in progress is closed after this long. Above
    # the SDKs' export intervals' usual 5 s, as the Collector's 1 minute is.
    idle_timeout: Seconds = 60.0
    # A request's headers must be complete this long after its first byte (or after the
    # connection opened, for its first request): a slow-header client is closed with 408.
    header_timeout: Seconds = 10.0
    # The whole body must have arrived this long after the headers ended.
    body_timeout: Seconds = 60.0
    # Open connections; a request on one more is refused 503. Memory is bounded by admission
    # (in-flight bytes), so this caps sockets and tasks; well above what a fleet of SDKs with
    # keep-alive connections opens against one node.
    max_connections: int = Field(default=1024, gt=0)

    @field_validator("idle_timeout", "header_timeout", "body_timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be positive")
        return value


class HttpReceiverConfig(HttpListenerConfig):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=4318, ge=0, le=65535)


# DuckDB holds in memory, until the write commits, the strings of each run of this many
# rows it inserts (its vector size), so the strings of 2,048 consecutive records of one
# write must fit in the store's memory limit, or the write fails and so does every retry:
# the store stops writing. A write failed once 2,048 rows held over ~80% of the limit,
# however few or many rows it had (bench/store_limits.py pin; docs/benchmarks.md).
STORE_VECTOR_ROWS = 2048
# The share of store.memory_limit_mib that 2,048 records at the record limit may take: the
# rest is for what else the file holds at that moment (analysis tables, reads).
STORE_RECORD_SHARE = 0.5


class LimitsConfig(_Section):
    """Attribute and record limits applied to every decoded batch before any consumer sees
    it, as the OpenTelemetry SDK's attribute limits are applied before export
    (:func:`faultlens.decode.limits.enforce_limits`; counted in
    ``faultlens_truncated_values_total{signal,what}``).

    The SDK's count limit is 128 by default (``OTEL_ATTRIBUTE_COUNT_LIMIT``), and so it is
    here. The SDK sets no length limit by default; here a value, a log body and an attribute
    set may each be 16 KiB (a URL, a SQL statement, the top of a stack trace: the parts fault
    analysis reads), and a whole record 16 KiB of strings, what 2,048 records of one write
    may take of the store's default 64 MiB (:data:`STORE_VECTOR_ROWS`). A record limit
    above what ``store.memory_limit_mib`` holds is refused at load
    (:meth:`Config._limits_fit_store`); raise both together.
    """

    # One string value: an attribute value (also inside arrays and maps), a name, a status
    # message; the columns promoted from attributes get the same cut.
    attribute_value_max_bytes: int = Field(default=16 * 1024, ge=256)
    # Attributes of one item, resource, span event or link; later ones are dropped.
    attribute_count_max: int = Field(default=128, ge=1)
    # A log record's body (a string, or the JSON of a structured body).
    log_body_max_bytes: int = Field(default=16 * 1024, ge=256)
    # The JSON of one attribute set as stored: attributes are dropped from the end until it
    # fits, and counted in the item's dropped_attributes_count.
    attributes_max_bytes: int = Field(default=16 * 1024, ge=256)
    # Every string of one span, log record or point together (its attribute sets, events,
    # links, names, body): past it, the longest parts are cut to a common length and the
    # events and links that do not fit are dropped (counted in dropped_*_count).
    record_max_bytes: int = Field(default=16 * 1024, ge=4096)


class ReceiversConfig(_Section):
    grpc: GrpcReceiverConfig = GrpcReceiverConfig()
    http: HttpReceiverConfig = HttpReceiverConfig()
    # Limit on one request's body, measured after decompression.
    max_request_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    limits: LimitsConfig = LimitsConfig()
    tls: TlsConfig | None = None
    auth: AuthConfig = AuthConfig()
    # Worker processes that decode requests off the event loop; 0 decodes on the loop.
    # Measured figures: docs/architecture.md, "Decode placement".
    decode_workers: int = Field(default=0, ge=0, le=64)
    # Threads that decode protobuf trace requests of 64 KiB or more beside the event loop
    # (the native span decoder runs without the GIL); 0 decodes them on the loop.
    decode_threads: int = Field(default=0, ge=0, le=64)


class AdmissionConfig(_Section):
    """Back-pressure before decoding: above the soft limit requests are refused as retryable."""

    memory_soft_limit_mib: int | None = Field(default=1024, gt=0)
    retry_after: Seconds = 1.0
    # Requests being decoded at once; more wait (bounded by the transports' own limits).
    max_inflight_bytes: int = Field(default=256 * 1024 * 1024, gt=0)


class StoreConfig(_Section):
    # The storage implementation (faultlens.store.backend.open_backend): "memory" is the
    # test backend of faultlens.testing (no analysis tables, a snapshot in data_dir on close).
    backend: Literal["duckdb", "memory"] = "duckdb"
    data_dir: Path = Path("./data")
    retention: Seconds = 7 * 86400.0
    retention_check_interval: Seconds = 300.0
    # Coalescing writer: flush when this many rows are waiting, or after flush_interval.
    # A flush of at least two row groups (store._connection.ROW_GROUP_SIZE, 10,240 rows) is
    # compressed and written straight to the file; smaller ones cost ~2x the CPU per span
    # (bench/store.py). At 10k spans/s the interval gives flushes of ~20k rows.
    flush_rows: int = Field(default=40_960, gt=0)
    flush_interval: Seconds = 2.0
    # Accepted but not yet written; past either bound, ingest gets a retryable refusal.
    # Decoded spans take ~1.2 KB of Arrow each, so bytes are the bound that matters.
    queue_max_rows: int = Field(default=1_000_000, gt=0)
    # DuckDB's memory for the whole file (store and analysis tables); past it, DuckDB
    # evicts written blocks and spills to a temporary directory. Its cache of written
    # blocks grows to the limit, so the limit is most of the RSS growth under a steady
    # ingest (store/duckdb_store.py has the figures); 32 once failed a max-speed replay.
    memory_limit_mib: int = Field(default=64, ge=8)
    # DuckDB's worker threads for the whole file (0: DuckDB's default, one per core). The
    # server's own threads (event loop, store writer, analysis) already keep the cores busy,
    # and DuckDB's parallel insert then costs more CPU and goes slower: 1M spans over gRPC
    # as fast as they came (bench/ingest.py --full --reuse-ids, analysis off, 2 cores) were stored at
    # 54.1k and 51.3k spans/s with 1 thread, 40.6k and 40.0k with 2, at 2.4 against 3.2 CPU
    # seconds per 100k spans. Queries run on one thread too; on 600k stored spans that cost
    # little (bench/store.py queries: get_trace p50 12 ms with 1 thread, 15 with 2; find_traces
    # 32-59 ms against 36-50). Raise it for a query-heavy use.
    threads: int = Field(default=1, ge=0, le=256)
    # The in-memory filter that finds trace ids in the trace index (store/_trace_filter.py):
    # 2 bytes per index row (~0.25 per span) up to this bound, per index (spans, logs);
    # past it, old runs are folded together and lookups of old traces read more of the index.
    trace_filter_max_mib: int = Field(default=32, ge=1)
    # Rows (spans, log records and points) the store file's hot tables take before they are
    # sealed into a segment file of their own, written once and attached only by the reads
    # that reach it (store/_segments.py); 0 never seals. DuckDB keeps the metadata of the
    # file it writes in memory (~0.45 bytes a row), so this bounds what the writer holds,
    # where a single file grew with the retention. A seal copies the rows once (~5 CPU-us
    # a span, on a thread of its own) and takes ~100 MiB more for the seconds it runs
    # (docs/benchmarks.md), so seals are rare: at 10k spans/s one every ~33 minutes.
    segment_rows: int = Field(default=20_000_000, ge=0)
    # The writer inserts everything waiting at once, and DuckDB's cost per row falls as the
    # insert grows, so under a burst a longer queue is also a faster writer: a million spans
    # sent as fast as possible over gRPC (bench/ingest.py --full --reuse-ids, analysis off,
    # DuckDB on 2 threads) were stored at 41.7k spans/s with 128 MiB (729 refusals retried),
    # 48.9k with 192 (555), peak RSS 543 and 605 MiB. At a steady 10k spans/s the interval
    # flushes long before either bound.
    queue_max_bytes: int = Field(default=192 * 2**20, gt=0)

    @model_validator(mode="after")
    def _retention_positive(self) -> StoreConfig:
        if self.retention <= 0:
            raise ValueError("retention must be positive")
        return self


class ApiConfig(HttpListenerConfig):
    """The query API (and UI) listener. Security: docs/api.md; :mod:`faultlens.api.security`."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Unset: the receivers' tokens (``receivers.auth``) guard the API too, so turning auth on
    # once closes every port. An empty ``bearer_tokens`` here turns API auth off explicitly.
    auth: AuthConfig | None = None
    tls: TlsConfig | None = None
    # Host header names accepted besides the loopback names and ``host`` (DNS-rebinding
    # protection): ``faultlens.example.com``, ``*.example.com`` (any subdomain) or ``*`` (any).
    allowed_hosts: list[str] = Field(default_factory=list)
    # Binding beyond loopback without auth: False warns at start, True refuses to start.
    require_auth_beyond_loopback: bool = False
    max_connections: int = Field(default=256, gt=0)

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if not host.strip() or any(c in host for c in "/ @?#") or host.count(":") == 1:
                raise ValueError(f"{host!r} is not a host name (no scheme, path or port: 'example.com')")
        return [h.strip().lower() for h in hosts]


class WebhookConfig(_Section):
    """JSON POST on incident open/resolve; ``url`` unset turns it off."""

    url: str | None = None
    timeout: Seconds = 5.0
    max_attempts: int = Field(default=5, ge=1)
    queue_max: int = Field(default=1000, gt=0)


class AnalysisConfig(_Section):
    """The streaming analysis (errors, templates, RED, anomalies, incidents); docs/api.md."""

    enabled: bool = True
    window: Seconds = 60.0  # 60 s, or 10 s for finer windows
    lateness: Seconds = 10.0  # how long after its end a window waits for late data
    queue_max_items: int = Field(default=500_000, gt=0)  # past this, batches are dropped and counted
    state_interval: Seconds = 30.0  # how often the cores' state is saved for restarts
    # How long queued requests wait for more before one analysis call takes them all: a
    # call's fixed cost is most of a 1,000-span request's (the engine's CPU per span, measured
    # alone: ~8 us at 1k spans a call, ~5 at 5k, ~4.5 at 20k; docs/analysis.md).
    batch_linger: Seconds = Field(default=0.5, ge=0)
    anomaly_threshold: float = Field(default=5.0, gt=0)  # robust z-score that flags a value
    incident_min_anomalies: int = Field(default=2, ge=1)  # distinct anomalous series to open one
    incident_resolve_after: int = Field(default=3, ge=1)  # quiet windows before one resolves
    webhook: WebhookConfig = WebhookConfig()

    @model_validator(mode="after")
    def _window_supported(self) -> AnalysisConfig:
        if self.window not in (10.0, 60.0):
            raise ValueError("window must be 60s or 10s")
        if self.lateness >= self.window * 5:
            raise ValueError("lateness must be shorter than five windows")
        return self


class PipelineConfig(_Section):
    """Where received data goes besides the store, in the spirit of the Collector's pipelines.

    Each exporter forwards the signals it lists to one OTLP destination through its own
    disk queue, retry and circuit breaker. Exporters are best-effort consumers of the
    fan-out: a slow or dead destination never blocks ingest, the store or the others.
    A disk queue whose ``directory`` is not set lives in ``<store.data_dir>/export``.
    """

    exporters: list[ExporterConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> PipelineConfig:
        names = [e.name for e in self.exporters]
        if len(set(names)) != len(names):
            raise ValueError(f"exporter names must be unique (they name queue files): {names}")
        return self


class IntakeConfig(_Section):
    """The intake log (``faultlens.receive.intake``): what an OTLP acknowledgement survives.

    ``durability``: ``process`` (default) writes each request to the log before answering,
    so acknowledged data survives the process being killed; ``fsync`` also waits for the
    disk (group committed), so it survives power loss; ``none`` keeps no log and answers once
    the request is queued in memory. ``directory`` defaults to ``<store.data_dir>/intake``.
    ``max_bytes``: log not yet stored past which requests are refused as retryable.
    """

    durability: Literal["none", "process", "fsync"] = "process"
    directory: Path | None = None
    segment_bytes: int = Field(default=64 * 2**20, ge=2**16)
    max_bytes: int = Field(default=4 * 2**30, gt=0)


class Config(_Section):
    receivers: ReceiversConfig = ReceiversConfig()
    admission: AdmissionConfig = AdmissionConfig()
    intake: IntakeConfig = IntakeConfig()
    store: StoreConfig = StoreConfig()
    api: ApiConfig = ApiConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    pipeline: PipelineConfig = PipelineConfig()
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @model_validator(mode="after")
    def _backend_holds_analysis(self) -> Config:
        if self.store.backend == "memory" and self.analysis.enabled:
            raise ValueError(
                "store.backend memory keeps no analysis tables: set analysis.enabled to false, "
                "or use the duckdb backend"
            )
        return self

    @model_validator(mode="after")
    def _limits_fit_store(self) -> Config:
        """A write holds the strings of :data:`STORE_VECTOR_ROWS` records in memory at once;
        at the record limit they must fit in :data:`STORE_RECORD_SHARE` of the store's."""
        record = self.receivers.limits.record_max_bytes
        need_mib = -(-int(STORE_VECTOR_ROWS * record / STORE_RECORD_SHARE) // 2**20)
        if self.store.memory_limit_mib < need_mib:
            fits = int(self.store.memory_limit_mib * 2**20 * STORE_RECORD_SHARE) // STORE_VECTOR_ROWS
            raise ValueError(
                f"receivers.limits.record_max_bytes {record} needs store.memory_limit_mib of at "
                f"least {need_mib} (it is {self.store.memory_limit_mib}): DuckDB holds the strings "
                f"of {STORE_VECTOR_ROWS} records of a write in memory at once; raise the memory "
                f"limit, or lower the record limit to {fits} at most"
            )
        return self
