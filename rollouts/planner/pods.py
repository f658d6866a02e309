"""The pod-level part of a plan: role metadata, anti-affinity and restarts.

Applied to the plan the strategy made (`with_pod_level`), so the strategies stay unaware
of it: new ReplicaSets get their role's metadata and the anti-affinity rule in their pod
template, running pods get their role's metadata in place, and a due restart evicts its
next pod. `pods_needed` tells the observer whether a pass must list pods at all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from rollouts.models.rollout import ValidRollout
from rollouts.models.wire import format_time
from rollouts.planner import restart
from rollouts.planner.anti_affinity import with_anti_affinity
from rollouts.planner.pod_metadata import (
    NO_METADATA,
    metadata_actions,
    roles,
    with_role_metadata,
)
from rollouts.planner.pod_metadata import pods_needed as metadata_pods_needed
from rollouts.planner.status import StatusChanges
from rollouts.planner.types import (
    Action,
    CreateReplicaSet,
    DeleteReplicaSet,
    Event,
    Observed,
    Plan,
    ReplicaSetView,
    ScaleReplicaSet,
)


def pods_needed(rollout: ValidRollout, replica_sets: tuple[ReplicaSetView, ...],
                now: dt.datetime) -> bool:
    """Whether this pass must list the pods of the Rollout's ReplicaSets."""
    return (restart.pending(rollout.spec, rollout.status, now)
            or metadata_pods_needed(rollout.spec, rollout.status, replica_sets))


def _new_replica_set(rollout: ValidRollout, plan: Plan, action: CreateReplicaSet
                     ) -> CreateReplicaSet:
    spec, status = rollout.spec, plan.status
    want = roles(spec, status).get(action.pod_hash, NO_METADATA)
    manifest = with_role_metadata(action.manifest, want)
    strategy = spec.strategy.canary or spec.strategy.blue_green
    rule = strategy.anti_affinity if strategy is not None else None
    if rule is not None:
        template = manifest["spec"]["template"]
        pod_spec = with_anti_affinity(template.get("spec") or {}, rule, status.stable_rs,
                                      action.pod_hash)
        manifest["spec"] = {**manifest["spec"], "template": {**template, "spec": pod_spec}}
    return dataclasses.replace(action, manifest=manifest)


def with_pod_level(rollout: ValidRollout, observed: Observed, now: dt.datetime,
                   plan: Plan) -> Plan:
    """`plan` with the pod-level work added: new ReplicaSets decorated, evictions of a
    restart, role-metadata writes last (a conflict on them replans after the rest)."""
    actions: list[Action] = [
        _new_replica_set(rollout, plan, a) if isinstance(a, CreateReplicaSet) else a
        for a in plan.actions]
    decision = restart.plan_restart(rollout.spec, rollout.status, plan.status, observed, now)
    actions += decision.evict
    busy = frozenset(a.name for a in actions if isinstance(a, ScaleReplicaSet | DeleteReplicaSet))
    metadata, missing = metadata_actions(rollout.spec, rollout.template, plan.status,
                                         observed, busy)
    actions += metadata
    status, events = plan.status, list(plan.events)
    if decision.restarted_at is not None:
        status = StatusChanges(restarted_at=decision.restarted_at).applied_to(status)
        events.append(Event("Normal", "RolloutRestarted",
                            f"Every pod was created after {format_time(decision.restarted_at)}"))
    events += [Event("Normal", "PodEvicted", f"Evicted pod {e.name} (restartAt)")
               for e in decision.evict]
    waits = [w for w in (plan.requeue_after,
                         None if decision.wake_at is None
                         else max(0.0, (decision.wake_at - now).total_seconds()),
                         0.0 if missing or decision.missing_pods else None) if w is not None]
    return dataclasses.replace(plan, actions=tuple(actions), status=status,
                               events=tuple(events), requeue_after=min(waits, default=None))
