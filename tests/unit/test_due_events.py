"""planner.write_folding rule 3 and the echo wait in passes: held Events that come due
while the Rollout's waiting state is held wait with that status (one Event with the next
resting state, not one alone); a hold that ends while the last pass's writes are not in
the caches yet writes what was held as it was planned, without planning from the stale
caches."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from rollouts.controller.config import OperatorConfig
from rollouts.controller.reconciler import Reconciler
from rollouts.controller.runtime import Runtime
from rollouts.planner.write_folding import FOLD_SECONDS, PASSING_SECONDS
from tests.unit.test_execute import Recorder, rollout_body
from tests.unit.test_reconcile import Cluster
from tests.unit.test_status_echo import T0, Clock


def kinds(writes: list[tuple[str, str, Any]]) -> list[str]:
    return [path.rsplit("/", 1)[-1] for _, path, _ in writes]


def canary() -> Cluster:
    body = rollout_body(status={})
    body["spec"]["strategy"]["canary"]["steps"] = [
        {"setWeight": 34}, {"pause": {"duration": "2s"}}, {"setWeight": 67}, {"pause": {}}]
    return Cluster(Recorder(), body)


def reconciler_of(client: Any, clock: Clock) -> Reconciler:
    runtime = Runtime(client=client, providers=None)  # type: ignore[arg-type]
    return Reconciler(OperatorConfig(clock=clock), runtime, ("shop", "web"))


async def test_due_events_wait_with_the_held_waiting_state() -> None:
    cluster = canary()
    clock = Clock()
    async with cluster.rec.client() as client:
        reconciler = reconciler_of(client, clock)

        async def run_pass(at: float) -> list[str]:
            clock.at_offset(at)
            await reconciler.reconcile(cluster.body, *cluster.caches(), {}, ({}, {}))
            return kinds(cluster.take_writes())

        async def until_status(at: float) -> list[str]:
            """Passes as the pods come, from `at` on, until one writes the status."""
            writes: list[str] = []
            for tick in range(6):
                cluster.pods_ready()
                writes += await run_pass(at + tick * 0.05)
                if "status" in writes:
                    return writes
            raise AssertionError(f"no status written: {writes}")

        clock.at_offset(-60)
        await cluster.deploy_then_release(reconciler)
        await reconciler.flush_events(cluster.body)  # the first revision's Events
        cluster.take_writes()
        # The new revision: its waiting state and Events held, until it rests (long hold).
        assert "status" not in await run_pass(0.0)
        assert reconciler.pending is not None and reconciler.held.events
        assert reconciler.pending_until == T0 + dt.timedelta(seconds=PASSING_SECONDS)
        # Past the short hold, the pods still coming: nothing written yet.
        assert await run_pass(FOLD_SECONDS + 0.5) == []
        assert reconciler.pending is not None
        # Its pods come: step 1 done, paused 2 s (written; a pause shorter than the Event
        # hold is passed through, so the Events wait on for the step after it).
        writes = await until_status(FOLD_SECONDS + 1)
        assert cluster.body["status"]["phase"] == "Paused" and "events" not in writes
        start = FOLD_SECONDS + 1.2
        # The pause is over: setWeight 67 waits for a pod; its status held 3 s (a step done).
        writes = await run_pass(start + 2.5)
        assert "status" not in writes and reconciler.pending is not None
        assert reconciler.pending_until == clock.now() + dt.timedelta(seconds=FOLD_SECONDS)
        held = len(reconciler.held.events)
        assert held
        # Later, the pod not there yet: nothing goes out alone.
        assert await run_pass(start + 4.5) == []
        assert len(reconciler.held.events) == held
        # The pod comes: the pause is written, then one Event with everything since.
        writes = await until_status(start + 5.0)
        assert writes[-2:] == ["status", "events"], writes
        assert cluster.body["status"]["phase"] == "Paused"
        assert cluster.body["status"]["currentStepIndex"] == 3
        message = cluster.rec.requests[-1][3]["message"]
        assert "Step 2/4" in message and "setWeight 67" in message, message
        assert not reconciler.held.events and reconciler.pending is None


async def test_a_hold_ending_before_the_echoes_writes_what_was_planned() -> None:
    """The pause ends: the canary is scaled and the waiting state held; the scale's echo is
    not in the caches when the hold ends: the held status and Events are written as
    planned, the canary is not scaled again, and the wait for the echo goes on."""
    cluster = canary()
    clock = Clock()
    async with cluster.rec.client() as client:
        reconciler = reconciler_of(client, clock)
        clock.at_offset(-60)
        await cluster.deploy_then_release(reconciler)
        await reconciler.flush_events(cluster.body)
        cluster.take_writes()
        for tick in range(6):  # the new revision, then its pods: paused at step 1
            clock.at_offset(tick * 0.1)
            await reconciler.reconcile(cluster.body, *cluster.caches(), {}, ({}, {}))
            cluster.take_writes()
            cluster.pods_ready()
            if (cluster.body.get("status") or {}).get("phase") == "Paused":
                break
        assert cluster.body["status"]["currentStepIndex"] == 1
        stale = copy.deepcopy(cluster.caches())  # the caches will not see the scale
        clock.at_offset(3.0)
        await reconciler.reconcile(cluster.body, *stale, {}, ({}, {}))
        writes = cluster.take_writes()
        assert kinds(writes) == ["web-" + writes[0][1].rsplit("-", 1)[-1]], writes
        assert reconciler.pending is not None and reconciler.echoes
        clock.at_offset(4.0)
        wait = await reconciler.reconcile(cluster.body, *stale, {}, ({}, {}))
        assert cluster.take_writes() == []
        assert wait is not None and wait <= FOLD_SECONDS - 1 + 1e-6  # the hold's end
        clock.at_offset(3.0 + FOLD_SECONDS)
        wait = await reconciler.reconcile(cluster.body, *stale, {}, ({}, {}))
        writes = cluster.take_writes()
        assert kinds(writes) == ["status", "events"], writes
        assert writes[0][2]["status"]["currentStepIndex"] == 2
        assert reconciler.pending is None and not reconciler.held.events
        assert reconciler.echoes and wait is not None and wait > 0  # still waiting for it
