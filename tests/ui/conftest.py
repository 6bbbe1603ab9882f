"""Browser tests of the web UI: Debian's headless Chromium, driven by Playwright, against a
real ``faultlens serve`` fed by the OpenTelemetry SDK (:mod:`.shop`).

One server and one browser serve the whole directory (starting them and sending the shop's
data is most of the cost: ~10 s). Every page a test opens is checked for console errors,
uncaught exceptions, failed requests and requests that leave the server (no CDN). The
browser runs in the Europe/Paris zone so the tests can see times converted from UTC.

Chromium comes from Debian (``apt-get install chromium``; ``.ci/run`` installs it), never
from ``playwright install``; without ``/usr/bin/chromium`` these tests are skipped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response, sync_playwright

from faultlens.demo.shop import Sent, Shop
from faultlens.testing.process import ServerProcess, start_server
from faultlens.ui.browser import CHROMIUM, CHROMIUM_ARGS

ZONE = "Europe/Paris"
# Screenshots for docs/ui.md are kept only when asked: UI_SCREENSHOTS=docs/ui.
SCREENSHOTS = os.environ.get("UI_SCREENSHOTS")


@dataclass
class Shopfront:
    """The running server, what was sent to it, and the incident it opened."""

    server: ServerProcess
    sent: Sent
    incident: dict[str, Any]
    error_group: str  # the declined payments' exception group

    @property
    def url(self) -> str:
        return self.server.api


def _until(what: Callable[[], Any], timeout_s: float, message: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{message} (not within {timeout_s} s)")


@pytest.fixture(scope="session")
def shopfront(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shopfront]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium): no browser to test the UI with")
    env = {
        "FAULTLENS_ANALYSIS__WINDOW": "10",
        "FAULTLENS_STORE__FLUSH_INTERVAL": "0.5",
        "FAULTLENS_ANALYSIS__STATE_INTERVAL": "3600",
    }
    server = start_server(tmp_path_factory.mktemp("ui-store"), env=env)
    shop = Shop(server.grpc_port)
    try:
        sent = shop.run()
        _until(lambda: server.stats()["spans"] >= sent.spans, 30, "every span stored")
        _until(lambda: server.stats()["logs"] >= sent.logs, 30, "every log record stored")

        def ranked() -> dict[str, Any] | None:
            found = httpx.get(f"{server.api}/api/v1/incidents", timeout=10).json()["incidents"]
            done = [i for i in found if i["rca_status"] != "pending"]
            return done[-1] if done else None

        incident = _until(ranked, 30, "an incident with its root causes ranked")
        groups = httpx.get(f"{server.api}/api/v1/errors?service=payment", timeout=10).json()["groups"]
        group = next(g["group_id"] for g in groups if g["exception_type"] == "ValueError")
        yield Shopfront(server, sent, incident, group)
    finally:
        shop.shutdown()
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium): no browser to test the UI with")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class Watched:
    """A page and what went wrong on it: console errors, uncaught exceptions, failed or
    refused requests, and requests to anywhere but the server."""

    page: Page
    base: str
    problems: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def open(self, path: str, ready: str | None = None) -> Response | None:
        """Go to ``path`` and wait until the network is idle (and ``ready`` is attached)."""
        response = self.page.goto(self.base + path)
        self.page.wait_for_load_state("networkidle")
        if ready is not None:
            self.page.wait_for_selector(ready, state="attached", timeout=10_000)
        return response

    def screenshot(self, name: str) -> None:
        """Keep a screenshot for docs/ui.md when UI_SCREENSHOTS names a directory."""
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), type="png", scale="css")


@pytest.fixture
def watched(browser: Browser, shopfront: Shopfront) -> Iterator[Watched]:
    with watch(browser, shopfront.url) as w:
        yield w


@contextmanager
def watch(browser: Browser, base: str) -> Iterator[Watched]:
    """A fresh page (its own context) on the server at ``base``, watched for problems."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, timezone_id=ZONE)
    page = context.new_page()
    w = Watched(page, base)

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type in ("error", "warning"):
            w.problems.append(f"console {msg.type}: {msg.text}")

    def on_request(request: Request) -> None:
        w.requests.append(request.url)
        if not request.url.startswith(base) and not request.url.startswith("data:"):
            w.problems.append(f"request outside the server: {request.url}")

    def on_response(response: Response) -> None:
        if response.status >= 400 and response.request.resource_type != "document":
            w.problems.append(f"{response.status} for {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda e: w.problems.append(f"uncaught: {e}"))
    page.on("request", on_request)

    def on_failed(request: Request) -> None:
        # A request the browser itself dropped because the page navigated away (a test going
        # to the next page while the favicon loads) is not a failure of the server.
        if request.failure != "net::ERR_ABORTED":
            w.problems.append(f"failed: {request.url} {request.failure}")

    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    try:
        yield w
    finally:
        context.close()
