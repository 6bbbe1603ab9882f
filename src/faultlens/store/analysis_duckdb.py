"""Analysis results in the store's DuckDB file: error groups, templates, windows, incidents.

Tables (created on open; ``ANALYSIS_SCHEMA_VERSION`` is kept in ``analysis_state``)::

    error_groups          one row per group, replaced by each new snapshot
    error_group_counts    (group, bucket start) -> count, replaced per bucket
    error_group_samples   (group, trace id), only ever added to
    error_group_merges    (group) -> the group a person merged it into (flat: never a chain)
    log_templates         (service, template id) -> text, first/last seen, count, last change
    log_template_counts   (service, window, template id) -> count        appended
    log_template_changes  NEW / MISSING templates per closed window      appended
    red_windows           RED per (service, operation, kind, window)     appended; sketches as bytes
    edge_windows          calls per (caller, callee, window)             appended; sketches as bytes
    anomalies             one row per anomaly id (stable), first write wins
    incidents             one row per incident id, replaced on each update; its ranked root
                          causes (status, reason, time, JSON) are set apart by the RCA worker
    incident_members      (incident, anomaly)
    analysis_state        (name) -> JSON state of one analysis core, for restarts

Window tables are appended, not upserted: a window written twice (a restart closed it again
with the rest of its data) is merged by the reader, counts added and sketches merged, so
neither half is lost. Each :meth:`DuckDBAnalysisStore.write_results` call is one transaction
built from a few Arrow inserts, whatever the number of items.

The store opens its own connection on the same file; DuckDB shares one database instance
per file within a process, so this sees and is seen by :class:`~.duckdb_store.DuckDBStore`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from faultlens.analysis.anomaly.types import Anomaly, Direction, SeriesKey, SeriesKind
from faultlens.analysis.errors.grouping import ErrorGroup
from faultlens.analysis.errors.model import Category, ClassificationSource, ErrorType
from faultlens.analysis.incidents.types import Incident, IncidentState, Severity
from faultlens.analysis.sketch import QuantileSketch
from faultlens.errors import StoreError
from faultlens.rca.model import RcaAnswer
from faultlens.store._connection import ALIAS, SharedConnection, open_store_file, rollback
from faultlens.store.analysis_base import (
    AnalysisResults,
    AnomalyQuery,
    ErrorGroupLinks,
    ErrorGroupQuery,
    IncidentQuery,
    RedQuery,
    RedRow,
    StoredErrorGroup,
    StoredTemplate,
    TemplateQuery,
)

__all__ = ["ANALYSIS_SCHEMA_VERSION", "DuckDBAnalysisStore"]

ANALYSIS_SCHEMA_VERSION = 2
# What each version added to the one before, run in order on an older file (idempotent).
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (
        "ALTER TABLE incidents ADD COLUMN IF NOT EXISTS rca_status VARCHAR",
        "ALTER TABLE incidents ADD COLUMN IF NOT EXISTS rca_reason VARCHAR",
        "ALTER TABLE incidents ADD COLUMN IF NOT EXISTS rca_at BIGINT",
        "ALTER TABLE incidents ADD COLUMN IF NOT EXISTS root_causes VARCHAR",
    ),
}

# Analysis tables that are series over time, with the column that dates a row: they grow for
# as long as the server runs, so the store's retention applies to them as to the spans
# (``RetentionTask``). ``error_group_counts`` also has a primary key, whose ART index DuckDB
# holds whole in the store's memory limit: without retention it would fill it in the end.
# The in-memory grouper keeps a day of buckets, less than any useful retention.
SERIES_TABLES = (
    ("error_group_counts", "bucket_start"),
    ("log_template_counts", "window_start"),
    ("log_template_changes", "window_start"),
    ("red_windows", "window_start"),
    ("edge_windows", "window_start"),
)
# What else goes by retention, in this order (each statement takes the cutoff): error groups
# and log templates not seen since it (a group or template seen again is written afresh by
# the next upsert), resolved incidents and the anomalies no kept incident names.
_EXPIRE_ROWS = (
    """DELETE FROM error_group_samples WHERE group_id IN (
        SELECT group_id FROM error_groups WHERE last_seen < ?)""",
    "DELETE FROM error_groups WHERE last_seen < ?",
    # A merge made before the cutoff whose member group is gone: only its return could use it.
    """DELETE FROM error_group_merges WHERE merged_unix_nano < ?
        AND group_id NOT IN (SELECT group_id FROM error_groups)""",
    "DELETE FROM log_templates WHERE last_seen < ?",
    f"""DELETE FROM incident_members WHERE incident_id IN (
        SELECT id FROM incidents WHERE state = '{IncidentState.RESOLVED.value}' AND end_ns < ?)""",
    f"DELETE FROM incidents WHERE state = '{IncidentState.RESOLVED.value}' AND end_ns < ?",
    """DELETE FROM anomalies WHERE window_start < ?
        AND id NOT IN (SELECT anomaly_id FROM incident_members)""",
)
_SCHEMA_KEY = "_schema"

_DDL = (
    """
    CREATE TABLE IF NOT EXISTS error_groups (
        group_id VARCHAR PRIMARY KEY,
        service VARCHAR NOT NULL,
        exception_type VARCHAR NOT NULL,
        message_template VARCHAR NOT NULL,
        top_frame VARCHAR NOT NULL,
        category VARCHAR NOT NULL,
        type VARCHAR NOT NULL,
        classification_source VARCHAR NOT NULL,
        confidence DOUBLE NOT NULL,
        rule VARCHAR NOT NULL,
        first_seen BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        count BIGINT NOT NULL,
        services VARCHAR[] NOT NULL,
        operations VARCHAR[] NOT NULL,
        peers VARCHAR[] NOT NULL,
        sample_message VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS error_group_counts (
        group_id VARCHAR NOT NULL,
        bucket_start BIGINT NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (group_id, bucket_start)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS error_group_samples (
        group_id VARCHAR NOT NULL,
        trace_id BLOB NOT NULL,
        position INTEGER NOT NULL,
        PRIMARY KEY (group_id, trace_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS error_group_merges (
        group_id VARCHAR PRIMARY KEY,
        into_id VARCHAR NOT NULL,
        merged_unix_nano BIGINT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS log_templates (
        service VARCHAR NOT NULL,
        template_id INTEGER NOT NULL,
        template VARCHAR NOT NULL,
        first_seen BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        count BIGINT NOT NULL,
        last_change VARCHAR,
        last_change_window BIGINT,
        PRIMARY KEY (service, template_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS log_template_counts (
        service VARCHAR NOT NULL,
        window_start BIGINT NOT NULL,
        window_ns BIGINT NOT NULL,
        template_id INTEGER NOT NULL,
        count BIGINT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS log_template_changes (
        kind VARCHAR NOT NULL,
        service VARCHAR NOT NULL,
        template_id INTEGER NOT NULL,
        template VARCHAR NOT NULL,
        window_start BIGINT NOT NULL,
        window_ns BIGINT NOT NULL,
        observed BIGINT NOT NULL,
        expected DOUBLE NOT NULL,
        baseline_presence DOUBLE NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS red_windows (
        service VARCHAR NOT NULL,
        operation VARCHAR NOT NULL,
        span_kind TINYINT NOT NULL,
        window_start BIGINT NOT NULL,
        window_ns BIGINT NOT NULL,
        requests BIGINT NOT NULL,
        errors BIGINT NOT NULL,
        duration_sum DOUBLE NOT NULL,
        latency BLOB NOT NULL,
        self_time_sum DOUBLE NOT NULL,
        self_time BLOB NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS edge_windows (
        caller VARCHAR NOT NULL,
        callee VARCHAR NOT NULL,
        window_start BIGINT NOT NULL,
        window_ns BIGINT NOT NULL,
        calls BIGINT NOT NULL,
        errors BIGINT NOT NULL,
        duration_sum DOUBLE NOT NULL,
        latency BLOB NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS anomalies (
        id VARCHAR PRIMARY KEY,
        kind VARCHAR NOT NULL,
        service VARCHAR NOT NULL,
        name VARCHAR NOT NULL,
        peer VARCHAR NOT NULL,
        resource VARCHAR NOT NULL,
        window_start BIGINT NOT NULL,
        window_ns BIGINT NOT NULL,
        observed DOUBLE NOT NULL,
        expected DOUBLE NOT NULL,
        score DOUBLE NOT NULL,
        direction VARCHAR NOT NULL,
        explanation VARCHAR NOT NULL,
        volume DOUBLE NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS incidents (
        id VARCHAR PRIMARY KEY,
        state VARCHAR NOT NULL,
        severity INTEGER NOT NULL,
        start_ns BIGINT NOT NULL,
        end_ns BIGINT NOT NULL,
        opened_ns BIGINT NOT NULL,
        resolved_ns BIGINT,
        services VARCHAR[] NOT NULL,
        title VARCHAR NOT NULL,
        updated_unix_nano BIGINT NOT NULL,
        rca_status VARCHAR,
        rca_reason VARCHAR,
        rca_at BIGINT,
        root_causes VARCHAR
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS incident_members (
        incident_id VARCHAR NOT NULL,
        anomaly_id VARCHAR NOT NULL,
        PRIMARY KEY (incident_id, anomaly_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS analysis_state (
        name VARCHAR PRIMARY KEY,
        state VARCHAR NOT NULL,
        updated_unix_nano BIGINT NOT NULL
    )
    """,
)

_ANOMALY_COLUMNS = (
    "id, kind, service, name, peer, resource, window_start, window_ns, observed, expected, "
    "score, direction, explanation, volume"
)
_GROUP_COLUMNS = (
    "group_id, service, exception_type, message_template, top_frame, category, type, "
    "classification_source, confidence, rule, first_seen, last_seen, count, services, operations, "
    "peers, sample_message"
)
_INCIDENT_COLUMNS = "id, state, severity, start_ns, end_ns, opened_ns, resolved_ns, services, title"
INT64_MAX = 2**63 - 1
MAX_MERGED_SAMPLES = 20  # sample traces of a merged group: its own first, then its members'


def _range(time_range: Any) -> tuple[int, int]:
    return (0, INT64_MAX) if time_range is None else (time_range.start_ns, time_range.end_ns)


class DuckDBAnalysisStore:
    """:class:`~faultlens.store.analysis_base.AnalysisStore` over a DuckDB file. Thread-safe."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self._con = open_store_file(self.path)
        except duckdb.Error as e:
            raise StoreError(f"cannot open the analysis tables in {self.path}: {e}") from e
        self._lock = threading.Lock()
        self._db = SharedConnection(self._con, "analysis store", self.path, database=ALIAS)
        try:
            self._migrate()
        except (duckdb.Error, StoreError) as e:
            self._con.close()
            raise (
                e if isinstance(e, StoreError) else StoreError(f"analysis schema in {self.path}: {e}")
            ) from e

    def _migrate(self) -> None:
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            for ddl in _DDL:
                con.execute(ddl)
            row = con.execute("SELECT state FROM analysis_state WHERE name = ?", [_SCHEMA_KEY]).fetchone()
            found = int(json.loads(row[0])["version"]) if row else None
            if found is not None and found > ANALYSIS_SCHEMA_VERSION:
                raise StoreError(
                    f"the analysis tables have schema version {found}, newer than this faultlens "
                    f"({ANALYSIS_SCHEMA_VERSION})"
                )
            for version in range(found or ANALYSIS_SCHEMA_VERSION, ANALYSIS_SCHEMA_VERSION):
                for ddl in _MIGRATIONS[version + 1]:
                    con.execute(ddl)
            if found != ANALYSIS_SCHEMA_VERSION:
                con.execute(
                    "INSERT INTO analysis_state VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                    "state = excluded.state, updated_unix_nano = excluded.updated_unix_nano",
                    [_SCHEMA_KEY, json.dumps({"version": ANALYSIS_SCHEMA_VERSION}), time.time_ns()],
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def enforce_retention(self, now_unix_nano: int, retention_ns: int) -> int:
        """Delete, in one transaction, what is dated before ``now - retention``: the rows of
        the series tables (:data:`SERIES_TABLES`), the error groups (with their samples) and
        log templates last seen before it, the resolved incidents that ended before it (with
        their member rows), and the anomalies whose window started before it and that no
        incident still kept names; how many rows went. Open incidents stay whatever their
        age, and so do their anomalies."""
        cutoff = now_unix_nano - retention_ns
        deleted = 0
        with self._lock, self._cursor() as cur:
            cur.execute("BEGIN TRANSACTION")
            try:
                for table, column in SERIES_TABLES:
                    row = cur.execute(f"DELETE FROM {table} WHERE {column} < ?", [cutoff]).fetchone()
                    deleted += int(row[0]) if row else 0
                for sql in _EXPIRE_ROWS:
                    row = cur.execute(sql, [cutoff]).fetchone()
                    deleted += int(row[0]) if row else 0
                cur.execute("COMMIT")
            except BaseException:
                rollback(cur)
                raise
        return deleted

    def _cursor(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return self._db.cursor()

    # --- writing ---------------------------------------------------------------------------

    def write_results(self, results: AnalysisResults) -> None:
        """One transaction for everything one analysis step produced."""
        if not results:
            return
        with self._lock, self._cursor() as cur:
            cur.execute("BEGIN TRANSACTION")
            try:
                self._write_groups(cur, results.error_groups)
                self._write_templates(cur, results)
                self._write_windows(cur, results)
                self._write_anomalies(cur, results.anomalies)
                self._write_incidents(cur, results.incidents)
                cur.execute("COMMIT")
            except BaseException:
                rollback(cur)
                raise

    @staticmethod
    def _insert(cur: duckdb.DuckDBPyConnection, sql: str, table: pa.Table) -> None:
        """Run ``sql`` (which reads ``_rows``) over ``table``; nothing for an empty table."""
        if table.num_rows == 0:
            return
        cur.register("_rows", table)
        try:
            cur.execute(sql)
        finally:
            cur.unregister("_rows")

    def _write_groups(self, cur: duckdb.DuckDBPyConnection, groups: Sequence[ErrorGroup]) -> None:
        if not groups:
            return
        latest = {g.group_id: g for g in groups}.values()  # one row per key in one upsert
        rows = pa.table(
            {
                "group_id": [g.group_id for g in latest],
                "service": [g.service for g in latest],
                "exception_type": [g.exception_type for g in latest],
                "message_template": [g.message_template for g in latest],
                "top_frame": [g.top_frame for g in latest],
                "category": [g.category.value for g in latest],
                "type": [g.type.value for g in latest],
                "classification_source": [g.classification_source.value for g in latest],
                "confidence": pa.array([g.confidence for g in latest], pa.float64()),
                "rule": [g.rule for g in latest],
                "first_seen": pa.array([g.first_seen_ns for g in latest], pa.int64()),
                "last_seen": pa.array([g.last_seen_ns for g in latest], pa.int64()),
                "count": pa.array([g.count for g in latest], pa.int64()),
                "services": pa.array([list(g.services) for g in latest], pa.list_(pa.string())),
                "operations": pa.array([list(g.operations) for g in latest], pa.list_(pa.string())),
                "peers": pa.array([list(g.peers) for g in latest], pa.list_(pa.string())),
                "sample_message": [g.sample_message for g in latest],
            }
        )
        updates = ", ".join(f"{c} = excluded.{c}" for c in _GROUP_COLUMNS.split(", ")[1:])
        self._insert(
            cur,
            f"INSERT INTO error_groups SELECT * FROM _rows ON CONFLICT (group_id) DO UPDATE SET {updates}",
            rows,
        )
        buckets = {(g.group_id, s): c for g in latest for s, c in g.buckets}
        self._insert(
            cur,
            "INSERT INTO error_group_counts SELECT * FROM _rows "
            "ON CONFLICT (group_id, bucket_start) DO UPDATE SET count = excluded.count",
            pa.table(
                {
                    "group_id": [k[0] for k in buckets],
                    "bucket_start": pa.array([k[1] for k in buckets], pa.int64()),
                    "count": pa.array(list(buckets.values()), pa.int64()),
                }
            ),
        )
        samples = [(g.group_id, t, i) for g in latest for i, t in enumerate(g.sample_trace_ids)]
        self._insert(
            cur,
            "INSERT INTO error_group_samples SELECT * FROM _rows ON CONFLICT DO NOTHING",
            pa.table(
                {
                    "group_id": [s[0] for s in samples],
                    "trace_id": pa.array([s[1] for s in samples], pa.binary()),
                    "position": pa.array([s[2] for s in samples], pa.int32()),
                }
            ),
        )

    def _write_templates(self, cur: duckdb.DuckDBPyConnection, results: AnalysisResults) -> None:
        seen: dict[tuple[str, int], Any] = {}
        for t in results.templates:  # merge repeats of one key within the step
            key = (t.service, t.template_id)
            prev = seen.get(key)
            if prev is None:
                seen[key] = [t.template, t.first_seen_ns, t.last_seen_ns, t.lines]
            else:
                prev[0] = t.template
                prev[1] = min(prev[1], t.first_seen_ns)
                prev[2] = max(prev[2], t.last_seen_ns)
                prev[3] += t.lines
        if seen:
            values = list(seen.values())
            self._insert(
                cur,
                "INSERT INTO log_templates SELECT *, NULL, NULL FROM _rows ON CONFLICT DO UPDATE SET "
                "template = excluded.template, first_seen = least(log_templates.first_seen, "
                "excluded.first_seen), last_seen = greatest(log_templates.last_seen, excluded.last_seen), "
                "count = log_templates.count + excluded.count",
                pa.table(
                    {
                        "service": [k[0] for k in seen],
                        "template_id": pa.array([k[1] for k in seen], pa.int32()),
                        "template": [v[0] for v in values],
                        "first_seen": pa.array([v[1] for v in values], pa.int64()),
                        "last_seen": pa.array([v[2] for v in values], pa.int64()),
                        "count": pa.array([v[3] for v in values], pa.int64()),
                    }
                ),
            )
        counts = [
            (w.service, w.window.start_ns, w.window.duration_ns, tid, c)
            for w in results.template_windows
            for tid, c in w.counts
        ]
        self._insert(
            cur,
            "INSERT INTO log_template_counts SELECT * FROM _rows",
            pa.table(
                {
                    "service": [r[0] for r in counts],
                    "window_start": pa.array([r[1] for r in counts], pa.int64()),
                    "window_ns": pa.array([r[2] for r in counts], pa.int64()),
                    "template_id": pa.array([r[3] for r in counts], pa.int32()),
                    "count": pa.array([r[4] for r in counts], pa.int64()),
                }
            ),
        )
        changes = results.template_changes
        if changes:
            table = pa.table(
                {
                    "kind": [c.kind.value for c in changes],
                    "service": [c.service for c in changes],
                    "template_id": pa.array([c.template_id for c in changes], pa.int32()),
                    "template": [c.template for c in changes],
                    "window_start": pa.array([c.window.start_ns for c in changes], pa.int64()),
                    "window_ns": pa.array([c.window.duration_ns for c in changes], pa.int64()),
                    "observed": pa.array([c.observed for c in changes], pa.int64()),
                    "expected": pa.array([c.expected for c in changes], pa.float64()),
                    "baseline_presence": pa.array([c.baseline_presence for c in changes], pa.float64()),
                }
            )
            self._insert(cur, "INSERT INTO log_template_changes SELECT * FROM _rows", table)
            # The latest change per template, on the template's row.
            self._insert(
                cur,
                "UPDATE log_templates SET last_change = c.kind, last_change_window = c.window_start "
                "FROM (SELECT service, template_id, arg_max(kind, window_start) AS kind, "
                "max(window_start) AS window_start FROM _rows GROUP BY ALL) AS c "
                "WHERE log_templates.service = c.service AND log_templates.template_id = c.template_id",
                table,
            )

    def _write_windows(self, cur: duckdb.DuckDBPyConnection, results: AnalysisResults) -> None:
        red = results.red_windows
        self._insert(
            cur,
            "INSERT INTO red_windows SELECT * FROM _rows",
            pa.table(
                {
                    "service": [w.service for w in red],
                    "operation": [w.operation for w in red],
                    "span_kind": pa.array([w.span_kind for w in red], pa.int8()),
                    "window_start": pa.array([w.window_start_ns for w in red], pa.int64()),
                    "window_ns": pa.array([w.window_ns for w in red], pa.int64()),
                    "requests": pa.array([w.requests for w in red], pa.int64()),
                    "errors": pa.array([w.errors for w in red], pa.int64()),
                    "duration_sum": pa.array([w.duration_sum_ns for w in red], pa.float64()),
                    "latency": pa.array([w.latency.to_bytes() for w in red], pa.binary()),
                    "self_time_sum": pa.array([w.self_time_sum_ns for w in red], pa.float64()),
                    "self_time": pa.array([w.self_time.to_bytes() for w in red], pa.binary()),
                }
            ),
        )
        edges = results.edge_windows
        self._insert(
            cur,
            "INSERT INTO edge_windows SELECT * FROM _rows",
            pa.table(
                {
                    "caller": [e.caller for e in edges],
                    "callee": [e.callee for e in edges],
                    "window_start": pa.array([e.window_start_ns for e in edges], pa.int64()),
                    "window_ns": pa.array([e.window_ns for e in edges], pa.int64()),
                    "calls": pa.array([e.calls for e in edges], pa.int64()),
                    "errors": pa.array([e.errors for e in edges], pa.int64()),
                    "duration_sum": pa.array([e.duration_sum_ns for e in edges], pa.float64()),
                    "latency": pa.array([e.latency.to_bytes() for e in edges], pa.binary()),
                }
            ),
        )

    @staticmethod
    def _anomaly_table(anomalies: Sequence[Anomaly]) -> pa.Table:
        return pa.table(
            {
                "id": [a.id for a in anomalies],
                "kind": [a.key.kind.value for a in anomalies],
                "service": [a.key.service for a in anomalies],
                "name": [a.key.name for a in anomalies],
                "peer": [a.key.peer for a in anomalies],
                "resource": [a.key.resource for a in anomalies],
                "window_start": pa.array([a.window_start_ns for a in anomalies], pa.int64()),
                "window_ns": pa.array([a.window_ns for a in anomalies], pa.int64()),
                "observed": pa.array([a.observed for a in anomalies], pa.float64()),
                "expected": pa.array([a.expected for a in anomalies], pa.float64()),
                "score": pa.array([a.score for a in anomalies], pa.float64()),
                "direction": [a.direction.value for a in anomalies],
                "explanation": [a.explanation for a in anomalies],
                "volume": pa.array([a.volume for a in anomalies], pa.float64()),
            }
        )

    def _write_anomalies(self, cur: duckdb.DuckDBPyConnection, anomalies: Sequence[Anomaly]) -> None:
        if anomalies:
            unique = list({a.id: a for a in anomalies}.values())
            self._insert(
                cur,
                "INSERT INTO anomalies SELECT * FROM _rows ON CONFLICT DO NOTHING",
                self._anomaly_table(unique),
            )

    def _write_incidents(self, cur: duckdb.DuckDBPyConnection, incidents: Sequence[Incident]) -> None:
        if not incidents:
            return
        latest = list({i.id: i for i in incidents}.values())
        now = time.time_ns()
        rows = pa.table(
            {
                "id": [i.id for i in latest],
                "state": [i.state.value for i in latest],
                "severity": pa.array([int(i.severity) for i in latest], pa.int32()),
                "start_ns": pa.array([i.start_ns for i in latest], pa.int64()),
                "end_ns": pa.array([i.end_ns for i in latest], pa.int64()),
                "opened_ns": pa.array([i.opened_ns for i in latest], pa.int64()),
                "resolved_ns": pa.array([i.resolved_ns for i in latest], pa.int64()),
                "services": pa.array([list(i.services) for i in latest], pa.list_(pa.string())),
                "title": [i.title for i in latest],
                "updated_unix_nano": pa.array([now] * len(latest), pa.int64()),
            }
        )
        updates = ", ".join(
            f"{c} = excluded.{c}" for c in [*_INCIDENT_COLUMNS.split(", ")[1:], "updated_unix_nano"]
        )
        # Named columns: the root-cause columns are the RCA worker's, and an update of the
        # incident leaves them as they are.
        self._insert(
            cur,
            f"INSERT INTO incidents ({_INCIDENT_COLUMNS}, updated_unix_nano) SELECT * FROM _rows "
            f"ON CONFLICT (id) DO UPDATE SET {updates}",
            rows,
        )
        members = {(i.id, a.id): a for i in latest for a in i.anomalies}
        self._write_anomalies(cur, list(members.values()))
        self._insert(
            cur,
            "INSERT INTO incident_members SELECT * FROM _rows ON CONFLICT DO NOTHING",
            pa.table({"incident_id": [k[0] for k in members], "anomaly_id": [k[1] for k in members]}),
        )

    def write_root_causes(self, incident_id: str, answer: RcaAnswer) -> bool:
        text = json.dumps(answer.to_data(), separators=(",", ":"))
        with self._lock, self._cursor() as cur:
            row = cur.execute(
                "UPDATE incidents SET rca_status = ?, rca_reason = ?, rca_at = ?, root_causes = ? "
                "WHERE id = ? RETURNING id",
                [answer.status.value, answer.reason, answer.at_ns, text, incident_id],
            ).fetchall()
        return bool(row)

    # --- state -----------------------------------------------------------------------------

    def save_state(self, name: str, state: dict[str, Any]) -> None:
        if name == _SCHEMA_KEY:
            raise ValueError(f"{_SCHEMA_KEY!r} is reserved")
        text = json.dumps(state, separators=(",", ":"))
        with self._lock, self._cursor() as cur:
            cur.execute(
                "INSERT INTO analysis_state VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "state = excluded.state, updated_unix_nano = excluded.updated_unix_nano",
                [name, text, time.time_ns()],
            )

    def load_state(self, name: str) -> dict[str, Any] | None:
        with self._cursor() as cur:
            row = cur.execute("SELECT state FROM analysis_state WHERE name = ?", [name]).fetchone()
        if row is None:
            return None
        value = json.loads(row[0])
        if not isinstance(value, dict):
            raise StoreError(f"analysis state {name!r} is not a JSON object")
        return value

    # --- reading ---------------------------------------------------------------------------

    def error_groups(self, query: ErrorGroupQuery) -> list[StoredErrorGroup]:
        """Groups merged with their members (``error_group_merges``): one row per group as
        shown, its times, counts and in-range count summed over its members; the service
        filter holds when any member has the service, the category is the shown group's."""
        if query.limit <= 0:
            return []
        lo, hi = _range(query.time_range)
        in_range = "g.count"
        params: list[Any] = []
        if query.time_range is not None:
            # Errors in the buckets that start inside the range.
            in_range = (
                "coalesce((SELECT sum(c.count) FROM error_group_counts c WHERE c.group_id = g.group_id "
                "AND c.bucket_start >= ? AND c.bucket_start < ?), 0)"
            )
            params += [lo, hi]
        has_service = "true"
        if query.service is not None:
            has_service = "bool_or(g.service = ? OR list_contains(g.services, ?))"
            params += [query.service, query.service]
        conditions = ["r.first_seen < ?", "r.last_seen >= ?", "r.has_service"]
        params += [hi, lo]
        if query.category is not None:
            conditions.append("x.category = ?")
            params.append(query.category)
        sql = f"""
            WITH g AS (
                SELECT g.group_id, g.service, g.services, g.first_seen, g.last_seen, g.count,
                       coalesce(m.into_id, g.group_id) AS root, {in_range} AS in_range
                FROM error_groups g LEFT JOIN error_group_merges m ON m.group_id = g.group_id
            ), r AS (
                SELECT root, min(first_seen) AS first_seen, max(last_seen) AS last_seen,
                       sum(count) AS count, sum(in_range) AS in_range, {has_service} AS has_service,
                       list(group_id ORDER BY group_id) FILTER (WHERE group_id <> root) AS merged
                FROM g GROUP BY root
            )
            SELECT {_prefixed(_GROUP_COLUMNS, "x")}, r.first_seen, r.last_seen, r.count, r.in_range, r.merged
            FROM r JOIN error_groups x ON x.group_id = r.root
            WHERE {" AND ".join(conditions)}
            ORDER BY r.last_seen DESC, r.root LIMIT ?
        """
        with self._cursor() as cur:
            rows = cur.execute(sql, [*params, query.limit]).fetchall()
            groups = self._assemble(cur, rows)
        return [
            StoredErrorGroup(group, int(r[20]), tuple(r[21] or ()))
            for group, r in zip(groups, rows, strict=True)
        ]

    def error_group(self, group_id: str) -> ErrorGroup | None:
        with self._cursor() as cur:
            rows = cur.execute(
                f"""
                WITH root AS (
                    SELECT coalesce((SELECT into_id FROM error_group_merges WHERE group_id = ?), ?) AS id
                ), g AS (
                    SELECT g.* FROM error_groups g LEFT JOIN error_group_merges m ON m.group_id = g.group_id
                    WHERE coalesce(m.into_id, g.group_id) = (SELECT id FROM root)
                )
                SELECT {_prefixed(_GROUP_COLUMNS, "x")},
                       (SELECT min(first_seen) FROM g), (SELECT max(last_seen) FROM g),
                       (SELECT sum(count) FROM g), 0,
                       (SELECT list(group_id ORDER BY group_id) FROM g WHERE group_id <> x.group_id)
                FROM error_groups x WHERE x.group_id = (SELECT id FROM root)
                """,
                [group_id, group_id],
            ).fetchall()
            groups = self._assemble(cur, rows)
        return groups[0] if groups else None

    def _assemble(self, cur: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> list[ErrorGroup]:
        """Groups as shown from rows of the shown group's columns followed by the merged
        first seen, last seen, count, in-range count and member ids: buckets add up, and
        samples, services, operations and peers are the shown group's, then its members'."""
        members = {r[0]: [r[0], *(r[21] or ())] for r in rows}
        ids = [g for ids in members.values() for g in ids]
        samples = self._samples(cur, ids)
        buckets = self._buckets(cur, ids)
        lists: dict[str, tuple[list[str], list[str], list[str]]] = {}
        if any(len(m) > 1 for m in members.values()):
            lists = {
                r[0]: (list(r[1]), list(r[2]), list(r[3]))
                for r in cur.execute(
                    "SELECT group_id, services, operations, peers FROM error_groups "
                    "WHERE group_id IN (SELECT unnest(?))",
                    [ids],
                ).fetchall()
            }
        out = []
        for r in rows:
            ids = members[r[0]]
            base = _group(r[:17], buckets.get(r[0], ()), samples.get(r[0], ()))
            if len(ids) == 1:
                out.append(base)
                continue
            counts: dict[int, int] = {}
            for g in ids:
                for start, n in buckets.get(g, ()):
                    counts[start] = counts.get(start, 0) + n
            merged_lists = [
                tuple(dict.fromkeys(v for g in ids for v in lists.get(g, ([], [], []))[i])) for i in range(3)
            ]
            out.append(
                replace(
                    base,
                    first_seen_ns=int(r[17]),
                    last_seen_ns=int(r[18]),
                    count=int(r[19]),
                    buckets=tuple(sorted(counts.items())),
                    services=merged_lists[0],
                    operations=merged_lists[1],
                    peers=merged_lists[2],
                    sample_trace_ids=tuple(dict.fromkeys(t for g in ids for t in samples.get(g, ())))[
                        :MAX_MERGED_SAMPLES
                    ],
                )
            )
        return out

    def error_group_links(self, group_id: str) -> ErrorGroupLinks | None:
        """Merged and linked groups; "linked" is read from the stored sample trace ids (the
        first few traces of each group), so it ties groups that started failing together."""
        with self._cursor() as cur:
            row = cur.execute(
                """
                WITH root AS (
                    SELECT coalesce((SELECT into_id FROM error_group_merges WHERE group_id = ?), ?) AS id
                ), members AS (
                    SELECT g.group_id, g.service FROM error_groups g
                    LEFT JOIN error_group_merges m ON m.group_id = g.group_id
                    WHERE coalesce(m.into_id, g.group_id) = (SELECT id FROM root)
                ), linked AS (
                    SELECT DISTINCT coalesce(m.into_id, o.group_id) AS id
                    FROM error_group_samples s
                    JOIN error_group_samples t ON t.trace_id = s.trace_id AND t.group_id <> s.group_id
                    JOIN error_groups o ON o.group_id = t.group_id
                    LEFT JOIN error_group_merges m ON m.group_id = o.group_id
                    WHERE s.group_id IN (SELECT group_id FROM members)
                      AND o.service IN (SELECT service FROM members)
                )
                SELECT (SELECT id FROM root),
                       (SELECT list(group_id ORDER BY group_id) FROM members
                        WHERE group_id <> (SELECT id FROM root)),
                       (SELECT list(id ORDER BY id) FROM linked WHERE id <> (SELECT id FROM root)),
                       EXISTS (SELECT 1 FROM error_groups WHERE group_id = (SELECT id FROM root))
                """,
                [group_id, group_id],
            ).fetchone()
        if row is None or not row[3]:
            return None
        return ErrorGroupLinks(row[0], tuple(row[1] or ()), tuple(row[2] or ()))

    # --- people's edits --------------------------------------------------------------------

    def merge_error_groups(self, into: str, group_ids: Sequence[str]) -> tuple[str, ...]:
        """One transaction: every id must be a stored group; merges stay flat (see
        :class:`~faultlens.store.analysis_base.ErrorGroupEditor`)."""
        with self._lock, self._cursor() as cur:
            cur.execute("BEGIN TRANSACTION")
            try:
                wanted = [into, *group_ids]
                known = {
                    r[0]
                    for r in cur.execute(
                        "SELECT group_id FROM error_groups WHERE group_id IN (SELECT unnest(?))", [wanted]
                    ).fetchall()
                }
                if unknown := [g for g in wanted if g not in known]:
                    raise KeyError(unknown[0])
                roots = dict(cur.execute("SELECT group_id, into_id FROM error_group_merges").fetchall())
                root = roots.get(into, into)
                moving = {roots.get(g, g) for g in group_ids} - {root}
                if not moving:
                    raise ValueError(f"nothing to merge: every group given is already {root}")
                now = time.time_ns()
                cur.execute(
                    "UPDATE error_group_merges SET into_id = ?, merged_unix_nano = ? "
                    "WHERE into_id IN (SELECT unnest(?))",
                    [root, now, sorted(moving)],
                )
                cur.execute(
                    "INSERT INTO error_group_merges SELECT unnest(?), ?, ?",
                    [sorted(moving), root, now],
                )
                members = cur.execute(
                    "SELECT list(group_id ORDER BY group_id) FROM error_group_merges WHERE into_id = ?",
                    [root],
                ).fetchone()
                cur.execute("COMMIT")
            except BaseException:
                rollback(cur)
                raise
        return tuple(members[0] or ()) if members else ()

    def split_error_group(self, group_id: str) -> tuple[str, ...]:
        with self._lock, self._cursor() as cur:
            rows = cur.execute(
                "DELETE FROM error_group_merges WHERE group_id = ? OR into_id = ? RETURNING group_id",
                [group_id, group_id],
            ).fetchall()
        return tuple(sorted(r[0] for r in rows))

    @staticmethod
    def _samples(cur: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, tuple[bytes, ...]]:
        if not ids:
            return {}
        rows = cur.execute(
            "SELECT group_id, list(trace_id ORDER BY position) FROM error_group_samples "
            "WHERE group_id IN (SELECT unnest(?)) GROUP BY group_id",
            [ids],
        ).fetchall()
        return {r[0]: tuple(bytes(t) for t in r[1]) for r in rows}

    @staticmethod
    def _buckets(cur: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, tuple[tuple[int, int], ...]]:
        if not ids:
            return {}
        rows = cur.execute(
            "SELECT group_id, list(struct_pack(s := bucket_start, c := count) ORDER BY bucket_start) "
            "FROM error_group_counts WHERE group_id IN (SELECT unnest(?)) GROUP BY group_id",
            [ids],
        ).fetchall()
        return {r[0]: tuple((int(b["s"]), int(b["c"])) for b in r[1]) for r in rows}

    def templates(self, query: TemplateQuery) -> list[StoredTemplate]:
        if query.limit <= 0:
            return []
        where, params = ("WHERE service = ?", [query.service]) if query.service is not None else ("", [])
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT service, template_id, template, first_seen, last_seen, count, last_change, "
                f"last_change_window FROM log_templates {where} "
                "ORDER BY count DESC, service, template_id LIMIT ?",
                [*params, query.limit],
            ).fetchall()
        return [
            StoredTemplate(r[0], int(r[1]), r[2], int(r[3]), int(r[4]), int(r[5]), r[6], r[7]) for r in rows
        ]

    def red_rows(self, query: RedQuery) -> list[RedRow]:
        lo, hi = _range(query.time_range)
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT operation, span_kind, window_start, window_ns, requests, errors, duration_sum, "
                "latency FROM red_windows WHERE service = ? AND window_start >= ? AND window_start < ? "
                "ORDER BY operation, span_kind, window_start",
                [query.service, lo, hi],
            ).fetchall()
        out: list[RedRow] = []
        for op, kind, start, length, req, err, dsum, blob in rows:
            sketch = QuantileSketch.from_bytes(bytes(blob))
            last = out[-1] if out else None
            if last is not None and (last.operation, last.span_kind, last.window_start_ns) == (
                op,
                kind,
                start,
            ):
                last.latency.merge(sketch)  # the same window written twice: merge the halves
                out[-1] = RedRow(
                    op, kind, start, length, last.requests + req, last.errors + err,
                    last.duration_sum_ns + dsum, last.latency,
                )  # fmt: skip
                continue
            out.append(
                RedRow(op, int(kind), int(start), int(length), int(req), int(err), float(dsum), sketch)
            )
        return out

    def anomalies(self, query: AnomalyQuery) -> list[Anomaly]:
        if query.limit <= 0:
            return []
        lo, hi = _range(query.time_range)
        conditions = ["window_start >= ?", "window_start < ?"]
        params: list[Any] = [lo, hi]
        if query.service is not None:
            conditions.append("(service = ? OR peer = ?)")
            params += [query.service, query.service]
        with self._cursor() as cur:
            rows = cur.execute(
                f"SELECT {_ANOMALY_COLUMNS} FROM anomalies WHERE {' AND '.join(conditions)} "
                "ORDER BY window_start DESC, score DESC, id LIMIT ?",
                [*params, query.limit],
            ).fetchall()
        return [_anomaly(r) for r in rows]

    def incidents(self, query: IncidentQuery) -> list[Incident]:
        if query.limit <= 0:
            return []
        conditions: list[str] = []
        params: list[Any] = []
        if query.state is not None:
            conditions.append("state = ?")
            params.append(query.state)
        if query.time_range is not None:
            conditions.append("start_ns < ? AND greatest(end_ns, coalesce(resolved_ns, end_ns)) > ?")
            params += [query.time_range.end_ns, query.time_range.start_ns]
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        with self._cursor() as cur:
            rows = cur.execute(
                f"SELECT {_INCIDENT_COLUMNS} FROM incidents {where} ORDER BY opened_ns DESC, id LIMIT ?",
                [*params, query.limit],
            ).fetchall()
            members = self._members(cur, [r[0] for r in rows])
        return [_incident(r, members.get(r[0], ())) for r in rows]

    def incident(self, incident_id: str) -> Incident | None:
        with self._cursor() as cur:
            row = cur.execute(
                f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE id = ?", [incident_id]
            ).fetchone()
            if row is None:
                return None
            members = self._members(cur, [incident_id])
        return _incident(row, members.get(incident_id, ()))

    def root_causes(self, incident_ids: list[str]) -> dict[str, RcaAnswer]:
        if not incident_ids:
            return {}
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT id, root_causes FROM incidents WHERE id IN (SELECT unnest(?)) "
                "AND root_causes IS NOT NULL",
                [incident_ids],
            ).fetchall()
        out: dict[str, RcaAnswer] = {}
        for incident_id, text in rows:
            try:
                out[incident_id] = RcaAnswer.from_data(json.loads(text))
            except (ValueError, KeyError, TypeError) as e:
                raise StoreError(
                    f"the root causes stored with incident {incident_id} are unreadable: {e}"
                ) from e
        return out

    @staticmethod
    def _members(cur: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, tuple[Anomaly, ...]]:
        if not ids:
            return {}
        rows = cur.execute(
            f"SELECT m.incident_id, {_prefixed(_ANOMALY_COLUMNS, 'a')} FROM incident_members m "
            "JOIN anomalies a ON a.id = m.anomaly_id WHERE m.incident_id IN (SELECT unnest(?)) "
            "ORDER BY a.window_start, a.score DESC, a.id",
            [ids],
        ).fetchall()
        out: dict[str, list[Anomaly]] = {}
        for r in rows:
            out.setdefault(r[0], []).append(_anomaly(r[1:]))
        return {k: tuple(v) for k, v in out.items()}


def _prefixed(columns: str, alias: str) -> str:
    return ", ".join(f"{alias}.{c}" for c in columns.split(", "))


def _group(
    row: Sequence[Any], buckets: tuple[tuple[int, int], ...], samples: tuple[bytes, ...]
) -> ErrorGroup:
    return ErrorGroup(
        group_id=row[0],
        service=row[1],
        exception_type=row[2],
        message_template=row[3],
        top_frame=row[4],
        category=Category(row[5]),
        type=ErrorType(row[6]),
        classification_source=ClassificationSource(row[7]),
        confidence=float(row[8]),
        rule=row[9],
        first_seen_ns=int(row[10]),
        last_seen_ns=int(row[11]),
        count=int(row[12]),
        buckets=buckets,
        services=tuple(row[13]),
        operations=tuple(row[14]),
        peers=tuple(row[15]),
        sample_trace_ids=samples,
        sample_message=row[16],
    )


def _anomaly(row: Sequence[Any]) -> Anomaly:
    return Anomaly(
        key=SeriesKey(SeriesKind(row[1]), row[2], row[3], row[4], row[5]),
        window_start_ns=int(row[6]),
        window_ns=int(row[7]),
        observed=float(row[8]),
        expected=float(row[9]),
        score=float(row[10]),
        direction=Direction(row[11]),
        explanation=row[12],
        volume=float(row[13]),
    )


def _incident(row: Sequence[Any], members: tuple[Anomaly, ...]) -> Incident:
    return Incident(
        id=row[0],
        state=IncidentState(row[1]),
        severity=Severity(int(row[2])),
        start_ns=int(row[3]),
        end_ns=int(row[4]),
        opened_ns=int(row[5]),
        resolved_ns=None if row[6] is None else int(row[6]),
        services=tuple(row[7]),
        anomalies=members,
        title=row[8],
    )
