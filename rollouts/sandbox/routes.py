"""How the sandbox's simulated clients split their requests: the weights route objects hold.

Without a route a Service's requests are its pods' (each ready pod serves its share). A
route object that weighs Services against each other (an HTTPRoute's backendRefs, an Istio
VirtualService's route, an NGINX canary Ingress beside its stable Ingress, an SMI
TrafficSplit) decides what share of the requests that enter through it each Service gets,
as a real gateway or mesh would. `route_groups` reads those shares from the raw objects;
the app simulator turns them into request rates. Pure: no I/O.

Managed routes (header and mirror rules) carry no weight of their own: the simulated
clients send no tester headers, so only the weighted rules count.
"""

from __future__ import annotations

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
)
NGINX = "nginx.ingress.kubernetes.io"


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
    for body in objects.get("trafficsplits", ()):
        groups += _traffic_split(body)
    return groups
