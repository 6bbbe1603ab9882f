"""Build of the native span decoder (faultlens.decode._native); the metadata is in pyproject.toml.

The extension is C11 against the CPython C API only (no other library); see
src/faultlens/decode/native/ and docs/architecture.md (Decode). It is optional: on a
machine without a working C compiler (or without the Python headers) the build says so
and faultlens installs without it, decoding spans with the Python path (which logs one
warning when it is imported). ``pip install -v`` shows the build's message.
"""

import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

NATIVE = Path("src/faultlens/decode/native")

# What a missing or failing compiler raises: CompileError/LinkError are CCompilerErrors,
# a compiler that cannot be run at all is an ExecError (or an OSError), no compiler known
# for this platform a PlatformError.
_NO_COMPILER = (CCompilerError, ExecError, PlatformError, OSError)


class OptionalBuildExt(build_ext):
    """``build_ext`` that warns and goes on when the native decoder cannot be compiled."""

    def run(self) -> None:
        try:
            super().run()
        except _NO_COMPILER as exc:
            self._skipped(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except _NO_COMPILER as exc:
            self._skipped(exc)

    @staticmethod
    def _skipped(exc: BaseException) -> None:
        print(
            "WARNING: faultlens: the native span decoder (faultlens.decode._native) was not built "
            f"({type(exc).__name__}: {exc}); installing without it: spans are decoded in Python, "
            "much more slowly. Install a C compiler and the Python headers, then reinstall, "
            "to build it.",
            file=sys.stderr,
        )


setup(
    ext_modules=[
        Extension(
            "faultlens.decode._native",
            sources=sorted(str(p) for p in NATIVE.glob("*.c")),
            depends=sorted(str(p) for p in NATIVE.glob("*.h")),
            # no FMA contraction: the shortest-double fast path relies on plainly rounded * and /
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-ffp-contract=off"],
            optional=True,  # an in-place build does not look for it when it was not built
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
