"""plugin: a canary step run by a registered step plugin (planner/step_plugins.py).

The step's record (status.canary.stepPluginStatuses, one per step index and revision) holds
the plugin's phase, its own state and when it asked to be called again, so a restarted
controller neither repeats a finished step nor calls a waiting plugin before it is due.

- `run` is called while the step is current and due; `advance` records Successful and the
  walk moves on, `wait` records when to call again, `abort` records Failed and aborts.
- `terminate` is called for a step still Running that the walk left without it finishing
  (a full promotion, a rollback within the window, a new revision).
- `abort` is called for every step of the revision that ran, when the Rollout is aborted;
  hooks may be called again if the status write that records them is lost, so they must be
  idempotent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal

from rollouts.models.rollout import CanaryStatus, CanaryStep, RolloutSpec
from rollouts.models.wire import whole_seconds
from rollouts.models.workload import StepPluginPhase, StepPluginStatus
from rollouts.planner.context import Context, Draft
from rollouts.planner.step_plugins import (
    DEFAULT_REQUEUE_SECONDS,
    StepContext,
    StepPlugin,
    StepResult,
)
from rollouts.planner.steps import Abort, Advance, Outcome, Wait, Walk
from rollouts.planner.types import Observed

# Phases after which the step is run afresh (a retry after an abort, a terminated step).
_UNDONE = frozenset({"Aborted", "Terminated"})


def unknown_plugins(spec: RolloutSpec, observed: Observed) -> list[tuple[str, str]]:
    """InvalidSpec entries for plugin steps naming a plugin this controller does not have."""
    canary = spec.strategy.canary
    known = ", ".join(sorted(observed.step_plugins)) or "none"
    errors = []
    for i, step in enumerate(canary.steps or [] if canary is not None else []):
        if step.plugin is not None and step.plugin.name not in observed.step_plugins:
            errors.append((f"spec.strategy.canary.steps[{i}].plugin.name",
                           f'step plugin "{step.plugin.name}" is not registered (entry-point '
                           f"group rollouts.step_plugins; registered: {known})"))
    return errors


def handle(ctx: Context, draft: Draft, walk: Walk, step: CanaryStep) -> Outcome:
    assert step.plugin is not None
    name = step.plugin.name
    plugin = ctx.observed.step_plugins.get(name)
    if plugin is None:  # refused as InvalidSpec before planning; never crash here
        return Wait(f"{walk.label}: step plugin {name} is not registered")
    statuses = _statuses(ctx, draft)
    entry = next((s for s in statuses if s.index == walk.index), None)
    if entry is not None and entry.phase == "Successful":
        return Advance()
    if entry is not None and entry.phase == "Failed":
        return Abort(_label(walk, name, entry.message or "failed"))
    if entry is not None and entry.phase in _UNDONE:
        statuses.remove(entry)
        entry = None
    if entry is not None and entry.next_run_at is not None and ctx.now < entry.next_run_at:
        draft.wake(entry.next_run_at)
        return Wait(_label(walk, name, entry.message or "running"))
    result = _call(plugin, "run", _context(ctx, walk.index, entry), step.plugin.config or {})
    new = _record(ctx, walk.index, name, entry, result)
    if entry is not None:
        statuses.remove(entry)
    statuses.append(new)
    statuses.sort(key=lambda s: s.index)
    if result.outcome == "advance":
        return Advance()
    if result.outcome == "abort":
        return Abort(_label(walk, name, result.message or "failed"))
    assert new.next_run_at is not None
    draft.wake(new.next_run_at)
    return Wait(_label(walk, name, result.message or "running"))


def abort_hooks(ctx: Context, draft: Draft) -> None:
    """The Rollout is being aborted: every plugin step of this revision that ran is told."""
    steps = _steps(ctx)
    statuses = _statuses(ctx, draft)
    for i, entry in enumerate(statuses):
        if entry.phase in _UNDONE or entry.index >= len(steps):
            continue
        statuses[i] = _hook(ctx, steps[entry.index], entry, "abort", "Aborted")


def finish(ctx: Context, draft: Draft) -> None:
    """After the walk: a step left while Running is terminated (also those of a revision
    no longer desired); the records go into the canary status this pass writes (carried
    over when nothing touched them)."""
    index = draft.changes.current_step_index
    steps = _steps(ctx)
    old = ctx.status.canary.step_plugin_statuses if ctx.status.canary else None
    for entry in old or ():
        if entry.pod_hash != ctx.desired_hash and entry.phase == "Running" and (
                entry.index < len(steps)):
            _hook(ctx, steps[entry.index], entry, "terminate", "Terminated")
    statuses = draft.plugin_statuses
    if isinstance(index, int) and (statuses is not None or _carried(ctx)):
        statuses = _statuses(ctx, draft)
        for i, entry in enumerate(statuses):
            if entry.phase == "Running" and entry.index != index and entry.index < len(steps):
                statuses[i] = _hook(ctx, steps[entry.index], entry, "terminate", "Terminated")
    canary = draft.changes.canary
    if not isinstance(canary, CanaryStatus):
        return
    kept = statuses if statuses is not None else _carried(ctx)
    draft.changes.canary = canary.model_copy(
        update={"step_plugin_statuses": list(kept) or None})


def _steps(ctx: Context) -> list[CanaryStep]:
    canary = ctx.spec.strategy.canary
    return list(canary.steps or []) if canary is not None else []


def _carried(ctx: Context) -> list[StepPluginStatus]:
    """The records of the revision in force; those of older revisions go, terminated first
    if they were still running."""
    old = ctx.status.canary.step_plugin_statuses if ctx.status.canary else None
    return [s for s in old or () if s.pod_hash == ctx.desired_hash]


def _statuses(ctx: Context, draft: Draft) -> list[StepPluginStatus]:
    if draft.plugin_statuses is None:
        draft.plugin_statuses = _carried(ctx)
    return draft.plugin_statuses


def _context(ctx: Context, index: int, entry: StepPluginStatus | None) -> StepContext:
    return StepContext(
        namespace=ctx.rollout.metadata.namespace, rollout=ctx.rollout.metadata.name,
        step_index=index,
        pod_hash=entry.pod_hash if entry and entry.pod_hash else ctx.desired_hash,
        stable_hash=ctx.status.stable_rs,
        now=ctx.now, state=entry.status if entry else None,
        executions=entry.executions if entry else 0)


def _call(plugin: StepPlugin, hook: Literal["run", "terminate", "abort"],
          context: StepContext, config: Mapping[str, Any]) -> StepResult:
    """One call into the plugin; an exception (or an answer of the wrong type) is a
    failure of the plugin, retried later, never a crash of the controller."""
    try:
        result = getattr(plugin, hook)(context, config)
    except Exception as exc:
        return StepResult("wait", f"plugin error in {hook}: {type(exc).__name__}: {exc}")
    if not isinstance(result, StepResult) or result.outcome not in ("advance", "wait",
                                                                     "abort"):
        return StepResult("wait", f"plugin error in {hook}: it did not return a StepResult")
    return result


def _record(ctx: Context, index: int, name: str, entry: StepPluginStatus | None,
            result: StepResult) -> StepPluginStatus:
    now = whole_seconds(ctx.now)
    phase: StepPluginPhase = {"advance": "Successful", "abort": "Failed",
                              "wait": "Running"}[result.outcome]  # type: ignore[assignment]
    wait = result.requeue_after if result.requeue_after is not None else (
        DEFAULT_REQUEUE_SECONDS)
    return StepPluginStatus(
        index=index, name=name, phase=phase, message=result.message,
        pod_hash=ctx.desired_hash, executions=(entry.executions if entry else 0) + 1,
        started_at=entry.started_at if entry and entry.started_at else now,
        finished_at=None if phase == "Running" else now,
        next_run_at=now + dt.timedelta(seconds=max(1.0, wait)) if phase == "Running" else None,
        status=dict(result.state) if result.state is not None else (
            entry.status if entry else None))


def _hook(ctx: Context, step: CanaryStep, entry: StepPluginStatus,
          hook: Literal["terminate", "abort"], phase: StepPluginPhase) -> StepPluginStatus:
    plugin = ctx.observed.step_plugins.get(entry.name)
    if plugin is None or step.plugin is None:
        return entry.model_copy(update={"phase": phase, "next_run_at": None})
    result = _call(plugin, hook, _context(ctx, entry.index, entry), step.plugin.config or {})
    return entry.model_copy(update={
        "phase": phase, "message": result.message or entry.message, "next_run_at": None,
        "finished_at": entry.finished_at or whole_seconds(ctx.now),
        "status": dict(result.state) if result.state is not None else entry.status})


def _label(walk: Walk, name: str, text: str) -> str:
    return f"{walk.label}: plugin {name}: {text}"
