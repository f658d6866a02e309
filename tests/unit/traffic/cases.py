"""One realistic case per router: the Rollout's canary block and the objects in the cluster.

`Store` is a tiny object store that applies RouteWrites the way an API server would: a JSON
patch (the `jsonpatch` library) whose resourceVersion guard must match, creates that fail
on an existing name, deletes; every write bumps the resourceVersion.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jsonpatch

from rollouts.models.rollout import CanaryStrategy
from rollouts.planner.routing import ObjectKey, Observed, Router, RouteSnapshot, RouteWrite
from rollouts.traffic import build_router

Body = dict[str, Any]
OWNER = {"apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout", "name": "web",
         "uid": "uid-web", "controller": True, "blockOwnerDeletion": True}
MANAGED = ["header-1", "header-2", "mirror-1"]
STABLE, CANARY = "web-stable", "web-canary"


class Conflict(Exception):
    pass


def key_of(body: Body) -> ObjectKey:
    meta = body["metadata"]
    return ObjectKey(body["apiVersion"], body["kind"], meta["name"],
                     meta.get("namespace", "default"))


@dataclass
class Store:
    objects: dict[ObjectKey, Body] = field(default_factory=dict)
    version: int = 100

    @classmethod
    def of(cls, bodies: Iterable[Body]) -> Store:
        store = cls()
        for body in bodies:
            store.put(copy.deepcopy(body))
        return store

    def put(self, body: Body) -> None:
        self.version += 1
        body["metadata"]["resourceVersion"] = str(self.version)
        body["metadata"].setdefault("namespace", "default")
        self.objects[key_of(body)] = body

    def observe(self, router: Router) -> Observed:
        observed: dict[ObjectKey, RouteSnapshot | None] = {}
        while True:  # until the list of objects stops growing (App Mesh)
            keys = router.objects(observed)
            if set(keys) <= set(observed):
                return observed
            for key in keys:
                body = self.objects.get(key)
                observed[key] = None if body is None else RouteSnapshot(key, copy.deepcopy(body))

    def apply(self, writes: Iterable[RouteWrite]) -> None:
        for write in writes:
            current = self.objects.get(write.key)
            if write.op == "create":
                if current is not None:
                    raise Conflict(f"{write.key} exists")
                assert write.manifest is not None
                self.put(copy.deepcopy(dict(write.manifest)))
            elif write.op == "delete":
                assert current is not None
                del self.objects[write.key]
            else:
                assert current is not None
                guard, *ops = write.patch
                assert guard["path"] == "/metadata/resourceVersion"
                if guard["value"] != current["metadata"]["resourceVersion"]:
                    raise Conflict(f"{write.key} changed since it was read")
                self.put(jsonpatch.apply_patch(current, [dict(o) for o in ops]))


@dataclass(frozen=True)
class Case:
    name: str
    routing: Body
    objects: list[Body]
    # Strips from a user object the fields the router may write (weights, its own routes,
    # its annotation), so that "only owned fields change" is an equality.
    strip: Callable[[Body], Body]
    headers: bool = False
    mirrors: bool = False
    canary: Body = field(default_factory=dict)

    def strategy(self, max_weight: int = 100) -> CanaryStrategy:
        return CanaryStrategy.model_validate({
            "canaryService": CANARY, "stableService": STABLE,
            "trafficRouting": {**self.routing, "maxTrafficWeight": max_weight,
                               "managedRoutes": [{"name": n} for n in MANAGED]},
            **self.canary})

    def router(self, max_weight: int = 100) -> Router:
        router = build_router(self.strategy(max_weight), "default", "web", OWNER)
        assert router is not None
        return router


def meta(name: str, **extra: Any) -> Body:
    return {"name": name, "namespace": "default", **extra}


def ref(name: str, weight: int | None = None, port: int = 80) -> Body:
    out: Body = {"name": name, "port": port}
    if weight is not None:
        out["weight"] = weight
    return out


def _drop_weights(node: Any, is_ours: Callable[[Body], bool]) -> Any:
    """Copy of `node` without `weight` in any mapping that `is_ours`."""
    if isinstance(node, dict):
        return {k: _drop_weights(v, is_ours) for k, v in node.items()
                if not (k == "weight" and is_ours(node))}
    if isinstance(node, list):
        return [_drop_weights(v, is_ours) for v in node]
    return node


def _without(items: list[Any], names: Iterable[str]) -> list[Any]:
    return [i for i in items if i.get("name") not in set(names)]


def _base(body: Body) -> Body:
    body = copy.deepcopy(body)
    body["metadata"].pop("resourceVersion", None)
    return body


def strip_gateway(body: Body) -> Body:
    body = _base(body)
    if body["kind"] == "HTTPRoute":
        body["spec"]["rules"] = _without(body["spec"]["rules"], MANAGED)
    return _drop_weights(body, lambda n: n.get("name") in (STABLE, CANARY))


def strip_istio(body: Body) -> Body:
    body = _base(body)
    if body["kind"] == "DestinationRule":
        for subset in body["spec"]["subsets"]:
            subset.get("labels", {}).pop("rollouts-pod-template-hash", None)
        return body
    body["spec"]["http"] = _without(body["spec"].get("http", []), MANAGED)

    def ours(node: Body) -> bool:
        target = node.get("destination") or {}
        return (str(target.get("host", "")).split(".")[0] in (STABLE, CANARY)
                or target.get("subset") in ("canary", "stable"))
    return _drop_weights(body, ours)


def strip_alb(body: Body) -> Body:
    body = _base(body)
    annotations = body["metadata"].get("annotations", {})
    for name in ["web-root", *MANAGED]:
        annotations.pop(f"alb.ingress.kubernetes.io/actions.{name}", None)
        annotations.pop(f"alb.ingress.kubernetes.io/conditions.{name}", None)
    for rule in body["spec"]["rules"]:
        rule["http"]["paths"] = [p for p in rule["http"]["paths"]
                                 if p["backend"]["service"]["name"] not in MANAGED]
    return body


def strip_named_weights(key: str) -> Callable[[Body], Body]:
    def strip(body: Body) -> Body:
        return _drop_weights(_base(body), lambda n: n.get(key) in (STABLE, CANARY))
    return strip


def strip_apisix(body: Body) -> Body:
    body = strip_named_weights("serviceName")(body)
    body["spec"]["http"] = _without(body["spec"]["http"], MANAGED)
    return body


def strip_appmesh(body: Body) -> Body:
    body = _base(body)
    if body["kind"] == "VirtualNode":
        body["spec"].get("podSelector", {}).get("matchLabels", {}).pop(
            "rollouts-pod-template-hash", None)
    return _drop_weights(body, lambda n: (n.get("virtualNodeRef") or {}).get("name")
                         in ("web-canary-node", "web-stable-node"))


# --- the objects --------------------------------------------------------------------------

HTTP_ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
    "metadata": meta("web-route", labels={"team": "web"}),
    "spec": {"parentRefs": [{"name": "gateway"}], "hostnames": ["web.example.com"], "rules": [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
         "backendRefs": [ref(STABLE, 100), ref(CANARY, 0)]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
         "backendRefs": [ref("admin")]},
    ]},
}
VIRTUAL_SERVICE = {
    "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
    "metadata": meta("web-vsvc"),
    "spec": {"hosts": ["web.example.com"], "gateways": ["web-gateway"], "http": [
        {"name": "primary", "route": [
            {"destination": {"host": STABLE, "port": {"number": 80}}, "weight": 100},
            {"destination": {"host": f"{CANARY}.default.svc.cluster.local",
                             "port": {"number": 80}}, "weight": 0}]},
        {"name": "other", "route": [{"destination": {"host": "other"}}]},
    ], "tls": [
        {"match": [{"port": 443, "sniHosts": ["web.example.com"]}], "route": [
            {"destination": {"host": STABLE, "port": {"number": 443}}, "weight": 100},
            {"destination": {"host": CANARY, "port": {"number": 443}}, "weight": 0}]},
    ]},
}
SUBSET_SERVICE = {
    "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
    "metadata": meta("web-subsets"),
    "spec": {"hosts": ["web"], "http": [{"route": [
        {"destination": {"host": "web", "subset": "stable"}, "weight": 100},
        {"destination": {"host": "web", "subset": "canary"}, "weight": 0}]}],
        "tcp": [{"match": [{"port": 5432}], "route": [
            {"destination": {"host": "web", "subset": "stable"}, "weight": 100},
            {"destination": {"host": "web", "subset": "canary"}, "weight": 0}]}]},
}
DESTINATION_RULE = {
    "apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
    "metadata": meta("web-destrule"),
    "spec": {"host": "web", "subsets": [{"name": "canary", "labels": {"app": "web"}},
                                        {"name": "stable", "labels": {"app": "web"}}]},
}


def ingress(name: str, service: str, port: Body, annotations: dict[str, str] | None = None,
            ) -> Body:
    metadata = meta(name)
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata,
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "web.example.com", "http": {
                "paths": [
                    {"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": service, "port": port}}},
                    {"path": "/other", "pathType": "Prefix",
                     "backend": {"service": {"name": "other", "port": {"number": 80}}}}]}}]}}


NGINX_INGRESS = ingress("web-ingress", STABLE, {"number": 80},
                        {"kubernetes.io/ingress.class": "nginx"})
ALB_INGRESS = ingress("web-alb", "web-root", {"name": "use-annotation"},
                      {"alb.ingress.kubernetes.io/scheme": "internet-facing"})
TRAEFIK_SERVICE = {
    "apiVersion": "traefik.io/v1alpha1", "kind": "TraefikService", "metadata": meta("web-ts"),
    "spec": {"weighted": {"services": [{"name": STABLE, "port": 80, "weight": 100},
                                       {"name": CANARY, "port": 80, "weight": 0},
                                       {"name": "web-legacy", "port": 80, "weight": 0}]}},
}
APISIX_ROUTE = {
    "apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute", "metadata": meta("web-apisix"),
    "spec": {"http": [
        {"name": "main", "match": {"paths": ["/*"]}, "backends": [
            {"serviceName": STABLE, "servicePort": 80, "weight": 100},
            {"serviceName": CANARY, "servicePort": 80, "weight": 0}]},
        {"name": "static", "match": {"paths": ["/static/*"]},
         "backends": [{"serviceName": "static", "servicePort": 80}]}]},
}
MAPPING = {
    "apiVersion": "getambassador.io/v2", "kind": "Mapping", "metadata": meta("web-mapping"),
    "spec": {"prefix": "/", "service": f"{STABLE}.default:80", "host": "web.example.com"},
}
APPMESH = [
    {"apiVersion": "appmesh.k8s.aws/v1beta2", "kind": "VirtualService",
     "metadata": meta("web-vs"),
     "spec": {"awsName": "web.default.svc.cluster.local",
              "provider": {"virtualRouter": {"virtualRouterRef": {"name": "web-vrouter"}}}}},
    {"apiVersion": "appmesh.k8s.aws/v1beta2", "kind": "VirtualRouter",
     "metadata": meta("web-vrouter"),
     "spec": {"listeners": [{"portMapping": {"port": 80, "protocol": "http"}}], "routes": [
         {"name": "primary", "httpRoute": {"match": {"prefix": "/"}, "action": {
             "weightedTargets": [{"virtualNodeRef": {"name": "web-stable-node"}, "weight": 100},
                                 {"virtualNodeRef": {"name": "web-canary-node"}, "weight": 0}]
         }}}]}},
    *({"apiVersion": "appmesh.k8s.aws/v1beta2", "kind": "VirtualNode",
       "metadata": meta(f"web-{side}-node"),
       "spec": {"podSelector": {"matchLabels": {"app": "web"}}}} for side in ("canary", "stable")),
]

CASES = [
    Case("gatewayapi", {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web-route"}}},
         [HTTP_ROUTE], strip_gateway, headers=True, mirrors=True),
    Case("istio-host", {"istio": {"virtualService": {
        "name": "web-vsvc", "routes": ["primary"],
        "tlsRoutes": [{"port": 443, "sniHosts": ["web.example.com"]}]}}},
         [VIRTUAL_SERVICE], strip_istio, headers=True, mirrors=True),
    Case("istio-subset", {"istio": {
        "virtualServices": [{"name": "web-subsets", "tcpRoutes": [{"port": 5432}]}],
        "destinationRule": {"name": "web-destrule", "canarySubsetName": "canary",
                            "stableSubsetName": "stable"}}},
         [SUBSET_SERVICE, DESTINATION_RULE], strip_istio),
    Case("nginx", {"nginx": {"stableIngress": "web-ingress",
                             "additionalIngressAnnotations": {"canary-by-cookie": "beta"}}},
         [NGINX_INGRESS], _base, headers=True),
    Case("alb", {"alb": {"ingress": "web-alb", "servicePort": 80, "rootService": "web-root",
                         "stickinessConfig": {"enabled": True, "durationSeconds": 300}}},
         [ALB_INGRESS], strip_alb, headers=True),
    Case("smi", {"smi": {"rootService": "web", "trafficSplitName": "web-split"}}, [], _base),
    Case("traefik", {"traefik": {"weightedTraefikServiceName": "web-ts"}}, [TRAEFIK_SERVICE],
         strip_named_weights("name")),
    Case("apisix", {"apisix": {"route": {"name": "web-apisix", "rules": ["main"]}}},
         [APISIX_ROUTE], strip_apisix, headers=True),
    Case("ambassador", {"ambassador": {"mappings": ["web-mapping"]}}, [MAPPING], _base),
    Case("appmesh", {"appMesh": {
        "virtualService": {"name": "web-vs", "routes": ["primary"]},
        "virtualNodeGroup": {"canaryVirtualNodeRef": {"name": "web-canary-node"},
                             "stableVirtualNodeRef": {"name": "web-stable-node"}}}},
         APPMESH, strip_appmesh),
]
BY_NAME = {case.name: case for case in CASES}
