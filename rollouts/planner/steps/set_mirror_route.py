"""setMirrorRoute: matching requests are copied to the canary (their answers dropped) while
the stable serves them (a managed route; a step without `match` removes it). Done once the
route objects hold it; removed with every managed route on promotion and abort."""

from __future__ import annotations

from rollouts.models.rollout import CanaryStep
from rollouts.planner.context import Context, Draft
from rollouts.planner.steps import Outcome, Walk, hold_managed_route


def handle(ctx: Context, draft: Draft, walk: Walk, step: CanaryStep) -> Outcome:
    route = step.set_mirror_route
    assert route is not None
    verb = "set" if route.match else "removed"
    return hold_managed_route(ctx, walk, f'setMirrorRoute "{route.name}" {verb}')
