"""How the UI is driven headless, by its browser tests and its benchmark: one launch for both.

Chromium comes from Debian's ``chromium`` package (``apt-get install chromium``; ``.ci/run``
installs it), started by Playwright with ``launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)``,
never from ``playwright install``: nothing is downloaded at test time, and what the tests
measure is the browser the benchmark measures. Playwright itself is a test dependency, so
this module only names the binary and its flags.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CHROMIUM", "CHROMIUM_ARGS"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
