"""Apache APISIX: backend weights in the named http rules of an ApisixRoute.

The ApisixRoute is the user's; in each rule listed in `route.rules` (every rule naming both
Services when none is listed) the router writes only the two backends' `weight`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rollouts.models.traffic import ApisixTrafficRouting
from rollouts.planner.routing import ObjectKey, Observed, RouteWrite, TrafficIntent
from rollouts.traffic.common import (
    Binding,
    Problems,
    RouterBase,
    agreed,
    collect,
    editable,
    guarded_patch,
    maybe_int,
    missing,
    set_weights,
    side_weights,
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
        return collect([guarded_patch(snapshot, desired)])

    def verified_weight(self, observed: Observed) -> int | None:
        snapshot = observed.get(self.key)
        rules = self._weighted(snapshot.body) if snapshot else []
        return agreed(maybe_int(b.get("weight")) for r in rules for b in r.get("backends") or []
                      if b.get("serviceName") == self.binding.canary_service)

    def _both(self, rule: Mapping[str, Any]) -> bool:
        names = {b.get("serviceName") for b in rule.get("backends") or []}
        return {self.binding.canary_service, self.binding.stable_service} <= names

    def _weighted(self, body: Mapping[str, Any]) -> list[Any]:
        if self.rules is not None:
            return [r for r in _http(body) if r.get("name") in self.rules]
        return [r for r in _http(body) if self._both(r)]


def _service_name(backend: Mapping[str, Any]) -> object:
    return backend.get("serviceName")


def _http(body: Mapping[str, Any]) -> list[Any]:
    return (body.get("spec") or {}).get("http") or []
