"""Log templates: mining per service (skeleton miner, or Drain), counts per window, NEW and MISSING templates.

Pure cores (no I/O, no clock): :class:`LogTemplateAnalyzer` takes decoded log tables and
returns typed results; its state is plain data an orchestrator persists.
"""

from faultlens.analysis.templates.base import Match, TemplateCluster, TemplateMiner
from faultlens.analysis.templates.counter import (
    ChangeKind,
    TemplateChange,
    TemplateCounter,
    TemplateCounterConfig,
    TemplateObservation,
    WindowCounts,
)
from faultlens.analysis.templates.drain import Drain, DrainConfig, LogCluster
from faultlens.analysis.templates.masking import FINGERPRINT_MASKS, TEMPLATE_MASKS, MaskRule, mask
from faultlens.analysis.templates.miner import (
    LogTemplateAnalyzer,
    MinerKind,
    TemplateAnalyzerConfig,
    TemplateMerge,
    TemplateResult,
)
from faultlens.analysis.templates.skeleton import SkeletonCluster, SkeletonConfig, SkeletonMiner

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
    "MinerKind",
    "SkeletonCluster",
    "SkeletonConfig",
    "SkeletonMiner",
    "TemplateAnalyzerConfig",
    "TemplateChange",
    "TemplateCluster",
    "TemplateCounter",
    "TemplateCounterConfig",
    "TemplateMerge",
    "TemplateMiner",
    "TemplateObservation",
    "TemplateResult",
    "WindowCounts",
    "mask",
]
