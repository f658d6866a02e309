"""End to end with traffic routers: the real controller moves weights on the route objects of
the sandbox (HTTPRoute, VirtualService, Ingress, TrafficSplit), sets header and mirror
routes, aborts with weight 0 before the canary is scaled down (checked in the order the API
server applied the writes), and on deletion leaves 100% on stable and no managed route.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from rollouts.sandbox.app import AppSimulator
from rollouts.sandbox.cluster import GROUP, VERSION
from tests.e2e.conftest import CountingSandbox
from tests.e2e.dsl import (
    Check,
    Obj,
    abort,
    aborted,
    canary,
    degraded,
    image,
    pause,
    paused,
    promote,
    rollout,
    scenario,
    set_weight,
    sizes,
)

pytestmark = pytest.mark.e2e

NAME = "web"
STABLE, CANARY = f"{NAME}-stable", f"{NAME}-canary"
HEADER = {"setHeaderRoute": {"name": "testers", "match": [
    {"headerName": "x-tester", "headerValue": {"exact": "yes"}}]}}
MIRROR = {"setMirrorRoute": {"name": "shadow", "percentage": 50,
                             "match": [{"path": {"prefix": "/api"}}]}}


def _port(name: str) -> Obj:
    return {"name": name, "port": 80}


@dataclasses.dataclass(frozen=True)
class RouterCase:
    """One router in the sandbox: its trafficRouting, the user's objects, and how a test
    reads the weight and the managed routes from the raw objects (not through the router)."""

    name: str
    routing: Obj
    objects: list[Obj]
    plural: str  # of the object whose writes carry the weight
    weight: Callable[[CountingSandbox], int | None]
    managed: Callable[[CountingSandbox], list[str]]
    mirrors: bool = False
    headers: bool = True


def get(sb: CountingSandbox, group: str, version: str, plural: str, name: str) -> Obj | None:
    return sb.emulator.get_object(group, version, plural, sb.namespace, name)


# --- Gateway API -------------------------------------------------------------------------------

GW = ("gateway.networking.k8s.io", "v1", "httproutes")
HTTP_ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
    "metadata": {"name": "web-route"},
    "spec": {"parentRefs": [{"name": "gateway"}], "rules": [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
         "backendRefs": [{**_port(STABLE), "weight": 100}, {**_port(CANARY), "weight": 0}]}]},
}


def gw_weight(sb: CountingSandbox) -> int | None:
    route = get(sb, *GW, "web-route")
    for rule in (route or {}).get("spec", {}).get("rules", []):
        for ref in rule.get("backendRefs") or []:
            if ref.get("name") == CANARY and "weight" in ref and not rule.get("name"):
                return int(ref["weight"])
    return None


def gw_managed(sb: CountingSandbox) -> list[str]:
    route = get(sb, *GW, "web-route") or {}
    return [r["name"] for r in route.get("spec", {}).get("rules", []) if r.get("name")]


# --- Istio -------------------------------------------------------------------------------------

IS = ("networking.istio.io", "v1beta1", "virtualservices")
VIRTUAL_SERVICE = {
    "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
    "metadata": {"name": "web-vsvc"},
    "spec": {"hosts": ["web.example.com"], "http": [{"name": "primary", "route": [
        {"destination": {"host": STABLE}, "weight": 100},
        {"destination": {"host": CANARY}, "weight": 0}]}]},
}


def istio_weight(sb: CountingSandbox) -> int | None:
    vs = get(sb, *IS, "web-vsvc") or {}
    for entry in vs.get("spec", {}).get("http", []):
        if entry.get("name") == "primary":
            for dest in entry.get("route", []):
                if dest["destination"]["host"] == CANARY:
                    return int(dest.get("weight", 0))
    return None


def istio_managed(sb: CountingSandbox) -> list[str]:
    vs = get(sb, *IS, "web-vsvc") or {}
    return [e["name"] for e in vs.get("spec", {}).get("http", [])
            if e.get("name") in ("testers", "shadow")]


# --- NGINX -------------------------------------------------------------------------------------

ING = ("networking.k8s.io", "v1", "ingresses")
INGRESS = {
    "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
    "metadata": {"name": "web-ingress"},
    "spec": {"ingressClassName": "nginx", "rules": [{"host": "web.example.com", "http": {
        "paths": [{"path": "/", "pathType": "Prefix", "backend": {
            "service": {"name": STABLE, "port": {"number": 80}}}}]}}]},
}
NGINX = "nginx.ingress.kubernetes.io"


def _canary_ingress(sb: CountingSandbox) -> Obj | None:
    return get(sb, *ING, f"{NAME}-web-ingress-canary")


def nginx_weight(sb: CountingSandbox) -> int | None:
    ingress = _canary_ingress(sb)
    if ingress is None:
        return None
    annotations = ingress["metadata"].get("annotations") or {}
    return int(annotations.get(f"{NGINX}/canary-weight", "0"))


def nginx_managed(sb: CountingSandbox) -> list[str]:
    ingress = _canary_ingress(sb)
    annotations = (ingress or {}).get("metadata", {}).get("annotations") or {}
    return ["testers"] if f"{NGINX}/canary-by-header" in annotations else []


# --- SMI ---------------------------------------------------------------------------------------

SMI = ("split.smi-spec.io", "v1alpha2", "trafficsplits")


def smi_weight(sb: CountingSandbox) -> int | None:
    split = get(sb, *SMI, "web-split")
    for backend in (split or {}).get("spec", {}).get("backends", []):
        if backend.get("service") == CANARY:
            return int(backend.get("weight", 0))
    return None


CASES = [
    RouterCase("gatewayapi", {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web-route"}}},
               [HTTP_ROUTE], "httproutes", gw_weight, gw_managed, mirrors=True),
    RouterCase("istio", {"istio": {"virtualService": {"name": "web-vsvc",
                                                      "routes": ["primary"]}}},
               [VIRTUAL_SERVICE], "virtualservices", istio_weight, istio_managed,
               mirrors=True),
    RouterCase("nginx", {"nginx": {"stableIngress": "web-ingress"}}, [INGRESS], "ingresses",
               nginx_weight, nginx_managed),
    RouterCase("smi", {"smi": {"rootService": NAME, "trafficSplitName": "web-split"}}, [],
               "trafficsplits", smi_weight, lambda sb: [], headers=False),
]
# Kinds of the objects routers create (owned by the Rollout): none may be left after deletion.
OWNED_KINDS = (ING, SMI, ("getambassador.io", "v2", "mappings"))


def route_weight(case: RouterCase, expected: int | None) -> Check:
    def test(sb: CountingSandbox, _: Any) -> str | None:
        got = case.weight(sb)
        return None if got == expected else f"route weight {got}"
    return Check(f"route weight {expected}", test)


def managed_routes(case: RouterCase, *expected: str) -> Check:
    def test(sb: CountingSandbox, _: Any) -> str | None:
        got = case.managed(sb)
        return None if got == list(expected) else f"managed routes {got}"
    return Check(f"managed routes {list(expected)}", test)


def _canary_zero_after_weight_zero(sb: CountingSandbox, case: RouterCase,
                                   canary_rs: str) -> None:
    """In the server's own write order: the canary ReplicaSet was scaled to 0 only after
    the route object's last write that took its weight to 0."""
    history = sb.emulator.write_history()
    scaled = next(rv for rv, plural, _, obj in history
                  if plural == "replicasets" and obj["metadata"]["name"] == canary_rs
                  and obj["spec"].get("replicas") == 0)
    route_writes = [(rv, obj) for rv, plural, _, obj in history if plural == case.plural]
    zeroed = [rv for rv, _ in route_writes if rv < scaled]
    assert zeroed, "no route write before the canary was scaled down"
    assert case.weight(sb) in (0, None)
    later = [rv for rv, _ in route_writes if rv > scaled]
    assert not later, f"route written after the canary went: {later} > {scaled}"
    # Once the abort has completed, no status write shows the canary any weight.
    def shown() -> list[Any]:
        return [((obj.get("status") or {}).get("canary") or {}).get("weights") or {}
                for rv, plural, _, obj in sb.emulator.write_history()
                if plural == "rollouts" and rv > scaled]
    sb.wait_for("a status write after the canary went", lambda: bool(shown()))
    assert all(w.get("canary", {}).get("weight") == 0 for w in shown()), shown()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_router_walks_weights_routes_aborts_and_deletes(cluster: CountingSandbox,
                                                        case: RouterCase) -> None:
    walk_weights_abort_delete(cluster, case)


def walk_weights_abort_delete(sb: CountingSandbox, case: RouterCase) -> None:
    """25% with the managed routes set (the simulated clients' requests split as the route
    says), 50%, abort (weight 0 and no managed route before the canary's pods go), then a
    new release deleted at 25%: all-stable, no managed route, no object of ours left."""
    sb.apply(case.objects)
    headers = [{"name": "testers"}] if case.headers else []
    managed = [*headers, *([{"name": "shadow"}] if case.mirrors else [])]
    steps: list[Obj] = [set_weight(25), *([HEADER] if case.headers else []),
                        *([MIRROR] if case.mirrors else []), pause(), set_weight(50), pause()]
    routing = {**case.routing, **({"managedRoutes": managed} if managed else {})}
    s = scenario(sb).given(rollout(NAME, canary(*steps, trafficRouting=routing,
                                                abortScaleDownDelaySeconds=0)))
    s.then(route_weight(case, 0))
    s.remember("v1", "stable")
    first_pause = len(steps) - 3
    expected_routes = [r["name"] for r in managed]
    with AppSimulator(sb.emulator, _NoTargets(), spare_endpoints=0) as clients:
        # 25%: one canary pod of 4 beside the whole stable; the managed routes are set;
        # a quarter of the simulated clients' requests reach the canary.
        s.when(image(f"{NAME}:2")).then(paused(at_step=first_pause), route_weight(case, 25),
                                         managed_routes(case, *expected_routes),
                                         sizes(canary=1, stable=4), canary_share(clients, 25))
    s.when(promote()).then(paused(at_step=first_pause + 2), route_weight(case, 50),
                           sizes(canary=2, stable=4))
    canary_rs = sb.replica_sets(NAME)[s.hash("canary")]["metadata"]["name"]
    # Abort: weight 0 and no managed route before the canary's pods go.
    s.when(abort()).then(aborted(), degraded(), route_weight(case, 0), managed_routes(case),
                         sizes(canary=0, stable=4))
    _canary_zero_after_weight_zero(sb, case, canary_rs)
    status = sb.status(NAME)
    assert status["canary"]["weights"]["canary"]["weight"] == 0
    # A new release, deleted at 25% with its managed routes: the finalizer holds the
    # Rollout until the routes are all-stable and the objects it created are gone.
    s.when(image(f"{NAME}:3")).then(paused(at_step=first_pause), route_weight(case, 25),
                                     managed_routes(case, *expected_routes))
    sb.emulator.delete_object(GROUP, VERSION, "rollouts", sb.namespace, NAME)
    sb.wait_for("the Rollout gone", lambda: get(sb, GROUP, VERSION, "rollouts", NAME) is None)
    assert case.weight(sb) in (0, None)
    assert case.managed(sb) == []
    for group, version, plural in OWNED_KINDS:
        left = [o["metadata"]["name"] for o in sb.emulator.list_objects(
            group, version, plural, sb.namespace)
            if o["metadata"].get("ownerReferences")]
        assert left == [], left


class _NoTargets:
    """The simulated clients' metrics endpoints go nowhere: only their rates are read."""

    def set_targets(self, targets: Any, *, job: str | None = None) -> None:
        pass


def canary_share(clients: AppSimulator, percent: int, service_name: str = CANARY) -> Check:
    """The simulated clients send `percent` of their requests to the canary Service."""
    def test(_: CountingSandbox, __: Any) -> str | None:
        rates = [(service, rate) for app in list(clients.apps.values())
                 for service, rate in app.rates.items()]
        total = sum(rate for _, rate in rates)
        to_canary = sum(rate for service, rate in rates if service == service_name)
        if total <= 0 or round(100 * to_canary / total, 6) != percent:
            return f"requests per second by Service {rates}"
        return None
    return Check(f"{percent}% of the requests to the canary", test)


def test_a_missing_route_is_invalid_spec_and_others_keep_progressing(
        cluster: CountingSandbox) -> None:
    """No HTTPRoute: InvalidSpec naming the field, nothing scaled; another Rollout is
    served as usual. Once the route exists the Rollout becomes Healthy."""
    sb = cluster
    case = CASES[0]
    s = scenario(sb).given(
        rollout("other", canary(set_weight(50))),
        rollout(NAME, canary(set_weight(25), trafficRouting=case.routing), wait=False))
    s.then(degraded("InvalidSpec"), timeout=30)
    message = sb.status(NAME).get("message", "")
    assert "spec.strategy.canary.trafficRouting.plugins" in message, message
    assert sb.replica_sets(NAME) == {}
    s.of("other").when(image("other:2")).then(_healthy_on(sb, "other", "other:2"))
    sb.apply(case.objects)
    s.then(_healthy_on(sb, NAME, f"{NAME}:1"))


def _healthy_on(sb: CountingSandbox, name: str, image_: str) -> Check:
    def test(_: CountingSandbox, __: Any) -> str | None:
        status = sb.status(name)
        spec = sb.rollout(name)["spec"]["template"]["spec"]["containers"][0]["image"]
        ok = status.get("phase") == "Healthy" and spec == image_ and \
            status.get("stableRS") == status.get("currentPodHash")
        return None if ok else f"{name}: {status.get('phase')} {status.get('message')}"
    return Check(f"{name} Healthy on {image_}", test)
