"""A small Nezha-layout directory with steady traffic and one clear injected fault.

Once a second frontend calls cart and redis-cart (two children, so no wait of frontend is
taken for time on the wire), and frontend and cart log a line each. From the injection on,
the cart pod's calls take a hundred times longer and log an ERROR for every request;
frontend waits for it. Before the fault there are enough quiet minutes for a server's
baselines to settle, so the fault is the only thing that changes. Rows are written with the
layout helpers of ``tests/datasets/nezha_builder.py``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from nezha_builder import CART, FRONTEND, LOG_HEADER, REDIS, TRACE_HEADER, log_row, span_row, write_csv

S = 1_000_000_000
MINUTE = 60 * S
DAY = dt.date(2024, 3, 1)
T0 = int(dt.datetime(2024, 3, 1, 10, 0, tzinfo=dt.UTC).timestamp()) * S


@dataclass(frozen=True)
class FaultyDay:
    root: Path
    inject_time_ns: int
    service: str  # the service of the faulty pod
    minutes: int


def build_faulty_day(base: Path, *, minutes: int = 13, fault_minute: int = 8) -> FaultyDay:
    """Write ``minutes`` minutes from 10:00 with a fault in the cart pod at ``fault_minute``:30."""
    rca = base / "rca_data" / DAY.isoformat()
    inject = T0 + fault_minute * MINUTE + 30 * S
    trace_id = span_id = 0
    for minute in range(minutes):
        spans: list[list[str]] = []
        logs: list[list[str]] = []
        for second in range(60):
            start = T0 + minute * MINUTE + second * S
            faulty = start >= inject
            trace_id += 1
            front, cart, redis = span_id + 1, span_id + 2, span_id + 3
            span_id += 3
            cart_us = 300_000 + second * 100 if faulty else 3_000 + (second % 7) * 50
            spans.append(span_row(trace_id, front, None, FRONTEND, "GET /cart", start, cart_us + 3_000))
            spans.append(span_row(trace_id, cart, front, CART, "GetCart", start + 500_000, cart_us))
            spans.append(span_row(trace_id, redis, front, REDIS, "HGET", start + 200_000, 400 + second % 5))
            logs.append(
                log_row(start, FRONTEND, trace_id, front, "INFO", "f.c.CartController#12", "[getCart][ok]")
            )
            if faulty:
                message = "[getCart][java.lang.RuntimeException: cart store unavailable]"
                logs.append(
                    log_row(
                        start + 1_000_000, CART, trace_id, cart, "ERROR", "c.s.CartServiceImpl#88", message
                    )
                )
            else:
                logs.append(
                    log_row(
                        start + 1_000_000,
                        CART,
                        trace_id,
                        cart,
                        "INFO",
                        "c.s.CartServiceImpl#80",
                        "[getCart][found]",
                    )
                )
        # As in the layout: the file named HH_MM holds the minute before it.
        name = dt.datetime.fromtimestamp((T0 + (minute + 1) * MINUTE) / S, tz=dt.UTC).strftime("%H_%M")
        write_csv(rca / "trace" / f"{name}_trace.csv.gz", TRACE_HEADER, spans)
        write_csv(rca / "log" / f"{name}_log.csv.gz", LOG_HEADER, logs)
    label = dt.datetime.fromtimestamp(inject / S, tz=dt.UTC)
    faults = {
        f"{label:%H}": [
            {
                "inject_time": f"{label:%Y-%m-%d %H:%M:%S}",
                "inject_timestamp": str(inject // S - 8 * 3600),  # 8 h off, as in the real data
                "inject_pod": CART,
                "inject_type": "exception",
            }
        ]
    }
    (rca / f"{DAY.isoformat()}-fault_list.json").write_text(json.dumps(faults))
    return FaultyDay(base, inject, "cartservice", minutes)
