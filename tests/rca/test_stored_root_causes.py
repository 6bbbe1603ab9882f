"""Root causes stored with their incident (the analysis tables, schema version 2).

Checked on real DuckDB files: an answer written for an incident is read back whole, an
update of the incident by the analysis leaves it alone, an unknown incident is refused,
incidents can be asked for by the time they overlap, and a file of schema version 1 (no
root-cause columns) is migrated when opened, keeping its incidents.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import duckdb

from faultlens.analysis.incidents.types import IncidentState
from faultlens.rca.model import Finding, LogChange, LogEvidence, RcaAnswer, RcaStatus, Reason, RootCause
from faultlens.store.analysis_base import AnalysisResults, IncidentQuery
from faultlens.store.analysis_duckdb import ANALYSIS_SCHEMA_VERSION, DuckDBAnalysisStore
from faultlens.store.duckdb_store import DuckDBStore
from faultlens.types import TimeRange

from .synth import MIN
from .test_incident import T, _incident

ANSWER = RcaAnswer(
    status=RcaStatus.RANKED,
    reason="judged spans and logs",
    at_ns=T + 30 * MIN,
    root_causes=(
        RootCause(
            service="b",
            operation="/api/b",
            pod="b-1",
            reason=Reason.LOG_PATTERN,
            score=0.9,
            confidence=1.0,
            findings=(
                Finding(
                    "b",
                    Reason.LOG_PATTERN,
                    "/api/b",
                    "b-1",
                    0.9,
                    12.0,
                    "b: /api/b: ...",
                    first_ns=T,
                    last_ns=T + MIN,
                    trace_ids=(b"\x01" * 16,),
                    logs=(
                        LogEvidence(
                            "B#2", LogChange.MISSING, "B#<NUM> did something", "B#2 did something 42"
                        ),
                    ),
                ),
            ),
            error_groups=("g1",),
            sample_trace_ids=(b"\x01" * 16,),
        ),
    ),
    window=TimeRange(T, T + 5 * MIN),
    baseline=(TimeRange(T - 20 * MIN, T - 10 * MIN), TimeRange(T - 5 * MIN, T)),
    duration_s=0.5,
)


def _open(tmp_path: Path) -> tuple[DuckDBStore, DuckDBAnalysisStore]:
    path = tmp_path / "faultlens.duckdb"
    return DuckDBStore(path), DuckDBAnalysisStore(path)


def test_root_causes_are_read_back_whole_and_survive_updates_of_the_incident(tmp_path: Path) -> None:
    store, analysis = _open(tmp_path)
    inc = _incident("inc-1", T, T + 3 * MIN, IncidentState.OPEN)
    analysis.write_results(AnalysisResults(incidents=(inc,)))
    assert analysis.root_causes(["inc-1"]) == {}  # never ranked
    assert analysis.write_root_causes("inc-1", ANSWER)
    assert analysis.root_causes(["inc-1", "inc-nope"]) == {"inc-1": ANSWER}
    grown = replace(inc, end_ns=T + 5 * MIN, services=("b", "c"))
    analysis.write_results(AnalysisResults(incidents=(grown,)))
    assert analysis.root_causes(["inc-1"]) == {"inc-1": ANSWER}
    assert analysis.incident("inc-1") == grown
    assert not analysis.write_root_causes("inc-nope", ANSWER)
    analysis.close()
    store.close()


def test_incidents_are_found_by_the_time_they_overlap(tmp_path: Path) -> None:
    store, analysis = _open(tmp_path)
    analysis.write_results(
        AnalysisResults(
            incidents=(
                _incident("early", T, T + 3 * MIN),
                _incident("late", T + 30 * MIN, T + 33 * MIN, IncidentState.OPEN),
            )
        )
    )
    found = analysis.incidents(IncidentQuery(time_range=TimeRange(T + 2 * MIN, T + 10 * MIN)))
    assert [i.id for i in found] == ["early"]
    found = analysis.incidents(IncidentQuery(time_range=TimeRange(T + 10 * MIN, T + 20 * MIN)))
    assert found == []
    analysis.close()
    store.close()


def test_a_version_1_file_is_migrated_and_keeps_its_incidents(tmp_path: Path) -> None:
    store, analysis = _open(tmp_path)
    analysis.write_results(AnalysisResults(incidents=(_incident("old", T, T + 3 * MIN),)))
    analysis.close()
    store.close()
    # what a file written by the previous faultlens looks like: no root-cause columns, version 1
    con = duckdb.connect(str(tmp_path / "faultlens.duckdb"))
    for column in ("rca_status", "rca_reason", "rca_at", "root_causes"):
        con.execute(f"ALTER TABLE incidents DROP COLUMN {column}")
    con.execute("UPDATE analysis_state SET state = ? WHERE name = '_schema'", [json.dumps({"version": 1})])
    con.close()

    store, analysis = _open(tmp_path)
    old = analysis.incident("old")
    assert old is not None and old.end_ns == T + 3 * MIN
    assert analysis.write_root_causes("old", ANSWER)
    assert analysis.root_causes(["old"]) == {"old": ANSWER}
    assert ANALYSIS_SCHEMA_VERSION == 2 and analysis.load_state("_schema") == {"version": 2}
    analysis.close()
    store.close()
