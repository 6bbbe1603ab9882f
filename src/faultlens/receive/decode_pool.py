"""Decode requests in worker processes, off the event loop: :class:`DecodePool`.

Decoding is Python plus upb and numpy and holds the GIL nearly all the time, so a thread
cannot run it beside the event loop; a process can. With ``receivers.decode_workers = N``
(N > 0) the server keeps N worker processes and the event loop only moves bytes: the
request body goes to an idle worker, the worker runs :func:`faultlens.decode.decode_request`
on it, and the Arrow table comes back as an Arrow IPC stream, which the loop opens without
copying the columns again. ``DecodedBatch.raw`` is the request body the loop already holds
(protobuf) or the worker's re-serialization (OTLP/JSON), as with in-process decoding.

How one request travels (one socketpair per worker, private framing, no pickling)::

    event loop                                   worker process (python -c, own imports)
    ----------                                   --------------
    acquire an idle worker (FIFO wait) ──────>   blocking recv of
    send  <signal u8, json u8, len u32> body      the request frame
                                                  decode_request(signal, body, json=json)
    recv  <kind u8, rejected u32, len(msg) u32,   send the reply frame; the table is one
           len(raw) u32, len(ipc) u64>            Arrow IPC stream
           msg, raw, ipc            <───────
    open the IPC stream over the received buffer -> DecodedBatch; worker back to idle

Contract:

- **Same result as in-process decoding**: the same table (schema, metadata and values),
  the same ``rejected`` and ``error_message``; a body that cannot be parsed raises
  :class:`~faultlens.errors.InvalidRequest` with the decoder's message; an unexpected
  exception in the decoder raises ``RuntimeError`` (answered as an internal error, as on
  the loop).
- **Bounded work**: a worker decodes one request at a time; requests beyond the idle
  workers wait in FIFO order, each still holding its admission ticket, so what waits is
  bounded by admission's in-flight bytes, not by the pool.
- **A worker that dies** (killed, crashed, out of memory) fails the request it had with
  :class:`~faultlens.errors.Overloaded` (503 + Retry-After / UNAVAILABLE + RetryInfo), so
  the client sends it again; a replacement is started at once. While no worker is alive
  or starting, requests are refused the same way instead of waiting: never a hang.
- **Cancellation**: a caller that goes away (client disconnect) does not interrupt the
  exchange with the worker; it finishes in the background and the worker goes back idle.
- **Lifecycle**: ``await start()`` starts the workers and waits until each has imported
  the decoder; ``await shutdown(timeout_s)`` refuses new work, closes the sockets (a
  worker exits on end of file), waits at most ``timeout_s`` and kills what is left; it is
  bounded, idempotent and leaves no child process. A worker also exits when the server
  dies, since its socket then reaches end of file.

Workers are started with ``subprocess`` and load this file by path, so they import the
decoder (``faultlens.decode``, pyarrow, upb) but not the receivers' grpc and uvicorn:
~0.5 s of CPU and ~35 MiB of private memory per worker instead of ~1.2 s and ~47 MiB.

Measured with ``bench/ingest.py --decode-workers 0,1,2`` on the 2-core machine (shared,
load average 3-16; figures in :mod:`faultlens.receive.ingest` and docs/architecture.md,
"Decode placement"): server CPU per 100k spans is the same within noise with 0, 1 or 2
workers (12-15 s, workers included), throughput differences are within the noise, and each
worker adds ~60 MiB PSS. So the default is 0 (decode on the loop); the pool is for machines
with cores to spare.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal as signals
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa

import faultlens
from faultlens.decode import decode_request
from faultlens.decode.base import DecodedBatch
from faultlens.errors import InvalidRequest, Overloaded
from faultlens.types import Signal

__all__ = ["DecodePool", "WorkerLost"]

log = logging.getLogger(__name__)

# Frames. Request: signal index, json flag, body length. Reply: kind, rejected count and the
# lengths of the message, raw (OTLP/JSON only) and IPC parts that follow, in that order.
_REQUEST = struct.Struct("<BBI")
_REPLY = struct.Struct("<BIIIQ")
_OK, _INVALID, _FAILED = 0, 1, 2
_READY = b"R"
_SIGNALS: tuple[Signal, ...] = tuple(Signal)
_SOCKET_BUFFER = 4 * 1024 * 1024  # the kernel caps it; larger means fewer wakeups per reply

START_TIMEOUT_S = 60.0  # a worker imports pyarrow and the decoder; slow on a loaded machine
RESPAWN_BACKOFF_S = 1.0


class WorkerLost(Overloaded):
    """The worker decoding a request died; retryable, like any other overload."""


class _Worker:
    """One worker process and the loop's end of its socket."""

    __slots__ = ("proc", "sock")

    def __init__(self, proc: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.proc = proc
        self.sock = sock

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()


class DecodePool:
    """N decode worker processes serving one event loop. Use from that loop only."""

    def __init__(self, workers: int, *, retry_after_s: float = 1.0) -> None:
        if workers < 1:
            raise ValueError("a decode pool needs at least one worker")
        self.size = workers
        self._retry_after_s = retry_after_s
        self._workers: set[_Worker] = set()  # alive, idle or busy
        self._idle: collections.deque[_Worker] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[_Worker]] = collections.deque()
        self._starting = 0
        self._exchanges: set[asyncio.Task[DecodedBatch]] = set()
        self._respawns: set[asyncio.Task[None]] = set()
        self._running = False
        self._shutdown: asyncio.Task[None] | None = None
        self.replaced = 0  # workers started to replace one that died

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and the benchmark)."""
        return sorted(w.pid for w in self._workers)

    async def start(self) -> None:
        """Start every worker and wait until each is ready; raises if one cannot start."""
        if self._shutdown is not None:
            raise RuntimeError("decode pool was shut down; build a new one")
        if self._running:
            return
        self._running = True
        self._starting += self.size
        results = await asyncio.gather(
            *(self._start_worker() for _ in range(self.size)), return_exceptions=True
        )
        self._starting -= self.size
        errors = [r for r in results if isinstance(r, BaseException)]
        for result in results:
            if isinstance(result, _Worker):
                self._workers.add(result)
                self._release(result)
        if errors:
            await self.shutdown(1.0)
            raise errors[0]
        log.info("decode pool: %d worker processes (pids %s)", self.size, self.pids)

    async def decode(self, signal: Signal, body: bytes, *, json: bool) -> DecodedBatch:
        """Decode ``body`` in a worker: the same result as ``decode_request(signal, body, json=json)``.

        Raises :class:`InvalidRequest` for a malformed body, :class:`WorkerLost` /
        :class:`Overloaded` (retryable) when the worker died or no worker is available,
        ``RuntimeError`` for a decoder bug.
        """
        task = asyncio.ensure_future(self._decode(signal, body, json))
        self._exchanges.add(task)
        task.add_done_callback(self._exchange_done)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and not (current is not None and current.cancelling()):
                # The pool cancelled the exchange (shutdown), not our caller.
                raise Overloaded(
                    "the decode pool is shutting down; retry later", retry_after_s=self._retry_after_s
                ) from None
            raise

    async def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop every worker within ``timeout_s`` (then kill); idempotent, never raises."""
        if self._shutdown is None:
            self._shutdown = asyncio.ensure_future(self._stop(timeout_s))
        await asyncio.shield(self._shutdown)

    # --- workers ---------------------------------------------------------------------------

    async def _start_worker(self) -> _Worker:
        ours, theirs = socket.socketpair()
        try:
            with contextlib.suppress(OSError):
                ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
                theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
            proc = subprocess.Popen(
                [sys.executable, "-c", _WORKER_BOOT, __file__, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=_worker_env(),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the worker holds its copy; ours must go so its death reads as EOF
        ours.setblocking(False)
        worker = _Worker(proc, ours)
        try:
            hello = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(ours, 1), START_TIMEOUT_S)
            if hello != _READY:
                raise RuntimeError(f"decode worker {proc.pid} exited while starting ({proc.poll()})")
        except BaseException:
            worker.kill()
            await _reap(proc, 1.0)
            raise
        return worker

    def _lost(self, worker: _Worker) -> None:
        """Forget a dead (or unusable) worker and start a replacement."""
        if worker not in self._workers:
            return
        self._workers.discard(worker)
        with contextlib.suppress(ValueError):
            self._idle.remove(worker)
        worker.kill()
        code = worker.proc.wait()  # it is dead or just killed: returns at once
        if not self._running:
            return
        log.warning("decode worker %d died (exit code %s); starting a replacement", worker.pid, code)
        self._starting += 1
        task = asyncio.ensure_future(self._respawn())
        self._respawns.add(task)
        task.add_done_callback(self._respawns.discard)

    async def _respawn(self) -> None:
        try:
            while self._running:
                try:
                    worker = await self._start_worker()
                except Exception:
                    log.exception("cannot start a decode worker; retrying in %.0f s", RESPAWN_BACKOFF_S)
                    if not self._workers:
                        self._fail_waiters("no decode worker is running")
                    await asyncio.sleep(RESPAWN_BACKOFF_S)
                    continue
                if not self._running:
                    worker.kill()
                    await _reap(worker.proc, 1.0)
                    return
                self.replaced += 1
                self._workers.add(worker)
                self._release(worker)
                return
        finally:
            self._starting -= 1

    # --- handing workers out ---------------------------------------------------------------

    async def _acquire(self) -> _Worker:
        while self._idle:
            worker = self._idle.popleft()
            if worker.alive():
                return worker
            self._lost(worker)
        if not self._running:
            raise Overloaded("the decode pool is shut down; retry later", retry_after_s=self._retry_after_s)
        if not self._workers and not self._starting:
            raise Overloaded("no decode worker is running; retry later", retry_after_s=self._retry_after_s)
        waiter: asyncio.Future[_Worker] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            worker = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release(waiter.result())  # handed over just as we were cancelled
            raise
        if not worker.alive():
            self._lost(worker)
            return await self._acquire()
        return worker

    def _release(self, worker: _Worker) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self._idle.append(worker)

    def _fail_waiters(self, reason: str) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(Overloaded(f"{reason}; retry later", retry_after_s=self._retry_after_s))

    # --- one request -----------------------------------------------------------------------

    async def _decode(self, signal: Signal, body: bytes, json: bool) -> DecodedBatch:
        # A worker found dead while the request is being *sent* never saw it: try another.
        # Once it has the whole request, its death is the request's answer (no retry here,
        # so a request that crashes workers cannot take down the whole pool at once).
        for _ in range(self.size + 1):
            worker = await self._acquire()
            batch = await self._exchange(worker, signal, body, json)
            if batch is not None:
                return batch
        raise WorkerLost("decode workers keep dying; retry later", retry_after_s=self._retry_after_s)

    async def _exchange(
        self, worker: _Worker, signal: Signal, body: bytes, json: bool
    ) -> DecodedBatch | None:
        """One request with one worker; ``None`` when the worker was gone before it had it."""
        loop = asyncio.get_running_loop()
        sock = worker.sock
        try:
            await loop.sock_sendall(sock, _REQUEST.pack(_SIGNALS.index(signal), json, len(body)))
            await loop.sock_sendall(sock, body)
        except OSError:
            self._lost(worker)
            return None
        except BaseException:
            self._lost(worker)  # cancelled mid-frame (shutdown): the stream is out of step
            raise
        try:
            header = await _recv_exactly(loop, sock, _REPLY.size)
            kind, rejected, n_msg, n_raw, n_ipc = _REPLY.unpack(header)
            payload = await _recv_exactly(loop, sock, n_msg + n_raw + n_ipc)
        except (OSError, EOFError) as error:
            self._lost(worker)
            raise WorkerLost(
                f"the decode worker died while decoding this request ({error}); retry later",
                retry_after_s=self._retry_after_s,
            ) from None
        except BaseException:
            self._lost(worker)
            raise
        self._release(worker)
        view = memoryview(payload)
        message = bytes(view[:n_msg]).decode("utf-8", "replace")
        if kind == _INVALID:
            raise InvalidRequest(message)
        if kind != _OK:
            raise RuntimeError(f"decode worker failed: {message}")
        raw = bytes(view[n_msg : n_msg + n_raw]) if json else body
        table = pa.ipc.open_stream(pa.py_buffer(view[n_msg + n_raw :])).read_all()
        return DecodedBatch(signal, table, rejected, message, raw)

    def _exchange_done(self, task: asyncio.Task[DecodedBatch]) -> None:
        self._exchanges.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here too, for a caller that went away

    # --- shutdown --------------------------------------------------------------------------

    async def _stop(self, timeout_s: float) -> None:
        self._running = False
        deadline = time.monotonic() + timeout_s
        self._fail_waiters("the decode pool is shutting down")
        for task in [*self._respawns, *self._exchanges]:
            task.cancel()
        await asyncio.gather(*self._respawns, *self._exchanges, return_exceptions=True)
        workers = list(self._workers)
        self._workers.clear()
        self._idle.clear()
        for worker in workers:
            worker.sock.close()  # end of file: the worker exits after the request it has
        for worker in workers:
            await _reap(worker.proc, max(0.0, deadline - time.monotonic()))


def _worker_env() -> dict[str, str]:
    """The worker must import this faultlens even when it was put on sys.path at run time."""
    env = dict(os.environ)
    src = str(Path(faultlens.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return env


async def _reap(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Wait for ``proc`` to exit, killing it after ``timeout_s``; never leaves a zombie."""
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    if proc.poll() is None:
        log.warning("decode worker %d did not exit within %.1f s; killing it", proc.pid, timeout_s)
        proc.kill()
        await asyncio.to_thread(proc.wait)


async def _recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = await loop.sock_recv_into(sock, view[got:])
        if k == 0:
            raise EOFError("the decode worker closed its socket")
        got += k
    return buf


# --- the worker process ----------------------------------------------------------------------

# What ``python -c`` runs: load this file by path (not ``faultlens.receive``, whose package
# imports grpc and uvicorn) and serve on the inherited socket.
_WORKER_BOOT = (
    "import importlib.util as u, sys\n"
    "s = u.spec_from_file_location('faultlens_decode_worker', sys.argv[1])\n"
    "m = u.module_from_spec(s); s.loader.exec_module(m)\n"
    "m.worker_main(int(sys.argv[2]))\n"
)


def worker_main(fd: int) -> None:
    """Serve decode requests on socket ``fd`` until it reaches end of file."""
    signals.signal(signals.SIGINT, signals.SIG_IGN)  # Ctrl-C is the server's to handle
    sock = socket.socket(fileno=fd)
    sock.sendall(_READY)
    header = bytearray(_REQUEST.size)
    while True:
        if not _recv_into_all(sock, memoryview(header)):
            return
        index, json, n = _REQUEST.unpack(header)
        body = bytearray(n)
        if not _recv_into_all(sock, memoryview(body)):
            return
        for part in _reply(_SIGNALS[index], bytes(body), bool(json)):
            sock.sendall(part)


def _reply(signal: Signal, body: bytes, json: bool) -> list[bytes | pa.Buffer]:
    try:
        batch = decode_request(signal, body, json=json)
    except InvalidRequest as error:
        return _frame(_INVALID, 0, str(error))
    except Exception as error:  # a decoder bug: the server answers it as an internal error
        return _frame(_FAILED, 0, f"{type(error).__name__}: {error}")
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.table.schema) as writer:
        writer.write_table(batch.table)
    raw = batch.raw if json and batch.raw is not None else b""
    return _frame(_OK, batch.rejected, batch.error_message, raw, sink.getvalue())


def _frame(
    kind: int, rejected: int, message: str, raw: bytes = b"", ipc: pa.Buffer | None = None
) -> list[bytes | pa.Buffer]:
    msg = message.encode("utf-8", "replace")
    n_ipc = ipc.size if ipc is not None else 0
    head = b"".join((_REPLY.pack(kind, rejected, len(msg), len(raw), n_ipc), msg, raw))
    return [head] if ipc is None else [head, ipc]


def _recv_into_all(sock: socket.socket, view: memoryview) -> bool:
    """Fill ``view``; ``False`` on end of file (the server closed the pool or died)."""
    got = 0
    while got < len(view):
        k = sock.recv_into(view[got:])
        if k == 0:
            return False
        got += k
    return True
