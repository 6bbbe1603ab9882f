"""The lab: real instrumented services on this machine, real faults, and what was broken when.

::

    faultlens lab run ──> LabRunner ─┬─> service processes (one per topology service: starlette on
                                     │     uvicorn, OpenTelemetry SDK, httpx calls, SQLite)
                                     ├─> load generator process (request mix, daily rate curve)
                                     ├─> fault controller (schedule -> POST /_lab/fault, burners,
                                     │     lock holders, kills, tc netem) ──> labels.jsonl (ground truth)
                                     ├─> network namespaces (optional, root: one per network_delay
                                     │     target, a bridge, a forwarder to the endpoint; netns.py)
                                     └─> recording relay (optional, --record): OTLP/HTTP in,
                                           otlp.jsonl.gz on disk, forwarded to --endpoint

Topologies are data (:mod:`faultlens.lab.topology`), faults are values
(:mod:`faultlens.lab.faults`); ``docs/lab.md`` says which signal each fault moves. Nothing
here is imported by the server: the lab only makes telemetry, and faultlens is told nothing
of the faults but through what the services send.
"""

from __future__ import annotations
