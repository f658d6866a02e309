"""End to end with the other traffic routers: ALB, Traefik, APISIX, Ambassador and App Mesh.

The same walk as tests/e2e/test_router_scenarios.py (25% with the managed routes set and the
simulated clients' requests split as the route says, 50%, abort with weight 0 and no managed
route before the canary's pods go, a new release deleted at 25%), on each router's own
objects, read from the raw objects rather than through the router.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from rollouts.sandbox.app import AppSimulator
from rollouts.sandbox.history import WriteHistory
from rollouts.sandbox.invariants import check_rollout
from tests.e2e.conftest import CountingSandbox
from tests.e2e.dsl import (
    Check,
    Obj,
    abort,
    aborted,
    canary,
    healthy,
    image,
    pause,
    paused,
    promote,
    rollout,
    scenario,
    selector,
    service_manifest,
    set_weight,
    sizes,
)
from tests.e2e.test_router_scenarios import (
    CANARY,
    NAME,
    STABLE,
    RouterCase,
    _canary_zero_after_weight_zero,
    _NoTargets,
    canary_share,
    get,
    walk_weights_abort_delete,
)

pytestmark = pytest.mark.e2e

MANAGED = ("testers",)

# --- ALB ---------------------------------------------------------------------------------------

ING = ("networking.k8s.io", "v1", "ingresses")
ALB = "alb.ingress.kubernetes.io"
ALB_INGRESS = {
    "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
    "metadata": {"name": "web-alb", "annotations": {f"{ALB}/scheme": "internet-facing"}},
    "spec": {"ingressClassName": "alb", "rules": [{"host": "web.example.com", "http": {
        "paths": [{"path": "/", "pathType": "Prefix", "backend": {
            "service": {"name": STABLE, "port": {"name": "use-annotation"}}}}]}}]},
}


def _alb_annotations(sb: CountingSandbox) -> dict[str, str]:
    ingress = get(sb, *ING, "web-alb") or {}
    return dict(ingress.get("metadata", {}).get("annotations") or {})


def alb_weight(sb: CountingSandbox) -> int | None:
    action = _alb_annotations(sb).get(f"{ALB}/actions.{STABLE}")
    if action is None:
        return None
    groups = json.loads(action)["ForwardConfig"]["TargetGroups"]
    return next(int(g["Weight"]) for g in groups if g["ServiceName"] == CANARY)


def alb_managed(sb: CountingSandbox) -> list[str]:
    """Managed routes left anywhere on the Ingress: a path to the route's action, or its
    action or conditions annotation."""
    ingress = get(sb, *ING, "web-alb") or {}
    annotations = _alb_annotations(sb)
    paths = [p["backend"]["service"]["name"] for r in ingress.get("spec", {}).get("rules", [])
             for p in r["http"]["paths"]]
    return [name for name in MANAGED if name in paths or any(
        f"{ALB}/{kind}.{name}" in annotations for kind in ("actions", "conditions"))]


# --- Traefik -----------------------------------------------------------------------------------

TRAEFIK = ("traefik.io", "v1alpha1", "traefikservices")
TRAEFIK_SERVICE = {
    "apiVersion": "traefik.io/v1alpha1", "kind": "TraefikService",
    "metadata": {"name": "web-ts"},
    "spec": {"weighted": {"services": [{"name": STABLE, "port": 80, "weight": 100},
                                       {"name": CANARY, "port": 80, "weight": 0}]}},
}


def traefik_weight(sb: CountingSandbox) -> int | None:
    service = get(sb, *TRAEFIK, "web-ts") or {}
    return next((int(s["weight"]) for s in service.get("spec", {}).get("weighted", {})
                 .get("services", []) if s["name"] == CANARY), None)


# --- APISIX ------------------------------------------------------------------------------------

APISIX = ("apisix.apache.org", "v2", "apisixroutes")
APISIX_ROUTE = {
    "apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute",
    "metadata": {"name": "web-apisix"},
    "spec": {"http": [{"name": "main", "match": {"hosts": ["web.example.com"], "paths": ["/*"]},
                       "backends": [{"serviceName": STABLE, "servicePort": 80, "weight": 100},
                                    {"serviceName": CANARY, "servicePort": 80, "weight": 0}]}]},
}


def _apisix_rules(sb: CountingSandbox) -> list[Obj]:
    route = get(sb, *APISIX, "web-apisix") or {}
    return list(route.get("spec", {}).get("http", []))


def apisix_weight(sb: CountingSandbox) -> int | None:
    for rule in _apisix_rules(sb):
        if rule.get("name") == "main":
            return next((int(b["weight"]) for b in rule["backends"]
                         if b["serviceName"] == CANARY), None)
    return None


def apisix_managed(sb: CountingSandbox) -> list[str]:
    return [r["name"] for r in _apisix_rules(sb) if r.get("name") in MANAGED]


# --- Ambassador --------------------------------------------------------------------------------

MAPPINGS = ("getambassador.io", "v2", "mappings")
MAPPING = {
    "apiVersion": "getambassador.io/v2", "kind": "Mapping", "metadata": {"name": "web-mapping"},
    "spec": {"host": "web.example.com", "prefix": "/", "service": f"{STABLE}:80"},
}


def ambassador_weight(sb: CountingSandbox) -> int | None:
    mapping = get(sb, *MAPPINGS, "web-mapping-canary")
    return None if mapping is None else int(mapping["spec"].get("weight", 0))


# --- App Mesh ----------------------------------------------------------------------------------

APPMESH = "appmesh.k8s.aws/v1beta2"
VROUTERS = ("appmesh.k8s.aws", "v1beta2", "virtualrouters")
APPMESH_OBJECTS = [
    {"apiVersion": APPMESH, "kind": "VirtualService", "metadata": {"name": "web-vs"},
     "spec": {"awsName": "web.default.svc.cluster.local",
              "provider": {"virtualRouter": {"virtualRouterRef": {"name": "web-vrouter"}}}}},
    {"apiVersion": APPMESH, "kind": "VirtualRouter", "metadata": {"name": "web-vrouter"},
     "spec": {"listeners": [{"portMapping": {"port": 80, "protocol": "http"}}], "routes": [
         {"name": "primary", "httpRoute": {"match": {"prefix": "/"}, "action": {
             "weightedTargets": [{"virtualNodeRef": {"name": "web-stable-node"}, "weight": 100},
                                 {"virtualNodeRef": {"name": "web-canary-node"}, "weight": 0}]
         }}}]}},
    *({"apiVersion": APPMESH, "kind": "VirtualNode", "metadata": {"name": f"web-{side}-node"},
       "spec": {"podSelector": {"matchLabels": {"app": NAME}},
                "listeners": [{"portMapping": {"port": 80, "protocol": "http"}}],
                "serviceDiscovery": {"dns": {
                    "hostname": f"{NAME}-{side}.default.svc.cluster.local"}}}}
      for side in ("canary", "stable")),
]


def appmesh_weight(sb: CountingSandbox) -> int | None:
    router = get(sb, *VROUTERS, "web-vrouter") or {}
    for route in router.get("spec", {}).get("routes", []):
        for target in route["httpRoute"]["action"]["weightedTargets"]:
            if target["virtualNodeRef"]["name"] == "web-canary-node":
                return int(target["weight"])
    return None


CASES = [
    RouterCase("alb", {"alb": {"ingress": "web-alb", "servicePort": 80}}, [ALB_INGRESS],
               "ingresses", alb_weight, alb_managed),
    RouterCase("traefik", {"traefik": {"weightedTraefikServiceName": "web-ts"}},
               [TRAEFIK_SERVICE], "traefikservices", traefik_weight, lambda sb: [],
               headers=False),
    RouterCase("apisix", {"apisix": {"route": {"name": "web-apisix", "rules": ["main"]}}},
               [APISIX_ROUTE], "apisixroutes", apisix_weight, apisix_managed),
    RouterCase("ambassador", {"ambassador": {"mappings": ["web-mapping"]}}, [MAPPING],
               "mappings", ambassador_weight, lambda sb: [], headers=False),
    RouterCase("appmesh", {"appMesh": {
        "virtualService": {"name": "web-vs", "routes": ["primary"]},
        "virtualNodeGroup": {"canaryVirtualNodeRef": {"name": "web-canary-node"},
                             "stableVirtualNodeRef": {"name": "web-stable-node"}}}},
               APPMESH_OBJECTS, "virtualrouters", appmesh_weight, lambda sb: [],
               headers=False),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_router_walks_weights_routes_aborts_and_deletes(cluster: CountingSandbox,
                                                        case: RouterCase) -> None:
    walk_weights_abort_delete(cluster, case)


# --- ALB pingPong ------------------------------------------------------------------------------

PING, PONG, ROOT = f"{NAME}-ping", f"{NAME}-pong", f"{NAME}-root"
PING_PONG_INGRESS = {**ALB_INGRESS, "spec": {"ingressClassName": "alb", "rules": [
    {"host": "web.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": ROOT, "port": {"name": "use-annotation"}}}}]}}]}}


def action_weights(ingress: Obj | None) -> dict[str, int]:
    """Service -> weight in the root Service's action (empty before the first write)."""
    annotations = ((ingress or {}).get("metadata") or {}).get("annotations") or {}
    action = annotations.get(f"{ALB}/actions.{ROOT}")
    if action is None:
        return {}
    return {g["ServiceName"]: int(g["Weight"])
            for g in json.loads(action)["ForwardConfig"]["TargetGroups"]}


def ping_pong(weights: dict[str, int], stable_side: str) -> Check:
    def test(sb: CountingSandbox, _: Any) -> str | None:
        held = action_weights(get(sb, *ING, "web-alb"))
        side = (sb.status(NAME).get("canary") or {}).get("stablePingPong")
        if held != weights or side != stable_side:
            return f"action weights {held}, stablePingPong {side}"
        return None
    return Check(f"{weights} with {stable_side} stable", test)


def _selectors_moved_only_at_weight_zero(sb: CountingSandbox) -> int:
    """In the server's write order: ping's and pong's selectors changed only while the
    action gave that Service no traffic. Returns how many changes were seen."""
    weights: dict[str, int] = {}
    selected: dict[str, str | None] = {}
    moves = 0
    for _, plural, _, obj in sb.emulator.write_history():
        name = obj["metadata"]["name"]
        if plural == "ingresses" and name == "web-alb":
            weights = action_weights(obj)
        elif plural == "services" and name in (PING, PONG):
            now = (obj["spec"].get("selector") or {}).get("rollouts-pod-template-hash")
            if name in selected and selected[name] != now:
                moves += 1
                assert weights.get(name, 0) == 0, f"{name} re-pointed at weight {weights}"
            selected[name] = now
    return moves


def test_alb_ping_pong_takes_turns_and_aborts_at_weight_zero(cluster: CountingSandbox) -> None:
    """pingPong: ping is stable first; a release walks pong to 25%, and on promotion pong
    becomes stable (stablePingPong) with the whole weight, no Service re-pointed while it
    carried traffic; the next release goes out on ping, and its abort takes ping to 0 before
    the canary's pods go."""
    sb = cluster
    history = WriteHistory(sb.emulator, sb.namespace).start()
    sb.apply([service_manifest(n, NAME) for n in (PING, PONG, ROOT)] + [PING_PONG_INGRESS])
    routing = {"alb": {"ingress": "web-alb", "servicePort": 80, "rootService": ROOT}}
    s = scenario(sb).given(rollout(NAME, canary(
        set_weight(25), pause(), services=False, trafficRouting=routing,
        pingPong={"pingService": PING, "pongService": PONG}, abortScaleDownDelaySeconds=0)))
    s.then(ping_pong({PONG: 0, PING: 100}, "ping"), selector(PING, "stable"))
    with AppSimulator(sb.emulator, _NoTargets(), spare_endpoints=0) as clients:
        s.when(image(f"{NAME}:2")).then(
            paused(at_step=1), ping_pong({PONG: 25, PING: 75}, "ping"), selector(PONG, "canary"),
            selector(PING, "stable"), sizes(canary=1, stable=4), canary_share(clients, 25, PONG))
    before = sb.emulator.resource_version
    s.when(promote()).then(healthy(), ping_pong({PING: 0, PONG: 100}, "pong"),
                           selector(PONG, "stable"), sizes(stable=4, others=0))
    # The next release goes out on ping; aborted, ping is at 0 before its pods go.
    s.when(image(f"{NAME}:3")).then(paused(at_step=1), ping_pong({PING: 25, PONG: 75}, "pong"),
                                     selector(PING, "canary"), sizes(canary=1, stable=4))
    canary_rs = sb.replica_sets(NAME)[s.hash("canary")]["metadata"]["name"]
    s.when(abort()).then(aborted(), ping_pong({PING: 0, PONG: 100}, "pong"),
                         sizes(canary=0, stable=4))
    case = RouterCase("alb-pingpong", routing, [], "ingresses",
                      lambda sb: action_weights(get(sb, *ING, "web-alb")).get(PING),
                      lambda sb: [])
    _canary_zero_after_weight_zero(sb, case, canary_rs)
    assert sb.status(NAME)["canary"]["weights"]["canary"]["weight"] == 0
    assert _selectors_moved_only_at_weight_zero(sb) >= 2
    try:  # DESIGN.md's invariants, the stable side's Service by its turn
        writes = history.settle()
        promoted = next(w.rv for w in writes if w.resource == "rollout" and w.rv > before)
        assert check_rollout(writes, NAME, {promoted: "promote"}) == []
    finally:
        history.stop()
