"""spec.restartAt: replace every pod created before that moment, one at a time.

As in Argo Rollouts: a restart does not make a new revision and goes through no steps.
Once `now` reaches restartAt, the pods of the Rollout's ReplicaSets that were created before
it are evicted one by one (stable revision first, then the revision being rolled out, then
older ones, oldest first), one pod per pass: an eviction waits until no pod of that
ReplicaSet is terminating and fewer of its pods are unavailable than maxUnavailable allows
(at least one, or a blue-green Rollout, whose default is 0, could never restart); with the
default of one that means the ReplicaSet is fully available again. The ReplicaSet controller
replaces each evicted pod. When no pod is older than restartAt and the replacements are
available, status.restartedAt records it. A new revision during a restart cancels it (its
pods are new anyway), as in Argo.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from rollouts.models.base import resolve_int_or_percent
from rollouts.models.rollout import RolloutSpec, RolloutStatus
from rollouts.planner.types import EvictPod, Observed, PodView, ReplicaSetView

# Pods are not watched: while a restart runs, look again this often (an eviction refused
# by a PodDisruptionBudget changes nothing that would wake the Rollout).
RESTART_RECHECK_SECONDS = 5.0


@dataclass(frozen=True)
class RestartDecision:
    evict: tuple[EvictPod, ...] = ()
    # The restartedAt to record (None: leave status.restartedAt as it is).
    restarted_at: dt.datetime | None = None
    wake_at: dt.datetime | None = None
    # Pods were needed but not listed on this pass.
    missing_pods: bool = False


def pending(spec: RolloutSpec, status: RolloutStatus, now: dt.datetime) -> bool:
    """Whether a restart is due and not yet recorded as done."""
    at = spec.restart_at
    if at is None or now < at:
        return False
    return status.restarted_at is None or status.restarted_at < at


def max_unavailable(spec: RolloutSpec) -> int:
    """Pods that may be down at once during a restart (at least 1).

    Example: replicas 4, canary maxUnavailable 25% -> 1; blue-green (default 0) -> 1.
    """
    strategy = spec.strategy.canary or spec.strategy.blue_green
    value = strategy.max_unavailable if strategy is not None else 0
    return max(1, resolve_int_or_percent(value, spec.replicas, round_up=False))


def restart_order(replica_sets: tuple[ReplicaSetView, ...], stable: str | None,
                  desired: str | None) -> list[ReplicaSetView]:
    """Stable first, then the desired revision, then the others, oldest revision first."""
    def rank(rs: ReplicaSetView) -> tuple[int, int]:
        first = 0 if rs.pod_hash == stable else 1 if rs.pod_hash == desired else 2
        return first, rs.revision
    return sorted(replica_sets, key=rank)


def _down(rs: ReplicaSetView, pods: list[PodView]) -> int:
    """Pods of `rs` not serving: by its status, or by its pods when they say more (the
    ReplicaSet's status lags an eviction: the evicted pod is gone from the list at once,
    while status.availableReplicas still counts it until the ReplicaSet controller writes).

    Example: spec 3, status available 3, pods listed: 2 ready + 1 starting -> 1.
    """
    serving = sum(1 for p in pods if p.ready and not p.deleting)
    return max(0, rs.spec_replicas - rs.available, rs.spec_replicas - serving)


def _stale(pod: PodView, at: dt.datetime) -> bool:
    return not pod.deleting and pod.created is not None and pod.created < at


def plan_restart(spec: RolloutSpec, before: RolloutStatus, after: RolloutStatus,
                 observed: Observed, now: dt.datetime) -> RestartDecision:
    """What a restart does on this pass. `before` is the status as read, `after` the one
    this pass writes (a revision change between them cancels the restart)."""
    at = spec.restart_at
    if at is None:
        return RestartDecision()
    if now < at:
        done = after.restarted_at is not None and after.restarted_at >= at
        return RestartDecision() if done else RestartDecision(wake_at=at)
    if not pending(spec, after, now):
        return RestartDecision()
    if before.observed_pod_hash is not None and (
            before.observed_pod_hash != after.observed_pod_hash):
        return RestartDecision(restarted_at=at)
    recheck = now + dt.timedelta(seconds=RESTART_RECHECK_SECONDS)
    if observed.pods is None:
        return RestartDecision(missing_pods=True, wake_at=recheck)
    for rs in restart_order(observed.replica_sets, after.stable_rs, after.current_pod_hash):
        pods = [p for p in observed.pods if p.pod_hash == rs.pod_hash]
        stale = sorted((p for p in pods if _stale(p, at)), key=lambda p: (p.created, p.name))
        if not stale:
            continue
        if any(p.deleting for p in pods) or _down(rs, pods) >= max_unavailable(spec):
            return RestartDecision(wake_at=recheck)  # wait for the replacement
        victim = stale[0]
        return RestartDecision(evict=(EvictPod(victim.name, victim.uid),), wake_at=recheck)
    if any(p.deleting for p in observed.pods) or any(
            _down(rs, [p for p in observed.pods if p.pod_hash == rs.pod_hash])
            for rs in observed.replica_sets):
        return RestartDecision(wake_at=recheck)  # the last replacements are starting
    return RestartDecision(restarted_at=at)
