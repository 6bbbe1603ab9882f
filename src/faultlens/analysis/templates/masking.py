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
from itertools import chain


@dataclass(frozen=True, slots=True)
class MaskRule:
    """Replace every match of ``pattern`` with ``placeholder``.

    ``requires`` and ``quick`` are optional cheap pre-checks, each a *necessary* condition
    for ``pattern`` to match: a text holding none of the ``requires`` substrings, or in
    which ``quick`` finds nothing, is left as it is without running ``pattern``. They only
    save time (most rules do not apply to most lines); the result is the same.

    ``in_token``: no match holds whitespace, and the look-arounds and ``\b`` of ``pattern``
    see whitespace as they see the start or end of the text; so masking each
    whitespace-separated token alone gives the same tokens as masking the whole line
    (:func:`mask_tokens`). Quoted strings, which span spaces, are not.
    """

    placeholder: str
    pattern: re.Pattern[str]
    requires: tuple[str, ...] = ()
    quick: re.Pattern[str] | None = None
    in_token: bool = True

    def apply(self, text: str) -> str:
        if self.requires and not any(r in text for r in self.requires):
            return text
        if self.quick is not None and self.quick.search(text) is None:
            return text
        return self.pattern.sub(self.placeholder, text)


def _rule(
    placeholder: str,
    pattern: str,
    requires: tuple[str, ...] = (),
    quick: str | None = None,
    *,
    in_token: bool = True,
) -> MaskRule:
    return MaskRule(
        placeholder, re.compile(pattern), requires, None if quick is None else re.compile(quick), in_token
    )


# Ordered: URLs before paths (a URL holds a path), UUIDs before hex, IPs before numbers.
_URL_QUERY = _rule("?<QUERY>", r"(?<=[\w/])\?[^\s\"'<>]+", ("?",))
_EMAIL = _rule("<EMAIL>", r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b", ("@",))
_UUID = _rule(
    "<UUID>",
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
    ("-",),
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-",
)
_IPV4 = _rule("<IP>", r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?![\w.])", (".",), r"\d\.\d")
_IPV6 = _rule(
    "<IP>", r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}(?![\w:])", (":",), r"[0-9a-fA-F]:[0-9a-fA-F]"
)
_HEX0X = _rule("<HEX>", r"\b0[xX][0-9a-fA-F]+\b", ("0x", "0X"))
# Bare hex of 8+ chars with both a digit and a letter (trace ids, hashes, object addresses).
_HEX = _rule(
    "<HEX>", r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b", quick=r"[0-9a-fA-F]{8}"
)
_WINPATH = _rule("<PATH>", r"\b[A-Za-z]:\\[^\s\"'<>:*?|]+", (":\\",))
_PATH = _rule("<PATH>", r"(?<![\w.:/<>])(?:/[\w.@%+~-]+){2,}/?", ("/",))
_DQUOTE = _rule("<STR>", r"\"[^\"\n]*\"", ('"',), in_token=False)
_SQUOTE = _rule("<STR>", r"(?<!\w)'[^'\n]*'", ("'",), in_token=False)
# Numbers not glued to letters: 42, -3.5, 250ms, 12%, key=7, id:9, but not v2 or utf8.
_NUM = _rule(
    "<NUM>", r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?:ns|us|µs|ms|s|m|h|d|[kKMGT]i?B|B|%)?(?![\w])", quick=r"\d"
)

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
        text = rule.apply(text)
    return text


def mask_many(lines: Sequence[str], rules: Sequence[MaskRule] = FINGERPRINT_MASKS) -> list[str]:
    """``[mask(line, rules) for line in lines]``, with each rule run once over all the lines.

    The lines are joined with newlines and each rule substitutes over the whole text: no
    pattern matches a newline, and each treats a newline like the start or end of the text
    (its look-arounds and ``\b`` see a non-word character either way), so each line masks
    as it would alone; a rule whose pre-check fails on the whole text is skipped for all of
    them. Lines holding a newline themselves are masked one by one.
    """
    if len(lines) < 2:
        return [mask(line, rules) for line in lines]
    text = "\n".join(lines)
    if text.count("\n") != len(lines) - 1:
        return [mask(line, rules) for line in lines]
    for rule in rules:
        text = rule.apply(text)
    return text.split("\n")


_TOKEN_CACHE_SIZE = 100_000
_token_caches: dict[tuple[MaskRule, ...], dict[str, str]] = {}


def mask_tokens(lines: Sequence[str], rules: Sequence[MaskRule] = TEMPLATE_MASKS) -> list[list[str]]:
    """``[mask(line, rules).split() for line in lines]``, masking each distinct token once.

    Needs rules that all stay ``in_token`` (else it masks whole lines). Lines of one kind
    share most of their tokens, so only the tokens not seen lately go through the rules, all
    at once (:func:`mask_many`); what a token masks to is remembered (a bounded memo of a
    pure function: the same token always masks the same way).
    """
    key = tuple(rules)
    if not all(r.in_token for r in key):
        return [m.split() for m in mask_many(lines, key)]
    cache = _token_caches.setdefault(key, {})
    token_lists = [line.split() for line in lines]
    distinct = set(chain.from_iterable(token_lists))
    known = {t: m for t in distinct if (m := cache.get(t)) is not None}
    if len(known) < len(distinct):
        unknown = [t for t in distinct if t not in known]
        fresh = dict(zip(unknown, mask_many(unknown, key), strict=True))
        known.update(fresh)
        if len(cache) + len(fresh) > _TOKEN_CACHE_SIZE:
            cache.clear()
        cache.update(fresh)
    get = known.__getitem__
    return [list(map(get, tokens)) for tokens in token_lists]


def clear_token_caches() -> None:
    """Forget what :func:`mask_tokens` remembered (it only saves time; benchmarks start cold)."""
    _token_caches.clear()


def is_placeholder(token: str) -> bool:
    """Whether ``token`` is exactly one placeholder (``<NUM>``, ``<*>``, ...)."""
    return token in PLACEHOLDERS
