"""How soon an incident carries its root causes while the server ingests 10k spans/s.

A ``faultlens serve`` child (10 s analysis windows) receives pre-serialized OTLP/HTTP trace
requests at ``--rate`` spans per second of wall time, its data time moving with the wall
clock (each copy of a request gets fresh ids and its times moved on, ``FreshIds``): a small
shop (front -> orders -> {inventory, payment}, 7 spans a request) runs normally for
``--warmup`` s, then ``--faults`` times: inventory's own work takes 300 ms longer for
``--fault`` s, then ``--gap`` s normal again. A poller reads ``GET /api/v1/incidents`` every
50 ms; an incident's *attach time* is its ``rca_at`` minus when the poller first saw it
(so up to 50 ms short). The server's own histogram ``faultlens_rca_attach_seconds`` (from the
analysis telling the worker to when the answer is stored, every opening and growth) is read
too, with how many spans the server stored against how many were sent.

    python bench/rca_attach.py                       # 10k spans/s, 3 faults, ~5 min
    python bench/rca_attach.py --rate 5000 --faults 2

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from faultlens.datasets.otlp import OtlpConverter
from faultlens.datasets.records import SpanRecord
from faultlens.testing.fresh_ids import FreshIds
from faultlens.testing.process import start_server
from faultlens.testing.shop_records import shop_request

MS = 1_000_000
S = 1_000_000_000
INTERVAL_NS = 100 * MS  # one request per 100 ms of data (and wall) time
PROTOBUF = {"content-type": "application/x-protobuf"}


def shop_requests(t0: int, spans: int, slow_ns: int) -> bytes:
    """One request of about ``spans`` spans whose requests start in [t0, t0 + INTERVAL_NS)."""
    records: list[SpanRecord] = []
    n = max(spans // 7, 1)
    for k in range(n):
        records += shop_request(k, t0 + k * (INTERVAL_NS // n), slow_ns).spans
    return bytes(OtlpConverter().traces(records).SerializeToString())


class Poller(threading.Thread):
    """Watches the incident list: when each incident was first seen, and its answer."""

    def __init__(self, api: str) -> None:
        super().__init__(daemon=True)
        self.api = api
        self.seen: dict[str, int] = {}
        self.answers: dict[str, dict[str, Any]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.api, timeout=10) as client:
            while not self.stop.is_set():
                try:
                    incidents = client.get("/api/v1/incidents", params={"limit": 100}).json()["incidents"]
                except (httpx.HTTPError, KeyError, ValueError):
                    incidents = []
                now = time.time_ns()
                for inc in incidents:
                    self.seen.setdefault(inc["id"], now)
                    if inc["rca_status"] != "pending" and inc["id"] not in self.answers:
                        self.answers[inc["id"]] = inc
                self.stop.wait(0.05)


def histogram(metrics: str, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith(name + "_bucket"):
            le = re.search(r'le="([^"]+)"', line)
            if le:
                out["le_" + le.group(1)] = float(line.rsplit(" ", 1)[1])
        elif line.startswith((name + "_count", name + "_sum")):
            out[line.split(" ")[0].removeprefix(name + "_")] = float(line.rsplit(" ", 1)[1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=10_000, help="spans per second (data and wall time)")
    ap.add_argument("--warmup", type=float, default=60.0)
    ap.add_argument("--fault", type=float, default=30.0)
    ap.add_argument("--gap", type=float, default=50.0)
    ap.add_argument("--faults", type=int, default=3)
    ap.add_argument("--settle", type=float, default=15.0, help="seconds to wait after the last request")
    args = ap.parse_args()

    per_request = args.rate * INTERVAL_NS // S
    base = time.time_ns() // (10 * S) * (10 * S)
    normal = FreshIds(shop_requests(base, per_request, 0))
    slow = FreshIds(shop_requests(base, per_request, 300 * MS))
    phases: list[tuple[bool, float]] = [(False, args.warmup)]
    for _ in range(args.faults):
        phases += [(True, args.fault), (False, args.gap)]

    with tempfile.TemporaryDirectory(prefix="faultlens-rca-attach-") as tmp:
        server = start_server(
            Path(tmp),
            env={"FAULTLENS_ANALYSIS__WINDOW": "10", "FAULTLENS_ANALYSIS__STATE_INTERVAL": "3600"},
        )
        poller = Poller(server.api)
        poller.start()
        sent = late = 0
        fault_starts: list[int] = []
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}", timeout=30) as otlp:
                started = time.monotonic()
                n = 0
                for faulty, seconds in phases:
                    if faulty:
                        fault_starts.append(base + n * INTERVAL_NS)
                    for _ in range(int(seconds * S // INTERVAL_NS)):
                        due = started + n * INTERVAL_NS / S
                        wait = due - time.monotonic()
                        if wait > 0:
                            time.sleep(wait)
                        else:
                            late += 1
                        body = (slow if faulty else normal).copy(n + 1, shift_ns=n * INTERVAL_NS)
                        r = otlp.post("/v1/traces", content=body, headers=PROTOBUF)
                        if r.status_code == 200:
                            sent += per_request
                        n += 1
                wall_s = time.monotonic() - started
            time.sleep(args.settle)
            metrics = httpx.get(f"{server.api}/metrics", timeout=10).text
            stored = server.stats()["spans"]
            attach_lines = [
                line.split(" root causes ", 1)[-1] for line in server.output if " attached " in line
            ]
        finally:
            poller.stop.set()
            poller.join(5)
            server.stop()

    attach = []
    per_incident = []
    for inc_id, inc in sorted(poller.answers.items(), key=lambda kv: kv[1]["opened_unix_nano"]):
        seconds = (inc["rca_at_unix_nano"] - poller.seen[inc_id]) / S
        attach.append(seconds)
        causes = inc["root_causes"]
        per_incident.append(
            {
                "id": inc_id,
                "opened": inc["opened_unix_nano"],
                "attach_s": round(seconds, 3),
                "rca_status": inc["rca_status"],
                "top": causes[0]["service"] if causes else None,
                "in_fault": any(
                    f <= inc["start_unix_nano"] < f + int(args.fault * S) + 20 * S for f in fault_starts
                ),
            }
        )
    print(
        json.dumps(
            {
                "bench": "rca_attach",
                "host": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "rate_spans_per_s": args.rate,
                "spans_sent": sent,
                "spans_stored": stored,
                "wall_s": round(wall_s, 1),
                "requests_late": late,
                "faults": args.faults,
                "incidents": len(poller.seen),
                "ranked": len(attach),
                "attach_s_median": round(statistics.median(attach), 3) if attach else None,
                "attach_s_max": round(max(attach), 3) if attach else None,
                "server_attach_seconds": histogram(metrics, "faultlens_rca_attach_seconds"),
                "server_log": attach_lines,
                "load_average": os.getloadavg(),
                "per_incident": per_incident,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
