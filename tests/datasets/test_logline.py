"""Parsing printed log lines: severity, logger and message, for text and JSON lines."""

from __future__ import annotations

import pytest

from faultlens.datasets.logline import parse_line, severity_number


def test_java_line_gives_level_logger_and_message_without_ids() -> None:
    line = (
        "16:51:24.967 INFO  u.c.UserController#48 TraceID: 0af7651916cd43dd8448eb211c80319c "
        "SpanID: b7ad6b7169203331 [getUserByUserId][Get user by user id][UserId: 4d2a]\n"
    )
    parsed = parse_line(line)
    assert parsed.severity_text == "INFO"
    assert parsed.severity_number == 9
    assert parsed.logger == "u.c.UserController#48"
    assert parsed.message == "[getUserByUserId][Get user by user id][UserId: 4d2a]"


def test_logger_with_brackets_and_free_text_message() -> None:
    parsed = parse_line(
        "16:43:26.379 ERROR o.a.c.c.C.[.[.[.[dispatcherServlet]#175 TraceID: ab SpanID: cd "
        "Servlet.service() for servlet [dispatcherServlet] threw exception"
    )
    assert (parsed.severity_text, parsed.severity_number) == ("ERROR", 17)
    assert parsed.logger == "o.a.c.c.C.[.[.[.[dispatcherServlet]#175"
    assert parsed.message.startswith("Servlet.service() for servlet")


@pytest.mark.parametrize(
    ("level", "number"),
    [("TRACE", 1), ("DEBUG", 5), ("INFO", 9), ("WARN", 13), ("WARNING", 13), ("ERROR", 17), ("FATAL", 21)],
)
def test_levels_map_to_otlp_severity_numbers(level: str, number: int) -> None:
    parsed = parse_line(f"2024-03-01 10:00:00,123 {level} com.example.Foo something happened")
    assert (parsed.severity_text, parsed.severity_number) == (level, number)
    assert parsed.logger == "com.example.Foo"
    assert parsed.message == "something happened"


def test_line_without_level_keeps_its_text_and_no_severity() -> None:
    parsed = parse_line("\tat java.lang.Thread.run(Thread.java:748)\n")
    assert (parsed.severity_text, parsed.severity_number, parsed.logger) == ("", 0, "")
    assert parsed.message == "at java.lang.Thread.run(Thread.java:748)"


def test_lower_case_word_at_start_is_message_not_level() -> None:
    assert parse_line("error connecting to db").severity_number == 0


def test_structured_json_line() -> None:
    parsed = parse_line('{"severity":"warning","message":"cart is slow","logger":"cartservice"}')
    assert (parsed.severity_text, parsed.severity_number) == ("WARNING", 13)
    assert (parsed.logger, parsed.message) == ("cartservice", "cart is slow")


def test_unknown_level_name_is_unspecified() -> None:
    assert severity_number("VERBOSE") == 0
