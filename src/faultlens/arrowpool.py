"""Which allocator holds the server's Arrow buffers.

pyarrow allocates through mimalloc by default. Under a steady ingest of decoded batches
the server's resident memory is lower with pyarrow's bundled jemalloc, which hands freed
pages back to the system sooner: in ``bench/store.py --sections feed`` (10k spans/s for
30 s through the store writer) the peak RSS was 331 MiB with jemalloc against 366 MiB
with mimalloc, and the resident memory before the feed 159 against 177 MiB, at no more
CPU. ``ARROW_DEFAULT_MEMORY_POOL`` set in the environment wins over this choice.
"""

from __future__ import annotations

import logging
import os

import pyarrow as pa

__all__ = ["use_server_pool"]

log = logging.getLogger(__name__)


def use_server_pool() -> str:
    """Make jemalloc pyarrow's default pool when it is built in; return the backend in use."""
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ and "jemalloc" in pa.supported_memory_backends():
        pa.set_memory_pool(pa.jemalloc_memory_pool())
        # Freed pages go back at once instead of after jemalloc's decay (1 s): the buffers
        # of a flush are large and short-lived, and a second of them is tens of MiB.
        pa.jemalloc_set_decay_ms(0)
    backend = str(pa.default_memory_pool().backend_name)
    log.debug("arrow memory pool: %s", backend)
    return backend
