"""The vendored browser libraries are all there, with their licences, and served as is."""

from __future__ import annotations

import subprocess

import pytest

from faultlens.ui.assets import STATIC_DIR, VENDORED, VendoredPackage, asset_path

VENDOR = STATIC_DIR / "vendor"


@pytest.mark.parametrize("pkg", VENDORED, ids=lambda p: p.name)
def test_every_vendored_file_and_licence_is_in_the_package(pkg: VendoredPackage) -> None:
    for kept in pkg.kept():
        assert (VENDOR / kept).is_file() and (VENDOR / kept).stat().st_size > 0, kept
    licence = (VENDOR / pkg.kept()[len(pkg.files)]).read_text(errors="replace")
    assert "Permission" in licence or "Apache License" in licence  # the licence text, not a stub


def test_nothing_is_vendored_that_is_not_listed() -> None:
    listed = {kept for p in VENDORED for kept in p.kept()}
    on_disk = {str(path.relative_to(VENDOR)) for path in VENDOR.rglob("*") if path.is_file()}
    assert on_disk == listed


def test_asset_paths_name_listed_files_only() -> None:
    assert asset_path("uplot", "dist/uPlot.min.css") == "/static/vendor/uplot-1.6.32/uPlot.min.css"
    with pytest.raises(KeyError):
        asset_path("uplot", "dist/uPlot.js")


def test_every_vendored_file_is_committed_not_ignored() -> None:
    """A vendored file git ignores (``dist/`` is ignored) would pass here and fail on a clean clone."""
    root = STATIC_DIR.parents[3]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    kept = [str((VENDOR / k).relative_to(root)) for p in VENDORED for k in p.kept()]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *kept], cwd=root, capture_output=True, text=True, check=False
    )
    assert ignored.stdout == ""
