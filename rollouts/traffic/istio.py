"""Istio: weights on VirtualService http / tls / tcp routes, header and mirror http routes,
and DestinationRule subset labels.

Host-level split (no destinationRule): a weighted route's destinations are the canary and
stable Services by host. Subset-level split: they are the canary and stable subsets of one
host, and the subsets select pods by their pod-template hash. Managed routes are http routes
named as in managedRoutes, kept first (Istio takes the first route that matches).

An experiment template with a `weight` gets a destination of its own in every weighted
route while its Experiment runs, by host (its Service), in either split: the Service
selects the template's pods by their pod-template hash already.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from rollouts.models.rollout import POD_TEMPLATE_HASH_LABEL
from rollouts.models.traffic import IstioTrafficRouting, IstioVirtualService
from rollouts.planner.routing import (
    ExtraDestination,
    HeaderMatch,
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
    extra_weights,
    guarded_patch,
    managed_entry_ops,
    missing,
    names_service,
    weigh_extras,
    without_managed,
)

API_VERSION = "networking.istio.io/v1beta1"
BASE = "spec.strategy.canary.trafficRouting.istio"


class IstioRouter(RouterBase):
    name = "istio"

    def __init__(self, config: IstioTrafficRouting, binding: Binding) -> None:
        self.binding = binding
        self.config = config
        self.services = tuple(
            (f"{BASE}.{path}", vs, ObjectKey(API_VERSION, "VirtualService", vs.name,
                                             binding.namespace))
            for path, vs in config.all_virtual_services())
        rule = config.destination_rule
        self.rule_key = None if rule is None else ObjectKey(
            API_VERSION, "DestinationRule", rule.name, binding.namespace)

    def objects(self, observed: Observed | None = None) -> tuple[ObjectKey, ...]:
        keys = tuple(key for _, _, key in self.services)
        return keys if self.rule_key is None else (*keys, self.rule_key)

    def problems(self, observed: Observed) -> Problems:
        found: Problems = []
        for path, vs, key in self.services:
            found += missing(path, key, observed)
            snapshot = observed.get(key)
            if snapshot is not None:
                found += self._route_problems(path, vs, snapshot.body)
        rule = self.config.destination_rule
        if rule is not None and self.rule_key is not None:
            field = f"{BASE}.destinationRule"
            found += missing(field, self.rule_key, observed)
            snapshot = observed.get(self.rule_key)
            subsets = {s.get("name") for s in _spec(snapshot.body).get("subsets") or []
                       } if snapshot else set()
            for name in (rule.canary_subset_name, rule.stable_subset_name):
                if snapshot is not None and name not in subsets:
                    found.append((field, f"DestinationRule {rule.name} has no subset {name}"))
        return found

    def writes(self, observed: Observed, intent: TrafficIntent) -> tuple[RouteWrite, ...]:
        writes: list[RouteWrite | None] = []
        for path, vs, key in self.services:
            snapshot = observed.get(key)
            if snapshot is None or self._route_problems(path, vs, snapshot.body):
                continue
            desired = editable(snapshot)
            weighted = self._weighted(vs, desired)
            for route in weighted:
                for destination in route["route"]:
                    side = self._side(destination)
                    if side is not None:
                        destination["weight"] = (intent.canary_weight if side == "canary"
                                                 else intent.stable_weight)
                route["route"] = weigh_extras(route["route"], _short_host, intent,
                                              _host_destination)
            http = desired["spec"].get("http")
            template = next((r for r in weighted if http and r in http), None)
            first: list[Body] = []
            if http is not None and template is not None:
                managed = [self._header_route(h, template) for h in intent.header_routes]
                managed += [self._mirror_route(m, template) for m in intent.mirror_routes]
                first = managed_entry_ops("/spec/http", snapshot.body["spec"]["http"],
                                          self.binding.managed_routes, managed)
                desired["spec"]["http"] = managed + without_managed(
                    http, self.binding.managed_routes)
            writes.append(guarded_patch(snapshot, desired, first))
        writes.append(self._subset_labels(observed, intent))
        return collect(writes)

    def verified_weight(self, observed: Observed) -> int | None:
        routes = self._destination_lists(observed)
        return None if routes is None else agreed(
            d.get("weight", 0) for route in routes for d in route if self._side(d) == "canary")

    def extra_weight(self, observed: Observed, service: str) -> int | None:
        routes = self._destination_lists(observed)
        if routes is None:
            return None
        return agreed(w for route in routes for w in extra_weights(route, _short_host, service)
                      ) if routes else 0

    def _destination_lists(self, observed: Observed) -> list[list[Any]] | None:
        """The destinations of every weighted route; None when a VirtualService is missing."""
        found: list[list[Any]] = []
        for _, vs, key in self.services:
            snapshot = observed.get(key)
            if snapshot is None:
                return None
            found += [route.get("route") or [] for route in self._weighted(vs, snapshot.body)]
        return found

    # --- finding the weighted routes ---

    def _weighted(self, vs: IstioVirtualService, body: Mapping[str, Any]) -> list[Any]:
        """The routes the router weighs: the named http routes (or the only one), the tls and
        tcp routes matched by port / SNI hosts."""
        spec = _spec(body)
        managed = set(self.binding.managed_routes)
        http = [r for r in spec.get("http") or [] if r.get("name") not in managed]
        found = ([r for r in http if r.get("name") in vs.routes] if vs.routes
                 else http if len(http) == 1 and not (vs.tls_routes or vs.tcp_routes) else [])
        for want in vs.tls_routes or []:
            found += [r for r in spec.get("tls") or [] if any(
                (want.port is None or m.get("port") == want.port)
                and (want.sni_hosts is None or sorted(m.get("sniHosts") or [])
                     == sorted(want.sni_hosts)) for m in r.get("match") or [])]
        for tcp in vs.tcp_routes or []:
            found += [r for r in spec.get("tcp") or [] if any(
                tcp.port is None or m.get("port") == tcp.port for m in r.get("match") or [])]
        return found

    def _route_problems(self, path: str, vs: IstioVirtualService, body: Mapping[str, Any]
                        ) -> Problems:
        http = _spec(body).get("http") or []
        names = {r.get("name") for r in http}
        # As Argo: named http routes are looked for only in a VirtualService that has some
        # (one that splits TLS / TCP only may still list `routes`).
        lost = [n for n in vs.routes or [] if n not in names] if http else []
        if lost:
            return [(f"{path}.routes", f"VirtualService {vs.name} has no http route "
                     f"named {', '.join(lost)}")]
        weighted = self._weighted(vs, body)
        if not weighted:
            return [(path, f"VirtualService {vs.name}: no route to weigh (name it in routes, "
                     "tlsRoutes or tcpRoutes)")]
        for route in weighted:
            sides = {self._side(d) for d in route.get("route") or []}
            if not {"canary", "stable"} <= sides:
                what = ("subsets " + ", ".join(self._subsets()) if self._subsets()
                        else f"hosts {self.binding.canary_service}, "
                             f"{self.binding.stable_service}")
                return [(path, f"VirtualService {vs.name}: route "
                         f"{route.get('name') or '(unnamed)'} has no destinations to {what}")]
        return []

    def _subsets(self) -> tuple[str, str] | tuple[()]:
        rule = self.config.destination_rule
        return () if rule is None else (rule.canary_subset_name, rule.stable_subset_name)

    def _side(self, destination: Mapping[str, Any]) -> str | None:
        target = destination.get("destination") or {}
        rule = self.config.destination_rule
        if rule is not None:
            subset = target.get("subset")
            return ("canary" if subset == rule.canary_subset_name
                    else "stable" if subset == rule.stable_subset_name else None)
        host = target.get("host")
        return ("canary" if names_service(host, self.binding.canary_service)
                else "stable" if names_service(host, self.binding.stable_service) else None)

    def _canary_destination(self, template: Mapping[str, Any]) -> Body:
        destination = next(d for d in template["route"] if self._side(d) == "canary")
        return copy.deepcopy(destination["destination"])

    # --- managed routes ---

    def _header_route(self, route: HeaderRoute, template: Mapping[str, Any]) -> Body:
        match = {"headers": {h.name: _string_match(h) for h in route.matches}}
        return {"name": route.name, "match": [match],
                "route": [{"destination": self._canary_destination(template)}]}

    def _mirror_route(self, route: MirrorRoute, template: Mapping[str, Any]) -> Body:
        return {"name": route.name, "match": [_request_match(m) for m in route.matches] or [{}],
                "route": copy.deepcopy(template["route"]),
                "mirror": self._canary_destination(template),
                "mirrorPercentage": {"value": float(route.percentage)}}

    def _subset_labels(self, observed: Observed, intent: TrafficIntent) -> RouteWrite | None:
        rule = self.config.destination_rule
        snapshot = observed.get(self.rule_key) if self.rule_key else None
        if rule is None or snapshot is None:
            return None
        desired = editable(snapshot)
        wanted = {rule.canary_subset_name: intent.canary_hash,
                  rule.stable_subset_name: intent.stable_hash}
        for subset in desired.get("spec", {}).get("subsets") or []:
            value = wanted.get(subset.get("name"))
            if value is not None:
                subset.setdefault("labels", {})[POD_TEMPLATE_HASH_LABEL] = value
        return guarded_patch(snapshot, desired)


def _short_host(destination: Mapping[str, Any]) -> object:
    """The Service a destination's host names (`svc`, `svc.ns`, `svc.ns.svc.cluster.local`)."""
    host = (destination.get("destination") or {}).get("host")
    return host.split(".", 1)[0] if isinstance(host, str) else None


def _host_destination(extra: ExtraDestination) -> Body:
    return {"destination": {"host": extra.service}, "weight": extra.weight}


def _spec(body: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = body.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _string_match(header: HeaderMatch) -> dict[str, str]:
    return {header.match: header.value}


def _request_match(match: RequestMatch) -> Body:
    out: Body = {}
    if match.method is not None:
        out["method"] = {match.method_match: match.method}
    if match.path is not None:
        out["uri"] = {match.path_match: match.path}
    if match.headers:
        out["headers"] = {h.name: _string_match(h) for h in match.headers}
    return out
