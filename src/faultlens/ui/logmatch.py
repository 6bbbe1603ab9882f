"""Which log lines fit a log template: the ``/logs?template=`` search of the UI.

The store keeps templates (``log_templates``) but not which template each stored line joined:
that is the miner's live state (:mod:`faultlens.analysis.templates`), which the UI does not
hold. So a template's lines are found by their key: a line fits when the elements its key
shows (:func:`~faultlens.analysis.templates.tokens.line_key`: words as they are, values as
``<*>`` or ``<NUM>``, a run of values as one, bracketed annotations left out) read as the
template, where a placeholder of the template takes any one element's text or a run of
values (a slot the miner found variable: ``user <*>`` takes ``user alice``).

A line of a template the miner has since folded into a wider one fits the wider one too;
this is a search by the template's shape, and the page says so. The store is asked for the
lines holding the template's longest constant text (a case-insensitive substring, which it
answers exactly), and only those are keyed, so the search costs one bounded store query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from faultlens.analysis.templates.tokens import line_key

__all__ = ["TemplateShape"]

_PLACEHOLDER = re.compile(r"<(?:\*|[A-Z]+)>")
# what a template's placeholder takes in a line's shown key: any one element, or a run of
# values (shown ``<*> <*> <*>``, keyed as one ``<*>``)
_ANY_ELEMENT = r"(?:<(?:\*|[A-Z]+)>(?: <(?:\*|[A-Z]+)>)*|\S+)"


@dataclass(frozen=True, slots=True)
class TemplateShape:
    """A template as a pattern over a line's shown key, and the constant text every fitting
    line holds."""

    template: str
    pattern: re.Pattern[str]
    anchor: str | None  # the longest constant text (None: the template is all placeholders)

    @classmethod
    def of(cls, template: str) -> TemplateShape:
        # an element may hold a space (``<NUM> ms``), so the key is compared as text: words
        # and constant pieces as they are, a placeholder as any one element's text
        pieces = _PLACEHOLDER.split(" ".join(template.split()))
        pattern = _ANY_ELEMENT.join(re.escape(p) for p in pieces)
        constants = [c for p in pieces for c in p.split()]
        return cls(template, re.compile(pattern), max(constants, key=len, default=None))

    def fits(self, body: str) -> bool:
        _, shown = line_key(body)
        return self.pattern.fullmatch(" ".join(shown)) is not None
