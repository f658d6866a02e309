"""Traefik: weights of the canary and stable entries of a weighted TraefikService.

The TraefikService is the user's; the router writes only the two `weight` fields of the
`spec.weighted.services` entries named canaryService and stableService.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rollouts.models.traffic import TraefikTrafficRouting
from rollouts.planner.routing import ObjectKey, Observed, RouteWrite, TrafficIntent
from rollouts.traffic.common import (
    Binding,
    Problems,
    RouterBase,
    agreed,
    collect,
    editable,
    entry_name,
    guarded_patch,
    maybe_int,
    missing,
    set_weights,
    side_weights,
)

API_VERSION = "traefik.io/v1alpha1"
FIELD = "spec.strategy.canary.trafficRouting.traefik.weightedTraefikServiceName"


class TraefikRouter(RouterBase):
    name = "traefik"

    def __init__(self, config: TraefikTrafficRouting, binding: Binding) -> None:
        self.binding = binding
        self.key = ObjectKey(API_VERSION, "TraefikService", config.weighted_traefik_service_name,
                             binding.namespace)

    def objects(self, observed: Observed | None = None) -> tuple[ObjectKey, ...]:
        return (self.key,)

    def problems(self, observed: Observed) -> Problems:
        snapshot = observed.get(self.key)
        if snapshot is None:
            return missing(FIELD, self.key, observed)
        names = {s.get("name") for s in _services(snapshot.body)}
        if not {self.binding.canary_service, self.binding.stable_service} <= names:
            return [(FIELD, f"TraefikService {self.key.name} has no weighted services "
                     f"{self.binding.canary_service} and {self.binding.stable_service}")]
        return []

    def writes(self, observed: Observed, intent: TrafficIntent) -> tuple[RouteWrite, ...]:
        snapshot = observed.get(self.key)
        if snapshot is None or self.problems(observed):
            return ()
        desired = editable(snapshot)
        set_weights(_services(desired), entry_name, side_weights(
            self.binding.canary_service, self.binding.stable_service, intent))
        return collect([guarded_patch(snapshot, desired)])

    def verified_weight(self, observed: Observed) -> int | None:
        snapshot = observed.get(self.key)
        services = _services(snapshot.body) if snapshot else []
        return agreed(maybe_int(s.get("weight")) for s in services
                      if s.get("name") == self.binding.canary_service)


def _services(body: Mapping[str, Any]) -> list[Any]:
    return ((body.get("spec") or {}).get("weighted") or {}).get("services") or []
