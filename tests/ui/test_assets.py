"""The vendored browser libraries are all there, with their licences, and served as is."""

from __future__ import annotations

import pytest

from faultlens.ui.assets import STATIC_DIR, VENDORED, VendoredPackage, asset_path

VENDOR = STATIC_DIR / "vendor"


@pytest.mark.parametrize("pkg", VENDORED, ids=lambda p: p.name)
def test_every_vendored_file_and_licence_is_in_the_package(pkg: VendoredPackage) -> None:
    root = VENDOR / pkg.directory
    for file in pkg.files + pkg.licence_files:
        assert (root / file).is_file() and (root / file).stat().st_size > 0, file
    licence = (root / pkg.licence_files[0]).read_text(errors="replace")
    assert "Permission" in licence or "Apache License" in licence  # the licence text, not a stub


def test_nothing_is_vendored_that_is_not_listed() -> None:
    listed = {f"{p.directory}/{f}" for p in VENDORED for f in p.files + p.licence_files}
    on_disk = {str(path.relative_to(VENDOR)) for path in VENDOR.rglob("*") if path.is_file()}
    assert on_disk == listed


def test_asset_paths_name_listed_files_only() -> None:
    assert asset_path("uplot", "dist/uPlot.min.css") == "/static/vendor/uplot-1.6.32/dist/uPlot.min.css"
    with pytest.raises(KeyError):
        asset_path("uplot", "dist/uPlot.js")
