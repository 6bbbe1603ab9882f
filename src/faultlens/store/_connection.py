"""One DuckDB connection shared by threads, each call on a cursor of its own.

A DuckDB connection must not be used by two threads at once; cursors of it may. Every
DuckDB-backed piece of the store (the telemetry tables, the analysis tables, window reads)
therefore keeps one connection and hands out a fresh cursor per call, with DuckDB's errors
turned into :class:`~faultlens.errors.StoreError`. This is that mechanism, written once.

:func:`open_store_file` is how a writer opens the file: every opener of one path in a
process shares one DuckDB instance (a named in-memory database with the file attached),
because the row group size can only be chosen when attaching, and small row groups are
what make the writer's inserts cheap (see :data:`ROW_GROUP_SIZE`).
"""

from __future__ import annotations

import hashlib
import logging
import re
import struct
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import duckdb

from faultlens.errors import StoreBusy, StoreError
from faultlens.store._segments import SEGMENTS_DIR, Segments

# Rows per DuckDB row group in the store file (DuckDB's default is 122,880). An insert of at
# least one row group is compressed and written straight to the file; a smaller one goes
# through the WAL and its row group is compressed again at every checkpoint until full.
# Measured on decoded 1,000-span requests (flushes of 20k rows, one DuckDB thread): ~12.5
# CPU-us per span at 10,240 rows per group against ~35 at 122,880. Smaller groups also give
# finer zonemaps, so a trace's time bounds skip more rows. Not stored in the file: it
# applies to what this process writes.
ROW_GROUP_SIZE = 10_240
ALIAS = "store"  # the attached file's name inside the instance

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# DuckDB invalidates an attached database whose checkpoint failed (disk full, a file size
# limit, an I/O error): every later statement on it fails with this in its message, and
# DuckDB's own advice is to detach and re-attach it. The failed checkpoint's transaction did
# not commit (its caller got the error and retries it); re-attaching replays the WAL, so
# everything committed before is there again.
INVALIDATED = "has been invalidated"


class _Gate:
    """Calls on a store file come in together; a re-attach waits until none is running and
    holds new ones back while it waits and runs, so that none of them sees the file detached.

    A thread already inside a call is never held back (a call may open a second cursor from
    within the first), and a re-attach gives up after its timeout rather than wait for ever
    on calls that do not end.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._calls = 0
        self._alone = False
        self._waiting = 0  # re-attaches waiting for the calls to end
        self._depth = threading.local()

    @contextmanager
    def call(self) -> Iterator[None]:
        depth = getattr(self._depth, "n", 0)
        with self._cond:
            if not depth:
                self._cond.wait_for(lambda: not self._alone and not self._waiting)
            self._calls += 1
        self._depth.n = depth + 1
        try:
            yield
        finally:
            self._depth.n = depth
            with self._cond:
                self._calls -= 1
                if not self._calls:
                    self._cond.notify_all()

    @contextmanager
    def alone(self, timeout_s: float) -> Iterator[bool]:
        """Yields whether no call runs, nor will until the block ends; False after the timeout,
        and at once in a thread that is itself inside a call (it would wait for itself)."""
        if getattr(self._depth, "n", 0):
            yield False
            return
        with self._cond:
            self._waiting += 1
            try:
                ok = self._cond.wait_for(lambda: not self._calls and not self._alone, timeout_s)
            finally:
                self._waiting -= 1
            if ok:
                self._alone = True
            else:
                self._cond.notify_all()  # calls held back for this re-attach may go on
        try:
            yield ok
        finally:
            if ok:
                with self._cond:
                    self._alone = False
                    self._cond.notify_all()


# One gate and one read budget per store file, for as long as something holds them (the
# connections and stores of that file): weak values, so a process that opens many stores
# over its life (tests, evaluations) keeps none of those it closed.
_gates: weakref.WeakValueDictionary[str, _Gate] = weakref.WeakValueDictionary()
_gates_lock = threading.Lock()


def _shared(table: weakref.WeakValueDictionary[str, _T], path: Path, make: Callable[[], _T]) -> _T:
    key = str(path.resolve())
    with _gates_lock:
        found = table.get(key)
        if found is None:
            found = make()
            table[key] = found
        return found


def _gate(path: Path) -> _Gate:
    return _shared(_gates, path, _Gate)


_segment_lists: weakref.WeakValueDictionary[str, Segments] = weakref.WeakValueDictionary()


def shared_segments(path: Path) -> Segments:
    """The sealed segments of the store file at ``path``, shared by every store of that file
    in this process (while one of them holds it): attachments belong to the instance."""
    return _shared(_segment_lists, path, lambda: Segments(ALIAS, path.parent / SEGMENTS_DIR))


# Reads of one store file running at once. Every read takes memory of the file's one DuckDB
# instance, whose limit (store.memory_limit_mib) the writer shares: with eight readers at
# once beside the writer, reads and writes failed "could not allocate block"; two at a time,
# the others queued, none did (bench/store_limits.py reads; docs/benchmarks.md).
READ_SLOTS = 2
# How long a read waits for a slot before it is refused as retryable (503 + Retry-After).
READ_WAIT_S = 15.0


class ReadBudget:
    """At most ``slots`` reads of a store file run at once; the others queue for a slot.

    A read that waited ``wait_s`` without getting one is refused with
    :class:`~faultlens.errors.StoreBusy` (retryable: the API answers 503 with Retry-After),
    rather than failing inside DuckDB for lack of memory. A thread already holding a slot
    takes no second one (a read may run a read inside it).
    """

    def __init__(
        self, slots: int = READ_SLOTS, wait_s: float = READ_WAIT_S, retry_after_s: float = 1.0
    ) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self.slots = slots
        self.wait_s = wait_s
        self.retry_after_s = retry_after_s
        self._free = threading.BoundedSemaphore(slots)
        self._held = threading.local()

    @contextmanager
    def slot(self) -> Iterator[None]:
        if getattr(self._held, "n", 0):
            self._held.n += 1
            try:
                yield
            finally:
                self._held.n -= 1
            return
        if not self._free.acquire(timeout=self.wait_s):
            raise StoreBusy(
                f"the store is busy: {self.slots} reads were running and this one waited "
                f"{self.wait_s:g} s for its turn; retry later",
                retry_after_s=self.retry_after_s,
            )
        self._held.n = 1
        try:
            yield
        finally:
            self._held.n = 0
            self._free.release()


_budgets: weakref.WeakValueDictionary[str, ReadBudget] = weakref.WeakValueDictionary()


def read_budget(path: Path) -> ReadBudget:
    """The read budget every reader of the store file at ``path`` in this process shares
    (while one of them holds it)."""
    return _shared(_budgets, path, ReadBudget)


def shared_state_count() -> int:
    """How many store files this process keeps a gate or a read budget for now."""
    with _gates_lock:
        return len(set(_gates.keys()) | set(_budgets.keys()))


def open_store_file(path: Path) -> duckdb.DuckDBPyConnection:
    """A connection whose default database is the DuckDB file at ``path``, opened for writing.

    Openers of the same path in this process get connections to one instance (DuckDB lets a
    file be open once per process), so the store and the analysis tables share its memory
    limit and see each other's commits. The first one logs what the WAL replay did
    (:func:`report_wal_replay`). Raises ``duckdb.Error`` as ``duckdb.connect`` would.
    """
    con = duckdb.connect(_instance_name(path))
    try:
        # The first opener attaches the file, and DuckDB replays its WAL: say what it did.
        wal = None if _is_attached(con) else inspect_wal(path)
        con.execute(_attach_sql(path, if_not_exists=True))
        con.execute(f"USE {ALIAS}")
    except BaseException:
        con.close()
        raise
    report_wal_replay(wal)
    return con


def _instance_name(path: Path) -> str:
    key = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:20]
    return f":memory:faultlens-{key}"


def instance_memory(path: Path) -> dict[str, object]:
    """What DuckDB's buffer manager holds for the store file at ``path`` in this process:
    ``duckdb_memory()`` by tag (bytes in memory, bytes spilled), its total, and the memory
    limit. Opens the instance if no one has (then it is empty)."""
    con = duckdb.connect(_instance_name(path))
    try:
        rows = con.execute(
            "SELECT tag, memory_usage_bytes, temporary_storage_bytes FROM duckdb_memory() "
            "WHERE memory_usage_bytes > 0 OR temporary_storage_bytes > 0"
        ).fetchall()
        limit = con.execute("SELECT current_setting('memory_limit')").fetchone()
    finally:
        con.close()
    return {
        "tags": {str(tag): [int(mem), int(tmp)] for tag, mem, tmp in rows},
        "total": sum(int(mem) for _, mem, _ in rows),
        "memory_limit": str(limit[0]) if limit else None,
    }


def _attach_sql(path: Path, *, if_not_exists: bool) -> str:
    literal = str(path).replace("'", "''")
    guard = "IF NOT EXISTS " if if_not_exists else ""
    # TYPE DUCKDB: a file of another format is refused as such, rather than DuckDB trying to
    # download the extension that reads it.
    return f"ATTACH {guard}'{literal}' AS {ALIAS} (TYPE DUCKDB, ROW_GROUP_SIZE {ROW_GROUP_SIZE})"


# --- why a store file does not open --------------------------------------------------------

QUARANTINE_HINT = "move it aside with `faultlens store quarantine --data-dir {dir}` and start again"
# DuckDB's messages for a file that is not a whole DuckDB database (or whose WAL is not).
_CORRUPT = (
    "not a valid DuckDB database file",
    "Corrupt database file",
    "Corrupt WAL file",
    "Failure while replaying WAL",
    "Could not read enough bytes",
    "checksum",
    "Serialization Error",
    "INTERNAL Error",
)
_LOCKED = ("Could not set lock on file", "Conflicting lock")
_VERSION = ("version number", "storage version")


def open_error(path: Path, error: BaseException) -> StoreError:
    """One line saying why the store file at ``path`` did not open, with what to do about it.

    Told apart by DuckDB's message: held by another process (only then is another faultlens
    suspected), written by a newer DuckDB, damaged or not a DuckDB file (then the file can be
    moved aside, see :data:`QUARANTINE_HINT`), or not readable at all (permissions, a
    directory in its place, the disk).
    """
    text = str(error)
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    if any(m in text for m in _LOCKED):
        pid = _PID.search(text)
        holder = f"process {pid.group(1)}" if pid else "another process"
        return StoreError(
            f"cannot open the store {path}: it is in use by {holder} (another faultlens serving "
            "this data directory?); stop it, or give this one another --data-dir"
        )
    if any(m in text for m in _VERSION):
        return StoreError(
            f"cannot open the store {path}: it was written by another DuckDB version ({first}); "
            "run the faultlens that wrote it"
        )
    if any(m in text for m in _CORRUPT):
        hint = QUARANTINE_HINT.format(dir=path.parent)
        return StoreError(
            f"cannot open the store {path}: it is damaged or not a faultlens store ({first}); {hint}"
        )
    return StoreError(f"cannot open the store {path}: {first}")


_PID = re.compile(r"\(PID (\d+)\)")


# --- what DuckDB replays from the WAL at open ---------------------------------------------

WAL_SUFFIX = ".wal"


@dataclass(frozen=True, slots=True)
class WalState:
    """The WAL a store file had before it was opened: what DuckDB then replays.

    ``entries`` and ``torn_bytes`` come from the WAL's framing (each entry after the header
    is ``[u64 size][u64 checksum][size bytes]``): the whole entries, and the bytes after the
    last of them, which DuckDB discards without a word (a write cut off by a kill or a
    crash). Both are None when the file does not read as that framing (another DuckDB
    storage version): then only its size is known.
    """

    path: Path
    size: int
    entries: int | None
    torn_bytes: int | None


def inspect_wal(db_path: Path) -> WalState | None:
    """The WAL beside ``db_path`` as it is now (before an open replays it), None if there is
    none or it is empty."""
    wal = Path(str(db_path) + WAL_SUFFIX)
    try:
        data = wal.read_bytes()
    except OSError:
        return None
    if not data:
        return None
    end = data.find(b"\xff\xff")  # the header is one serialized object, ended by 0xffff
    if end < 0:
        return WalState(wal, len(data), None, None)
    pos, entries = end + 2, 0
    while pos + 16 <= len(data):
        (size,) = struct.unpack_from("<Q", data, pos)
        if pos + 16 + size > len(data):
            break
        pos += 16 + size
        entries += 1
    if not entries:
        return WalState(wal, len(data), None, None)
    return WalState(wal, len(data), entries, len(data) - pos)


def report_wal_replay(state: WalState | None) -> None:
    """Log what opening the store did with the WAL it found: a warning when DuckDB
    discarded a torn tail (or when that cannot be told), info when it replayed it whole."""
    if state is None:
        return
    if state.torn_bytes is None:
        log.warning(
            "the store's WAL %s (%d bytes) was replayed: the last run did not checkpoint (killed?); "
            "faultlens cannot tell whether DuckDB discarded a torn end of it",
            state.path,
            state.size,
        )
    elif state.torn_bytes:
        log.warning(
            "the store's WAL %s ended in %d bytes that are not a whole entry (a write cut off by a "
            "kill or crash): DuckDB replayed its %d whole entries (%d bytes) and discarded those "
            "bytes, and the rows in them",
            state.path,
            state.torn_bytes,
            state.entries,
            state.size - state.torn_bytes,
        )
    else:
        log.info(
            "replayed the store's WAL %s whole (%d entries, %d bytes): the last run did not checkpoint",
            state.path,
            state.entries,
            state.size,
        )


def refresh_store_file(con: duckdb.DuckDBPyConnection, path: Path, *, timeout_s: float = 1.0) -> bool:
    """Checkpoint the store file, then detach and re-attach it, to free what DuckDB keeps.

    DuckDB keeps in memory (outside its memory limit, on the C++ heap) the metadata of every
    row group written since the file was attached, and never drops it while the file stays
    attached: ~12 MiB per million spans at 10,240-row groups (~2 MiB at DuckDB's default
    122,880), so at 10k spans/s the server grew ~0.12 MiB/s for as long as it ran. A
    re-attach frees it (79 -> 46 MiB of heap after 3M spans, 0.08 s checkpoint + 0.03 s
    re-attach), and row groups read back later are loaded lazily and stay small. Calls on
    the file wait while it runs (see :class:`_Gate`). Returns whether it ran; it does not
    when calls kept the file busy for ``timeout_s``, nor after an error (logged; a file left
    detached is attached again by the next call).
    """
    with _gate(path).alone(timeout_s) as ok:
        if not ok:
            return False
        try:
            cur = con.cursor()
        except duckdb.Error as e:
            log.error("cannot refresh the store file %s: %s", path, e)
            return False
        try:
            cur.execute(f"CHECKPOINT {ALIAS}")
            cur.execute(f"DETACH {ALIAS}")
            cur.execute(_attach_sql(path, if_not_exists=False))
        except duckdb.Error as e:
            log.error("cannot refresh the store file %s: %s", path, e)
            return False
        finally:
            cur.close()
    return True


def reattach_if_invalidated(con: duckdb.DuckDBPyConnection, path: Path) -> bool:
    """Detach and re-attach the store file of ``con``'s instance if DuckDB invalidated it.

    Every opener of the path shares the attachment, so one re-attach serves them all; it is
    checked first, alone on the file (:class:`_Gate`), because another thread may already
    have done it. Returns whether this call re-attached. Never raises: a file that cannot be
    attached again (the disk still full) stays invalidated, and the next failure tries again.
    """
    with _gate(path).alone(timeout_s=5.0) as ok:
        if not ok:
            return False
        try:
            probe = con.cursor()  # a fresh connection: its default database is the instance's
        except duckdb.Error as e:
            log.error("cannot check the store file %s after it was invalidated: %s", path, e)
            return False
        try:
            if _is_attached(probe):
                try:
                    probe.execute(f"USE {ALIAS}")
                    return False  # valid: someone re-attached it already, or it never failed
                except duckdb.Error as e:
                    if INVALIDATED not in str(e):
                        return False
                    cause = str(e)
                probe.execute(f"DETACH {ALIAS}")  # the probe is still in the instance's own database
            else:
                cause = "an earlier attempt detached it but could not attach it again"
            probe.execute(_attach_sql(path, if_not_exists=False))
        except duckdb.Error as e:
            log.error("cannot re-attach the store file %s after it was invalidated: %s", path, e)
            return False
        finally:
            probe.close()
    log.warning("re-attached the store file %s after DuckDB invalidated it (%s)", path, cause)
    return True


def rollback(cur: duckdb.DuckDBPyConnection) -> None:
    """Roll back after a failed statement of a transaction, the failure's own error kept.

    A failed COMMIT (its checkpoint could not be written) has already ended the transaction,
    and ROLLBACK would then raise "no transaction is active" in place of the cause.
    """
    try:
        cur.execute("ROLLBACK")
    except duckdb.Error as e:
        log.debug("rollback after a failed transaction: %s", e)


def _is_attached(cur: duckdb.DuckDBPyConnection) -> bool:
    row = cur.execute("SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [ALIAS]).fetchone()
    return bool(row and row[0])


class SharedConnection:
    """``name`` says what is behind the connection in error messages ("store", ...).

    ``database`` is the attached database every cursor starts in (a cursor is a new
    connection to the instance, and starts in its default database otherwise); ``None``
    for a connection opened on the file directly.
    """

    def __init__(
        self, con: duckdb.DuckDBPyConnection, name: str, path: Path, *, database: str | None = None
    ) -> None:
        """With ``database``, ``con`` is from :func:`open_store_file`, and a call that finds the
        file invalidated (or detached) re-attaches it before raising its error, so that the
        caller's retry finds the store working again."""
        self._con = con
        self._name = name
        self._path = path
        self._use = f"USE {database}" if database else None
        self._gate = _gate(path) if database else None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own for one call, so that concurrent calls never share state."""
        if self._closed:
            raise StoreError(f"the {self._name} is closed")
        reattach = False
        try:
            with self._gate.call() if self._gate else nullcontext():
                try:
                    cur = self._con.cursor()
                except duckdb.Error as e:
                    raise StoreError(f"the {self._name} is not usable: {e}") from e
                used = False
                try:
                    if self._use:
                        cur.execute(self._use)
                    used = True
                    yield cur
                except duckdb.Error as e:
                    reattach = self._gate is not None and (not used or INVALIDATED in str(e))
                    raise StoreError(f"{self._name} query failed: {e}") from e
                finally:
                    cur.close()
        finally:
            if reattach:  # out of the gate: the re-attach waits for every call to end
                reattach_if_invalidated(self._con, self._path)

    @contextmanager
    def alone(self, timeout_s: float) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """A cursor while no other call runs on the file (nor starts until the block ends),
        or None when that did not come within ``timeout_s`` (see :class:`_Gate`)."""
        if self._closed:
            raise StoreError(f"the {self._name} is closed")
        if self._gate is None:
            raise StoreError(f"the {self._name} was opened on its file directly: nothing to be alone on")
        with self._gate.alone(timeout_s) as ok:
            if not ok:
                yield None
                return
            try:
                cur = self._con.cursor()
                if self._use:
                    cur.execute(self._use)
            except duckdb.Error as e:
                raise StoreError(f"the {self._name} is not usable: {e}") from e
            try:
                yield cur
            except duckdb.Error as e:
                raise StoreError(f"{self._name} query failed: {e}") from e
            finally:
                cur.close()

    def close(self) -> None:
        """Close the connection; safe to call twice. The caller serialises it with writes."""
        if self._closed:
            return
        self._closed = True
        try:
            self._con.close()
        except duckdb.Error as e:
            raise StoreError(f"closing the {self._name} at {self._path}: {e}") from e
