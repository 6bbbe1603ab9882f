"""The browser libraries the UI uses, vendored into the package at fixed versions.

faultlens serves its pages with no internet at run time and installs with no Node toolchain,
so every script and stylesheet a page loads ships inside the package under
``ui/static/vendor/<name>-<version>/`` (flat), beside the library's licence files. They were taken
from the npm registry's tarballs (``npm pack``), checked against the integrity hash the
registry publishes, and committed. :data:`VENDORED` is the one list of them: the templates
name assets through :func:`asset_path`, the tests check that every listed file (and a
licence) is on disk, and ``python -m faultlens.ui.vendor`` fetches them again (needs ``npm``
and the registry; development time only), e.g. after changing a version here.

Why these: htmx (forms and links that swap part of a server-rendered page, the URL kept
shareable), uPlot (small, fast time series: tens of thousands of points per chart),
cytoscape.js (graph layout and interaction for the service map), swagger-ui-dist (``/docs``
without a CDN).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["STATIC_DIR", "VENDORED", "VENDOR_DIR", "VendoredPackage", "asset_path"]

STATIC_DIR = Path(__file__).parent / "static"
VENDOR_DIR = STATIC_DIR / "vendor"


@dataclass(frozen=True, slots=True)
class VendoredPackage:
    """One npm package: the files kept from its tarball (paths inside ``package/``), its
    licence files, and the tarball's published integrity (``sha512-...``). Each is kept
    under its base name in :attr:`directory` (flat: the repository ignores ``dist/``)."""

    name: str
    version: str
    licence: str
    integrity: str
    files: tuple[str, ...]
    licence_files: tuple[str, ...]

    @property
    def directory(self) -> str:
        return f"{self.name}-{self.version}"

    def kept(self) -> list[str]:
        """Where every kept file lies, relative to the vendor directory."""
        return [f"{self.directory}/{PurePosixPath(f).name}" for f in self.files + self.licence_files]


VENDORED: tuple[VendoredPackage, ...] = (
    VendoredPackage(
        name="htmx.org",
        version="2.0.11",
        licence="0BSD",
        integrity="sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA==",
        files=("dist/htmx.min.js",),
        licence_files=("LICENSE",),
    ),
    VendoredPackage(
        name="uplot",
        version="1.6.32",
        licence="MIT",
        integrity="sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==",
        files=("dist/uPlot.iife.min.js", "dist/uPlot.min.css"),
        licence_files=("LICENSE",),
    ),
    VendoredPackage(
        name="cytoscape",
        version="3.35.0",
        licence="MIT",
        integrity="sha512-sMvBIXiGMnhkCaWz2R06FwF/27MNlS+Tqvi17foO9UhnUg3XGZccKjxsvEqQFAQYMSSZmN5SxYzUYlQ0DOJJ3g==",
        files=("dist/cytoscape.min.js",),
        licence_files=("LICENSE",),
    ),
    VendoredPackage(
        name="swagger-ui-dist",
        version="5.36.0",
        licence="Apache-2.0",
        integrity="sha512-Lt6/Kb0gXmLdiabLhvso4VdJP9V7qJWB0zh0gzeXUV3+CMOTzMmvpJRSXN7EAjfwixwmoi9ezDbLHiexC7lA9A==",
        files=("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"),
        licence_files=("LICENSE", "NOTICE", "swagger-ui-bundle.js.LICENSE.txt"),
    ),
)


def asset_path(name: str, file: str) -> str:
    """The URL path under ``/static`` of one vendored file, e.g.
    ``asset_path("uplot", "dist/uPlot.min.css")``; KeyError for a file not in :data:`VENDORED`."""
    for pkg in VENDORED:
        if pkg.name == name and file in pkg.files:
            return f"/static/vendor/{pkg.directory}/{PurePosixPath(file).name}"
    raise KeyError(f"{name}:{file} is not a vendored asset")
