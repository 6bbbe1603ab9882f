"""Making a file's bytes and a directory's names durable (fsync), once for every writer."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["sync_directory", "sync_file"]


def sync_directory(directory: Path) -> None:
    """Make a created, renamed or deleted name in ``directory`` durable (fsync of the
    directory). Best effort: a file system that cannot sync a directory is left as it is."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sync_file(path: Path) -> None:
    """Make the bytes written to ``path`` durable; raises OSError as ``os.fsync`` does."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
