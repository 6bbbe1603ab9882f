"""The store door: ``store.backend`` picks the implementation, callers get protocol types."""

from __future__ import annotations

from pathlib import Path

import pytest

from faultlens.config import load_config
from faultlens.config.model import StoreConfig
from faultlens.errors import ConfigError, UnsupportedQuery
from faultlens.store.backend import open_backend
from faultlens.store.testing import span_row, spans_batch, trace_id
from faultlens.store.window import WindowReader
from faultlens.types import TimeRange


def test_an_unknown_backend_is_refused_naming_store_backend(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("store:\n  backend: clickhouse\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.key == "store.backend"


def test_the_duckdb_backend_gives_a_store_its_analysis_store_and_window_reads(tmp_path: Path) -> None:
    backend = open_backend(StoreConfig(data_dir=tmp_path / "data"))
    assert backend.name == "duckdb"
    backend.store.write([spans_batch([span_row(trace=1, start=1_000)])])
    window = backend.windows(max_rows=10).read(TimeRange(0, 10_000))
    assert window.spans.column("trace_id").to_pylist() == [trace_id(1)]
    analysis = backend.open_analysis()
    assert analysis.enforce_retention(10_000, 5_000) == 0
    analysis.close()
    backend.store.close()
    assert (tmp_path / "data" / "faultlens.duckdb").exists()


def test_window_reads_of_a_store_of_another_backend_are_refused() -> None:
    class Elsewhere:  # any Store that is not the DuckDB one
        pass

    with pytest.raises(UnsupportedQuery, match="Elsewhere"):
        WindowReader.for_store(Elsewhere())  # type: ignore[arg-type]
