"""The evaluation tests build Nezha-layout directories with the helpers of ``tests/datasets``."""

from __future__ import annotations

import sys
from pathlib import Path

_DATASETS_TESTS = str(Path(__file__).resolve().parents[1] / "datasets")
if _DATASETS_TESTS not in sys.path:
    sys.path.insert(0, _DATASETS_TESTS)
