"""Which log lines fit a template (``/logs?template=``): their key's elements are the
template's, a placeholder taking any element (words kept, values as ``<*>`` or ``<NUM>``, runs
of values as one, annotations left out, as the miner keys lines)."""

from __future__ import annotations

import pytest

from faultlens.analysis.templates.tokens import line_key
from faultlens.ui.logmatch import TemplateShape


@pytest.mark.parametrize(
    ("template", "fits", "does_not_fit"),
    [
        (
            "card declined for order <NUM>",
            ["card declined for order 42", "  card declined for order 7\n"],
            ["card declined for order", "card accepted for order 42", "card declined for order 42 twice"],
        ),
        (
            "session <*> opened for <*>",
            ["session 7f3a9c opened for alice", "session 12 opened for bob.smith@example.com"],
            ["session 7f3a9c closed for alice", "session opened for alice", "session 1 opened for a b"],
        ),
        ("name <*>", ["name an14 an15 an16", "name x1"], ["names an14", "name", "name an14 done"]),
        ("<NUM> bytes sent", ["1190 bytes (1.16 KB) sent", "0 bytes sent"], ["1190 bytes were sent"]),
        (
            "retry *?+ <*> done",
            ["retry *?+ 10.0.0.1 done", "retry (uid=0) *?+ 10.0.0.1 done"],
            ["retry *?+ done", "retry *? 10.0.0.1 done"],
        ),
    ],
)
def test_lines_fit_by_words_in_order_and_values_anywhere(
    template: str, fits: list[str], does_not_fit: list[str]
) -> None:
    shape = TemplateShape.of(template)
    assert [line for line in fits if not shape.fits(line)] == []
    assert [line for line in does_not_fit if shape.fits(line)] == []


def test_the_anchor_is_the_longest_constant_text_every_fitting_line_holds() -> None:
    assert TemplateShape.of("card declined for order <NUM>").anchor == "declined"
    assert TemplateShape.of("connect to [<*>] timed out").anchor == "connect"
    assert TemplateShape.of("<*> <NUM>").anchor is None


def test_a_line_fits_the_template_the_miner_keys_it_as() -> None:
    """The shape of a template built from a line's key takes that line back."""
    lines = [
        "GET /api/orders/17 took 35 ms",
        "connection to db-3.internal:5432 lost after 3 retries (uid=0)",
        "1190 bytes (1.16 KB) sent to [10.0.0.1]",
        "name an14 an15 an16 done",
    ]
    for line in lines:
        _, shown = line_key(line)
        assert TemplateShape.of(" ".join(shown)).fits(line), (shown, line)
