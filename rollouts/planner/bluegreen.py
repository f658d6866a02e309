"""Blue-green: the new revision runs beside the old behind the preview Service; the active
Service is switched to it in one step, and only when it is fully available (invariant 1)."""

from __future__ import annotations

import datetime as dt
import math

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
    fully_available,
    pin,
    retire_others,
    scale,
)
from rollouts.planner.status import StatusChanges


def plan_blue_green(ctx: Context, draft: Draft) -> None:
    strategy = ctx.spec.strategy.blue_green
    assert strategy is not None
    status = ctx.status
    stable_hash = status.stable_rs
    stable = ctx.rs(stable_hash)
    if stable is None or stable_hash == ctx.desired_hash:
        steady(ctx, draft, strategy, switch_delay=None)
        return
    assert stable_hash is not None
    if status.abort:
        abort(ctx, draft)
        return

    new = ctx.rs(ctx.desired_hash)
    bg = status.blue_green or BlueGreenStatus()
    scale(ctx, draft, stable, stable_hash, ctx.replicas, None)
    retire_others(ctx, draft, {stable_hash, ctx.desired_hash},
                  stable_ready=fully_available(stable, ctx.replicas), delay_seconds=None)
    terminate_runs(ctx, draft, keep_current=True)
    trim_runs(ctx, draft)
    pin(ctx, draft, strategy.preview_service, ctx.desired_hash)
    if (strategy.post_promotion_analysis is not None
            and bg.active_selector == ctx.desired_hash
            and fully_available(new, ctx.replicas)):
        # Already switched; waiting for the post-promotion verdict.
        _switch(ctx, draft, strategy, stable_hash)
        return
    pin(ctx, draft, strategy.active_service, stable_hash)

    pause_conditions = list(status.pause_conditions or [])
    checkpoint = bool(bg.scale_up_preview_check_point)
    preview_size = ctx.replicas if checkpoint else (
        min(strategy.preview_replica_count, ctx.replicas)
        if strategy.preview_replica_count is not None else ctx.replicas
    )
    scale(ctx, draft, new, ctx.desired_hash, preview_size, None)
    preview_ready = fully_available(new, preview_size)
    ready_at = status.preview_ready_at
    if preview_ready and ready_at is None:
        ready_at = ctx.now
    if not preview_ready and not checkpoint:
        ready_at = None
    draft.changes.preview_ready_at = ready_at
    draft.changes.blue_green = BlueGreenStatus(
        active_selector=stable_hash, preview_selector=ctx.desired_hash,
        scale_up_preview_check_point=bg.scale_up_preview_check_point,
        pre_promotion_analysis_run_status=run_status(find_run(ctx, "prePromotion")),
        post_promotion_analysis_run_status=bg.post_promotion_analysis_run_status)

    user_paused = ctx.spec.paused or status.paused_for(USER_PAUSE) is not None
    if not preview_ready or ready_at is None:
        draft.phase = "Progressing"
        have = new.available if new else 0
        draft.message = (
            f"Preview revision {ctx.desired_hash}: {min(have, preview_size)}/{preview_size} "
            "pods available"
        )
        draft.changes.pause_conditions = pause_conditions or None
        return
    if user_paused:
        draft.phase = "Paused"
        draft.message = "Paused by user" if not ctx.spec.paused else "Paused (spec.paused)"
        draft.changes.pause_conditions = pause_conditions or None
        return

    pre = strategy.pre_promotion_analysis
    if pre is not None and not status.promote_full:
        verdict = gate(ctx, draft, "prePromotion",
                       "spec.strategy.blueGreen.prePromotionAnalysis")
        if verdict.verdict != "successful":
            _wait_for_analysis(ctx, draft, verdict, "Pre-promotion analysis", pause_conditions)
            return

    if not (status.promote_full or checkpoint):
        if not strategy.auto_promotion_enabled:
            waiting = next((p for p in pause_conditions if p.reason == BLUE_GREEN_PAUSE), None)
            if waiting is None and not status.controller_pause:
                pause_conditions.append(
                    PauseCondition(reason=BLUE_GREEN_PAUSE, start_time=ctx.now))
                waiting = pause_conditions[-1]
            if waiting is not None:
                draft.phase = "Paused"
                draft.message = (
                    f"Preview revision {ctx.desired_hash} is ready; waiting for promote"
                )
                draft.changes.pause_conditions = pause_conditions
                draft.changes.controller_pause = True
                return
            # The pause was set and has been lifted: that is what `promote` does.
        elif strategy.auto_promotion_seconds:
            due = ready_at + dt.timedelta(seconds=strategy.auto_promotion_seconds)
            if ctx.now < due:
                draft.wake(due)
                draft.phase = "Paused"
                left = math.ceil((due - ctx.now).total_seconds())
                draft.message = (
                    f"Preview revision {ctx.desired_hash} is ready; auto-promotion in {left}s"
                )
                draft.changes.pause_conditions = pause_conditions or None
                return

    # Promote: first the new revision gets every pod, then the active Service switches.
    if not fully_available(new, ctx.replicas):
        scale(ctx, draft, new, ctx.desired_hash, ctx.replicas, None)
        draft.changes.blue_green = BlueGreenStatus(
            active_selector=stable_hash, preview_selector=ctx.desired_hash,
            scale_up_preview_check_point=True,
            pre_promotion_analysis_run_status=bg.pre_promotion_analysis_run_status,
            post_promotion_analysis_run_status=bg.post_promotion_analysis_run_status)
        draft.phase = "Progressing"
        have = new.available if new else 0
        draft.message = (
            f"Promoting {ctx.desired_hash}: scaling to {ctx.replicas} pods "
            f"({min(have, ctx.replicas)} available)"
        )
        draft.changes.pause_conditions = None
        return
    _switch(ctx, draft, strategy, stable_hash)


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
    pin(ctx, draft, strategy.active_service, stable_hash)
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
