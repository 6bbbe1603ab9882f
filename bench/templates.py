"""Log templates on loghub-2k: grouping accuracy and mining speed, skeleton miner vs Drain.

One run measures, on the 16 systems of loghub-2k (2,000 labelled lines each):

- **grouping accuracy** (GA, as in Zhu et al., ICSE-SEIP 2019: a line is right when the set of
  lines in its cluster equals the set sharing its true template) per system and averaged, for
  the skeleton miner with its one default configuration and for Drain (the previous miner) with
  its defaults, plus drain3 when it is installed;
- **leave-one-system-out** GA: for each system, the skeleton setting (``word_values`` x
  ``min_constants``, :data:`~faultlens.analysis.templates.evaluate.SETTINGS`) best on the other
  15 is measured on it, so the figure does not profit from tuning on the system it scores;
- **lines per second on one core** (the process is pinned to one CPU), each system's lines fed
  to a fresh miner per system, as the server keeps one miner per service, three ways:
  ``cold`` (first pass: every token and line is new to the miner and the token memo),
  ``repeat`` (the same lines again: the steady state of a stream that repeats itself) and
  ``fresh_values`` (the same lines with every number changed each round: known words, new
  values and new lines, like live logs). The best of ``--rounds`` rounds is kept.

    python bench/templates.py                    # default data: ../shared/datasets/loghub-2k
    python bench/templates.py --data DIR --rounds 5

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from faultlens.analysis.templates import tokens
from faultlens.analysis.templates.drain import Drain
from faultlens.analysis.templates.evaluate import (
    drain3_available,
    evaluate,
    leave_one_out,
    load_all,
)
from faultlens.analysis.templates.skeleton import SkeletonMiner

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "loghub-2k"
_DIGITS = re.compile(r"\d+")

_ROW = ("ga", "drain_ga", "drain3_ga", "clusters", "true_templates")

MinerFactory = Callable[[], Any]


def _shift_numbers(lines: Sequence[str], by: int) -> list[str]:
    return [_DIGITS.sub(lambda m: str(int(m.group()) + by), line) for line in lines]


def _feed(
    factory: MinerFactory, systems: Sequence[Sequence[str]], miners: list[Any] | None
) -> tuple[float, list[Any]]:
    """Seconds to feed each system's lines to its miner (fresh ones when ``miners`` is None)."""
    if miners is None:
        miners = [factory() for _ in systems]
    t0 = time.perf_counter()
    for miner, lines in zip(miners, systems, strict=True):
        miner.add_many(lines)
    return time.perf_counter() - t0, miners


def throughput(factory: MinerFactory, systems: list[list[str]], rounds: int) -> dict[str, float]:
    """Lines per second, cold, repeat and fresh_values (best of ``rounds``)."""
    total = sum(len(s) for s in systems)
    cold = repeat = fresh = float("inf")
    for r in range(rounds):
        tokens.clear_memo()
        seconds, miners = _feed(factory, systems, None)
        cold = min(cold, seconds)
        seconds, _ = _feed(factory, systems, miners)
        repeat = min(repeat, seconds)
        shifted = [_shift_numbers(s, 7919 * (r + 1)) for s in systems]
        seconds, _ = _feed(factory, shifted, miners)
        fresh = min(fresh, seconds)
    return {
        "cold_lines_per_s": round(total / cold),
        "repeat_lines_per_s": round(total / repeat),
        "fresh_values_lines_per_s": round(total / fresh),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the loghub-2k directory")
    ap.add_argument("--rounds", type=int, default=3, help="speed rounds (the best is kept)")
    ap.add_argument("--no-loso", action="store_true", help="skip the leave-one-system-out grid")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"not a directory: {args.data}", file=sys.stderr)
        return 2
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    data = load_all(args.data)
    ga = evaluate(args.data, compare_drain=True, compare_drain3=True)
    systems = [contents for contents, _ in data.values()]
    result: dict[str, Any] = {
        "data": str(args.data),
        "lines": sum(len(s) for s in systems),
        "python": platform.python_version(),
        "cpus_used": 1,
        "mean_ga": ga["mean_ga"],
        "mean_drain_ga": ga.get("mean_drain_ga"),
        "drain3_compared": drain3_available(),
        "mean_drain3_ga": ga.get("mean_drain3_ga"),
        "systems": {name: {k: row[k] for k in _ROW if k in row} for name, row in ga["systems"].items()},
    }
    if not args.no_loso:
        loso = leave_one_out(data)
        result["loso_mean_ga"] = loso["mean_ga"]
        result["loso_systems"] = loso["systems"]
    result["speed"] = {
        "skeleton": throughput(SkeletonMiner, systems, args.rounds),
        "drain": throughput(Drain, systems, args.rounds),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
