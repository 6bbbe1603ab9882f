"""Masking of variable parts of a message: the first step of both log templates and error fingerprints.

Values that change from one occurrence of the same event to the next (numbers, ids, UUIDs,
addresses, paths, quoted values) are replaced by typed placeholders such as ``<NUM>`` before
any grouping, so that ``order 123 failed`` and ``order 456 failed`` look alike to every later
step. The rules are data: an ordered table of ``(placeholder, pattern)``; earlier rules win
because they run first and their placeholders contain no characters later rules match.

Two rule sets are exported: :data:`FINGERPRINT_MASKS` (everything, quoted values included,
for error messages) and :data:`TEMPLATE_MASKS` (no quoted values: for log template mining,
where a quoted word is as often a constant as a variable).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MaskRule:
    """Replace every match of ``pattern`` with ``placeholder``."""

    placeholder: str
    pattern: re.Pattern[str]


def _rule(placeholder: str, pattern: str, flags: int = 0) -> MaskRule:
    return MaskRule(placeholder, re.compile(pattern, flags))


# Ordered: URLs before paths (a URL holds a path), UUIDs before hex, IPs before numbers.
_URL_QUERY = _rule("?<QUERY>", r"(?<=[\w/])\?[^\s\"'<>]+")
_EMAIL = _rule("<EMAIL>", r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_UUID = _rule("<UUID>", r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_IPV4 = _rule("<IP>", r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?![\w.])")
_IPV6 = _rule("<IP>", r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}(?![\w:])")
_HEX0X = _rule("<HEX>", r"\b0[xX][0-9a-fA-F]+\b")
# Bare hex of 8+ chars with both a digit and a letter (trace ids, hashes, object addresses).
_HEX = _rule("<HEX>", r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b")
_WINPATH = _rule("<PATH>", r"\b[A-Za-z]:\\[^\s\"'<>:*?|]+")
_PATH = _rule("<PATH>", r"(?<![\w.:/<>])(?:/[\w.@%+~-]+){2,}/?")
_DQUOTE = _rule("<STR>", r"\"[^\"\n]*\"")
_SQUOTE = _rule("<STR>", r"(?<!\w)'[^'\n]*'")
# Numbers not glued to letters: 42, -3.5, 250ms, 12%, key=7, id:9, but not v2 or utf8.
_NUM = _rule("<NUM>", r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?:ns|us|µs|ms|s|m|h|d|[kKMGT]i?B|B|%)?(?![\w])")

FINGERPRINT_MASKS: tuple[MaskRule, ...] = (
    _URL_QUERY,
    _EMAIL,
    _UUID,
    _IPV6,
    _IPV4,
    _HEX0X,
    _HEX,
    _DQUOTE,
    _SQUOTE,
    _WINPATH,
    _PATH,
    _NUM,
)
TEMPLATE_MASKS: tuple[MaskRule, ...] = (_EMAIL, _UUID, _IPV6, _IPV4, _HEX0X, _HEX, _NUM)

PLACEHOLDERS: frozenset[str] = frozenset(
    r.placeholder for r in FINGERPRINT_MASKS if r.placeholder.startswith("<")
) | {"<*>"}


def mask(text: str, rules: Sequence[MaskRule] = FINGERPRINT_MASKS) -> str:
    """Return ``text`` with every variable part replaced by its placeholder."""
    for rule in rules:
        text = rule.pattern.sub(rule.placeholder, text)
    return text


def is_placeholder(token: str) -> bool:
    """Whether ``token`` is exactly one placeholder (``<NUM>``, ``<*>``, ...)."""
    return token in PLACEHOLDERS
