"""Experiment templates with a `weight`: extra destinations of the routes (Argo's
additional WeightDestinations), per router that can hold them.

Golden writes for canary 20 with two templates at 5 each (stable 70), properties over
random sequences of intents (what is read back, idempotence, weights adding up to the
max, retired destinations removed and the user's objects as they were), the intent's
arithmetic, and the validation of routers that cannot do it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollouts.models.rollout import parse_spec, semantic_errors
from rollouts.planner.router_traffic import RouterTraffic
from rollouts.planner.routing import ExtraDestination, ObjectKey, RouteWrite, TrafficIntent
from rollouts.traffic import build_router
from tests.unit.traffic.cases import BY_NAME, OWNER, Store
from tests.unit.traffic.test_builders import guard, weight

BASELINE, EXP_CANARY = "web-exp-baseline", "web-exp-canary"
SERVICES = (BASELINE, EXP_CANARY)
EXTRA = (ExtraDestination(BASELINE, 5), ExtraDestination(EXP_CANARY, 5))
INTENT = TrafficIntent(20, 70, extra=EXTRA, retired=SERVICES)
ABLE = ["gatewayapi", "istio-host", "istio-subset", "alb", "smi"]
UNABLE = ["nginx", "traefik", "apisix", "ambassador", "appmesh"]


def key(api: str, kind: str, name: str) -> ObjectKey:
    return ObjectKey(api, kind, name, "default")


def writes_for(name: str, intent: TrafficIntent = INTENT) -> tuple[RouteWrite, ...]:
    router = BY_NAME[name].router()
    return router.writes(Store.of(BY_NAME[name].objects).observe(router), intent)


def _istio_extra(service: str, weight_: int) -> dict[str, Any]:
    return {"destination": {"host": service}, "weight": weight_}


GOLDEN: dict[str, tuple[RouteWrite, ...]] = {
    # Each weighted rule gets a copy of the canary's backendRef per template.
    "gatewayapi": (RouteWrite(key("gateway.networking.k8s.io/v1", "HTTPRoute", "web-route"),
                              "patch", patch=(
        guard(101),
        weight("/spec/rules/0/backendRefs/0", 70),
        weight("/spec/rules/0/backendRefs/1", 20),
        {"op": "add", "path": "/spec/rules/0/backendRefs/2",
         "value": {"name": BASELINE, "port": 80, "weight": 5}},
        {"op": "add", "path": "/spec/rules/0/backendRefs/3",
         "value": {"name": EXP_CANARY, "port": 80, "weight": 5}})),),
    # Every weighted route (http and tls) gets a destination per template, by host.
    "istio-host": (RouteWrite(key("networking.istio.io/v1beta1", "VirtualService", "web-vsvc"),
                              "patch", patch=(
        guard(101),
        weight("/spec/http/0/route/0", 70), weight("/spec/http/0/route/1", 20),
        {"op": "add", "path": "/spec/http/0/route/2", "value": _istio_extra(BASELINE, 5)},
        {"op": "add", "path": "/spec/http/0/route/3", "value": _istio_extra(EXP_CANARY, 5)},
        weight("/spec/tls/0/route/0", 70), weight("/spec/tls/0/route/1", 20),
        {"op": "add", "path": "/spec/tls/0/route/2", "value": _istio_extra(BASELINE, 5)},
        {"op": "add", "path": "/spec/tls/0/route/3", "value": _istio_extra(EXP_CANARY, 5)},
    )),),
    # Subset split: the template's Service by host beside the subsets; the
    # DestinationRule is not touched for it (the Service selects the template's pods).
    "istio-subset": (
        RouteWrite(key("networking.istio.io/v1beta1", "VirtualService", "web-subsets"),
                   "patch", patch=(
            guard(101),
            weight("/spec/tcp/0/route/0", 70), weight("/spec/tcp/0/route/1", 20),
            {"op": "add", "path": "/spec/tcp/0/route/2", "value": _istio_extra(BASELINE, 5)},
            {"op": "add", "path": "/spec/tcp/0/route/3",
             "value": _istio_extra(EXP_CANARY, 5)})),),
    # One more target group per template in the forward action, on servicePort.
    "alb": (RouteWrite(key("networking.k8s.io/v1", "Ingress", "web-alb"), "patch", patch=(
        guard(101),
        {"op": "add", "path": "/metadata/annotations/alb.ingress.kubernetes.io~1actions.web-root",
         "value": json.dumps({"Type": "forward", "ForwardConfig": {
             "TargetGroups": [
                 {"ServiceName": "web-canary", "ServicePort": "80", "Weight": 20},
                 {"ServiceName": "web-stable", "ServicePort": "80", "Weight": 70},
                 {"ServiceName": BASELINE, "ServicePort": "80", "Weight": 5},
                 {"ServiceName": EXP_CANARY, "ServicePort": "80", "Weight": 5}],
             "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 300}}},
             separators=(",", ":"))})),),
    # One more backend per template in the TrafficSplit.
    "smi": (RouteWrite(key("split.smi-spec.io/v1alpha2", "TrafficSplit", "web-split"),
                       "create", manifest={
        "apiVersion": "split.smi-spec.io/v1alpha2", "kind": "TrafficSplit",
        "metadata": {"name": "web-split", "namespace": "default", "ownerReferences": [OWNER]},
        "spec": {"service": "web", "backends": [
            {"service": "web-canary", "weight": 20}, {"service": "web-stable", "weight": 70},
            {"service": BASELINE, "weight": 5}, {"service": EXP_CANARY, "weight": 5}]}}),),
}


def _normal(writes: tuple[RouteWrite, ...]) -> list[Any]:
    """Writes with their patch operations in the order built (the same in every process,
    sibling keys such as http and tls included: tests/unit/traffic/test_patch_order.py)."""
    return [(w.key, w.op, w.manifest, [dict(o) for o in w.patch]) for w in writes]


@pytest.mark.parametrize("name", ABLE)
def test_golden_extra_destinations(name: str) -> None:
    assert _normal(writes_for(name)) == _normal(GOLDEN[name])


@pytest.mark.parametrize("name", ABLE)
def test_read_back_and_removal(name: str) -> None:
    case = BY_NAME[name]
    router, store = case.router(), Store.of(case.objects)
    assert router.extra_weight(store.observe(router), BASELINE) == 0  # none names it yet
    store.apply(router.writes(store.observe(router), INTENT))
    observed = store.observe(router)
    assert [router.extra_weight(observed, s) for s in SERVICES] == [5, 5]
    assert router.verified_weight(observed) == 20
    # The experiment ended: its destinations go, the stable gets their share back.
    store.apply(router.writes(observed, TrafficIntent(20, 80, retired=SERVICES)))
    observed = store.observe(router)
    assert [router.extra_weight(observed, s) for s in SERVICES] == [0, 0]
    assert router.writes(observed, TrafficIntent(20, 80, retired=SERVICES)) == ()


def _weighted_sums(store: Store) -> list[int]:
    """The weights of every weighted entry list of the case's objects, summed."""
    return [s for body in store.objects.values() for s in _sums(body)]


def _sums(node: Any) -> list[int]:
    if isinstance(node, dict):
        for annotation, value in (node.get("annotations") or {}).items():
            if annotation.endswith("actions.web-root"):
                groups = json.loads(value)["ForwardConfig"]["TargetGroups"]
                return [sum(g["Weight"] for g in groups)]
        found = [s for v in node.values() for s in _sums(v)]
        return found
    if isinstance(node, list):
        names = [_target(n) for n in node if isinstance(n, dict)]
        if "web-canary" in names and "web-stable" in names:
            return [sum(n.get("weight", 0) for n in node)]
        return [s for v in node for s in _sums(v)]
    return []


def _target(node: dict[str, Any]) -> object:
    destination = node.get("destination") or {}
    subset = destination.get("subset")
    host = str(destination.get("host", "")).split(".")[0]
    return (node.get("name") or node.get("service") or
            (f"web-{subset}" if subset else host))


extras = st.lists(st.tuples(st.sampled_from(SERVICES), st.integers(0, 10)),
                  unique_by=lambda t: t[0], max_size=2).map(
    lambda pairs: tuple(ExtraDestination(s, w) for s, w in pairs))


@pytest.mark.parametrize("name", ABLE)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_extra_destination_properties(name: str, data: Any) -> None:
    case = BY_NAME[name]
    router, store = case.router(), Store.of(case.objects)
    before = {k: case.strip(v) for k, v in store.objects.items()}
    for _ in range(data.draw(st.integers(1, 4))):
        extra = data.draw(extras)
        canary = data.draw(st.integers(0, 100 - sum(d.weight for d in extra)))
        intent = TrafficIntent(canary, 100 - canary - sum(d.weight for d in extra),
                               extra=extra, retired=SERVICES)
        store.apply(router.writes(store.observe(router), intent))
        observed = store.observe(router)
        assert router.verified_weight(observed) == canary
        wanted = {d.service: d.weight for d in extra}
        assert {s: router.extra_weight(observed, s) for s in SERVICES} == {
            s: wanted.get(s, 0) for s in SERVICES}
        assert router.writes(observed, intent) == ()
        assert set(_weighted_sums(store)) == {100}
    # No experiment any more: the objects are the user's again but for the two weights.
    store.apply(router.writes(store.observe(router), TrafficIntent(0, 100, retired=SERVICES)))
    assert {k: case.strip(v) for k, v in store.objects.items()
            if k in before} == before


@pytest.mark.parametrize(("canary", "weights", "expected", "stable"), [
    (20, (5, 5), (5, 5), 70),
    (95, (5, 5), (5, 0), 0),
    (100, (5,), (0,), 0),
    (0, (30, 20), (30, 20), 50),
])
def test_the_experiments_share_comes_out_of_the_stables(
        canary: int, weights: tuple[int, ...], expected: tuple[int, ...], stable: int) -> None:
    traffic = RouterTraffic(4, BY_NAME["smi"].router(), {}, extra=tuple(
        ExtraDestination(f"exp-{i}", w) for i, w in enumerate(weights)))
    intent = traffic.intent(canary)
    assert tuple(d.weight for d in intent.extra) == expected
    assert intent.stable_weight == stable
    assert intent.canary_weight + intent.stable_weight + sum(expected) == 100


def _spec(routing: dict[str, Any] | None, weights: tuple[int, ...] = (5,)) -> dict[str, Any]:
    canary: dict[str, Any] = {"canaryService": "web-canary", "stableService": "web-stable",
                              "steps": [{"setWeight": 20}, {"experiment": {
                                  "duration": "1m", "templates": [
                                      {"name": f"t{i}", "specRef": "stable", "weight": w}
                                      for i, w in enumerate(weights)]}}]}
    if routing is not None:
        canary["trafficRouting"] = routing
    return {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
            "strategy": {"canary": canary}}


FIELD = "spec.strategy.canary.steps[1].experiment.templates[0].weight"


@pytest.mark.parametrize("name", ABLE)
def test_routers_that_can_accept_a_template_weight(name: str) -> None:
    assert semantic_errors(parse_spec(_spec(BY_NAME[name].routing))) == []


@pytest.mark.parametrize("name", UNABLE)
def test_routers_that_cannot_refuse_it_naming_router_and_field(name: str) -> None:
    errors = semantic_errors(parse_spec(_spec(BY_NAME[name].routing)))
    router = {"appmesh": "appMesh"}.get(name, name)
    assert [(path, f"traffic router {router} " in message) for path, message in errors] == [
        (FIELD, True)], errors


def test_a_combination_with_one_router_that_cannot_is_refused() -> None:
    routing = {**BY_NAME["smi"].routing, **BY_NAME["nginx"].routing}
    [(path, message)] = semantic_errors(parse_spec(_spec(routing)))
    assert path == FIELD and "traffic router nginx " in message


def test_without_a_router_it_is_refused_as_argo_does() -> None:
    [(path, message)] = semantic_errors(parse_spec(_spec(None)))
    assert path == FIELD and "trafficRouting" in message


def test_template_weights_over_the_max_are_refused() -> None:
    errors = semantic_errors(parse_spec(_spec(BY_NAME["smi"].routing, (60, 50))))
    assert errors == [("spec.strategy.canary.steps[1].experiment.templates",
                       "template weights add up to 110, more than maxTrafficWeight 100")]


@pytest.mark.parametrize("name", ABLE)
def test_finalize_removes_the_destinations_the_status_names(name: str) -> None:
    """A Rollout deleted while an experiment step runs: its routes go back to all-stable
    without the templates' Services (status.canary.weights.additional names them)."""
    case = BY_NAME[name]
    store = Store.of(case.objects)
    before = {k: case.strip(v) for k, v in store.objects.items()}
    router = build_router(case.strategy(), "default", "web", OWNER, "ping", SERVICES)
    assert router is not None
    store.apply(router.writes(store.observe(router), INTENT))
    store.apply(router.finalize(store.observe(router)))
    observed = store.observe(router)
    assert [router.extra_weight(observed, s) for s in SERVICES] == [0, 0]
    assert {k: case.strip(v) for k, v in store.objects.items()} == before
    assert router.finalize(observed) == ()
