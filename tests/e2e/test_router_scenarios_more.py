"""End to end with the other traffic routers: ALB, Traefik, APISIX, Ambassador and App Mesh.

The same walk as tests/e2e/test_router_scenarios.py (25% with the managed routes set and the
simulated clients' requests split as the route says, 50%, abort with weight 0 and no managed
route before the canary's pods go, a new release deleted at 25%), on each router's own
objects, read from the raw objects rather than through the router.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import CountingSandbox
from tests.e2e.dsl import Obj
from tests.e2e.test_router_scenarios import (
    CANARY,
    NAME,
    STABLE,
    RouterCase,
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
