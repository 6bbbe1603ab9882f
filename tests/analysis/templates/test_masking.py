"""Masking: the cheap pre-checks of each rule never change what it masks.

Every rule's ``requires``/``quick`` is a necessary condition for its pattern to match, so
``mask`` must give exactly what the patterns applied one after another give, on real-looking
lines, on lines built to hit each rule, and on random text (hypothesis), Unicode digits included.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from faultlens.analysis.templates.masking import (
    FINGERPRINT_MASKS,
    TEMPLATE_MASKS,
    MaskRule,
    mask,
    mask_many,
    mask_tokens,
)

LINES = (
    "user user-123 logged in from 10.0.3.7",
    "connection to payment:5432 refused",
    "order ord-1a2b3c4d placed with 3 items",
    "GET /api/products/17?lang=en 200 35ms",
    "fe80:0000:0000:0000:0202:b3ff:fe1e:8329 unreachable",
    "request 123e4567-e89b-12d3-a456-426614174000 from bob.smith@example.com failed",
    'KeyError: "sku-42" at 0xDEADbeef in C:\\app\\main.py',
    "read /var/lib/data/file.db: 12 MiB, -3.5%, key=7 id:9 v2 utf8",
    "deadbeefcafe1234 and 0x1F, 'quoted value' here",
    "order \u0663\u0664 failed after \u0661\u0662ms",  # Arabic-Indic digits: \d matches them
    "plain words only",
    "",
)


def _reference(text: str, rules: Sequence[MaskRule]) -> str:
    for rule in rules:
        text = rule.pattern.sub(rule.placeholder, text)
    return text


def test_prechecks_keep_the_result_on_lines_that_hit_each_rule() -> None:
    for rules in (FINGERPRINT_MASKS, TEMPLATE_MASKS):
        for line in LINES:
            assert mask(line, rules) == _reference(line, rules), line
    assert mask(LINES[0], TEMPLATE_MASKS) == "user user-<NUM> logged in from <IP>"


def test_every_rule_has_a_precheck_and_it_is_necessary() -> None:
    for rule in FINGERPRINT_MASKS:
        assert rule.requires or rule.quick is not None, rule.placeholder
        for line in LINES:
            if rule.pattern.search(line):
                assert not rule.requires or any(r in line for r in rule.requires)
                assert rule.quick is None or rule.quick.search(line)


_ALPHABET = st.sampled_from([*"aF09\u0663x.:-/\\@?'\" _<>%kMB\tusm", "0x", "ms", "10.0.0.1", "fe80:"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_ALPHABET, max_size=40).map("".join))
def test_prechecks_keep_the_result_on_random_text(text: str) -> None:
    assert mask(text, FINGERPRINT_MASKS) == _reference(text, FINGERPRINT_MASKS)
    assert mask(text, TEMPLATE_MASKS) == _reference(text, TEMPLATE_MASKS)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_ALPHABET, max_size=20).map("".join), max_size=12))
def test_masking_many_lines_at_once_masks_each_as_alone(lines: list[str]) -> None:
    lines = [*lines, *LINES]
    for rules in (FINGERPRINT_MASKS, TEMPLATE_MASKS):
        assert mask_many(lines, rules) == [mask(line, rules) for line in lines]
    with_newline = ["a 1\nb 2", "c 3"]  # a line holding a newline is masked alone
    assert mask_many(with_newline, TEMPLATE_MASKS) == [mask(x, TEMPLATE_MASKS) for x in with_newline]


_SPACES = [" ", "  ", "\t", "\u00a0", "\x1c", "\u2028", "\u3000"]
_WORDS = st.lists(_ALPHABET, min_size=1, max_size=6).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.tuples(_WORDS, st.sampled_from(_SPACES)), max_size=8), max_size=6))
def test_masking_token_by_token_gives_the_tokens_of_the_masked_line(
    parts: list[list[tuple[str, str]]],
) -> None:
    lines = ["".join(w + sp for w, sp in line) for line in parts] + list(LINES)
    in_token = tuple(r for r in FINGERPRINT_MASKS if r.in_token)
    assert {r.placeholder for r in FINGERPRINT_MASKS if not r.in_token} == {"<STR>"}
    for rules in (TEMPLATE_MASKS, in_token, FINGERPRINT_MASKS):  # the last falls back to whole lines
        expected = [mask(line, rules).split() for line in lines]
        assert mask_tokens(lines, rules) == expected
        assert mask_tokens(lines, rules) == expected  # again, from the memo
