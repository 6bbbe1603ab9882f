"""Grouping accuracy of the template miner on loghub-2k.

Usage: ``python -m faultlens.analysis.templates.evaluate DIR [--system NAME ...]``.

DIR holds one folder per system with ``<SYSTEM>_2k.log_structured.csv.gz`` (columns
``Content`` and the ground-truth ``EventTemplate``). For each system the lines are fed in
order to a fresh :class:`~faultlens.analysis.templates.drain.Drain`, and grouping accuracy
(GA) is computed as in the LogPAI benchmark (Zhu et al., ICSE-SEIP 2019): a line counts as
right when the set of lines in its mined cluster equals the set of lines sharing its true
template. Prints JSON: per system GA, clusters found, true templates and seconds, the mean,
and, when the ``drain3`` package is importable, drain3's GA on the same lines for comparison.

This module reads files; it is an evaluation tool, not part of the analysis core.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import importlib
import importlib.util
import io
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from faultlens.analysis.templates.drain import Drain, DrainConfig

Parser = Callable[[Sequence[str]], list[int]]


def load_system(path: Path) -> tuple[list[str], list[str]]:
    """Return (contents, true templates) of one ``*_2k.log_structured.csv.gz`` file."""
    with gzip.open(path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        rows = list(csv.DictReader(text))
    return [r["Content"] for r in rows], [r["EventTemplate"] for r in rows]


def grouping_accuracy(truth: Sequence[str], predicted: Sequence[int]) -> float:
    """Fraction of lines whose mined group holds exactly the lines of their true group."""
    if len(truth) != len(predicted):
        raise ValueError("truth and predicted differ in length")
    if not truth:
        return 1.0
    truth_sizes = Counter(truth)
    members: dict[int, list[str]] = defaultdict(list)
    for t, p in zip(truth, predicted, strict=True):
        members[p].append(t)
    correct = 0
    for labels in members.values():
        first = labels[0]
        if all(label == first for label in labels) and truth_sizes[first] == len(labels):
            correct += len(labels)
    return correct / len(truth)


def parse_with_drain(lines: Sequence[str], config: DrainConfig | None = None) -> list[int]:
    drain = Drain(config)
    return [drain.add(line).cluster_id for line in lines]


def parse_with_drain3(lines: Sequence[str]) -> list[int]:
    """drain3's ``Drain`` with its defaults (depth 4, sim 0.4, max children 100), no masking."""
    drain = importlib.import_module("drain3.drain").Drain()
    return [int(drain.add_log_message(line)[0].cluster_id) for line in lines]


def drain3_available() -> bool:
    return importlib.util.find_spec("drain3") is not None


def evaluate(
    directory: Path,
    systems: Sequence[str] | None = None,
    config: DrainConfig | None = None,
    compare_drain3: bool = True,
) -> dict[str, Any]:
    """Run the miner (and drain3 when available) on each system under ``directory``."""
    files = sorted(directory.glob("*/*_2k.log_structured.csv.gz"))
    if systems:
        wanted = {s.lower() for s in systems}
        files = [f for f in files if f.parent.name.lower() in wanted]
    use_drain3 = compare_drain3 and drain3_available()
    results: dict[str, dict[str, Any]] = {}
    for f in files:
        contents, truth = load_system(f)
        t0 = time.perf_counter()
        predicted = parse_with_drain(contents, config)
        row: dict[str, Any] = {
            "ga": round(grouping_accuracy(truth, predicted), 4),
            "clusters": len(set(predicted)),
            "true_templates": len(set(truth)),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        if use_drain3:
            row["drain3_ga"] = round(grouping_accuracy(truth, parse_with_drain3(contents)), 4)
        results[f.parent.name] = row
    summary: dict[str, Any] = {"systems": results}
    if results:
        summary["mean_ga"] = round(sum(r["ga"] for r in results.values()) / len(results), 4)
        if use_drain3:
            summary["mean_drain3_ga"] = round(sum(r["drain3_ga"] for r in results.values()) / len(results), 4)
    summary["drain3_compared"] = use_drain3
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--system", action="append", help="only this system (repeatable)")
    parser.add_argument("--no-drain3", action="store_true", help="skip the drain3 comparison")
    args = parser.parse_args(argv)
    if not args.directory.is_dir():
        print(f"not a directory: {args.directory}", file=sys.stderr)
        return 2
    print(json.dumps(evaluate(args.directory, args.system, compare_drain3=not args.no_drain3), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
