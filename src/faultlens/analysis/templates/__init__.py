"""Log templates: Drain mining per service, counts per window, NEW and MISSING templates.

Pure cores (no I/O, no clock): :class:`LogTemplateAnalyzer` takes decoded log tables and
returns typed results; its state is plain data an orchestrator persists.
"""

from faultlens.analysis.templates.counter import (
    ChangeKind,
    TemplateChange,
    TemplateCounter,
    TemplateCounterConfig,
    TemplateObservation,
    WindowCounts,
)
from faultlens.analysis.templates.drain import Drain, DrainConfig, LogCluster, Match
from faultlens.analysis.templates.masking import FINGERPRINT_MASKS, TEMPLATE_MASKS, MaskRule, mask
from faultlens.analysis.templates.miner import LogTemplateAnalyzer, TemplateAnalyzerConfig, TemplateResult

__all__ = [
    "FINGERPRINT_MASKS",
    "TEMPLATE_MASKS",
    "ChangeKind",
    "Drain",
    "DrainConfig",
    "LogCluster",
    "LogTemplateAnalyzer",
    "MaskRule",
    "Match",
    "TemplateAnalyzerConfig",
    "TemplateChange",
    "TemplateCounter",
    "TemplateCounterConfig",
    "TemplateObservation",
    "TemplateResult",
    "WindowCounts",
    "mask",
]
