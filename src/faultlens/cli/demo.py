"""``faultlens demo``: see an incident and its root cause in the web UI within a minute.

Starts a faultlens of its own (10 s analysis windows, data in a temporary directory unless
``--data-dir``), sends it a small shop's telemetry made by the OpenTelemetry SDK
(:mod:`faultlens.demo.shop`: three minutes of data time ending now, in which one service
slows down for the last minute, no label sent), waits until the server has opened an
incident and ranked its root causes, prints where to look, and serves until Ctrl-C.

``--live`` feeds it a lab instead (:mod:`faultlens.lab`: real services, one process each,
under load, with a real fault every ``--fault-every``, round-robin types): live traces, the
map, and an incident with its root causes a little after each fault. Each fault is printed
as it starts and stops (the labels, for the person watching; the server is never told).
Ctrl-C stops the lab (no process left) and the server.
"""

from __future__ import annotations

import asyncio
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from faultlens.config.load import load_config

__all__ = ["register"]

WINDOWS = 18  # the shop's windows of 10 s (faultlens.demo.shop: NORMAL + FAULT)


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the ``faultlens`` command."""
    app.command("demo")(demo)


def demo(
    api_port: Annotated[
        int, typer.Option("--api-port", min=0, max=65535, help="Port of the UI and API.")
    ] = 8080,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Keep the data here (default: a temporary directory)."),
    ] = None,
    live: Annotated[
        bool, typer.Option("--live", help="Feed it a running lab with a fault every few minutes.")
    ] = False,
    topology: Annotated[
        str, typer.Option("--topology", help="With --live: the lab's topology (faultlens lab topologies).")
    ] = "shop",
    fault_every: Annotated[
        str, typer.Option("--fault-every", help="With --live: time between faults (e.g. 3m; at least 10s).")
    ] = "3m",
) -> None:
    """A faultlens of its own, fed a small shop with one fault: open the printed URL."""
    lab = _lab_plan(topology, fault_every) if live else None
    from faultlens.server import FaultlensServer

    tmp = None if data_dir is not None else tempfile.TemporaryDirectory(prefix="faultlens-demo-")
    directory = data_dir if data_dir is not None else Path(tmp.name)  # type: ignore[union-attr]
    overrides: dict[str, Any] = {
        "store": {"data_dir": str(directory), "flush_interval": 0.5},
        "receivers": {"grpc": {"port": 0}, "http": {"port": 0}},
        "api": {"port": api_port},
        "analysis": {"window": 10.0},
    }
    config = load_config(overrides=overrides, environ={})
    server = FaultlensServer(config)
    try:
        asyncio.run(_serve(server, lab))
    except OSError as e:
        typer.echo(f"error: cannot start: {e}", err=True)
        raise typer.Exit(1) from None
    finally:
        if tmp is not None:
            tmp.cleanup()


async def _serve(server: Any, lab: _LabPlan | None = None) -> None:
    listeners = {listener.name: listener for listener in await server.start()}
    api = f"http://127.0.0.1:{listeners['api'].port}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    typer.echo(f"faultlens demo: the UI is at {api}/ (Ctrl-C stops it)")
    lab_stop = threading.Event()
    if lab is None:
        feeder = threading.Thread(
            target=_feed, args=(listeners["otlp-grpc"].port, api), name="faultlens-demo-shop", daemon=True
        )
    else:
        feeder = threading.Thread(
            target=_run_lab,
            args=(lab, listeners["otlp-grpc"].port, api, lab_stop, stop, loop),
            name="faultlens-demo-lab",
        )
    feeder.start()
    try:
        await stop.wait()
    finally:
        typer.echo("stopping")
        lab_stop.set()
        if lab is not None:
            await asyncio.to_thread(feeder.join, 60)  # the lab lifts its faults and ends its processes
        await server.shutdown()


def _feed(grpc_port: int, api: str) -> None:
    """Send the shop's telemetry, then say where the incident is once it is ranked."""
    from faultlens.demo.shop import Shop, W

    t0 = (time.time_ns() // W - WINDOWS) * W  # ends now
    shop = Shop(grpc_port, t0=t0)
    try:
        sent = shop.run(extras=False)
    finally:
        shop.shutdown()
    typer.echo(
        f"sent {sent.spans:,} spans and {sent.logs:,} log records of a shop "
        "(front, orders, inventory, payment)"
    )
    typer.echo(f"  traces:    {api}/traces")
    typer.echo(f"  map:       {api}/map")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            incidents = httpx.get(f"{api}/api/v1/incidents", timeout=10).json()["incidents"]
        except (httpx.HTTPError, ValueError, KeyError):
            incidents = []
        ranked = [i for i in incidents if i.get("rca_status") not in (None, "pending")]
        if ranked:
            incident = ranked[-1]
            causes = incident.get("root_causes") or []
            top = f"; top root cause: {causes[0]['service']} ({causes[0]['reason']})" if causes else ""
            typer.echo(f"  incident:  {api}/incidents/{incident['id']}  {incident['title']}{top}")
            return
        time.sleep(1)
    typer.echo(f"  no incident ranked within 2 minutes; see {api}/incidents")


LIVE_HOURS = 24  # how long a live demo's fault schedule reaches; Ctrl-C ends it sooner


@dataclass(frozen=True, slots=True)
class _LabPlan:
    topology: Any  # faultlens.lab.topology.Topology
    schedule: list[Any]  # faultlens.lab.faults.ScheduledFault


def _lab_plan(topology: str, fault_every: str) -> _LabPlan:
    """The lab of ``demo --live``, checked before the server starts (bad options exit 2)."""
    from faultlens.lab.faults import ScheduleError, builtin_schedule
    from faultlens.lab.topology import TopologyError, load_topology

    try:
        topo = load_topology(topology)
    except TopologyError as e:
        raise typer.BadParameter(str(e), param_hint="--topology") from None
    names = [s.name for s in topo.services]
    try:
        schedule = builtin_schedule(
            f"builtin:{fault_every}",
            names,
            with_db=[s.name for s in topo.services if s.db],
            with_callers=[n for n in names if topo.callers(n)],
            duration_s=LIVE_HOURS * 3600.0,
        )
    except (ScheduleError, ValueError) as e:
        raise typer.BadParameter(str(e), param_hint="--fault-every") from None
    return _LabPlan(topo, schedule)


def _run_lab(
    plan: _LabPlan,
    grpc_port: int,
    api: str,
    lab_stop: threading.Event,
    server_stop: asyncio.Event,
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Run the lab against the server until ``lab_stop``; a lab that fails stops the demo."""
    from faultlens.lab.faults import FaultLabel
    from faultlens.lab.runner import LabError, LabOptions, LabRunner
    from faultlens.types import Transport

    with tempfile.TemporaryDirectory(prefix="faultlens-demo-lab-") as work:
        options = LabOptions(endpoint=f"127.0.0.1:{grpc_port}", protocol=Transport.GRPC)
        runner = LabRunner(plan.topology, Path(work), options, labels=Path(work) / "labels.jsonl")
        try:
            typer.echo(f"starting the lab ({plan.topology.name}: {len(plan.topology.services)} services)")
            runner.start()
            typer.echo(f"  traces:    {api}/traces")
            typer.echo(f"  map:       {api}/map")
            typer.echo(f"  incidents: {api}/incidents")

            def on_event(event: str, label: FaultLabel) -> None:
                typer.echo(f"fault {event}: {label.type.value} on {label.service}")

            runner.run_schedule(plan.schedule, LIVE_HOURS * 3600.0, lab_stop, on_event=on_event)
        except LabError as e:
            typer.echo(f"error: the lab failed: {e}", err=True)
        finally:
            runner.shutdown()
            loop.call_soon_threadsafe(server_stop.set)
