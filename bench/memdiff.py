"""Which allocations grew between two memory-watch files of a running server?

``faultlens serve`` started with ``FL_MEMWATCH_DIR=DIR`` and ``PYTHONTRACEMALLOC=8`` writes
``DIR/tracemalloc-<s>.pickle`` every ``FL_MEMWATCH_EVERY`` seconds (see
``faultlens/server_memwatch.py``): tracemalloc snapshots. This compares two of them, grouped by
allocation traceback (by default the one nearest ``--from-s`` and the last) and prints, as JSON, the
tracebacks whose live memory grew most, with the growth in bytes and blocks, and the samples
of ``DIR/memory.jsonl`` at both times (RSS, anonymous, glibc's arenas, DuckDB, Arrow), so that
Python's share of a growth can be told from the rest.

    python bench/soak.py --minutes 10 --rate 10000 --server-env FL_MEMWATCH_DIR=/tmp/mw \\
        --server-env PYTHONTRACEMALLOC=8
    python bench/memdiff.py /tmp/mw --from-s 180

``--group frame`` adds up by the innermost frame inside ``faultlens`` (or the innermost frame
at all when none is), which folds the many tracebacks through one line of our code together.
A traceback is written from the oldest call to the allocation (``a -> b -> allocating line``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tracemalloc
from pathlib import Path
from typing import Any


def _load(path: Path) -> tuple[int, list[dict[str, Any]]]:
    """The snapshot's traced bytes, and its live memory by traceback (oldest frame first)."""
    snap = tracemalloc.Snapshot.load(str(path))
    stats = snap.statistics("traceback")
    rows = [
        {"size": s.size, "count": s.count, "frames": [f"{f.filename}:{f.lineno}" for f in s.traceback]}
        for s in stats
    ]
    return sum(s.size for s in stats), rows


def _seconds(path: Path) -> int:
    return int(path.stem.split("-")[1])


def _key(frames: list[str], group: str) -> str:
    """``frames`` go from the oldest call to the allocation (tracemalloc's order)."""
    if group == "frame":
        ours = [f for f in frames if "/faultlens/" in f]
        return (ours or frames)[-1]
    return " -> ".join(frames)


def _totals(stats: list[dict[str, Any]], group: str) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for s in stats:
        k = _key(s["frames"], group)
        size, count = out.get(k, (0, 0))
        out[k] = (size + int(s["size"]), count + int(s["count"]))
    return out


def _sample_at(samples: list[dict[str, Any]], seconds: int) -> dict[str, Any] | None:
    return min(samples, key=lambda s: abs(int(s["seconds"]) - seconds)) if samples else None


def _short(sample: dict[str, Any] | None) -> dict[str, Any] | None:
    if sample is None:
        return None
    mib = 2**20
    malloc = sample.get("malloc") or {}
    duck = sample.get("duckdb") or {}
    return {
        "seconds": sample["seconds"],
        "rss_mib": round((sample.get("rss") or 0) / mib, 1),
        "anon_mib": round((sample.get("anon") or 0) / mib, 1),
        "glibc_arena_mib": round(malloc.get("arena", 0) / mib, 1),
        "glibc_in_use_mib": round(malloc.get("uordblks", 0) / mib, 1),
        "glibc_free_mib": round(malloc.get("fordblks", 0) / mib, 1),
        "glibc_mapped_mib": round(malloc.get("hblkhd", 0) / mib, 1),
        "duckdb_mib": round(duck.get("total", 0) / mib, 1) if "total" in duck else None,
        "arrow_mib": round(sample["arrow"]["allocated"] / mib, 1),
        "python_traced_mib": round((sample["python"].get("traced") or 0) / mib, 1),
        "gc_objects": sample["python"]["gc_objects"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("directory", type=Path)
    ap.add_argument("--from-s", type=int, default=180, help="the first file: the one nearest this second")
    ap.add_argument("--to-s", type=int, default=None, help="the second file (default: the last)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--group", choices=("traceback", "frame"), default="traceback")
    args = ap.parse_args()
    directory: Path = args.directory
    files = sorted(directory.glob("tracemalloc-*.pickle"))
    if len(files) < 2:
        sys.exit(f"need two tracemalloc files in {args.directory}, found {len(files)}")

    def nearest(s: int) -> Path:
        return min(files, key=lambda p: abs(_seconds(p) - s))

    first, last = nearest(args.from_s), (nearest(args.to_s) if args.to_s is not None else files[-1])
    (traced_a, a), (traced_b, b) = _load(first), _load(last)
    ta, tb = _totals(a, args.group), _totals(b, args.group)
    rows: list[dict[str, Any]] = []
    for k in set(ta) | set(tb):
        sa, ca = ta.get(k, (0, 0))
        sb, cb = tb.get(k, (0, 0))
        grew = round((sb - sa) / 1024, 1)
        rows.append({"grew_kib": grew, "blocks": cb - ca, "now_kib": round(sb / 1024, 1), "where": k})
    rows.sort(key=lambda r: -r["grew_kib"])
    mem = args.directory / "memory.jsonl"
    samples = [json.loads(line) for line in mem.read_text().splitlines()] if mem.exists() else []
    out = {
        "from": {"file": first.name, "traced_mib": round(traced_a / 2**20, 1)},
        "to": {"file": last.name, "traced_mib": round(traced_b / 2**20, 1)},
        "memory": [_short(_sample_at(samples, _seconds(first))), _short(_sample_at(samples, _seconds(last)))],
        "grew": rows[: args.top],
        "shrank": sorted(rows, key=lambda r: r["grew_kib"])[:5],
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
