"""One reconcile pass of the operator, without kopf: parse once, and 409 -> observe again."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from rollouts.controller.config import OperatorConfig
from rollouts.controller.loop import run_loop
from rollouts.controller.reconciler import Reconciler
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
        for _ in range(3):
            specs.clear()
            await reconciler.reconcile(body, {}, services, {},
                                       ({"shop": [indexed]}, {"": []}))
            assert len(specs) == 1, "the spec was validated more than once in a pass"
            reconciler.written_over = None  # as if our write came back
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
