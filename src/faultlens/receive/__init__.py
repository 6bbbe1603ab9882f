"""receive stage: the OTLP/gRPC and OTLP/HTTP receivers, admission control, auth and TLS.

Entry point: :class:`Receivers` (start both servers, get their ports, shut them down).
The pieces it is built from are public for embedding and tests:

- :class:`Ingest`: what both transports share (auth, admission, decode once, hand the batch
  to the :class:`~faultlens.pipeline.base.BatchConsumer`, counters);
- :class:`OtlpHttpApp`: the OTLP/HTTP ASGI app (any ASGI server can serve it);
- :func:`create_grpc_server`: a grpc.aio server with the three OTLP ``Export`` services;
- :class:`Admission`: the memory soft limit and in-flight bytes gate;
- :mod:`.status`: the google.rpc.Status (with RetryInfo / BadRequest details) both send.

Errors follow :mod:`faultlens.errors`: every refusal is a ``RequestError`` mapped to its
HTTP and gRPC status by ``status_for``, and counted by reason
(:class:`~faultlens.receive.accounting.RefusalReason`).
"""

from faultlens.receive.accounting import RefusalReason
from faultlens.receive.admission import Admission, Ticket
from faultlens.receive.auth import BearerAuth
from faultlens.receive.grpc_server import create_grpc_server
from faultlens.receive.http_server import OtlpHttpApp
from faultlens.receive.ingest import Ingest
from faultlens.receive.server import BoundPorts, Receivers

__all__ = [
    "Admission",
    "BearerAuth",
    "BoundPorts",
    "Ingest",
    "OtlpHttpApp",
    "Receivers",
    "RefusalReason",
    "Ticket",
    "create_grpc_server",
]
