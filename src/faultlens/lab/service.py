"""One lab service: its own OS process, a starlette app on uvicorn, instrumented by the SDK.

Run by the lab runner as ``python -m faultlens.lab.service CONFIG_JSON`` with its listening
socket handed over as an inherited file descriptor (so the port is bound before any caller
starts, and no other process can take it in between), or, when it runs in a network
namespace of its own (:mod:`faultlens.lab.netns`), binding its address there itself (the
namespace is new: nothing else can hold the port). A request to ``POST /op/{op}``:

::

    extract W3C context ─> SERVER span ─> pool slot ─> in-process faults (delay, raise, leak)
        ─> CPU work (work_ms of this thread's CPU time) ─> SQLite read + write (db services)
        ─> each downstream call (CLIENT span, context injected, response checked) ─> answer

Telemetry goes out through the OpenTelemetry SDK's own batch processors and OTLP exporters
(gRPC to a collector, or HTTP/protobuf, e.g. to the lab's recording relay): traces, logs
through the SDK's ``LoggingHandler`` (INFO per request, ERROR with the exception when one
fails), and metrics: the request duration histogram, process CPU time and utilisation,
resident memory (psutil) and the pool's connections in use.

``POST /_lab/fault`` turns an in-process fault on, ``POST /_lab/clear`` off (faults done from
outside, such as a CPU burner or a lock holder, never reach this endpoint). The process
exits by itself when its parent (the runner) is gone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import uvicorn
from opentelemetry import propagate
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import BaseModel, ConfigDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from faultlens.lab.faults import FaultType
from faultlens.lab.helpers import exit_with_parent, runner_pid
from faultlens.lab.topology import ServiceSpec
from faultlens.types import Transport

__all__ = ["ServiceConfig", "main"]

DEPTH_HEADER = "x-lab-depth"
# An export, retries included, gives up after this: a service whose runner (and relay) is
# gone must not spend long flushing into nothing before it exits.
EXPORT_TIMEOUT_S = 5.0
OP_PREFIX = "/op/"


class ServiceConfig(BaseModel):
    """What the runner tells a service process (JSON on its command line)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: ServiceSpec
    instance: str
    fd: int | None = None  # the inherited listening socket; None: bind addresses[me]:ports[me]
    ports: dict[str, int]  # every service of the topology -> its port
    addresses: dict[str, str] = {}  # every service -> its IP address (missing: 127.0.0.1)
    max_depth: int
    endpoint: str  # host:port (grpc) or http://host:port (http)
    protocol: Transport = Transport.GRPC
    data_dir: str
    export_interval_s: float = 1.0
    pool_size: int = 32
    call_timeout_s: float = 5.0
    db_timeout_s: float = 1.0


class LabFaultError(RuntimeError):
    """An error a fault made on purpose (the exception fault)."""


class PoolExhausted(RuntimeError):
    """No connection of the pool came free in time."""


class BadResponse(RuntimeError):
    """A callee answered data the caller cannot use."""


class DownstreamFailed(RuntimeError):
    """A callee answered an error status."""


@dataclass
class ActiveFault:
    id: str
    type: FaultType
    params: dict[str, float]
    started: float  # time.monotonic()
    duration_s: float


@dataclass
class FaultState:
    """The in-process faults that are on, and what the gradual ones have done so far."""

    active: dict[str, ActiveFault] = field(default_factory=dict)
    leaked: list[bytes] = field(default_factory=list)

    def of(self, kind: FaultType) -> ActiveFault | None:
        for f in self.active.values():
            if f.type is kind:
                return f
        return None

    def delay_s(self) -> float:
        total = 0.0
        if (f := self.of(FaultType.LATENCY)) is not None:
            total += f.params.get("delay_ms", 200.0) / 1000
        if (f := self.of(FaultType.LATENCY_CREEP)) is not None:
            ramp = max(1.0, f.params.get("ramp_s", f.duration_s))
            share = min(1.0, (time.monotonic() - f.started) / ramp)
            total += share * f.params.get("max_delay_ms", 500.0) / 1000
        return total


def _exporters(cfg: ServiceConfig) -> tuple[SpanExporter, LogRecordExporter, MetricExporter]:
    if cfg.protocol is Transport.HTTP:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetrics
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans

        base = cfg.endpoint.rstrip("/")
        return (
            HttpSpans(endpoint=f"{base}/v1/traces", timeout=EXPORT_TIMEOUT_S),
            HttpLogs(endpoint=f"{base}/v1/logs", timeout=EXPORT_TIMEOUT_S),
            HttpMetrics(endpoint=f"{base}/v1/metrics", timeout=EXPORT_TIMEOUT_S),
        )
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetrics
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans

    return (
        GrpcSpans(endpoint=cfg.endpoint, insecure=True, timeout=EXPORT_TIMEOUT_S),
        GrpcLogs(endpoint=cfg.endpoint, insecure=True, timeout=EXPORT_TIMEOUT_S),
        GrpcMetrics(endpoint=cfg.endpoint, insecure=True, timeout=EXPORT_TIMEOUT_S),
    )


class Telemetry:
    """The SDK providers of one service process, and their shutdown (which flushes)."""

    def __init__(self, cfg: ServiceConfig, pool: Pool) -> None:
        resource = Resource.create(
            {
                "service.name": cfg.spec.name,
                "service.instance.id": cfg.instance,
                "service.namespace": "faultlens-lab",
                "process.pid": os.getpid(),
            }
        )
        spans, logs, metrics = _exporters(cfg)
        delay_ms = int(cfg.export_interval_s * 1000)
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(spans, schedule_delay_millis=delay_ms))
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(logs, schedule_delay_millis=delay_ms)
        )
        reader = PeriodicExportingMetricReader(metrics, export_interval_millis=delay_ms)
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        self.tracer = self.tracer_provider.get_tracer("faultlens.lab")
        self.logger = logging.getLogger(f"faultlens.lab.{cfg.spec.name}")
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=self.logger_provider))

        meter = self.meter_provider.get_meter("faultlens.lab")
        self.duration = meter.create_histogram(
            "http.server.request.duration", unit="s", description="Duration of HTTP server requests."
        )
        self._process = psutil.Process()
        self._process.cpu_percent(None)
        self._cpus = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
        meter.create_observable_counter("process.cpu.time", [self._cpu_time], unit="s")
        meter.create_observable_gauge("process.cpu.utilization", [self._cpu_utilization], unit="1")
        meter.create_observable_up_down_counter("process.memory.usage", [self._memory], unit="By")
        meter.create_observable_up_down_counter(
            "db.client.connection.count", [pool.observe], unit="{connection}"
        )

    def _cpu_time(self, _: CallbackOptions) -> Iterable[Observation]:
        t = self._process.cpu_times()
        yield Observation(t.user, {"cpu.mode": "user"})
        yield Observation(t.system, {"cpu.mode": "system"})

    def _cpu_utilization(self, _: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self._process.cpu_percent(None) / 100.0 / self._cpus)

    def _memory(self, _: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self._process.memory_info().rss)

    def shutdown(self) -> None:
        for provider in (self.tracer_provider, self.logger_provider, self.meter_provider):
            provider.shutdown()


class Pool:
    """A fixed number of connection slots every request holds while it works.

    The pool_exhaustion fault leaks slots (a request keeps its slot when it ends); once
    they are gone, requests wait ``wait_s`` and fail with :class:`PoolExhausted`.
    """

    def __init__(self, size: int, wait_s: float) -> None:
        self.size = size
        self.wait_s = wait_s
        self._free = asyncio.Semaphore(size)
        self.in_use = 0
        self.leaked = 0

    async def acquire(self) -> None:
        try:
            await asyncio.wait_for(self._free.acquire(), self.wait_s)
        except TimeoutError:
            raise PoolExhausted(
                f"connection pool exhausted: {self.size} connections in use, "
                f"none free after {self.wait_s:.1f} s"
            ) from None
        self.in_use += 1

    def release(self, *, leak: bool) -> None:
        if leak:
            self.leaked += 1
            return
        self.in_use -= 1
        self._free.release()

    def repair(self) -> None:
        """Give the leaked slots back (the fault ended, as a restart of the pool would)."""
        for _ in range(self.leaked):
            self.in_use -= 1
            self._free.release()
        self.leaked = 0

    def observe(self, _: CallbackOptions) -> Iterable[Observation]:
        yield Observation(
            self.in_use, {"db.client.connection.state": "used", "db.client.connection.pool.name": "lab"}
        )
        yield Observation(
            self.size - self.in_use,
            {"db.client.connection.state": "idle", "db.client.connection.pool.name": "lab"},
        )


class Database:
    """A SQLite file with one table; one read and one write per request, off the event loop."""

    def __init__(self, path: Path, timeout_s: float) -> None:
        self.path = path
        self._conn = sqlite3.connect(path, timeout=timeout_s, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=DELETE")
            self._conn.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, op TEXT, at REAL)")
        self._writes = 0

    def query(self, op: str) -> int:
        with self._lock:
            (n,) = self._conn.execute("SELECT count(*) FROM items WHERE op = ?", (op,)).fetchone()
            self._conn.execute("INSERT INTO items (op, at) VALUES (?, ?)", (op, time.time()))
            self._writes += 1
            if self._writes % 500 == 0:
                self._conn.execute("DELETE FROM items WHERE id < (SELECT max(id) - 1000 FROM items)")
            return int(n)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _burn(cpu_ms: float) -> None:
    """Spend ``cpu_ms`` of this thread's CPU time (wall time grows when the CPU is contended)."""
    end = time.thread_time() + cpu_ms / 1000
    x = 0
    while time.thread_time() < end:
        for i in range(200):
            x += i * i


class _Wire:
    """In front of the app, where the network would be: a ``network_delay`` fault holds each
    request to ``/op/`` for ``delay_ms`` (give or take up to ``jitter_ms``) before the handler
    (and its SERVER span) sees it, and a share ``loss`` of them past the callers' timeout, as
    lost packets would. The runner uses this when it cannot use tc netem (see its label)."""

    def __init__(self, app: Starlette, faults: FaultState, timeout_s: float) -> None:
        self.app, self.faults, self.timeout_s = app, faults, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith("/op/"):
            fault = self.faults.of(FaultType.NETWORK_DELAY)
            if fault is not None:
                jitter = fault.params.get("jitter_ms", 0.0)
                delay_ms = fault.params.get("delay_ms", 300.0) + random.uniform(-jitter, jitter)
                await asyncio.sleep(max(0.0, delay_ms) / 1000)
                if random.random() < fault.params.get("loss", 0.0):
                    await asyncio.sleep(self.timeout_s + 0.5)
        await self.app(scope, receive, send)


class LabService:
    def __init__(self, cfg: ServiceConfig) -> None:
        self.cfg = cfg
        self.spec = cfg.spec
        self.pool = Pool(cfg.pool_size, wait_s=1.0)
        self.telemetry = Telemetry(cfg, self.pool)
        self.tracer = self.telemetry.tracer
        self.log = self.telemetry.logger
        self.faults = FaultState()
        self.db = (
            Database(Path(cfg.data_dir) / f"{self.spec.name}.sqlite", cfg.db_timeout_s)
            if self.spec.db
            else None
        )
        self.client = httpx.AsyncClient(timeout=cfg.call_timeout_s)
        self._leak_task: asyncio.Task[None] | None = None
        self.app = Starlette(
            routes=[
                Route("/op/{op}", self.handle, methods=["POST"]),
                Route("/_lab/fault", self.fault_on, methods=["POST"]),
                Route("/_lab/clear", self.fault_off, methods=["POST"]),
                Route("/_lab/health", self.health, methods=["GET"]),
            ]
        )
        self.asgi = _Wire(self.app, self.faults, cfg.call_timeout_s)

    # --- the work ---------------------------------------------------------------------

    async def handle(self, request: Request) -> JSONResponse:
        op = request.path_params["op"]
        depth = int(request.headers.get(DEPTH_HEADER, "0") or 0)
        started = time.perf_counter()
        ctx = propagate.extract(dict(request.headers))
        route = "/op/{op}"
        with self.tracer.start_as_current_span(
            f"POST {route}",
            context=ctx,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": "POST",
                "http.route": route,
                "lab.op": op,
                "url.path": f"/op/{op}",
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            status = 200
            try:
                body = await self._work(op, depth)
                self.log.info("handled %s at depth %d", op, depth)
            except Exception as e:
                status = 500
                span.record_exception(e)
                span.set_status(Status(StatusCode.ERROR, f"{type(e).__name__}: {e}"))
                span.set_attribute("error.type", type(e).__name__)
                self.log.error("request %s failed: %s", op, e, exc_info=e)
                body = {"service": self.spec.name, "error": f"{type(e).__name__}: {e}"}
            span.set_attribute("http.response.status_code", status)
        self.telemetry.duration.record(
            time.perf_counter() - started,
            {"http.request.method": "POST", "http.route": route, "http.response.status_code": status},
        )
        return JSONResponse(body, status_code=status)

    async def _work(self, op: str, depth: int) -> dict[str, Any]:
        await self.pool.acquire()
        leak = False
        try:
            if (f := self.faults.of(FaultType.POOL_EXHAUSTION)) is not None:
                leak = random.random() < f.params.get("leak_p", 0.05)
            delay = self.faults.delay_s()
            if delay > 0:
                await asyncio.sleep(delay)
            if (f := self.faults.of(FaultType.EXCEPTION)) is not None and random.random() < f.params.get(
                "rate", 0.5
            ):
                raise LabFaultError(f"{self.spec.name}: {op} failed: injected exception")
            _burn(self.spec.work_ms)
            rows = await self._query(op) if self.db is not None else 0
            callees = [
                c.to
                for c in self.spec.calls
                if (not c.ops or op in c.ops) and depth + 1 < self.cfg.max_depth and random.random() < c.p
            ]
            # Calls go out together, as a gateway's fan-out does; the request fails if any did.
            results = await asyncio.gather(
                *(self._call(to, op, depth + 1) for to in callees), return_exceptions=True
            )
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                raise failed[0]
        finally:
            self.pool.release(leak=leak)
        if (f := self.faults.of(FaultType.WRONG_RETURN)) is not None and random.random() < f.params.get(
            "rate", 0.5
        ):
            return {"service": self.spec.name, "items": None, "note": "injected wrong return"}
        return {"service": self.spec.name, "items": [op, rows]}

    async def _query(self, op: str) -> int:
        assert self.db is not None
        with self.tracer.start_as_current_span(
            "INSERT items",
            kind=SpanKind.CLIENT,
            attributes={
                "db.system.name": "sqlite",
                "db.system": "sqlite",
                "db.operation.name": "INSERT",
                "db.namespace": self.db.path.name,
            },
        ):
            return await asyncio.to_thread(self.db.query, op)

    async def _call(self, callee: str, op: str, depth: int) -> None:
        port = self.cfg.ports[callee]
        host = self.cfg.addresses.get(callee, "127.0.0.1")
        with self.tracer.start_as_current_span(
            "POST /op/{op}",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": "POST",
                "server.address": host,
                "server.port": port,
                "peer.service": callee,
                "url.full": f"http://{host}:{port}/op/{op}",
            },
        ) as span:
            headers = {DEPTH_HEADER: str(depth)}
            propagate.inject(headers)
            r = await self.client.post(f"http://{host}:{port}/op/{op}", headers=headers)
            span.set_attribute("http.response.status_code", r.status_code)
            if r.status_code >= 400:
                span.set_status(Status(StatusCode.ERROR, f"HTTP {r.status_code}"))
                raise DownstreamFailed(f"{callee} answered HTTP {r.status_code} to {op}")
            answer = r.json()
            if not isinstance(answer, dict) or not isinstance(answer.get("items"), list):
                self.log.error("bad response from %s to %s: items is %r", callee, op, answer.get("items"))
                raise BadResponse(f"{callee} answered {op} without a list of items")

    # --- control ------------------------------------------------------------------------

    async def fault_on(self, request: Request) -> JSONResponse:
        try:
            body = await request.json()
            kind = FaultType(body["type"])
            fault = ActiveFault(
                id=str(body["id"]),
                type=kind,
                params={str(k): float(v) for k, v in dict(body.get("params") or {}).items()},
                started=time.monotonic(),
                duration_s=float(body.get("duration_s", 60.0)),
            )
        except (ValueError, KeyError, TypeError) as e:
            return JSONResponse({"error": f"bad fault: {e}"}, status_code=400)
        if not kind.in_process:
            return JSONResponse({"error": f"{kind.value} is not done inside a service"}, status_code=400)
        self.faults.active[fault.id] = fault
        if kind is FaultType.MEMORY_LEAK and self._leak_task is None:
            self._leak_task = asyncio.create_task(self._leak())
        return JSONResponse({"on": fault.id})

    async def fault_off(self, request: Request) -> JSONResponse:
        body = await request.json()
        fault = self.faults.active.pop(str(body.get("id")), None)
        if fault is None:
            return JSONResponse({"error": "no such fault"}, status_code=404)
        if fault.type is FaultType.MEMORY_LEAK:
            if self._leak_task is not None:
                self._leak_task.cancel()
                self._leak_task = None
            self.faults.leaked.clear()
        if fault.type is FaultType.POOL_EXHAUSTION:
            self.pool.repair()
        return JSONResponse({"off": fault.id})

    async def health(self, _: Request) -> JSONResponse:
        return JSONResponse(
            {"service": self.spec.name, "pid": os.getpid(), "faults": sorted(self.faults.active)}
        )

    async def _leak(self) -> None:
        """Retain ``mb_per_s`` of touched memory every second while the fault is on."""
        while (f := self.faults.of(FaultType.MEMORY_LEAK)) is not None:
            self.faults.leaked.append(b"\x01" * int(f.params.get("mb_per_s", 4.0) * 1024 * 1024))
            await asyncio.sleep(1.0)

    async def watch_parent(self, server: uvicorn.Server, parent: int) -> None:
        while os.getppid() == parent and not server.should_exit:
            await asyncio.sleep(0.5)
        server.should_exit = True

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
        self.telemetry.shutdown()


async def _serve(service: LabService, sock: socket.socket, parent: int) -> None:
    config = uvicorn.Config(service.asgi, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    watcher = asyncio.create_task(service.watch_parent(server, parent))
    try:
        await server.serve(sockets=[sock])
    finally:
        watcher.cancel()
        await service.client.aclose()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    cfg = ServiceConfig.model_validate(json.loads(args[0]))
    parent = runner_pid()
    exit_with_parent(parent, grace_s=2 * EXPORT_TIMEOUT_S)  # a backstop to watch_parent's flush
    if cfg.fd is not None:
        sock = socket.socket(fileno=cfg.fd)
    else:
        address = (cfg.addresses.get(cfg.spec.name, "127.0.0.1"), cfg.ports[cfg.spec.name])
        sock = socket.create_server(address, backlog=128, reuse_port=False)
    service = LabService(cfg)
    try:
        asyncio.run(_serve(service, sock, parent))
    finally:
        service.close()


if __name__ == "__main__":
    # Through the package, so that the exception types are named faultlens.lab.service.*
    from faultlens.lab import service

    service.main()
