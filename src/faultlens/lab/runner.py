"""The lab runner: starts a topology's processes, runs faults on a schedule, stops everything.

::

    start()   bind one listening socket per service (so every port is known before any
              process starts) ─> spawn each service with its socket inherited ─> wait for
              GET /_lab/health ─> spawn the load generator at the entry service
    inject()  do the fault (see below) ─> write its start label ─> remember how to undo it
    clear()   undo it ─> write its end label
    shutdown() clear what is on ─> SIGTERM the load generator, then the services (they
              flush their telemetry) ─> SIGKILL the process group of anything still alive

Every child runs in a process group of its own (``start_new_session``): a Ctrl-C at the
terminal reaches only the runner, which then stops the children in order; and the
children exit by themselves when the runner is gone. ``shutdown`` is bounded and safe to
call twice.

How each fault is done (labels carry the mechanism, see :class:`~faultlens.lab.faults.FaultType`):
in-process faults through ``POST /_lab/fault`` on the service; ``cpu_contention`` pins the
service and ``burners`` busy processes to one CPU; ``db_lock`` starts a process that holds the
SQLite file's exclusive lock; ``dependency_down`` kills the service's process group and
starts it again on the same port when the fault ends; ``network_delay`` is a ``tc netem``
qdisc on the service's link when the service runs in a network namespace of its own and the
kernel has netem (:mod:`faultlens.lab.netns`), else the service's in-process wrapper, and
the label's mechanism says which and why.

With namespaces (root, and ``--network-faults`` auto with netem, or netns), ``start`` first
makes the run's bridge and one namespace per targeted service; every service is then
reached at its address on the run's subnet, and ``shutdown`` deletes the namespaces and
links last, once nothing runs in them, whether the run ended, failed or was interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil

from faultlens.lab.faults import FaultLabel, FaultType, LabelWriter, ScheduledFault
from faultlens.lab.helpers import child_env
from faultlens.lab.loadgen import LoadConfig
from faultlens.lab.netns import (
    SERVICE_PORT,
    LabNetwork,
    NetnsError,
    NetworkFaults,
    NetworkPlan,
    netem_args,
    plan_network,
    remove_leftovers,
)
from faultlens.lab.service import ServiceConfig
from faultlens.lab.topology import Topology
from faultlens.types import Transport

__all__ = ["CpuUsage", "LabError", "LabOptions", "LabRunner"]

READY_TIMEOUT_S = 20.0
STOP_GRACE_S = 8.0
KILL_WAIT_S = 5.0  # after SIGKILL, how long the runner waits for its children to be gone, all together
LOOPBACK = "127.0.0.1"

log = logging.getLogger("faultlens.lab")


class LabError(RuntimeError):
    """The lab could not start or do what it was asked; the message says which process."""


@dataclass(frozen=True, slots=True)
class LabOptions:
    """Where telemetry goes and how hard the lab works."""

    endpoint: str  # host:port for grpc, http://host:port for http
    protocol: Transport = Transport.GRPC
    rate: float | None = None  # peak requests/s; None: the topology's
    day_s: float | None = None  # one compressed day; None: the topology's
    export_interval_s: float = 2.0
    seed: int | None = None
    load: bool = True
    network: NetworkFaults = NetworkFaults.AUTO  # how network_delay is done (faultlens.lab.netns)
    # The services network_delay may hit (they get a namespace when namespaces are used);
    # None: every service that has a caller.
    network_targets: tuple[str, ...] | None = None
    netns_pool: str | None = None  # None: FAULTLENS_LAB_NETNS_POOL, else 10.213.0.0/16


@dataclass(frozen=True, slots=True)
class CpuUsage:
    """CPU the lab (runner, relay, services, load generator) used over ``wall_s`` of running."""

    cpu_s: float
    wall_s: float

    @property
    def cores(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


@dataclass
class _Active:
    label: FaultLabel
    undo: Callable[[], None]


@dataclass
class _Child:
    name: str
    proc: subprocess.Popen[bytes]

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)


@dataclass
class _Service:
    config: ServiceConfig
    child: _Child | None = None
    restarts: int = 0


class LabRunner:
    def __init__(
        self, topology: Topology, workdir: Path, options: LabOptions, *, labels: Path | None = None
    ) -> None:
        self.topology = topology
        self.workdir = workdir
        self.options = options
        self.labels = LabelWriter(labels or workdir / "labels.jsonl")
        self._services: dict[str, _Service] = {}
        self._ports: dict[str, int] = {}
        self._load: _Child | None = None
        self._helpers: list[_Child] = []
        self._active: dict[str, _Active] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._stopped = False
        self.load_counts: dict[str, int] = {}
        self.cpu = CpuUsage(0.0, 0.0)
        self._started = time.monotonic()
        self._exited_cpu_s = 0.0  # of services killed by dependency_down
        self._at_start = CpuUsage(0.0, 0.0)
        self._http = httpx.Client(timeout=5.0)
        self.network: NetworkPlan | None = None  # known once start() has begun
        self._net: LabNetwork | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start every service and wait until each answers, then the load generator."""
        self._started = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        endpoints = self._start_network()
        sockets: dict[str, socket.socket] = {}
        try:
            for spec in self.topology.services:
                if self._isolated(spec.name):
                    self._ports[spec.name] = SERVICE_PORT  # it binds in its own namespace
                    continue
                sockets[spec.name] = _listen(0, self.host(spec.name))
                self._ports[spec.name] = sockets[spec.name].getsockname()[1]
            addresses = {spec.name: self.host(spec.name) for spec in self.topology.services}
            for spec in self.topology.services:
                sock = sockets.get(spec.name)
                cfg = ServiceConfig(
                    spec=spec,
                    instance=f"{spec.name}-1",
                    fd=sock.fileno() if sock is not None else None,
                    ports=dict(self._ports),
                    addresses=addresses,
                    max_depth=self.topology.max_depth,
                    endpoint=endpoints.get(spec.name, self.options.endpoint),
                    protocol=self.options.protocol,
                    data_dir=str(self.workdir),
                    export_interval_s=self.options.export_interval_s,
                )
                self._services[spec.name] = svc = _Service(cfg)
                svc.child = self._spawn_service(cfg)
        finally:
            for s in sockets.values():
                s.close()  # the children hold them now; a killed service must refuse connections
        for name in self._services:
            self._wait_ready(name)
        if self.options.load:
            self._start_load()
        self._at_start = self._cpu_usage()  # imports and start-up are not the lab's running cost

    def _start_network(self) -> dict[str, str]:
        """Decide how network faults are done; make the namespaces if so. Returns the OTLP
        endpoint of each isolated service (a forwarder on the bridge to the real one)."""
        names = {s.name for s in self.topology.services}
        targets = self.options.network_targets
        if targets is None:
            targets = tuple(sorted(n for n in names if self.topology.callers(n)))
        unknown = sorted(set(targets) - names)
        if unknown:
            raise LabError(f"network targets {unknown} are not services of topology {self.topology.name}")
        with contextlib.suppress(NetnsError, ValueError, OSError):
            remove_leftovers()  # of runs killed before they could clean up
        try:
            self.network = plan = plan_network(self.options.network, targets=len(targets))
        except NetnsError as e:
            raise LabError(str(e)) from None
        if not plan.namespaces:
            fallback = plan.mode is not NetworkFaults.INPROCESS and targets
            (log.warning if fallback else log.info)("network_delay is done in-process: %s", plan.reason)
            return {}
        self._net = net = LabNetwork(sorted(targets), self.options.netns_pool, netem=plan.netem)
        try:
            net.start()
            url = urlsplit(
                self.options.endpoint if "://" in self.options.endpoint else f"//{self.options.endpoint}"
            )
            if url.hostname is None or url.port is None:
                raise LabError(f"endpoint {self.options.endpoint!r}: no host:port to forward to")
            port = net.forward(url.hostname, url.port)
        except NetnsError as e:
            raise LabError(f"network namespaces: {e}") from None
        via = f"{net.host_address}:{port}"
        endpoint = f"{url.scheme}://{via}" if url.scheme else via
        if plan.netem:
            log.info("network_delay by tc netem: %s in namespaces %s-*", ", ".join(net.isolated), net.prefix)
        else:
            log.warning(
                "services %s run in namespaces %s-*, but network_delay is done in-process: %s",
                ", ".join(net.isolated),
                net.prefix,
                plan.reason,
            )
        return dict.fromkeys(net.isolated, endpoint)

    def _isolated(self, service: str) -> bool:
        return self._net is not None and service in self._net.isolated

    def host(self, service: str) -> str:
        """The IP address the service listens on."""
        return self._net.address(service) if self._net is not None else LOOPBACK

    @property
    def netns_prefix(self) -> str | None:
        """The prefix of the names of this run's namespaces and links (None: it made none)."""
        return self._net.prefix if self._net is not None else None

    def _spawn_service(self, cfg: ServiceConfig) -> _Child:
        out = (self.workdir / f"{cfg.spec.name}.log").open("ab")
        netns = self._net.exec_prefix(cfg.spec.name) if self._net is not None else []
        proc = subprocess.Popen(
            [*netns, sys.executable, "-m", "faultlens.lab.service", cfg.model_dump_json()],
            pass_fds=(cfg.fd,) if cfg.fd is not None else (),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=child_env(),
        )
        out.close()
        return _Child(cfg.spec.name, proc)

    def _wait_ready(self, name: str) -> None:
        svc = self._services[name]
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if svc.child is None or svc.child.proc.poll() is not None:
                raise LabError(f"service {name} exited at start; see {self.workdir / (name + '.log')}")
            try:
                if self._http.get(f"{self.url(name)}/_lab/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise LabError(f"service {name} did not answer within {READY_TIMEOUT_S:.0f} s")

    def _start_load(self) -> None:
        load = self.topology.load
        cfg = LoadConfig(
            target=self.url(self.topology.entry),
            mix=dict(load.mix),
            rate=self.options.rate or load.rate,
            day_s=self.options.day_s or load.day,
            night_share=load.night_share,
            concurrency=load.concurrency,
            seed=self.options.seed,
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "faultlens.lab.loadgen", cfg.model_dump_json()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=(self.workdir / "loadgen.log").open("ab"),
            start_new_session=True,
            env=child_env(),
        )
        self._load = _Child("loadgen", proc)

    def url(self, service: str) -> str:
        return f"http://{self.host(service)}:{self._ports[service]}"

    def pid(self, service: str) -> int | None:
        child = self._services[service].child
        return child.proc.pid if child is not None and child.proc.poll() is None else None

    def child_pids(self) -> list[int]:
        """Every process the runner started that still runs."""
        children = [s.child for s in self._services.values()] + [self._load, *self._helpers]
        return [c.proc.pid for c in children if c is not None and c.proc.poll() is None]

    def _cpu_usage(self) -> CpuUsage:
        """CPU the runner, services and load generator used since they started (fault helpers apart)."""
        mine = psutil.Process().cpu_times()  # the runner itself, and the recording relay in it
        used = mine.user + mine.system
        children = [s.child for s in self._services.values()] + [self._load]
        for c in children:
            if c is None or c.proc.poll() is not None:
                continue
            try:
                t = psutil.Process(c.proc.pid).cpu_times()
            except psutil.Error:
                continue
            used += t.user + t.system
        return CpuUsage(
            cpu_s=used + self._exited_cpu_s - self._at_start.cpu_s,
            wall_s=time.monotonic() - self._started - self._at_start.wall_s,
        )

    def shutdown(self) -> None:
        """Clear the faults that are on, stop the load, then the services; bounded, idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        try:
            self._stop_everything()
        finally:
            # Last, once nothing runs in the namespaces; whatever happened before.
            if self._net is not None:
                self._net.shutdown()
            self.labels.close()
            self._http.close()

    def _stop_everything(self) -> None:
        self.cpu = self._cpu_usage()
        for fault_id in list(self._active):
            with contextlib.suppress(Exception):
                self.clear(fault_id, restart=False)
        if self._load is not None:
            self._load.signal_group(signal.SIGTERM)
            try:
                out, _ = self._load.proc.communicate(timeout=STOP_GRACE_S)
                self.load_counts = json.loads(out.decode().strip().splitlines()[-1])
            except (subprocess.TimeoutExpired, ValueError, IndexError):
                pass
        children = [s.child for s in self._services.values() if s.child is not None]
        children += self._helpers + ([self._load] if self._load is not None else [])
        for c in children:
            c.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for c in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.proc.wait(max(0.1, deadline - time.monotonic()))
        for c in children:
            c.signal_group(signal.SIGKILL)  # the group: anything a child started, too
        deadline = time.monotonic() + KILL_WAIT_S  # one wait for all: a loaded machine reaps slowly
        for c in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.proc.wait(max(0.1, deadline - time.monotonic()))

    # --- faults -------------------------------------------------------------------------

    def inject(self, fault: ScheduledFault) -> FaultLabel:
        """Start ``fault`` now; its label is written once the fault is in place."""
        if fault.service not in self._services:
            raise LabError(f"no service {fault.service!r} in topology {self.topology.name}")
        fault_id = f"f{next(self._ids)}"
        params = fault.parameters
        svc = self._services[fault.service]
        kind = fault.type
        mechanism = kind.mechanism
        if (
            kind is FaultType.NETWORK_DELAY
            and self._net is not None
            and self._net.netem
            and self._isolated(fault.service)
        ):
            undo, mechanism = self._netem(fault.service, params)
        elif kind.in_process:
            undo = self._in_process(fault_id, fault, params)
            if kind is FaultType.NETWORK_DELAY:
                mechanism = f"{mechanism}; tc netem not used: {self._why_not_netem(fault.service)}"
        elif kind is FaultType.CPU_CONTENTION:
            undo = self._cpu_contention(svc, int(params.get("burners", 4)))
        elif kind is FaultType.DB_LOCK:
            undo = self._db_lock(svc)
        else:
            undo = self._kill(svc)
        label = FaultLabel(
            id=fault_id,
            start_ns=time.time_ns(),
            end_ns=None,
            service=fault.service,
            instance=svc.config.instance,
            type=kind,
            onset=kind.onset,
            mechanism=mechanism,
            parameters={**params, "duration_s": fault.duration},
        )
        self._active[fault_id] = _Active(label, undo)
        self.labels.started(label)
        return label

    def clear(self, fault_id: str, *, restart: bool = True) -> FaultLabel:
        """Stop a fault; its end label is written once it is undone."""
        active = self._active.pop(fault_id)
        # The fault is lifted when its undo starts: a restarted service's port is listening
        # from that moment, though the process then takes a moment to start answering.
        label = dataclasses.replace(active.label, end_ns=time.time_ns())
        if restart or active.label.type is not FaultType.DEPENDENCY_DOWN:
            active.undo()
        self.labels.ended(label)
        return label

    def _in_process(
        self, fault_id: str, fault: ScheduledFault, params: dict[str, float]
    ) -> Callable[[], None]:
        base = self.url(fault.service)
        body = {"id": fault_id, "type": fault.type.value, "params": params, "duration_s": fault.duration}
        r = self._http.post(f"{base}/_lab/fault", json=body)
        if r.status_code != 200:
            raise LabError(f"{fault.service} refused fault {fault.type.value}: {r.text}")

        def undo() -> None:
            with contextlib.suppress(httpx.HTTPError):  # the service is gone: so is its fault
                self._http.post(f"{base}/_lab/clear", json={"id": fault_id})

        return undo

    def _netem(self, service: str, params: dict[str, float]) -> tuple[Callable[[], None], str]:
        net = self._net
        assert net is not None
        delay, jitter, loss = (
            params.get("delay_ms", 300.0),
            params.get("jitter_ms", 0.0),
            params.get("loss", 0.0),
        )
        try:
            net.impair(service, delay_ms=delay, jitter_ms=jitter, loss=loss)
        except NetnsError as e:
            raise LabError(f"{service}: network_delay: {e}") from None
        mechanism = (
            f"tc netem on the service's link in its network namespace {net.namespace(service)} "
            f"({' '.join(netem_args(delay, jitter, loss))} on everything it sends): its callers wait, "
            "its own spans show it only in the calls it makes"
        )

        def undo() -> None:
            try:
                net.restore(service)
            except NetnsError as e:
                raise LabError(f"{service}: network_delay: {e}") from None

        return undo, mechanism

    def _why_not_netem(self, service: str) -> str:
        if self.network is None:
            return "the lab was not started"
        if self.network.netem and not self._isolated(service):
            return f"{service} is not in a network namespace (not a network target when the lab started)"
        return self.network.reason

    def _cpu_contention(self, svc: _Service, burners: int) -> Callable[[], None]:
        pid = self.pid(svc.config.spec.name)
        if pid is None:
            raise LabError(f"{svc.config.spec.name} is not running")
        before = os.sched_getaffinity(pid)
        cpu = {max(before)}
        os.sched_setaffinity(pid, cpu)
        mine: list[_Child] = []
        for _ in range(max(1, burners)):
            proc = subprocess.Popen(
                [sys.executable, "-m", "faultlens.lab.helpers", "burn"],
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=child_env(),
            )
            os.sched_setaffinity(proc.pid, cpu)
            mine.append(_Child("burn", proc))
        self._helpers.extend(mine)

        def undo() -> None:
            self._stop_helpers(mine)
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(pid, before)

        return undo

    def _db_lock(self, svc: _Service) -> Callable[[], None]:
        if not svc.config.spec.db:
            raise LabError(f"{svc.config.spec.name} has no database to lock")
        path = Path(svc.config.data_dir) / f"{svc.config.spec.name}.sqlite"
        proc = subprocess.Popen(
            [sys.executable, "-m", "faultlens.lab.helpers", "dblock", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            start_new_session=True,
            env=child_env(),
        )
        holder = _Child("dblock", proc)
        self._helpers.append(holder)
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "locked" once it holds the lock
        if line.strip() != b"locked":
            self._stop_helpers([holder])
            raise LabError(f"could not lock {path}")

        def undo() -> None:
            self._stop_helpers([holder])

        return undo

    def _kill(self, svc: _Service) -> Callable[[], None]:
        child = svc.child
        if child is None or child.proc.poll() is not None:
            raise LabError(f"{svc.config.spec.name} is not running")
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(child.proc.pid).cpu_times()
            self._exited_cpu_s += t.user + t.system
        child.signal_group(signal.SIGKILL)
        child.proc.wait(5.0)
        name = svc.config.spec.name

        def undo() -> None:
            if svc.config.fd is None:  # in a namespace of its own: it binds its address again
                svc.child = self._spawn_service(svc.config)
            else:
                sock = _listen(self._ports[name], self.host(name))
                try:
                    cfg = svc.config.model_copy(update={"fd": sock.fileno()})
                    svc.child = self._spawn_service(cfg)
                finally:
                    sock.close()
            svc.restarts += 1
            self._wait_ready(name)

        return undo

    def _stop_helpers(self, helpers: list[_Child]) -> None:
        for h in helpers:
            h.signal_group(signal.SIGKILL)
            h.proc.wait(5.0)
            if h.proc.stdout is not None:
                h.proc.stdout.close()
            if h in self._helpers:
                self._helpers.remove(h)

    def run_schedule(
        self,
        schedule: list[ScheduledFault],
        duration_s: float,
        stop: threading.Event,
        *,
        on_event: Callable[[str, FaultLabel], None] | None = None,
    ) -> None:
        """Run ``schedule`` (times from now) until ``duration_s`` passed or ``stop`` is set."""
        started = time.monotonic()
        events: list[tuple[float, int, ScheduledFault]] = []
        for i, f in enumerate(schedule):
            if f.at < duration_s:
                events.append((f.at, i, f))
        events.sort(key=lambda e: (e[0], e[1]))
        ends: list[tuple[float, str]] = []
        while not stop.is_set():
            now = time.monotonic() - started
            if now >= duration_s:
                break
            while events and events[0][0] <= now:
                _, _, fault = events.pop(0)
                label = self.inject(fault)
                ends.append((now + fault.duration, label.id))
                if on_event:
                    on_event("start", label)
            for end in sorted(e for e in ends if e[0] <= now):
                ends.remove(end)
                label = self.clear(end[1])
                if on_event:
                    on_event("end", label)
            nexts = [duration_s] + [e[0] for e in events[:1]] + [e[0] for e in ends]
            stop.wait(max(0.01, min(nexts) - (time.monotonic() - started)))


def _listen(port: int, host: str = LOOPBACK) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(128)
    s.set_inheritable(True)
    return s
