"""Read one CSV file row by row without ever stopping on a bad row.

The header names the columns; a file lacking a required column is skipped whole (it is
some other file with other columns). A row with the wrong number of fields, an
unparseable line or a truncated gzip stream is counted in the report and reading goes on
with what can still be read.
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Generator
from pathlib import Path
from typing import Any, TextIO

from faultlens.datasets.nezha.layout import open_text
from faultlens.datasets.report import ReadReport

# Log messages with stack traces exceed the csv module's default 128 KiB field limit.
_FIELD_LIMIT = 16 * 1024 * 1024
_READ_ERRORS = (OSError, EOFError, zlib.error, UnicodeError)
WRONG_FIELDS = "wrong number of CSV fields"


def read_csv(
    path: Path, kind: str, required: tuple[str, ...], report: ReadReport
) -> tuple[dict[str, int], Generator[list[str], None, None]] | None:
    """Return the column index and an iterator over well-formed rows, or None if unusable.

    Only rows with exactly as many fields as the header are yielded. The caller counts
    the rows it turns into records (``report.row_read``); this function counts the rest.
    The file is closed when the iterator is exhausted or garbage-collected.
    """
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    stream: TextIO | None = None
    try:
        stream = open_text(path)
        reader = csv.reader(stream)
        header = next(reader, None)
    except (*_READ_ERRORS, csv.Error) as e:
        if stream is not None:
            stream.close()
        report.file_skipped(kind, f"unreadable file ({type(e).__name__})", path)
        return None
    if not header:
        stream.close()
        report.file_skipped(kind, "empty file", path)
        return None
    header = [h.strip().lstrip("\ufeff") for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        stream.close()
        report.file_skipped(kind, f"other columns (no {', '.join(missing)})", path)
        return None
    report.file_read(kind)
    columns = {name: i for i, name in enumerate(header)}
    return columns, _rows(path, stream, reader, len(header), kind, report)


def _rows(
    path: Path, stream: TextIO, reader: Any, width: int, kind: str, report: ReadReport
) -> Generator[list[str], None, None]:
    with stream:
        while True:
            try:
                row: list[str] = next(reader)
            except StopIteration:
                return
            except csv.Error:
                report.row_skipped(kind, "unparseable CSV line")
                continue
            except _READ_ERRORS as e:
                report.file_skipped(kind, f"file cut short ({type(e).__name__}); rows before it kept", path)
                return
            if not row:
                report.row_skipped(kind, "empty line")
                continue
            if len(row) != width:
                report.row_skipped(kind, WRONG_FIELDS)
                continue
            yield row
