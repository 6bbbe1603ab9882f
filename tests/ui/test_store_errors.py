"""A store that cannot answer gives an error page with the API's status, and the server
keeps serving: 503 (with Retry-After when its reads are busy), 400 for a query it cannot
answer exactly. A real API server over a reader whose every query raises."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from faultlens.api import ApiServer, HealthState, create_app
from faultlens.errors import StoreBusy, StoreError, UnsupportedQuery
from faultlens.selfmetrics import SelfMetrics

PAGES = ["/", "/traces", "/traces?service=front", "/logs", "/errors", "/services/front"]


class FailingReader:
    """Every :class:`~faultlens.store.base.StoreReader` query raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name: str) -> Any:
        def fail(*_: object) -> None:
            raise self.error

        return fail


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ApiServer] = []

    def start(error: Exception) -> str:
        server = ApiServer(create_app(FailingReader(error), SelfMetrics(), HealthState()), port=0)
        server.start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.shutdown()


@pytest.mark.parametrize("path", PAGES)
def test_a_failing_store_gives_a_503_page_and_the_server_keeps_serving(serve: Any, path: str) -> None:
    url = serve(StoreError("disk I/O error"))
    response = httpx.get(url + path, timeout=10)
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    assert "The store could not answer: disk I/O error" in response.text
    assert httpx.get(url + "/healthz", timeout=10).status_code == 200
    assert httpx.get(url + "/static/faultlens.css", timeout=10).status_code == 200


def test_busy_reads_say_when_to_retry_and_an_inexact_query_is_a_400(serve: Any) -> None:
    busy = httpx.get(serve(StoreBusy("reads queued for 15 s", retry_after_s=2.4)) + "/traces", timeout=10)
    assert (busy.status_code, busy.headers["retry-after"]) == (503, "2")
    refused = httpx.get(serve(UnsupportedQuery("cannot filter on that")) + "/logs", timeout=10)
    assert refused.status_code == 400
    assert "cannot filter on that" in refused.text
