"""Where things are in a Nezha-layout directory, and how to open them.

::

    DIR/rca_data/DATE/DATE-fault_list.json        fault labels
    DIR/rca_data/DATE/{trace,log}/HH_MM_<kind>.csv[.gz]   one file a minute
    DIR/rca_data/DATE/metric/*.csv[.gz]           one file per pod (or service), whole day
    DIR/construct_data/DATE/...                   fault-free minutes, same shape

Only names are read here, never contents, except :func:`open_text`. Anything that does not
fit (a directory that is not a date, a file name without ``HH_MM``) is counted in the
report and left alone.
"""

from __future__ import annotations

import datetime as dt
import filecmp
import gzip
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from faultlens.datasets.report import ReadReport

RCA = "rca_data"
CONSTRUCT = "construct_data"
ROOTS = (RCA, CONSTRUCT)
MINUTE_KINDS = ("trace", "log")

NS_PER_S = 1_000_000_000
NS_PER_MIN = 60 * NS_PER_S

_DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MINUTE_FILE = re.compile(r"^(?P<hh>\d{1,2})_(?P<mm>\d{2})_(?P<kind>[a-z]+)\.csv(?:\.gz)?$")
_CSV = re.compile(r"\.csv(?:\.gz)?$")


@dataclass(frozen=True, slots=True)
class MinuteFile:
    """One per-minute file. ``minute_ns`` is the UTC minute its name says (``HH_MM``).

    The name is only a label: a file holds roughly the minute before its label, and
    neighbouring files overlap, so readers filter rows by their own timestamps.
    """

    day: dt.date
    root: str
    kind: str
    minute_ns: int
    path: Path


def day_start_ns(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * NS_PER_S


def find_days(base: Path, report: ReadReport) -> list[dt.date]:
    """Every DATE directory under ``rca_data`` or ``construct_data``, sorted."""
    days: set[dt.date] = set()
    for root in ROOTS:
        root_dir = base / root
        if not root_dir.is_dir():
            continue
        for child in root_dir.iterdir():
            if not child.is_dir():
                continue
            day = _parse_day(child.name)
            if day is None:
                report.file_skipped("directory", "not a DATE directory", child)
                continue
            days.add(day)
    return sorted(days)


def day_dir(base: Path, root: str, day: dt.date) -> Path:
    return base / root / day.isoformat()


def minute_files(base: Path, day: dt.date, kind: str, report: ReadReport) -> list[MinuteFile]:
    """The ``kind`` minute files of one day from both roots, ordered by label.

    When both ``X.csv`` and ``X.csv.gz`` exist, one is read and the other counted as skipped.
    """
    found: list[MinuteFile] = []
    for root in ROOTS:
        kind_dir = day_dir(base, root, day) / kind
        if not kind_dir.is_dir():
            continue
        for path in _dedup_compressed(sorted(kind_dir.iterdir()), kind, report):
            m = _MINUTE_FILE.match(path.name)
            if m is None or m.group("kind") != kind:
                report.file_skipped(kind, "file name is not HH_MM_<kind>.csv[.gz]", path)
                continue
            hh, mm = int(m.group("hh")), int(m.group("mm"))
            if hh > 23 or mm > 59:
                report.file_skipped(kind, "file name is not HH_MM_<kind>.csv[.gz]", path)
                continue
            minute = day_start_ns(day) + (hh * 60 + mm) * NS_PER_MIN
            found.append(MinuteFile(day, root, kind, minute, path))
    found.sort(key=lambda f: (f.minute_ns, f.root))
    return found


def metric_files(base: Path, day: dt.date, report: ReadReport, *, skip_identical: bool = False) -> list[Path]:
    """Every CSV in the ``metric`` directories of one day, from both roots.

    ``construct_data`` often holds byte-identical copies of the ``rca_data`` metric files;
    with ``skip_identical`` those copies are left out (and counted) instead of being read
    twice. Copies that differ are kept; readers drop the rows they repeat.
    """
    paths: list[Path] = []
    by_name: dict[str, Path] = {}
    for root in ROOTS:
        kind_dir = day_dir(base, root, day) / "metric"
        if not kind_dir.is_dir():
            continue
        for path in _dedup_compressed(sorted(kind_dir.iterdir()), "metric", report):
            twin = by_name.get(path.name)
            if skip_identical and twin is not None and filecmp.cmp(twin, path, shallow=False):
                report.file_skipped("metric", f"identical copy of a {RCA} file", path)
                continue
            by_name.setdefault(path.name, path)
            paths.append(path)
    return paths


@dataclass(frozen=True, slots=True)
class EdgeFile:
    """A metric file of call edges: one ``CALLER_CALLEE`` column per edge, holding a latency
    quantile (``quantile``, in percent) as reported by the ``client`` (caller) or ``server``
    (callee) side (``source_50.csv`` and ``destination_50.csv`` in the OnlineBoutique copy)."""

    side: str
    quantile: int


_EDGE_NAME = re.compile(r"^(?P<side>source|destination)_(?P<q>\d{1,2})\.csv(?:\.gz)?$")


def edge_file(path: Path) -> EdgeFile | None:
    """What an edge metric file holds, told by its name; None for other files."""
    m = _EDGE_NAME.match(path.name)
    if m is None:
        return None
    return EdgeFile("client" if m.group("side") == "source" else "server", int(m.group("q")))


def fault_list_path(base: Path, day: dt.date) -> Path | None:
    d = day_dir(base, RCA, day)
    for name in (f"{day.isoformat()}-fault_list.json", f"{day.isoformat()}-fault_list.json.gz"):
        if (d / name).is_file():
            return d / name
    return None


def open_text(path: Path) -> TextIO:
    """Open a ``.csv`` or ``.csv.gz`` (or ``.json[.gz]``) file as UTF-8 text; bad bytes become U+FFFD."""
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace", newline="")
    return open(path, encoding="utf-8", errors="replace", newline="")


def _parse_day(name: str) -> dt.date | None:
    if not _DATE_DIR.match(name):
        return None
    try:
        return dt.date.fromisoformat(name)
    except ValueError:
        return None


def _dedup_compressed(paths: list[Path], kind: str, report: ReadReport) -> Iterator[Path]:
    """Keep CSV files only; of ``X.csv`` and ``X.csv.gz`` keep the compressed one."""
    names = {p.name for p in paths}
    for path in paths:
        if not path.is_file():
            continue
        if not _CSV.search(path.name):
            report.file_skipped(kind, "not a .csv or .csv.gz file", path)
            continue
        if not path.name.endswith(".gz") and path.name + ".gz" in names:
            report.file_skipped(kind, "plain copy of a .csv.gz file", path)
            continue
        yield path
