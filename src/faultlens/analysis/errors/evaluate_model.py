"""Held-out accuracy of error classification: ``python -m faultlens.analysis.errors.evaluate_model``.

Splits the shipped labelled messages (``data/labelled_errors.tsv``) into five folds by line
position (line i goes to fold i mod 5, so every type is in every fold); the headline split
holds out fold 0 and trains on the rest plus the rule phrases, as :func:`default_model` does.
Prints JSON with, on the held-out lines:

- ``model``: the text model alone: type and category accuracy, and accuracy and coverage
  when only guesses at or above each confidence threshold are kept;
- ``rules``: the text rules alone: how many lines they place, and how many of those rightly;
- ``pipeline``: :class:`~.taxonomy.Classifier` (rules, then the model): type and category
  accuracy, and how many lines each source placed;
- ``cv``: the same model and pipeline accuracies, averaged over all five folds;
- ``train_seconds``: time to train on the full data (what first use costs).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from faultlens.analysis.errors.model import CATEGORY_OF, ClassificationSource, ErrorType
from faultlens.analysis.errors.taxonomy import Classifier, match_text, rule_phrases
from faultlens.analysis.errors.textmodel import TextModel, load_examples

Examples = Sequence[tuple[str, ErrorType]]
FOLDS = 5
THRESHOLDS = (0.3, 0.5, 0.7, 0.9)


def split(examples: Examples, fold: int) -> tuple[list[tuple[str, ErrorType]], list[tuple[str, ErrorType]]]:
    train = [e for i, e in enumerate(examples) if i % FOLDS != fold]
    test = [e for i, e in enumerate(examples) if i % FOLDS == fold]
    return train, test


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 0.0


def evaluate_fold(examples: Examples, fold: int) -> dict[str, Any]:
    train, test = split(examples, fold)
    model = TextModel.train([*train, *rule_phrases()])
    classifier = Classifier(model=model)
    guesses = [(model.predict(text), label) for text, label in test]
    model_ok = sum(g.type == label for g, label in guesses)
    model_cat_ok = sum(CATEGORY_OF[g.type] == CATEGORY_OF[label] for g, label in guesses)
    at: dict[str, dict[str, float]] = {}
    for th in THRESHOLDS:
        kept = [(g, label) for g, label in guesses if g.confidence >= th]
        at[str(th)] = {
            "accuracy": _ratio(sum(g.type == label for g, label in kept), len(kept)),
            "coverage": _ratio(len(kept), len(guesses)),
        }
    placed = [(rule.type, label) for text, label in test if (rule := match_text(text)) is not None]
    results = [(classifier.classify_text(text), label) for text, label in test]
    by_source = {s.value: sum(c.source is s for c, _ in results) for s in ClassificationSource}
    return {
        "held_out": len(test),
        "trained_on": len(train),
        "model": {
            "type_accuracy": _ratio(model_ok, len(test)),
            "category_accuracy": _ratio(model_cat_ok, len(test)),
            "at_confidence": at,
        },
        "rules": {
            "placed": _ratio(len(placed), len(test)),
            "accuracy_when_placed": _ratio(sum(t == label for t, label in placed), len(placed)),
        },
        "pipeline": {
            "type_accuracy": _ratio(sum(c.type == label for c, label in results), len(test)),
            "category_accuracy": _ratio(
                sum(c.category == CATEGORY_OF[label] for c, label in results), len(test)
            ),
            "by_source": by_source,
        },
    }


def evaluate() -> dict[str, Any]:
    examples = load_examples()
    t0 = time.perf_counter()
    TextModel.train([*examples, *rule_phrases()])
    train_seconds = time.perf_counter() - t0
    folds = [evaluate_fold(examples, f) for f in range(FOLDS)]

    def mean(path: tuple[str, str]) -> float:
        return round(sum(float(f[path[0]][path[1]]) for f in folds) / FOLDS, 4)

    return {
        "examples": len(examples),
        "types": len({label for _, label in examples}),
        "rule_phrases": len(rule_phrases()),
        "split": f"line index mod {FOLDS} == 0 held out",
        **folds[0],
        "cv": {
            "folds": FOLDS,
            "model_type_accuracy": mean(("model", "type_accuracy")),
            "model_category_accuracy": mean(("model", "category_accuracy")),
            "pipeline_type_accuracy": mean(("pipeline", "type_accuracy")),
            "pipeline_category_accuracy": mean(("pipeline", "category_accuracy")),
        },
        "train_seconds": round(train_seconds, 3),
    }


def main() -> int:
    print(json.dumps(evaluate(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
