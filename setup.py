"""Build of the native span decoder (faultlens.decode._native); the metadata is in pyproject.toml.

The extension is C11 against the CPython C API only (no other library); see
src/faultlens/decode/native/ and docs/architecture.md (Decode). When it is missing,
faultlens decodes spans with the Python path.
"""

from pathlib import Path

from setuptools import Extension, setup

NATIVE = Path("src/faultlens/decode/native")

setup(
    ext_modules=[
        Extension(
            "faultlens.decode._native",
            sources=sorted(str(p) for p in NATIVE.glob("*.c")),
            depends=sorted(str(p) for p in NATIVE.glob("*.h")),
            # no FMA contraction: the shortest-double fast path relies on plainly rounded * and /
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-ffp-contract=off"],
        )
    ],
)
