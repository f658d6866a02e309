"""Invariants with real routers (Gateway API, Istio, NGINX, SMI, ...): the planner over
random histories, its route writes applied with `jsonpatch` to real route objects.

After every pass:
- a weight is raised only after the canary has the available pods to serve it (and with
  dynamicStableScale, lowered only once the stable has the pods for its share again,
  unless the canary has none available);
- the routes send the canary side weight only while the revision it reaches (the canary
  Service's, or the Istio canary subset's) has a pod available;
- while aborted (by a user or a failed analysis) the canary loses no pod before the routes
  read back weight 0 with no managed route, and once the canary is gone the reported
  weight is 0;
- writes on objects the controller does not own change only the router's fields;
and at the end, deleting the Rollout (`Router.finalize`) leaves all traffic on stable, no
managed route and no object of ours.

Histories include experiment steps, whose templates have a `weight` under the routers that
can send one (Gateway API, Istio, SMI, ALB) and none under the others. With them:
- the status's weights (stable + canary + additional) add up to maxTrafficWeight, and its
  `additional` is what the routes held for the templates' Services when the pass began
  (also while aborted or promoted);
- the routes send weight only to a template Service whose pods are available, and give it
  weight only while its Experiment runs;
- a template's pods go (tests.unit.fake_experiments) only once the routes send its Service
  nothing: the Rollout lets go of the Experiment's hold no earlier;
- deleting the Rollout at any point, even right after a pass wrote a template's weight and
  before the status shows it, leaves no route naming a template's Service; and once every
  Experiment has ended, the routes come back to carrying no template destination.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rollouts.models.experiment import COMPLETED_EXPERIMENT_PHASES
from rollouts.models.rollout import parse_rollout
from rollouts.models.wire import rollout_owner_reference
from rollouts.planner.manifests import pod_template_hash
from rollouts.planner.routing import Observed, Router, TrafficIntent
from rollouts.planner.types import (
    ApplyRouteWrite,
    CreateReplicaSet,
    Plan,
    ScaleReplicaSet,
    ServiceView,
)
from rollouts.traffic import build_router, rollout_router
from tests.unit.fake_experiments import FakeExperiments
from tests.unit.traffic.cases import BY_NAME, CANARY, MANAGED, STABLE, Case, Store
from tests.unit.world import World, canary_spec

OWNER = rollout_owner_reference("demo", "uid-1")  # World's Rollout
ROUTERS = ["gatewayapi", "istio-host", "istio-subset", "nginx", "smi", "alb", "traefik",
           "apisix", "ambassador", "appmesh"]
# Those that can send an experiment template's Service a weight (EXPERIMENT_WEIGHT_ROUTERS).
WEIGHING = {"gatewayapi", "istio-host", "istio-subset", "smi", "alb"}


@dataclass
class RouterWorld(World):
    """World whose route objects are real ones in a `Store` (patched with jsonpatch)."""

    case: Case | None = None
    store: Store = field(default_factory=Store)
    experiments: FakeExperiments = field(default_factory=FakeExperiments)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in (STABLE, CANARY):
            self.services[name] = ServiceView(name, {"app": "demo"})

    def real_router(self) -> Router:
        parsed = parse_rollout(self.rollout())
        assert parsed.__class__.__name__ == "ValidRollout", parsed
        canary = parsed.spec.strategy.canary  # type: ignore[union-attr]
        router = build_router(canary, "default", "demo", OWNER)
        assert router is not None
        return router

    def routes(self) -> Observed:
        return self.store.observe(self.real_router())

    def observed(self) -> Any:
        return replace(super().observed(), router=self.real_router(), routes=self.routes(),
                       experiments=self.experiments.views())

    def apply(self, result: Plan) -> None:
        actions = self.experiments.apply(result.actions)
        self.store.apply(a.write for a in actions if isinstance(a, ApplyRouteWrite))
        super().apply(replace(result, actions=tuple(
            a for a in actions if not isinstance(a, ApplyRouteWrite))))
        for action in actions:  # the pod template, which an experiment step copies
            if isinstance(action, CreateReplicaSet):
                self.replica_sets[action.pod_hash] = replace(
                    self.replica_sets[action.pod_hash],
                    template=action.manifest["spec"]["template"])

    def extra_weight(self, service: str) -> int:
        """What the routes send an experiment template's Service now."""
        return self.real_router().extra_weight(self.routes(), service) or 0

    def experiments_move(self) -> None:
        """The Experiment controller's pass (its pods go only once the routes let go)."""
        self.experiments.reconcile(self.extra_weight)


def experiment_step(weighing: bool, weighted: bool = False
                    ) -> st.SearchStrategy[dict[str, Any]]:
    """An experiment step: a stable and a canary template, with a `weight` each or not
    (never under a router that cannot send one; `weighted`: always under one that can),
    for a while or open-ended."""
    weights = st.none() if not weighing else st.integers(1, 30) if weighted else st.one_of(
        st.none(), st.integers(1, 30))

    def step(duration: bool, baseline: int | None, canary: int | None) -> dict[str, Any]:
        templates = [{"name": "baseline", "specRef": "stable"},
                     {"name": "canary", "specRef": "canary"}]
        for template, weight in zip(templates, (baseline, canary), strict=True):
            if weight is not None:
                template["weight"] = weight
        return {"experiment": {**({"duration": "1m"} if duration else {}),
                               "templates": templates}}
    return st.builds(step, st.booleans(), weights, weights)


def steps_for(case: Case) -> st.SearchStrategy[list[dict[str, Any]]]:
    kinds: list[st.SearchStrategy[dict[str, Any]]] = [
        st.builds(lambda w: {"setWeight": w}, st.integers(0, 100)),
        st.just({"pause": {}}),
        st.just({"analysis": {"templates": [{"templateName": "t"}]}}),
        experiment_step(case.name in WEIGHING),
    ]
    if case.headers:
        kinds.append(st.builds(lambda on: {"setHeaderRoute": {"name": "header-1", **(
            {"match": [{"headerName": "x-canary", "headerValue": {"exact": "yes"}}]}
            if on else {})}}, st.booleans()))
    if case.mirrors:
        kinds.append(st.builds(lambda on: {"setMirrorRoute": {"name": "mirror-1", **(
            {"match": [{"path": {"prefix": "/api"}}], "percentage": 50} if on else {})}},
            st.booleans()))
    return st.lists(st.one_of(kinds), min_size=1, max_size=6)


MOVES = st.sampled_from(["pass", "pass", "pass", "pods", "pods", "pods_partial", "clock",
                         "promote", "abort", "run_ok", "run_failed", "image", "conflict",
                         "exp_ready", "exp_ready", "exp_end", "exp_fail", "exp_ctl", "exp_ctl"])


def owned_fields_only(case: Case, before: Store, after: Store,
                      extra: tuple[str, ...] = ()) -> None:
    """`extra`: experiment templates' Services, whose destinations are the router's too."""
    for key, body in after.objects.items():
        old = before.objects.get(key)
        if old is None or _ours(body):
            continue
        assert without_destinations(case.strip(copy.deepcopy(old)), extra) == \
            without_destinations(case.strip(copy.deepcopy(body)), extra), key


def without_destinations(node: Any, services: tuple[str, ...]) -> Any:
    """`node` without the list entries that name one of `services`."""
    if isinstance(node, dict):
        return {k: without_destinations(v, services) for k, v in node.items()}
    if isinstance(node, list):
        return [without_destinations(v, services) for v in node
                if not (isinstance(v, dict) and _names(v, services))]
    return node


def _names(entry: dict[str, Any], services: tuple[str, ...]) -> bool:
    """A destination (no list inside, e.g. a backendRef) naming one of `services`."""
    text = json.dumps(entry)
    return "[" not in text and any(json.dumps(s) in text for s in services)


def _ours(body: dict[str, Any]) -> bool:
    refs = body.get("metadata", {}).get("ownerReferences") or []
    return any(r.get("uid") == OWNER["uid"] for r in refs)


def all_stable(router: Router, routes: Observed) -> bool:
    """Weight 0 and no managed route: nothing to write for an all-stable intent."""
    return router.verified_weight(routes) == 0 and not router.writes(
        routes, TrafficIntent(canary_weight=0, stable_weight=100))


def check_pass(w: RouterWorld, before: RouterWorld, result: Plan) -> None:
    case = w.case
    assert case is not None
    router = before.real_router()
    held_before = router.verified_weight(before.routes()) or 0
    held_after = router.verified_weight(w.routes()) or 0
    desired = result.status.current_pod_hash
    canary = before.rs(desired) if desired != result.status.stable_rs else None
    # 1. raised only once served
    if held_after > held_before:
        need = math.ceil(w.spec["replicas"] * held_after / 100)
        assert canary is not None and min(canary.available, canary.spec_replicas) >= need, (
            held_before, held_after, canary)
    # 1b. dynamicStableScale: the stable gets more traffic only once it has the pods for it
    # (unless the canary has no pod available: what the routes send it is lost, so it goes
    # to the stable at once, as Argo Rollouts sets weight 0 for a canary with none)
    empty = canary is None or min(canary.available, canary.spec_replicas) == 0
    if held_after < held_before and w.spec["strategy"]["canary"].get(
            "dynamicStableScale") and not empty:
        stable = before.rs(result.status.stable_rs)
        need = math.ceil(w.spec["replicas"] * (100 - held_after) / 100)
        assert stable is not None and min(stable.available, stable.spec_replicas) >= need, (
            held_before, held_after, stable)
    # 1c. the routes send the canary side weight only where pods are available (a release
    # that replaces a weighed canary must not take its weight to a revision with none).
    # The stable revision is exempt: an abort points the canary Service at it, and what
    # reaches it that way is the stable's traffic, with the pods the stable has.
    if held_after and canary_side(w) != result.status.stable_rs:
        side = w.rs(canary_side(w))
        assert side is not None and min(side.available, side.spec_replicas) > 0, (
            held_after, canary_side(w), side)
    # 2. stable first: while aborted, the canary shrinks only once the routes are all-stable
    if result.status.abort and canary is not None:
        for action in result.actions:
            if isinstance(action, ScaleReplicaSet) and action.name == canary.name \
                    and action.replicas < canary.spec_replicas:
                assert all_stable(router, before.routes()), "canary scaled down before 0"
        gone = w.rs(desired)
        if gone is None or gone.spec_replicas == 0:
            weights = result.status.canary.weights if result.status.canary else None
            assert weights is None or weights.canary.weight == 0
    # 3. only the router's fields on objects we do not own
    owned_fields_only(case, before.store, w.store, w.experiments.services())
    check_experiment_traffic(w, before, result)


def canary_side(w: RouterWorld) -> str | None:
    """The revision the routes' canary side reaches: the canary subset's pod-template hash
    (Istio subsets), else the one the canary Service selects."""
    for body in w.store.objects.values():
        if body["kind"] == "DestinationRule":
            for subset in body["spec"].get("subsets") or []:
                if subset.get("name") == "canary":
                    found = (subset.get("labels") or {}).get("rollouts-pod-template-hash")
                    if found:
                        return str(found)
    return w.selector(CANARY)


def check_experiment_traffic(w: RouterWorld, before: RouterWorld, result: Plan) -> None:
    """The invariants of experiment templates' weights after one pass."""
    # 4. the status's weights add up, and show what the routes held for the templates
    weights = result.status.canary.weights if result.status.canary else None
    if weights is not None:
        routing = w.spec["strategy"]["canary"]["trafficRouting"]
        full = routing.get("maxTrafficWeight", 100)
        additional = {d.service_name: d.weight for d in weights.additional or ()}
        assert weights.canary.weight + weights.stable.weight + sum(additional.values()) \
            == full, weights
        held = {s: before.extra_weight(s) for s in before.experiments.services()}
        assert additional == {s: n for s, n in held.items() if n}, (additional, held)
    for service in w.experiments.services():
        weight = w.extra_weight(service)
        owner = w.experiments.owner_of(service)
        assert owner is not None
        # 5. weight only to available pods, and given only while the Experiment runs
        if weight:
            event("a template Service got weight")
            assert owner.available, f"{service} gets {weight} with no pods available"
            if not before.extra_weight(service):
                found = before.experiments.by_name[owner.view.name].view
                assert found.phase == "Running" and not found.terminating, found
        # 6. let go (its pods may go) only once the routes send it nothing
        if not owner.view.traffic_held and owner.view.phase in COMPLETED_EXPERIMENT_PHASES:
            event("an Experiment let go")
            assert not weight, f"{owner.view.name} let go while {service} gets {weight}"


def delete_rollout(w: RouterWorld) -> None:
    """Deleting the Rollout (`Router.finalize`, as the reconciler builds the router: with
    the Services of its Experiments), applied until nothing is left to write."""
    parsed = parse_rollout(w.rollout())
    assert parsed.__class__.__name__ == "ValidRollout", parsed
    router = rollout_router(parsed, w.experiments.services())  # type: ignore[arg-type]
    assert router is not None
    for _ in range(3):
        w.store.apply(router.finalize(w.routes()))
    routes = w.routes()
    assert not router.finalize(routes)
    assert not [k for k, body in w.store.objects.items() if _ours(body)]
    # Weight 0 on the user's objects; a router whose canary lives in an object of ours
    # (the NGINX canary Ingress, the SMI TrafficSplit) reads nothing once it is gone.
    assert router.verified_weight(routes) in (0, None)
    assert not router.writes(routes, TrafficIntent(canary_weight=0, stable_weight=100)) or \
        router.verified_weight(routes) is None
    # No route names an experiment template's Service any more.
    left = json.dumps(list(w.store.objects.values()))
    assert not [s for s in w.experiments.services() if s in left], left


def end_experiments(w: RouterWorld) -> None:
    """Every Experiment ends and the Rollout goes on (pods available): the routes come
    back to carrying no template destination, and every Experiment is let go."""
    for _ in range(12):
        for e in w.experiments.by_name.values():
            if e.view.phase not in COMPLETED_EXPERIMENT_PHASES:
                w.experiments.by_name[e.view.name].view = replace(e.view, phase="Successful")
        w.finish_runs("Successful", message="test")
        before = copy.deepcopy(w)
        result = w.plan()
        w.apply(result)
        check_pass(w, before, result)
        w.settle()
        w.experiments_move()
    for e in w.experiments.by_name.values():
        if e.view.phase in COMPLETED_EXPERIMENT_PHASES:
            assert not e.view.traffic_held and not e.pods_up, e
    assert not [s for s in w.experiments.services() if w.extra_weight(s)]


def router_world(case: Case, steps: list[dict[str, Any]], data: st.DataObject) -> RouterWorld:
    """A Healthy Rollout with `steps` under the case's router."""
    dynamic = data.draw(st.booleans())
    return healthy_router_world(case, steps, data.draw(st.integers(1, 5)), dynamic)


def healthy_router_world(case: Case, steps: list[dict[str, Any]], replicas: int,
                         dynamic: bool) -> RouterWorld:
    """A Healthy Rollout of `replicas` with `steps` under the case's router."""
    routing = {**case.routing, "managedRoutes": [{"name": n} for n in MANAGED]}
    spec = canary_spec(steps, replicas=replicas, canaryService=CANARY,
                       stableService=STABLE, trafficRouting=routing,
                       **({"dynamicStableScale": True} if dynamic else {}), **case.canary)
    w = RouterWorld(spec, auto_ready=False, case=case, store=Store.of(case.objects))
    w.settle()
    for _ in range(4):
        w.step()
        w.settle()
    assert w.status.phase == "Healthy", w.status.message
    return w


def run_history(w: RouterWorld, moves: list[str], data: st.DataObject) -> None:
    """Apply the moves, checking every pass; then delete the Rollout where the history left
    it (on a copy), end every Experiment, and delete it again."""
    steps = w.spec["strategy"]["canary"]["steps"]
    images = 1
    for move in moves:
        if move == "ready_pass":  # every pod available (the Experiments' too), then a pass
            w.settle()
            w.experiments.ready()
            move = "pass"
        if w.move(move, data):
            continue
        if move == "image":
            images += 1
            w.set_image(f"app:{images}")
        elif move == "abort":
            if w.status.stable_rs and w.status.stable_rs != pod_template_hash(
                    w.spec["template"]):
                w.edit_status(abort=True, abort_message="aborted by test")
        elif move == "promote":
            index = w.status.current_step_index or 0
            if index < len(steps):
                w.edit_status(current_step_index=index + 1, pause_conditions=None)
        elif move.startswith("run_"):
            w.finish_runs("Successful" if move == "run_ok" else "Failed", message="test")
        elif move == "exp_ready":
            w.experiments.ready()
        elif move in ("exp_end", "exp_fail"):
            w.experiments.end("Successful" if move == "exp_end" else "Failed")
        elif move == "exp_ctl":
            w.experiments_move()
        elif move == "conflict":
            # The first route write meets a 409: the actions before it were applied, the
            # rest of the pass (and its status write) is lost.
            result = w.plan()
            cut = next((i for i, a in enumerate(result.actions)
                        if isinstance(a, ApplyRouteWrite)), len(result.actions))
            w.apply(Plan(actions=result.actions[:cut], status=w.status))
        else:
            before = copy.deepcopy(w)
            result = w.plan()
            w.apply(result)
            w.history.append(result)
            check_pass(w, before, result)
            if any(w.extra_weight(s) and not before.extra_weight(s)
                   for s in w.experiments.services()):
                delete_rollout(copy.deepcopy(w))  # right after a template got weight
    delete_rollout(copy.deepcopy(w))  # where the history left it
    end_experiments(w)
    delete_rollout(w)


@pytest.mark.parametrize("name", ROUTERS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_router_invariants(name: str, data: st.DataObject) -> None:
    case = BY_NAME[name]
    w = router_world(case, data.draw(steps_for(case)), data)
    # Mostly a release first: the steps (and their Experiments) run only for one.
    first = ["image"] if data.draw(st.integers(0, 3)) else []
    run_history(w, first + data.draw(st.lists(MOVES, min_size=5, max_size=40)), data)


EXPERIMENT_MOVES = st.sampled_from([
    "pass", "pass", "ready_pass", "ready_pass", "ready_pass", "pods", "pods_partial", "clock",
    "promote",
    "abort", "image", "conflict", "exp_ready", "exp_ready", "exp_end", "exp_fail",
    "exp_ctl", "exp_ctl"])


@pytest.mark.parametrize("name", [*sorted(WEIGHING), "nginx"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_experiment_weights_under_routers(name: str, data: st.DataObject) -> None:
    """Histories about experiment steps: a release whose steps are mostly experiments,
    with template weights under the routers that can send them (none under NGINX)."""
    case = BY_NAME[name]
    weighing = name in WEIGHING
    kinds = st.one_of(experiment_step(weighing), experiment_step(weighing, weighted=True),
                      st.builds(lambda w: {"setWeight": w}, st.integers(0, 100)),
                      st.just({"pause": {}}))
    steps = [data.draw(experiment_step(weighing, weighted=True)),
             *data.draw(st.lists(kinds, max_size=3))]
    w = router_world(case, data.draw(st.permutations(steps)), data)
    run_history(w, ["image", *data.draw(st.lists(EXPERIMENT_MOVES, min_size=10,
                                                  max_size=50))], data)


def test_abort_puts_weight_zero_and_removes_routes_before_the_canary_shrinks() -> None:
    """A worked history (Gateway API): 25% with a header route, then a failed analysis."""
    case = BY_NAME["gatewayapi"]
    steps = [{"setWeight": 25},
             {"setHeaderRoute": {"name": "header-1", "match": [
                 {"headerName": "x-canary", "headerValue": {"exact": "yes"}}]}},
             {"analysis": {"templates": [{"templateName": "t"}]}}]
    spec = canary_spec(steps, canaryService=CANARY, stableService=STABLE,
                       trafficRouting={**case.routing,
                                       "managedRoutes": [{"name": n} for n in MANAGED]},
                       abortScaleDownDelaySeconds=0)
    w = RouterWorld(spec, case=case, store=Store.of(case.objects))
    w.run()
    w.set_image("app:2")
    w.run()
    router = w.real_router()
    assert router.verified_weight(w.routes()) == 25
    assert "x-canary" in str(w.routes())
    canary = w.status.current_pod_hash
    assert w.sizes()[canary] == 1
    w.finish_runs("Failed", message="errors")
    # The first abort pass's route write is lost (a 409: someone edited the HTTPRoute):
    # the Services follow the stable, the routes still send 25% and the header route.
    first = w.plan()
    assert w.status.stable_rs and first.status.abort
    assert any(isinstance(a, ApplyRouteWrite) for a in first.actions)
    assert not any(isinstance(a, ScaleReplicaSet) and a.replicas == 0 for a in first.actions)
    World.apply(w, replace(first, actions=tuple(
        a for a in first.actions if not isinstance(a, ApplyRouteWrite))))
    second = w.step()
    assert not any(isinstance(a, ScaleReplicaSet) and a.replicas == 0 for a in second.actions)
    assert all_stable(router, w.routes()) and w.sizes()[canary] == 1
    w.step()
    assert w.sizes()[canary] == 0
    weights = w.status.canary.weights if w.status.canary else None
    assert weights is not None and weights.canary.weight == 0

