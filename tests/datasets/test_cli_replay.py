"""``faultlens replay nezha``: options, summary and exit codes, against a recording receiver."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from nezha_builder import T0, Synthetic
from replay_recorder import Recorder
from typer.testing import CliRunner

from faultlens.cli.replay import _plain_progress, parse_time, register
from faultlens.types import Signal


def app() -> typer.Typer:
    root = typer.Typer()

    @root.command()
    def version() -> None:  # a second command so that "replay" stays a sub-command
        pass

    register(root)
    return root


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_replay_command_sends_everything_and_prints_json(synthetic: Synthetic, protocol: str) -> None:
    with Recorder() as recorder:
        endpoint = recorder.grpc_endpoint if protocol == "grpc" else recorder.http_endpoint
        args = ["replay", "nezha", str(synthetic.root), "--endpoint", endpoint, "--protocol", protocol]
        result = CliRunner().invoke(app(), [*args, "--max-speed", "--keep-times", "--json"])
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout)
        assert out["replay"]["signals"]["traces"]["accepted"] == synthetic.spans
        assert out["replay"]["signals"]["logs"]["accepted"] == synthetic.logs
        assert out["read"]["trace"]["rows_skipped"] == {"duplicate span": 1, "wrong number of CSV fields": 1}
        assert len(recorder.requests[Signal.TRACES]) >= 1


def test_from_to_and_shift_to_now(synthetic: Synthetic) -> None:
    with Recorder() as recorder:
        args = ["replay", "nezha", str(synthetic.root), "--endpoint", recorder.grpc_endpoint]
        window = ["--from", "2024-03-01T10:00:00", "--to", "2024-03-01T10:00:30"]
        result = CliRunner().invoke(app(), [*args, *window, "--speed", "1000", "--shift-to-now", "--json"])
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout)["replay"]
        assert out["signals"]["traces"]["accepted"] == 3 * 2 + 1  # 3 two-span traces and a redis call
        assert out["first_time_ns"] == T0
        assert out["time_offset_ns"] > 0


def test_human_summary_lists_skips(synthetic: Synthetic) -> None:
    with Recorder() as recorder:
        args = [
            "replay",
            "nezha",
            str(synthetic.root),
            "--endpoint",
            recorder.http_endpoint,
            "--protocol",
            "http",
        ]
        result = CliRunner().invoke(app(), [*args, "--max-speed", "--keep-times"])
    assert result.exit_code == 0, result.output
    assert "wrong number of CSV fields" in result.output
    assert "items/s" in result.output


def test_data_older_than_a_server_keeps_is_refused_with_the_hint(synthetic: Synthetic) -> None:
    with Recorder() as recorder:
        args = ["replay", "nezha", str(synthetic.root), "--endpoint", recorder.grpc_endpoint, "--max-speed"]
        result = CliRunner().invoke(app(), args)
        assert result.exit_code == 2
        assert "--shift-to-now" in result.output and "retention" in result.output
        assert not recorder.requests[Signal.TRACES]  # nothing was sent
        both = CliRunner().invoke(app(), [*args, "--shift-to-now", "--keep-times"])
        assert both.exit_code == 2


def test_a_directory_without_data_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app(), ["replay", "nezha", str(tmp_path), "--max-speed"])
    assert result.exit_code == 2
    assert "no data in" in result.output


def test_progress_off_a_terminal_is_printed_as_lines() -> None:
    assert _plain_progress(30.0, 120.0, 5000, 10.0) == (
        "replay: 25% of data time, 5,000 items sent, 10 s elapsed, about 30 s left"
    )
    assert _plain_progress(0.0, None, 12, 1.0) == "replay: 12 items sent, 1 s elapsed"


def test_speed_and_max_speed_exclude_each_other(synthetic: Synthetic) -> None:
    result = CliRunner().invoke(
        app(), ["replay", "nezha", str(synthetic.root), "--speed", "2", "--max-speed"]
    )
    assert result.exit_code != 0


def test_parse_time_forms() -> None:
    assert parse_time("2024-03-01T10:00:00") == T0
    assert parse_time("2024-03-01 10:00:00Z") == T0
    assert parse_time("2024-03-01T12:00:00+02:00") == T0
    assert parse_time(f"{T0 // 1_000_000_000}s") == T0  # Unix seconds say so
    assert parse_time(str(T0)) == T0  # a bare integer is nanoseconds, as everywhere
    with pytest.raises(typer.BadParameter):
        parse_time("yesterday")
