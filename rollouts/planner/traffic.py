"""Traffic models: what a canary weight means for pods and routes, and what holds now.

A `TrafficModel` is pure. For a weight it decides the pods each side needs next and the
writes (route changes) that move traffic there; it reads back the weight the cluster
verifiably serves. The canary step handlers only talk to this seam, so a router-backed model
(weights set on an Ingress / VirtualService / HTTPRoute) drops in beside the pod-ratio one.

`PodRatioTraffic` is the canary without a router: every Service that selects the app spreads
requests over ready endpoints, so a revision's share of traffic is its share of available
pods. A weight is therefore reached only when the canary has the available pods that weight
needs and the stable has shed the pods it no longer needs (invariant 1 holds by
construction: the reported weight is computed from available pods, never from desired
counts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from rollouts.models.base import resolve_int_or_percent
from rollouts.models.rollout import CanaryStrategy, SetCanaryScale
from rollouts.planner.routing import HeaderRoute, MirrorRoute
from rollouts.planner.types import Action, ReplicaSetView


class TrafficModel(Protocol):
    """`weight` is the canary weight in force (out of the model's maximum, 100 unless a
    router says otherwise); `scale` the setCanaryScale in force, if any."""

    # Whether traffic is routed apart from the pods (a router): the canary's pods may then
    # outlive its traffic, and scale-down delays apply once the traffic has left.
    routes_traffic: bool

    def with_managed_routes(self, headers: tuple[HeaderRoute, ...],
                            mirrors: tuple[MirrorRoute, ...]) -> TrafficModel:
        """The same model holding these managed routes (setHeaderRoute / setMirrorRoute
        steps in force) beside the weight."""
        ...

    def pods(self, weight: int, canary: ReplicaSetView | None, stable: ReplicaSetView,
             scale: SetCanaryScale | None = None) -> tuple[int, int]:
        """The next (canary, stable) spec.replicas on the way to `weight`."""
        ...

    def writes(self, weight: int, canary: ReplicaSetView | None, stable: ReplicaSetView,
               scale: SetCanaryScale | None = None) -> tuple[Action, ...]:
        """The writes that move the traffic layer toward `weight` as far as the pods allow
        (none when it holds it)."""
        ...

    def reached(self, weight: int, canary: ReplicaSetView | None, stable: ReplicaSetView,
                scale: SetCanaryScale | None = None) -> bool:
        """Traffic is verifiably at `weight`, served by available pods."""
        ...

    def verified_weight(self, canary: ReplicaSetView | None,
                        stable: ReplicaSetView | None) -> int:
        """The canary's share of traffic now, as the cluster shows it."""
        ...

    def off_canary(self, canary: ReplicaSetView | None) -> bool:
        """No traffic is sent to the canary other than through its pods: scaling them
        down is safe once the stable can carry everything (stable first, invariant 2)."""
        ...

    def waiting(self, weight: int, canary: ReplicaSetView | None, stable: ReplicaSetView,
                scale: SetCanaryScale | None = None) -> str:
        """What `weight` still waits for, for status.message."""
        ...

    def recheck_after(self, weight: int, canary: ReplicaSetView | None,
                      stable: ReplicaSetView, scale: SetCanaryScale | None = None
                      ) -> float | None:
        """Seconds after which to read the traffic layer back while it does not show what
        was asked of it and nothing watched would wake the Rollout; None: no need."""
        ...


def replica_targets(replicas: int, weight: int) -> tuple[int, int]:
    """(canary, stable) pod counts that approximate `weight` percent for the canary.

    While the weight is between 0 and 100 exclusive, both sides keep at least one pod, so a
    small Rollout runs one pod over its replica count rather than jumping to 0% or 100%.
    E.g. 4 replicas at 25% -> (1, 3); 10 at 33% -> (4, 6); 1 at 20% -> (1, 1).
    """
    if replicas == 0:
        return 0, 0
    if weight <= 0:
        return 0, replicas
    if weight >= 100:
        return replicas, 0
    canary = max(1, math.ceil(replicas * weight / 100))
    stable = max(1, replicas - canary)
    return canary, stable


def with_stable_floor(target: tuple[int, int], floor: int) -> tuple[int, int]:
    """`target` with the stable keeping at least `floor` pods (never more than it has to
    serve: a Rollout of 0 replicas keeps none).

    E.g. 4 replicas at weight 100 -> (4, 0); with a floor of 1 -> (4, 1).
    """
    canary, stable = target
    return canary, max(stable, min(floor, canary + stable))


def rolling_counts(
    replicas: int,
    strategy: CanaryStrategy,
    canary: ReplicaSetView | None,
    stable: ReplicaSetView,
    target: tuple[int, int],
    stable_floor: int = 0,
) -> tuple[int, int]:
    """The next (canary, stable) spec counts on the way to `target`.

    The canary grows first, within maxSurge; the stable shrinks only while enough pods stay
    available (maxUnavailable), counting only pods that are available right now.
    E.g. 4 replicas, maxSurge 25% (1), maxUnavailable 25% (1), stable 4/4 available, no
    canary, target (2, 2): the canary may grow to 5 - 4 = 1 -> 1, and the stable may drop to
    4 - 1 = 3 available pods -> (1, 3); once that canary pod is available -> (2, 2).

    `stable_floor`: pods the stable keeps whatever the target (see `with_stable_floor`);
    they fit in maxSurge when there is one, else they are one pod over it. E.g. 4 replicas,
    maxSurge 0, target (4, 0), floor 1: at most 5 pods, ending at (4, 1).
    """
    canary_target, stable_target = with_stable_floor(target, stable_floor)
    surge = resolve_int_or_percent(strategy.max_surge, replicas, round_up=True)
    unavailable = resolve_int_or_percent(strategy.max_unavailable, replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # as Deployments do: something has to give
    canary_spec = canary.spec_replicas if canary else 0
    canary_available = min(canary.available, canary_spec) if canary else 0
    stable_spec = stable.spec_replicas

    held = stable_target - target[1]
    max_total = max(replicas, sum(target)) + max(surge, held)
    if canary_spec < canary_target:
        canary_next = min(canary_target, max(canary_spec, max_total - stable_spec))
    else:
        canary_next = canary_target

    min_available = max(0, min(replicas, canary_target + stable_target) - unavailable)
    if stable_spec > stable_target:
        # A ReplicaSet removes unavailable pods first, so keeping `needed` in spec keeps
        # `needed` available pods (or all there are).
        needed = max(0, min_available - canary_available)
        stable_next = max(stable_target, min(stable_spec, needed))
    else:
        stable_next = min(stable_target, max(stable_spec, max_total - canary_next))
    return canary_next, stable_next


def split_done(canary: ReplicaSetView | None, stable: ReplicaSetView,
               target: tuple[int, int]) -> bool:
    """The observed pods match the target split, and all target pods are available.

    E.g. target (1, 3): canary 1/1 available and stable 3 pods, all available -> True; the
    stable still running a 4th (terminating) pod -> False.
    """
    canary_target, stable_target = target
    return at_size(canary, canary_target) and at_size(stable, stable_target)


def at_size(rs: ReplicaSetView | None, pods: int) -> bool:
    """The ReplicaSet is sized for `pods`, runs exactly that many, all available (none
    counts as 0). E.g. spec 2, 2 pods, 2 available -> True; spec 2, 3 pods (one going)
    -> False; no ReplicaSet for 0 pods -> True."""
    if rs is None:
        return pods == 0
    return rs.spec_replicas == pods and rs.replicas == pods and rs.available >= pods


def traffic_share(canary: ReplicaSetView | None, stable: ReplicaSetView | None) -> int:
    """Percent of available pods that belong to the canary: its real share of traffic.

    E.g. canary 1 available, stable 3 available -> 25; nothing available -> 0.
    """
    canary_available = canary.available if canary else 0
    stable_available = stable.available if stable else 0
    total = canary_available + stable_available
    return 0 if total == 0 else round(100 * canary_available / total)


@dataclass(frozen=True)
class PodRatioTraffic:
    """The canary without a traffic router: weight = the canary's share of available pods.
    (setCanaryScale needs a router and is refused before planning.)

    `stable_floor`: pods the stable keeps even at weight 100. The stable Service selects the
    stable revision until the promotion re-points it, so its last pod stays until then (one
    pod over the replica count, as a small Rollout runs at any weight between 0 and 100).
    """

    replicas: int
    strategy: CanaryStrategy
    stable_floor: int = 0

    routes_traffic = False

    def targets(self, weight: int) -> tuple[int, int]:
        """The (canary, stable) pods `weight` needs, the stable's floor included."""
        return with_stable_floor(replica_targets(self.replicas, weight), self.stable_floor)

    def with_managed_routes(self, headers: tuple[HeaderRoute, ...],
                            mirrors: tuple[MirrorRoute, ...]) -> PodRatioTraffic:
        return self  # managed routes need a router (refused before planning without one)

    def pods(self, weight: int, canary: ReplicaSetView | None, stable: ReplicaSetView,
             scale: SetCanaryScale | None = None) -> tuple[int, int]:
        return rolling_counts(self.replicas, self.strategy, canary, stable,
                              replica_targets(self.replicas, weight), self.stable_floor)

    def writes(self, weight: int, canary: ReplicaSetView | None, stable: ReplicaSetView,
               scale: SetCanaryScale | None = None) -> tuple[Action, ...]:
        return ()  # the pods are the traffic split

    def reached(self, weight: int, canary: ReplicaSetView | None, stable: ReplicaSetView,
                scale: SetCanaryScale | None = None) -> bool:
        return split_done(canary, stable, self.targets(weight))

    def verified_weight(self, canary: ReplicaSetView | None,
                        stable: ReplicaSetView | None) -> int:
        return traffic_share(canary, stable)

    def off_canary(self, canary: ReplicaSetView | None) -> bool:
        return True  # its traffic is its pods: scaling them down is what moves it

    def waiting(self, weight: int, canary: ReplicaSetView | None, stable: ReplicaSetView,
                scale: SetCanaryScale | None = None) -> str:
        wanted = replica_targets(self.replicas, weight)[0]
        have = min(canary.available, wanted) if canary else 0
        return waiting_for_pods(wanted, have)

    def recheck_after(self, weight: int, canary: ReplicaSetView | None,
                      stable: ReplicaSetView, scale: SetCanaryScale | None = None
                      ) -> float | None:
        return None  # ReplicaSets are watched: their changes wake the Rollout


def waiting_for_pods(wanted: int, have: int) -> str:
    """The message of a step waiting for canary pods (e.g. "waiting for 1 canary pod
    available (have 0)")."""
    return f"waiting for {wanted} canary {'pod' if wanted == 1 else 'pods'} available (have {have})"
