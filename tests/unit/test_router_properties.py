"""Invariants with real routers (Gateway API, Istio, NGINX, SMI, ...): the planner over
random histories, its route writes applied with `jsonpatch` to real route objects.

After every pass:
- a weight is raised only after the canary has the available pods to serve it (and with
  dynamicStableScale, lowered only once the stable has the pods for its share again);
- while aborted (by a user or a failed analysis) the canary loses no pod before the routes
  read back weight 0 with no managed route, and once the canary is gone the reported
  weight is 0;
- writes on objects the controller does not own change only the router's fields;
and at the end, deleting the Rollout (`Router.finalize`) leaves all traffic on stable, no
managed route and no object of ours.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollouts.models.rollout import parse_rollout
from rollouts.models.wire import rollout_owner_reference
from rollouts.planner.manifests import pod_template_hash
from rollouts.planner.routing import Observed, Router, TrafficIntent
from rollouts.planner.types import ApplyRouteWrite, Plan, ScaleReplicaSet, ServiceView
from rollouts.traffic import build_router
from tests.unit.traffic.cases import BY_NAME, CANARY, MANAGED, STABLE, Case, Store
from tests.unit.world import World, canary_spec

OWNER = rollout_owner_reference("demo", "uid-1")  # World's Rollout
ROUTERS = ["gatewayapi", "istio-host", "istio-subset", "nginx", "smi", "alb", "traefik",
           "apisix", "ambassador", "appmesh"]


@dataclass
class RouterWorld(World):
    """World whose route objects are real ones in a `Store` (patched with jsonpatch)."""

    case: Case | None = None
    store: Store = field(default_factory=Store)

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
        return replace(super().observed(), router=self.real_router(), routes=self.routes())

    def apply(self, result: Plan) -> None:
        self.store.apply(a.write for a in result.actions if isinstance(a, ApplyRouteWrite))
        super().apply(replace(result, actions=tuple(
            a for a in result.actions if not isinstance(a, ApplyRouteWrite))))


def steps_for(case: Case) -> st.SearchStrategy[list[dict[str, Any]]]:
    kinds: list[st.SearchStrategy[dict[str, Any]]] = [
        st.builds(lambda w: {"setWeight": w}, st.integers(0, 100)),
        st.just({"pause": {}}),
        st.just({"analysis": {"templates": [{"templateName": "t"}]}}),
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
                         "promote", "abort", "run_ok", "run_failed", "image", "conflict"])


def owned_fields_only(case: Case, before: Store, after: Store) -> None:
    for key, body in after.objects.items():
        old = before.objects.get(key)
        if old is None or _ours(body):
            continue
        assert case.strip(copy.deepcopy(old)) == case.strip(copy.deepcopy(body)), key


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
    if held_after < held_before and w.spec["strategy"]["canary"].get("dynamicStableScale"):
        stable = before.rs(result.status.stable_rs)
        need = math.ceil(w.spec["replicas"] * (100 - held_after) / 100)
        assert stable is not None and min(stable.available, stable.spec_replicas) >= need, (
            held_before, held_after, stable)
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
    owned_fields_only(case, before.store, w.store)


@pytest.mark.parametrize("name", ROUTERS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_router_invariants(name: str, data: st.DataObject) -> None:
    case = BY_NAME[name]
    steps = data.draw(steps_for(case))
    routing = {**case.routing, "managedRoutes": [{"name": n} for n in MANAGED]}
    dynamic = data.draw(st.booleans())
    spec = canary_spec(steps, replicas=data.draw(st.integers(1, 5)), canaryService=CANARY,
                       stableService=STABLE, trafficRouting=routing,
                       **({"dynamicStableScale": True} if dynamic else {}), **case.canary)
    w = RouterWorld(spec, auto_ready=False, case=case, store=Store.of(case.objects))
    w.settle()
    for _ in range(4):
        w.step()
        w.settle()
    assert w.status.phase == "Healthy", w.status.message
    images = 1
    for move in data.draw(st.lists(MOVES, min_size=5, max_size=40)):
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
        elif move == "conflict":
            # The first route write meets a 409: the actions before it were applied, the
            # rest of the pass (and its status write) is lost.
            result = w.plan()
            cut = next((i for i, a in enumerate(result.actions)
                        if isinstance(a, ApplyRouteWrite)), len(result.actions))
            World.apply(w, Plan(actions=result.actions[:cut], status=w.status))
        else:
            before = copy.deepcopy(w)
            result = w.plan()
            w.apply(result)
            w.history.append(result)
            check_pass(w, before, result)
    # Deleting the Rollout: the router's finalize, applied until nothing is left to write.
    router = w.real_router()
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

