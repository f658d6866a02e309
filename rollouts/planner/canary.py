"""Canary: walk the steps, one handler per step kind, over a traffic model.

`plan_canary` reads as a table of contents: steady state, or walk the steps from the one in
status (each handler says advance / wait / pause / abort), check the background analysis,
move pods and Services toward the weight in force, record. Abort is a separate transition
(`abort`), made by `plan` when a handler or the deadline asks for it.
"""

from __future__ import annotations

import datetime as dt

from rollouts.models.rollout import (
    CanaryStatus,
    CanaryStep,
    CanaryStrategy,
    SetCanaryScale,
    TrafficWeights,
    WeightDestination,
)
from rollouts.models.wire import USER_PAUSE
from rollouts.planner.analysis import (
    failure_message,
    find_run,
    gate,
    latest_run,
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
from rollouts.planner.experiment_traffic import (
    experiment_services,
    release_experiments,
    with_experiment_traffic,
    with_experiment_weights,
)
from rollouts.planner.pingpong import other, recorded_side, side_services, stable_side
from rollouts.planner.router_traffic import RouterTraffic
from rollouts.planner.routing import managed_routes_at
from rollouts.planner.status import StatusChanges
from rollouts.planner.steps import Abort, Advance, Handler, Outcome, Pause, Wait, Walk
from rollouts.planner.steps import analysis as analysis_step
from rollouts.planner.steps import experiment as experiment_step
from rollouts.planner.steps import pause as pause_step
from rollouts.planner.steps import plugin as plugin_step
from rollouts.planner.steps import set_canary_scale as set_canary_scale_step
from rollouts.planner.steps import set_header_route as set_header_route_step
from rollouts.planner.steps import set_mirror_route as set_mirror_route_step
from rollouts.planner.steps import set_weight as set_weight_step
from rollouts.planner.traffic import PodRatioTraffic, TrafficModel
from rollouts.planner.types import ReplicaSetView

# A step's fields run in this order (models/step_kinds.py STEP_KINDS); the step is done when
# every one of them is. The canary's size and the managed routes come first, then the step's
# one action: a pause starts, an analysis or experiment is started, only once the canary runs
# at the size the step gives it and the routes hold what the step asks (Argo Rollouts starts
# a pause once the ReplicaSets are resized; we wait for the pods to be available too).
STEP_HANDLERS: tuple[tuple[str, Handler], ...] = (
    ("set_canary_scale", set_canary_scale_step.handle),
    ("set_header_route", set_header_route_step.handle),
    ("set_mirror_route", set_mirror_route_step.handle),
    ("set_weight", set_weight_step.handle),
    ("pause", pause_step.handle),
    ("analysis", analysis_step.handle),
    ("experiment", experiment_step.handle),
    ("plugin", plugin_step.handle),
)


def run_step(ctx: Context, draft: Draft, walk: Walk, step: CanaryStep) -> Outcome:
    """The handlers of the step's fields in turn; the first that does not advance says what
    the step does now (validation allows at most one of the actions that may pause, wait
    on a run or abort, so only set-up handlers ever come before one)."""
    for field, handle in STEP_HANDLERS:
        if getattr(step, field) is None:
            continue
        outcome = handle(ctx, draft, walk, step)
        if not isinstance(outcome, Advance):
            walk.waiting_on = field
            return outcome
    walk.waiting_on = None
    return Advance()


def traffic_model(ctx: Context, strategy: CanaryStrategy) -> TrafficModel:
    """The router's model when the canary has trafficRouting, else the pods' ratio.

    With a stableService the stable keeps one pod until the promotion: the Service selects
    the stable revision until then, and is re-pointed before that pod goes (issue 11).
    """
    router = ctx.observed.router
    routing = strategy.traffic_routing
    floor = 1 if strategy.stable_service else 0
    if router is not None:
        return RouterTraffic(ctx.replicas, router, ctx.observed.routes,
                             max_weight=routing.max_traffic_weight if routing else 100,
                             canary_hash=ctx.desired_hash, stable_hash=ctx.status.stable_rs,
                             min_pods=strategy.min_pods_per_replica_set or 1,
                             dynamic_stable=strategy.dynamic_stable_scale,
                             stable_floor=floor,
                             progress_threshold=strategy.replica_progress_threshold,
                             retired=experiment_services(ctx))
    return PodRatioTraffic(ctx.replicas, strategy, stable_floor=floor)


def plan_canary(ctx: Context, draft: Draft) -> None:
    strategy = ctx.spec.strategy.canary
    assert strategy is not None
    stable_hash = ctx.status.stable_rs
    stable = ctx.rs(stable_hash)
    if stable is None or stable_hash is None or stable_hash == ctx.desired_hash:
        steady(ctx, draft, strategy)
        return
    if ctx.status.abort:
        abort(ctx, draft)
        return

    if strategy.ping_pong is None and already_serving(ctx, strategy.stable_service,
                                                      ctx.desired_hash):
        _promote(ctx, draft, strategy, stable_hash)  # its status write was lost
        return
    walk = _start_walk(ctx, strategy, stable)
    # Revisions that are neither stable nor the one being rolled out (an older canary
    # replaced mid-rollout) go once the stable is serving.
    retire_others(ctx, draft, {stable_hash, ctx.desired_hash},
                  stable_ready=stable.available > 0, delay_seconds=None)
    terminate_runs(ctx, draft, keep_current=True)
    trim_runs(ctx, draft)

    if ctx.spec.paused or ctx.status.paused_for(USER_PAUSE) is not None:
        draft.phase = "Paused"
        draft.message = "Paused by user" if not ctx.spec.paused else "Paused (spec.paused)"
        _record(ctx, draft, walk)
        return
    outcome = _walk_steps(ctx, draft, walk)
    if walk.index == len(walk.steps) and _complete(ctx, walk):
        _promote(ctx, draft, strategy, stable_hash)
        return
    _follow(draft, outcome)
    _background_analysis(ctx, draft, strategy, walk)
    _move_traffic(ctx, draft, strategy, walk, stable_hash)
    _record(ctx, draft, walk)


def _start_walk(ctx: Context, strategy: CanaryStrategy, stable: ReplicaSetView) -> Walk:
    steps = strategy.steps or []
    index = min(max(ctx.status.current_step_index or 0, 0), len(steps))
    if ctx.status.promote_full:
        index = len(steps)
    return Walk(steps=steps, index=index, canary=ctx.rs(ctx.desired_hash), stable=stable,
                full_weight=_full(strategy),
                traffic=traffic_model(ctx, strategy),
                pause_conditions=list(ctx.status.pause_conditions or []))


def _walk_steps(ctx: Context, draft: Draft, walk: Walk) -> Outcome:
    """Run handlers from the current step while they advance; the first that does not
    says what this pass does."""
    while walk.index < len(walk.steps):
        step = walk.steps[walk.index]
        outcome = run_step(ctx, draft, walk, step)
        if not isinstance(outcome, Advance):
            return outcome
        walk.index += 1
    have = walk.canary.available if walk.canary else 0
    return Wait(f"Rolling out revision {ctx.desired_hash} to all pods: "
                f"{have}/{ctx.replicas} available")


def _complete(ctx: Context, walk: Walk) -> bool:
    """Past the last step: every pod of the canary is available and (with a router) the
    routes send it everything. Without a router the stable's last pods may still run: they
    are retired after the promotion has re-pointed the stable Service."""
    if not fully_available(walk.canary, ctx.replicas):
        return False
    return (not walk.traffic.routes_traffic
            or walk.traffic.reached(walk.weight, walk.canary, walk.stable, walk.canary_scale))


def _follow(draft: Draft, outcome: Outcome) -> None:
    if isinstance(outcome, Abort):
        draft.abort_message = outcome.message
    elif isinstance(outcome, Pause):
        draft.phase = "Paused"
        draft.message = outcome.message
    elif isinstance(outcome, Wait):
        draft.message = outcome.message


def _background_analysis(ctx: Context, draft: Draft, strategy: CanaryStrategy,
                         walk: Walk) -> None:
    background = strategy.analysis
    if background is None or ctx.status.promote_full or walk.index < (
            background.starting_step or 0):
        return
    verdict = gate(ctx, draft, "background", "spec.strategy.canary.analysis")
    if verdict.verdict == "failed":
        draft.abort_message = failure_message("background", verdict)
    elif verdict.verdict == "inconclusive":
        walk.pause_conditions[:] = pause_inconclusive(ctx, walk.pause_conditions)
        draft.phase = "Paused"
        draft.message = verdict.describe("Background analysis") + "; promote or abort"


def _move_traffic(ctx: Context, draft: Draft, strategy: CanaryStrategy, walk: Walk,
                  stable_hash: str) -> None:
    """Services pinned, pods sized, then the traffic layer moved as far as the pods allow.

    The stable Service stays on the stable revision until the promotion, and the stable
    keeps a pod for it (`traffic_model`'s floor) even at weight 100. The promotion re-points
    the Service once the canary is fully available; the old stable's last pod goes on a
    later pass that sees the Service on the new revision (`retire_others`).
    """
    size = walk.canary_scale
    canary_next, stable_next = walk.traffic.pods(walk.weight, walk.canary, walk.stable, size)
    pin_traffic(ctx, draft, strategy.stable_service, stable_hash)
    if _may_repoint_canary(walk):
        pin(ctx, draft, strategy.canary_service, ctx.desired_hash)
    _pin_ping_pong(ctx, draft, strategy, stable_hash, ctx.desired_hash)
    scale(ctx, draft, walk.canary, ctx.desired_hash, canary_next)
    scale(ctx, draft, walk.stable, stable_hash, stable_next)
    traffic = walk.traffic
    serving = walk.canary is not None and walk.canary.available > 0
    if walk.index < len(walk.steps) and serving:  # the managed routes of the steps passed
        # and this one, once this step's canary has its pods (no route to a canary still
        # scaling up, nor to one with no pod available: a promote may skip the scale step)
        upto = walk.index + (walk.waiting_on != "set_canary_scale")
        traffic = traffic.with_managed_routes(*managed_routes_at(strategy, upto))
    traffic = with_experiment_traffic(ctx, walk, traffic)
    _hold_traffic(ctx, draft, traffic, walk.weight, walk.canary, walk.stable, size)


def _may_repoint_canary(walk: Walk) -> bool:
    """The canary Service may select the revision being rolled out once the routes send it
    nothing, or that revision has the pods for what they send. A release that replaces a
    canary the routes weigh leaves the Service (and the older canary's pods, which
    `retire_others` keeps while a Service selects them) until the routes read back 0."""
    traffic = walk.traffic
    held = traffic.verified_weight(walk.canary, walk.stable)
    return (not traffic.routes_traffic or held == 0
            or traffic.reached(held, walk.canary, walk.stable))


def _pin_ping_pong(ctx: Context, draft: Draft, strategy: CanaryStrategy, stable_hash: str,
                   canary_hash: str) -> None:
    """The ping-pong pair by its turns: the stable side's Service to the stable revision,
    the other to `canary_hash` (the stable revision too when no rollout is in flight)."""
    stable_service, canary_service = side_services(strategy, ctx.status)
    pin(ctx, draft, stable_service, stable_hash)
    pin(ctx, draft, canary_service, canary_hash)


def _hold_traffic(ctx: Context, draft: Draft, traffic: TrafficModel, weight: int,
                  canary: ReplicaSetView | None, stable: ReplicaSetView,
                  size: SetCanaryScale | None = None) -> None:
    """The traffic layer's writes toward `weight`, and a wake-up to read it back when
    nothing the controller watches would wake the Rollout (route objects)."""
    draft.actions.extend(traffic.writes(weight, canary, stable, size))
    release_experiments(ctx, draft, traffic)  # once the routes let go of them
    recheck = traffic.recheck_after(weight, canary, stable, size)
    if recheck is not None:
        draft.wake(ctx.now + dt.timedelta(seconds=recheck))


def _record(ctx: Context, draft: Draft, walk: Walk) -> None:
    draft.changes.current_step_index = walk.index
    draft.changes.pause_conditions = walk.pause_conditions or None
    draft.changes.canary = CanaryStatus(
        weights=with_experiment_weights(ctx, _weights(
            ctx.desired_hash, ctx.status.stable_rs,
            walk.traffic.verified_weight(walk.canary, walk.stable),
            walk.traffic.reached(walk.weight, walk.canary, walk.stable, walk.canary_scale),
            walk.full_weight)),
        desired_weight=walk.weight,
        current_step_analysis_run_status=run_status(find_run(ctx, "step", walk.index)),
        current_background_analysis_run_status=run_status(find_run(ctx, "background")),
        stable_ping_pong=recorded_side(ctx.spec.strategy.canary, ctx.status))


def _full(strategy: CanaryStrategy) -> int:
    routing = strategy.traffic_routing
    return routing.max_traffic_weight if routing else 100


def _weights(canary_hash: str | None, stable_hash: str | None, actual: int,
             verified: bool, full: int = 100) -> TrafficWeights:
    """`full`: what weights are out of (maxTrafficWeight with a router)."""
    return TrafficWeights(
        canary=WeightDestination(pod_template_hash=canary_hash, weight=actual),
        stable=WeightDestination(pod_template_hash=stable_hash, weight=full - actual),
        verified=verified,
    )


def _promote(ctx: Context, draft: Draft, strategy: CanaryStrategy, old_stable: str) -> None:
    """The canary has every pod: it becomes the stable revision.

    With pingPong the canary's Service becomes the stable one. The routes already send it
    everything, which under the swapped roles reads "all to stable": they are not written
    in this pass (the router observed for it was bound to the roles before the swap).
    """
    promoted = StatusChanges(stable_rs=ctx.desired_hash)
    if strategy.ping_pong is not None:
        old = ctx.status.canary or CanaryStatus()
        promoted.canary = CanaryStatus(
            current_step_analysis_run_status=old.current_step_analysis_run_status,
            current_background_analysis_run_status=old.current_background_analysis_run_status,
            stable_ping_pong=other(stable_side(ctx.status)))
    steady(ctx.with_status(promoted.applied_to(ctx.status)), draft, strategy,
           hold_routes=strategy.ping_pong is None)
    draft.message = f"Revision {ctx.desired_hash} promoted to stable (was {old_stable})"


def steady(ctx: Context, draft: Draft, strategy: CanaryStrategy, *,
           hold_routes: bool = True) -> None:
    """No rollout in flight: the desired revision is (or becomes) the stable one.

    Also the git-revert path: when the desired template is the stable one again, all steps
    are skipped and the stable is restored at once; other revisions go as soon as the stable
    is fully available.
    """
    stable_hash = ctx.desired_hash
    stable = ctx.rs(stable_hash)
    scale(ctx, draft, stable, stable_hash, ctx.replicas, None)
    ready = fully_available(stable, ctx.replicas)
    pin_traffic(ctx, draft, strategy.stable_service, stable_hash)
    pin(ctx, draft, strategy.canary_service, stable_hash)
    _pin_ping_pong(ctx, draft, strategy, stable_hash, stable_hash)
    traffic = traffic_model(ctx, strategy)
    if stable is not None and hold_routes:
        # Both Services now select the stable revision; the routes go back to all-stable.
        _hold_traffic(ctx, draft, traffic, 0, None, stable)
    # With a router the previous revision keeps its pods for scaleDownDelaySeconds after
    # the switch (clients' connections drain); without one its pods were its traffic.
    retire_others(ctx, draft, {stable_hash}, stable_ready=ready and traffic.off_canary(None),
                  delay_seconds=strategy.scale_down_delay_seconds
                  if traffic.routes_traffic else None,
                  delayed_limit=strategy.scale_down_delay_revision_limit)
    terminate_runs(ctx, draft, keep_current=False)
    trim_runs(ctx, draft)
    old = ctx.status.canary or CanaryStatus()
    draft.changes.merge(StatusChanges(
        stable_rs=stable_hash,
        current_step_index=len(strategy.steps or []),
        pause_conditions=None,
        promote_full=None,
        canary=CanaryStatus(
            weights=with_experiment_weights(ctx, _weights(
                stable_hash, stable_hash, 0, ready, _full(strategy))),
            desired_weight=0,
            current_step_analysis_run_status=old.current_step_analysis_run_status,
            current_background_analysis_run_status=old.current_background_analysis_run_status,
            stable_ping_pong=recorded_side(strategy, ctx.status)),
    ))
    if ready:
        draft.phase = "Healthy"
        draft.message = f"Revision {stable_hash} is stable with {ctx.replicas} pods available"
    else:
        draft.phase = "Progressing"
        have = stable.available if stable else 0
        draft.message = (
            f"Revision {stable_hash}: {min(have, ctx.replicas)}/{ctx.replicas} pods available"
        )


def abort(ctx: Context, draft: Draft) -> None:
    """The abort transition's target: stable first, back to full size and pinned, then the
    canary pods go.

    Without a traffic router the canary's share of traffic is its share of pods, so the
    canary is removed as soon as the stable can carry everything. With a router the weight
    goes to 0 and the managed routes go first; the canary's pods follow once the routes read
    back 0, after abortScaleDownDelaySeconds.
    """
    strategy = ctx.spec.strategy.canary
    assert strategy is not None
    stable_hash = ctx.status.stable_rs
    stable = ctx.rs(stable_hash)
    if stable is None or stable_hash is None or stable_hash == ctx.desired_hash:
        steady(ctx, draft, strategy)  # nothing to abort to or from
        return
    canary = ctx.rs(ctx.desired_hash)
    traffic = traffic_model(ctx, strategy)
    scale(ctx, draft, stable, stable_hash, ctx.replicas, None)
    pin_traffic(ctx, draft, strategy.stable_service, stable_hash)
    pin(ctx, draft, strategy.canary_service, stable_hash)
    # The ping-pong canary side is re-pointed only once the routes give it nothing.
    _pin_ping_pong(ctx, draft, strategy, stable_hash,
                   stable_hash if traffic.off_canary(canary) else ctx.desired_hash)
    # Weight 0 and no managed route, before any canary pod goes.
    _hold_traffic(ctx, draft, traffic, 0, canary, stable)
    ready = fully_available(stable, ctx.replicas)
    retire_others(ctx, draft, {stable_hash}, stable_ready=ready and traffic.off_canary(canary),
                  delay_seconds=strategy.abort_scale_down_delay_seconds
                  if traffic.routes_traffic else None)
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
    actual = traffic.verified_weight(canary, stable)
    draft.changes.merge(StatusChanges(
        current_step_index=0,
        pause_conditions=None,
        promote_full=None,
        analysis_attempt=next_attempt(ctx) or None,
        canary=CanaryStatus(
            # The experiment templates' shares stay on show until the routes drop them.
            weights=with_experiment_weights(ctx, _weights(
                ctx.desired_hash, stable_hash, actual, False, _full(strategy))),
            desired_weight=0,
            current_step_analysis_run_status=run_status(latest_run(ctx, "step")),
            current_background_analysis_run_status=run_status(latest_run(ctx, "background")),
            stable_ping_pong=recorded_side(strategy, ctx.status)),
    ))
