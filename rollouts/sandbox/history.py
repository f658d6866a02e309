"""Every write to Rollouts, ReplicaSets, Services and AnalysisRuns, in commit order.

A fault campaign judges the controller by what it did, not only by where it ended: a step
taken twice or a canary scaled down before the stable could carry the traffic leaves no
trace in the end state. `WriteHistory` subscribes in-process to the emulator's watch streams
(which carry every committed write with its resourceVersion, old and new object) on a thread
of its own, and keeps each one as a `Write`; `rollouts.sandbox.invariants` reads them back in
resourceVersion order (the emulator's global commit order).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rollouts.models.rollout import GROUP, VERSION
from rollouts.sandbox.apiserver import ApiEmulator
from rollouts.sandbox.loopthread import LoopThread

__all__ = ["RESOURCES", "Write", "WriteHistory"]

Obj = dict[str, Any]
# (short name, group, version, plural)
RESOURCES = (
    ("rollout", GROUP, VERSION, "rollouts"),
    ("replicaset", "apps", "v1", "replicasets"),
    ("service", "", "v1", "services"),
    ("analysisrun", GROUP, VERSION, "analysisruns"),
)


@dataclass(frozen=True)
class Write:
    rv: int  # the emulator's global resourceVersion of the write: its commit order
    at: float  # time.time() when the recorder received it
    resource: str  # "rollout" | "replicaset" | "service" | "analysisrun"
    type: str  # ADDED | MODIFIED | DELETED
    name: str
    obj: Obj
    old: Obj | None


class WriteHistory:
    """`start()` before the first write to watch; `writes()` is the history so far."""

    def __init__(self, emulator: ApiEmulator, namespace: str) -> None:
        self.emulator = emulator
        self.namespace = namespace
        self._writes: list[Write] = []
        self._lock = threading.Lock()
        self._thread = LoopThread("write-history", self._main)

    def start(self) -> WriteHistory:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._thread.stop()

    def writes(self) -> list[Write]:
        """What was recorded so far, in commit (resourceVersion) order."""
        with self._lock:
            return sorted(self._writes, key=lambda w: w.rv)

    def count(self) -> int:
        """How many writes were recorded so far."""
        with self._lock:
            return len(self._writes)

    def settle(self, timeout: float = 5.0) -> list[Write]:
        """The history once it has caught up with the emulator's latest resourceVersion of
        the recorded kinds (writes are delivered to this thread asynchronously)."""
        deadline = time.monotonic() + timeout
        target = self.emulator.resource_version
        while time.monotonic() < deadline:
            with self._lock:
                newest = max((w.rv for w in self._writes), default=0)
            if newest >= target or self._quiet_since(0.3):
                break
            time.sleep(0.05)
        return self.writes()

    def _quiet_since(self, seconds: float) -> bool:
        with self._lock:
            last = max((w.at for w in self._writes), default=0.0)
        return time.time() - last >= seconds

    async def _main(self, stop: asyncio.Event, ready: Callable[[], None]) -> None:
        subscriptions = [
            (short, self.emulator.subscribe(group, version, plural, self.namespace))
            for short, group, version, plural in RESOURCES
        ]
        ready()

        async def follow(short: str, subscription: Any) -> None:
            async for event in subscription:
                meta = event.object.get("metadata") or {}
                write = Write(event.rv, time.time(), short, event.type, str(meta.get("name")),
                              event.object, event.old)
                with self._lock:
                    self._writes.append(write)

        tasks = [asyncio.create_task(follow(short, sub)) for short, sub in subscriptions]
        try:
            await stop.wait()
        finally:
            for _, subscription in subscriptions:
                subscription.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
