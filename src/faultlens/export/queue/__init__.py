"""Export queues: :class:`MemoryQueue` and the durable :class:`SqliteQueue`. Contract in :mod:`.base`."""

from __future__ import annotations

from pathlib import Path

from faultlens.export.config import QueueConfig, QueueKind
from faultlens.export.queue.base import Batch, ExportQueue, Leased, PutResult, QueueStats
from faultlens.export.queue.memory import MemoryQueue
from faultlens.export.queue.sqlite import QueueLocked, SqliteQueue

__all__ = [
    "Batch",
    "ExportQueue",
    "Leased",
    "MemoryQueue",
    "PutResult",
    "QueueLocked",
    "QueueStats",
    "SqliteQueue",
    "make_queue",
]


def queue_path(config: QueueConfig, destination: str) -> Path:
    return config.directory / f"{destination}.queue.sqlite"


def make_queue(config: QueueConfig, destination: str) -> ExportQueue:
    """The queue ``config`` asks for; the disk queue's file is ``<directory>/<destination>.queue.sqlite``."""
    if config.kind is QueueKind.MEMORY:
        return MemoryQueue(config.max_items, config.max_bytes, config.overflow)
    return SqliteQueue(
        queue_path(config, destination),
        config.max_items,
        config.max_bytes,
        config.overflow,
        config.synchronous,
    )
