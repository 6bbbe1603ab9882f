"""``faultlens eval rca``: the RCA evaluation as a CLI command (registered by the lead).

``register(app)`` adds an ``eval`` group with an ``rca`` command to the main typer app;
the work is done by :func:`faultlens.eval.rca.evaluate`.
"""

from __future__ import annotations

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

    app.add_typer(eval_app, name="eval")
