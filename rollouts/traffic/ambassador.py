"""Ambassador / Emissary: a weighted canary Mapping beside each of the user's Mappings.

For each Mapping in `mappings` (routing to stableService) the controller creates and owns
`<mapping>-canary`: the same spec with the service pointed at canaryService and `weight`
set to the canary weight. finalize deletes them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from rollouts.models.traffic import AmbassadorTrafficRouting
from rollouts.planner.routing import ObjectKey, Observed, RouteWrite, TrafficIntent
from rollouts.traffic.common import (
    Binding,
    Body,
    Problems,
    RouterBase,
    agreed,
    collect,
    maybe_int,
    missing,
    not_ours,
    owned_write,
)

API_VERSION = "getambassador.io/v2"
BASE = "spec.strategy.canary.trafficRouting.ambassador.mappings"
# `[scheme://]name[.namespace...][:port]`: the Service name is the first label of the host.
_SERVICE = re.compile(r"^(?P<scheme>[a-z]+://)?(?P<name>[^.:/]+)(?P<rest>.*)$")


class AmbassadorRouter(RouterBase):
    name = "ambassador"

    def __init__(self, config: AmbassadorTrafficRouting, binding: Binding) -> None:
        self.binding = binding
        self.pairs = tuple(
            (f"{BASE}[{i}]", ObjectKey(API_VERSION, "Mapping", name, binding.namespace),
             ObjectKey(API_VERSION, "Mapping", f"{name}-canary", binding.namespace))
            for i, name in enumerate(config.mappings))

    def objects(self, observed: Observed | None = None) -> tuple[ObjectKey, ...]:
        return tuple(k for _, base, canary in self.pairs for k in (base, canary))

    def owned(self) -> tuple[ObjectKey, ...]:
        return tuple(canary for _, _, canary in self.pairs)

    def problems(self, observed: Observed) -> Problems:
        found: Problems = []
        for path, base, canary in self.pairs:
            found += missing(path, base, observed)
            snapshot = observed.get(base)
            if snapshot is not None and self._canary_spec(snapshot.body, 0) is None:
                found.append((path, f"Mapping {base.name} does not route to stableService "
                              f"{self.binding.stable_service}"))
            found += not_ours(self.binding, path, observed.get(canary))
        return found

    def writes(self, observed: Observed, intent: TrafficIntent) -> tuple[RouteWrite, ...]:
        writes: list[RouteWrite | None] = []
        for _, base, canary in self.pairs:
            snapshot = observed.get(base)
            spec = self._canary_spec(snapshot.body, intent.canary_weight) if snapshot else None
            if spec is not None:
                writes.append(owned_write(self.binding, canary, observed.get(canary), spec))
        return collect(writes)

    def verified_weight(self, observed: Observed) -> int | None:
        weights: list[int | None] = []
        for _, _, canary in self.pairs:
            snapshot = observed.get(canary)
            weights.append(maybe_int((snapshot.body.get("spec") or {}).get("weight"))
                           if snapshot else None)
        return agreed(weights)

    def _canary_spec(self, body: Mapping[str, Any], weight: int) -> Body | None:
        spec = copy.deepcopy(dict(body.get("spec") or {}))
        match = _SERVICE.match(str(spec.get("service", "")))
        if match is None or match["name"] != self.binding.stable_service:
            return None
        spec["service"] = (f"{match['scheme'] or ''}{self.binding.canary_service}"
                           f"{match['rest']}")
        spec["weight"] = weight
        return spec
