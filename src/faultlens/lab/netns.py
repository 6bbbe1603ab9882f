"""Network faults done to the network: services in network namespaces, ``tc netem`` on their link.

When the lab runs as root and the kernel has the netem queueing discipline, each service a
schedule may hit with ``network_delay`` runs in a network namespace of its own, and the
fault is a netem qdisc on that namespace's end of its link, as Chaos Mesh, Pumba or
comcast do it for a container::

    host (the runner, the load generator, services not isolated)        one namespace per isolated service
    ┌──────────────────────────────────────────────────┐               ┌──────────────────────────────┐
    │ bridge PREFIXbr  10.213.N.1/24 ──── veth PREFIXhI ┼───────────────┼─ veth PREFIXnI 10.213.N.(I+2) │
    │   services not isolated listen on 10.213.N.1     │               │   the service listens here   │
    │   forwarder 10.213.N.1:P ─> the OTLP endpoint    │               │   tc qdisc ... netem (fault) │
    └──────────────────────────────────────────────────┘               └──────────────────────────────┘

- **Addresses.** One /24 per run from a private pool (``10.213.0.0/16`` unless
  ``FAULTLENS_LAB_NETNS_POOL`` or the runner's option says otherwise), the first one that
  overlaps no address or route of the host, chosen under a file lock so that two labs
  starting together do not take the same one. The bridge holds ``.1``; service ``I`` of the
  run holds ``.(I+2)``. Every service, isolated or not, is reached at its address on that
  subnet (services that stay on the host listen on the bridge's address), so a caller in a
  namespace reaches any service, and the load generator on the host reaches all of them.
- **A bridge, not routes.** Namespaces talk through a bridge (layer 2) rather than through
  per-service /30 links routed by the host: routing between them would need the host's
  ``net.ipv4.ip_forward``, a machine-wide switch the lab must not flip. The namespaces
  have no default route and the bridge has no physical port: nothing leaves the machine.
- **The endpoint.** A service in a namespace cannot reach the host's ``127.0.0.1``, where
  faultlens (or the recording relay) listens; a TCP forwarder in the runner listens on the
  bridge's address and pipes each connection to the endpoint, byte for byte.
- **The fault.** ``tc qdisc replace dev PREFIXnI root netem delay Xms [Yms] [loss Z%]``
  inside the namespace: everything the service sends is delayed (its answers, and its own
  calls and telemetry too), and a share is dropped (TCP then retransmits). Lifting it is
  ``tc qdisc del``.
- **Names and cleanup.** Every namespace and link of a run starts with its prefix,
  ``flab`` + the runner's pid (6 hex digits) + a per-process counter (1 hex digit), short
  enough for a 15-character interface name. :meth:`LabNetwork.shutdown` deletes them
  (the runner calls it on a normal end, on an error and after Ctrl-C, once the services
  are stopped); :func:`remove_leftovers`, called when a lab starts, deletes those of runs
  whose runner pid is gone (a ``kill -9`` gives a runner no chance to clean up).

Whether netem is there is found out once per process (:func:`probe_netem`: a throwaway
namespace, the qdisc on its loopback); :func:`plan_network` turns the mode asked for
(:class:`NetworkFaults`), root or not, and the probe into a :class:`NetworkPlan` whose
``reason`` says, in words, why network faults are done the way they are. A fault done
in-process instead carries that reason in its label's ``mechanism``.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import functools
import ipaddress
import itertools
import json
import logging
import os
import re
import selectors
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

__all__ = [
    "DEFAULT_POOL",
    "MODE_ENV",
    "POOL_ENV",
    "STEM",
    "LabNetwork",
    "NetemSupport",
    "NetnsError",
    "NetworkFaults",
    "NetworkPlan",
    "TcpForwarder",
    "lab_names",
    "netem_args",
    "plan_network",
    "probe_netem",
    "remove_leftovers",
    "run_prefix",
]

log = logging.getLogger("faultlens.lab")

STEM = "flab"
DEFAULT_POOL = "10.213.0.0/16"
POOL_ENV = "FAULTLENS_LAB_NETNS_POOL"
MODE_ENV = "FAULTLENS_LAB_NETWORK_FAULTS"
SERVICE_PORT = 8000  # every isolated service has an address of its own, so one port does
MAX_ISOLATED = 16  # one hex digit in an interface name
_LOCK_FILE = Path("/run/lock/faultlens-lab-netns.lock")
_NAME = re.compile(rf"^{STEM}([0-9a-f]{{6}})[0-9a-f](?:h[0-9a-f]|n[0-9a-f]|br|-.+)$")
_IP_TIMEOUT_S = 10.0
_runs = itertools.count()


class NetworkFaults(enum.StrEnum):
    """How ``network_delay`` is done (``--network-faults``, or ``FAULTLENS_LAB_NETWORK_FAULTS``).

    ``auto``: netem in namespaces when root and the kernel has netem, else in-process.
    ``netns``: the targeted services in namespaces whatever netem says (an error if not
    root); the fault by netem when the kernel has it, else in-process, and the label says so.
    ``inprocess``: no namespace; the service's ASGI wrapper holds requests.
    """

    AUTO = "auto"
    NETNS = "netns"
    INPROCESS = "inprocess"


class NetnsError(RuntimeError):
    """A namespace, link, address or qdisc could not be made; the message has the command."""


@dataclass(frozen=True, slots=True)
class NetemSupport:
    available: bool
    reason: str  # why not, or how it was found out


@dataclass(frozen=True, slots=True)
class NetworkPlan:
    """What the lab does for network faults, and why (logged, and put in in-process labels)."""

    mode: NetworkFaults
    namespaces: bool  # the targeted services run in namespaces of their own
    netem: bool  # network_delay is a netem qdisc on their link
    reason: str


def _is_root() -> bool:
    return os.geteuid() == 0


def plan_network(
    mode: NetworkFaults,
    *,
    targets: int,
    is_root: Callable[[], bool] = _is_root,
    probe: Callable[[], NetemSupport] | None = None,
) -> NetworkPlan:
    """Decide how network faults are done. ``probe`` runs only when its answer matters.

    Raises :class:`NetnsError` when namespaces are asked for (``netns``) and cannot be made.
    """
    probe = probe or probe_netem
    if mode is NetworkFaults.INPROCESS:
        return NetworkPlan(mode, False, False, "in-process network faults were asked for (inprocess)")
    if targets == 0:
        return NetworkPlan(mode, False, False, "no service is a target of network_delay")
    if not is_root():
        why = "not root: network namespaces and tc need CAP_NET_ADMIN"
        if mode is NetworkFaults.NETNS:
            raise NetnsError(f"network namespaces were asked for (netns) but {why}")
        return NetworkPlan(mode, False, False, why)
    if shutil.which("ip") is None or shutil.which("tc") is None:
        why = "no ip or tc command (iproute2)"
        if mode is NetworkFaults.NETNS:
            raise NetnsError(f"network namespaces were asked for (netns) but there is {why}")
        return NetworkPlan(mode, False, False, why)
    support = probe()
    if support.available:
        return NetworkPlan(mode, True, True, support.reason)
    if mode is NetworkFaults.NETNS:
        return NetworkPlan(mode, True, False, support.reason)
    return NetworkPlan(mode, False, False, support.reason)


@functools.cache
def probe_netem() -> NetemSupport:
    """Try a netem qdisc on the loopback of a throwaway namespace, once per process."""
    name = f"{run_prefix()}-probe"
    try:
        _ip("netns", "add", name)
    except NetnsError as e:
        return NetemSupport(False, f"cannot make a network namespace: {e}")
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        done = _run(["tc", "-n", name, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])
        if done.returncode != 0:
            err = done.stderr.strip() or f"exit status {done.returncode}"
            what = "the kernel has no tc netem (sch_netem)" if "unknown" in err else "tc netem failed"
            return NetemSupport(False, f"{what}: 'tc qdisc add dev lo root netem' said: {err}")
        return NetemSupport(True, "tc netem works in a network namespace")
    except NetnsError as e:
        return NetemSupport(False, f"cannot set up the probe namespace: {e}")
    finally:
        with contextlib.suppress(NetnsError):
            _ip("netns", "del", name)


def run_prefix() -> str:
    """A prefix for the names of one run: the stem, this pid, a per-process counter."""
    return f"{STEM}{os.getpid() % 0x1000000:06x}{next(_runs) % 16:x}"


def netem_args(delay_ms: float, jitter_ms: float, loss: float) -> list[str]:
    """The netem part of a ``tc qdisc`` command; ``loss`` is a share (0.2 is 20 %)."""
    args = ["netem", "delay", f"{delay_ms:g}ms"]
    if jitter_ms > 0:
        args.append(f"{jitter_ms:g}ms")
    if loss > 0:
        args += ["loss", f"{100 * loss:g}%"]
    return args


def lab_names() -> tuple[list[str], list[str]]:
    """The namespaces and links on this machine whose names a lab run would give."""
    ns = _run(["ip", "netns", "list"])
    links = _run(["ip", "-j", "link", "show"])
    names = [line.split()[0] for line in ns.stdout.splitlines() if line.strip()]
    ifaces = [str(row.get("ifname", "")) for row in json.loads(links.stdout or "[]")]
    return [n for n in names if _NAME.match(n)], [i for i in ifaces if _NAME.match(i)]


def remove_leftovers() -> list[str]:
    """Delete the namespaces and links of lab runs whose runner is gone; the names deleted."""
    if not _is_root() or shutil.which("ip") is None:
        return []
    removed: list[str] = []
    namespaces, links = lab_names()
    for kind, names in (("link", links), ("netns", namespaces)):
        for name in names:
            m = _NAME.match(name)
            if m is None or psutil.pid_exists(int(m.group(1), 16)):
                continue
            cmd = ["link", "del", name] if kind == "link" else ["netns", "del", name]
            if _run(["ip", *cmd]).returncode == 0:
                removed.append(name)
    if removed:
        log.warning(
            "removed %d namespaces and links left by lab runs that were killed: %s",
            len(removed),
            " ".join(removed),
        )
    return removed


class LabNetwork:
    """The bridge, the namespaces and the forwarders of one run.

    :meth:`start` makes them (undoing what it made if it fails part way); :meth:`shutdown`
    deletes them and is safe to call twice and after a failed start. Call it once the
    processes in the namespaces are stopped.
    """

    def __init__(self, isolated: list[str], pool: str | None = None, *, netem: bool) -> None:
        if len(isolated) > MAX_ISOLATED:
            raise NetnsError(f"{len(isolated)} services to isolate; a lab isolates at most {MAX_ISOLATED}")
        self.prefix = run_prefix()
        self.netem = netem
        self.pool = _pool(pool)
        self.isolated = {name: i for i, name in enumerate(isolated)}
        self.subnet: ipaddress.IPv4Network | None = None
        self._links: list[str] = []  # made so far, deleted in reverse
        self._namespaces: list[str] = []
        self._forwarders: list[TcpForwarder] = []
        self._lock = threading.Lock()
        self._down = False

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    def namespace(self, service: str) -> str:
        return f"{self.prefix}-{service}"

    def _veth(self, service: str, side: str) -> str:
        return f"{self.prefix}{side}{self.isolated[service]:x}"

    @property
    def host_address(self) -> str:
        """The bridge's address: where the services that stay on the host listen."""
        assert self.subnet is not None, "start() first"
        return str(self.subnet.network_address + 1)

    def address(self, service: str) -> str:
        if service not in self.isolated:
            return self.host_address
        assert self.subnet is not None, "start() first"
        return str(self.subnet.network_address + 2 + self.isolated[service])

    def exec_prefix(self, service: str) -> list[str]:
        """The command that runs a process in the service's namespace (empty: on the host)."""
        return ["ip", "netns", "exec", self.namespace(service)] if service in self.isolated else []

    def start(self) -> None:
        try:
            with _file_lock():
                self.subnet = _free_subnet(self.pool)
                _ip("link", "add", self.bridge, "type", "bridge")
                self._links.append(self.bridge)
                _ip("addr", "add", f"{self.host_address}/{self.subnet.prefixlen}", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for service in self.isolated:
                ns, host_end, ns_end = (
                    self.namespace(service),
                    self._veth(service, "h"),
                    self._veth(service, "n"),
                )
                _ip("netns", "add", ns)
                self._namespaces.append(ns)
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end, "netns", ns)
                self._links.append(host_end)
                _ip("link", "set", host_end, "master", self.bridge, "up")
                _ip(
                    "-n", ns, "addr", "add", f"{self.address(service)}/{self.subnet.prefixlen}", "dev", ns_end
                )
                _ip("-n", ns, "link", "set", ns_end, "up")
        except BaseException:
            self.shutdown()
            raise

    def forward(self, host: str, port: int) -> int:
        """A port on the bridge's address whose connections are piped to ``host:port``."""
        fwd = TcpForwarder((self.host_address, 0), (host, port))
        fwd.start()
        self._forwarders.append(fwd)
        return fwd.port

    def impair(self, service: str, *, delay_ms: float, jitter_ms: float, loss: float) -> None:
        """Put (or replace) the netem qdisc on the service's link, inside its namespace."""
        ns, dev = self.namespace(service), self._veth(service, "n")
        _tc("-n", ns, "qdisc", "replace", "dev", dev, "root", *netem_args(delay_ms, jitter_ms, loss))

    def restore(self, service: str) -> None:
        _tc("-n", self.namespace(service), "qdisc", "del", "dev", self._veth(service, "n"), "root")

    def names(self) -> list[str]:
        """The namespaces and links this run made (and has not deleted yet)."""
        return [*self._namespaces, *self._links]

    def shutdown(self) -> None:
        """Stop the forwarders, delete every link and namespace made; bounded, idempotent."""
        with self._lock:
            if self._down:
                return
            self._down = True
        for fwd in self._forwarders:
            fwd.shutdown()
        failed: list[str] = []
        # A veth goes with either of its ends, so deleting the host ends first takes the
        # namespace ends too; the namespaces go once nothing runs in them.
        for link in reversed(self._links):
            done = _run(["ip", "link", "del", link])
            if done.returncode != 0 and "Cannot find device" not in done.stderr:
                failed.append(f"link {link}: {done.stderr.strip()}")
        for ns in reversed(self._namespaces):
            done = _run(["ip", "netns", "del", ns])
            if done.returncode != 0 and "No such file" not in done.stderr:
                failed.append(f"netns {ns}: {done.stderr.strip()}")
        self._links.clear()
        self._namespaces.clear()
        if failed:
            log.error("lab network cleanup failed: %s", "; ".join(failed))


class TcpForwarder:
    """Listens on ``listen`` and pipes each connection to ``target``, one thread per connection.

    Bytes go through unchanged (gRPC or HTTP alike); a half-close is passed on; when one
    side fails, both are closed. :meth:`shutdown` closes the listener and every connection.
    """

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.target = target
        self._server = socket.create_server(listen)
        self._server.settimeout(0.5)
        self.port: int = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="lab-netns-forward", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(conn,), name="lab-netns-pipe", daemon=True).start()

    def _pipe(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5.0)
        except OSError:
            client.close()
            return
        pair = (client, upstream)
        for s in pair:
            s.settimeout(None)
        with self._lock:
            self._open.update(pair)
        try:
            _copy_both_ways(client, upstream, self._stop)
        finally:
            with self._lock:
                self._open.difference_update(pair)
            for s in pair:
                s.close()

    def shutdown(self) -> None:
        self._stop.set()
        self._server.close()
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
        self._thread.join(2.0)


def _copy_both_ways(a: socket.socket, b: socket.socket, stop: threading.Event) -> None:
    """Copy bytes both ways until both sides have closed; an EOF is passed on as a half-close."""
    sel = selectors.DefaultSelector()
    sel.register(a, selectors.EVENT_READ, b)
    sel.register(b, selectors.EVENT_READ, a)
    try:
        while sel.get_map() and not stop.is_set():
            for key, _ in sel.select(0.5):
                src, dst = key.fileobj, key.data
                assert isinstance(src, socket.socket) and isinstance(dst, socket.socket)
                try:
                    data = src.recv(65536)
                except OSError:
                    return
                if not data:
                    sel.unregister(src)
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    continue
                try:
                    dst.sendall(data)
                except OSError:
                    return
    finally:
        sel.close()


def _pool(pool: str | None) -> ipaddress.IPv4Network:
    text = pool or os.environ.get(POOL_ENV) or DEFAULT_POOL
    try:
        net = ipaddress.IPv4Network(text)
    except ValueError as e:
        raise NetnsError(f"network pool {text!r}: {e}") from None
    if not net.is_private or net.prefixlen > 24:
        raise NetnsError(f"network pool {text}: must be a private IPv4 network of /24 or larger")
    return net


def _free_subnet(pool: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    """The first /24 of ``pool`` that overlaps no address or route of this machine."""
    used: list[ipaddress.IPv4Network] = []
    for row in json.loads(_ip("-j", "-4", "addr", "show") or "[]"):
        for a in row.get("addr_info", []):
            used.append(ipaddress.IPv4Network(f"{a['local']}/{a.get('prefixlen', 32)}", strict=False))
    for row in json.loads(_ip("-j", "-4", "route", "show", "table", "all") or "[]"):
        dst = str(row.get("dst", ""))
        if dst and dst != "default":
            with contextlib.suppress(ValueError):
                used.append(ipaddress.IPv4Network(dst, strict=False))
    for candidate in pool.subnets(new_prefix=24):
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise NetnsError(f"no free /24 left in {pool} (every one overlaps an address or route of this machine)")


@contextlib.contextmanager
def _file_lock() -> Iterator[None]:
    _LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with _LOCK_FILE.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    # A session of its own: a Ctrl-C at the terminal reaches the runner, which then cleans
    # up, and never kills an ``ip`` half way through a change.
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=_IP_TIMEOUT_S, start_new_session=True, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return subprocess.CompletedProcess(cmd, 1, "", str(e))


def _ip(*args: str) -> str:
    done = _run(["ip", *args])
    if done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip() or f'exit status {done.returncode}'}")
    return done.stdout


def _tc(*args: str) -> str:
    done = _run(["tc", *args])
    if done.returncode != 0:
        raise NetnsError(f"tc {' '.join(args)}: {done.stderr.strip() or f'exit status {done.returncode}'}")
    return done.stdout
