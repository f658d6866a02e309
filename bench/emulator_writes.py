"""The API emulator's request handler wrapped to note every write, for the scripts that run
`bench/run_canaries.py` and take its writes apart (`write_census.py`, `trace_writes.py`).

`note_writes()` patches `ApiEmulator` in this process (the bench runs the emulator in its
own process, the controller in a child) and returns two lists that fill as the bench runs:
every write (POST, PUT, PATCH, DELETE) with its body and answer, and the times the bench
reset the emulator's counters (the first when the canary starts, the second when the idle
period does).
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from rollouts.sandbox import apiserver

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Write(NamedTuple):
    at: float  # time.monotonic() when it was answered
    method: str
    path: str
    text: str  # the body, decoded
    status: int  # the answer's code


def note_writes() -> tuple[list[Write], list[float]]:
    """(writes, counter resets), filled from now on."""
    writes: list[Write] = []
    resets: list[float] = []
    handle = apiserver.ApiEmulator._handle
    reset = apiserver.ApiEmulator.reset_counters

    def resetting(self: Any) -> None:
        resets.append(time.monotonic())
        reset(self)

    async def noting(self: Any, request: Any) -> Any:
        if request.method not in WRITES:
            return await handle(self, request)
        text = (await request.read()).decode(errors="replace")
        reply = await handle(self, request)
        writes.append(Write(time.monotonic(), request.method, request.path, text, reply.status))
        return reply

    apiserver.ApiEmulator._handle = noting  # type: ignore[method-assign]
    apiserver.ApiEmulator.reset_counters = resetting  # type: ignore[method-assign]
    return writes, resets
