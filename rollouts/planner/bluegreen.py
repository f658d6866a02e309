"""Blue-green: the new revision runs beside the old behind the preview Service; the active
Service is switched to it in one step, and only when it is fully available (invariant 1)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass

from rollouts.models.rollout import BlueGreenStatus, BlueGreenStrategy, PauseCondition
from rollouts.models.wire import BLUE_GREEN_PAUSE, USER_PAUSE
from rollouts.planner.analysis import (
    Gate,
    failure_message,
    find_run,
    gate,
    next_attempt,
    pause_inconclusive,
    run_status,
    terminate_runs,
    trim_runs,
)
from rollouts.planner.context import (
    Context,
    Draft,
    already_serving,
    fully_available,
    pin,
    pin_traffic,
    retire_others,
    scale,
)
from rollouts.planner.status import StatusChanges
from rollouts.planner.types import ReplicaSetView


@dataclass
class Release:
    """The revision being released and what this pass knows about it."""

    stable_hash: str
    new: ReplicaSetView | None
    before: BlueGreenStatus  # status.blueGreen as it was
    pause_conditions: list[PauseCondition]
    checkpoint: bool  # the preview was being scaled up for the switch
    preview_size: int
    ready_at: dt.datetime | None = None  # when the preview became fully available


Stage = Callable[[Context, Draft, BlueGreenStrategy, Release], bool]


def plan_blue_green(ctx: Context, draft: Draft) -> None:
    """Steady, or the stages of a release in order; the first stage that holds ends the
    pass, and a release that no stage holds switches the active Service."""
    strategy = ctx.spec.strategy.blue_green
    assert strategy is not None
    stable_hash = ctx.status.stable_rs
    stable = ctx.rs(stable_hash)
    if stable is None or stable_hash is None or stable_hash == ctx.desired_hash:
        steady(ctx, draft, strategy, switch_delay=None)
        return
    if ctx.status.abort:
        abort(ctx, draft)
        return
    release = _keep_stable_serving(ctx, draft, strategy, stable_hash)
    if _switched_awaiting_analysis(ctx, strategy, release):
        _switch(ctx, draft, strategy, stable_hash)
        return
    if not already_serving(ctx, strategy.active_service, ctx.desired_hash):
        pin_traffic(ctx, draft, strategy.active_service, stable_hash)  # else: a switch whose
        # status write was lost; the stages below lead to it again
    stages: tuple[Stage, ...] = (_preview_up, _user_pause, _pre_promotion_analysis,
                                 _promotion_pause, _scale_up_for_switch)
    if not any(stage(ctx, draft, strategy, release) for stage in stages):
        _switch(ctx, draft, strategy, stable_hash)


def _keep_stable_serving(ctx: Context, draft: Draft, strategy: BlueGreenStrategy,
                         stable_hash: str) -> Release:
    """The stable at full size and active; other old revisions retired; preview pinned."""
    stable = ctx.rs(stable_hash)
    scale(ctx, draft, stable, stable_hash, ctx.replicas, None)
    retire_others(ctx, draft, {stable_hash, ctx.desired_hash},
                  stable_ready=fully_available(stable, ctx.replicas), delay_seconds=None)
    terminate_runs(ctx, draft, keep_current=True)
    trim_runs(ctx, draft)
    pin(ctx, draft, strategy.preview_service, ctx.desired_hash)
    before = ctx.status.blue_green or BlueGreenStatus()
    checkpoint = bool(before.scale_up_preview_check_point)
    preview_size = ctx.replicas if checkpoint else (
        min(strategy.preview_replica_count, ctx.replicas)
        if strategy.preview_replica_count is not None else ctx.replicas
    )
    return Release(stable_hash, ctx.rs(ctx.desired_hash), before,
                   list(ctx.status.pause_conditions or []), checkpoint, preview_size)


def _switched_awaiting_analysis(ctx: Context, strategy: BlueGreenStrategy,
                                release: Release) -> bool:
    """Already switched; waiting for the post-promotion verdict."""
    return (strategy.post_promotion_analysis is not None
            and release.before.active_selector == ctx.desired_hash
            and fully_available(release.new, ctx.replicas))


def _preview_up(ctx: Context, draft: Draft, strategy: BlueGreenStrategy,
                release: Release) -> bool:
    """Holds until the preview has all its pods available (and records since when)."""
    new, size = release.new, release.preview_size
    scale(ctx, draft, new, ctx.desired_hash, size, None)
    ready = fully_available(new, size)
    ready_at = ctx.status.preview_ready_at
    if ready and ready_at is None:
        ready_at = ctx.now
    if not ready and not release.checkpoint:
        ready_at = None
    release.ready_at = ready_at
    draft.changes.preview_ready_at = ready_at
    draft.changes.blue_green = BlueGreenStatus(
        active_selector=release.stable_hash, preview_selector=ctx.desired_hash,
        scale_up_preview_check_point=release.before.scale_up_preview_check_point,
        pre_promotion_analysis_run_status=run_status(find_run(ctx, "prePromotion")),
        post_promotion_analysis_run_status=release.before.post_promotion_analysis_run_status)
    if ready and ready_at is not None:
        return False
    draft.phase = "Progressing"
    have = new.available if new else 0
    draft.message = (f"Preview revision {ctx.desired_hash}: {min(have, size)}/{size} "
                     "pods available")
    draft.changes.pause_conditions = release.pause_conditions or None
    return True


def _user_pause(ctx: Context, draft: Draft, strategy: BlueGreenStrategy,
                release: Release) -> bool:
    if not ctx.spec.paused and ctx.status.paused_for(USER_PAUSE) is None:
        return False
    draft.phase = "Paused"
    draft.message = "Paused by user" if not ctx.spec.paused else "Paused (spec.paused)"
    draft.changes.pause_conditions = release.pause_conditions or None
    return True


def _pre_promotion_analysis(ctx: Context, draft: Draft, strategy: BlueGreenStrategy,
                            release: Release) -> bool:
    if strategy.pre_promotion_analysis is None or ctx.status.promote_full:
        return False
    verdict = gate(ctx, draft, "prePromotion", "spec.strategy.blueGreen.prePromotionAnalysis")
    if verdict.verdict == "successful":
        return False
    _wait_for_analysis(ctx, draft, verdict, "Pre-promotion analysis", release.pause_conditions)
    return True


def _promotion_pause(ctx: Context, draft: Draft, strategy: BlueGreenStrategy,
                     release: Release) -> bool:
    """Holds for `promote` (autoPromotionEnabled: false) or autoPromotionSeconds."""
    if ctx.status.promote_full or release.checkpoint:
        return False
    pauses = release.pause_conditions
    if not strategy.auto_promotion_enabled:
        waiting = next((p for p in pauses if p.reason == BLUE_GREEN_PAUSE), None)
        if waiting is None and not ctx.status.controller_pause:
            waiting = PauseCondition(reason=BLUE_GREEN_PAUSE, start_time=ctx.now)
            pauses.append(waiting)
        if waiting is None:
            return False  # the pause was set and has been lifted: that is what promote does
        draft.phase = "Paused"
        draft.message = f"Preview revision {ctx.desired_hash} is ready; waiting for promote"
        draft.changes.pause_conditions = pauses
        draft.changes.controller_pause = True
        return True
    if not strategy.auto_promotion_seconds or release.ready_at is None:
        return False
    due = release.ready_at + dt.timedelta(seconds=strategy.auto_promotion_seconds)
    if ctx.now >= due:
        return False
    draft.wake(due)
    draft.phase = "Paused"
    left = math.ceil((due - ctx.now).total_seconds())
    draft.message = f"Preview revision {ctx.desired_hash} is ready; auto-promotion in {left}s"
    draft.changes.pause_conditions = pauses or None
    return True


def _scale_up_for_switch(ctx: Context, draft: Draft, strategy: BlueGreenStrategy,
                         release: Release) -> bool:
    """Promote: first the new revision gets every pod, then the active Service switches."""
    new = release.new
    if fully_available(new, ctx.replicas):
        return False
    scale(ctx, draft, new, ctx.desired_hash, ctx.replicas, None)
    draft.changes.blue_green = BlueGreenStatus(
        active_selector=release.stable_hash, preview_selector=ctx.desired_hash,
        scale_up_preview_check_point=True,
        pre_promotion_analysis_run_status=release.before.pre_promotion_analysis_run_status,
        post_promotion_analysis_run_status=release.before.post_promotion_analysis_run_status)
    draft.phase = "Progressing"
    have = new.available if new else 0
    draft.message = (f"Promoting {ctx.desired_hash}: scaling to {ctx.replicas} pods "
                     f"({min(have, ctx.replicas)} available)")
    draft.changes.pause_conditions = None
    return True


def _wait_for_analysis(ctx: Context, draft: Draft, verdict: Gate, what: str,
                       pause_conditions: list[PauseCondition]) -> None:
    """Hold the switch (or the stable mark) until the run passes; abort or pause on a bad
    verdict."""
    draft.phase = "Progressing"
    draft.message = verdict.describe(what)
    if verdict.verdict == "failed":
        draft.abort_message = failure_message(what.lower(), verdict)
    elif verdict.verdict == "inconclusive":
        pause_conditions = pause_inconclusive(ctx, pause_conditions)
        draft.phase = "Paused"
        draft.message += "; promote or abort"
    draft.changes.pause_conditions = pause_conditions or None


def _switch(ctx: Context, draft: Draft, strategy: BlueGreenStrategy, old_hash: str) -> None:
    """The new revision is fully available: make it active, then stable.

    With postPromotionAnalysis the active Service moves first and the revision becomes
    stable only when the analysis passes; a failure aborts, which switches back.
    """
    post = strategy.post_promotion_analysis
    if post is not None:
        pin(ctx, draft, strategy.active_service, ctx.desired_hash)
        bg = ctx.status.blue_green or BlueGreenStatus()
        draft.changes.blue_green = BlueGreenStatus(
            active_selector=ctx.desired_hash, preview_selector=ctx.desired_hash,
            scale_up_preview_check_point=True,
            pre_promotion_analysis_run_status=bg.pre_promotion_analysis_run_status,
            post_promotion_analysis_run_status=run_status(find_run(ctx, "postPromotion")))
        verdict = gate(ctx, draft, "postPromotion",
                       "spec.strategy.blueGreen.postPromotionAnalysis")
        if verdict.verdict != "successful":
            _wait_for_analysis(ctx, draft, verdict, "Post-promotion analysis",
                               list(ctx.status.pause_conditions or []))
            return
    # steady() marks the previous revision for scale-down after scaleDownDelaySeconds.
    promoted = StatusChanges(stable_rs=ctx.desired_hash).applied_to(ctx.status)
    steady(ctx.with_status(promoted), draft, strategy,
           switch_delay=strategy.scale_down_delay_seconds)
    draft.message = f"Revision {ctx.desired_hash} promoted to active (was {old_hash})"


def steady(ctx: Context, draft: Draft, strategy: BlueGreenStrategy,
           switch_delay: int | None) -> None:
    """The desired revision is the stable one: full size, active and preview on it."""
    stable_hash = ctx.desired_hash
    stable = ctx.rs(stable_hash)
    scale(ctx, draft, stable, stable_hash, ctx.replicas, None)
    ready = fully_available(stable, ctx.replicas)
    if ready:
        pin(ctx, draft, strategy.active_service, stable_hash)
        pin(ctx, draft, strategy.preview_service, stable_hash)
    # After a promotion the previous revision keeps its pods for scaleDownDelaySeconds; on a
    # revert the un-promoted preview never had production traffic and goes at once.
    retire_others(ctx, draft, {stable_hash}, stable_ready=ready, delay_seconds=switch_delay)
    terminate_runs(ctx, draft, keep_current=False)
    trim_runs(ctx, draft)
    bg = ctx.status.blue_green or BlueGreenStatus()
    draft.changes.merge(StatusChanges(
        stable_rs=stable_hash,
        pause_conditions=None,
        controller_pause=None,
        promote_full=None,
        preview_ready_at=None,
        blue_green=BlueGreenStatus(
            active_selector=stable_hash if ready else bg.active_selector,
            preview_selector=stable_hash if ready else bg.preview_selector,
            pre_promotion_analysis_run_status=bg.pre_promotion_analysis_run_status,
            post_promotion_analysis_run_status=bg.post_promotion_analysis_run_status),
    ))
    if ready:
        draft.phase = "Healthy"
        draft.message = f"Revision {stable_hash} is active with {ctx.replicas} pods available"
    else:
        draft.phase = "Progressing"
        have = stable.available if stable else 0
        draft.message = (
            f"Revision {stable_hash}: {min(have, ctx.replicas)}/{ctx.replicas} pods available"
        )


def abort(ctx: Context, draft: Draft) -> None:
    """The abort transition's target: selectors back to stable first; the new revision's
    pods go after abortScaleDownDelaySeconds."""
    strategy = ctx.spec.strategy.blue_green
    assert strategy is not None
    stable_hash = ctx.status.stable_rs
    stable = ctx.rs(stable_hash)
    if stable is None or stable_hash is None or stable_hash == ctx.desired_hash:
        steady(ctx, draft, strategy, switch_delay=None)  # nothing to abort to or from
        return
    scale(ctx, draft, stable, stable_hash, ctx.replicas, None)
    pin_traffic(ctx, draft, strategy.active_service, stable_hash)
    pin(ctx, draft, strategy.preview_service, stable_hash)
    ready = fully_available(stable, ctx.replicas)
    retire_others(ctx, draft, {stable_hash}, stable_ready=ready,
                  delay_seconds=strategy.abort_scale_down_delay_seconds)
    terminate_runs(ctx, draft, keep_current=False)
    trim_runs(ctx, draft)
    bg = ctx.status.blue_green or BlueGreenStatus()
    draft.changes.merge(StatusChanges(
        analysis_attempt=next_attempt(ctx) or None,
        pause_conditions=None,
        controller_pause=None,
        promote_full=None,
        preview_ready_at=None,
        blue_green=BlueGreenStatus(
            active_selector=stable_hash, preview_selector=stable_hash,
            pre_promotion_analysis_run_status=bg.pre_promotion_analysis_run_status,
            post_promotion_analysis_run_status=bg.post_promotion_analysis_run_status),
    ))
    draft.phase = "Degraded"
    reason = ctx.status.abort_message or "Rollout aborted"
    draft.message = f"{reason}; active revision {stable_hash} serving all traffic"
