"""What both receivers do with a request once its bytes are in hand: decode, hand on, count.

The transports own everything about the wire (paths, headers, metadata, compression,
status encoding); :class:`Ingest` owns what is the same for both: the bearer-token check,
admission, decoding once, the attribute and record limits (``receivers.limits``), writing
the request to the intake log (so that the answer means the data survives a kill:
:mod:`faultlens.receive.intake`), handing the batch to the :class:`BatchConsumer`, and the
counters. Keeping it here is what makes gRPC and HTTP answer the same request the same way.

Decode placement. Three placements exist: on the event loop (default); in N threads
(``receivers.decode_threads``) for what the native span decoder parses, which is protobuf
trace requests, because it runs without the GIL (only requests of ``THREAD_MIN_BYTES`` or
more: below that the hand-off costs more than the decode; every other decode holds the
GIL, and in a thread it only added a hand-off and contention, 15-60 % more CPU per span
in an earlier measurement); and in N worker processes
(:class:`~faultlens.receive.decode_pool.DecodePool`, ``decode_workers = N``), where the loop
only moves bytes and Arrow IPC. Measured with ``bench/ingest.py`` (a real ``faultlens
serve``, the sender in its own process, 1,000-span 518 kB requests, 30 per run, medians of
three interleaved runs) on the 2-core machine while it was shared (load average 3-16):

=========  =========  ==================  =====================  ================================
placement  transport  spans stored / s    server CPU s / 100k     peak RSS MiB: main / tree (PSS)
=========  =========  ==================  =====================  ================================
loop       gRPC       3,941               14.1                    324 / 324 (250)
1 worker   gRPC       4,447               13.7 (workers 4.4)      315 / 452 (322)
2 workers  gRPC       3,388               12.6 (workers 5.2)      328 / 565 (374)
loop       HTTP       3,785               13.8                    322 / 322 (229)
1 worker   HTTP       4,008               14.7 (workers 4.5)      323 / 440 (318)
2 workers  HTTP       5,316               11.8 (workers 4.7)      324 / 572 (405)
=========  =========  ==================  =====================  ================================

Sustained 10,000 spans/s over gRPC for 10 s: achieved 7,091 / 7,009 / 8,554 spans/s
stored with 0 / 1 / 2 workers, peak RSS main 440 / 476 / 498 MiB, tree 440 / 595 / 733 MiB.
A second, single run (load average 4-7; 0 vs 2 workers): gRPC 6,406 vs 5,159 spans/s and
8.6 vs 11.7 CPU s / 100k; HTTP 4,384 vs 3,917 spans/s; sustained 5,259 vs 7,999 spans/s,
tree RSS 410 vs 669 MiB. The spread between runs is larger than between placements.

Why the default stays 0: moving decode out does not lower the CPU per span (the IPC costs
about what the loop saved in hand-offs), the throughput differences are within the noise
of a shared machine, and each worker adds ~60 MiB PSS (~120 MiB RSS) against a 250 MiB
budget. Decode is also not the main process's largest cost: with two workers the main
process still spends ~70 us CPU per span (gRPC/HTTP, the store writer, the analysis
consumer) against ~50 us per span of decode in the workers, so the main process stays the
bottleneck. Workers pay off on a machine with spare cores, where the loop is saturated
by decode; measure there with ``bench/ingest.py --decode-workers 0,1,2``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor

from faultlens.config.model import AdmissionConfig, ReceiversConfig
from faultlens.decode import decode_request, encode_response
from faultlens.decode.base import DecodedBatch
from faultlens.decode.limits import apply_limits
from faultlens.decode.spans import NATIVE
from faultlens.errors import Overloaded
from faultlens.pipeline.base import BatchConsumer
from faultlens.receive.accounting import Accounting, RefusalReason
from faultlens.receive.admission import Admission
from faultlens.receive.auth import BearerAuth
from faultlens.receive.decode_pool import DecodePool
from faultlens.receive.intake import Durability, IntakeLog
from faultlens.selfmetrics import SelfMetrics
from faultlens.types import Signal, Transport

__all__ = ["THREAD_MIN_BYTES", "Ingest"]

# Smallest protobuf trace request decoded in a thread (``receivers.decode_threads``): a
# hand-off costs tens of microseconds, about what the native decoder spends on 20 spans.
THREAD_MIN_BYTES = 64 * 1024


class Ingest:
    """The transport-neutral half of a receiver. One per server, shared by both transports."""

    def __init__(
        self,
        receivers: ReceiversConfig,
        admission: AdmissionConfig,
        consumer: BatchConsumer,
        metrics: SelfMetrics,
        *,
        gate: Admission | None = None,
        pool: DecodePool | None = None,
        threads: int = 0,
        intake: IntakeLog | None = None,
    ) -> None:
        """``intake``: the log each accepted request is written to before it is answered."""
        self.max_request_bytes = receivers.max_request_bytes
        self.limits = receivers.limits
        self.auth = BearerAuth(receivers.auth)
        self.admission = gate if gate is not None else Admission(admission, metrics)
        self.consumer = consumer
        self.metrics = metrics
        self.pool = pool
        self.intake = intake
        self.threads: ThreadPoolExecutor | None = None
        if threads > 0 and NATIVE:
            self.threads = ThreadPoolExecutor(threads, thread_name_prefix="faultlens-decode")
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
        # An OTLP/JSON request is logged as the protobuf its decoding made of it: the same
        # request in about half the bytes to write and sync, and a replay does not parse
        # JSON again. Any other body is logged as it came.
        logged, logged_json = (batch.raw, False) if json and batch.raw else (body, json)
        batch = apply_limits(batch, self.limits, self.metrics)
        if batch.accepted:
            try:
                batch = await self._log(batch, logged, json=logged_json)
            except Overloaded:
                acct.refused_items(batch)
                raise
            try:
                self.consumer.consume(batch)
            except Overloaded:
                if batch.intake_seq is not None and self.intake is not None:
                    self.intake.cancel(batch.intake_seq)
                acct.refused_items(batch)
                raise
            if batch.intake_seq is not None and self.intake is not None:
                self.intake.release([batch.intake_seq])  # the consumers hold it now
        acct.accepted(batch)
        return encode_response(signal, batch, json=json)

    async def _log(self, batch: DecodedBatch, body: bytes, *, json: bool) -> DecodedBatch:
        """Write the request to the intake log (and wait for the disk in ``fsync`` mode);
        the batch then carries its sequence number. Raises :class:`Overloaded`."""
        intake = self.intake
        if intake is None:
            return batch
        seq = intake.append(batch.signal, body, json=json)
        if intake.durability is Durability.FSYNC:
            try:
                await asyncio.to_thread(intake.wait_durable_blocking)
            except Overloaded:
                intake.cancel(seq)
                raise
        return dataclasses.replace(batch, intake_seq=seq)

    async def _decode(self, signal: Signal, body: bytes, *, json: bool) -> DecodedBatch:
        started = time.perf_counter()
        if self.pool is not None:
            batch = await self.pool.decode(signal, body, json=json)
        elif self.threads is not None and _native_traces(signal, json, body):
            loop = asyncio.get_running_loop()
            batch = await loop.run_in_executor(self.threads, _decode_protobuf_traces, body)
        else:
            batch = decode_request(signal, body, json=json)
        self.metrics.decode_seconds.labels(signal.value).observe(time.perf_counter() - started)
        return batch

    def close(self) -> None:
        """Stop the decode threads (after the servers: nothing is decoding any more)."""
        if self.threads is not None:
            self.threads.shutdown(wait=True)


def _native_traces(signal: Signal, json: bool, body: bytes) -> bool:
    """A request that the native decoder parses without the GIL, big enough to hand off."""
    return signal is Signal.TRACES and not json and len(body) >= THREAD_MIN_BYTES


def _decode_protobuf_traces(body: bytes) -> DecodedBatch:
    return decode_request(Signal.TRACES, body, json=False)
