"""A real DuckDB store holding the data set of ``dataset.py``, served over a real socket."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from faultlens.api import ApiServer, HealthState, create_app
from faultlens.config import StoreConfig
from faultlens.decode.base import DecodedBatch
from faultlens.selfmetrics import SelfMetrics
from faultlens.store import open_store
from faultlens.types import Signal

from .dataset import Served, logs_table, metrics_table, spans_table


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    store = open_store(StoreConfig(data_dir=tmp_path_factory.mktemp("store")))
    store.write(
        [
            DecodedBatch(Signal.TRACES, spans_table()),
            DecodedBatch(Signal.LOGS, logs_table()),
            DecodedBatch(Signal.METRICS, metrics_table()),
        ]
    )
    metrics = SelfMetrics()
    health = HealthState(["store", "receivers"])
    server = ApiServer(create_app(store, metrics, health), host="127.0.0.1", port=0)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10.0) as client:
            yield Served(client, store, metrics, health, server)
    finally:
        server.shutdown()
        store.close()


@pytest.fixture
def client(served: Served) -> httpx.Client:
    return served.client
