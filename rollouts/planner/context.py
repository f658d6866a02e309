"""The working state of one planning pass, and helpers shared by both strategies.

A `Draft` is built and thrown away inside a single `plan()` call: it is the planner's scratch
pad, never shared and never kept.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from rollouts.models.rollout import Phase, Rollout, RolloutSpec, RolloutStatus
from rollouts.planner.types import (
    Action,
    CreateReplicaSet,
    DeleteReplicaSet,
    Observed,
    PinService,
    ReplicaSetView,
    ScaleReplicaSet,
)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_precise(moment: dt.datetime) -> str:
    """RFC 3339 with microseconds when there are any: for clocks a duration is measured
    from (pause starts), so that a pause never ends before its full duration."""
    moment = moment.astimezone(dt.UTC)
    if moment.microsecond == 0:
        return iso(moment)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Context:
    rollout: Rollout
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


@dataclass
class Draft:
    """Decisions of one pass: actions in order, status updates, phase, wake-up times."""

    phase: Phase = "Progressing"
    message: str = ""
    actions: list[Action] = field(default_factory=list)
    updates: dict[str, Any] = field(default_factory=dict)
    wake_at: list[dt.datetime] = field(default_factory=list)
    # Set when this pass finds a reason to abort (failed analysis); plan() then re-plans
    # with the abort recorded in status, so the same pass already moves traffic to stable.
    abort_message: str | None = None

    def set(self, **updates: Any) -> None:
        self.updates.update(updates)

    def wake(self, moment: dt.datetime) -> None:
        self.wake_at.append(moment)


def scale(ctx: Context, draft: Draft, rs: ReplicaSetView | None, pod_hash: str,
          replicas: int, scale_down_at: dt.datetime | None = None) -> None:
    """Bring one revision's ReplicaSet to `replicas`, creating it when missing.

    Emits an action only when the observed ReplicaSet differs (invariant 6).
    """
    if rs is None:
        from rollouts.planner.manifests import replica_set_name

        draft.actions.append(
            CreateReplicaSet(
                name=replica_set_name(ctx.rollout.metadata.name, pod_hash),
                pod_hash=pod_hash,
                replicas=replicas,
                revision=ctx.next_revision(),
            )
        )
        return
    if rs.spec_replicas != replicas or rs.scale_down_at != scale_down_at:
        draft.actions.append(ScaleReplicaSet(rs.name, replicas, scale_down_at))


def pin(ctx: Context, draft: Draft, service: str | None, pod_hash: str) -> None:
    """Point a Service at one revision, unless it already is."""
    if not service:
        return
    view = ctx.observed.services.get(service)
    if view is None:
        return  # missing Services are reported as InvalidSpec before planning
    if view.selector.get("rollouts-pod-template-hash") != pod_hash:
        draft.actions.append(PinService(service, pod_hash))


def retire_others(ctx: Context, draft: Draft, keep: set[str], *, stable_ready: bool,
                  delay_seconds: int | None) -> None:
    """Scale down every revision not in `keep`, then trim history.

    Nothing is scaled down before the stable revision is fully available (stable first).
    With `delay_seconds`, a ReplicaSet that still has pods is first given a scale-down
    deadline and removed when it comes due; a deadline already set is honoured either way.
    """
    for rs in ctx.observed.replica_sets:
        if rs.pod_hash in keep or rs.spec_replicas == 0:
            continue
        if rs.scale_down_at is not None:
            if ctx.now >= rs.scale_down_at:
                draft.actions.append(ScaleReplicaSet(rs.name, 0, None))
            else:
                draft.wake(rs.scale_down_at)
            continue
        if not stable_ready:
            continue
        if delay_seconds:
            deadline = ctx.now + dt.timedelta(seconds=delay_seconds)
            draft.actions.append(ScaleReplicaSet(rs.name, rs.spec_replicas, deadline))
            draft.wake(deadline)
        else:
            draft.actions.append(ScaleReplicaSet(rs.name, 0, None))
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
