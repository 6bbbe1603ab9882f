"""Log templates on loghub-2k: grouping accuracy and mining speed, skeleton miner vs Drain.

One run measures, on the 16 systems of loghub-2k (2,000 labelled lines each):

- **grouping accuracy** (GA, as in Zhu et al., ICSE-SEIP 2019: a line is right when the set of
  lines in its cluster equals the set sharing its true template) per system and averaged, for
  the skeleton miner with its one default configuration and for Drain (the previous miner) with
  its defaults, plus drain3 when it is installed;
- the same means with each system's lines **shuffled** (one fixed seed): a streaming miner
  sees lines in one order, and a figure that held only in file order would not be one;
- the mean GA with each **rule** of the line keys (:class:`~faultlens.analysis.templates.tokens.KeyRules`)
  switched off alone, and the systems it moves: the rules were written while looking at
  loghub's errors, so this shows which of them the figure leans on, and where;
- **leave-one-system-out** GA: for each system, the skeleton setting (``word_values`` x
  ``min_constants``, :data:`~faultlens.analysis.templates.evaluate.SETTINGS`) best on the other
  15 is measured on it, so the figure does not profit from tuning on the system it scores;
- **lines per second on one core** (the process is pinned to one CPU, and the figure is lines
  per second of the process's CPU time, so that other work on a shared machine does not
  count against it; wall-clock figures are printed beside), each system's lines fed to a
  fresh miner per system, as the server keeps one miner per service, three ways:
  ``cold`` (first pass: every token and line is new to the miner and the token memo),
  ``repeat`` (the same lines again: the steady state of a stream that repeats itself) and
  ``fresh_values`` (the same lines with every number changed each round: known words, new
  values and new lines, like live logs). The best of ``--rounds`` rounds is kept.

Also the worst case for the skeleton miner: 60,000 lines that are all new templates (random
words in two slots, seeded), so that it runs at its cluster bound, evicting, all along
(``all_new_templates``).

With ``--nezha DIR`` (a directory in the Nezha layout, whose logs carry no template labels),
also: how many templates each miner finds there per service in all, and its lines per second
over those logs (one pass, one fresh miner per service), as a check on logs neither miner was
shaped on.

    python bench/templates.py                    # default data: ../shared/datasets/loghub-2k
    python bench/templates.py --data DIR --rounds 5 --nezha ../shared/datasets/nezha-tt

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import string
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from faultlens.analysis.templates import masking, tokens
from faultlens.analysis.templates.drain import Drain
from faultlens.analysis.templates.evaluate import (
    drain3_available,
    evaluate,
    grouping_accuracy,
    leave_one_out,
    load_all,
    parse_with_drain,
    parse_with_skeleton,
    rule_ablation,
)
from faultlens.analysis.templates.skeleton import SkeletonMiner
from faultlens.datasets.nezha.reader import NezhaDataset

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "loghub-2k"
_DIGITS = re.compile(r"\d+")

_ROW = ("ga", "drain_ga", "drain3_ga", "clusters", "true_templates")

MinerFactory = Callable[[], Any]


def _forget() -> None:
    """Empty the memos of both miners (of judged and of masked tokens): a cold start."""
    tokens.clear_memo()
    masking.clear_token_caches()


def _shift_numbers(lines: Sequence[str], by: int) -> list[str]:
    return [_DIGITS.sub(lambda m: str(int(m.group()) + by), line) for line in lines]


def _feed(
    factory: MinerFactory, systems: Sequence[Sequence[str]], miners: list[Any] | None
) -> tuple[tuple[float, float], list[Any]]:
    """CPU and wall seconds to feed each system's lines to its miner (fresh ones when ``miners`` is None)."""
    if miners is None:
        miners = [factory() for _ in systems]
    c0, w0 = time.process_time(), time.perf_counter()
    for miner, lines in zip(miners, systems, strict=True):
        miner.add_many(lines)
    return (time.process_time() - c0, time.perf_counter() - w0), miners


def throughput(factory: MinerFactory, systems: list[list[str]], rounds: int) -> dict[str, int]:
    """Lines per CPU second (and per wall second), cold, repeat and fresh_values (best of ``rounds``)."""
    total = sum(len(s) for s in systems)
    best: dict[str, tuple[float, float]] = {}

    def keep(name: str, seconds: tuple[float, float]) -> None:
        old = best.get(name)
        best[name] = seconds if old is None else (min(old[0], seconds[0]), min(old[1], seconds[1]))

    for r in range(rounds):
        _forget()
        seconds, miners = _feed(factory, systems, None)
        keep("cold", seconds)
        seconds, _ = _feed(factory, systems, miners)
        keep("repeat", seconds)
        shifted = [_shift_numbers(s, 7919 * (r + 1)) for s in systems]
        seconds, _ = _feed(factory, shifted, miners)
        keep("fresh_values", seconds)
    out: dict[str, int] = {}
    for name, (cpu, wall) in best.items():
        out[f"{name}_lines_per_cpu_s"] = round(total / max(cpu, 1e-9))
        out[f"{name}_lines_per_wall_s"] = round(total / wall)
    return out


def all_new_templates(factories: dict[str, MinerFactory], lines: int = 60_000) -> dict[str, Any]:
    """Lines per CPU second when every line is a new template (the skeleton miner's worst case)."""
    rng = random.Random(1)

    def word() -> str:
        return "".join(rng.choice(string.ascii_lowercase) for _ in range(6))

    text = [f"{word()} {word()} happened to {word()} now" for _ in range(lines)]
    out: dict[str, Any] = {}
    for name, factory in factories.items():
        _forget()
        (cpu, _), miners = _feed(factory, [text], None)
        out[name] = {"lines_per_cpu_s": round(lines / max(cpu, 1e-9)), "templates": len(miners[0].clusters)}
    return out


def shuffled_means(data: dict[str, tuple[list[str], list[str]]], seed: int = 1) -> dict[str, float]:
    """Mean GA of both miners with each system's lines in a shuffled order."""
    ga: dict[str, list[float]] = {"skeleton": [], "drain": []}
    for contents, truth in data.values():
        order = list(range(len(contents)))
        random.Random(seed).shuffle(order)
        lines = [contents[i] for i in order]
        labels = [truth[i] for i in order]
        ga["skeleton"].append(grouping_accuracy(labels, parse_with_skeleton(lines)))
        ga["drain"].append(grouping_accuracy(labels, parse_with_drain(lines)))
    return {f"shuffled_mean_{k}_ga": round(sum(v) / len(v), 4) for k, v in ga.items()}


def unlabelled(root: Path, factories: dict[str, MinerFactory]) -> dict[str, Any]:
    """Templates found and lines per second on a Nezha directory's logs, per miner."""
    per_service: dict[str, list[str]] = {}
    for rec in NezhaDataset(root).logs():
        if rec.body:
            per_service.setdefault(rec.service, []).append(rec.body.split("\n", 1)[0][:2000])
    systems = list(per_service.values())
    out: dict[str, Any] = {"lines": sum(len(s) for s in systems), "services": len(systems)}
    for name, factory in factories.items():
        _forget()
        (cpu, wall), miners = _feed(factory, systems, None)
        out[name] = {
            "templates": sum(len(m.clusters) for m in miners),
            "lines_per_cpu_s": round(out["lines"] / max(cpu, 1e-9)),
            "lines_per_wall_s": round(out["lines"] / wall),
        }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the loghub-2k directory")
    ap.add_argument("--rounds", type=int, default=3, help="speed rounds (the best is kept)")
    ap.add_argument("--no-loso", action="store_true", help="skip the leave-one-system-out grid")
    ap.add_argument("--nezha", type=Path, help="also a Nezha directory's (unlabelled) logs")
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
    result.update(shuffled_means(data))
    result["without_rule"] = rule_ablation(data)
    if not args.no_loso:
        loso = leave_one_out(data)
        result["loso_mean_ga"] = loso["mean_ga"]
        result["loso_systems"] = loso["systems"]
    result["speed"] = {
        "skeleton": throughput(SkeletonMiner, systems, args.rounds),
        "drain": throughput(Drain, systems, args.rounds),
    }
    result["all_new_templates"] = all_new_templates({"skeleton": SkeletonMiner, "drain": Drain})
    if args.nezha is not None:
        result["nezha"] = {
            "data": str(args.nezha),
            **unlabelled(args.nezha, {"skeleton": SkeletonMiner, "drain": Drain}),
        }
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
