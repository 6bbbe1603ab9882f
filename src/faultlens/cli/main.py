"""The ``faultlens`` command. Each subcommand lives in its own module and registers here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from faultlens import __version__
from faultlens.config import load_config
from faultlens.config.redact import redact_tree
from faultlens.errors import ConfigError, StoreError

app = typer.Typer(
    name="faultlens",
    help="OpenTelemetry-native fault analysis server.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@app.command()
def version() -> None:
    """Print the faultlens version."""
    typer.echo(__version__)


@config_app.command("show")
def config_show(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")] = None,
) -> None:
    """Print the effective configuration (defaults, file and FAULTLENS_* variables merged) as JSON.

    Secrets are redacted (tokens, header values, URL passwords and query values, webhook
    paths); :mod:`faultlens.config.redact` has the rules.
    """
    try:
        cfg = load_config(config)
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(redact_tree(cfg.model_dump(mode="json")), indent=2))


def _register_optional_commands() -> None:
    # Subcommands whose modules import heavy dependencies register themselves lazily.
    from faultlens.cli import demo, lab, query, rca, replay, serve, store  # noqa: F401
    from faultlens.eval import cli as eval_cli
    from faultlens.eval import detect as eval_detect

    replay.register(app)
    lab.register(app)
    rca.register(app)
    query.register(app)
    demo.register(app)
    store.register(app)
    eval_cli.register(app)  # creates the `eval` group with `eval rca`
    eval_detect.register(app)  # adds `eval detect` to it


def main() -> None:
    _register_optional_commands()
    try:
        app()
    except StoreError as e:  # the store cannot open (faultlens serve): one line, no traceback
        typer.echo(f"error: {e}", err=True)
        raise SystemExit(1) from None
