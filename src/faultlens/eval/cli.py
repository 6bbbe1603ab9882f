"""``faultlens eval rca`` and ``faultlens eval live``: the evaluations as CLI commands.

``register(app)`` adds an ``eval`` group with the ``rca`` command (the offline benchmark,
:func:`faultlens.eval.rca.evaluate`) and the ``live`` command (what the server answers when
a data set is replayed into it as live telemetry, :func:`faultlens.eval.live.evaluate_live`)
to the main typer app; ``eval detect`` adds itself (:mod:`faultlens.eval.detect`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``eval rca`` to ``app`` (an ``eval`` group is created when absent)."""
    eval_app = typer.Typer(
        help="Evaluate detection and root-cause analysis on labelled data.", no_args_is_help=True
    )

    @eval_app.command("rca")
    def eval_rca(
        directory: Annotated[Path, typer.Argument(help="A directory in the dataset's layout.")],
        dataset: Annotated[
            str, typer.Option("--dataset", help="Layout of DIR (only 'nezha' today).")
        ] = "nezha",
        as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
        cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Cache parsed days here.")] = None,
        limit: Annotated[int | None, typer.Option("--limit", help="Only the first N faults.")] = None,
        lodo: Annotated[bool, typer.Option("--lodo", help="Add the leave-one-day-out check.")] = False,
        via_pipeline: Annotated[
            bool,
            typer.Option(
                "--via-pipeline",
                help="Replay the needed minutes over OTLP/gRPC through an in-process server "
                "and read each case back from its store.",
            ),
        ] = False,
    ) -> None:
        """AC@1/3/5 and Avg@5 of faultlens and the baselines on every labelled fault of DIR."""
        from faultlens.eval.rca import _table, evaluate

        if dataset != "nezha":
            typer.echo(f"error: unknown dataset layout {dataset!r} (known: nezha)", err=True)
            raise typer.Exit(2)
        report = evaluate(
            directory,
            cache_dir=cache_dir,
            limit=limit,
            lodo=lodo,
            via_pipeline=via_pipeline,
            progress=None if as_json else lambda s: typer.echo(s, err=True),
        )
        typer.echo(json.dumps(asdict(report), indent=2, default=str) if as_json else _table(report))

    @eval_app.command("live")
    def eval_live(
        directory: Annotated[Path, typer.Argument(help="A directory in the dataset's layout.")],
        dataset: Annotated[
            str,
            typer.Option("--dataset", help="Layout of DIR: 'nezha', or 'lab' (faultlens lab run --record)."),
        ] = "nezha",
        as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
        days: Annotated[
            list[str] | None,
            typer.Option("--days", help="Only these days (YYYY-MM-DD; repeat or separate with commas)."),
        ] = None,
        limit: Annotated[
            int | None, typer.Option("--limit", min=1, help="Only the first N faults (and data up to them).")
        ] = None,
        lodo: Annotated[
            bool, typer.Option("--lodo", help="Add the per-day (leave-one-day-out) figures.")
        ] = False,
        on_request: Annotated[
            bool,
            typer.Option(
                "--on-request",
                help="Also rank each detection's incident by GET /api/v1/incidents/{id}/rca after "
                "the replay, and score that beside the stored root causes.",
            ),
        ] = False,
        keep: Annotated[
            Path | None,
            typer.Option(
                "--keep",
                metavar="DIR",
                help="Run the server in DIR (created, must be empty) and keep its store there.",
            ),
        ] = None,
    ) -> None:
        """Replay DIR into a fresh faultlens as live telemetry; score what its HTTP API answers.

        The first incident opened from a minute before each labelled injection to five minutes
        after it is its detection; AC@k ranks the true service in that incident's root causes.
        """
        from faultlens.eval.live import evaluate_live, render_table

        if dataset not in ("nezha", "lab"):
            typer.echo(f"error: unknown dataset layout {dataset!r} (known: nezha, lab)", err=True)
            raise typer.Exit(2)
        if not directory.is_dir():
            typer.echo(f"error: not a directory: {directory}", err=True)
            raise typer.Exit(2)
        if dataset == "lab":  # a run recorded by faultlens lab run --record (faultlens.lab.evaluate)
            from faultlens.lab.evaluate import evaluate_lab

            try:
                lab_report = evaluate_lab(
                    directory, on_request=on_request, keep=keep, progress=lambda s: typer.echo(s, err=True)
                )
            except ValueError as e:
                typer.echo(f"error: {e}", err=True)
                raise typer.Exit(2) from None
            typer.echo(json.dumps(lab_report, indent=2, default=str) if as_json else render_table(lab_report))
            return
        chosen: list[dt.date] = []
        for item in days or []:
            for text in filter(None, (t.strip() for t in item.split(","))):
                try:
                    chosen.append(dt.date.fromisoformat(text))
                except ValueError:
                    typer.echo(f"error: --days: not a date: {text!r} (use YYYY-MM-DD)", err=True)
                    raise typer.Exit(2) from None
        try:
            report = evaluate_live(
                directory,
                days=chosen,
                limit=limit,
                lodo=lodo,
                on_request=on_request,
                keep=keep,
                progress=lambda s: typer.echo(s, err=True),
            )
        except ValueError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        typer.echo(json.dumps(report, indent=2, default=str) if as_json else render_table(report))

    app.add_typer(eval_app, name="eval")
