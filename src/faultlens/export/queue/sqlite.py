"""The disk queue: one SQLite file in WAL mode per destination.

::

   consume() / SDK export()                                     sender threads
        │                                                          ▲      │
        v                                                 lease()  │      │ send
   intake (memory, bounded) ──spool thread──> put():               │      v
                                   BEGIN                           │   ┌──────────────┐
                                   INSERT batch rows ──────────────┤   │ destination  │
                                   DELETE evicted (drop_oldest)    │   └──────────────┘
                                   COMMIT ──> WAL file             │      │
                                               │                   │      │ success or permanent
                                    checkpoint │ (SQLite, ~4 MiB)  │      │ failure: ack()
                                               v                   │      v
                                   ┌──────────────────────────┐    │   DELETE row, COMMIT
                                   │ queue.sqlite: batches    │────┘
                                   │ (id, signal, items,      │   retryable failure, breaker
                                   │  nbytes, enqueued_ns,    │   open or shutdown: release(),
                                   │  body)                   │   the row stays
                                   └──────────────────────────┘

A row is deleted only by ``ack`` (sent, or refused for good) or by ``drop_oldest``
eviction (counted). Leases are memory only: after a crash or ``SIGKILL`` every row still in
the file, including the ones that were being sent, is sent again (at-least-once; the
destination may see duplicates).

Durability is ``synchronous``:

- ``normal`` (default): a commit writes the WAL but fsyncs only at checkpoints. Everything
  committed survives the process dying (SIGKILL, OOM kill, crash); an OS crash or power
  loss can lose the last commits. Cheap: no fsync per batch.
- ``full``: every commit fsyncs the WAL, so committed batches also survive power loss.
  Costs one fsync per spool group (the spool thread commits everything waiting at once,
  so a burst pays one fsync, not one per batch).

Batches still in the exporter's intake (accepted by ``consume()`` but not yet committed;
normally milliseconds) are not lost when the server dies: the server's intake log keeps each
request until the queue has committed it, and sends it again at the next start
(``faultlens.receive.intake``). SDK exporters wait for the commit before returning.

A file that SQLite cannot read is moved aside to ``<file>.corrupt-<UTC time>`` with an
ERROR log line naming both paths, and an empty queue is started. An exclusive ``flock`` on
``<file>.lock`` keeps two processes from sending the same queue.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from faultlens.errors import FaultlensError
from faultlens.export.config import OverflowPolicy, SyncMode
from faultlens.export.queue.base import Batch, IndexedQueue, _Meta
from faultlens.types import Signal

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    signal TEXT NOT NULL,
    items INTEGER NOT NULL,
    nbytes INTEGER NOT NULL,
    enqueued_ns INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_INSERT = "INSERT INTO batches (signal, items, nbytes, enqueued_ns, body) VALUES (?, ?, ?, ?, ?)"


class QueueLocked(FaultlensError):
    """Another process has this queue file open."""


class SqliteQueue(IndexedQueue):
    durable = True

    def __init__(
        self,
        path: Path,
        max_items: int,
        max_bytes: int,
        overflow: OverflowPolicy,
        synchronous: SyncMode = SyncMode.NORMAL,
    ) -> None:
        super().__init__(max_items, max_bytes, overflow)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._synchronous = synchronous
        self._lockfile = self._lock_file()
        self._db_lock = threading.Lock()
        self.moved_aside: Path | None = None
        try:
            self._db = self._open()
            metas = self._read_index()
        except sqlite3.DatabaseError as err:
            self.moved_aside = self._move_aside(err)
            self._db = self._open()
            metas = self._read_index()
        self._index(metas)

    def _lock_file(self) -> IO[bytes]:
        f = open(self.path.with_name(self.path.name + ".lock"), "wb")  # noqa: SIM115 (held open)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise QueueLocked(f"export queue {self.path} is in use by another process") from None
        return f

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self._synchronous.value.upper()}")
            db.execute("PRAGMA journal_size_limit=67108864")
            db.executescript(_SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            row = db.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {row[0] if row else 'no answer'}")
        except BaseException:
            db.close()
            raise
        return db

    def _read_index(self) -> list[_Meta]:
        rows = self._db.execute("SELECT id, signal, items, nbytes, enqueued_ns FROM batches ORDER BY id")
        try:
            return [_Meta(r[0], Signal(r[1]), r[2], r[3], r[4]) for r in rows]
        except ValueError as err:  # a signal we do not know: the file is not ours
            raise sqlite3.DatabaseError(str(err)) from err

    def _move_aside(self, err: Exception) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                os.replace(src, Path(str(aside) + suffix))
        log.error(
            "export queue %s is corrupt (%s); moved it aside to %s and started an empty queue. "
            "Batches in the old file were not sent.",
            self.path,
            err,
            aside,
        )
        return aside

    # --- storage hooks ---------------------------------------------------------------
    def _store(self, batches: Sequence[Batch], evicted: Sequence[int]) -> list[int]:
        if not batches and not evicted:
            return []
        ids: list[int] = []
        with self._db_lock:
            cur = self._db.cursor()
            cur.execute("BEGIN")
            try:
                if evicted:
                    cur.executemany("DELETE FROM batches WHERE id = ?", [(i,) for i in evicted])
                for b in batches:
                    cur.execute(_INSERT, (b.signal.value, b.items, b.nbytes, b.enqueued_ns, b.body))
                    ids.append(int(cur.lastrowid or 0))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return ids

    def _load(self, meta: _Meta) -> bytes:
        with self._db_lock:
            row = self._db.execute("SELECT body FROM batches WHERE id = ?", (meta.id,)).fetchone()
        if row is None:
            raise sqlite3.DatabaseError(f"batch {meta.id} vanished from {self.path}")
        return bytes(row[0])

    def _delete(self, batch_id: int) -> None:
        with self._db_lock:
            self._db.execute("DELETE FROM batches WHERE id = ?", (batch_id,))

    def close(self) -> None:
        super().close()
        with self._db_lock:
            try:
                self._db.close()
            finally:
                self._lockfile.close()
