"""setup.py installs without the native span decoder when there is no working C compiler.

The project's real setup.py is run (``build_ext --inplace``, what ``pip install`` runs
through setuptools) in a temporary copy holding only it and the C sources, with ``CC``
naming a compiler that records its call and fails, or one that does not exist. The build
must succeed, say why the decoder was not built, and leave no extension behind. That the
decoder is built where a compiler works is checked by ``test_native_spans`` (the test
environment is installed with one), and that faultlens then decodes spans in Python after
one warning by ``test_without_the_extension_spans_decode_in_python_after_one_warning``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NATIVE = Path("src/faultlens/decode/native")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    pytest.importorskip("setuptools", reason="setup.py needs setuptools in this interpreter")
    shutil.copy(REPO / "setup.py", tmp_path / "setup.py")
    shutil.copytree(REPO / NATIVE, tmp_path / NATIVE)
    return tmp_path


def _build(project: Path, cc: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CC": cc}
    return subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _extensions(project: Path) -> list[Path]:
    return [p for p in project.rglob("_native*") if p.suffix in (".so", ".pyd")]


def test_a_failing_compiler_leaves_the_extension_out_and_says_so(project: Path) -> None:
    calls = project / "cc-calls"
    cc = project / "failing-cc"
    cc.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 1\n')
    cc.chmod(0o755)
    done = _build(project, str(cc))
    assert done.returncode == 0, done.stdout + done.stderr
    assert calls.exists() and ".c" in calls.read_text()  # a compile was tried
    assert "WARNING: faultlens: the native span decoder (faultlens.decode._native) was not built" in (
        done.stderr
    )
    assert "spans are decoded in Python" in done.stderr
    assert _extensions(project) == []


def test_a_missing_compiler_leaves_the_extension_out_and_says_so(project: Path) -> None:
    done = _build(project, str(project / "no-such-cc"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the native span decoder (faultlens.decode._native) was not built" in done.stderr
    assert "no-such-cc" in done.stderr
    assert _extensions(project) == []
