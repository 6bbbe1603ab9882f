"""``faultlens rca``: rank root-cause candidates of a time window against a baseline.

Two ways to get the answer, the same answer either way:

- ``--server URL`` (the default, ``http://127.0.0.1:8080``): ask a running faultlens
  (``GET /api/v1/rca``);
- ``--data-dir DIR``: open the store file of a stopped faultlens read-only and run the
  same code the API runs (:class:`faultlens.rca.incident.RootCauseRanker`, shaped by
  :func:`faultlens.rca.report.run_report`). A running server holds the file's lock; the
  command then says so and points to ``--server``. Without a server's incidents at hand,
  the baseline picked there is simply the latest history before the window.

Times are in the one syntax of faultlens (:mod:`faultlens.timeparse`: RFC 3339, ``now-15m``,
Unix time with its unit, integer nanoseconds). Output is a table with the evidence (rich), or with
``--json`` the API's JSON body. Too little data, or nothing significant, is an answer too:
the status and its reason are printed, and the exit code is 0.

Exit codes: 0 answered, 1 the store or server could not answer, 2 bad options.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from faultlens.store.window import DEFAULT_MAX_ROWS
from faultlens.timeparse import parse_time

DEFAULT_SERVER = "http://127.0.0.1:8080"


def register(app: typer.Typer) -> None:
    """Add ``rca`` to the ``faultlens`` command."""
    app.command("rca")(rca)


def parse_cli_time(text: str, now_ns: int) -> int:
    """A time in the one syntax of faultlens (:mod:`faultlens.timeparse`), ``now`` being ``now_ns``."""
    return parse_time(text, now_ns=now_ns)


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


def _counts(c: dict[str, Any]) -> str:
    read = "" if c.get("time_read", 1.0) >= 1 else f", {c['time_read']:.1%} of its time read"
    return f"{c['spans']:,} spans, {c['logs']:,} logs, {c['metric_points']:,} metric points{read}"


def _print_table(body: dict[str, Any], console: Console) -> None:
    w = body["window"]
    console.print(
        f"[bold]window[/]   {w['start']} .. {w['end']}  ({_counts(body['observed'])})", highlight=False
    )
    for b in body["baseline_ranges"]:
        console.print(f"[bold]baseline[/] {b['start']} .. {b['end']}", highlight=False)
    if body["baseline_ranges"]:
        console.print(f"          ({_counts(body['baseline_observed'])})", highlight=False)
    console.print(f"[bold]status[/]   {body['rca_status']}: {body['rca_reason']}", highlight=False)
    causes = body["root_causes"]
    if causes:
        table = Table(title="Root causes, most likely first", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("service", style="bold")
        table.add_column("operation")
        table.add_column("pod")
        table.add_column("reason")
        table.add_column("score", justify="right")
        table.add_column("confidence", justify="right")
        for c in causes:
            table.add_row(
                str(c["rank"]),
                c["service"],
                c["operation"] or "-",
                c["pod"] or "-",
                c["reason"],
                f"{c['score']:.2f}",
                f"{c['confidence']:.0%}",
            )
        console.print(table)
        console.print("[bold]Evidence[/]")
        for c in causes:
            console.print(f"  [bold]{c['rank']}. {c['service']}[/]", highlight=False)
            for e in c["evidence"]:
                when = f" [dim](from {e['first_seen']})[/]" if e.get("first_seen") else ""
                console.print(f"     - {e['text']}{when}", highlight=False)
            if c["sample_trace_ids"]:
                console.print(f"     traces: {', '.join(c['sample_trace_ids'])}", highlight=False)
    if body["chains"]:
        console.print("[bold]Propagation[/] (anomalous calls, from the entry service down)")
        for chain in body["chains"]:
            console.print("  " + " -> ".join(chain["services"]), highlight=False)
            for e in chain["edges"]:
                console.print(
                    f"      {e['caller']} -> {e['callee']}: {'; '.join(e['evidence'])}", highlight=False
                )
    console.print(f"[dim]ranked in {body['duration_ms']:.0f} ms[/]")


def rca(
    start: Annotated[str, typer.Option(help="Window start: RFC 3339 with offset, Unix ns, or now-15m.")],
    end: Annotated[str, typer.Option(help="Window end (exclusive), same forms.")],
    baseline_start: Annotated[
        str | None, typer.Option(help="Baseline start (default: picked from history before the window).")
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
        int, typer.Option(min=1, help="With --data-dir: rows of one signal read at once (more: slices).")
    ] = DEFAULT_MAX_ROWS,
) -> None:
    """Rank the root causes of what changed in a window compared with a baseline."""
    from faultlens.errors import StoreError, UnsupportedQuery
    from faultlens.rca.incident import RankerSettings, RootCauseRanker
    from faultlens.rca.report import run_report
    from faultlens.store.window import open_read_only
    from faultlens.types import TimeRange

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
        body = _from_server(server or DEFAULT_SERVER, given)
    else:
        settings = RankerSettings()
        w_start, w_end = given["start"], given["end"]
        if w_end <= w_start:
            raise _fail("--end: end must be after start", 2)
        baseline: list[TimeRange] | None = None
        if "baseline_start" in given or "baseline_end" in given:
            b_end = given.get("baseline_end", w_start)
            b_start = given.get("baseline_start", max(0, b_end - settings.baseline_ns))
            if b_end <= b_start:
                raise _fail("--baseline-end: baseline_end must be after baseline_start", 2)
            if b_end > w_start:
                raise _fail("--baseline-end: the baseline must end at or before the window's start", 2)
            baseline = [TimeRange(b_start, b_end)]
        try:
            with open_read_only(data_dir, max_rows=max_rows) as reader:
                run = RootCauseRanker(reader, None, settings).rank_window(TimeRange(w_start, w_end), baseline)
        except (StoreError, UnsupportedQuery) as e:
            raise _fail(str(e), 1) from None
        body = run_report(run)
    if json_output:
        typer.echo(json.dumps(body, indent=2))
    else:
        _print_table(body, Console())
