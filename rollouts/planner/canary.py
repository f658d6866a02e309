"""Canary without a traffic router: the traffic split is the split of available pods.

Every Service that selects the app spreads requests over ready endpoints, so the share of
traffic a revision gets is the share of available pods it has. A setWeight step therefore
completes only when the canary has the available pods that weight needs and the stable has
shed the pods it no longer needs (invariant 1 holds by construction: the reported weight is
computed from available pods, never from desired counts).
"""

from __future__ import annotations

import datetime as dt
import math

from rollouts.models.base import resolve_int_or_percent
from rollouts.models.rollout import (
    CanaryStatus,
    CanaryStrategy,
    PauseCondition,
    RolloutAnalysisRunStatus,
    RolloutStatus,
    TrafficWeights,
    WeightDestination,
)
from rollouts.planner.analysis import (
    INCONCLUSIVE_PAUSE,
    failure_message,
    find_run,
    gate,
    latest_run,
    next_attempt,
    terminate_runs,
    trim_runs,
)
from rollouts.planner.context import (
    Context,
    Draft,
    fully_available,
    iso,
    iso_precise,
    parse_time,
    pin,
    retire_others,
    scale,
)
from rollouts.planner.types import AnalysisRunView, ReplicaSetView

CANARY_PAUSE = "CanaryPauseStep"
USER_PAUSE = "PausedByUser"


def replica_targets(replicas: int, weight: int) -> tuple[int, int]:
    """(canary, stable) pod counts that approximate `weight` percent for the canary.

    While the weight is between 0 and 100 exclusive, both sides keep at least one pod, so a
    small Rollout runs one pod over its replica count rather than jumping to 0% or 100%.
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


def step_weight(strategy: CanaryStrategy, index: int) -> int:
    """The canary weight in force at step `index`: the last setWeight at or before it."""
    steps = strategy.steps or []
    if index >= len(steps):
        return 100
    for step in reversed(steps[: index + 1]):
        if step.set_weight is not None:
            return step.set_weight
    return 0


def rolling_counts(
    replicas: int,
    strategy: CanaryStrategy,
    canary: ReplicaSetView | None,
    stable: ReplicaSetView,
    target: tuple[int, int],
) -> tuple[int, int]:
    """The next (canary, stable) spec counts on the way to `target`.

    The canary grows first, within maxSurge; the stable shrinks only while enough pods stay
    available (maxUnavailable), counting only pods that are available right now.
    """
    canary_target, stable_target = target
    surge = resolve_int_or_percent(strategy.max_surge, replicas, round_up=True)
    unavailable = resolve_int_or_percent(strategy.max_unavailable, replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # as Deployments do: something has to give
    canary_spec = canary.spec_replicas if canary else 0
    canary_available = min(canary.available, canary_spec) if canary else 0
    stable_spec = stable.spec_replicas

    max_total = max(replicas, canary_target + stable_target) + surge
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
    """The observed pods match the target split, and all target pods are available."""
    canary_target, stable_target = target
    canary_ok = (
        canary_target == 0
        and (canary is None or (canary.spec_replicas == 0 and canary.replicas == 0))
    ) or (canary is not None and canary.spec_replicas == canary_target
          and canary.available >= canary_target and canary.replicas == canary_target)
    stable_ok = (
        stable.spec_replicas == stable_target
        and stable.available >= stable_target
        and stable.replicas == stable_target
    )
    return canary_ok and stable_ok


def traffic_share(canary: ReplicaSetView | None, stable: ReplicaSetView | None) -> int:
    """Percent of available pods that belong to the canary: its real share of traffic."""
    canary_available = canary.available if canary else 0
    stable_available = stable.available if stable else 0
    total = canary_available + stable_available
    return 0 if total == 0 else round(100 * canary_available / total)


def plan_canary(ctx: Context, draft: Draft) -> None:
    strategy = ctx.spec.strategy.canary
    assert strategy is not None
    status = ctx.status
    stable_hash = status.stable_rs
    stable = ctx.rs(stable_hash)
    if stable is None or stable_hash == ctx.desired_hash:
        steady(ctx, draft, strategy)
        return
    assert stable_hash is not None
    if status.abort:
        abort(ctx, draft, strategy, stable_hash, stable)
        return

    steps = strategy.steps or []
    canary = ctx.rs(ctx.desired_hash)
    index = min(max(status.current_step_index or 0, 0), len(steps))
    if status.promote_full:
        index = len(steps)
    pause_conditions = list(status.pause_conditions or [])
    user_paused = ctx.spec.paused or status.paused_for(USER_PAUSE) is not None

    # Retire revisions that are neither stable nor the one being rolled out (an older canary
    # replaced mid-rollout) once the stable is serving.
    retire_others(ctx, draft, {stable_hash, ctx.desired_hash},
                  stable_ready=stable.available > 0, delay_seconds=None)
    terminate_runs(ctx, draft, keep_current=True)
    trim_runs(ctx, draft)

    if user_paused:
        draft.phase = "Paused"
        draft.message = "Paused by user" if not ctx.spec.paused else "Paused (spec.paused)"
        target = replica_targets(ctx.replicas, step_weight(strategy, index))
        _record(ctx, draft, strategy, index, canary, stable, target, pause_conditions)
        return

    while True:
        weight = step_weight(strategy, index)
        target = replica_targets(ctx.replicas, weight)
        if index == len(steps):
            if split_done(canary, stable, target):
                _promote(ctx, draft, strategy, stable_hash)
                return
            draft.message = (
                f"Rolling out revision {ctx.desired_hash} to all pods: "
                f"{canary.available if canary else 0}/{ctx.replicas} available"
            )
            break
        step = steps[index]
        if step.set_weight is not None:
            if split_done(canary, stable, target):
                index += 1
                continue
            draft.message = (
                f"Step {index + 1}/{len(steps)}: setWeight {weight}: waiting for "
                f"{target[0]} canary pods available (have "
                f"{min(canary.available, target[0]) if canary else 0})"
            )
            break
        if step.pause is not None:
            current = next((p for p in pause_conditions if p.reason == CANARY_PAUSE), None)
            if current is None:
                current = PauseCondition(reason=CANARY_PAUSE, start_time=iso_precise(ctx.now))
                pause_conditions.append(current)
            duration = step.pause.seconds()
            started = parse_time(current.start_time) or ctx.now
            if duration is not None and ctx.now >= started + dt.timedelta(seconds=duration):
                pause_conditions = [p for p in pause_conditions if p.reason != CANARY_PAUSE]
                index += 1
                continue
            draft.phase = "Paused"
            if duration is None:
                draft.message = f"Step {index + 1}/{len(steps)}: paused until promoted"
            else:
                resume = started + dt.timedelta(seconds=duration)
                draft.wake(resume)
                left = math.ceil((resume - ctx.now).total_seconds())
                draft.message = f"Step {index + 1}/{len(steps)}: paused for {left}s more"
            break
        if step.analysis is not None:
            what = f"Step {index + 1}/{len(steps)}"
            verdict = gate(ctx, draft, "step", step.analysis,
                           f"spec.strategy.canary.steps[{index}].analysis", index)
            if verdict.verdict == "successful":
                index += 1
                continue
            if verdict.verdict == "failed":
                draft.abort_message = failure_message(f"step {index + 1}", verdict)
            elif verdict.verdict == "inconclusive":
                pause_conditions = _inconclusive(ctx, pause_conditions)
                draft.phase = "Paused"
                draft.message = verdict.describe(what) + "; promote or abort"
            else:
                draft.message = verdict.describe(what)
            break
        # Other step kinds are rejected by validation before planning.
        raise AssertionError(f"unplannable step {index}")

    background = strategy.analysis
    if background is not None and index >= (background.starting_step or 0):
        verdict = gate(ctx, draft, "background", background, "spec.strategy.canary.analysis")
        if verdict.verdict == "failed":
            draft.abort_message = failure_message("background", verdict)
        elif verdict.verdict == "inconclusive":
            pause_conditions = _inconclusive(ctx, pause_conditions)
            draft.phase = "Paused"
            draft.message = verdict.describe("Background analysis") + "; promote or abort"

    canary_next, stable_next = rolling_counts(ctx.replicas, strategy, canary, stable, target)
    scale(ctx, draft, canary, ctx.desired_hash, canary_next)
    scale(ctx, draft, stable, stable_hash, stable_next)
    pin(ctx, draft, strategy.stable_service, stable_hash)
    pin(ctx, draft, strategy.canary_service, ctx.desired_hash)
    _record(ctx, draft, strategy, index, canary, stable, target, pause_conditions)


def _record(ctx: Context, draft: Draft, strategy: CanaryStrategy, index: int,
            canary: ReplicaSetView | None, stable: ReplicaSetView, target: tuple[int, int],
            pause_conditions: list[PauseCondition]) -> None:
    desired = step_weight(strategy, index)
    actual = traffic_share(canary, stable)
    status = _canary_status(ctx.status, ctx.desired_hash, ctx.status.stable_rs, actual,
                            desired, split_done(canary, stable, target))
    step_run = find_run(ctx, "step", index)
    background_run = find_run(ctx, "background")
    status = status.model_copy(update={
        "current_step_analysis_run_status": _run_status(step_run),
        "current_background_analysis_run_status": _run_status(background_run),
    })
    draft.set(
        current_step_index=index,
        pause_conditions=pause_conditions or None,
        canary=status,
    )


def _run_status(run: AnalysisRunView | None) -> RolloutAnalysisRunStatus | None:
    if run is None:
        return None
    return RolloutAnalysisRunStatus(name=run.name, status=run.phase, message=run.message)


def _inconclusive(ctx: Context, pause_conditions: list[PauseCondition]) -> list[PauseCondition]:
    if any(p.reason == INCONCLUSIVE_PAUSE for p in pause_conditions):
        return pause_conditions
    return [*pause_conditions, PauseCondition(reason=INCONCLUSIVE_PAUSE, start_time=iso(ctx.now))]


def _canary_status(status: RolloutStatus, canary_hash: str | None, stable_hash: str | None,
                   actual: int, desired: int, verified: bool) -> CanaryStatus:
    old = status.canary or CanaryStatus()
    return old.model_copy(
        update={
            "weights": TrafficWeights(
                canary=WeightDestination(pod_template_hash=canary_hash, weight=actual),
                stable=WeightDestination(pod_template_hash=stable_hash, weight=100 - actual),
                verified=verified,
            ),
            "desired_weight": desired,
        }
    )


def _promote(ctx: Context, draft: Draft, strategy: CanaryStrategy, old_stable: str) -> None:
    """The canary has every pod: it becomes the stable revision."""
    draft.set(stable_rs=ctx.desired_hash, pause_conditions=None, promote_full=None)
    promoted = ctx.status.model_copy(update={"stable_rs": ctx.desired_hash})
    steady(
        Context(ctx.rollout, ctx.spec, ctx.observed, ctx.now, ctx.desired_hash, promoted),
        draft,
        strategy,
    )
    draft.message = f"Revision {ctx.desired_hash} promoted to stable (was {old_stable})"


def steady(ctx: Context, draft: Draft, strategy: CanaryStrategy) -> None:
    """No rollout in flight: the desired revision is (or becomes) the stable one.

    Also the git-revert path: when the desired template is the stable one again, all steps
    are skipped and the stable is restored at once; other revisions go as soon as the stable
    is fully available.
    """
    stable_hash = ctx.desired_hash
    stable = ctx.rs(stable_hash)
    scale(ctx, draft, stable, stable_hash, ctx.replicas, None)
    ready = fully_available(stable, ctx.replicas)
    pin(ctx, draft, strategy.stable_service, stable_hash)
    pin(ctx, draft, strategy.canary_service, stable_hash)
    retire_others(ctx, draft, {stable_hash}, stable_ready=ready, delay_seconds=None)
    terminate_runs(ctx, draft, keep_current=False)
    trim_runs(ctx, draft)
    steps = strategy.steps or []
    draft.set(
        stable_rs=stable_hash,
        current_step_index=len(steps),
        pause_conditions=None,
        promote_full=None,
        canary=_canary_status(ctx.status, stable_hash, stable_hash, 0, 0, ready),
    )
    if ready:
        draft.phase = "Healthy"
        draft.message = f"Revision {stable_hash} is stable with {ctx.replicas} pods available"
    else:
        draft.phase = "Progressing"
        have = stable.available if stable else 0
        draft.message = (
            f"Revision {stable_hash}: {min(have, ctx.replicas)}/{ctx.replicas} pods available"
        )


def abort(ctx: Context, draft: Draft, strategy: CanaryStrategy, stable_hash: str,
          stable: ReplicaSetView) -> None:
    """Stable first: back to full size and pinned, then the canary pods go.

    Without a traffic router the canary's share of traffic is its share of pods, so the
    canary is removed as soon as the stable can carry everything; abortScaleDownDelaySeconds
    applies where traffic is switched by selectors or routers (blue-green).
    """
    scale(ctx, draft, stable, stable_hash, ctx.replicas, None)
    pin(ctx, draft, strategy.stable_service, stable_hash)
    pin(ctx, draft, strategy.canary_service, stable_hash)
    ready = fully_available(stable, ctx.replicas)
    retire_others(ctx, draft, {stable_hash}, stable_ready=ready, delay_seconds=None)
    canary = ctx.rs(ctx.desired_hash)
    draft.phase = "Degraded"
    reason = ctx.status.abort_message or "Rollout aborted"
    draft.message = (
        f"{reason}; stable revision {stable_hash} serving all traffic"
        if ready
        else f"{reason}; restoring stable revision {stable_hash} "
        f"({min(stable.available, ctx.replicas)}/{ctx.replicas} available)"
    )
    terminate_runs(ctx, draft, keep_current=False)
    trim_runs(ctx, draft)
    # The runs that led here stay on show (the last step run and the background run).
    shown = _canary_status(ctx.status, ctx.desired_hash, stable_hash,
                           traffic_share(canary, stable), 0, False).model_copy(update={
        "current_step_analysis_run_status": _run_status(latest_run(ctx, "step")),
        "current_background_analysis_run_status": _run_status(latest_run(ctx, "background")),
    })
    draft.set(
        current_step_index=0,
        pause_conditions=None,
        promote_full=None,
        analysis_attempt=next_attempt(ctx) or None,
        canary=shown,
    )
