from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pytest

_PROBE = "from faultlens.arrowpool import use_server_pool; print(use_server_pool())"


def _probe(env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.skipif("jemalloc" not in pa.supported_memory_backends(), reason="pyarrow built without jemalloc")
def test_the_server_pool_is_jemalloc_unless_the_environment_chooses() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    assert _probe(env) == "jemalloc"
    assert _probe({**env, "ARROW_DEFAULT_MEMORY_POOL": "system"}) == "system"
