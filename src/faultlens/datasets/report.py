"""Counting what a dataset reader could and could not use.

Real data is messy: rows that do not split into the right number of fields, files with
other columns, minutes with no log file. Readers never stop on those; they skip and count
here, per file kind and reason, so that a replay or an evaluation can say exactly what it
left out. One report is shared by every read of a dataset object and only grows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class KindReport:
    """Counters for one kind of file (``trace``, ``log``, ``metric``, ``fault_list`` ...)."""

    files_read: int = 0
    rows_read: int = 0
    rows_skipped: Counter[str] = field(default_factory=Counter)
    files_skipped: Counter[str] = field(default_factory=Counter)
    # Single values left out of rows that were otherwise read (e.g. a NaN metric cell).
    values_skipped: Counter[str] = field(default_factory=Counter)
    # Rows read with a value the reader corrected (e.g. a time column contradicting another).
    rows_corrected: Counter[str] = field(default_factory=Counter)

    @property
    def skipped(self) -> int:
        return sum(self.rows_skipped.values())


@dataclass(slots=True)
class ReadReport:
    """Rows read and skipped (with reasons) per file kind, plus files missing or unusable.

    ``rows_read`` counts rows turned into records; a skipped row is not counted as read.
    Mutable on purpose: readers add to it as they stream. Rows are counted each time they
    are read; a file skipped whole is counted once however often it is met (pass its
    ``path``). Use :meth:`as_dict` for a stable, JSON-ready snapshot.
    """

    kinds: dict[str, KindReport] = field(default_factory=dict)
    _skipped_paths: set[str] = field(default_factory=set, repr=False)

    def kind(self, kind: str) -> KindReport:
        report = self.kinds.get(kind)
        if report is None:
            report = self.kinds[kind] = KindReport()
        return report

    def file_read(self, kind: str) -> None:
        self.kind(kind).files_read += 1

    def row_read(self, kind: str, n: int = 1) -> None:
        self.kind(kind).rows_read += n

    def row_skipped(self, kind: str, reason: str, n: int = 1) -> None:
        self.kind(kind).rows_skipped[reason] += n

    def value_skipped(self, kind: str, reason: str, n: int = 1) -> None:
        self.kind(kind).values_skipped[reason] += n

    def row_corrected(self, kind: str, reason: str, n: int = 1) -> None:
        self.kind(kind).rows_corrected[reason] += n

    def file_skipped(self, kind: str, reason: str, path: object = None) -> None:
        if path is not None:
            key = f"{kind}:{path}"
            if key in self._skipped_paths:
                return
            self._skipped_paths.add(key)
        self.kind(kind).files_skipped[reason] += 1

    def rows_read(self, kind: str) -> int:
        return self.kinds[kind].rows_read if kind in self.kinds else 0

    def rows_skipped(self, kind: str, reason: str | None = None) -> int:
        if kind not in self.kinds:
            return 0
        skipped = self.kinds[kind].rows_skipped
        return skipped[reason] if reason is not None else sum(skipped.values())

    def files_skipped(self, kind: str, reason: str | None = None) -> int:
        if kind not in self.kinds:
            return 0
        skipped = self.kinds[kind].files_skipped
        return skipped[reason] if reason is not None else sum(skipped.values())

    def as_dict(self) -> dict[str, dict[str, object]]:
        return {
            kind: {
                "files_read": r.files_read,
                "rows_read": r.rows_read,
                "rows_skipped": dict(sorted(r.rows_skipped.items())),
                "files_skipped": dict(sorted(r.files_skipped.items())),
                "values_skipped": dict(sorted(r.values_skipped.items())),
                "rows_corrected": dict(sorted(r.rows_corrected.items())),
            }
            for kind, r in sorted(self.kinds.items())
        }

    def lines(self) -> list[str]:
        """One human-readable line per kind, and one per skip reason under it."""
        out: list[str] = []
        for kind, r in sorted(self.kinds.items()):
            out.append(f"{kind}: {r.files_read} files, {r.rows_read} rows read, {r.skipped} rows skipped")
            out.extend(f"  skipped {n} rows: {why}" for why, n in sorted(r.rows_skipped.items()))
            out.extend(f"  skipped {n} files: {why}" for why, n in sorted(r.files_skipped.items()))
            out.extend(f"  left out {n} values: {why}" for why, n in sorted(r.values_skipped.items()))
            out.extend(f"  corrected {n} rows: {why}" for why, n in sorted(r.rows_corrected.items()))
        return out
