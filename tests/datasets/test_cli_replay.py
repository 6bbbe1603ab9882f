"""``faultlens replay nezha``: options, summary and exit codes, against a recording receiver."""

from __future__ import annotations

import json

import pytest
import typer
from nezha_builder import T0, Synthetic
from replay_recorder import Recorder
from typer.testing import CliRunner

from faultlens.cli.replay import parse_time, register
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
        result = CliRunner().invoke(app(), [*args, "--max-speed", "--json"])
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
        result = CliRunner().invoke(app(), [*args, "--max-speed"])
    assert result.exit_code == 0, result.output
    assert "wrong number of CSV fields" in result.output
    assert "items/s" in result.output


def test_speed_and_max_speed_exclude_each_other(synthetic: Synthetic) -> None:
    result = CliRunner().invoke(
        app(), ["replay", "nezha", str(synthetic.root), "--speed", "2", "--max-speed"]
    )
    assert result.exit_code != 0


def test_parse_time_forms() -> None:
    assert parse_time("2024-03-01T10:00:00") == T0
    assert parse_time("2024-03-01 10:00:00Z") == T0
    assert parse_time("2024-03-01T12:00:00+02:00") == T0
    assert parse_time(str(T0 // 1_000_000_000)) == T0
    with pytest.raises(typer.BadParameter):
        parse_time("yesterday")
