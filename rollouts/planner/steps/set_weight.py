"""setWeight: done when the traffic model verifies the weight (served by available pods)."""

from __future__ import annotations

from rollouts.models.rollout import CanaryStep
from rollouts.planner.context import Context, Draft
from rollouts.planner.steps import Advance, Outcome, Wait, Walk


def handle(ctx: Context, draft: Draft, walk: Walk, step: CanaryStep) -> Outcome:
    """The weight in force is this step's; it is reached or waited for."""
    weight = walk.weight
    scale = walk.canary_scale
    if walk.traffic.reached(weight, walk.canary, walk.stable, scale):
        return Advance()
    return Wait(f"{walk.label}: setWeight {weight}: "
                f"{walk.traffic.waiting(weight, walk.canary, walk.stable, scale)}")
