"""Fixtures: the shared Nezha-TT data (skipped when absent) and small synthetic directories."""

from __future__ import annotations

from pathlib import Path

import pytest
from nezha_builder import Synthetic, build_synthetic


@pytest.fixture
def synthetic(tmp_path: Path) -> Synthetic:
    return build_synthetic(tmp_path / "nezha")


@pytest.fixture
def nezha_tt(datasets_dir: Path) -> Path:
    path = datasets_dir / "nezha-tt"
    if not (path / "rca_data").is_dir():
        pytest.skip(f"Nezha-TT data not found at {path}")
    return path
