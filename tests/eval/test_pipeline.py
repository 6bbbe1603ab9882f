"""The evaluation through the real pipeline on two faults of the shared Nezha data (skipped if absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from faultlens.eval.rca import OURS, PIPELINE_PATH, _table, evaluate, main


@pytest.mark.timeout(120)
def test_via_pipeline_matches_the_direct_read(datasets_dir: Path) -> None:
    root = datasets_dir / "nezha-tt"
    if not root.is_dir():
        pytest.skip("nezha-tt not present")
    piped = evaluate(root, limit=2, via_pipeline=True)
    direct = evaluate(root, limit=2)
    assert piped.data_path["source"] == PIPELINE_PATH
    stored = piped.data_path["stored"]
    assert stored["traces"] > 0 and stored["logs"] > 0 and stored["metrics"] > 0
    replay = piped.data_path["replay"]["signals"]
    assert all(replay[s]["failed"] == 0 and replay[s]["rejected"] == 0 for s in replay)
    assert len(piped.cases) == 2
    for p, d in zip(piped.cases, direct.cases, strict=True):
        assert p.inject_time == d.inject_time
        assert p.methods[OURS].rank == d.methods[OURS].rank
        assert p.ours_reason == d.ours_reason and p.ours_operation == d.ours_operation
    assert PIPELINE_PATH in _table(piped)


@pytest.mark.timeout(60)
def test_a_directory_without_faults_goes_through_the_server_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path), "--via-pipeline"]) == 0
    out = capsys.readouterr().out
    assert f"data went through {PIPELINE_PATH}: 0 spans" in out
