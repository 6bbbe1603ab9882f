"""The door to storage: one factory, chosen by ``store.backend``, for everything stored.

Code above the store (the server, and through it the API, the analysis and RCA) gets its
storage here as protocol types: the telemetry :class:`~faultlens.store.base.Store`, the
:class:`~faultlens.store.analysis_base.AnalysisStore` of analysis results and state, and
the :class:`~faultlens.store.window.WindowReader` that RCA reads time ranges through. It
never names a backend's classes, so a second backend (the cluster's, ClickHouse) is a new
branch of :func:`open_backend`, not a change to its callers. Like the Collector's
component factories: a name in the config, one constructor per name.

``duckdb`` keeps all three in one file under ``store.data_dir`` (``duckdb_store.py``,
``analysis_duckdb.py``, ``window.py``). ``memory`` is the test backend of
:mod:`faultlens.testing.memory_store`: telemetry only (the config refuses it with the
analysis on), held in memory and snapshotted into ``store.data_dir`` on close.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from faultlens.config.model import StoreConfig
from faultlens.errors import StoreError
from faultlens.store.analysis_base import AnalysisStore
from faultlens.store.base import Store
from faultlens.store.window import DEFAULT_MAX_ROWS, WindowReader

__all__ = ["StoreBackend", "open_backend"]


@dataclass(frozen=True, slots=True)
class StoreBackend:
    """One backend's storage, opened. ``open_analysis`` opens the analysis store (only a
    server with analysis on needs one; the caller closes it before ``store``)."""

    name: str
    store: Store
    open_analysis: Callable[[], AnalysisStore]
    _windows: Callable[[int], WindowReader]

    def windows(self, max_rows: int = DEFAULT_MAX_ROWS) -> WindowReader:
        """A reader of time ranges of ``store``; ``max_rows`` bounds each signal of a read."""
        return self._windows(max_rows)


def open_backend(config: StoreConfig) -> StoreBackend:
    """Open (creating if needed) the store that ``config.backend`` names."""
    if config.backend == "duckdb":
        from faultlens.store import open_store
        from faultlens.store.analysis_duckdb import DuckDBAnalysisStore

        store = open_store(config)
        return StoreBackend(
            "duckdb",
            store,
            lambda: DuckDBAnalysisStore(store.path),
            lambda max_rows: WindowReader.for_store(store, max_rows=max_rows),
        )
    if config.backend == "memory":
        from faultlens.testing.memory_store import MemoryStore, MemoryWindowReader

        memory = MemoryStore(config.data_dir)

        def no_analysis() -> AnalysisStore:
            raise StoreError("store.backend memory keeps no analysis tables (analysis.enabled: false)")

        return StoreBackend(
            "memory", memory, no_analysis, lambda max_rows: MemoryWindowReader(memory, max_rows=max_rows)
        )
    raise StoreError(f"store.backend: no backend named {config.backend!r}")  # pragma: no cover
