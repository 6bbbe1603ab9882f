"""``faultlens serve``: run the server until SIGINT or SIGTERM, then shut down cleanly.

Before anything starts, each listener bound beyond loopback without authentication is
warned about, loudly: a ``WARNING`` line on stderr and a log record
(:func:`faultlens.config.exposure.exposure_warnings`); with
``api.require_auth_beyond_loopback`` an exposed, unauthenticated API is refused instead,
with one line and exit status 2, as any other config error.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from faultlens.cli.main import app
from faultlens.config import Config, load_config
from faultlens.config.exposure import check_api_exposure, exposure_warnings
from faultlens.errors import ConfigError

log = logging.getLogger("faultlens.serve")


def _overrides(
    data_dir: Path | None,
    grpc_port: int | None,
    http_port: int | None,
    api_port: int | None,
    log_level: str | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if data_dir is not None:
        out.setdefault("store", {})["data_dir"] = str(data_dir)
    if grpc_port is not None:
        out.setdefault("receivers", {}).setdefault("grpc", {})["port"] = grpc_port
    if http_port is not None:
        out.setdefault("receivers", {}).setdefault("http", {})["port"] = http_port
    if api_port is not None:
        out.setdefault("api", {})["port"] = api_port
    if log_level is not None:
        out["log_level"] = log_level
    return out


async def _run(config: Config) -> None:
    from faultlens.arrowpool import use_server_pool
    from faultlens.glibcmalloc import tune_glibc_malloc
    from faultlens.server import FaultlensServer

    tune_glibc_malloc()
    use_server_pool()
    server = FaultlensServer(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        listeners = await server.start()
        for listener in listeners:
            # Tests and benchmarks read these lines to learn the chosen ports.
            print(f"{listener.name} listening on {listener.host}:{listener.port}", flush=True)
        print(f"data in {config.store.data_dir.resolve()}", flush=True)
        await stop.wait()
        print("shutting down: flushing accepted data", flush=True)
    finally:
        await server.shutdown()


@app.command()
def serve(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where the DuckDB file lives.")] = None,
    otlp_grpc_port: Annotated[int | None, typer.Option(help="OTLP/gRPC port (0: any free port).")] = None,
    otlp_http_port: Annotated[int | None, typer.Option(help="OTLP/HTTP port (0: any free port).")] = None,
    api_port: Annotated[int | None, typer.Option(help="Query API port (0: any free port).")] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error.")] = None,
) -> None:
    """Receive OTLP, store it, and answer queries, until Ctrl-C or SIGTERM."""
    try:
        cfg = load_config(config, _overrides(data_dir, otlp_grpc_port, otlp_http_port, api_port, log_level))
        check_api_exposure(cfg)
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(
        level=cfg.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request at INFO; the exporters and webhook make many.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for warning in exposure_warnings(cfg):
        typer.echo(f"WARNING: {warning}", err=True)
        log.warning("%s", warning)
    try:
        asyncio.run(_run(cfg))
    except ConfigError as e:  # found while starting (an unreadable TLS file, ...)
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except OSError as e:
        typer.echo(f"error: cannot start: {e}", err=True)
        raise typer.Exit(1) from None
