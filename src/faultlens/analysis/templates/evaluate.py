"""Grouping accuracy of the template miners on loghub-2k.

Usage: ``python -m faultlens.analysis.templates.evaluate DIR [--system NAME ...]``.

DIR holds one folder per system with ``<SYSTEM>_2k.log_structured.csv.gz`` (columns
``Content`` and the ground-truth ``EventTemplate``). For each system the lines are fed in
order to a fresh miner (the analyzer's default, :class:`~.skeleton.SkeletonMiner`, and the
previous one, :class:`~.drain.Drain`, in the same run), and grouping accuracy (GA) is computed
as in the LogPAI benchmark (Zhu et al., ICSE-SEIP 2019): a line counts as right when the set
of lines in its mined cluster equals the set of lines sharing its true template. A line's
cluster is the one it ends in: when the miner later folds its cluster into another, it
follows. Prints JSON: per system GA, clusters found, true templates and seconds, the means,
and, when the ``drain3`` package is importable, drain3's GA on the same lines.

:func:`leave_one_out` scores the choice of settings honestly: for each system, the setting
with the best mean GA over the *other* systems is measured on it.

This module reads files; it is an evaluation tool, not part of the analysis core.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
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
from faultlens.analysis.templates.skeleton import SkeletonConfig, SkeletonMiner
from faultlens.analysis.templates.tokens import ALL_RULES, KeyRules

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


def load_all(directory: Path, systems: Sequence[str] | None = None) -> dict[str, tuple[list[str], list[str]]]:
    """(contents, true templates) of each system under ``directory``, by system name."""
    files = sorted(directory.glob("*/*_2k.log_structured.csv.gz"))
    if systems:
        wanted = {s.lower() for s in systems}
        files = [f for f in files if f.parent.name.lower() in wanted]
    return {f.parent.name: load_system(f) for f in files}


def parse_with_skeleton(lines: Sequence[str], config: SkeletonConfig | None = None) -> list[int]:
    """The cluster each line ends in (following folds), with a fresh :class:`SkeletonMiner`."""
    miner = SkeletonMiner(config)
    ids: list[int] = []
    folded: dict[int, int] = {}
    for line in lines:
        m = miner.add(line)
        ids.append(m.cluster_id)
        for old in m.merged:
            folded[old] = m.cluster_id
    if not folded:
        return ids
    final: dict[int, int] = {}
    for cid in set(ids):
        end = cid
        while end in folded:
            end = folded[end]
        final[cid] = end
    return [final[c] for c in ids]


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
    config: SkeletonConfig | None = None,
    compare_drain: bool = True,
    compare_drain3: bool = True,
) -> dict[str, Any]:
    """Run the skeleton miner (and Drain, and drain3 when available) on each system."""
    use_drain3 = compare_drain3 and drain3_available()
    results: dict[str, dict[str, Any]] = {}
    for name, (contents, truth) in load_all(directory, systems).items():
        t0 = time.perf_counter()
        predicted = parse_with_skeleton(contents, config)
        row: dict[str, Any] = {
            "ga": round(grouping_accuracy(truth, predicted), 4),
            "clusters": len(set(predicted)),
            "true_templates": len(set(truth)),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        if compare_drain:
            row["drain_ga"] = round(grouping_accuracy(truth, parse_with_drain(contents)), 4)
        if use_drain3:
            row["drain3_ga"] = round(grouping_accuracy(truth, parse_with_drain3(contents)), 4)
        results[name] = row
    summary: dict[str, Any] = {"systems": results}
    if results:
        for field, out in (("ga", "mean_ga"), ("drain_ga", "mean_drain_ga"), ("drain3_ga", "mean_drain3_ga")):
            if all(field in r for r in results.values()):
                summary[out] = round(sum(r[field] for r in results.values()) / len(results), 4)
    summary["drain3_compared"] = use_drain3
    return summary


# The settings :func:`leave_one_out` chooses among (the default is one of them).
SETTINGS: tuple[SkeletonConfig, ...] = tuple(
    SkeletonConfig(word_values=k, min_constants=c) for k in range(2, 9) for c in range(4)
)


def leave_one_out(
    data: dict[str, tuple[list[str], list[str]]], settings: Sequence[SkeletonConfig] = SETTINGS
) -> dict[str, Any]:
    """For each system: the setting best on the others (mean GA; ties to the earlier), its GA there.

    Returns ``{"systems": {name: {"ga", "word_values", "min_constants"}}, "mean_ga": ...}``.
    """
    names = sorted(data)
    ga = [
        {name: grouping_accuracy(data[name][1], parse_with_skeleton(data[name][0], cfg)) for name in names}
        for cfg in settings
    ]
    out: dict[str, dict[str, Any]] = {}
    for held in names:
        others = [n for n in names if n != held]
        best = max(range(len(settings)), key=lambda i: (sum(ga[i][n] for n in others), -i))
        cfg = settings[best]
        out[held] = {
            "ga": round(ga[best][held], 4),
            "word_values": cfg.word_values,
            "min_constants": cfg.min_constants,
        }
    mean = sum(r["ga"] for r in out.values()) / len(out) if out else 0.0
    return {"systems": out, "mean_ga": round(mean, 4)}


def rule_ablation(data: dict[str, tuple[list[str], list[str]]]) -> dict[str, Any]:
    """Mean GA with each of the line-key rules (:class:`~.tokens.KeyRules`) switched off alone,
    and the systems whose GA it moves by more than 0.001 (GA without the rule - with it)."""
    base = {n: grouping_accuracy(t, parse_with_skeleton(x)) for n, (x, t) in data.items()}
    out: dict[str, Any] = {}
    for rule in (f.name for f in dataclasses.fields(KeyRules)):
        cfg = SkeletonConfig(rules=dataclasses.replace(ALL_RULES, **{rule: False}))
        ga = {n: grouping_accuracy(t, parse_with_skeleton(x, cfg)) for n, (x, t) in data.items()}
        moved = {n: round(ga[n] - base[n], 4) for n in ga if abs(ga[n] - base[n]) > 0.001}
        out[rule] = {"mean_ga": round(sum(ga.values()) / max(len(ga), 1), 4), "moved": moved}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--system", action="append", help="only this system (repeatable)")
    parser.add_argument("--no-drain3", action="store_true", help="skip the drain3 comparison")
    parser.add_argument("--loso", action="store_true", help="also the leave-one-system-out figure")
    args = parser.parse_args(argv)
    if not args.directory.is_dir():
        print(f"not a directory: {args.directory}", file=sys.stderr)
        return 2
    result = evaluate(args.directory, args.system, compare_drain3=not args.no_drain3)
    if args.loso:
        result["leave_one_out"] = leave_one_out(load_all(args.directory, args.system))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
