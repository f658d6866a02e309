"""planner.write_folding rule 3 in passes: held Events that come due while the Rollout's
waiting state is held go out alone when a written status shows them; the rest wait with
the held status, and the waiting state is not written just for them."""

from __future__ import annotations

from typing import Any

from rollouts.controller.config import OperatorConfig
from rollouts.controller.reconciler import Reconciler
from rollouts.controller.runtime import Runtime
from tests.unit.test_execute import Recorder, rollout_body
from tests.unit.test_reconcile import Cluster
from tests.unit.test_status_echo import Clock


def kinds(writes: list[tuple[str, str, Any]]) -> list[str]:
    return [path.rsplit("/", 1)[-1] for _, path, _ in writes]


async def test_due_events_shown_by_a_written_status_go_out_without_the_waiting_state() -> None:
    body = rollout_body(status={})
    body["spec"]["strategy"]["canary"]["steps"] = [
        {"setWeight": 34}, {"pause": {"duration": "2s"}}, {"setWeight": 67}, {"pause": {}}]
    cluster = Cluster(Recorder(), body)
    clock = Clock()
    async with cluster.rec.client() as client:
        runtime = Runtime(client=client, providers=None)  # type: ignore[arg-type]
        reconciler = Reconciler(OperatorConfig(clock=clock), runtime,  # type: ignore[arg-type]
                                ("shop", "web"))

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
        # The new revision: its waiting state and Events held.
        assert "status" not in await run_pass(0.0)
        assert reconciler.pending is not None and reconciler.held.events
        # Its pods come: step 1 done, paused 2 s (written; its end comes within the
        # Event hold, so the Events wait on).
        assert "events" not in await until_status(0.5)
        assert cluster.body["status"]["phase"] == "Paused"
        shown = len(reconciler.held.events)
        assert shown and reconciler.shown == shown
        # The pause is over: setWeight 67 waits for a pod (held), its Events join.
        writes = await run_pass(2.7)  # the pause began at 0.65 s
        assert "status" not in writes and reconciler.pending is not None
        assert len(reconciler.held.events) > shown
        # The Event hold is up, the pods not there yet: the Events the written pause shows
        # go out, the waiting state is not written.
        writes = await run_pass(3.0)
        assert writes == ["events"], writes
        message = cluster.rec.requests[-1][3]["message"]
        assert "Step 2/4" in message and "setWeight 67" not in message, message
        assert reconciler.pending is not None and reconciler.held.events
        # The pod comes: the pause is written, then the rest of the Events.
        writes = await until_status(3.2)
        assert writes[-2:] == ["status", "events"], writes
        assert cluster.body["status"]["phase"] == "Paused"
        assert cluster.body["status"]["currentStepIndex"] == 3
        assert "setWeight 67" in cluster.rec.requests[-1][3]["message"]
        assert not reconciler.held.events and reconciler.pending is None
