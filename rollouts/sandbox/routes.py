"""How the sandbox's simulated clients split their requests: the weights route objects hold.

Without a route a Service's requests are its pods' (each ready pod serves its share). A
route object that weighs Services against each other (an HTTPRoute's backendRefs, an Istio
VirtualService's route, an NGINX canary Ingress beside its stable Ingress, an ALB action
annotation, an SMI TrafficSplit, a weighted TraefikService, an ApisixRoute rule's backends,
Ambassador Mappings sharing a prefix, an App Mesh VirtualRouter's weighted targets) decides
what share of the requests that enter through it each Service gets, as a real gateway or
mesh would. `route_groups` reads those shares from the raw objects;
the app simulator turns them into request rates. Pure: no I/O.

Managed routes (header and mirror rules) carry no weight of their own: the simulated
clients send no tester headers, so only the weighted rules count.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

Body = Mapping[str, Any]
# (group, version, plural) of every kind read here.
ROUTE_KINDS = (
    ("gateway.networking.k8s.io", "v1", "httproutes"),
    ("networking.istio.io", "v1beta1", "virtualservices"),
    ("networking.k8s.io", "v1", "ingresses"),
    ("split.smi-spec.io", "v1alpha2", "trafficsplits"),
    ("traefik.io", "v1alpha1", "traefikservices"),
    ("apisix.apache.org", "v2", "apisixroutes"),
    ("getambassador.io", "v2", "mappings"),
    ("appmesh.k8s.aws", "v1beta2", "virtualrouters"),
    ("appmesh.k8s.aws", "v1beta2", "virtualnodes"),
)
NGINX = "nginx.ingress.kubernetes.io"
# `[scheme://]name[.namespace...][:port]`, as an Ambassador Mapping names its Service.
_MAPPED_SERVICE = re.compile(r"^(?:[a-z]+://)?(?P<name>[^.:/]+)")


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _service(host: str) -> str:
    return host.split(".", 1)[0]  # "web-canary.default.svc.cluster.local" -> "web-canary"


def _group(weights: Iterable[tuple[str, int]]) -> dict[str, Fraction] | None:
    totals: dict[str, int] = {}
    for name, weight in weights:
        totals[name] = totals.get(name, 0) + max(0, weight)
    whole = sum(totals.values())
    if len(totals) < 2 or whole <= 0:
        return None
    return {name: Fraction(weight, whole) for name, weight in totals.items()}


def _http_route(body: Body) -> list[dict[str, Fraction]]:
    groups = []
    for rule in (body.get("spec") or {}).get("rules") or []:
        if rule.get("name"):
            continue  # a managed (header / mirror) rule
        group = _group((str(ref.get("name")), _int(ref.get("weight"), 1))
                       for ref in rule.get("backendRefs") or [])
        if group:
            groups.append(group)
    return groups


def _virtual_service(body: Body) -> list[dict[str, Fraction]]:
    groups = []
    for entry in (body.get("spec") or {}).get("http") or []:
        group = _group((_service(str((d.get("destination") or {}).get("host") or "")),
                        _int(d.get("weight"), 0)) for d in entry.get("route") or [])
        if group:
            groups.append(group)
    return groups


def _backend_service(ingress: Body) -> tuple[str, str] | None:
    """(host, Service) of an Ingress's first rule and path."""
    for rule in (ingress.get("spec") or {}).get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            service = ((path.get("backend") or {}).get("service") or {}).get("name")
            if service:
                return str(rule.get("host") or ""), str(service)
    return None


def _ingresses(bodies: list[Body]) -> list[dict[str, Fraction]]:
    groups = []
    stable = {}
    for body in bodies:
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        found = _backend_service(body)
        if found and annotations.get(f"{NGINX}/canary") != "true":
            stable[found[0]] = found[1]
    for body in bodies:
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        found = _backend_service(body)
        if not found or annotations.get(f"{NGINX}/canary") != "true":
            continue
        total = _int(annotations.get(f"{NGINX}/canary-weight-total"), 100)
        weight = min(total, _int(annotations.get(f"{NGINX}/canary-weight"), 0))
        host, canary = found
        if host in stable:
            group = _group([(canary, weight), (stable[host], total - weight)])
            if group:
                groups.append(group)
    return groups


def _traffic_split(body: Body) -> list[dict[str, Fraction]]:
    group = _group((str(b.get("service")), _int(b.get("weight"), 0))
                   for b in (body.get("spec") or {}).get("backends") or [])
    return [group] if group else []


def _alb_actions(bodies: list[Body]) -> list[dict[str, Fraction]]:
    """The forward action of each Ingress backend on port `use-annotation`: the annotation
    `<prefix>/actions.<backend>` (a header route's action forwards to one Service only)."""
    groups = []
    for body in bodies:
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        for backend in _action_backends(body):
            for name, text in annotations.items():
                if not str(name).endswith(f"/actions.{backend}"):
                    continue
                try:
                    action = json.loads(text)
                except (TypeError, ValueError):
                    continue
                forward = (action.get("ForwardConfig") or {}) if isinstance(action, dict) else {}
                group = _group((str(g.get("ServiceName")), _int(g.get("Weight"), 1))
                               for g in forward.get("TargetGroups") or [])
                if group:
                    groups.append(group)
    return groups


def _action_backends(ingress: Body) -> list[str]:
    """Names of the backends an ALB Ingress sends to an action (port `use-annotation`)."""
    spec = ingress.get("spec") or {}
    backends = [spec.get("defaultBackend") or {}]
    backends += [p.get("backend") or {} for r in spec.get("rules") or []
                 for p in (r.get("http") or {}).get("paths") or []]
    services = [b.get("service") or {} for b in backends]
    return list(dict.fromkeys(str(s.get("name")) for s in services
                              if (s.get("port") or {}).get("name") == "use-annotation"))


def _traefik_service(body: Body) -> list[dict[str, Fraction]]:
    weighted = (body.get("spec") or {}).get("weighted") or {}
    group = _group((str(s.get("name")), _int(s.get("weight"), 1))
                   for s in weighted.get("services") or [])
    return [group] if group else []


def _apisix_route(body: Body) -> list[dict[str, Fraction]]:
    groups = []
    for rule in (body.get("spec") or {}).get("http") or []:
        group = _group((str(b.get("serviceName")), _int(b.get("weight"), 100))
                       for b in rule.get("backends") or [])
        if group:
            groups.append(group)
    return groups


def _mappings(bodies: Iterable[Body]) -> list[dict[str, Fraction]]:
    """Mappings of one host and prefix share its requests: each weighted one its `weight`
    percent, the unweighted one the rest (as Ambassador / Emissary split them)."""
    by_route: dict[tuple[str, str], list[tuple[str, int | None]]] = {}
    for body in bodies:
        spec = body.get("spec") or {}
        found = _MAPPED_SERVICE.match(str(spec.get("service") or ""))
        if found is None:
            continue
        weight = None if spec.get("weight") is None else _int(spec.get("weight"))
        route = (str(spec.get("host") or ""), str(spec.get("prefix") or ""))
        by_route.setdefault(route, []).append((found["name"], weight))
    groups = []
    for entries in by_route.values():
        weighted = sum(min(100, max(0, w)) for _, w in entries if w is not None)
        group = _group((name, min(100, max(0, w)) if w is not None else max(0, 100 - weighted))
                       for name, w in entries)
        if group:
            groups.append(group)
    return groups


def _virtual_routers(routers: Iterable[Body], nodes: Iterable[Body]
                     ) -> list[dict[str, Fraction]]:
    """App Mesh: each route's weighted targets, a virtual node standing for the Service its
    DNS service discovery names (a node without one keeps its own name: no pod serves it)."""
    services = {}
    for node in nodes:
        spec = node.get("spec") or {}
        host = ((spec.get("serviceDiscovery") or {}).get("dns") or {}).get("hostname")
        if host:
            services[str((node.get("metadata") or {}).get("name"))] = _service(str(host))
    groups = []
    for router in routers:
        for route in (router.get("spec") or {}).get("routes") or []:
            for kind in ("httpRoute", "http2Route", "grpcRoute", "tcpRoute"):
                action = (route.get(kind) or {}).get("action") or {}
                targets = [(str((t.get("virtualNodeRef") or {}).get("name")),
                            _int(t.get("weight"), 0))
                           for t in action.get("weightedTargets") or []]
                group = _group((services.get(node, node), weight) for node, weight in targets)
                if group:
                    groups.append(group)
    return groups


def route_groups(objects: Mapping[str, Iterable[Body]]) -> list[dict[str, Fraction]]:
    """Service -> share of the requests entering through each weighted rule, from the route
    objects of one namespace by plural. E.g. an HTTPRoute rule with backendRefs web-stable
    75 and web-canary 25 -> [{"web-stable": 3/4, "web-canary": 1/4}]."""
    groups: list[dict[str, Fraction]] = []
    for body in objects.get("httproutes", ()):
        groups += _http_route(body)
    for body in objects.get("virtualservices", ()):
        groups += _virtual_service(body)
    groups += _ingresses(list(objects.get("ingresses", ())))
    groups += _alb_actions(list(objects.get("ingresses", ())))
    for body in objects.get("trafficsplits", ()):
        groups += _traffic_split(body)
    for body in objects.get("traefikservices", ()):
        groups += _traefik_service(body)
    for body in objects.get("apisixroutes", ()):
        groups += _apisix_route(body)
    groups += _mappings(objects.get("mappings", ()))
    groups += _virtual_routers(objects.get("virtualrouters", ()),
                               objects.get("virtualnodes", ()))
    return groups
