"""AWS App Mesh: weighted targets of a VirtualRouter's routes, and the virtual nodes' pods.

The Rollout names a VirtualService; its provider names the VirtualRouter (so `objects`
lists the router once the VirtualService is observed). In each route listed in
`virtualService.routes` (every route when none is listed) the router writes the weights of
the canary and stable virtual nodes' targets; with the pod-template hashes given it also
pins each VirtualNode's podSelector to its side's pods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rollouts.models.rollout import POD_TEMPLATE_HASH_LABEL
from rollouts.models.traffic import AppMeshTrafficRouting
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

API_VERSION = "appmesh.k8s.aws/v1beta2"
BASE = "spec.strategy.canary.trafficRouting.appMesh"
_ROUTE_KINDS = ("httpRoute", "http2Route", "grpcRoute", "tcpRoute")


class AppMeshRouter(RouterBase):
    name = "appMesh"

    def __init__(self, config: AppMeshTrafficRouting, binding: Binding) -> None:
        self.binding = binding
        self.routes = config.virtual_service.routes
        ns = binding.namespace
        self.service = ObjectKey(API_VERSION, "VirtualService", config.virtual_service.name, ns)
        group = config.virtual_node_group
        self.nodes = {
            "canary": ObjectKey(API_VERSION, "VirtualNode", group.canary_virtual_node_ref.name, ns),
            "stable": ObjectKey(API_VERSION, "VirtualNode", group.stable_virtual_node_ref.name, ns),
        }

    def objects(self, observed: Observed | None = None) -> tuple[ObjectKey, ...]:
        keys = (self.service, *self.nodes.values())
        router = self._router_key(observed or {})
        return keys if router is None else (*keys, router)

    def problems(self, observed: Observed) -> Problems:
        found = missing(f"{BASE}.virtualService.name", self.service, observed)
        for side, key in self.nodes.items():
            found += missing(f"{BASE}.virtualNodeGroup.{side}VirtualNodeRef", key, observed)
        if found:
            return found
        router = self._router_key(observed)
        if router is None:
            return [(f"{BASE}.virtualService.name", f"VirtualService {self.service.name} is not "
                     "provided by a virtualRouter")]
        snapshot = observed.get(router)
        if snapshot is None:
            return missing(f"{BASE}.virtualService.name", router, observed)
        names = {r.get("name") for r in _routes(snapshot.body)}
        lost = [n for n in self.routes or [] if n not in names]
        if lost:
            return [(f"{BASE}.virtualService.routes", f"VirtualRouter {router.name} has no "
                     f"route named {', '.join(lost)}")]
        for route in self._weighted(snapshot.body):
            sides = {_node_name(t) for t in _targets(route)}
            if not {k.name for k in self.nodes.values()} <= sides:
                return [(f"{BASE}.virtualNodeGroup", f"VirtualRouter {router.name} route "
                         f"{route.get('name')} has no weighted targets to both virtual nodes")]
        return []

    def writes(self, observed: Observed, intent: TrafficIntent) -> tuple[RouteWrite, ...]:
        if self.problems(observed):
            return ()
        router = self._router_key(observed)
        snapshot = observed.get(router) if router else None
        if snapshot is None:
            return ()
        desired = editable(snapshot)
        weights = side_weights(self.nodes["canary"].name, self.nodes["stable"].name, intent)
        for route in self._weighted(desired):
            set_weights(_targets(route), _node_name, weights)
        writes = [guarded_patch(snapshot, desired)]
        for side, value in (("canary", intent.canary_hash), ("stable", intent.stable_hash)):
            node = observed.get(self.nodes[side])
            if value is not None and node is not None:
                body = editable(node)
                selector = body.setdefault("spec", {}).setdefault("podSelector", {})
                selector.setdefault("matchLabels", {})[POD_TEMPLATE_HASH_LABEL] = value
                writes.append(guarded_patch(node, body))
        return collect(writes)

    def verified_weight(self, observed: Observed) -> int | None:
        router = self._router_key(observed)
        snapshot = observed.get(router) if router else None
        if snapshot is None:
            return None
        canary = self.nodes["canary"].name
        return agreed(maybe_int(t.get("weight")) for r in self._weighted(snapshot.body)
                      for t in _targets(r) if _node_name(t) == canary)

    def _router_key(self, observed: Observed) -> ObjectKey | None:
        snapshot = observed.get(self.service)
        if snapshot is None:
            return None
        provider = (snapshot.body.get("spec") or {}).get("provider") or {}
        name = ((provider.get("virtualRouter") or {}).get("virtualRouterRef") or {}).get("name")
        if not isinstance(name, str):
            return None
        return ObjectKey(API_VERSION, "VirtualRouter", name, self.binding.namespace)

    def _weighted(self, body: Mapping[str, Any]) -> list[Any]:
        return [r for r in _routes(body) if self.routes is None or r.get("name") in self.routes]


def _node_name(target: Mapping[str, Any]) -> object:
    return (target.get("virtualNodeRef") or {}).get("name")


def _routes(body: Mapping[str, Any]) -> list[Any]:
    return (body.get("spec") or {}).get("routes") or []


def _targets(route: Mapping[str, Any]) -> list[Any]:
    for kind in _ROUTE_KINDS:
        if kind in route:
            return ((route[kind] or {}).get("action") or {}).get("weightedTargets") or []
    return []
