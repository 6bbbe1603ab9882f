"""The malloc settings of the server process, checked by what glibc then does."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")

# Allocates and frees a 600 KiB block three times and prints, each time, how many blocks
# glibc holds as separate mappings while it is alive. glibc's dynamic threshold moves up
# to 600 KiB at the first free, so untuned only the first block is mapped.
_PROBE = """
import ctypes, json, sys
from faultlens.glibcmalloc import tune_glibc_malloc
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
applied = tune_glibc_malloc() if sys.argv[1] == "tune" else {}
mapped = []
for _ in range(3):
    base = libc.mallinfo2().hblks
    block = bytearray(600 * 1024)
    mapped.append(libc.mallinfo2().hblks - base)
    del block
print(json.dumps({"applied": applied, "mapped": mapped}))
"""


def _probe(mode: str, env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}


def test_large_blocks_stay_mapped_after_tuning() -> None:
    tuned = _probe("tune", _clean_env())
    assert tuned["applied"] == {"arena_max": 2, "mmap_threshold": 256 * 1024}
    assert tuned["mapped"] == [1, 1, 1]


def test_untuned_glibc_moves_its_threshold_past_the_block() -> None:
    # The control: what the tuning is for. If this ever fails, glibc changed its default.
    assert _probe("plain", _clean_env())["mapped"] == [1, 0, 0]


def test_the_environment_wins() -> None:
    env = {**_clean_env(), "MALLOC_ARENA_MAX": "4"}
    result = _probe("tune", env)
    assert result["applied"] == {}
    assert result["mapped"] == [1, 0, 0]


# Fills the heap with 100-200 KiB blocks (below the mmap threshold, so in the arenas), frees
# every other one (free chunks between live ones, which glibc does not give back by itself)
# and prints the anonymous memory before and after trim_heap.
_TRIM_PROBE = """
import json, random
from faultlens.glibcmalloc import trim_heap, tune_glibc_malloc
def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
tune_glibc_malloc()
rng = random.Random(1)
blocks = [bytearray(rng.randint(100_000, 200_000)) for _ in range(1500)]
for i in range(0, len(blocks), 2):
    blocks[i] = None
before = anon()
released = trim_heap()
print(json.dumps({"before": before, "after": anon(), "released": released}))
"""


def test_trim_heap_gives_free_chunks_between_live_blocks_back() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _TRIM_PROBE], env=_clean_env(), capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout)
    assert result["released"] is True
    # ~110 MiB were freed between live blocks; most of it goes back.
    assert result["before"] - result["after"] > 64 * 2**20
