"""``faultlens replay``: send a recorded dataset to an OTLP endpoint as live telemetry.

Registered by the main command through :func:`register`, so that importing the CLI does not
import the dataset readers until they are needed.

What a newcomer trips over, and what the command does about it:

- data older than a server keeps (``store.retention``, 7 days by default) is stored and then
  deleted at the next retention check, and a live server's analysis, whose clock is its
  newest data, ignores it: without ``--shift-to-now`` such a replay is refused with the hint,
  unless ``--keep-times`` says it is meant (e.g. into a server with a long retention);
- progress, with the time left, is shown on a terminal and printed as a line every
  ``PLAIN_PROGRESS_EVERY_S`` when the output is not one (CI logs, pipes);
- Ctrl-C stops the replay and still prints what was sent;
- a directory with no data is an error.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from faultlens.datasets import NezhaDataset, OtlpSender, ReplayOptions, ReplaySummary, make_sender
from faultlens.datasets.nezha.replay import replay_nezha
from faultlens.timeparse import parse_time as parse_timestamp
from faultlens.types import Signal, TimeRange, Transport

replay_app = typer.Typer(help="Replay recorded datasets as OTLP.", no_args_is_help=True)

DEFAULT_ENDPOINTS = {Transport.GRPC: "http://127.0.0.1:4317", Transport.HTTP: "http://127.0.0.1:4318"}
PLAIN_PROGRESS_EVERY_S = 5.0
# Data that ended longer ago than this is refused without --shift-to-now or --keep-times: the
# default store.retention, after which a server deletes what it stored.
STALE_AFTER_S = 7 * 86400.0


def register(app: typer.Typer) -> None:
    """Add ``replay`` to the ``faultlens`` command."""
    app.add_typer(replay_app, name="replay")


def parse_time(text: str) -> int:
    """A point in time as Unix ns, in the one syntax of faultlens (:mod:`faultlens.timeparse`)."""
    try:
        return parse_timestamp(text)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


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
    keep_times: Annotated[
        bool,
        typer.Option(
            "--keep-times", help="Send data older than a server keeps with its own times all the same."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Replay a Nezha-layout directory (spans, logs, pod metrics) to an OTLP endpoint."""
    if max_speed and speed is not None:
        raise typer.BadParameter("use either --speed or --max-speed")
    if shift_to_now and keep_times:
        raise typer.BadParameter("use either --shift-to-now or --keep-times")
    if not directory.is_dir():
        raise typer.BadParameter(f"not a directory: {directory}")
    options = ReplayOptions(
        speed=None if max_speed else (speed if speed is not None else 1.0),
        shift_to_now=shift_to_now,
        batch_size=batch_size,
    )
    dataset = NezhaDataset(directory)
    bounds = dataset.time_bounds()
    if bounds is None:
        raise typer.BadParameter(
            f"no data in {directory} (a Nezha layout has rca_data/ and construct_data/ with "
            "dated folders of traces, logs and metrics)"
        )
    time_range = _time_range(dataset, start, end)
    last_ns = (time_range or bounds).end_ns
    age_s = time.time() - last_ns / 1e9
    if age_s > STALE_AFTER_S and not (shift_to_now or keep_times):
        raise typer.BadParameter(
            f"the data ends {age_s / 86400:.0f} days ago, longer than a server keeps data by default "
            "(store.retention 7d): it would be deleted at the next retention check, and a live "
            "server's analysis would not look at it. Add --shift-to-now to move it to now, or "
            "--keep-times if the server keeps it (e.g. FAULTLENS_STORE__RETENTION=3650d)."
        )
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


@replay_app.command("lab")
def lab(
    directory: Annotated[Path, typer.Argument(help="A run recorded by faultlens lab run --record.")],
    endpoint: Annotated[
        str | None, typer.Option(help="OTLP endpoint; default 127.0.0.1:4317 (gRPC) or :4318 (HTTP).")
    ] = None,
    speed: Annotated[
        float | None, typer.Option(help="Replay N times faster than recorded (default: --max-speed).")
    ] = None,
    shift_to_now: Annotated[
        bool, typer.Option("--shift-to-now", help="Shift all timestamps so the first request is at now.")
    ] = False,
    protocol: Annotated[Transport, typer.Option(help="OTLP transport.")] = Transport.GRPC,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Replay a recorded lab run (faultlens.lab.replay): its OTLP requests, in their order."""
    from faultlens.lab.recording import ReadReport, read_manifest
    from faultlens.lab.replay import replay_lab

    try:
        manifest = read_manifest(directory)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    options = ReplayOptions(speed=speed, shift_to_now=shift_to_now)
    sender = make_sender(endpoint or DEFAULT_ENDPOINTS[protocol], protocol)
    report = ReadReport()
    try:
        summary = replay_lab(directory, sender, options, report=report)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    finally:
        sender.close()
    read = {"topology": manifest.topology, "requests": report.requests, "torn_tail": report.torn_tail}
    if as_json:
        typer.echo(json.dumps({"replay": summary.as_dict(), "read": read}, indent=2))
    else:
        for signal in Signal:
            c = summary.counts[signal]
            typer.echo(f"{signal.value}: {c.items} sent, {c.accepted} accepted, {c.failed} not delivered")
        if report.torn_tail:
            typer.echo("the recording ends in a torn line (the run was killed): replayed up to it")
        for error in summary.errors:
            typer.echo(f"error: {error}", err=True)
    if summary.aborted:
        typer.echo(f"aborted: {summary.aborted}", err=True)
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
    plain = not quiet and not console.is_terminal
    progress = Progress(
        TextColumn("[bold]replay[/]"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}% of data time"),
        TextColumn("{task.fields[sent]} items"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or plain,
        transient=False,
    )
    task = progress.add_task("replay", total=total, sent=0)
    started = time.monotonic()
    last_update = last_line = 0.0
    latest: list[ReplaySummary] = []

    def on_progress(t_ns: int, summary: ReplaySummary) -> None:
        nonlocal last_update, last_line
        latest[:] = [summary]
        now = time.monotonic()
        if now - last_update < 0.1:
            return
        last_update = now
        done = (t_ns - bounds.start_ns) / 1e9 if bounds is not None else 0.0
        progress.update(task, completed=max(0.0, done), sent=summary.items)
        if plain and now - last_line >= PLAIN_PROGRESS_EVERY_S:
            last_line = now
            console.print(_plain_progress(done, total, summary.items, now - started), highlight=False)

    with progress:
        try:
            summary = replay_nezha(
                dataset,
                sender,
                time_range=time_range,
                options=options,
                on_progress=on_progress,
            )
        except KeyboardInterrupt:
            if not latest:
                raise
            summary = latest[0]
            summary.aborted = summary.aborted or "interrupted (Ctrl-C): what was sent until then"
            summary.elapsed_s = summary.elapsed_s or time.monotonic() - started
        progress.update(task, completed=total, sent=summary.items)
    return summary


def _plain_progress(done_s: float, total_s: float | None, items: int, elapsed_s: float) -> str:
    """One line of progress for output that is not a terminal, with the time left."""
    if not total_s:
        return f"replay: {items:,} items sent, {elapsed_s:.0f} s elapsed"
    share = min(1.0, max(0.0, done_s / total_s))
    left = f", about {elapsed_s * (1 - share) / share:.0f} s left" if share > 0 else ""
    return f"replay: {share:.0%} of data time, {items:,} items sent, {elapsed_s:.0f} s elapsed{left}"


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
