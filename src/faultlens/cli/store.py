"""``faultlens store``: look after the store file when it cannot be opened.

``faultlens store quarantine --data-dir DIR`` moves the DuckDB file and its WAL to
``DIR/quarantine/<UTC time>/`` and leaves the data directory ready for a fresh, empty store
at the next ``faultlens serve``, as the export queue does on its own with a SQLite file it
cannot read. The store is not moved aside automatically: it holds everything stored, a
damaged file may still be read in part (``duckdb DIR/quarantine/<time>/faultlens.duckdb``),
and the decision to start over belongs to the operator, whom ``serve`` tells what failed in
one line. Nothing else in the data directory is touched (export queues, the intake log:
what the intake log still holds is written again into the new store).

A store held open by a running process is not moved (it is not damaged, only busy).
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from faultlens.errors import StoreError
from faultlens.store import DB_FILENAME
from faultlens.store._connection import WAL_SUFFIX

__all__ = ["QUARANTINE_DIR", "Quarantined", "quarantine_store", "register"]

QUARANTINE_DIR = "quarantine"

store_app = typer.Typer(help="Look after the store file (DuckDB) in a data directory.", no_args_is_help=True)


@dataclass(frozen=True, slots=True)
class Quarantined:
    """Where the store's files went."""

    directory: Path
    moved: tuple[Path, ...]


def _held_by_another_process(path: Path) -> bool:
    """Whether another process holds DuckDB's lock on ``path`` (a POSIX record lock)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's own lock
    return False


def quarantine_store(data_dir: Path, *, now: float | None = None) -> Quarantined:
    """Move the store file of ``data_dir`` and its WAL to ``data_dir/quarantine/<UTC time>/``.

    Raises :class:`StoreError` when there is no store file, or when a process holds it open.
    """
    db = Path(data_dir) / DB_FILENAME
    wal = Path(str(db) + WAL_SUFFIX)
    if not db.exists() and not wal.exists():
        raise StoreError(f"no faultlens store in {data_dir} (no {DB_FILENAME})")
    if db.is_file() and _held_by_another_process(db):
        raise StoreError(
            f"the store {db} is open in a running process; stop it first (the file is busy, not damaged)"
        )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    target = Path(data_dir) / QUARANTINE_DIR / stamp
    n = 1
    while target.exists():
        n += 1
        target = Path(data_dir) / QUARANTINE_DIR / f"{stamp}-{n}"
    target.mkdir(parents=True)
    moved = []
    for src in (db, wal):
        if src.exists():
            dest = target / src.name
            os.replace(src, dest)
            moved.append(dest)
    return Quarantined(target, tuple(moved))


@store_app.command("quarantine")
def quarantine(
    data_dir: Annotated[Path, typer.Option(help="The data directory (store.data_dir) of the store.")],
) -> None:
    """Move a store that cannot be opened aside (to DATA_DIR/quarantine/<time>/); the next
    `faultlens serve` starts with an empty one."""
    try:
        done = quarantine_store(data_dir)
    except (StoreError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    for path in done.moved:
        typer.echo(f"moved {path.name} to {path}")
    typer.echo(f"the next `faultlens serve --data-dir {data_dir}` starts with an empty store")


def register(app: typer.Typer) -> None:
    """Add the ``store`` group to the ``faultlens`` command."""
    app.add_typer(store_app, name="store")
