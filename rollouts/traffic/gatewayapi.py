"""Gateway API (Argo's `plugins["argoproj-labs/gatewayAPI"]` form): HTTPRoute, GRPCRoute and
TCPRoute backendRef weights, plus header and mirror rules on HTTPRoutes.

A weighted rule is one whose backendRefs name both canaryService and stableService; the
router sets those two weights and nothing else, but for the backendRef it adds to each
weighted rule per experiment template with a `weight` while its Experiment runs (a copy of
the canary's ref naming the template's Service). Managed routes are rules of their own,
marked by their `name` (HTTPRouteRule.name, Gateway API v1.2+) being a managedRoutes name,
kept before the user's rules in managedRoutes order.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from rollouts.models.traffic import GATEWAY_API_PLUGIN, GatewayAPIConfig
from rollouts.planner.routing import (
    ExtraDestination,
    HeaderRoute,
    MirrorRoute,
    ObjectKey,
    Observed,
    RequestMatch,
    RouteWrite,
    TrafficIntent,
)
from rollouts.traffic.common import (
    Binding,
    Body,
    Problems,
    RouterBase,
    agreed,
    collect,
    editable,
    entry_name,
    guarded_patch,
    header_regex_or_exact,
    managed_entry_ops,
    missing,
    set_weights,
    side_weights,
    weigh_extras,
    without_managed,
)

GROUP = "gateway.networking.k8s.io"
_KINDS = {"http": ("HTTPRoute", f"{GROUP}/v1"), "grpc": ("GRPCRoute", f"{GROUP}/v1"),
          "tcp": ("TCPRoute", f"{GROUP}/v1alpha2")}
_PATH_TYPES = {"exact": "Exact", "prefix": "PathPrefix", "regex": "RegularExpression"}


@dataclass(frozen=True)
class _Route:
    field: str  # spec field that names it
    key: ObjectKey
    managed_rules: bool  # header / mirror rules go here (HTTPRoutes with useHeaderRoutes)


class GatewayAPIRouter(RouterBase):
    name = GATEWAY_API_PLUGIN

    def __init__(self, config: GatewayAPIConfig, binding: Binding) -> None:
        self.binding = binding
        namespace = config.namespace or binding.namespace
        base = f"spec.strategy.canary.trafficRouting.plugins[\"{GATEWAY_API_PLUGIN}\"]"
        routes: list[_Route] = []
        for proto in ("http", "grpc", "tcp"):
            kind, api_version = _KINDS[proto]
            single = getattr(config, f"{proto}_route")
            if single:
                routes.append(_Route(f"{base}.{proto}Route",
                                     ObjectKey(api_version, kind, single, namespace),
                                     proto == "http"))
            for i, entry in enumerate(getattr(config, f"{proto}_routes") or []):
                routes.append(_Route(f"{base}.{proto}Routes[{i}]",
                                     ObjectKey(api_version, kind, entry.name, namespace),
                                     proto == "http" and entry.use_header_routes))
        self.routes = tuple(routes)

    def objects(self, observed: Observed | None = None) -> tuple[ObjectKey, ...]:
        return tuple(r.key for r in self.routes)

    def problems(self, observed: Observed) -> Problems:
        found: Problems = []
        for route in self.routes:
            found += missing(route.field, route.key, observed)
            snapshot = observed.get(route.key)
            if snapshot is not None and not self._weighted(snapshot.body):
                found.append((route.field, f"{route.key.kind} {route.key.name} has no rule whose "
                              f"backendRefs name both canaryService "
                              f"{self.binding.canary_service} and stableService "
                              f"{self.binding.stable_service}"))
        return found

    def writes(self, observed: Observed, intent: TrafficIntent) -> tuple[RouteWrite, ...]:
        writes: list[RouteWrite | None] = []
        for route in self.routes:
            snapshot = observed.get(route.key)
            if snapshot is None or not self._weighted(snapshot.body):
                continue
            desired = editable(snapshot)
            for rule in self._weighted(desired):
                refs = rule.get("backendRefs") or []
                set_weights(refs, entry_name, side_weights(
                    self.binding.canary_service, self.binding.stable_service, intent))
                rule["backendRefs"] = weigh_extras(refs, entry_name, intent,
                                                   partial(_extra_ref, self._canary_ref(rule)))
            first: list[Body] = []
            if route.managed_rules:
                template = self._weighted(desired)[0]
                canary = self._canary_ref(template)
                managed = [_header_rule(h, template, canary) for h in intent.header_routes]
                managed += [_mirror_rule(m, template, canary) for m in intent.mirror_routes]
                rules = desired["spec"]["rules"]
                first = managed_entry_ops("/spec/rules", snapshot.body["spec"]["rules"],
                                          self.binding.managed_routes, managed)
                desired["spec"]["rules"] = managed + without_managed(
                    rules, self.binding.managed_routes)
            writes.append(guarded_patch(snapshot, desired, first))
        return collect(writes)

    def verified_weight(self, observed: Observed) -> int | None:
        return self._weights_of(observed, self.binding.canary_service, absent=[])

    def extra_weight(self, observed: Observed, service: str) -> int | None:
        return self._weights_of(observed, service, absent=[0])

    def _weights_of(self, observed: Observed, service: str, absent: list[int | None]
                    ) -> int | None:
        """The one weight every weighted rule gives `service` (`absent`: what a rule without
        it counts as); None when a route is missing or they disagree; 0 with no rule."""
        weights: list[int | None] = []
        rules = 0
        for route in self.routes:
            snapshot = observed.get(route.key)
            if snapshot is None:
                return None
            for rule in self._weighted(snapshot.body):
                rules += 1
                weights += [_weight(ref) for ref in rule.get("backendRefs") or []
                            if ref.get("name") == service] or absent
        return agreed(weights) if rules or not absent else 0

    # --- helpers ---

    def _weighted(self, body: Mapping[str, Any]) -> list[Any]:
        rules = (body.get("spec") or {}).get("rules") or []
        managed = set(self.binding.managed_routes)
        return [rule for rule in rules
                if isinstance(rule, Mapping) and rule.get("name") not in managed
                and {self.binding.canary_service, self.binding.stable_service}
                <= {ref.get("name") for ref in rule.get("backendRefs") or []
                    if isinstance(ref, Mapping)}]

    def _canary_ref(self, rule: Mapping[str, Any]) -> Body:
        ref = next(r for r in rule["backendRefs"] if r.get("name") == self.binding.canary_service)
        return {k: copy.deepcopy(v) for k, v in ref.items() if k not in ("weight", "filters")}


def _extra_ref(canary: Mapping[str, Any], extra: ExtraDestination) -> Body:
    """An experiment template's backendRef: the canary's (kind, port, ...) naming its
    Service."""
    return {**copy.deepcopy(dict(canary)), "name": extra.service, "weight": extra.weight}


def _weight(ref: Mapping[str, Any]) -> int | None:
    value = ref.get("weight", 1)  # Gateway API's default weight
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _header_rule(route: HeaderRoute, template: Mapping[str, Any], canary: Body) -> Body:
    headers = []
    for header in route.matches:
        kind, value = header_regex_or_exact(header)
        headers.append({"type": kind, "name": header.name, "value": value})
    matches = [{**copy.deepcopy(m), "headers": [*m.get("headers", []), *headers]}
               for m in template.get("matches") or [{}]]
    return {"name": route.name, "matches": matches, "backendRefs": [canary]}


def _mirror_rule(route: MirrorRoute, template: Mapping[str, Any], canary: Body) -> Body:
    mirror: Body = {"backendRef": canary}
    if route.percentage < 100:
        mirror["percent"] = route.percentage
    return {"name": route.name,
            "matches": [_request_match(m) for m in route.matches] or [{}],
            "filters": [{"type": "RequestMirror", "requestMirror": mirror}],
            "backendRefs": copy.deepcopy(template["backendRefs"])}


def _request_match(match: RequestMatch) -> Body:
    out: Body = {}
    if match.path is not None:
        out["path"] = {"type": _PATH_TYPES[match.path_match], "value": match.path}
    if match.method is not None:
        out["method"] = match.method  # Gateway API matches methods exactly
    if match.headers:
        out["headers"] = [dict(zip(("type", "value"), header_regex_or_exact(h), strict=True),
                               name=h.name) for h in match.headers]
    return out
