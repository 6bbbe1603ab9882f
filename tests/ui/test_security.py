"""The UI is exactly as closed as the API: same Host allow-list, same bearer auth.

A real API server (:class:`~faultlens.api.ApiServer`) over an empty DuckDB store, with a
token required, and a real HTTP client. No browser is needed to check what is answered.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from faultlens.api import ApiServer, HealthState, create_app
from faultlens.api.security import ApiSecurity
from faultlens.config.model import AuthConfig, StoreConfig
from faultlens.selfmetrics import SelfMetrics
from faultlens.store import open_store
from faultlens.ui.assets import asset_path

TOKEN = "ui-s3cret"
UI_PATHS = [
    "/",
    "/traces",
    "/traces/" + "ab" * 16,
    "/map",
    "/incidents",
    "/errors",
    "/logs",
    "/templates",
    "/docs",
    "/static/faultlens.css",
    asset_path("htmx.org", "dist/htmx.min.js"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = open_store(StoreConfig(data_dir=tmp_path_factory.mktemp("ui-security")))
    security = ApiSecurity(auth=AuthConfig(bearer_tokens=[TOKEN]))
    api = ApiServer(create_app(store, SelfMetrics(), HealthState(), security=security), port=0)
    api.start()
    try:
        yield api.url
    finally:
        api.shutdown()
        store.close()


@pytest.mark.parametrize("path", UI_PATHS)
def test_ui_paths_need_the_token_and_a_name_of_this_server(server: str, path: str) -> None:
    refused = httpx.get(server + path, timeout=10)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="faultlens"'
    good = {"authorization": f"Bearer {TOKEN}"}
    assert httpx.get(server + path, headers=good, timeout=10).status_code == 200
    rebound = httpx.get(server + path, headers={**good, "host": "evil.example"}, timeout=10)
    assert rebound.status_code == 421


def test_docs_loads_swagger_from_the_package_not_a_cdn(server: str) -> None:
    page = httpx.get(server + "/docs", headers={"authorization": f"Bearer {TOKEN}"}, timeout=10).text
    assert asset_path("swagger-ui-dist", "swagger-ui-bundle.js") in page
    assert "cdn" not in page.lower() and "https://" not in page
