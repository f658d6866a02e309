"""The writes one Rollout costs in `bench/run_canaries.py`'s canary, in order.

Runs the canary bench (same arguments; default one Rollout) with the API emulator's request
handler wrapped to note every request that is not a read or a watch, then prints those about
the first Rollout (`app-00000`) from the image change on: time, method, path and the start
of the body. This is how docs/benchmarks.md's per-transition write tables were made.

    PYTHONPATH=$PWD python3 bench/trace_writes.py --rollouts 1 --idle 2
"""

from __future__ import annotations

import pathlib
import sys
import time
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import run_canaries  # the bench, next to this file

from rollouts.sandbox import apiserver

NAME = "app-00000"


def main(argv: list[str]) -> int:
    writes: list[tuple[float, str, str, str]] = []
    resets: list[float] = []  # the bench resets the counters when the canary starts
    handle = apiserver.ApiEmulator._handle
    reset = apiserver.ApiEmulator.reset_counters

    def resetting(self: Any) -> None:
        resets.append(time.monotonic())
        reset(self)

    async def noting(self: Any, request: Any) -> Any:
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            body = (await request.read())[:160].decode(errors="replace")
            if NAME in request.path or NAME in body:
                writes.append((time.monotonic(), request.method, request.path, body))
        return await handle(self, request)

    apiserver.ApiEmulator._handle = noting  # type: ignore[method-assign]
    apiserver.ApiEmulator.reset_counters = resetting  # type: ignore[method-assign]
    code = run_canaries.main(argv)
    t0 = resets[0] if resets else 0.0  # the second one starts the idle period
    canary = [w for w in writes if w[0] >= t0]
    print(f"\nwrites about {NAME} in the canary: {len(canary)}")
    for at, method, path, body in canary:
        print(f"{at - t0:7.2f}s {method:6} {path}\n          {body[:120]}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
