"""``faultlens rca``: rank root-cause candidates of a time window against a baseline.

Two ways to get the answer, the same answer either way:

- ``--server URL`` (the default, ``http://127.0.0.1:8080``): ask a running faultlens
  (``GET /api/v1/rca``);
- ``--data-dir DIR``: open the store file of a stopped faultlens read-only and run the
  same code the API runs (:func:`faultlens.api.rca_routes.analyse`). A running server
  holds the file's lock; the command then says so and points to ``--server``.

Times are those of the API (RFC 3339 with offset, or integer Unix nanoseconds), plus
``now`` and ``now-15m`` style offsets. Output is a table with the evidence (rich), or with
``--json`` the API's JSON body.

Exit codes: 0 answered, 1 the store or server could not answer, 2 bad options.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from faultlens.store.window import DEFAULT_MAX_ROWS

DEFAULT_SERVER = "http://127.0.0.1:8080"
_NOW = re.compile(r"^\s*now\s*(?:([+-])\s*(.+))?$", re.IGNORECASE)


def register(app: typer.Typer) -> None:
    """Add ``rca`` to the ``faultlens`` command."""
    app.command("rca")(rca)


def parse_cli_time(text: str, now_ns: int) -> int:
    """``now``, ``now-15m`` / ``now+30s``, an RFC 3339 timestamp with offset, or Unix nanoseconds."""
    from faultlens.api.params import parse_time
    from faultlens.api.rca_routes import parse_duration

    m = _NOW.match(text)
    if m is not None:
        if m.group(1) is None:
            return now_ns
        offset = parse_duration(m.group(2))
        return now_ns + offset if m.group(1) == "+" else max(0, now_ns - offset)
    return parse_time(text)


def _when(ns: int) -> str:
    when = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frac = ns % 1_000_000_000
    return (f"{when}.{frac:09d}".rstrip("0").rstrip(".") if frac else when) + "Z"


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _option_time(name: str, text: str | None, now_ns: int) -> int | None:
    if text is None:
        return None
    try:
        return parse_cli_time(text, now_ns)
    except ValueError as e:
        raise _fail(f"{name} {text!r}: {e}", 2) from None


def _from_server(server: str, params: dict[str, int]) -> dict[str, Any]:
    import httpx

    url = server.rstrip("/") + "/api/v1/rca"
    try:
        r = httpx.get(url, params=params, timeout=300.0)
    except httpx.HTTPError as e:
        raise _fail(f"cannot reach the faultlens server at {server}: {e}", 1) from None
    try:
        body: Any = r.json()
    except ValueError:
        body = None
    if r.status_code == 200 and isinstance(body, dict):
        return body
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # 422: FastAPI's validation body
        detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])[1:]))}: {d.get('msg')}" for d in detail)
    if r.status_code == 404 and detail == "Not Found":
        detail = f"{server} does not serve /api/v1/rca (not a faultlens server, or an older one)"
    code = 2 if r.status_code == 422 else 1
    raise _fail(f"the server answered {r.status_code}: {detail or r.text[:500]}", code)


def _counts(c: Any) -> str:
    return f"{c.spans:,} spans, {c.logs:,} logs, {c.metric_points:,} metric points"


def _print_table(body: Any, console: Console) -> None:
    console.print(
        f"[bold]window[/]   {_when(body.window.start_unix_nano)} .. {_when(body.window.end_unix_nano)}"
        f"  ({_counts(body.observed)})",
        highlight=False,
    )
    console.print(
        f"[bold]baseline[/] {_when(body.baseline.start_unix_nano)} .. {_when(body.baseline.end_unix_nano)}"
        f"  ({_counts(body.baseline_observed)})",
        highlight=False,
    )
    if not body.candidates:
        console.print("No service changed beyond its baseline in this window.")
    else:
        table = Table(title="Root-cause candidates, most likely first", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("service", style="bold")
        table.add_column("operation")
        table.add_column("pod")
        table.add_column("reason")
        table.add_column("score", justify="right")
        for c in body.candidates:
            table.add_row(
                str(c.rank), c.service, c.operation or "-", c.pod or "-", c.reason, f"{c.score:.2f}"
            )
        console.print(table)
        console.print("[bold]Evidence[/]")
        for c in body.candidates:
            console.print(f"  [bold]{c.rank}. {c.service}[/]", highlight=False)
            for line in c.evidence:
                console.print(f"     - {line}", highlight=False)
    if body.chains:
        console.print("[bold]Propagation[/] (anomalous calls, from the entry service down)")
        for chain in body.chains:
            console.print("  " + " -> ".join(chain.services), highlight=False)
            for e in chain.edges:
                console.print(f"      {e.caller} -> {e.callee}: {'; '.join(e.evidence)}", highlight=False)
    console.print(f"[dim]ranked in {body.duration_ms:.0f} ms[/]")


def rca(
    start: Annotated[str, typer.Option(help="Window start: RFC 3339 with offset, Unix ns, or now-15m.")],
    end: Annotated[str, typer.Option(help="Window end (exclusive), same forms.")],
    baseline_start: Annotated[
        str | None, typer.Option(help="Baseline start (default: baseline end minus 10 minutes).")
    ] = None,
    baseline_end: Annotated[
        str | None, typer.Option(help="Baseline end (default: the window start); not after it.")
    ] = None,
    server: Annotated[
        str | None, typer.Option(help=f"A running faultlens's query API (default {DEFAULT_SERVER}).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Read this data directory directly (the server using it must be stopped)."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the API's JSON body.")] = False,
    max_rows: Annotated[
        int, typer.Option(min=1, help="With --data-dir: refuse windows with more rows of one signal.")
    ] = DEFAULT_MAX_ROWS,
) -> None:
    """Rank the root-cause candidates of what changed in a window compared with a baseline."""
    from faultlens.api.rca_routes import RangeProblem, RcaResponse, RcaSettings, analyse, resolve_ranges
    from faultlens.errors import StoreError
    from faultlens.store.window import open_read_only

    if server is not None and data_dir is not None:
        raise _fail("give --server or --data-dir, not both", 2)
    now_ns = time.time_ns()
    times = {
        "start": _option_time("--start", start, now_ns),
        "end": _option_time("--end", end, now_ns),
        "baseline_start": _option_time("--baseline-start", baseline_start, now_ns),
        "baseline_end": _option_time("--baseline-end", baseline_end, now_ns),
    }
    given = {k: v for k, v in times.items() if v is not None}
    if data_dir is None:
        body = RcaResponse.model_validate(_from_server(server or DEFAULT_SERVER, given))
    else:
        settings = RcaSettings()
        try:
            window, baseline = resolve_ranges(
                given["start"], given["end"], given.get("baseline_start"), given.get("baseline_end"),
                settings.baseline_ns,
            )  # fmt: skip
        except RangeProblem as e:
            raise _fail(f"--{e.param.replace('_', '-')}: {e}", 2) from None
        try:
            with open_read_only(data_dir, max_rows=max_rows) as reader:
                body = analyse(reader, window, baseline, settings.rca)
        except StoreError as e:
            raise _fail(str(e), 1) from None
    if json_output:
        typer.echo(json.dumps(body.model_dump(mode="json"), indent=2))
    else:
        _print_table(body, Console())
