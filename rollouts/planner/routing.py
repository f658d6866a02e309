"""The seam between the planner and traffic routers.

A router (one module per kind under `rollouts/traffic/`) is a pure object built from the
Rollout's validated `trafficRouting` spec. The observer reads the objects it names
(`Router.objects`) into `RouteSnapshot`s; the planner asks the router what to write for the
traffic it wants (`TrafficIntent`) and what weight the objects hold now. Routers never do
I/O: the executor applies the `RouteWrite`s they return as they are.

Writes to objects the controller does not own are JSON patches that touch only the fields
the router must own (backend weights, its own named routes, its own annotations) and carry
the observed `metadata.resourceVersion` as their first operation, so a stale write is a
409 Conflict (re-observe and plan again), never a blind overwrite of someone's change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from rollouts.models.rollout import CanaryStrategy
    from rollouts.models.traffic import RouteMatch, StringMatch

MatchKind = Literal["exact", "prefix", "regex"]


@dataclass(frozen=True)
class ObjectKey:
    """Which object a router reads or writes (always in the Rollout's namespace unless set)."""

    api_version: str
    kind: str
    name: str
    namespace: str


@dataclass(frozen=True)
class RouteSnapshot:
    """A route object as observed: the whole body (with metadata.resourceVersion)."""

    key: ObjectKey
    body: Mapping[str, Any]


# What observe hands the router: every key from `Router.objects()`, None when missing.
Observed = Mapping[ObjectKey, RouteSnapshot | None]


@dataclass(frozen=True)
class HeaderMatch:
    name: str
    value: str
    match: MatchKind = "exact"


@dataclass(frozen=True)
class HeaderRoute:
    """A managed route (setHeaderRoute): requests matching every header go to the canary."""

    name: str
    matches: tuple[HeaderMatch, ...]


@dataclass(frozen=True)
class RequestMatch:
    """One match of a mirror route; empty fields match anything."""

    method: str | None = None
    method_match: Literal["exact", "prefix", "regex"] = "exact"
    path: str | None = None
    path_match: Literal["exact", "prefix", "regex"] = "prefix"
    headers: tuple[HeaderMatch, ...] = ()


@dataclass(frozen=True)
class MirrorRoute:
    """A managed route (setMirrorRoute): matching requests are copied to the canary."""

    name: str
    percentage: int  # 0..100 of matching requests mirrored
    matches: tuple[RequestMatch, ...]


@dataclass(frozen=True)
class ExtraDestination:
    """A weighted destination besides the canary and the stable (Argo's WeightDestination):
    the Service of an experiment template with a `weight`, while its Experiment runs."""

    service: str
    weight: int


@dataclass(frozen=True)
class TrafficIntent:
    """The traffic the planner wants the router to hold.

    `canary_weight + stable_weight + sum(extra weights) == max_weight` (maxTrafficWeight,
    100 by default): an experiment's weight comes out of the stable's share.
    Managed routes are listed in the order of `trafficRouting.managedRoutes` (their
    precedence); a route not listed is removed. `retired` names Services of experiment
    templates that got (or may have got) weight earlier: a destination to one of them that
    is not in `extra` is removed.
    """

    canary_weight: int
    stable_weight: int
    max_weight: int = 100
    header_routes: tuple[HeaderRoute, ...] = ()
    mirror_routes: tuple[MirrorRoute, ...] = ()
    # Pod-template hashes of each side, for routers that select pods by label (Istio
    # DestinationRule subsets, App Mesh virtual nodes); None leaves the labels as they are.
    canary_hash: str | None = None
    stable_hash: str | None = None
    extra: tuple[ExtraDestination, ...] = ()
    retired: tuple[str, ...] = ()


@dataclass(frozen=True)
class RouteWrite:
    """One idempotent write, applied by the executor exactly as given.

    - "patch": an RFC 6902 JSON patch (`patch`) on an object the controller does not own;
      its first operation sets metadata.resourceVersion to the observed one (409 when stale).
    - "create": a complete manifest (`manifest`) of an object the controller owns (e.g. the
      NGINX `<ingress>-canary` Ingress), with the Rollout as controller owner.
    - "delete": remove an object the controller owns.
    """

    key: ObjectKey
    op: Literal["patch", "create", "delete"]
    patch: tuple[Mapping[str, Any], ...] = ()
    manifest: Mapping[str, Any] | None = None


class Router(Protocol):
    """One traffic router bound to one Rollout's spec. Pure: every method decides, none writes."""

    @property
    def name(self) -> str:
        """The router's kind as users write it ("istio", "nginx", "gatewayAPI", ...)."""
        ...

    def objects(self, observed: Observed | None = None) -> tuple[ObjectKey, ...]:
        """Every object the router reads (routes, ingresses, splits it may create).

        Most routers name their objects from the spec alone. A router whose objects name
        further ones (App Mesh: VirtualService -> its VirtualRouter) lists those once the
        first are in `observed`: the observer calls again until the list stops growing.
        """
        ...

    def problems(self, observed: Observed) -> list[tuple[str, str]]:
        """(spec field path, message) for a missing object or a route that names no
        canary/stable destination. Empty when the router can act."""
        ...

    def writes(self, observed: Observed, intent: TrafficIntent) -> tuple[RouteWrite, ...]:
        """The writes that make the objects hold `intent`; empty when they already do."""
        ...

    def verified_weight(self, observed: Observed) -> int | None:
        """The canary weight the objects hold now (None when they disagree or are missing)."""
        ...

    def extra_weight(self, observed: Observed, service: str) -> int | None:
        """The weight the objects give an extra destination's Service: 0 when none names
        it, None when they disagree or are missing. A router that cannot send weight to
        extra destinations (refused by validation) answers 0."""
        ...

    def finalize(self, observed: Observed) -> tuple[RouteWrite, ...]:
        """Writes for a Rollout being deleted: all traffic to stable, no managed route, no
        object of ours left behind."""
        ...


# --- from the Rollout's steps to the intent's managed routes -------------------------------


def managed_routes_at(strategy: CanaryStrategy, step_index: int
                      ) -> tuple[tuple[HeaderRoute, ...], tuple[MirrorRoute, ...]]:
    """The header and mirror routes in force once steps [0, step_index) have run.

    A setHeaderRoute / setMirrorRoute step sets its named route; one without `match` removes
    it. Routes come out in trafficRouting.managedRoutes order (their precedence). Past the
    last step (promotion) the caller holds no managed route, as after an abort.
    """
    routing = strategy.traffic_routing
    order = [r.name for r in (routing.managed_routes or [])] if routing else []
    headers: dict[str, HeaderRoute] = {}
    mirrors: dict[str, MirrorRoute] = {}
    for step in (strategy.steps or [])[:max(step_index, 0)]:
        if step.set_header_route is not None:
            route = step.set_header_route
            headers.pop(route.name, None)
            if route.match:
                headers[route.name] = HeaderRoute(route.name, tuple(
                    HeaderMatch(m.header_name, *_match(m.header_value)) for m in route.match))
        if step.set_mirror_route is not None:
            mirror = step.set_mirror_route
            mirrors.pop(mirror.name, None)
            if mirror.match:
                mirrors[mirror.name] = MirrorRoute(
                    mirror.name, 100 if mirror.percentage is None else mirror.percentage,
                    tuple(_request_match(m) for m in mirror.match))
    return (tuple(headers[n] for n in order if n in headers),
            tuple(mirrors[n] for n in order if n in mirrors))


def _match(value: StringMatch) -> tuple[str, MatchKind]:
    if value.exact is not None:
        return value.exact, "exact"
    if value.prefix is not None:
        return value.prefix, "prefix"
    return value.regex or "", "regex"


def _request_match(match: RouteMatch) -> RequestMatch:
    method: tuple[str | None, MatchKind] = _match(match.method) if match.method else (
        None, "exact")
    path: tuple[str | None, MatchKind] = _match(match.path) if match.path else (None, "prefix")
    return RequestMatch(method=method[0], method_match=method[1], path=path[0],
                        path_match=path[1], headers=tuple(
                            HeaderMatch(name, *_match(value))
                            for name, value in (match.headers or {}).items()))
