"""Traffic routers: one module per kind, built from a canary's `trafficRouting` block.

`build_router` returns one `Router` (rollouts/planner/routing.py) for a canary strategy, or
None without trafficRouting. Several routers in one block (Argo allows e.g. NGINX with SMI)
are combined: each gets the same intent and their read-backs must agree. A plugin other
than the built-in Gateway API one is looked up among the `rollouts.traffic_routers` entry
points (importlib.metadata): the entry point's name is the plugin name and it loads a
callable `(config: Mapping[str, Any], binding: Binding) -> Router`. A plugin nobody
registered gives a router whose `problems()` names the field, and which writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import entry_points
from typing import Any, Literal

from pydantic import ValidationError

from rollouts.models.rollout import CanaryStrategy, ValidRollout, parse_spec
from rollouts.models.traffic import RolloutTrafficRouting, not_run_yet
from rollouts.models.wire import rollout_owner_reference
from rollouts.planner.pingpong import stable_side
from rollouts.planner.routing import (
    ObjectKey,
    Observed,
    Router,
    RouteWrite,
    TrafficIntent,
)
from rollouts.traffic.alb import ALBRouter
from rollouts.traffic.ambassador import AmbassadorRouter
from rollouts.traffic.apisix import ApisixRouter
from rollouts.traffic.appmesh import AppMeshRouter
from rollouts.traffic.common import Binding, Problems, agreed
from rollouts.traffic.gatewayapi import GatewayAPIRouter
from rollouts.traffic.istio import IstioRouter
from rollouts.traffic.nginx import NginxRouter
from rollouts.traffic.smi import SMIRouter
from rollouts.traffic.traefik import TraefikRouter

ENTRY_POINT_GROUP = "rollouts.traffic_routers"
PLUGINS = "spec.strategy.canary.trafficRouting.plugins"

RouterFactory = Callable[[Mapping[str, Any], Binding], Router]

# trafficRouting fields (snake_case) and the router each one builds, in a fixed order.
_BUILT_IN: tuple[tuple[str, Callable[[Any, Binding], Router]], ...] = (
    ("istio", IstioRouter), ("nginx", NginxRouter), ("alb", ALBRouter), ("smi", SMIRouter),
    ("ambassador", AmbassadorRouter), ("app_mesh", AppMeshRouter),
    ("traefik", TraefikRouter), ("apisix", ApisixRouter))

__all__ = ["ENTRY_POINT_GROUP", "Binding", "build_router", "manifest_not_run",
           "manifest_problems", "rollout_router", "spec_problems"]


def rollout_router(rollout: ValidRollout, experiment_services: Iterable[str] = ()
                   ) -> Router | None:
    """The router of a parsed Rollout (the controller's `OperatorConfig.router_factory`):
    objects it creates are owned by the Rollout; with pingPong the Services are bound by
    the turn status.canary.stablePingPong records.

    `experiment_services`: the Services of the Rollout's Experiments (for its deletion:
    `finalize` removes destinations to them). Those status.canary.weights.additional shows
    are added: an Experiment already gone may have left its destination in the routes."""
    canary = rollout.spec.strategy.canary
    if canary is None:
        return None
    meta = rollout.metadata
    weights = rollout.status.canary.weights if rollout.status.canary else None
    shown = [d.service_name for d in (weights.additional or ()) if d.service_name] \
        if weights else []
    return build_router(canary, meta.namespace, meta.name,
                        rollout_owner_reference(meta.name, meta.uid),
                        stable_side(rollout.status),
                        tuple(dict.fromkeys([*experiment_services, *shown])))


def build_router(strategy: CanaryStrategy, namespace: str, rollout_name: str,
                 owner: Mapping[str, Any],
                 stable_ping_pong: Literal["ping", "pong"] = "ping",
                 experiment_services: tuple[str, ...] = ()) -> Router | None:
    """The router for a canary's trafficRouting; None when it has none.

    `owner` is the ownerReference put on objects the router creates; `stable_ping_pong`
    which of the pingPong Services is stable now (status.canary.stablePingPong);
    `experiment_services` the experiment templates' Services the routes may send weight to
    (removed by finalize).
    """
    routing = strategy.traffic_routing
    if routing is None:
        return None
    managed = tuple(r.name for r in routing.managed_routes or [])
    # ALB splits between ping and pong; the others between canaryService and stableService
    # when given beside pingPong (an ALB edge in front of a mesh), else ping and pong too.
    binding = Binding(namespace, rollout_name, strategy.canary_service or "",
                      strategy.stable_service or "", routing.max_traffic_weight, managed, owner,
                      experiment_services)
    turns = binding
    if strategy.ping_pong is not None:  # the two Services take turns being stable
        ping, pong = strategy.ping_pong.ping_service, strategy.ping_pong.pong_service
        stable, canary = (ping, pong) if stable_ping_pong == "ping" else (pong, ping)
        turns = Binding(namespace, rollout_name, canary, stable, routing.max_traffic_weight,
                        managed, owner, experiment_services)
        if not (strategy.canary_service and strategy.stable_service):
            binding = turns
    routers: list[Router] = [
        make(config, turns if field == "alb" else binding)
        for field, make in _BUILT_IN if (config := getattr(routing, field)) is not None]
    if routing.plugins is not None:
        if routing.plugins.gateway_api is not None:
            routers.append(GatewayAPIRouter(routing.plugins.gateway_api, binding))
        for name, config in routing.plugins.others().items():
            routers.append(_plugin(name, config, binding))
    return routers[0] if len(routers) == 1 else CombinedRouter(tuple(routers))


def spec_problems(routing: RolloutTrafficRouting) -> Problems:
    """Problems found from the spec alone (no cluster): plugins nobody registered."""
    if routing.plugins is None:
        return []
    return [(f'{PLUGINS}["{name}"]', _unknown(name)) for name in routing.plugins.others()
            if _registered(name) is None]


def manifest_problems(spec: Mapping[str, Any]) -> Problems:
    """`spec_problems` of a raw Rollout spec; empty when the spec is invalid (the model's
    own errors say why) or has no trafficRouting."""
    canary = _canary(spec)
    routing = None if canary is None else canary.traffic_routing
    return [] if routing is None else spec_problems(routing)


def manifest_not_run(spec: Mapping[str, Any]) -> Problems:
    """What a valid raw Rollout spec uses that the controller does not run yet."""
    canary = _canary(spec)
    return [] if canary is None else not_run_yet(canary)


def _canary(spec: Mapping[str, Any]) -> CanaryStrategy | None:
    try:
        return parse_spec(dict(spec)).strategy.canary
    except ValidationError:
        return None


def _registered(name: str) -> RouterFactory | None:
    found = entry_points(group=ENTRY_POINT_GROUP, name=name)
    for entry in found:
        factory: RouterFactory = entry.load()
        return factory
    return None


def _unknown(name: str) -> str:
    return (f'unknown traffic router plugin "{name}": no "{ENTRY_POINT_GROUP}" entry point '
            "of that name is installed")


def _plugin(name: str, config: Any, binding: Binding) -> Router:
    factory = _registered(name)
    if factory is None:
        return UnknownRouter(name, f'{PLUGINS}["{name}"]', _unknown(name))
    return factory(config if isinstance(config, Mapping) else {}, binding)


class UnknownRouter:
    """Stands for a router that cannot be built: reports why, writes nothing."""

    def __init__(self, name: str, field: str, message: str) -> None:
        self.name = name
        self.field = field
        self.message = message

    def objects(self, observed: Observed | None = None) -> tuple[ObjectKey, ...]:
        return ()

    def problems(self, observed: Observed) -> Problems:
        return [(self.field, self.message)]

    def writes(self, observed: Observed, intent: TrafficIntent) -> tuple[RouteWrite, ...]:
        return ()

    def verified_weight(self, observed: Observed) -> int | None:
        return None

    def extra_weight(self, observed: Observed, service: str) -> int | None:
        return 0

    def finalize(self, observed: Observed) -> tuple[RouteWrite, ...]:
        return ()


class CombinedRouter:
    """Several routers holding the same traffic (e.g. an NGINX edge in front of SMI)."""

    def __init__(self, routers: tuple[Router, ...]) -> None:
        self.routers = routers
        self.name = "+".join(r.name for r in routers)

    def objects(self, observed: Observed | None = None) -> tuple[ObjectKey, ...]:
        return tuple(dict.fromkeys(k for r in self.routers for k in r.objects(observed)))

    def problems(self, observed: Observed) -> Problems:
        return [p for r in self.routers for p in r.problems(observed)]

    def writes(self, observed: Observed, intent: TrafficIntent) -> tuple[RouteWrite, ...]:
        return tuple(w for r in self.routers for w in r.writes(observed, intent))

    def verified_weight(self, observed: Observed) -> int | None:
        return agreed(r.verified_weight(observed) for r in self.routers)

    def extra_weight(self, observed: Observed, service: str) -> int | None:
        return agreed(r.extra_weight(observed, service) for r in self.routers)

    def finalize(self, observed: Observed) -> tuple[RouteWrite, ...]:
        return tuple(w for r in self.routers for w in r.finalize(observed))
