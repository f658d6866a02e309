"""The dashboard served from a thread against a sandbox, and a headless Chromium to read it.

Chromium is Debian's (`/usr/bin/chromium`, installed by scripts/setup.sh); the Python
`playwright` package drives it. Playwright's own browser download is not used.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from rollouts.cli.kubeopts import Globals
from rollouts.dashboard.server import Settings, serve

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


class DashboardThread:
    """`rollouts dashboard` in a thread with its own event loop, on a free port."""

    def __init__(self, kubeconfig: pathlib.Path, namespace: str | None) -> None:
        self.settings = Settings(namespace=namespace, port=0)
        self.kubeconfig = kubeconfig
        self.url = ""
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="dashboard", daemon=True)

    def _main(self) -> None:
        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()

            def started(url: str) -> None:
                self.url = url
                self._started.set()

            async with Globals(kubeconfig=str(self.kubeconfig)).client() as client:
                await serve(self.settings, client, started=started, stop=self._stop)

        try:
            asyncio.run(run())
        except BaseException as exc:
            self._error = exc
            self._started.set()

    def start(self, timeout: float = 60.0) -> DashboardThread:
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError("the dashboard did not start")
        if self._error is not None:
            raise RuntimeError(f"the dashboard failed: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=20)


def start_dashboard(kubeconfig: pathlib.Path, namespace: str | None) -> DashboardThread:
    return DashboardThread(kubeconfig, namespace).start()


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
