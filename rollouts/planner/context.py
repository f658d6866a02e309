"""The working state of one planning pass, and helpers shared by both strategies.

A `Draft` is built and thrown away inside a single `plan()` call: it is the planner's scratch
pad, never shared and never kept.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from rollouts.models.rollout import LabelSelector, Phase, RolloutSpec, RolloutStatus, ValidRollout
from rollouts.models.wire import POD_TEMPLATE_HASH_LABEL, whole_seconds
from rollouts.models.workload import StepPluginStatus
from rollouts.planner.manifests import replica_set_manifest, replica_set_name
from rollouts.planner.status import StatusChanges
from rollouts.planner.types import (
    Action,
    CreateReplicaSet,
    DeleteReplicaSet,
    Observed,
    PinService,
    ReplicaSetView,
    ScaleReplicaSet,
)


@dataclass(frozen=True)
class Context:
    rollout: ValidRollout
    spec: RolloutSpec
    observed: Observed
    now: dt.datetime
    desired_hash: str
    # The status as it stands after the "new revision" reset, before this pass's decisions.
    status: RolloutStatus

    @property
    def replicas(self) -> int:
        return self.spec.replicas

    def rs(self, pod_hash: str | None) -> ReplicaSetView | None:
        if pod_hash is None:
            return None
        return next((r for r in self.observed.replica_sets if r.pod_hash == pod_hash), None)

    def next_revision(self) -> int:
        return max((r.revision for r in self.observed.replica_sets), default=0) + 1

    def with_status(self, status: RolloutStatus) -> Context:
        return Context(self.rollout, self.spec, self.observed, self.now, self.desired_hash,
                       status)


@dataclass
class Draft:
    """Decisions of one pass: actions in order, status changes, phase, wake-up times."""

    phase: Phase = "Progressing"
    message: str = ""
    actions: list[Action] = field(default_factory=list)
    changes: StatusChanges = field(default_factory=StatusChanges)
    wake_at: list[dt.datetime] = field(default_factory=list)
    # Set when this pass finds a reason to abort (failed analysis); plan() then makes the
    # abort transition, so the same pass already moves traffic to stable.
    abort_message: str | None = None
    # The step waits on something with a deadline of its own (an Experiment): the Rollout's
    # progress deadline does not run meanwhile (as in Argo Rollouts).
    hold_deadline: bool = False
    # status.canary.stepPluginStatuses as this pass leaves them (None: untouched), kept by
    # planner/steps/plugin.py.
    plugin_statuses: list[StepPluginStatus] | None = None

    def wake(self, moment: dt.datetime) -> None:
        self.wake_at.append(moment)


def scale(ctx: Context, draft: Draft, rs: ReplicaSetView | None, pod_hash: str,
          replicas: int, scale_down_at: dt.datetime | None = None) -> None:
    """Bring one revision's ReplicaSet to `replicas`, creating it when missing.

    Emits an action only when the observed ReplicaSet differs (invariant 6).
    """
    if rs is None:
        revision = ctx.next_revision()
        draft.actions.append(
            CreateReplicaSet(
                name=replica_set_name(ctx.rollout.metadata.name, pod_hash),
                pod_hash=pod_hash,
                replicas=replicas,
                revision=revision,
                manifest=replica_set_manifest(ctx.rollout, pod_hash=pod_hash,
                                              replicas=replicas, revision=revision),
            )
        )
        return
    if rs.spec_replicas != replicas or rs.scale_down_at != scale_down_at:
        draft.actions.append(ScaleReplicaSet(rs.name, replicas, scale_down_at,
                                             rs.resource_version))


def pin(ctx: Context, draft: Draft, service: str | None, pod_hash: str) -> None:
    """Point a Service at one revision, unless it already is."""
    if not service:
        return
    view = ctx.observed.services.get(service)
    if view is None:
        return  # missing Services are reported as InvalidSpec before planning
    if view.selector.get(POD_TEMPLATE_HASH_LABEL) != pod_hash:
        selector = {**view.selector, **((ctx.spec.selector or LabelSelector()).match_labels or {}),
                    POD_TEMPLATE_HASH_LABEL: pod_hash}
        draft.actions.append(PinService(service, pod_hash, view.resource_version, selector))


def pin_traffic(ctx: Context, draft: Draft, service: str | None, pod_hash: str) -> None:
    """`pin` for a Service that carries production traffic (stableService, activeService):
    it moves only to a revision with every pod available, or with more available pods than
    the one it leaves; else it follows once they are (their ReplicaSet's changes wake the
    Rollout). Normally it
    already selects `pod_hash`; this holds when a lost status write left the planner a step
    behind the world (e.g. an abort of a promotion the status never recorded)."""
    view = ctx.observed.services.get(service) if service else None
    current = view.selector.get(POD_TEMPLATE_HASH_LABEL) if view is not None else None
    target = ctx.rs(pod_hash)
    have = target.available if target else 0
    left = ctx.rs(current)
    if (current is not None and current != pod_hash and have < ctx.replicas
            and have <= (left.available if left else 0)):
        return
    pin(ctx, draft, service, pod_hash)


def already_serving(ctx: Context, service: str | None, pod_hash: str) -> bool:
    """The traffic Service is seen selecting `pod_hash`, which has every pod available.

    Only a promotion points the stable (or active) Service at the revision being rolled
    out, and its status write can be lost (a failed request, a controller killed). A pass
    planned from the status before it then finds the world already promoted: it must finish
    the promotion, never point the Service back at a revision whose pods may be retiring.
    """
    if not service:
        return False
    view = ctx.observed.services.get(service)
    return (view is not None and view.selector.get(POD_TEMPLATE_HASH_LABEL) == pod_hash
            and fully_available(ctx.rs(pod_hash), ctx.replicas))


def retire_others(ctx: Context, draft: Draft, keep: set[str], *, stable_ready: bool,
                  delay_seconds: int | None, delayed_limit: int | None = None) -> None:
    """Scale down every revision not in `keep`, then trim history.

    Nothing is scaled down before the stable revision is fully available (stable first).
    With `delay_seconds`, a ReplicaSet that still has pods is first given a scale-down
    deadline and removed when it comes due; a deadline already set is honoured either way.
    `delayed_limit` (scaleDownDelayRevisionLimit): at most that many old revisions wait out
    a delay, the newest ones; older ones go at once. E.g. limit 1 with old revisions #3 and
    #2 still running: #3 waits for its deadline, #2 is scaled to 0 now.
    """
    # Re-point first, then scale down: a ReplicaSet that a Service is still seen selecting
    # keeps its pods until the Service's change comes back through the watch (and wakes us).
    selected = {view.selector.get(POD_TEMPLATE_HASH_LABEL)
                for view in ctx.observed.services.values() if view is not None}
    running = sorted((rs for rs in ctx.observed.replica_sets
                      if rs.pod_hash not in keep and rs.spec_replicas > 0),
                     key=lambda r: r.revision, reverse=True)
    beyond = {rs.pod_hash for rs in running[delayed_limit:]} if (
        delay_seconds and delayed_limit is not None) else set()
    for rs in ctx.observed.replica_sets:
        if rs.pod_hash in keep or rs.spec_replicas == 0:
            continue
        if rs.pod_hash in beyond and stable_ready:
            if rs.pod_hash not in selected:
                draft.actions.append(ScaleReplicaSet(rs.name, 0, None, rs.resource_version))
            continue
        if rs.scale_down_at is not None:
            if ctx.now < rs.scale_down_at:
                draft.wake(rs.scale_down_at)
            elif rs.pod_hash not in selected:
                draft.actions.append(ScaleReplicaSet(rs.name, 0, None, rs.resource_version))
            continue
        if not stable_ready:
            continue
        if delay_seconds:
            # At the annotation's precision, so that the deadline read back is this one.
            deadline = whole_seconds(ctx.now) + dt.timedelta(seconds=delay_seconds)
            draft.actions.append(ScaleReplicaSet(rs.name, rs.spec_replicas, deadline,
                                                 rs.resource_version))
            draft.wake(deadline)
        elif rs.pod_hash not in selected:
            draft.actions.append(ScaleReplicaSet(rs.name, 0, None, rs.resource_version))
    trim_history(ctx, draft, keep)


def trim_history(ctx: Context, draft: Draft, keep: set[str]) -> None:
    """Delete scaled-down old revisions beyond revisionHistoryLimit (newest kept)."""
    idle = sorted(
        (
            rs
            for rs in ctx.observed.replica_sets
            if rs.pod_hash not in keep and rs.spec_replicas == 0 and rs.replicas == 0
        ),
        key=lambda r: r.revision,
        reverse=True,
    )
    for rs in idle[ctx.spec.revision_history_limit:]:
        draft.actions.append(DeleteReplicaSet(rs.name))


def fully_available(rs: ReplicaSetView | None, replicas: int) -> bool:
    return rs is not None and rs.spec_replicas == replicas and rs.available >= replicas
