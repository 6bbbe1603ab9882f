"""Child process for the SIGKILL test: fill a disk queue and send slowly, or drain it.

``python crash_child.py produce <dir> <endpoint> <batches> <spans>`` queues everything
(waiting for each commit), prints ``QUEUED`` and keeps sending until killed.
``python crash_child.py drain <dir> <endpoint>`` sends what the queue holds, prints
``DRAINED <health json>`` and exits.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from helpers import trace_body

from faultlens.export import Exporter, ExporterConfig
from faultlens.types import Signal


def main() -> None:
    mode, directory, endpoint = sys.argv[1:4]
    config = ExporterConfig.model_validate(
        {
            "name": "crash",
            "endpoint": endpoint,
            "senders": 1,
            "timeout": 5,
            "retry": {"initial_interval": 0.02, "max_interval": 0.1},
            "queue": {"directory": directory, "synchronous": "normal"},
        }
    )
    exporter = Exporter(config)
    exporter.start()
    if mode == "produce":
        batches, spans = int(sys.argv[4]), int(sys.argv[5])
        for i in range(batches):
            if not exporter.submit(Signal.TRACES, trace_body(spans, seed=i), spans, wait_s=10):
                raise SystemExit(f"batch {i} was not queued")
        print("QUEUED", flush=True)
        time.sleep(600)  # sending slowly until SIGKILL
    else:
        drained = exporter.flush(30)
        health = dataclasses.asdict(exporter.health())
        exporter.shutdown(5)
        print("DRAINED" if drained else "NOT-DRAINED", json.dumps(health, default=str), flush=True)


if __name__ == "__main__":
    main()
