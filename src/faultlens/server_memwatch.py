"""Where the server's memory goes, written to files while it runs (a debugging aid, off by default).

A process that grows by a MiB a minute cannot be explained from its RSS alone: the growth
may be Python objects, glibc's arenas holding freed blocks, DuckDB's buffer manager, or
Arrow's pool. With ``FL_MEMWATCH_DIR`` set in its environment, ``faultlens serve``
starts one daemon thread that every ``FL_MEMWATCH_EVERY`` seconds (default 60)
appends one JSON line to ``<dir>/memory.jsonl`` with, side by side:

- ``rss`` / ``anon``: the process's resident and anonymous memory (``/proc/self/status``);
- ``malloc``: glibc's ``mallinfo2`` (heap arenas, mapped blocks, in use, free);
- ``arrow``: bytes the Arrow memory pool has allocated, and its backend;
- ``duckdb``: ``duckdb_memory()`` of the store file's DuckDB instance, by tag, and the
  limit it is held to, and under ``filters`` the bytes of the store's trace id and
  attribute filters (only the ``duckdb`` backend);
- ``python``: objects the cyclic collector tracks, and, when tracemalloc traces, the
  memory it has seen allocated.

When Python's ``tracemalloc`` is tracing (start the server with ``PYTHONTRACEMALLOC=8``
to keep 8 frames per allocation), each round also dumps ``<dir>/tracemalloc-<s>.pickle``,
the snapshot of the memory live at second ``s``. ``bench/memdiff.py`` compares two of
them grouped by allocation traceback, which names the code whose allocations grew between,
e.g., minute 3 and the end of a soak. Taking a snapshot holds the GIL for a moment per
million live blocks, and tracing slows every allocation; neither happens unless asked for.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import json
import logging
import os
import platform
import threading
import time
import tracemalloc
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from faultlens.config.model import StoreConfig

__all__ = [
    "ENV_DIR", "ENV_EVERY", "MemoryWatch", "from_environ", "memory_sample",
]  # fmt: skip

log = logging.getLogger(__name__)

# Not FAULTLENS_*: those are config keys, and the config refuses keys it does not know.
ENV_DIR = "FL_MEMWATCH_DIR"
ENV_EVERY = "FL_MEMWATCH_EVERY"
DEFAULT_EVERY_S = 60.0


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _mallinfo() -> dict[str, int] | None:
    """glibc's view of its heap: ``arena`` bytes in the heap arenas (``uordblks`` of them in
    use, ``fordblks`` free), ``hblkhd`` bytes in separately mapped blocks."""
    if platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    fn = getattr(libc, "mallinfo2", None)
    if fn is None:
        return None
    fn.restype = _MallInfo2
    info = fn()
    return {k: int(getattr(info, k)) for k in ("arena", "hblkhd", "uordblks", "fordblks", "keepcost")}


def _proc_status() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def memory_sample(duckdb_memory: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
    """One sample of every memory figure this module knows (see the module docstring)."""
    status = _proc_status()
    traced = tracemalloc.get_traced_memory() if tracemalloc.is_tracing() else None
    sample: dict[str, Any] = {
        "rss": status.get("VmRSS"),
        "anon": status.get("RssAnon"),
        "file": status.get("RssFile"),
        "peak_rss": status.get("VmHWM"),
        "malloc": _mallinfo(),
        "arrow": {
            "backend": pa.default_memory_pool().backend_name,
            "allocated": pa.total_allocated_bytes(),
        },
        "python": {
            "gc_objects": len(gc.get_objects()),
            "traced": traced[0] if traced else None,
        },
    }
    if duckdb_memory is not None:
        try:
            sample["duckdb"] = duckdb_memory()
        except Exception as e:  # a store closing or busy: the other figures still count
            sample["duckdb"] = {"error": str(e)}
    return sample


class MemoryWatch:
    """The daemon thread that writes the samples; ``stop()`` is safe to call twice."""

    def __init__(
        self,
        directory: Path,
        every_s: float = DEFAULT_EVERY_S,
        duckdb_memory: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        if every_s <= 0:
            raise ValueError(f"{ENV_EVERY} must be a positive number of seconds, not {every_s}")
        self.directory = directory
        self.every_s = every_s
        self._duckdb_memory = duckdb_memory
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = time.monotonic()

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], duckdb_memory: Callable[[], dict[str, Any]] | None = None
    ) -> MemoryWatch | None:
        """The watch ``environ`` asks for, or None when ``FL_MEMWATCH_DIR`` is unset."""
        directory = environ.get(ENV_DIR)
        if not directory:
            return None
        raw = environ.get(ENV_EVERY, str(DEFAULT_EVERY_S))
        try:
            every = float(raw)
        except ValueError:
            raise ValueError(f"{ENV_EVERY} must be a number of seconds, not {raw!r}") from None
        return cls(Path(directory), every, duckdb_memory)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="faultlens-memwatch", daemon=True)
        self._thread.start()
        log.warning(
            "memory watch on: a sample every %g s to %s (tracemalloc %s)",
            self.every_s,
            self.directory,
            "tracing" if tracemalloc.is_tracing() else "off",
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def sample_now(self) -> None:
        """Write one round (a JSON line, and a tracemalloc file when tracing)."""
        seconds = round(time.monotonic() - self._start)
        sample = {"t": time.time(), "seconds": seconds, **memory_sample(self._duckdb_memory)}
        with (self.directory / "memory.jsonl").open("a") as f:
            f.write(json.dumps(sample) + "\n")
        if tracemalloc.is_tracing():
            # Dumped as it is (a pickle, written in C): grouping a million traces by traceback
            # is slow Python, done by bench/memdiff.py in a process of its own.
            tracemalloc.take_snapshot().dump(str(self.directory / f"tracemalloc-{seconds:06d}.pickle"))

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.sample_now()
            except Exception:  # a full disk must not end the server; the next round tries again
                log.exception("memory watch: writing a sample failed")


def _store_memory(instance_memory: Callable[[Path], dict[str, Any]], path: Path) -> dict[str, Any]:
    """``duckdb_memory()`` of the file at ``path``, with the bytes the store's in-process
    filters (trace ids, attribute pairs) hold, under ``filters``."""
    from faultlens.store._trace_filter import shared_filter_bytes

    return {**instance_memory(path), "filters": shared_filter_bytes()}


def from_environ(store: StoreConfig) -> MemoryWatch | None:
    """:meth:`MemoryWatch.from_env` on this process's environment, reading the DuckDB
    instance of ``store`` when it is the ``duckdb`` backend."""
    if not os.environ.get(ENV_DIR):
        return None
    duckdb_memory: Callable[[], dict[str, Any]] | None = None
    if store.backend == "duckdb":
        from faultlens.store._connection import instance_memory
        from faultlens.store.duckdb_store import DB_FILENAME

        duckdb_memory = functools.partial(_store_memory, instance_memory, store.data_dir / DB_FILENAME)
    return MemoryWatch.from_env(os.environ, duckdb_memory)
