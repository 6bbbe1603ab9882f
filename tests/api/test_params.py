"""The parameter parsers on their own: exact nanoseconds, severities, ids."""

from __future__ import annotations

import pytest

from faultlens.api.params import INT64_MAX, parse_severity, parse_time, parse_trace_id, time_range
from faultlens.types import TimeRange

T0 = 1_714_564_800_000_000_000


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        (str(T0), T0),
        ("1714564800123456789", 1_714_564_800_123_456_789),
        (str(INT64_MAX), INT64_MAX),
        ("2024-05-01T12:00:00Z", T0),
        ("2024-05-01t12:00:00z", T0),
        ("2024-05-01 12:00:00Z", T0),
        ("2024-05-01T12:00:00.5Z", T0 + 500_000_000),
        ("2024-05-01T12:00:00.123456789Z", T0 + 123_456_789),
        ("2024-05-01T12:00:00.000000001Z", T0 + 1),
        ("2024-05-01T14:30:00+02:30", T0),
        ("2024-05-01T07:00:00-05:00", T0),
        ("1970-01-01T00:00:00Z", 0),
        ("2262-04-11T23:47:16.854775807Z", INT64_MAX),
        (" 2024-05-01T12:00:00Z ", T0),
        ("2024-05-01T12:00:00", T0),  # no offset: UTC
        ("2024-05-01T12:00:00.25", T0 + 250_000_000),
        ("2024-05-01", T0 - 12 * 3600 * 1_000_000_000),
        ("1714564800s", T0),
        ("1714564800000ms", T0),
        ("1714564800000000us", T0),
        ("1714564800000000000ns", T0),
    ],
)
def test_parse_time_is_exact(text: str, ns: int) -> None:
    assert parse_time(text) == ns


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "1.5",
        "-1",
        "1e9",
        "2024-05-01T12:00",
        "1714564800sec",
        "now-5",
        "2024-05-01T12:00:00.Z",
        "2024-05-01T12:00:00.1234567890Z",
        "2024-02-30T00:00:00Z",
        "2024-05-01T24:00:00Z",
        "2262-04-11T23:47:16.854775808Z",
        "1969-12-31T23:59:59.999999999Z",
        str(INT64_MAX + 1),
        "١٢٣",  # non-ASCII digits
    ],
)
def test_parse_time_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


def test_severity_names_are_the_lowest_number_of_their_level() -> None:
    assert [parse_severity(n) for n in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")] == [
        1,
        5,
        9,
        13,
        17,
        21,
    ]
    assert parse_severity("warn") == 13
    assert parse_severity("24") == 24
    for bad in ("0", "25", "WARNING", "", "x"):
        with pytest.raises(ValueError):
            parse_severity(bad)


def test_trace_id_parses_either_case_to_the_same_bytes() -> None:
    assert parse_trace_id("0AF7651916CD43DD8448EB211C80319C") == parse_trace_id(
        "0af7651916cd43dd8448eb211c80319c"
    )
    assert len(parse_trace_id("0af7651916cd43dd8448eb211c80319c")) == 16


def test_time_range_opens_missing_bounds() -> None:
    assert time_range(None, None) is None
    assert time_range(5, None) == TimeRange(5, INT64_MAX)
    assert time_range(None, 5) == TimeRange(0, 5)
    assert time_range(5, 5) == TimeRange(5, 5)


def test_now_and_offsets_from_the_clock_given() -> None:
    from faultlens.timeparse import parse_time as parse

    assert parse("now", now_ns=T0) == T0
    assert parse("now-15m", now_ns=T0) == T0 - 15 * 60 * 1_000_000_000
    assert parse("NOW + 1.5s", now_ns=T0) == T0 + 1_500_000_000
    assert parse("now-1d", now_ns=T0) == T0 - 86_400 * 1_000_000_000
