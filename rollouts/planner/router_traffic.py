"""The canary with a traffic router: weights are set on route objects, pods sized to serve.

Argo Rollouts semantics with `trafficRouting`:
- the canary ReplicaSet is scaled to the step's share of the replicas (or to the
  setCanaryScale in force), the stable stays at full size;
- the router's weight is raised only once the canary has the available pods to serve it
  (invariant 1); lowering it never waits;
- a weight is reached when the route objects verifiably hold it (read back from the
  objects, never assumed from what was written);
- on abort the weight goes to 0 and the managed routes go (an intent with none removes
  them) before the canary is scaled down (invariant 2): `off_canary` says when;
- experiment templates with a `weight` are extra destinations (`with_experiments`), their
  share taken from the stable's, never more than the canary leaves; destinations to the
  Services of ended experiments (`retired`) are removed (planner/experiment_traffic.py).

The router decides every write (`Router.writes`); this model only decides which weight to
ask for. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from rollouts.models.rollout import SetCanaryScale
from rollouts.models.workload import ReplicaProgressThreshold
from rollouts.planner.progress_threshold import required_pods
from rollouts.planner.routing import (
    ExtraDestination,
    HeaderRoute,
    MirrorRoute,
    ObjectKey,
    Router,
    RouteSnapshot,
    TrafficIntent,
)
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
    # Pod-template hashes of each side (Istio subsets, App Mesh virtual nodes select by them).
    canary_hash: str | None = None
    stable_hash: str | None = None
    # The managed routes in force (setHeaderRoute / setMirrorRoute steps passed).
    header_routes: tuple[HeaderRoute, ...] = ()
    mirror_routes: tuple[MirrorRoute, ...] = ()
    # minPodsPerReplicaSet: a canary that gets any traffic runs at least this many pods.
    min_pods: int = 1
    # dynamicStableScale: the stable shrinks to the share the routes give it (once they do),
    # and grows back before they give it more.
    dynamic_stable: bool = False
    # Pods the stable keeps under dynamicStableScale even when the routes give it nothing:
    # the stable Service selects it until the promotion re-points it.
    stable_floor: int = 0
    # replicaProgressThreshold: the canary pods that must be available to serve a weight.
    progress_threshold: ReplicaProgressThreshold | None = None

    # Experiment templates' Services the routes send weight to now, and those of every held
    # Experiment of the Rollout (destinations to them not in `extra` are removed).
    extra: tuple[ExtraDestination, ...] = ()
    retired: tuple[str, ...] = ()

    routes_traffic = True  # traffic leaves the canary before its pods do

    def with_experiments(self, extra: tuple[ExtraDestination, ...]) -> RouterTraffic:
        return replace(self, extra=extra)

    def intent(self, canary_weight: int) -> TrafficIntent:
        """What the routes should hold for `canary_weight`: the experiments' shares come out
        of the stable's, in template order, never more than the canary leaves. E.g. canary
        20, templates 5 and 5 of 100 -> stable 70; canary 95, templates 5 and 5 -> 5, 0,
        stable 0."""
        room = self.max_weight - canary_weight
        extra = []
        for destination in self.extra:
            weight = max(0, min(destination.weight, room))
            room -= weight
            extra.append(replace(destination, weight=weight))
        return TrafficIntent(canary_weight=canary_weight, stable_weight=room,
                             max_weight=self.max_weight,
                             header_routes=self.header_routes,
                             mirror_routes=self.mirror_routes,
                             canary_hash=self.canary_hash, stable_hash=self.stable_hash,
                             extra=tuple(extra), retired=self.retired)

    def with_managed_routes(self, headers: tuple[HeaderRoute, ...],
                            mirrors: tuple[MirrorRoute, ...]) -> RouterTraffic:
        return replace(self, header_routes=headers, mirror_routes=mirrors)

    def capped(self, weight: int) -> int:
        """A step weight out of maxTrafficWeight (past the last step: all of it)."""
        return max(0, min(weight, self.max_weight))

    def canary_pods(self, weight: int, scale: SetCanaryScale | None = None) -> int:
        """Canary pods for `weight`: its share of the replicas, rounded up, unless a
        setCanaryScale sets them. E.g. 10 replicas at 25 of 100 -> 3; setCanaryScale
        replicas 1 -> 1; setCanaryScale weight 50 -> 5."""
        if scale is not None and scale.replicas is not None:
            return scale.replicas
        if scale is not None and scale.weight is not None:
            pods = math.ceil(self.replicas * scale.weight / 100)
        else:  # no scale, or matchTrafficWeight: sized by the traffic weight
            pods = math.ceil(self.replicas * self.capped(weight) / self.max_weight)
        # E.g. minPodsPerReplicaSet 2, 10 replicas at 5 -> 2 rather than 1.
        return max(pods, self.min_pods) if pods > 0 else 0

    def stable_pods(self, weight: int) -> int:
        """Stable pods for the share a canary weight leaves it. E.g. 10 replicas, canary at
        25 of 100 -> 8; at 100 -> 0."""
        return math.ceil(self.replicas * (self.max_weight - self.capped(weight))
                         / self.max_weight)

    def pods(self, weight: int, canary: ReplicaSetView | None, stable: ReplicaSetView,
             scale: SetCanaryScale | None = None) -> tuple[int, int]:
        if not self.dynamic_stable:
            return self.canary_pods(weight, scale), self.replicas
        # Sized for the larger of the share the routes give it now and the one asked for:
        # it shrinks only after the routes moved traffic off it, grows before they move back.
        held = self.router.verified_weight(self.routes) or 0
        asked = 0 if self.without_pods(canary) else self.capped(weight)
        share = self.stable_pods(min(held, asked))
        return self.canary_pods(weight, scale), max(share, min(self.stable_floor, self.replicas))

    def without_pods(self, canary: ReplicaSetView | None) -> bool:
        """A revision in flight (not the stable one) with no pod available: traffic sent to
        it is lost, so it gets none (Argo Rollouts: no weight to a new ReplicaSet with no
        available replica). E.g. a release that replaces a canary held at 100: the routes
        go to 0 at once, before its Service is re-pointed (canary.py `_move_traffic`)."""
        return self.canary_hash != self.stable_hash and (
            canary is None or min(canary.available, canary.spec_replicas) == 0)

    def stable_serving(self, stable: ReplicaSetView | None, weight: int) -> bool:
        """The stable has the available pods for the share `weight` leaves it (always
        true without dynamicStableScale: the stable keeps all its pods)."""
        if not self.dynamic_stable:
            return True
        have = min(stable.available, stable.spec_replicas) if stable is not None else 0
        return have >= self.stable_pods(weight)

    def serving(self, canary: ReplicaSetView | None, weight: int,
                scale: SetCanaryScale | None = None) -> bool:
        """The canary has the available pods `weight` asks for."""
        wanted = required_pods(self.progress_threshold, self.canary_pods(weight, scale))
        return canary is not None and min(canary.available, canary.spec_replicas) >= wanted

    def target_weight(self, weight: int, canary: ReplicaSetView | None,
                      scale: SetCanaryScale | None = None,
                      stable: ReplicaSetView | None = None) -> int:
        """The weight to ask the router for now: `weight`, or while the side that would
        get more traffic cannot serve it yet, the weight the routes hold. The canary's
        weight is never raised early; it is lowered at once, unless dynamicStableScale left
        the stable too small for its share (then once the stable has grown back). A
        canary with no pod available gets 0 (`without_pods`)."""
        weight = self.capped(weight)
        held = self.router.verified_weight(self.routes) or 0
        if self.without_pods(canary):
            return 0  # lowered even while a dynamicStableScale stable is short: it has pods
        if weight < held:
            return weight if self.stable_serving(stable, weight) else held
        if weight == held or self.serving(canary, weight, scale):
            return weight
        return held

    def writes(self, weight: int, canary: ReplicaSetView | None, stable: ReplicaSetView,
               scale: SetCanaryScale | None = None) -> tuple[Action, ...]:
        intent = self.intent(self.target_weight(weight, canary, scale, stable))
        return tuple(ApplyRouteWrite(w) for w in self.router.writes(self.routes, intent))

    def reached(self, weight: int, canary: ReplicaSetView | None, stable: ReplicaSetView,
                scale: SetCanaryScale | None = None) -> bool:
        weight = self.capped(weight)
        return (self.router.verified_weight(self.routes) == weight
                and (weight == 0 or self.serving(canary, weight, scale)))

    def verified_weight(self, canary: ReplicaSetView | None,
                        stable: ReplicaSetView | None) -> int:
        return self.router.verified_weight(self.routes) or 0

    def off_canary(self, canary: ReplicaSetView | None) -> bool:
        """The routes read back weight 0 and no managed route (nothing left to write for
        all-stable): only then may the canary's pods go."""
        all_stable = TrafficIntent(canary_weight=0, stable_weight=self.max_weight,
                                   max_weight=self.max_weight, canary_hash=self.canary_hash,
                                   stable_hash=self.stable_hash, retired=self.retired)
        return (self.router.verified_weight(self.routes) == 0
                and not self.router.writes(self.routes, all_stable))

    def waiting(self, weight: int, canary: ReplicaSetView | None, stable: ReplicaSetView,
                scale: SetCanaryScale | None = None) -> str:
        if not self.serving(canary, weight, scale):
            wanted = self.canary_pods(weight, scale)
            have = min(canary.available, wanted) if canary else 0
            return waiting_for_pods(wanted, have)
        held = self.router.verified_weight(self.routes)
        shown = "unknown" if held is None else str(held)
        return (f"waiting for the {self.router.name} routes to hold {self.capped(weight)} "
                f"(now {shown})")

    def recheck_after(self, weight: int, canary: ReplicaSetView | None,
                      stable: ReplicaSetView, scale: SetCanaryScale | None = None
                      ) -> float | None:
        asked = self.target_weight(weight, canary, scale, stable)
        if self.router.verified_weight(self.routes) == asked and all(
                self.router.extra_weight(self.routes, d.service) == d.weight
                for d in self.intent(asked).extra):
            return None
        return self.recheck_seconds
