"""One duration parser: bare seconds in configuration, a unit required in request parameters."""

from __future__ import annotations

import pytest

from faultlens.durations import parse_duration_ns, parse_duration_s


def test_configuration_takes_bare_seconds_and_units() -> None:
    assert parse_duration_s(90) == parse_duration_s("90") == parse_duration_s("1.5m") == 90.0
    assert parse_duration_s("7d") == 7 * 86400.0


@pytest.mark.parametrize(
    ("text", "ns"), [("500ms", 500_000_000), ("90s", 90_000_000_000), ("1h", 3_600_000_000_000)]
)
def test_parameters_need_a_unit(text: str, ns: int) -> None:
    assert parse_duration_ns(text) == ns


@pytest.mark.parametrize("value", ["90", 90, "x", "-5s", True])
def test_parameters_refuse_bare_numbers_and_garbage(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration_ns(value)


def test_parameters_cap() -> None:
    with pytest.raises(ValueError, match="at most"):
        parse_duration_ns("8d", max_s=7 * 86400)
