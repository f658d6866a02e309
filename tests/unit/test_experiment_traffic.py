"""The planner's side of experiment template weights (planner/experiment_traffic.py) and the
Experiment's hold (experiments/plan.py): which destinations are in force at which step, the
manifest of a weighted step, and letting go of the pods only once the routes send them
nothing."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from rollouts.experiments.plan import ExperimentObserved, plan_experiment
from rollouts.models.experiment import TRAFFIC_HOLD_ANNOTATION, ValidExperiment
from rollouts.models.rollout import ObjectMeta, RolloutStatus, ValidRollout, parse_spec
from rollouts.models.wire import rollout_owner_reference
from rollouts.planner.context import Context, Draft
from rollouts.planner.experiment_traffic import (
    experiment_destinations,
    experiment_services,
    release_experiments,
)
from rollouts.planner.manifests import pod_template_hash
from rollouts.planner.router_traffic import RouterTraffic
from rollouts.planner.routing import ExtraDestination, TrafficIntent
from rollouts.planner.steps import Walk
from rollouts.planner.steps.experiment import experiment_manifest
from rollouts.planner.types import (
    ApplyRouteWrite,
    ExperimentTemplateView,
    ExperimentView,
    Observed,
    ScaleReplicaSet,
)
from rollouts.traffic import build_router
from tests.unit.test_experiment_plan import LATER, READY, RUNNING, STABLE, experiment
from tests.unit.test_steps import FakeTraffic
from tests.unit.traffic.cases import Store
from tests.unit.world import T0, canary_spec

ROUTING = {"smi": {"rootService": "demo", "trafficSplitName": "demo-split"}}
WEIGHTED = {"experiment": {"duration": "5m", "templates": [
    {"name": "baseline", "specRef": "stable", "weight": 5},
    {"name": "canary", "specRef": "canary", "weight": 10, "service": {"name": "exp-c"}},
    {"name": "quiet", "specRef": "canary"}]}}
STEPS = [{"setWeight": 20}, WEIGHTED, {"pause": {}}, {"setWeight": 50}]
SERVICES = {"baseline": "demo-x-1-baseline", "canary": "exp-c", "quiet": None}


def spec() -> dict[str, Any]:
    return canary_spec(STEPS, canaryService="demo-canary", stableService="demo-stable",
                       trafficRouting=ROUTING)


def view(ctx: Context, phase: str, *, held: bool = True, terminating: bool = False
         ) -> ExperimentView:
    return ExperimentView(
        name=f"demo-{ctx.desired_hash}-1", phase=phase, pod_hash=ctx.desired_hash,
        step_index=1, terminating=terminating, traffic_held=held, resource_version="9",
        templates=tuple(ExperimentTemplateView(n, s, f"h-{n}") for n, s in SERVICES.items()))


def situation(phase: str | None = None, index: int = 1, split: dict[str, int] | None = None,
              **view_fields: Any) -> tuple[Context, Walk]:
    raw = spec()
    parsed = ValidRollout(ObjectMeta(name="demo", namespace="ns", uid="u"), parse_spec(raw),
                          raw["template"], RolloutStatus())
    desired = pod_template_hash(parsed.template)
    status = RolloutStatus(stable_rs="s", observed_pod_hash=desired, current_pod_hash=desired)
    canary = parsed.spec.strategy.canary
    assert canary is not None
    router = build_router(canary, "ns", "demo", rollout_owner_reference("demo", "u"))
    assert router is not None
    store = Store()
    if split is not None:
        store.put({"apiVersion": "split.smi-spec.io/v1alpha2", "kind": "TrafficSplit",
                   "metadata": {"name": "demo-split", "namespace": "ns",
                                "ownerReferences": [rollout_owner_reference("demo", "u")]},
                   "spec": {"service": "demo", "backends": [
                       {"service": s, "weight": w} for s, w in split.items()]}})
    ctx = Context(parsed, parsed.spec, Observed(replica_sets=(STABLE,), router=router,
                                                routes=store.observe(router)),
                  T0, desired, status)
    if phase is not None:
        made = view(ctx, phase, **view_fields)
        ctx = dataclasses.replace(ctx, observed=dataclasses.replace(
            ctx.observed, experiments=(made,)))
    walk = Walk(steps=canary.steps or [], index=index, canary=None, stable=STABLE,
                traffic=FakeTraffic(20), pause_conditions=[])
    return ctx, walk


BOTH = (ExtraDestination("demo-x-1-baseline", 5), ExtraDestination("exp-c", 10))


@pytest.mark.parametrize(("phase", "index", "fields", "expected"), [
    (None, 1, {}, ()),                        # not made yet
    ("Pending", 1, {}, ()),                   # pods not all available
    ("Running", 1, {}, BOTH),                 # the step runs: its weighted templates
    ("Running", 2, {}, BOTH),                 # still running beside the next step (Argo)
    ("Running", 1, {"terminating": True}, ()),  # being terminated (promote, abort)
    ("Successful", 1, {}, ()),                # ended
    ("Failed", 2, {}, ()),
    ("Running", 4, {}, ()),                   # past the last step: all to the canary
    ("Running", 0, {}, ()),                   # before the step
])
def test_destinations_in_force(phase: str | None, index: int, fields: dict[str, Any],
                               expected: tuple[ExtraDestination, ...]) -> None:
    ctx, walk = situation(phase, index, **fields)
    assert experiment_destinations(ctx, walk) == expected


def test_the_services_of_held_experiments_are_retired() -> None:
    ctx, _ = situation("Successful")
    assert experiment_services(ctx) == ("demo-x-1-baseline", "exp-c")
    ctx, _ = situation("Successful", held=False)
    assert experiment_services(ctx) == ()


def test_a_weighted_step_makes_a_held_experiment_with_services() -> None:
    ctx, walk = situation()
    step = walk.steps[1].experiment
    assert step is not None
    manifest = experiment_manifest(ctx, walk, step)
    assert isinstance(manifest, dict)
    assert manifest["metadata"]["annotations"] == {TRAFFIC_HOLD_ANNOTATION: "true"}
    services = {t["name"]: t.get("service") for t in manifest["spec"]["templates"]}
    assert services == {"baseline": {}, "canary": {"name": "exp-c"}, "quiet": None}


def _released(ctx: Context, traffic: Any) -> tuple[list[Any], Draft]:
    draft = Draft()
    release_experiments(ctx, draft, traffic)
    return [a for a in draft.actions if isinstance(a, ApplyRouteWrite)], draft


@pytest.mark.parametrize(("phase", "split", "held", "released"), [
    # ended, the routes send its Services nothing: let go
    ("Successful", {"demo-canary": 20, "demo-stable": 80}, True, True),
    ("Failed", {"demo-canary": 0, "demo-stable": 100}, True, True),
    # ended, but the routes still send one of them traffic: not yet
    ("Successful", {"demo-canary": 20, "demo-stable": 75, "exp-c": 5}, True, False),
    # still running: never
    ("Running", {"demo-canary": 20, "demo-stable": 80}, True, False),
    # not held (let go already, or never weighted): nothing to do
    ("Successful", {"demo-canary": 20, "demo-stable": 80}, False, False),
])
def test_letting_go_waits_for_the_routes(phase: str, split: dict[str, int], held: bool,
                                         released: bool) -> None:
    ctx, _ = situation(phase, split=split, held=held)
    traffic = RouterTraffic(4, ctx.observed.router, ctx.observed.routes)  # type: ignore[arg-type]
    writes, draft = _released(ctx, traffic)
    if released:
        [write] = writes
        assert write.write.key.kind == "Experiment"
        assert write.write.patch == (
            {"op": "replace", "path": "/metadata/resourceVersion", "value": "9"},
            {"op": "remove", "path": "/metadata/annotations/rollouts.dev~1traffic-hold"})
    else:
        assert writes == []
    # Waiting on the routes: look at them again soon (they are read, not watched).
    assert bool(draft.wake_at) == (held and phase != "Running" and not released)


def test_a_destination_still_wanted_is_not_let_go() -> None:
    ctx, _ = situation("Successful", split={"demo-canary": 20, "demo-stable": 80})
    traffic = RouterTraffic(4, ctx.observed.router, ctx.observed.routes,  # type: ignore[arg-type]
                            extra=(ExtraDestination("exp-c", 5),))
    assert _released(ctx, traffic)[0] == []


def test_the_intent_retires_ended_destinations() -> None:
    ctx, _ = situation("Successful", split={"demo-canary": 20, "demo-stable": 65,
                                            "demo-x-1-baseline": 5, "exp-c": 10})
    router = ctx.observed.router
    assert router is not None
    traffic = RouterTraffic(4, router, ctx.observed.routes, retired=experiment_services(ctx))
    assert traffic.intent(20) == TrafficIntent(20, 80, retired=("demo-x-1-baseline", "exp-c"))
    store = Store.of(snapshot.body for snapshot in ctx.observed.routes.values()
                     if snapshot is not None)
    store.apply(router.writes(ctx.observed.routes, traffic.intent(20)))
    [split] = store.objects.values()
    assert split["spec"]["backends"] == [{"service": "demo-canary", "weight": 20},
                                         {"service": "demo-stable", "weight": 80}]


# --- the Experiment's side ---------------------------------------------------------------


def held(exp: ValidExperiment) -> ValidExperiment:
    return dataclasses.replace(exp, metadata=exp.metadata.model_copy(update={
        "annotations": {TRAFFIC_HOLD_ANNOTATION: "true"}}))


def test_a_held_experiment_keeps_its_pods_after_the_end_until_let_go() -> None:
    ended = experiment(status={**RUNNING, "phase": "Successful",
                               "finishedAt": "2026-01-01T00:00:00Z"}, duration="10s")
    plan = plan_experiment(held(ended), ExperimentObserved(READY), LATER)
    assert not [a for a in plan.actions if isinstance(a, ScaleReplicaSet)]
    assert plan.requeue_after is not None and plan.requeue_after > 0  # not over: no Done
    plan = plan_experiment(ended, ExperimentObserved(READY), LATER)
    assert [a.replicas for a in plan.actions if isinstance(a, ScaleReplicaSet)] == [0, 0]
