"""Line keys: which tokens of a log line are values and which are the words of its template.

The skeleton miner (:mod:`.skeleton`) groups lines by key, so this module is where a line's
template is decided. The rules are generic, about the shape of tokens and never about a
system or its vocabulary:

1. A line is split on whitespace. A token is a **value** when, once its surrounding brackets
   and punctuation are stripped, it holds a digit, a run of 8+ hex letters, an inner ``.``
   (host and package names, dotted numbers), a ``/`` or ``\\`` (paths, URLs, MIME types) or an ``@``,
   or when it is an empty pair of brackets or quotes (``()``, ``""``: a value that is empty).
   Two exceptions, names rather than values: a word ending in one digit (``ssh2``, ``eth0``,
   ``IPv6``, ``SOCKS5``), and a qualified name whose last part is capitalised, as class and
   constant names are (``java.io.IOException``, ``android.intent.action.SCREEN_ON``: two
   exceptions are two events; ``ns.example.com`` and ``com.example.app`` stay values).
   Every other token is a **word** and is kept as it is: in the logs loghub labels, and in
   logs in general, a plain word is far more often part of the message than a value (``VM
   Paused`` and ``VM Resumed`` are two events; see :mod:`.skeleton` for how a slot of words
   still turns variable).
2. ``name=value`` and ``name:value`` tokens keep their name and judge the value alone:
   ``uid=0`` keys as ``uid=<*>``, ``user=root`` stays a word, ``logname=`` too.
3. Context: a month or weekday name next to a value is part of a date; a unit name right
   after a value (``KB``, ``ms``, ``sec``) is part of it.
4. A bracketed group of values after the first token is an annotation of what precedes it
   (``1190 bytes (1.16 KB) sent``, ``from 1.2.3.4 (host.name)``) and is left out of the key,
   so the line keys like ``0 bytes sent``; and a run of values keys as one ``<*>`` (lists of
   any length: ``name an14 an15 an16``).

The key holds each word as it is and each value as ``<*>`` (``name=<*>``); ``shown`` holds the
same elements as a template displays them: a value keeps its name and brackets and shows as
``<NUM>`` when it is a plain number, else ``<*>`` (``(uid=<NUM>)``, ``[<*>]``). Values are not
typed further (``<IP>``, ``<PATH>``): the masks that do it cost more than all the rest of a
line's work, and the grouping does not use them. :func:`line_key` is a pure function; each
distinct token is judged once (a bounded memo).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

VALUE = "<*>"
NUMBER = "<NUM>"  # how a value that is a plain number is shown

_WORD, _VALUE, _DATE_NAME, _UNIT = 0, 1, 2, 3
_STRIP = "()[]{}<>,;:.'\"!?"
_OPENERS = "([{'\""
_CLOSERS = {"(": ")", "[": "]", "{": "}"}
_DIGIT = re.compile(r"\d")
_VALUE_MARKS = re.compile(r"\d|[./\\@]|<[A-Z]+>")
_VALUE_MARKS_UNDOTTED = re.compile(r"\d|[/\\@]|<[A-Z]+>")
_NAME_WITH_DIGIT = re.compile(r"[A-Za-z]{2,}\d\Z")
_CLASS_NAME = re.compile(r"(?:[a-z_][a-z_]*\.)+[A-Z][A-Za-z_$]*\Z")
_HEX_LETTERS = re.compile(r"[a-fA-F]{8,}\Z")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DATE_NAMES = frozenset((*_WEEKDAYS, *_MONTHS))
_SIZE_UNITS = ("b", "kb", "mb", "gb", "tb", "kib", "mib", "gib")
_UNIT_NAMES = frozenset((*_SIZE_UNITS, "ns", "us", "ms", "s", "sec", "secs"))
_MAX_GROUP = 4  # tokens in a bracketed annotation


@dataclass(frozen=True, slots=True)
class KeyRules:
    """Which of the rules above apply: all of them, always, in the server. Switching one off
    is for measuring what it brings (``bench/templates.py`` does, rule by rule)."""

    dotted_values: bool = True  # 1: an inner "." makes a value
    empty_values: bool = True  # 1: "()", '""' are values
    names_with_digit: bool = True  # 1: ssh2, IPv6 are words
    class_names: bool = True  # 1: java.io.IOException is a word
    name_value: bool = True  # 2
    context: bool = True  # 3
    annotations: bool = True  # 4: bracketed values after the first token are left out
    value_runs: bool = True  # 4: a run of values is one <*>


ALL_RULES = KeyRules()

_memos: dict[KeyRules, dict[str, tuple[int, str, str]]] = {}  # other rule sets (measuring only)
_default_memo: dict[str, tuple[int, str, str]] = {}
_MEMO_SIZE = 200_000


def _is_value(text: str, rules: KeyRules) -> bool:
    core = text.strip(_STRIP)
    if not core:
        return False
    if rules.names_with_digit and _NAME_WITH_DIGIT.match(core):
        return False
    if rules.class_names and _CLASS_NAME.match(core):
        return False
    marks = _VALUE_MARKS if rules.dotted_values else _VALUE_MARKS_UNDOTTED
    return _HEX_LETTERS.match(core) is not None or marks.search(core) is not None


def _shown(name: str, value: str) -> str:
    """How a value is shown in a template: its brackets and punctuation, and ``<NUM>`` or ``<*>``."""
    core = value.strip(_STRIP)
    placeholder = NUMBER if core.isdigit() else VALUE
    if len(core) == len(value):
        return name + placeholder
    start = value.find(core)
    return name + value[:start] + placeholder + value[start + len(core) :]


def _is_name_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def _name_and_value(token: str) -> tuple[str, str] | None:
    """``("name=", "value")`` or ``("name:", "value")`` when the token is written so, else None.

    ``=``: the text up to the first ``=`` ends in a name (letters, digits, ``_``, with a
    letter or ``_``), e.g. ``(uid=0)``; ``:``: the text up to the first ``:`` is a name after
    any punctuation, and something follows, e.g. ``action:start``. Plain string scans, linear
    in the token (a regex with a lazy prefix is quadratic on long tokens).
    """
    eq = token.find("=")
    if eq > 0:
        j = eq
        while j > 0 and _is_name_char(token[j - 1]):
            j -= 1
        run = token[j:eq]
        if any(c == "_" or ("a" <= c.lower() <= "z") for c in run):
            return token[: eq + 1], token[eq + 1 :]
    colon = token.find(":")
    if 0 <= colon < len(token) - 1:
        j = 0
        while j < colon and not _is_name_char(token[j]):
            j += 1
        run = token[j:colon]
        if run and (run[0] == "_" or "a" <= run[0].lower() <= "z") and all(map(_is_name_char, run)):
            return token[: colon + 1], token[colon + 1 :]
    return None


def _judge(token: str, rules: KeyRules) -> tuple[int, str, str]:
    """(kind, key element, shown element) of one token."""
    if token.isdigit():
        return _VALUE, VALUE, NUMBER
    core = token.strip(_STRIP)
    if not core:
        if rules.empty_values and len(token) >= 2 and token[0] in _OPENERS:
            return _VALUE, VALUE, token  # an empty value: "()", "''"
        return _WORD, token, token
    split = _name_and_value(token) if rules.name_value else None
    if split is not None:
        name, value = split
        if "." not in name and _DIGIT.search(name) is None:
            if not value.strip(_STRIP) or not _is_value(value, rules):
                return _WORD, token, token
            return _VALUE, name + VALUE, _shown(name, value)
    if _is_value(token, rules):
        return _VALUE, VALUE, _shown("", token)
    low = core.lower()
    if low[:3] in _DATE_NAMES and len(low) <= 9:
        return _DATE_NAME, token, token
    if low in _UNIT_NAMES:
        return _UNIT, token, token
    return _WORD, token, token


def _memo_of(rules: KeyRules) -> dict[str, tuple[int, str, str]]:
    if rules is ALL_RULES:  # the server's case: no hashing of the rules per line
        return _default_memo
    memo = _memos.get(rules)
    if memo is None:
        memo = _memos[rules] = {}
    return memo


def judge(token: str, rules: KeyRules = ALL_RULES) -> tuple[int, str, str]:
    """:func:`_judge`, remembered (a bounded memo of a pure function, one per rule set)."""
    return _remember(_memo_of(rules), token, rules)


def _remember(memo: dict[str, tuple[int, str, str]], token: str, rules: KeyRules) -> tuple[int, str, str]:
    got = memo.get(token)
    if got is None:
        got = _judge(token, rules)
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        memo[token] = got
    return got


def clear_memo() -> None:
    """Forget every judged token (the memo only saves time; benchmarks start cold with it)."""
    _memos.clear()
    _default_memo.clear()


def line_key(line: str, rules: KeyRules = ALL_RULES) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The grouping key of ``line`` and the same elements as shown (see the module docstring)."""
    tokens = line.split()
    memo = _memo_of(rules)
    get = memo.get
    judged = [get(t) or _remember(memo, t, rules) for t in tokens]
    kinds = [j[0] for j in judged]
    if _VALUE not in kinds:  # words only (date names and units stay words without a value)
        words = tuple(tokens)
        return words, words
    n = len(tokens)
    if rules.context and (_DATE_NAME in kinds or _UNIT in kinds):
        _context(kinds, n)
        judged = [
            j if k != _VALUE or j[0] == _VALUE else (k, VALUE, j[2])
            for j, k in zip(judged, kinds, strict=True)
        ]
    keep = _annotations(tokens, kinds, n) if rules.annotations else None
    if keep is not None:
        judged = [j for j, k in zip(judged, keep, strict=True) if k]
    key: list[str] = []
    shown: list[str] = []
    last_value = False
    runs = rules.value_runs
    for _, elem, text in judged:
        if elem == VALUE and runs:
            if last_value:  # a run of values is one <*>
                shown[-1] += " " + text
                continue
            last_value = True
        else:
            last_value = False
        key.append(elem)
        shown.append(text)
    return tuple(key), tuple(shown)


def _context(kinds: list[int], n: int) -> None:
    """Date names next to a value, and units right after one, become values (in place).

    Two passes, so that a date written name-first (``Sun Jul 3 10:05:25``) is reached from
    its numbers whichever way round it is written.
    """
    for _ in range(2):
        for i in range(n):
            k = kinds[i]
            if k == _DATE_NAME:
                if (i > 0 and kinds[i - 1] == _VALUE) or (i + 1 < n and kinds[i + 1] == _VALUE):
                    kinds[i] = _VALUE
            elif k == _UNIT and i > 0 and kinds[i - 1] == _VALUE:
                kinds[i] = _VALUE


def _annotations(tokens: list[str], kinds: list[int], n: int) -> list[bool] | None:
    """Which tokens stay in the key: bracketed groups of values after the first token do not."""
    keep: list[bool] | None = None
    i = 1
    while i < n:
        opener = tokens[i][0]
        if kinds[i] == _VALUE and opener in _CLOSERS:
            close = _CLOSERS[opener]
            j = i
            while j < n and kinds[j] == _VALUE and not tokens[j].rstrip(",;:.").endswith(close):
                j += 1
            if j < n and kinds[j] == _VALUE and j - i < _MAX_GROUP:
                if keep is None:
                    keep = [True] * n
                for x in range(i, j + 1):
                    keep[x] = False
                i = j
        i += 1
    return keep
