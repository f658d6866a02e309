"""SMI: a TrafficSplit the controller creates and owns.

`<trafficSplitName or rollout name>` splits the root Service (rootService, else
stableService) between the canary and stable Services (split.smi-spec.io/v1alpha2, integer
weights), plus a backend per experiment template with a `weight` while its Experiment runs.
finalize deletes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rollouts.models.traffic import SMITrafficRouting
from rollouts.planner.routing import ObjectKey, Observed, RouteWrite, TrafficIntent
from rollouts.traffic.common import (
    Binding,
    Problems,
    RouterBase,
    agreed,
    collect,
    extra_weights,
    maybe_int,
    not_ours,
    owned_write,
)

API_VERSION = "split.smi-spec.io/v1alpha2"
FIELD = "spec.strategy.canary.trafficRouting.smi.trafficSplitName"


class SMIRouter(RouterBase):
    name = "smi"

    def __init__(self, config: SMITrafficRouting, binding: Binding) -> None:
        self.binding = binding
        self.root_service = config.root_service or binding.stable_service
        self.key = ObjectKey(API_VERSION, "TrafficSplit",
                             config.traffic_split_name or binding.rollout_name, binding.namespace)

    def objects(self, observed: Observed | None = None) -> tuple[ObjectKey, ...]:
        return (self.key,)

    def owned(self) -> tuple[ObjectKey, ...]:
        return (self.key,)

    def problems(self, observed: Observed) -> Problems:
        return not_ours(self.binding, FIELD, observed.get(self.key))

    def writes(self, observed: Observed, intent: TrafficIntent) -> tuple[RouteWrite, ...]:
        spec = {"service": self.root_service, "backends": [
            {"service": self.binding.canary_service, "weight": intent.canary_weight},
            {"service": self.binding.stable_service, "weight": intent.stable_weight},
            *({"service": d.service, "weight": d.weight} for d in intent.extra)]}
        return collect([owned_write(self.binding, self.key, observed.get(self.key), spec)])

    def verified_weight(self, observed: Observed) -> int | None:
        return agreed(maybe_int(b.get("weight")) for b in self._backends(observed)
                      if b.get("service") == self.binding.canary_service)

    def extra_weight(self, observed: Observed, service: str) -> int | None:
        if observed.get(self.key) is None:
            return 0  # no split (yet, or any more): nothing is sent to the Service
        return agreed(extra_weights(self._backends(observed), _service, service))

    def _backends(self, observed: Observed) -> list[Any]:
        snapshot = observed.get(self.key)
        return (snapshot.body.get("spec") or {}).get("backends") or [] if snapshot else []


def _service(backend: Mapping[str, Any]) -> object:
    return backend.get("service")
