"""The canary with a traffic router: weights are set on route objects, pods sized to serve.

Argo Rollouts semantics with `trafficRouting`:
- the canary ReplicaSet is scaled to the step's share of the replicas (or to the
  setCanaryScale in force), the stable stays at full size;
- the router's weight is raised only once the canary has the available pods to serve it
  (invariant 1); lowering it never waits;
- a weight is reached when the route objects verifiably hold it (read back from the
  objects, never assumed from what was written);
- on abort the weight goes to 0 and the managed routes go (an intent with none removes
  them) before the canary is scaled down (invariant 2): `off_canary` says when.

The router decides every write (`Router.writes`); this model only decides which weight to
ask for. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from rollouts.models.rollout import SetCanaryScale
from rollouts.planner.routing import ObjectKey, Router, RouteSnapshot, TrafficIntent
from rollouts.planner.traffic import waiting_for_pods
from rollouts.planner.types import Action, ApplyRouteWrite, ReplicaSetView


@dataclass(frozen=True)
class RouterTraffic:
    replicas: int
    router: Router
    routes: Mapping[ObjectKey, RouteSnapshot | None]
    max_weight: int = 100  # trafficRouting.maxTrafficWeight
    # Route objects are read, not watched: how soon to look again while they do not yet
    # show the weight asked of them.
    recheck_seconds: float = 2.0

    routes_traffic = True  # traffic leaves the canary before its pods do

    def canary_pods(self, weight: int, scale: SetCanaryScale | None = None) -> int:
        """Canary pods for `weight`: its share of the replicas, rounded up, unless a
        setCanaryScale sets them. E.g. 10 replicas at 25 of 100 -> 3; setCanaryScale
        replicas 1 -> 1; setCanaryScale weight 50 -> 5."""
        if scale is not None and scale.replicas is not None:
            return scale.replicas
        if scale is not None and scale.weight is not None:
            return math.ceil(self.replicas * scale.weight / 100)
        # No scale, or matchTrafficWeight: sized by the traffic weight.
        return math.ceil(self.replicas * max(0, min(weight, self.max_weight)) / self.max_weight)

    def pods(self, weight: int, canary: ReplicaSetView | None, stable: ReplicaSetView,
             scale: SetCanaryScale | None = None) -> tuple[int, int]:
        return self.canary_pods(weight, scale), self.replicas

    def serving(self, canary: ReplicaSetView | None, weight: int,
                scale: SetCanaryScale | None = None) -> bool:
        """The canary has the available pods `weight` asks for."""
        wanted = self.canary_pods(weight, scale)
        return canary is not None and min(canary.available, canary.spec_replicas) >= wanted

    def target_weight(self, weight: int, canary: ReplicaSetView | None,
                      scale: SetCanaryScale | None = None) -> int:
        """The weight to ask the router for now: `weight`, or while the canary cannot
        serve it yet, the weight the routes hold (never raised early, lowered at once)."""
        held = self.router.verified_weight(self.routes) or 0
        if weight <= held or self.serving(canary, weight, scale):
            return weight
        return held

    def writes(self, weight: int, canary: ReplicaSetView | None, stable: ReplicaSetView,
               scale: SetCanaryScale | None = None) -> tuple[Action, ...]:
        canary_weight = self.target_weight(weight, canary, scale)
        intent = TrafficIntent(canary_weight=canary_weight,
                               stable_weight=self.max_weight - canary_weight,
                               max_weight=self.max_weight)
        return tuple(ApplyRouteWrite(w) for w in self.router.writes(self.routes, intent))

    def reached(self, weight: int, canary: ReplicaSetView | None, stable: ReplicaSetView,
                scale: SetCanaryScale | None = None) -> bool:
        return (self.router.verified_weight(self.routes) == weight
                and (weight == 0 or self.serving(canary, weight, scale)))

    def verified_weight(self, canary: ReplicaSetView | None,
                        stable: ReplicaSetView | None) -> int:
        return self.router.verified_weight(self.routes) or 0

    def off_canary(self, canary: ReplicaSetView | None) -> bool:
        return self.router.verified_weight(self.routes) == 0

    def waiting(self, weight: int, canary: ReplicaSetView | None, stable: ReplicaSetView,
                scale: SetCanaryScale | None = None) -> str:
        if not self.serving(canary, weight, scale):
            wanted = self.canary_pods(weight, scale)
            have = min(canary.available, wanted) if canary else 0
            return waiting_for_pods(wanted, have)
        held = self.router.verified_weight(self.routes)
        shown = "unknown" if held is None else str(held)
        return f"waiting for the {self.router.name} routes to hold {weight} (now {shown})"

    def recheck_after(self, weight: int, canary: ReplicaSetView | None,
                      stable: ReplicaSetView, scale: SetCanaryScale | None = None
                      ) -> float | None:
        asked = self.target_weight(weight, canary, scale)
        if self.router.verified_weight(self.routes) == asked:
            return None
        return self.recheck_seconds
