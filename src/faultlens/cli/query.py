"""``faultlens incidents``, ``faultlens errors`` and ``faultlens traces``: a running server's
answers in a terminal.

Each reads the query API of a running faultlens (``--server``, default
``http://127.0.0.1:8080``; ``--token`` or ``FAULTLENS_TOKEN`` when the API wants a bearer
token) and prints a table, or with ``--json`` the API's JSON body as it came, for scripts.
Times are shown as RFC 3339 in UTC, durations in milliseconds.

::

    faultlens incidents [--status open|resolved] [--limit N]      list, latest opened first
    faultlens incidents show ID                                    one incident, its root causes
    faultlens errors [--service S] [--category C] [--limit N]      error groups, latest first
    faultlens traces [--service S] [--operation O] [--errors] [--min-duration-ms X]
                     [--max-duration-ms X] [--attr KEY=VALUE ...] [--limit N]
    faultlens traces show TRACE_ID                                 one trace as an indented tree

Exit codes: 0 answered, 1 the server could not answer (down, 4xx/5xx: its message is
printed), 2 bad options.
"""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["register"]

DEFAULT_SERVER = "http://127.0.0.1:8080"

ServerOpt = Annotated[str, typer.Option("--server", help="The faultlens API to ask.")]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="FAULTLENS_TOKEN", help="Bearer token, when the API asks for one."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the API's JSON body as it came.")]
LimitOpt = Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many rows.")]


def register(app: typer.Typer) -> None:
    """Add ``incidents``, ``errors`` and ``traces`` to the ``faultlens`` command."""
    incidents = typer.Typer(help="Incidents of a running faultlens.", invoke_without_command=True)
    incidents.callback(invoke_without_command=True)(incidents_list)
    incidents.command("show")(incident_show)
    app.add_typer(incidents, name="incidents")
    app.command("errors")(errors_list)
    traces = typer.Typer(help="Traces of a running faultlens.", invoke_without_command=True)
    traces.callback(invoke_without_command=True)(traces_list)
    traces.command("show")(trace_show)
    app.add_typer(traces, name="traces")


def _get(server: str, path: str, params: dict[str, Any], token: str | None) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = server.rstrip("/") + path
    try:
        r = httpx.get(
            url, params={k: v for k, v in params.items() if v is not None}, headers=headers, timeout=60
        )
    except httpx.HTTPError as e:
        raise _fail(f"cannot reach faultlens at {server}: {e}", 1) from None
    if r.status_code != 200:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        hint = " (pass --token or set FAULTLENS_TOKEN)" if r.status_code == 401 else ""
        raise _fail(f"{r.status_code} from {url}: {detail}{hint}", 1)
    body: dict[str, Any] = r.json()
    return body


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _time(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _ms(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:,.1f}"


def _fetch(
    server: str, path: str, params: dict[str, Any], token: str | None, as_json: bool
) -> dict[str, Any] | None:
    """The API's answer, or None once it was printed as it came (``--json``)."""
    body = _get(server, path, params, token)
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return None
    return body


def _table(what: str, shown: int, truncated: bool, key: str, *columns: str) -> Table:
    """A list's table: the title counts the rows, the key column is never wrapped."""
    table = Table(title=f"{what} ({shown}{', more' if truncated else ''})")
    table.add_column(key, no_wrap=True)
    for column in columns:
        table.add_column(column)
    return table


def incidents_list(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option("--status", help="open or resolved (both when absent).")
    ] = None,
    limit: LimitOpt = 20,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Incidents, latest opened first, with their top root cause."""
    if ctx.invoked_subcommand is not None:
        return
    if status not in (None, "open", "resolved"):
        raise _fail(f"--status {status!r}: expected open or resolved", 2)
    body = _fetch(server, "/api/v1/incidents", {"status": status, "limit": limit}, token, as_json)
    if body is None:
        return
    table = _table(
        "incidents",
        len(body["incidents"]),
        body.get("truncated", False),
        "id",
        *("state", "severity", "opened", "services", "top root cause", "title"),
    )
    for inc in body["incidents"]:
        causes = inc.get("root_causes") or []
        top = f"{causes[0]['service']} ({causes[0]['reason']})" if causes else inc.get("rca_status", "-")
        table.add_row(
            inc["id"],
            inc["state"],
            inc["severity"],
            _time(inc["opened_unix_nano"]),
            ", ".join(inc["services"]),
            top,
            inc["title"],
        )
    Console().print(table)


def incident_show(
    incident_id: Annotated[str, typer.Argument(help="An incident id, e.g. inc-0123456789ab.")],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One incident: when, where, and its ranked root causes with their evidence."""
    body = _fetch(server, f"/api/v1/incidents/{incident_id}", {}, token, as_json)
    if body is None:
        return
    console = Console()
    console.print(f"[bold]{escape(body['title'])}[/bold]")
    console.print(
        escape(
            f"{body['id']}  {body['state']}  {body['severity']}  services: {', '.join(body['services'])}\n"
            f"started {_time(body['start_unix_nano'])}  opened {_time(body['opened_unix_nano'])}  "
            f"resolved {_time(body.get('resolved_unix_nano'))}  anomalies: {body['anomaly_count']}"
        )
    )
    console.print(escape(f"\nroot causes: {body.get('rca_status', '-')}: {body.get('rca_reason', '')}"))
    for cause in body.get("root_causes") or []:
        where = " / ".join(x for x in (cause["service"], cause.get("operation"), cause.get("pod")) if x)
        console.print(
            f"\n#{cause['rank']} [bold]{escape(where)}[/bold]  {escape(cause['reason'])}  "
            f"score {cause['score']:.2f}  confidence {cause['confidence']:.0%}"
        )
        for ev in cause.get("evidence", []):
            console.print(f"  - {ev['text']}", highlight=False, markup=False)
        if cause.get("sample_trace_ids"):
            console.print(f"  traces: {' '.join(cause['sample_trace_ids'][:3])}")


def errors_list(
    service: Annotated[
        str | None, typer.Option("--service", help="The owner or an affected service.")
    ] = None,
    category: Annotated[
        str | None, typer.Option("--category", help="A taxonomy category, e.g. timeout.")
    ] = None,
    limit: LimitOpt = 50,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Error groups, most recently seen first."""
    params = {"service": service, "category": category, "limit": limit}
    body = _fetch(server, "/api/v1/errors", params, token, as_json)
    if body is None:
        return
    table = _table(
        "error groups",
        len(body["groups"]),
        body.get("truncated", False),
        "group",
        *("service", "category", "count", "last seen", "exception", "message"),
    )
    for g in body["groups"]:
        table.add_row(
            g["group_id"],
            g["service"],
            g["classification"]["category"],
            str(g["count"]),
            _time(g["last_seen_unix_nano"]),
            g["exception_type"] or "-",
            g["message_template"],
        )
    Console().print(table)


def traces_list(
    ctx: typer.Context,
    service: Annotated[str | None, typer.Option("--service", help="Some span has this service.")] = None,
    operation: Annotated[str | None, typer.Option("--operation", help="Some span has this name.")] = None,
    errors: Annotated[bool, typer.Option("--errors", help="Only traces with an error span.")] = False,
    min_duration_ms: Annotated[
        float | None, typer.Option("--min-duration-ms", min=0, help="Whole trace at least this long.")
    ] = None,
    max_duration_ms: Annotated[
        float | None, typer.Option("--max-duration-ms", min=0, help="Whole trace at most this long.")
    ] = None,
    attr: Annotated[
        list[str] | None,
        typer.Option(
            "--attr",
            metavar="KEY=VALUE",
            help="An attribute (the span's or its resource's) with this value as text; repeat it: "
            "all must hold on one span, with --service and --operation.",
        ),
    ] = None,
    limit: LimitOpt = 20,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Traces, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    for condition in attr or []:
        key, eq, _ = condition.partition("=")
        if not key or not eq:
            raise _fail(f"--attr {condition!r}: expected KEY=VALUE", 2)
    params = {
        "service": service,
        "operation": operation,
        "status": "error" if errors else None,
        "min_duration_ms": min_duration_ms,
        "max_duration_ms": max_duration_ms,
        # the API's logfmt, quoted so that a value may hold spaces or quotes; the server parses it
        "attrs": shlex.join(attr) if attr else None,
        "limit": limit,
    }
    body = _fetch(server, "/api/v1/traces", params, token, as_json)
    if body is None:
        return
    table = _table(
        "traces",
        len(body["traces"]),
        body.get("truncated", False),
        "trace",
        *("start", "ms", "spans", "errors", "root", "services"),
    )
    for t in body["traces"]:
        root = f"{t['root_service']}: {t['root_name']}" if t.get("root_name") else "-"
        table.add_row(
            t["trace_id"],
            _time(t["start_time_unix_nano"]),
            _ms(t["duration_ns"]),
            str(t["span_count"]),
            str(t["error_count"]),
            root,
            ", ".join(t["services"]),
        )
    Console().print(table)


def trace_show(
    trace_id: Annotated[str, typer.Argument(help="A trace id in hex.")],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One trace as an indented tree of spans (service, name, duration, status)."""
    body = _fetch(server, f"/api/v1/traces/{trace_id}", {}, token, as_json)
    if body is None:
        return
    spans = body.get("spans", [])
    by_id = {s["span_id"]: s for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for s in spans:
        parent = s.get("parent_span_id") or None
        children.setdefault(parent if parent in by_id else None, []).append(s)
    for kids in children.values():
        kids.sort(key=lambda s: s["start_time_unix_nano"])
    t0 = min((s["start_time_unix_nano"] for s in spans), default=0)
    console = Console()
    console.print(f"trace {trace_id}: {len(spans)} spans, {len(body.get('logs', []))} log records")
    seen: set[str] = set()

    def walk(parent: str | None, depth: int) -> None:
        for s in children.get(parent, []):
            if s["span_id"] in seen:  # a cycle in bad data: each span once
                continue
            seen.add(s["span_id"])
            status = " ERROR " + s.get("status_message", "") if s.get("status_code") == "ERROR" else ""
            console.print(
                f"{'  ' * depth}{s['service']}: {s['name']}  "
                f"+{_ms(s['start_time_unix_nano'] - t0)} ms, {_ms(s['duration_ns'])} ms{status}",
                highlight=False,
                markup=False,
            )
            walk(s["span_id"], depth + 1)

    walk(None, 0)
