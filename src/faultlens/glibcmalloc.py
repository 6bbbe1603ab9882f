"""How glibc's malloc behaves in the server process.

Most of what ingest allocates outside DuckDB and Arrow's pools goes through glibc: gRPC's
request bytes (~0.5 MiB per 1,000-span request), the native decoder's column buffers, and
Python's larger objects. Two glibc defaults make a server like this hold far more than it
uses:

- the mmap threshold is dynamic: after the first large block is freed, glibc raises the
  threshold to that size (up to 32 MiB), so every later request-sized block comes from the
  heap arenas, where freed blocks stay resident as fragments between live ones;
- every thread that meets a locked arena gets an arena of its own (up to 8 per core), each
  keeping its free memory apart.

A fixed threshold of 256 KiB (large blocks are mapped and unmapped, so freeing one gives it
back at once) and two arenas: with ``bench/ingest.py`` sustaining 10k spans/s for 60 s the
heap arenas peaked at 97 MiB instead of 215 (free inside them 27 instead of 131) and the
anonymous resident memory at 219 MiB instead of 249, at the same CPU per span. glibc reads
the same settings from ``MALLOC_ARENA_MAX`` and ``MALLOC_MMAP_THRESHOLD_``; when either is
set in the environment this leaves malloc alone, so an operator's choice wins.

Even so, glibc gives back to the system only the free memory at the top of an arena; the
free chunks between live ones stay resident. Under a steady ingest the arenas' free part
kept growing (a soak's memory watch: 4 -> 69 MiB free inside 79 -> 143 MiB of arenas in two
minutes, the part in use flat), and with it the anonymous memory. ``trim_heap``
(``malloc_trim(0)``) hands every whole free page inside the arenas back (``madvise``); the
server calls it every :data:`TRIM_EVERY_S` seconds. It takes each arena's lock for its
run: ~11 ms to give back 148 MiB of free chunks, ~0.5 ms when there is little to give.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import platform

__all__ = ["ARENA_MAX", "MMAP_THRESHOLD_BYTES", "TRIM_EVERY_S", "trim_heap", "tune_glibc_malloc"]

log = logging.getLogger(__name__)

ARENA_MAX = 2
MMAP_THRESHOLD_BYTES = 256 * 1024
TRIM_EVERY_S = 5.0

# mallopt parameters, from glibc's malloc.h.
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

_ENVIRONMENT = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_")


def tune_glibc_malloc() -> dict[str, int]:
    """Set the arena count and a fixed mmap threshold; return what was set (empty: nothing).

    Nothing is set off glibc (musl, macOS) or when the environment already configures
    malloc. Call it early, before the server starts its threads.
    """
    if platform.libc_ver()[0] != "glibc":
        return {}
    chosen = [name for name in _ENVIRONMENT if name in os.environ]
    if chosen:
        log.debug("malloc left as configured by %s", ", ".join(chosen))
        return {}
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    applied: dict[str, int] = {}
    for name, param, value in (
        ("arena_max", _M_ARENA_MAX, ARENA_MAX),
        ("mmap_threshold", _M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
    ):
        if libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1:
            applied[name] = value
        else:
            log.warning("mallopt(%s=%d) refused; glibc's default stays", name, value)
    return applied


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def trim_heap() -> bool:
    """Give the whole free pages inside glibc's heap arenas back to the system.

    Returns whether any memory was released; False off glibc. Safe from any thread (glibc
    locks each arena while it trims it).
    """
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(ctypes.c_size_t(0)))
