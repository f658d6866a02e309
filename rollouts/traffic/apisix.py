"""Apache APISIX: backend weights in the named http rules of an ApisixRoute.

The ApisixRoute is the user's; in each rule listed in `route.rules` (every rule naming both
Services when none is listed) the router writes only the two backends' `weight`. A header
route is a rule of its own named as the managed route, first: the weighted rule copied one
priority higher, with header `exprs` added, to the canary only.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from rollouts.models.traffic import ApisixTrafficRouting
from rollouts.planner.routing import HeaderRoute, ObjectKey, Observed, RouteWrite, TrafficIntent
from rollouts.traffic.common import (
    Binding,
    Body,
    Problems,
    RouterBase,
    agreed,
    as_regex,
    collect,
    editable,
    guarded_patch,
    managed_entry_ops,
    maybe_int,
    missing,
    set_weights,
    side_weights,
    without_managed,
)

API_VERSION = "apisix.apache.org/v2"
BASE = "spec.strategy.canary.trafficRouting.apisix.route"


class ApisixRouter(RouterBase):
    name = "apisix"

    def __init__(self, config: ApisixTrafficRouting, binding: Binding) -> None:
        self.binding = binding
        self.rules = config.route.rules
        self.key = ObjectKey(API_VERSION, "ApisixRoute", config.route.name, binding.namespace)

    def objects(self, observed: Observed | None = None) -> tuple[ObjectKey, ...]:
        return (self.key,)

    def problems(self, observed: Observed) -> Problems:
        snapshot = observed.get(self.key)
        if snapshot is None:
            return missing(f"{BASE}.name", self.key, observed)
        names = {r.get("name") for r in _http(snapshot.body)}
        lost = [n for n in self.rules or [] if n not in names]
        if lost:
            return [(f"{BASE}.rules", f"ApisixRoute {self.key.name} has no http rule named "
                     f"{', '.join(lost)}")]
        if not self._weighted(snapshot.body) or any(
                not self._both(r) for r in self._weighted(snapshot.body)):
            return [(f"{BASE}.name", f"ApisixRoute {self.key.name}: a rule to weigh has no "
                     f"backends {self.binding.canary_service} and "
                     f"{self.binding.stable_service}")]
        return []

    def writes(self, observed: Observed, intent: TrafficIntent) -> tuple[RouteWrite, ...]:
        snapshot = observed.get(self.key)
        if snapshot is None or self.problems(observed):
            return ()
        desired = editable(snapshot)
        weights = side_weights(self.binding.canary_service, self.binding.stable_service, intent)
        for rule in self._weighted(desired):
            set_weights(rule.get("backends") or [], _service_name, weights)
        template = self._weighted(desired)[0]
        managed = [self._header_rule(route, template) for route in intent.header_routes]
        http = desired["spec"]["http"]
        first = managed_entry_ops("/spec/http", snapshot.body["spec"]["http"],
                                  self.binding.managed_routes, managed)
        desired["spec"]["http"] = managed + without_managed(http, self.binding.managed_routes)
        return collect([guarded_patch(snapshot, desired, first)])

    def verified_weight(self, observed: Observed) -> int | None:
        snapshot = observed.get(self.key)
        rules = self._weighted(snapshot.body) if snapshot else []
        return agreed(maybe_int(b.get("weight")) for r in rules for b in r.get("backends") or []
                      if b.get("serviceName") == self.binding.canary_service)

    def _header_rule(self, route: HeaderRoute, template: Mapping[str, Any]) -> Body:
        """The weighted rule copied under the route's name, one priority higher, matching
        the headers too and sending to the canary only."""
        rule = copy.deepcopy(dict(template))
        match = rule.setdefault("match", {})
        match["exprs"] = [*match.get("exprs", []), *(
            {"subject": {"scope": "Header", "name": h.name},
             "op": "Equal" if h.match == "exact" else "RegexMatch",
             "value": h.value if h.match == "exact" else as_regex(h.match, h.value)}
            for h in route.matches)]
        canary = next(b for b in rule["backends"]
                      if b.get("serviceName") == self.binding.canary_service)
        canary.pop("weight", None)
        rule.update(name=route.name, priority=int(rule.get("priority") or 0) + 1,
                    backends=[canary])
        return rule

    def _both(self, rule: Mapping[str, Any]) -> bool:
        names = {b.get("serviceName") for b in rule.get("backends") or []}
        return {self.binding.canary_service, self.binding.stable_service} <= names

    def _weighted(self, body: Mapping[str, Any]) -> list[Any]:
        rules = without_managed(_http(body), self.binding.managed_routes)
        if self.rules is not None:
            return [r for r in rules if r.get("name") in self.rules]
        return [r for r in rules if self._both(r)]


def _service_name(backend: Mapping[str, Any]) -> object:
    return backend.get("serviceName")


def _http(body: Mapping[str, Any]) -> list[Any]:
    return (body.get("spec") or {}).get("http") or []
