"""What both receivers do with a request once its bytes are in hand: decode, hand on, count.

The transports own everything about the wire (paths, headers, metadata, compression,
status encoding); :class:`Ingest` owns what is the same for both: the bearer-token check,
admission, decoding once, handing the batch to the :class:`BatchConsumer`, and the
counters. Keeping it here is what makes gRPC and HTTP answer the same request the same way.

Decode placement: decoding runs **on the event loop**, not in a thread. Decoding is Python
plus upb and numpy and holds the GIL nearly all the time, so a thread pool adds a hand-off
and GIL contention with the loop thread without adding parallelism. Measured with the server
in one process and 8 concurrent clients in another (grpc.aio / httpx; 1,000-span, 188 kB
protobuf requests; two runs of 5-6 s per cell, interleaved), on a 2-core machine shared
with other work (load average 3-8):

=========  ===============================  ===============================
transport  on the loop                      in a thread (``asyncio.to_thread``)
=========  ===============================  ===============================
gRPC       25-37 us CPU/span; 28-40k span/s  31-50 us CPU/span; 23-30k span/s
HTTP       30-39 us CPU/span; 15-16k span/s  35-44 us CPU/span; 17-18k span/s
=========  ===============================  ===============================

Server CPU per span, the figure that bounds spans/s once the server is CPU-bound, is 15-60 %
higher with the thread in every run. Wall-clock spans/s is noisy on a shared machine; over
HTTP the thread came out ~10 % ahead, but there the pure-Python HTTP client in the other
process, not the server, was the limit (server at ~0.5 core). Decoding alone is ~25-30 us
per span of that (measured directly), so the decoder, not the placement, decides
throughput. A request being decoded delays the others by its decode time (~30 ms per 1,000
spans today); the size limit bounds that delay. ``decode_in_thread=True`` is kept to
measure again if the decoder moves to code that releases the GIL.
"""

from __future__ import annotations

import asyncio
import time

from faultlens.config.model import AdmissionConfig, ReceiversConfig
from faultlens.decode import decode_request, encode_response
from faultlens.decode.base import DecodedBatch
from faultlens.errors import Overloaded
from faultlens.pipeline.base import BatchConsumer
from faultlens.receive.accounting import Accounting, RefusalReason
from faultlens.receive.admission import Admission
from faultlens.receive.auth import BearerAuth
from faultlens.receive.decode_pool import DecodePool
from faultlens.selfmetrics import SelfMetrics
from faultlens.types import Signal, Transport

__all__ = ["Ingest"]


class Ingest:
    """The transport-neutral half of a receiver. One per server, shared by both transports."""

    def __init__(
        self,
        receivers: ReceiversConfig,
        admission: AdmissionConfig,
        consumer: BatchConsumer,
        metrics: SelfMetrics,
        *,
        decode_in_thread: bool = False,
        gate: Admission | None = None,
        pool: DecodePool | None = None,
    ) -> None:
        self.max_request_bytes = receivers.max_request_bytes
        self.auth = BearerAuth(receivers.auth)
        self.admission = gate if gate is not None else Admission(admission, metrics)
        self.consumer = consumer
        self.metrics = metrics
        self.decode_in_thread = decode_in_thread
        self.pool = pool
        self._accounting = {t: Accounting(metrics, t) for t in Transport}

    def accounting(self, transport: Transport) -> Accounting:
        return self._accounting[transport]

    def refuse(self, transport: Transport, signal: Signal | None, error: BaseException) -> RefusalReason:
        """Count a refused request. Every transport calls this for every refusal."""
        return self._accounting[transport].refused(signal, error)

    async def export(self, signal: Signal, transport: Transport, body: bytes, *, json: bool) -> bytes:
        """Decode ``body`` (already inflated and size-checked), hand it on, return the response.

        The response is the serialized Export*ServiceResponse, with ``partial_success`` set
        when items were rejected. Raises :class:`~faultlens.errors.InvalidRequest` for a body
        that cannot be parsed and :class:`~faultlens.errors.Overloaded` when the pipeline
        will not take the batch; the caller counts the refusal with :meth:`refuse`.
        """
        acct = self._accounting[transport]
        acct.body(signal, len(body))
        batch = await self._decode(signal, body, json=json)
        acct.decoded(batch)
        if batch.accepted:
            try:
                self.consumer.consume(batch)
            except Overloaded:
                acct.refused_items(batch)
                raise
        acct.accepted(batch)
        return encode_response(signal, batch, json=json)

    async def _decode(self, signal: Signal, body: bytes, *, json: bool) -> DecodedBatch:
        started = time.perf_counter()
        if self.pool is not None:
            batch = await self.pool.decode(signal, body, json=json)
        elif self.decode_in_thread:
            batch = await asyncio.to_thread(decode_request, signal, body, json=json)
        else:
            batch = decode_request(signal, body, json=json)
        self.metrics.decode_seconds.labels(signal.value).observe(time.perf_counter() - started)
        return batch
