"""A small fake Router: one route object whose `spec.canaryWeight` is the weight and
`spec.headerRoutes` the names of the header routes it holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rollouts.planner.routing import ObjectKey, RouteSnapshot, RouteWrite, TrafficIntent

ROUTE = ObjectKey("example.dev/v1", "Route", "web-route", "default")
RouteObserved = Mapping[ObjectKey, RouteSnapshot | None]


def route(weight: int | None, rv: str = "1", headers: tuple[str, ...] = ()
          ) -> dict[ObjectKey, RouteSnapshot | None]:
    """The observed route holding `weight` and the header routes named `headers` (weight
    None: the route is missing)."""
    if weight is None:
        return {ROUTE: None}
    return {ROUTE: RouteSnapshot(ROUTE, {"metadata": {"name": ROUTE.name,
                                                       "resourceVersion": rv},
                                          "spec": {"canaryWeight": weight,
                                                   "headerRoutes": list(headers)}})}


@dataclass(frozen=True)
class FakeRouter:
    name: str = "fake"

    def objects(self, observed: RouteObserved | None = None) -> tuple[ObjectKey, ...]:
        return (ROUTE,)

    def problems(self, observed: RouteObserved) -> list[tuple[str, str]]:
        if observed.get(ROUTE) is None:
            return [("spec.strategy.canary.trafficRouting.fake.route",
                     f"Route {ROUTE.name} not found")]
        return []

    def writes(self, observed: RouteObserved, intent: TrafficIntent) -> tuple[RouteWrite, ...]:
        snapshot = observed.get(ROUTE)
        headers = [h.name for h in intent.header_routes]
        if snapshot is None or (self.verified_weight(observed) == intent.canary_weight
                                and snapshot.body["spec"].get("headerRoutes", []) == headers):
            return ()
        rv = str(snapshot.body["metadata"]["resourceVersion"])
        ops: tuple[Mapping[str, Any], ...] = (
            {"op": "replace", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "replace", "path": "/spec/canaryWeight", "value": intent.canary_weight},
            {"op": "replace", "path": "/spec/headerRoutes", "value": headers},
        )
        return (RouteWrite(ROUTE, "patch", patch=ops),)

    def verified_weight(self, observed: RouteObserved) -> int | None:
        snapshot = observed.get(ROUTE)
        if snapshot is None:
            return None
        weight = snapshot.body.get("spec", {}).get("canaryWeight")
        return weight if isinstance(weight, int) else None

    def finalize(self, observed: RouteObserved) -> tuple[RouteWrite, ...]:
        return self.writes(observed, TrafficIntent(0, 100))
