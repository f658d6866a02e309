"""What bench/run_canaries.py sees of the canary: an in-process watch of Rollouts and
ReplicaSets on its own thread, each event stamped when it arrives."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, NamedTuple

from rollouts.models.rollout import GROUP, POD_TEMPLATE_HASH_LABEL, VERSION
from rollouts.sandbox.apiserver import ApiEmulator, WatchEvent

PAUSE_REASON = "CanaryPauseStep"



class RolloutPoint(NamedTuple):
    name: str
    generation: int
    observed_generation: int | None
    phase: str | None
    step: int | None
    pod_hash: str | None
    stable: str | None
    pause_start: str | None


class ReplicaSetPoint(NamedTuple):
    owner: str
    hash: str
    type: str
    spec_replicas: int
    available: int


def rollout_point(obj: dict[str, Any]) -> RolloutPoint:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    pause = next((p for p in status.get("pauseConditions") or ()
                  if p.get("reason") == PAUSE_REASON), None)
    return RolloutPoint(
        name=str(meta.get("name")),
        generation=int(meta.get("generation") or 0),
        observed_generation=status.get("observedGeneration"),
        phase=status.get("phase"),
        step=status.get("currentStepIndex"),
        pod_hash=status.get("currentPodHash"),
        stable=status.get("stableRS"),
        pause_start=pause.get("startTime") if pause else None,
    )


def replica_set_point(event: WatchEvent) -> ReplicaSetPoint | None:
    meta = event.object.get("metadata") or {}
    owner = next((o.get("name") for o in meta.get("ownerReferences") or ()
                  if o.get("controller")), None)
    if owner is None:
        return None
    return ReplicaSetPoint(
        owner=str(owner),
        hash=str((meta.get("labels") or {}).get(POD_TEMPLATE_HASH_LABEL)),
        type=event.type,
        spec_replicas=int((event.object.get("spec") or {}).get("replicas") or 0),
        available=int((event.object.get("status") or {}).get("availableReplicas") or 0),
    )


class Recorder:
    """An in-process watch of Rollouts and ReplicaSets on its own thread and event loop, so
    that events are stamped when they arrive, whatever the main thread is doing."""

    def __init__(self, emulator: ApiEmulator, namespace: str) -> None:
        self.emulator = emulator
        self.namespace = namespace
        self.latest: dict[str, RolloutPoint] = {}
        self.rollouts: list[tuple[float, RolloutPoint]] = []
        self.replica_sets: list[tuple[float, ReplicaSetPoint]] = []
        self.last_event = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bench-recorder", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        rollouts = self.emulator.subscribe(GROUP, VERSION, "rollouts", self.namespace)
        replica_sets = self.emulator.subscribe("apps", "v1", "replicasets", self.namespace,
                                               label_selector=POD_TEMPLATE_HASH_LABEL)
        self._ready.set()

        async def follow_rollouts() -> None:
            async for event in rollouts:
                now = time.time()
                self.last_event = now
                if event.type == "DELETED":
                    continue
                point = rollout_point(event.object)
                self.latest[point.name] = point
                self.rollouts.append((now, point))

        async def follow_replica_sets() -> None:
            async for event in replica_sets:
                now = time.time()
                self.last_event = now
                point = replica_set_point(event)
                if point is not None:
                    self.replica_sets.append((now, point))

        tasks = [asyncio.create_task(follow_rollouts()), asyncio.create_task(follow_replica_sets())]
        try:
            await self._stop.wait()
        finally:
            rollouts.close()
            replica_sets.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
