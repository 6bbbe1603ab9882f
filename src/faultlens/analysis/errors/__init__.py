"""Error intelligence: detection, taxonomy, fingerprints and groups, as pure cores.

The flow an orchestrator drives, batch by batch (no I/O, no clock in any of it)::

    spans/logs ──detect_errors──> ErrorEvent ──ErrorGrouper.add──> ErrorGroup snapshots
                                      │                │
                                      │                ├── fingerprint(): service, type, template, frame
                                      └── Classifier ──┘   rules (TEXT_RULES, codes), then TextModel

Grouper state is plain data (``export_state`` / ``from_state``) for the store to keep.
The taxonomy is documented in ``docs/errors.md``.
"""

from faultlens.analysis.errors.detect import (
    GRPC_SERVER_ERROR_CODES,
    detect_errors,
    detect_log_errors,
    detect_span_errors,
)
from faultlens.analysis.errors.fingerprint import (
    FRAMEWORK_FRAMES,
    Fingerprint,
    fingerprint,
    fingerprints,
    message_template,
    normalise_type,
    parse_frames,
    top_frame,
)
from faultlens.analysis.errors.grouping import ErrorGroup, ErrorGrouper, GrouperConfig
from faultlens.analysis.errors.model import (
    CATEGORY_OF,
    Category,
    Classification,
    ClassificationSource,
    ErrorEvent,
    ErrorReason,
    ErrorType,
    SpanKind,
)
from faultlens.analysis.errors.taxonomy import (
    GRPC_CODE_TYPES,
    HTTP_CODE_TYPES,
    TEXT_RULES,
    Classifier,
    ClassifierConfig,
    TextRule,
    default_model,
)
from faultlens.analysis.errors.textmodel import Guess, TextModel, TextModelConfig

__all__ = [
    "CATEGORY_OF",
    "FRAMEWORK_FRAMES",
    "GRPC_CODE_TYPES",
    "GRPC_SERVER_ERROR_CODES",
    "HTTP_CODE_TYPES",
    "TEXT_RULES",
    "Category",
    "Classification",
    "ClassificationSource",
    "Classifier",
    "ClassifierConfig",
    "ErrorEvent",
    "ErrorGroup",
    "ErrorGrouper",
    "ErrorReason",
    "ErrorType",
    "Fingerprint",
    "GrouperConfig",
    "Guess",
    "SpanKind",
    "TextModel",
    "TextModelConfig",
    "TextRule",
    "default_model",
    "detect_errors",
    "detect_log_errors",
    "detect_span_errors",
    "fingerprint",
    "fingerprints",
    "message_template",
    "normalise_type",
    "parse_frames",
    "top_frame",
]
