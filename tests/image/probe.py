"""Wait for a controller started from the image (or its entrypoint) to serve and reconcile."""

from __future__ import annotations

import pathlib

import httpx

from tests.e2e.conftest import CountingSandbox
from tests.e2e.processes import wait_until


def wait_serving_and_healthy(port: int, sandbox: CountingSandbox, log: pathlib.Path) -> None:
    """/healthz and /readyz answer 200 on `port`, then the sandbox's `web` is Healthy."""

    def status(path: str) -> int | None:
        try:
            return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code
        except httpx.TransportError:
            return None

    wait_until("/healthz", lambda: status("/healthz") == 200, timeout=90,
               on_timeout=log.read_text)
    wait_until("/readyz", lambda: status("/readyz") == 200, on_timeout=log.read_text)
    sandbox.wait_phase("web", "Healthy")
