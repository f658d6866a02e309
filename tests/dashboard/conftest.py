"""The dashboard served from a thread against a sandbox, and a headless Chromium to read it.

Chromium is Debian's (`/usr/bin/chromium`, installed by scripts/setup.sh); the Python
`playwright` package drives it. Playwright's own browser download is not used.
"""

from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from rollouts.dashboard.background import DashboardThread
from rollouts.dashboard.server import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def start_dashboard(kubeconfig: pathlib.Path, namespace: str | None) -> DashboardThread:
    """`rollouts dashboard` on a free port, in a thread."""
    return DashboardThread(str(kubeconfig), Settings(namespace=namespace, port=0)).start()


@pytest.fixture
def screenshots(tmp_path: pathlib.Path) -> pathlib.Path:
    """Where screenshots go: $ROLLOUTS_SCREENSHOTS (e.g. docs/img) or the test's tmp dir."""
    target = pathlib.Path(os.environ.get("ROLLOUTS_SCREENSHOTS") or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target


@pytest.fixture
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM) or shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is missing: run scripts/setup.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()
