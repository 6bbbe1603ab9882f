"""Fixtures for the exporter tests: a live backend and small requests with known span ids."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from faultlens.testing.otlp_backend import OtlpBackend


@pytest.fixture
def backend() -> Iterator[OtlpBackend]:
    with OtlpBackend() as b:
        yield b
