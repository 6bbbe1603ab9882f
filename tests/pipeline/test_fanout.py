from __future__ import annotations

import pyarrow as pa
import pytest

from faultlens.decode.base import DecodedBatch
from faultlens.decode.schema import LOG_SCHEMA
from faultlens.errors import Overloaded
from faultlens.pipeline import Fanout
from faultlens.selfmetrics import SelfMetrics
from faultlens.testing.sink import SinkConsumer
from faultlens.types import Signal


def _logs(n: int) -> DecodedBatch:
    rows = [{"time_unix_nano": i + 1, "body": f"line {i}"} for i in range(n)]
    return DecodedBatch(Signal.LOGS, pa.Table.from_pylist(rows, schema=LOG_SCHEMA))


def _dropped(metrics: SelfMetrics, consumer: str, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "faultlens_dropped_items_total", {"signal": "logs", "consumer": consumer, "reason": reason}
    )
    return value or 0.0


def test_every_consumer_gets_the_same_batch() -> None:
    store, exporter = SinkConsumer("store"), SinkConsumer("exporter")
    fan = Fanout([store], [exporter])
    batch = _logs(3)
    fan.consume(batch)
    assert store.batches == [batch]
    assert exporter.batches == [batch]


def test_required_refusal_refuses_the_request_and_reaches_no_best_effort_consumer() -> None:
    store, exporter = SinkConsumer("store"), SinkConsumer("exporter")
    store.refuse(times=1, retry_after_s=2.5)
    fan = Fanout([store], [exporter])
    with pytest.raises(Overloaded) as info:
        fan.consume(_logs(2))
    assert info.value.retry_after_s == 2.5
    assert exporter.items() == 0
    fan.consume(_logs(2))  # the client's retry
    assert store.items() == 2
    assert exporter.items() == 2


def test_best_effort_refusal_is_dropped_and_counted_without_blocking_others() -> None:
    metrics = SelfMetrics()
    store, slow, other = SinkConsumer("store"), SinkConsumer("slow"), SinkConsumer("other")
    slow.refuse()
    fan = Fanout([store], [slow, other], metrics)
    fan.consume(_logs(4))
    assert store.items() == 4
    assert other.items() == 4
    assert slow.items() == 0
    assert _dropped(metrics, "slow", "queue_full") == 4


def test_empty_batch_is_ignored() -> None:
    store = SinkConsumer("store")
    Fanout([store]).consume(DecodedBatch.empty(Signal.LOGS))
    assert store.batches == []


def test_shutdown_is_idempotent_and_refuses_later_batches() -> None:
    store = SinkConsumer("store")
    fan = Fanout([store])
    fan.start()
    fan.shutdown(1.0)
    fan.shutdown(1.0)
    with pytest.raises(Overloaded):
        fan.consume(_logs(1))
