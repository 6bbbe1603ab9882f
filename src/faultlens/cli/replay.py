"""``faultlens replay``: send a recorded dataset to an OTLP endpoint as live telemetry.

Registered by the main command through :func:`register`, so that importing the CLI does not
import the dataset readers until they are needed.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from faultlens.datasets import NezhaDataset, OtlpSender, ReplayOptions, ReplaySummary, make_sender
from faultlens.datasets.nezha.replay import replay_nezha
from faultlens.types import Signal, TimeRange, Transport

replay_app = typer.Typer(help="Replay recorded datasets as OTLP.", no_args_is_help=True)

DEFAULT_ENDPOINTS = {Transport.GRPC: "http://127.0.0.1:4317", Transport.HTTP: "http://127.0.0.1:4318"}


def register(app: typer.Typer) -> None:
    """Add ``replay`` to the ``faultlens`` command."""
    app.add_typer(replay_app, name="replay")


def parse_time(text: str) -> int:
    """A point in time as Unix ns: ISO 8601 (UTC when no zone is given), a date, or Unix seconds."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return int(seconds * 1_000_000_000)
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"not a time: {text!r} (use e.g. 2023-01-29T08:40:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def _parse_headers(values: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"header must be KEY=VALUE, got {item!r}")
        headers[key.strip()] = value.strip()
    return headers


@replay_app.command("nezha")
def nezha(
    directory: Annotated[
        Path, typer.Argument(help="Directory in the Nezha layout (rca_data/, construct_data/).")
    ],
    endpoint: Annotated[
        str | None, typer.Option(help="OTLP endpoint; default 127.0.0.1:4317 (gRPC) or :4318 (HTTP).")
    ] = None,
    start: Annotated[str | None, typer.Option("--from", help="Replay from this time (UTC).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Replay up to this time (UTC), exclusive.")] = None,
    speed: Annotated[
        float | None, typer.Option(help="Replay N times faster than real time (default 1).")
    ] = None,
    max_speed: Annotated[
        bool, typer.Option("--max-speed", help="Send as fast as the endpoint accepts.")
    ] = False,
    shift_to_now: Annotated[
        bool, typer.Option("--shift-to-now", help="Shift all timestamps so the first item is at now.")
    ] = False,
    protocol: Annotated[Transport, typer.Option(help="OTLP transport.")] = Transport.GRPC,
    header: Annotated[
        list[str] | None, typer.Option(help="Extra request header KEY=VALUE (repeatable).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Items per request, about.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Replay a Nezha-layout directory (spans, logs, pod metrics) to an OTLP endpoint."""
    if max_speed and speed is not None:
        raise typer.BadParameter("use either --speed or --max-speed")
    if not directory.is_dir():
        raise typer.BadParameter(f"not a directory: {directory}")
    options = ReplayOptions(
        speed=None if max_speed else (speed if speed is not None else 1.0),
        shift_to_now=shift_to_now,
        batch_size=batch_size,
    )
    dataset = NezhaDataset(directory)
    time_range = _time_range(dataset, start, end)
    sender = make_sender(
        endpoint or DEFAULT_ENDPOINTS[protocol], protocol, headers=_parse_headers(header or [])
    )
    console = Console(stderr=True)
    try:
        summary = _run_with_progress(dataset, sender, time_range, options, console, quiet=as_json)
    finally:
        sender.close()
    if as_json:
        typer.echo(json.dumps({"replay": summary.as_dict(), "read": dataset.report.as_dict()}, indent=2))
    else:
        _print_summary(Console(), summary, dataset)
    if summary.aborted:
        raise typer.Exit(1)


def _time_range(dataset: NezhaDataset, start: str | None, end: str | None) -> TimeRange | None:
    if start is None and end is None:
        return None
    lo = parse_time(start) if start is not None else None
    hi = parse_time(end) if end is not None else None
    if lo is None or hi is None:
        bounds = dataset.time_bounds()
        if bounds is None:
            raise typer.BadParameter(f"no data in {dataset.root}")
        lo = bounds.start_ns if lo is None else lo
        hi = bounds.end_ns if hi is None else hi
    if hi <= lo:
        raise typer.BadParameter("--to must be after --from")
    return TimeRange(lo, hi)


def _run_with_progress(
    dataset: NezhaDataset,
    sender: OtlpSender,
    time_range: TimeRange | None,
    options: ReplayOptions,
    console: Console,
    *,
    quiet: bool,
) -> ReplaySummary:
    bounds = time_range or dataset.time_bounds()
    total = bounds.duration_ns / 1e9 if bounds is not None else None
    progress = Progress(
        TextColumn("[bold]replay[/]"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}% of data time"),
        TextColumn("{task.fields[sent]} items"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
        transient=False,
    )
    task = progress.add_task("replay", total=total, sent=0)
    last_update = 0.0

    def on_progress(t_ns: int, summary: ReplaySummary) -> None:
        nonlocal last_update
        now = time.monotonic()
        if now - last_update < 0.1:
            return
        last_update = now
        done = (t_ns - bounds.start_ns) / 1e9 if bounds is not None else 0.0
        progress.update(task, completed=max(0.0, done), sent=summary.items)

    with progress:
        summary = replay_nezha(
            dataset,
            sender,
            time_range=time_range,
            options=options,
            on_progress=on_progress,
        )
        progress.update(task, completed=total, sent=summary.items)
    return summary


def _print_summary(console: Console, summary: ReplaySummary, dataset: NezhaDataset) -> None:
    table = Table(title="replay")
    for col in ("signal", "items", "accepted", "rejected", "not delivered", "requests", "retries"):
        table.add_column(col, justify="left" if col == "signal" else "right")
    for signal in Signal:
        c = summary.counts[signal]
        table.add_row(
            f"{signal.value} ({signal.item_name})",
            *(str(v) for v in (c.items, c.accepted, c.rejected, c.failed, c.requests, c.retries)),
        )
    console.print(table)
    rate = f"{summary.items / summary.elapsed_s:,.0f} items/s" if summary.elapsed_s > 0 else "-"
    console.print(f"elapsed {summary.elapsed_s:.1f} s, {rate}")
    if summary.time_offset_ns:
        console.print(f"timestamps shifted by {summary.time_offset_ns / 1e9:+.0f} s")
    for line in dataset.report.lines():
        console.print(line, highlight=False)
    for error in summary.errors:
        console.print(f"[red]error:[/] {error}", highlight=False)
    if summary.aborted:
        console.print(f"[red]aborted:[/] {summary.aborted}", highlight=False)
