"""plan(rollout, observed, now) -> Plan: the whole decision of one reconcile pass.

Pure: no I/O, no clock reads, no randomness. Everything it decides is either an idempotent
action or a field of the next status, so a controller killed at any instant resumes from
status alone (invariant 4) and planning the same inputs twice changes nothing (invariant 6).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

from rollouts.models.rollout import (
    Condition,
    InvalidRollout,
    Phase,
    RolloutSpec,
    RolloutStatus,
    ValidRollout,
)
from rollouts.models.wire import whole_seconds
from rollouts.planner import (
    bluegreen,
    canary,
    owned_services,
    rollback_window,
    selector_contest,
    workload,
)
from rollouts.planner.context import Context, Draft
from rollouts.planner.manifests import desired_hash, selector_string
from rollouts.planner.pods import with_pod_level
from rollouts.planner.status import StatusChanges
from rollouts.planner.steps import plugin as plugin_step
from rollouts.planner.types import (
    CreateReplicaSet,
    CreateService,
    Event,
    Observed,
    PinService,
    Plan,
)

PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
ROUTE_RECHECK_SECONDS = 5.0

Handler = Callable[[Context, Draft], None]


def plan(rollout: ValidRollout | InvalidRollout, observed: Observed, now: dt.datetime) -> Plan:
    if isinstance(rollout, InvalidRollout):
        return _invalid(rollout, list(rollout.errors), now)
    spec = rollout.spec
    creates, create_errors = owned_services.creations(rollout, observed)
    if creates:
        return _creating(rollout, creates, now)
    errors = (_missing_services(spec, observed) + create_errors
              + sorted(observed.analysis_problems.items()))
    errors += plugin_step.unknown_plugins(spec, observed)
    route_errors = observed.router.problems(observed.routes) if observed.router else []
    if errors or route_errors:
        invalid = _invalid(rollout, errors + route_errors, now)
        # Route objects are not watched: look again for the one that was missing.
        return dataclasses.replace(invalid, requeue_after=ROUTE_RECHECK_SECONDS
                                   ) if route_errors else invalid

    old = rollout.status
    progress, abort = ((canary.plan_canary, canary.abort) if spec.strategy.canary is not None
                       else (bluegreen.plan_blue_green, bluegreen.abort))
    status = _reset_for_revision(old, desired_hash(rollout), now)
    status = rollback_window.fast_track(spec, observed, status, status.observed_pod_hash or "")
    ctx = Context(rollout, spec, observed, now, status.observed_pod_hash or "", status)
    draft = _run(progress, ctx)
    if draft.abort_message and not status.abort:
        status, draft = _abort(abort, ctx, draft.abort_message, draft)

    # Progress deadline: only a Rollout that is moving can be late.
    progress_at, exceeded = _progress(spec, old, status, draft, observed, now)
    if exceeded and spec.progress_deadline_abort and not status.abort:
        status, draft = _abort(abort, ctx, _deadline_message(spec, status), draft)
        progress_at, exceeded = None, True
    plugin_step.finish(ctx, draft)
    workload.scale_down(ctx, draft, degraded=exceeded or draft.phase == "Degraded")
    workload.hold_services(ctx, draft)
    return with_pod_level(rollout, observed, now, _finish(  # pod metadata, restarts
        rollout, spec, observed, now, old, status, draft, progress_at, exceeded))


def _run(handler: Handler, ctx: Context) -> Draft:
    draft = Draft()
    handler(ctx, draft)
    return draft


def _abort(abort: Handler, ctx: Context, message: str,
           before: Draft) -> tuple[RolloutStatus, Draft]:
    """The abort transition: record why in status, then plan the way back to stable from
    there (in the same pass, so traffic starts moving to stable at once)."""
    status = StatusChanges(abort=True, aborted_at=whole_seconds(ctx.now),
                           abort_message=message).applied_to(ctx.status)
    draft = _run(abort, ctx.with_status(status))
    draft.plugin_statuses = before.plugin_statuses  # the plugin steps run so far
    plugin_step.abort_hooks(ctx, draft)
    return status, draft


def _reset_for_revision(status: RolloutStatus, desired_hash: str,
                        now: dt.datetime) -> RolloutStatus:
    """A new desired revision starts from step 0 and clears the last one's abort/pauses.

    This is also how an aborted Rollout leaves Degraded: a new commit changes the hash.
    """
    if status.observed_pod_hash == desired_hash:
        return status
    return StatusChanges(
        observed_pod_hash=desired_hash,
        current_pod_hash=desired_hash,
        current_step_index=0,
        abort=None,
        aborted_at=None,
        abort_message=None,
        pause_conditions=None,
        controller_pause=None,
        promote_full=None,
        preview_ready_at=None,
        analysis_attempt=None,
        progress_at=whole_seconds(now),
    ).applied_to(status)


def _missing_services(spec: RolloutSpec, observed: Observed) -> list[tuple[str, str]]:
    named: list[tuple[str, str | None]] = []
    if spec.strategy.canary is not None:
        named += [("spec.strategy.canary.canaryService", spec.strategy.canary.canary_service),
                  ("spec.strategy.canary.stableService", spec.strategy.canary.stable_service)]
        if spec.strategy.canary.ping_pong is not None:
            pair = spec.strategy.canary.ping_pong
            named += [("spec.strategy.canary.pingPong.pingService", pair.ping_service),
                      ("spec.strategy.canary.pingPong.pongService", pair.pong_service)]
    if spec.strategy.blue_green is not None:
        bg = spec.strategy.blue_green
        named += [("spec.strategy.blueGreen.activeService", bg.active_service),
                  ("spec.strategy.blueGreen.previewService", bg.preview_service)]
    return [
        (path, f'Service "{name}" not found')
        for path, name in named
        if name and observed.services.get(name) is None
    ]


def _creating(rollout: ValidRollout, creates: list[CreateService], now: dt.datetime) -> Plan:
    """A pass that only creates the missing Services (spec.strategy.createServices); the
    next pass, woken by their watch events, plans the strategy with them."""
    old = rollout.status
    message = f"creating Service {', '.join(c.name for c in creates)}"
    new = StatusChanges(
        phase="Progressing", message=message,
        observed_generation=rollout.metadata.generation,
        conditions=_conditions(old, "Progressing", message, now, exceeded=False, invalid=None),
    ).applied_to(old)
    events = tuple(Event("Normal", "ServiceCreated", f"Created Service {c.name}")
                   for c in creates) if old.message != message else ()
    return Plan(actions=tuple(creates), status=new, events=events,
                requeue_after=ROUTE_RECHECK_SECONDS)


def _progress_key(status: RolloutStatus) -> tuple[Any, ...]:
    return (status.current_pod_hash, status.current_step_index, status.stable_rs,
            status.replicas, status.updated_replicas, status.ready_replicas,
            status.available_replicas)


def _progress(spec: RolloutSpec, old: RolloutStatus, status: RolloutStatus, draft: Draft,
              observed: Observed, now: dt.datetime) -> tuple[dt.datetime | None, bool]:
    """(progress_at to record, whether the deadline has passed).

    The deadline clock runs only while Progressing; a pause stops it and resuming restarts
    it, so time spent waiting for a human never counts against the revision.
    """
    if draft.phase != "Progressing" or status.abort or draft.hold_deadline:
        return None, False
    counts = _counts(observed, status.observed_pod_hash)
    counts.merge(draft.changes)
    moved = _progress_key(old) != _progress_key(counts.applied_to(status))
    started = status.progress_at
    if started is None or moved:
        draft.wake(now + dt.timedelta(seconds=spec.progress_deadline_seconds))
        return whole_seconds(now), False
    deadline = started + dt.timedelta(seconds=spec.progress_deadline_seconds)
    if now >= deadline:
        return status.progress_at, True
    draft.wake(deadline)
    return status.progress_at, False


def _deadline_message(spec: RolloutSpec, status: RolloutStatus) -> str:
    return (
        f"Revision {status.current_pod_hash} made no progress for "
        f"{spec.progress_deadline_seconds}s ({PROGRESS_DEADLINE_EXCEEDED})"
    )


def _finish(rollout: ValidRollout, spec: RolloutSpec, observed: Observed, now: dt.datetime,
            old: RolloutStatus, status: RolloutStatus, draft: Draft,
            progress_at: dt.datetime | None, exceeded: bool) -> Plan:
    phase: Phase = draft.phase
    message = draft.message
    if exceeded and not status.abort:
        phase = "Degraded"
        message = _deadline_message(spec, status)
    changes = StatusChanges()
    changes.merge(draft.changes)
    changes.merge(_counts(observed, status.observed_pod_hash))
    changes.phase = phase
    changes.message = message
    changes.observed_generation = rollout.metadata.generation
    changes.progress_at = progress_at
    changes.selector = selector_string(spec)
    changes.conditions = _conditions(old, phase, message, now, exceeded=exceeded, invalid=None)
    contest = selector_contest.assess(old, draft.actions, observed, now)
    changes.selector_repairs = contest.repairs
    changes.conditions = [*changes.conditions, *contest.conditions]
    new = changes.applied_to(status)
    new = new.model_copy(update={"step": step_label(spec, old, new)})  # a str or None
    events = _events(old, new, draft) + contest.events
    wake = min(draft.wake_at, default=None)
    requeue = None if wake is None else max(0.0, (wake - now).total_seconds())
    return Plan(actions=tuple(draft.actions), status=new, events=events, requeue_after=requeue)


def _counts(observed: Observed, desired: str | None) -> StatusChanges:
    sets = observed.replica_sets
    return StatusChanges(
        replicas=sum(r.replicas for r in sets),
        updated_replicas=sum(r.replicas for r in sets if r.pod_hash == desired),
        ready_replicas=sum(r.ready for r in sets),
        available_replicas=sum(r.available for r in sets),
    )


def _invalid(rollout: ValidRollout | InvalidRollout, errors: list[tuple[str, str]],
             now: dt.datetime) -> Plan:
    old = rollout.status
    message = "; ".join(f"{path}: {text}" for path, text in errors[:5])
    if len(errors) > 5:
        message += f" (and {len(errors) - 5} more)"
    new = StatusChanges(
        phase="Degraded",
        message=f"InvalidSpec: {message}",
        observed_generation=rollout.metadata.generation,
        conditions=_conditions(old, "Degraded", f"InvalidSpec: {message}", now,
                               exceeded=False, invalid=message),
    ).applied_to(old)
    events: tuple[Event, ...] = ()
    if old.message != new.message:
        events = (Event("Warning", "InvalidSpec", message),)
    return Plan(actions=(), status=new, events=events, requeue_after=None)


def _conditions(old: RolloutStatus, phase: Phase, message: str, now: dt.datetime, *,
                exceeded: bool, invalid: str | None) -> list[Condition]:
    """kstatus conditions (Ready, Reconciling, Stalled) plus InvalidSpec and Progressing.

    A condition keeps its lastTransitionTime while its status and reason stay the same.
    """
    wanted: list[tuple[str, str, str, str]] = [
        ("Ready", "True" if phase == "Healthy" else "False", phase, message),
        ("Reconciling", "True" if phase in ("Progressing", "Paused") else "False", phase,
         message if phase in ("Progressing", "Paused") else ""),
        ("Stalled", "True" if phase == "Degraded" else "False", phase,
         message if phase == "Degraded" else ""),
    ]
    if invalid is not None:
        wanted.append(("InvalidSpec", "True", "InvalidSpec", invalid))
    if exceeded:
        wanted.append(("Progressing", "False", PROGRESS_DEADLINE_EXCEEDED, message))
    result = []
    for type_, status, reason, text in wanted:
        before = old.condition(type_)
        same = before is not None and before.status == status and before.reason == reason
        stamp = before.last_transition_time if same and before else whole_seconds(now)
        result.append(Condition(type=type_, status=status,
                                reason=reason, message=text, last_transition_time=stamp))
    return result


def step_label(spec: RolloutSpec, old: RolloutStatus, new: RolloutStatus) -> str | None:
    """The step for people, 1-based: "2/4"; "4/4" when every step is done; "aborted at 2/4"
    (where the abort found it: an abort resets currentStepIndex). None without canary steps.
    """
    steps = len(spec.strategy.canary.steps or []) if spec.strategy.canary else 0
    if steps == 0 or new.current_step_index is None:
        return None
    if new.abort:
        if old.step and old.step.startswith("aborted"):
            return old.step  # the place of the abort stays on show
        return f"aborted at {old.step}" if old.step else "aborted"
    return f"{min(new.current_step_index + 1, steps)}/{steps}"


def _events(old: RolloutStatus, new: RolloutStatus, draft: Draft) -> tuple[Event, ...]:
    """Kubernetes Events for every transition between the old and the new status."""
    events: list[Event] = []
    for action in draft.actions:
        if isinstance(action, CreateReplicaSet):
            events.append(Event("Normal", "ReplicaSetCreated",
                                f"Created ReplicaSet {action.name} (revision {action.revision})"))
        elif isinstance(action, PinService):
            events.append(Event("Normal", "ServiceSwitched",
                                f"Service {action.service} now selects revision {action.pod_hash}"))
    if new.abort and not old.abort:
        events.append(Event("Warning", "RolloutAborted", new.abort_message or "Rollout aborted"))
    if (new.current_step_index != old.current_step_index
            and new.current_pod_hash == old.current_pod_hash and not new.abort):
        events.append(Event("Normal", "RolloutStepChanged",
                            f"Step {old.step or '-'} -> {new.step or '-'}"))
    promoted = bool(new.stable_rs and new.stable_rs != old.stable_rs)
    if promoted:
        events.append(Event("Normal", "RolloutPromoted",
                            f"Revision {new.stable_rs} is now stable"))
    # A promotion that makes the Rollout Healthy says so once (RolloutPromoted).
    if new.phase != old.phase and not (promoted and new.phase == "Healthy"):
        events.append(Event("Warning" if new.phase == "Degraded" else "Normal",
                            f"Rollout{new.phase}", new.message))
    return tuple(events)
