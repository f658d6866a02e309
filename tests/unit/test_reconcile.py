"""One reconcile pass of the operator, without kopf: parse once, and 409 -> observe again."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import pytest

from rollouts.controller.config import OperatorConfig
from rollouts.controller.loop import run_loop
from rollouts.controller.reconciler import ECHO_WAIT, Reconciler
from rollouts.controller.runtime import Runtime
from rollouts.errors import ConflictError
from rollouts.kube import analysis as kube_analysis
from rollouts.kube.analysis import parse_template
from rollouts.models.rollout import RolloutSpec
from rollouts.planner.events import EVENT_HOLD
from tests.unit.test_execute import Recorder, rollout_body, svc_body

TEMPLATE = {
    "apiVersion": "rollouts.dev/v1alpha1", "kind": "AnalysisTemplate",
    "metadata": {"name": "errors", "namespace": "shop"},
    "spec": {"metrics": [{"name": "m", "provider": {"web": {"url": "http://x"}},
                          "successCondition": "result == 1"}]},
}


def with_analysis_step(body: dict[str, Any]) -> dict[str, Any]:
    body["spec"]["strategy"]["canary"]["steps"] = [
        {"setWeight": 20}, {"analysis": {"templates": [{"templateName": "errors"}]}}]
    return body


async def test_a_pass_validates_the_spec_once_and_no_template(
        monkeypatch: pytest.MonkeyPatch) -> None:
    specs: list[object] = []
    original = RolloutSpec.model_validate

    def counting(cls: type[RolloutSpec], obj: Any, *args: Any, **kwargs: Any) -> RolloutSpec:
        specs.append(obj)
        return original(obj, *args, **kwargs)

    templates_parsed: list[object] = []
    parse = kube_analysis.parse_template

    def counting_parse(body: Any, *, cluster: bool) -> Any:
        templates_parsed.append(body)
        return parse(body, cluster=cluster)

    # Indexed (validated) when the watch delivers it, before any pass.
    indexed = parse_template(TEMPLATE, cluster=False)
    assert indexed.template is not None, indexed.error
    monkeypatch.setattr(RolloutSpec, "model_validate", classmethod(counting))
    monkeypatch.setattr(kube_analysis, "parse_template", counting_parse)

    rec = Recorder()
    body = with_analysis_step(rollout_body(status={}))
    services = {("shop", name): [svc_body(name, {"app": "web"}, "1")]
                for name in ("web", "web-canary")}
    async with rec.client() as client:
        runtime = Runtime(client=client, providers=None)  # type: ignore[arg-type]
        reconciler = Reconciler(OperatorConfig(), runtime, ("shop", "web"))
        for version in range(43, 46):
            specs.clear()
            await reconciler.reconcile(body, {}, services, {},
                                       ({"shop": [indexed]}, {"": []}))
            # Once in the first pass; the versions our writes make have the same spec.
            assert len(specs) == (1 if version == 43 else 0), specs
            body["metadata"]["resourceVersion"] = str(version)  # our write came back
    assert templates_parsed == []
    assert [m for m, *_ in rec.requests].count("POST") >= 1  # the pass did act


class Stopped:
    """Just enough of kopf.DaemonStopped for the loop."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def __bool__(self) -> bool:
        return self.event.is_set()

    async def wait(self) -> None:
        await self.event.wait()


async def test_a_conflict_means_observe_and_plan_again_not_an_error(
        caplog: pytest.LogCaptureFixture) -> None:
    config = OperatorConfig(requeue_floor=0.01)
    runtime = Runtime(client=None, providers=None)  # type: ignore[arg-type]
    stopped = Stopped()
    passes: list[str] = []

    async def one_pass() -> float | None:
        passes.append("pass")
        if len(passes) == 1:
            raise ConflictError(409, "Conflict", "the object has been modified")
        stopped.event.set()
        return None

    with caplog.at_level(logging.DEBUG, logger="rollouts.operator"):
        await asyncio.wait_for(
            run_loop(config, runtime, ("shop", "web"), stopped,  # type: ignore[arg-type]
                  one_pass, {"rollout": "shop/web"}), 5)
    assert passes == ["pass", "pass"]  # planned again, from a fresh observation
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("conflict" in r.getMessage() for r in caplog.records)


ROUTE_PATH = "/apis/example.dev/v1/namespaces/default/routes/web-route"


@pytest.mark.parametrize(("reply", "invalid"), [
    ((200, {"metadata": {"name": "web-route", "resourceVersion": "3"},
            "spec": {"canaryWeight": 0}}), False),
    ((404, {"kind": "Status", "reason": "NotFound", "code": 404}), True),
])
async def test_a_rollout_with_a_router_reads_its_routes_each_pass(
        reply: tuple[int, Any], invalid: bool) -> None:
    from tests.unit.fake_router import FakeRouter

    rec = Recorder({("GET", ROUTE_PATH): reply})
    body = rollout_body(status={})
    services = {("shop", name): [svc_body(name, {"app": "web"}, "1")]
                for name in ("web", "web-canary")}
    config = OperatorConfig(router_factory=lambda rollout: FakeRouter())
    async with rec.client() as client:
        runtime = Runtime(client=client, providers=None)  # type: ignore[arg-type]
        reconciler = Reconciler(config, runtime, ("shop", "web"))
        await reconciler.reconcile(body, {}, services, {}, ({}, {}))
    assert rec.requests[0][:2] == ("GET", ROUTE_PATH)
    status = next(b for m, p, _, b in rec.requests if m == "PUT")["status"]
    assert ("Route web-route not found" in status["message"]) is invalid


async def test_a_passing_transitions_events_are_held_then_posted() -> None:
    """planner.events rule 4 in a pass: the status is written at once, the Event of a
    Rollout still Progressing waits (the pass asks to be woken when it is due), and a
    stopping daemon posts what is held."""
    rec = Recorder()
    body = rollout_body(status={})
    services = {("shop", name): [svc_body(name, {"app": "web"}, "1")]
                for name in ("web", "web-canary")}
    async with rec.client() as client:
        runtime = Runtime(client=client, providers=None)  # type: ignore[arg-type]
        reconciler = Reconciler(OperatorConfig(), runtime, ("shop", "web"))
        requeue = await reconciler.reconcile(body, {}, services, {}, ({}, {}))
        status = next(b for m, p, _, b in rec.requests if m == "PUT")["status"]
        assert status["phase"] == "Progressing"
        events = [b for m, p, _, b in rec.requests if p.endswith("/events")]
        assert events == []  # held: the Rollout is on its way to its first step
        assert requeue is not None and requeue <= EVENT_HOLD.total_seconds()
        assert reconciler.held.events
        await reconciler.flush_events(body)
        events = [b for m, p, _, b in rec.requests if p.endswith("/events")]
        assert [e["involvedObject"]["name"] for e in events] == ["web"]
        assert not reconciler.held.events


class Cluster:
    """Just enough of the API server behind a Recorder for passes in a row: the writes of
    a pass become the caches and the body of the next (pods come when `ready`)."""

    def __init__(self, rec: Recorder, body: dict[str, Any]) -> None:
        self.rec, self.body, self.seen, self.rv = rec, body, 0, 100
        self.replica_sets: dict[str, dict[str, Any]] = {}
        self.services = {name: svc_body(name, {"app": "web"}, "1")
                         for name in ("web", "web-canary")}

    @classmethod
    def of_canary(cls) -> Cluster:
        """A Rollout of setWeight 34 (2 of 3 pods) then an indefinite pause."""
        body = rollout_body(status={})
        body["spec"]["strategy"]["canary"]["steps"] = [{"setWeight": 34}, {"pause": {}}]
        return cls(Recorder(), body)

    def next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def caches(self) -> tuple[Any, ...]:
        return ({("shop", "web"): list(self.replica_sets.values())},
                {("shop", n): [s] for n, s in self.services.items()})

    def take_writes(self) -> list[tuple[str, str, Any]]:
        """The writes since the last call, applied to the caches and the body."""
        new = [(m, p, b) for m, p, _, b in self.rec.requests[self.seen:]]
        self.seen = len(self.rec.requests)
        for method, path, body in new:
            name = path.rsplit("/", 1)[-1]
            if path.endswith("/replicasets") and method == "POST":
                rs = dict(body, metadata={**body["metadata"], "resourceVersion": self.next_rv()},
                          status={})
                self.replica_sets[body["metadata"]["name"]] = rs
            elif "/replicasets/" in path:
                rs = self.replica_sets[name]
                rs["spec"] = {**rs["spec"], "replicas": body["spec"]["replicas"]}
                rs["metadata"]["resourceVersion"] = self.next_rv()
            elif "/services/" in path:
                self.services[name] = svc_body(name, body["spec"]["selector"], self.next_rv())
            elif path.endswith("/status"):
                self.body = {**self.body, "status": body["status"],
                             "metadata": {**self.body["metadata"],
                                          "resourceVersion": self.next_rv()}}
        return new

    async def deploy_then_release(self, reconciler: Reconciler) -> None:
        """The first revision deployed and Healthy, then a new image (generation 2)."""
        for _ in range(3):
            await reconciler.reconcile(self.body, *self.caches(), {}, ({}, {}))
            self.take_writes()  # our writes come back
            self.pods_ready()
        assert self.body["status"]["phase"] == "Healthy"
        self.body["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
        self.body["metadata"] = {**self.body["metadata"], "generation": 2,
                                 "resourceVersion": self.next_rv()}

    def pods_ready(self) -> None:
        for rs in self.replica_sets.values():
            n = rs["spec"]["replicas"]
            rs["status"] = {"replicas": n, "readyReplicas": n, "availableReplicas": n}
            rs["metadata"]["resourceVersion"] = self.next_rv()


async def test_a_passing_state_is_held_planned_on_and_written_with_the_next() -> None:
    """planner.write_folding rule 2 in passes: the new revision's "waiting for pods" is not
    written; the next pass waits for the held pass's writes to show in the caches, then
    plans on from the held status: the pause is written with one Event naming the created
    ReplicaSet once, and the ReplicaSet is created once."""
    cluster = Cluster.of_canary()
    rec = cluster.rec
    async with rec.client() as client:
        runtime = Runtime(client=client, providers=None)  # type: ignore[arg-type]
        reconciler = Reconciler(OperatorConfig(), runtime, ("shop", "web"))

        async def run_pass() -> list[tuple[str, str, Any]]:
            await reconciler.reconcile(cluster.body, *cluster.caches(), {}, ({}, {}))
            return cluster.take_writes()  # our writes come back

        await cluster.deploy_then_release(reconciler)
        stale = cluster.caches()
        await reconciler.reconcile(cluster.body, *stale, {}, ({}, {}))
        assert reconciler.pending is not None and len(reconciler.echoes) == 2
        # Woken before the watch brought the ReplicaSet and the Service back: it waits.
        sent = len(rec.requests)
        wait = await reconciler.reconcile(cluster.body, *stale, {}, ({}, {}))
        assert wait is not None and 0 < wait <= ECHO_WAIT and len(rec.requests) == sent
        writes = [(m, p.rsplit("/", 1)[-1]) for m, p, _ in cluster.take_writes()]
        assert ("POST", "replicasets") in writes and ("PATCH", "web-canary") in writes
        assert not [p for m, p in writes if p in ("status", "events")], writes
        # A pass before the pods come: the held status holds, nothing is written.
        assert await run_pass() == []
        writes = []
        for _ in range(6):  # the canary grows as the stable makes room, then it pauses
            cluster.pods_ready()
            writes += await run_pass()
            if writes and writes[-1][1].endswith("/events"):
                break
        assert [p.rsplit("/", 1)[-1] for _, p, _ in writes][-2:] == ["status", "events"]
        assert [p for _, p, _ in writes].count(writes[-2][1]) == 1  # one status write
        assert writes[-2][2]["status"]["phase"] == "Paused"
        assert writes[-2][2]["status"]["currentStepIndex"] == 1
        message = writes[-1][2]["message"]
        assert message.count("Created ReplicaSet") == 1, message
        assert reconciler.pending is None
    assert [p for m, p, _, _ in rec.requests if m == "POST"].count(
        "/apis/apps/v1/namespaces/shop/replicasets") == 2  # one per revision


async def test_a_held_status_goes_when_the_rollout_changes_and_is_written_on_stop() -> None:
    cluster = Cluster.of_canary()
    rec = cluster.rec
    async with rec.client() as client:
        runtime = Runtime(client=client, providers=None)  # type: ignore[arg-type]
        reconciler = Reconciler(OperatorConfig(), runtime, ("shop", "web"))
        await cluster.deploy_then_release(reconciler)
        await reconciler.reconcile(cluster.body, *cluster.caches(), {}, ({}, {}))
        cluster.take_writes()
        held = reconciler.pending
        assert held is not None and held.status.phase == "Progressing"
        # Someone else changed the Rollout: the held status is dropped, planned again.
        cluster.body["metadata"] = {**cluster.body["metadata"],
                                    "resourceVersion": cluster.next_rv()}
        await reconciler.reconcile(cluster.body, *cluster.caches(), {}, ({}, {}))
        assert cluster.take_writes() == []  # the same passing state: held again
        assert reconciler.pending is not None
        assert reconciler.pending.resource_version == cluster.body["metadata"][
            "resourceVersion"]
        # The daemon stops: the held status is written, then the held Events.
        await reconciler.flush_events(cluster.body)
        writes = cluster.take_writes()
        assert [p.rsplit("/", 1)[-1] for _, p, _ in writes] == ["status", "events"]
        assert writes[0][2]["status"]["phase"] == "Progressing"
        assert reconciler.pending is None


async def test_an_echo_wait_ends_when_the_hold_is_up() -> None:
    """The held status and Events go out on time even while an echo is missing (here the
    echo wait is up first: planned from the caches as they are)."""
    clock = [dt.datetime(2026, 12, 5, tzinfo=dt.UTC)]

    class Clock:
        def now(self) -> dt.datetime:
            return clock[0]

    cluster = Cluster.of_canary()
    rec = cluster.rec
    async with rec.client() as client:
        runtime = Runtime(client=client, providers=None)  # type: ignore[arg-type]
        reconciler = Reconciler(OperatorConfig(clock=Clock()), runtime,  # type: ignore[arg-type]
                                ("shop", "web"))
        await cluster.deploy_then_release(reconciler)
        stale = cluster.caches()
        await reconciler.reconcile(cluster.body, *stale, {}, ({}, {}))
        assert reconciler.pending is not None and reconciler.echoes
        clock[0] += dt.timedelta(seconds=1)
        wait = await reconciler.reconcile(cluster.body, *stale, {}, ({}, {}))
        # the new revision's hold (PASSING_SECONDS) ends after the echo wait (ECHO_WAIT)
        assert wait is not None and wait <= ECHO_WAIT - 1
        cluster.take_writes()
        assert reconciler.pending_until is not None
        clock[0] = reconciler.pending_until
        await reconciler.reconcile(cluster.body, *stale, {}, ({}, {}))  # echoes still missing
        writes = [p.rsplit("/", 1)[-1] for _, p, _ in cluster.take_writes()]
        assert "status" in writes and "events" in writes, writes
        assert reconciler.pending is None
