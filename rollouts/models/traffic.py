"""Traffic routing (`spec.strategy.canary.trafficRouting`), field-compatible with Argo Rollouts.

One block per router kind; the router modules under `rollouts/traffic/` turn a block into
the writes on the routing objects. Several routers may be given at once (as in Argo, e.g.
NGINX in front of SMI); each then holds the same weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field, model_validator

from rollouts.models.base import MAX_INT32, ApiModel

if TYPE_CHECKING:
    from rollouts.models.rollout import CanaryStrategy

# The plugin name Argo's Gateway API plugin is configured under; accepted as is.
GATEWAY_API_PLUGIN = "argoproj-labs/gatewayAPI"


def _exactly_one(model: ApiModel, *fields: str) -> None:
    given = [f for f in fields if getattr(model, f) is not None]
    if len(given) != 1:
        names = ", ".join(model.model_fields[f].alias or f for f in fields)
        raise ValueError(f"needs exactly one of {names}")


# --- managed routes (setHeaderRoute / setMirrorRoute) ---------------------------------------


class StringMatch(ApiModel):
    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _one(self) -> StringMatch:
        _exactly_one(self, "exact", "prefix", "regex")
        return self


class HeaderRoutingMatch(ApiModel):
    header_name: str = Field(min_length=1)
    header_value: StringMatch


class SetHeaderRoute(ApiModel):
    """Send requests whose headers match to the canary; without `match` the route is removed."""

    name: str = Field(min_length=1)
    match: list[HeaderRoutingMatch] | None = None


class RouteMatch(ApiModel):
    method: StringMatch | None = None
    path: StringMatch | None = None
    headers: dict[str, StringMatch] | None = None


class SetMirrorRoute(ApiModel):
    """Copy matching requests to the canary; without `match` the route is removed."""

    name: str = Field(min_length=1)
    match: list[RouteMatch] | None = None
    percentage: int | None = Field(default=None, ge=0, le=100)


class ManagedRoute(ApiModel):
    name: str = Field(min_length=1)


# --- Istio ------------------------------------------------------------------------------------


class IstioTLSRoute(ApiModel):
    port: int | None = Field(default=None, ge=1, le=65535)
    sni_hosts: list[str] | None = None


class IstioTCPRoute(ApiModel):
    port: int | None = Field(default=None, ge=1, le=65535)


class IstioVirtualService(ApiModel):
    name: str = Field(min_length=1)
    routes: list[str] | None = None
    tls_routes: list[IstioTLSRoute] | None = None
    tcp_routes: list[IstioTCPRoute] | None = None


class IstioDestinationRule(ApiModel):
    name: str = Field(min_length=1)
    canary_subset_name: str = Field(min_length=1)
    stable_subset_name: str = Field(min_length=1)


class IstioTrafficRouting(ApiModel):
    virtual_service: IstioVirtualService | None = None
    virtual_services: list[IstioVirtualService] | None = Field(default=None, min_length=1)
    destination_rule: IstioDestinationRule | None = None

    @model_validator(mode="after")
    def _one(self) -> IstioTrafficRouting:
        _exactly_one(self, "virtual_service", "virtual_services")
        return self

    def all_virtual_services(self) -> list[tuple[str, IstioVirtualService]]:
        """(spec field, virtual service) for either form."""
        if self.virtual_service is not None:
            return [("virtualService", self.virtual_service)]
        return [(f"virtualServices[{i}]", vs) for i, vs in enumerate(self.virtual_services or [])]


# --- ingress controllers --------------------------------------------------------------------


class NginxTrafficRouting(ApiModel):
    annotation_prefix: str = "nginx.ingress.kubernetes.io"
    stable_ingress: str | None = None
    stable_ingresses: list[str] | None = Field(default=None, min_length=1)
    additional_ingress_annotations: dict[str, str] | None = None
    canary_ingress_annotations: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one(self) -> NginxTrafficRouting:
        _exactly_one(self, "stable_ingress", "stable_ingresses")
        return self

    def ingresses(self) -> list[tuple[str, str]]:
        if self.stable_ingress is not None:
            return [("stableIngress", self.stable_ingress)]
        return [(f"stableIngresses[{i}]", n) for i, n in enumerate(self.stable_ingresses or [])]


class StickinessConfig(ApiModel):
    enabled: bool
    duration_seconds: int = Field(ge=1, le=604800)


class ALBTrafficRouting(ApiModel):
    ingress: str | None = None
    ingresses: list[str] | None = Field(default=None, min_length=1)
    service_port: int = Field(ge=1, le=65535)
    root_service: str | None = None
    annotation_prefix: str = "alb.ingress.kubernetes.io"
    stickiness_config: StickinessConfig | None = None

    @model_validator(mode="after")
    def _one(self) -> ALBTrafficRouting:
        _exactly_one(self, "ingress", "ingresses")
        return self

    def all_ingresses(self) -> list[tuple[str, str]]:
        if self.ingress is not None:
            return [("ingress", self.ingress)]
        return [(f"ingresses[{i}]", n) for i, n in enumerate(self.ingresses or [])]


# --- service meshes and others --------------------------------------------------------------


class SMITrafficRouting(ApiModel):
    root_service: str | None = None
    traffic_split_name: str | None = None


class TraefikTrafficRouting(ApiModel):
    weighted_traefik_service_name: str = Field(min_length=1)


class ApisixRoute(ApiModel):
    name: str = Field(min_length=1)
    rules: list[str] | None = None


class ApisixTrafficRouting(ApiModel):
    route: ApisixRoute


class AmbassadorTrafficRouting(ApiModel):
    mappings: list[str] = Field(min_length=1)


class AppMeshVirtualService(ApiModel):
    name: str = Field(min_length=1)
    routes: list[str] | None = None


class AppMeshVirtualNodeReference(ApiModel):
    name: str = Field(min_length=1)


class AppMeshVirtualNodeGroup(ApiModel):
    canary_virtual_node_ref: AppMeshVirtualNodeReference
    stable_virtual_node_ref: AppMeshVirtualNodeReference


class AppMeshTrafficRouting(ApiModel):
    virtual_service: AppMeshVirtualService
    virtual_node_group: AppMeshVirtualNodeGroup


# --- Gateway API (Argo's plugin form) -------------------------------------------------------


class GatewayAPIRoute(ApiModel):
    name: str = Field(min_length=1)
    use_header_routes: bool = False


class GatewayAPIConfig(ApiModel):
    """`plugins["argoproj-labs/gatewayAPI"]`: HTTPRoutes / GRPCRoutes / TCPRoutes to weigh."""

    http_route: str | None = None
    http_routes: list[GatewayAPIRoute] | None = None
    grpc_route: str | None = None
    grpc_routes: list[GatewayAPIRoute] | None = None
    tcp_route: str | None = None
    tcp_routes: list[GatewayAPIRoute] | None = None
    namespace: str | None = None
    # Argo's plugin keeps its managed rules in this ConfigMap; we mark rules by name instead.
    config_map: str | None = None

    @model_validator(mode="after")
    def _some_route(self) -> GatewayAPIConfig:
        if not any((self.http_route, self.http_routes, self.grpc_route, self.grpc_routes,
                    self.tcp_route, self.tcp_routes)):
            raise ValueError("needs one of httpRoute, httpRoutes, grpcRoute, grpcRoutes, "
                             "tcpRoute, tcpRoutes")
        return self


class TrafficPlugins(ApiModel):
    """Argo's plugin map. The Gateway API plugin is built in; any other name must be a router
    registered under the `rollouts.traffic_routers` entry-point group (checked by the factory)."""

    model_config = ConfigDict(extra="allow")

    gateway_api: GatewayAPIConfig | None = Field(default=None, alias=GATEWAY_API_PLUGIN)

    def others(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


# --- the block --------------------------------------------------------------------------------


class RolloutTrafficRouting(ApiModel):
    istio: IstioTrafficRouting | None = None
    nginx: NginxTrafficRouting | None = None
    alb: ALBTrafficRouting | None = None
    smi: SMITrafficRouting | None = None
    ambassador: AmbassadorTrafficRouting | None = None
    app_mesh: AppMeshTrafficRouting | None = None
    traefik: TraefikTrafficRouting | None = None
    apisix: ApisixTrafficRouting | None = None
    plugins: TrafficPlugins | None = None
    managed_routes: list[ManagedRoute] | None = None
    # What setWeight values are out of (weights written are canary + stable = this).
    max_traffic_weight: int = Field(default=100, ge=1, le=MAX_INT32)

    @model_validator(mode="after")
    def _some_router(self) -> RolloutTrafficRouting:
        if not self.routers():
            raise ValueError("needs at least one router: istio, nginx, alb, smi, ambassador, "
                             "appMesh, traefik, apisix or plugins")
        names = [r.name for r in self.managed_routes or []]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"managedRoutes lists {', '.join(duplicated)} more than once")
        return self

    def routers(self) -> list[str]:
        """The router kinds given, as users write them (plugins by their plugin name)."""
        kinds = [alias for field, alias in (
            ("istio", "istio"), ("nginx", "nginx"), ("alb", "alb"), ("smi", "smi"),
            ("ambassador", "ambassador"), ("app_mesh", "appMesh"), ("traefik", "traefik"),
            ("apisix", "apisix")) if getattr(self, field) is not None]
        if self.plugins is not None:
            if self.plugins.gateway_api is not None:
                kinds.append(GATEWAY_API_PLUGIN)
            kinds += list(self.plugins.others())
        return kinds


class PingPongSpec(ApiModel):
    """Ping-pong (ALB, Istio): two Services that take turns being stable, instead of
    canaryService / stableService."""

    ping_service: str = Field(min_length=1)
    pong_service: str = Field(min_length=1)

    @model_validator(mode="after")
    def _services_differ(self) -> PingPongSpec:
        if self.ping_service == self.pong_service:
            raise ValueError("pingService and pongService must be different Services")
        return self


class PodMetadata(ApiModel):
    """canaryMetadata / stableMetadata (blue-green: activeMetadata / previewMetadata): labels
    and annotations put on the pods of each role, changed in place when a revision changes role
    (rollouts/planner/pod_metadata.py)."""

    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


# --- what this version accepts but does not run yet ------------------------------------

# Why a Rollout using these is refused by the controller (and only warned about by lint):
# the reconcile loop does not run them yet. Delete a rule once it does.
NOT_RUN_YET = ("accepted by the API, lint and convert, but this controller version does not "
               "run it yet: the Rollout is refused (InvalidSpec) rather than run with its "
               "{what} ignored; see docs/api.md#traffic-routing")


def not_run_yet(canary: CanaryStrategy) -> list[tuple[str, str]]:
    """(field path, message) for every field of a canary that the controller would ignore."""
    base = "spec.strategy.canary"
    found = []
    fields: tuple[tuple[str, object], ...] = ()  # every accepted canary field runs today
    for field, value in fields:
        if value is not None:
            found.append((f"{base}.{field}", NOT_RUN_YET.format(what=field)))
    return found


# --- rules across fields --------------------------------------------------------------------

# Routers whose objects can express a header route / a mirror route (plugins registered by
# third parties decide for themselves, through their `problems`).
HEADER_ROUTERS = frozenset({"istio", "nginx", "alb", "apisix", GATEWAY_API_PLUGIN})
MIRROR_ROUTERS = frozenset({"istio", GATEWAY_API_PLUGIN})
BUILT_IN_ROUTERS = frozenset({"istio", "nginx", "alb", "smi", "ambassador", "appMesh",
                              "traefik", "apisix", GATEWAY_API_PLUGIN})


def traffic_errors(canary: CanaryStrategy) -> list[tuple[str, str]]:
    """(field path, message) for the traffic-routing rules that span fields of a canary."""
    base = "spec.strategy.canary"
    routing = canary.traffic_routing
    errors: list[tuple[str, str]] = []
    if routing is None:
        for field, given in (("dynamicStableScale", canary.dynamic_stable_scale),
                             ("minPodsPerReplicaSet", canary.min_pods_per_replica_set),
                             ("scaleDownDelayRevisionLimit",
                              canary.scale_down_delay_revision_limit),
                             ("pingPong", canary.ping_pong)):
            if given:
                errors.append((f"{base}.{field}", f"{field} requires trafficRouting"))
    else:
        errors += _service_errors(canary, routing)
    if canary.dynamic_stable_scale and "scale_down_delay_seconds" in canary.model_fields_set:
        errors.append((f"{base}.scaleDownDelaySeconds",
                       "scaleDownDelaySeconds cannot be used with dynamicStableScale"))
    managed = [r.name for r in (routing.managed_routes or [])] if routing else []
    max_weight = routing.max_traffic_weight if routing else 100
    kinds = set(routing.routers()) if routing else set()
    custom = bool(kinds - BUILT_IN_ROUTERS)
    for i, step in enumerate(canary.steps or []):
        path = f"{base}.steps[{i}]"
        if step.set_weight is not None and step.set_weight > max_weight:
            errors.append((f"{path}.setWeight", f"setWeight {step.set_weight} is above "
                           f"trafficRouting.maxTrafficWeight ({max_weight})"))
        if step.set_canary_scale is not None and routing is None:
            errors.append((f"{path}.setCanaryScale",
                           "setCanaryScale requires trafficRouting (as in Argo Rollouts); "
                           "without a traffic router the canary's weight is its share of pods"))
        for field, route, able in (("setHeaderRoute", step.set_header_route, HEADER_ROUTERS),
                                   ("setMirrorRoute", step.set_mirror_route, MIRROR_ROUTERS)):
            if route is None:
                continue
            if routing is None:
                errors.append((f"{path}.{field}", f"{field} requires trafficRouting"))
            elif route.name not in managed:
                errors.append((f"{path}.{field}.name", f'route "{route.name}" is not listed in '
                               f"{base}.trafficRouting.managedRoutes"))
            elif not (kinds & able) and not custom:
                errors.append((f"{path}.{field}", f"{field} needs a router that supports it "
                               f"({', '.join(sorted(able))}); this Rollout uses "
                               f"{', '.join(sorted(kinds))}"))
        if step.set_header_route is not None and routing is not None:
            errors += _header_limits(f"{path}.setHeaderRoute", step.set_header_route, routing)
    return errors


def _header_limits(path: str, route: SetHeaderRoute, routing: RolloutTrafficRouting
                   ) -> list[tuple[str, str]]:
    """What the ingress routers' header canaries cannot express."""
    matches = route.match or []
    errors = []
    if routing.nginx is not None and len(matches) > 1:
        errors.append((f"{path}.match", "nginx has one header canary per Ingress: give one "
                       "match"))
    for i, match in enumerate(matches):
        if routing.alb is not None and match.header_value.regex is not None:
            errors.append((f"{path}.match[{i}].headerValue.regex", "alb matches headers "
                           "exactly or by prefix (with * and ? wildcards), not by regex"))
    return errors


def _service_errors(canary: CanaryStrategy, routing: RolloutTrafficRouting) -> list[
        tuple[str, str]]:
    base = "spec.strategy.canary"
    if canary.ping_pong is not None:
        if routing.alb is None and routing.istio is None:
            return [(f"{base}.pingPong", "pingPong needs the alb router (as in Argo Rollouts) "
                     "or istio (an extension of this controller); this Rollout uses "
                     + ", ".join(routing.routers()))]
        if routing.alb is not None and not (routing.alb.root_service or canary.stable_service):
            # The Ingress's action backend must not change with the turns of ping and pong.
            return [(f"{base}.trafficRouting.alb.rootService", "rootService is required "
                     "with pingPong: the Ingress routes to it on port use-annotation")]
        return []
    if routing.istio is not None and routing.istio.destination_rule is not None and len(
            routing.routers()) == 1:
        return []  # subset-level split: the subsets, not Services, tell canary from stable
    return [(f"{base}.{field}", f"{field} is required with trafficRouting")
            for field, value in (("canaryService", canary.canary_service),
                                 ("stableService", canary.stable_service)) if not value]
