"""Fetch the vendored browser libraries again from the npm registry (development time only).

``python -m faultlens.ui.vendor`` runs ``npm pack`` for every package in
:data:`faultlens.ui.assets.VENDORED`, checks the tarball against the integrity hash listed
there, and replaces the package's directory under ``ui/static/vendor/`` by the listed files
and licences, each under its base name. Nothing here runs in the server.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from faultlens.ui.assets import VENDOR_DIR, VENDORED

__all__ = ["fetch"]


def fetch(dest: Path = VENDOR_DIR) -> None:
    """Fetch every :data:`VENDORED` package with ``npm pack``, check its integrity, and
    replace its directory under ``dest`` by the listed files and licences."""
    with tempfile.TemporaryDirectory(prefix="faultlens-vendor-") as tmp:
        for pkg in VENDORED:
            spec = f"{pkg.name}@{pkg.version}"
            out = subprocess.run(
                ["npm", "pack", spec, "--silent"], cwd=tmp, check=True, capture_output=True, text=True
            )
            tarball = Path(tmp) / out.stdout.strip().splitlines()[-1]
            digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
            if f"sha512-{digest}" != pkg.integrity:
                raise RuntimeError(f"{spec}: integrity mismatch (got sha512-{digest})")
            target = dest / pkg.directory
            shutil.rmtree(target, ignore_errors=True)
            with tarfile.open(tarball) as tar:
                for file in pkg.files + pkg.licence_files:
                    member = tar.extractfile(f"package/{file}")
                    if member is None:
                        raise RuntimeError(f"{spec}: {file} is not a file in the tarball")
                    target.mkdir(parents=True, exist_ok=True)
                    (target / PurePosixPath(file).name).write_bytes(member.read())
            print(f"{spec} -> {target}", file=sys.stderr)


if __name__ == "__main__":
    fetch()
