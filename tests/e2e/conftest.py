"""Fixtures for the end-to-end scenarios: one Sandbox per test.

`sandbox` is started without a controller (tests that kill one start it as a subprocess);
`cluster` adds the real controller in a thread. Both count the emulator's HTTP responses by
(method, path, status) in `sb.responses`, so a test can see the 409/422s a controller met.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

import pytest

from rollouts.sandbox.cluster import Sandbox

READY_DELAY = 0.1


class CountingSandbox(Sandbox):
    """A Sandbox whose API emulator also counts its responses by status code."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.responses: collections.Counter[tuple[str, str, int]] = collections.Counter()
        handle = self.emulator._handle

        async def counted(request: Any) -> Any:
            response = await handle(request)
            self.responses[(request.method, request.path, response.status)] += 1
            return response

        # The route is bound to the instance attribute when the emulator starts.
        self.emulator._handle = counted  # type: ignore[method-assign]

    def failed_writes(self, path_suffix: str, codes: tuple[int, ...] = (409, 422)) -> int:
        return sum(n for (method, path, code), n in self.responses.items()
                   if method != "GET" and path.endswith(path_suffix) and code in codes)


@pytest.fixture
def sandbox() -> Iterator[CountingSandbox]:
    sb = CountingSandbox(ready_delay=READY_DELAY, requeue_floor=0.2)
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def cluster(sandbox: CountingSandbox) -> CountingSandbox:
    sandbox.start_controller()
    return sandbox
