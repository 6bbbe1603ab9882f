"""``faultlens demo``: see an incident and its root cause in the web UI within a minute.

Starts a faultlens of its own (10 s analysis windows, data in a temporary directory unless
``--data-dir``), sends it a small shop's telemetry made by the OpenTelemetry SDK
(:mod:`faultlens.demo.shop`: three minutes of data time ending now, in which one service
slows down for the last minute, no label sent), waits until the server has opened an
incident and ranked its root causes, prints where to look, and serves until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import signal
import tempfile
import threading
import time
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
) -> None:
    """A faultlens of its own, fed a small shop with one fault: open the printed URL."""
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
        asyncio.run(_serve(server))
    except OSError as e:
        typer.echo(f"error: cannot start: {e}", err=True)
        raise typer.Exit(1) from None
    finally:
        if tmp is not None:
            tmp.cleanup()


async def _serve(server: Any) -> None:
    listeners = {listener.name: listener for listener in await server.start()}
    api = f"http://127.0.0.1:{listeners['api'].port}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    typer.echo(f"faultlens demo: the UI is at {api}/ (Ctrl-C stops it)")
    feeder = threading.Thread(
        target=_feed, args=(listeners["otlp-grpc"].port, api), name="faultlens-demo-shop", daemon=True
    )
    feeder.start()
    try:
        await stop.wait()
    finally:
        typer.echo("stopping")
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
