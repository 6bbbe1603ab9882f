"""The edge between ingest and everything after it.

Receivers hand each :class:`~faultlens.decode.base.DecodedBatch` to a :class:`BatchConsumer`
(in practice the :class:`~faultlens.pipeline.fanout.Fanout`, which hands it on to the store,
exporters and analysis).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from faultlens.decode.base import DecodedBatch


@runtime_checkable
class BatchConsumer(Protocol):
    """Takes decoded batches. One method per pipeline edge, as in the Collector's ``consumer``.

    Contract of :meth:`consume`:

    - It never blocks on I/O: it queues the batch (bounded) and returns, so it is safe to
      call from the receivers' event loop. When it cannot take the batch it raises
      :class:`faultlens.errors.Overloaded` (the client gets a retryable status) or, for
      best-effort consumers, drops it and counts the drop. It never loses a batch silently.
    - After the call the consumer shares the batch; the caller must not mutate it (Arrow
      tables are immutable, so in practice nobody can).
    - An empty batch is accepted and ignored.
    - It is not idempotent: a batch consumed twice is stored twice.

    :meth:`start` and :meth:`shutdown` bracket its life; ``shutdown`` flushes what was
    accepted within ``timeout_s`` seconds and is safe to call twice.
    """

    name: str

    def consume(self, batch: DecodedBatch) -> None: ...

    def start(self) -> None: ...

    def shutdown(self, timeout_s: float = 30.0) -> None: ...


class IntakeHolds(Protocol):
    """The intake log's side for consumers that make a batch durable on their own (the store
    writer, each exporter's disk queue): the log keeps a request until every holder let go.

    A consumer calls :meth:`hold` with the batch's ``intake_seq`` inside :meth:`BatchConsumer.consume`
    (before the request is answered) and :meth:`release` once the batch is durable in its own
    keeping, or counted as dropped. Releasing what is not held does nothing.
    """

    def hold(self, seq: int) -> None: ...

    def release(self, seqs: list[int]) -> None: ...

    def cancel(self, seq: int) -> None:
        """Request ``seq`` is never to be replayed: it was refused (the client sends it
        again) or the store rejected it for good (counted as dropped)."""
        ...
