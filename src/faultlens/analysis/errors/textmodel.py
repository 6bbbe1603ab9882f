"""The fallback text model: hashed word and character n-grams, and a linear classifier.

It guesses the :class:`ErrorType` of messages the rules of :mod:`.taxonomy` cannot place.
No dependency beyond the standard library: features are hashed with CRC-32 (stable across
processes, unlike ``hash()``) into ``2**n_bits`` buckets, and the classifier is a
multinomial naive Bayes, a linear model whose training is one counting pass: it trains on
the few hundred labelled lines of ``data/labelled_errors.tsv`` (plus the phrases of the
taxonomy's own rules, see :func:`faultlens.analysis.errors.taxonomy.default_model`) in a
fraction of a second, at first use, so there is no model file to keep in sync and nothing
to download.

Features of ``"SocketTimeoutException: Read timed out"``: camelCase is split first, then
word unigrams (``socket``, ``timeout``, ...), word bigrams (``read timed``), and character
3..5-grams inside each word with boundary marks (``<ti``, ``tim``, ``time``...), which let
the model generalise to spellings and exception names it has not seen.

``confidence`` is the softmax of the per-class scores (scaled per feature), a relative score
rather than a calibrated probability; docs/errors.md gives accuracy at several thresholds.
"""

from __future__ import annotations

import itertools
import math
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

from faultlens.analysis.errors.model import ErrorType

DATA_FILE = "labelled_errors.tsv"
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True, slots=True)
class TextModelConfig:
    n_bits: int = 18
    alpha: float = 0.1  # additive smoothing
    char_ngrams: tuple[int, int] = (3, 5)
    temperature: float = 0.1  # softmax scale of the per-feature scores


@dataclass(frozen=True, slots=True)
class Guess:
    type: ErrorType
    confidence: float
    evidence: str  # the words that pushed most for ``type``


def tokens(text: str) -> list[str]:
    """Lower-case words, with camelCase and snake_case split (``SocketTimeout`` -> socket, timeout)."""
    return _WORD.findall(_CAMEL.sub(" ", text).replace("_", " ").lower())


def features(text: str, config: TextModelConfig) -> dict[int, float]:
    """Hashed feature counts of ``text`` (log-damped, so repeated words do not dominate)."""
    words = tokens(text)
    grams: list[str] = [f"w:{w}" for w in words]
    grams.extend(f"b:{a} {b}" for a, b in itertools.pairwise(words))
    lo, hi = config.char_ngrams
    for w in set(words):
        padded = f"<{w}>"
        for n in range(lo, hi + 1):
            grams.extend(f"c:{padded[i : i + n]}" for i in range(len(padded) - n + 1))
    mask = (1 << config.n_bits) - 1
    counts: dict[int, float] = {}
    for g in grams:
        h = zlib.crc32(g.encode()) & mask
        counts[h] = counts.get(h, 0.0) + 1.0
    return {h: 1.0 + math.log(c) for h, c in counts.items()}


class TextModel:
    """Multinomial naive Bayes over hashed n-grams, stored sparsely. Immutable once trained.

    The score of class ``c`` is ``sum_f v_f * log P(f | c)``; only features seen with a class
    are stored (as a delta over that class's unseen-feature log-probability), so training is
    one counting pass and prediction touches only the classes a feature was seen with.
    """

    def __init__(
        self,
        config: TextModelConfig,
        classes: Sequence[ErrorType],
        unseen: dict[ErrorType, float],
        deltas: dict[int, dict[ErrorType, float]],
        vocabulary: dict[int, str],
    ) -> None:
        self.config = config
        self.classes = tuple(classes)
        self._unseen = unseen
        self._deltas = deltas
        self._vocabulary = vocabulary

    @classmethod
    def train(
        cls, examples: Iterable[tuple[str, ErrorType]], config: TextModelConfig | None = None
    ) -> TextModel:
        cfg = config or TextModelConfig()
        counts: dict[int, dict[ErrorType, float]] = {}
        totals: dict[ErrorType, float] = {}
        vocabulary: dict[int, str] = {}
        mask = (1 << cfg.n_bits) - 1
        for text, label in examples:
            for h, v in features(text, cfg).items():
                row = counts.setdefault(h, {})
                row[label] = row.get(label, 0.0) + v
                totals[label] = totals.get(label, 0.0) + v
            for word in tokens(text):
                vocabulary.setdefault(zlib.crc32(f"w:{word}".encode()) & mask, word)
        if not totals:
            raise ValueError("no training examples")
        n_features = len(counts)
        alpha = cfg.alpha
        denominators = {c: t + alpha * n_features for c, t in totals.items()}
        unseen = {c: math.log(alpha / d) for c, d in denominators.items()}
        deltas = {
            h: {c: math.log((v + alpha) / denominators[c]) - unseen[c] for c, v in row.items()}
            for h, row in counts.items()
        }
        classes = sorted(totals, key=lambda t: t.value)
        return cls(cfg, classes, unseen, deltas, vocabulary)

    def scores(self, text: str) -> dict[ErrorType, float]:
        """Per-class mean log-likelihood per feature (higher is more likely)."""
        feats = features(text, self.config)
        n = sum(feats.values()) or 1.0
        out = {c: u * n for c, u in self._unseen.items()}
        for h, v in feats.items():
            for c, d in self._deltas.get(h, {}).items():
                out[c] += v * d
        return {c: s / n for c, s in out.items()}

    def predict(self, text: str) -> Guess:
        s = self.scores(text)
        best = max(s, key=lambda c: (s[c], c.value))
        top = s[best]
        t = self.config.temperature
        confidence = 1.0 / sum(math.exp((x - top) / t) for x in s.values())
        return Guess(best, round(confidence, 4), self._evidence(text, best))

    def _evidence(self, text: str, label: ErrorType) -> str:
        """The (up to three) words of ``text`` that weigh most for ``label``."""
        mask = (1 << self.config.n_bits) - 1
        weighed = []
        for word in set(tokens(text)):
            d = self._deltas.get(zlib.crc32(f"w:{word}".encode()) & mask, {})
            if label in d:
                weighed.append((d[label], word))
        top = [word for _, word in sorted(weighed, reverse=True)[:3]]
        return "model: " + ", ".join(top) if top else "model"


def parse_examples(lines: Iterable[str]) -> list[tuple[str, ErrorType]]:
    """``type<TAB>message`` lines; ``#`` comments and blank lines are skipped."""
    out = []
    for n, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        if not line.strip() or line.startswith("#"):
            continue
        label, sep, text = line.partition("\t")
        if not sep:
            raise ValueError(f"line {n}: expected '<type>\\t<message>'")
        out.append((text, ErrorType(label)))
    return out


def load_examples() -> list[tuple[str, ErrorType]]:
    """The labelled examples shipped with the package."""
    package = resources.files("faultlens.analysis.errors")
    text = package.joinpath("data").joinpath(DATA_FILE).read_text("utf-8")
    return parse_examples(text.splitlines())
