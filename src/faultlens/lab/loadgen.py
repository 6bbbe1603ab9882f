"""The load generator: its own process, a request mix at the entry service, a daily curve.

The rate follows a compressed day: ``rate(t) = peak * (night + (1 - night) * bump(t))``
where ``bump`` is a raised cosine with its trough at night and its peak at midday, and one
"day" lasts ``day_s`` seconds. Arrivals are Poisson at that rate; each picks an operation
by the mix's weights. At most ``concurrency`` requests are in flight: an arrival beyond that
is counted as ``shed``, never queued (a queue would hide that the system is slow).

Run by the runner as ``python -m faultlens.lab.loadgen CONFIG_JSON``; it prints one JSON line
of counts when it stops (SIGTERM, or its parent gone).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import signal
import sys
import time

import httpx
from pydantic import BaseModel, ConfigDict

from faultlens.lab.helpers import exit_with_parent, runner_pid

__all__ = ["LoadConfig", "rate_at"]


class LoadConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    target: str  # http://127.0.0.1:PORT
    mix: dict[str, float]
    rate: float
    day_s: float
    night_share: float = 0.25
    phase: float = 0.35  # where in the day the run starts (0 midnight, 0.5 midday)
    concurrency: int = 32
    timeout_s: float = 10.0
    seed: int | None = None


def rate_at(cfg: LoadConfig, elapsed_s: float) -> float:
    """Requests per second ``elapsed_s`` after the start."""
    day = (elapsed_s / cfg.day_s + cfg.phase) % 1.0
    bump = 0.5 - 0.5 * math.cos(2 * math.pi * day)
    return cfg.rate * (cfg.night_share + (1 - cfg.night_share) * bump)


async def run(cfg: LoadConfig, stop: asyncio.Event) -> dict[str, int]:
    rng = random.Random(cfg.seed)
    ops = list(cfg.mix)
    weights = [cfg.mix[o] for o in ops]
    counts = {"sent": 0, "ok": 0, "failed": 0, "shed": 0}
    in_flight: set[asyncio.Task[None]] = set()
    parent = runner_pid()
    async with httpx.AsyncClient(timeout=cfg.timeout_s) as client:

        async def one(op: str) -> None:
            try:
                r = await client.post(f"{cfg.target}/op/{op}")
                counts["ok" if r.status_code < 400 else "failed"] += 1
            except httpx.HTTPError:
                counts["failed"] += 1

        started = time.monotonic()
        while not stop.is_set() and os.getppid() == parent:
            wait = rng.expovariate(max(1e-3, rate_at(cfg, time.monotonic() - started)))
            try:
                await asyncio.wait_for(stop.wait(), min(wait, 1.0))
                break
            except TimeoutError:
                pass
            if wait > 1.0:
                continue  # a long gap is re-drawn at the new rate
            if len(in_flight) >= cfg.concurrency:
                counts["shed"] += 1
                continue
            counts["sent"] += 1
            task = asyncio.create_task(one(rng.choices(ops, weights)[0]))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight and os.getppid() == parent:  # stopped: let what is in flight finish
            await asyncio.wait(in_flight, timeout=cfg.timeout_s)
        for task in in_flight:  # orphaned (the runner is gone), or past the timeout
            task.cancel()
    return counts


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    cfg = LoadConfig.model_validate(json.loads(args[0]))
    exit_with_parent(runner_pid())  # orphaned: nobody reads the counts, stop at once

    async def _main() -> dict[str, int]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        return await run(cfg, stop)

    print(json.dumps(asyncio.run(_main())), flush=True)


if __name__ == "__main__":
    main()
