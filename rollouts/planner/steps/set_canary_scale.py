"""setCanaryScale: size the canary independently of the weight from here on (needs a
traffic router, as in Argo Rollouts: without one the canary's pods are its weight, and the
spec is refused before planning). The step itself completes at once: `Walk.canary_scale`
keeps it in force for the steps after it."""

from __future__ import annotations

from rollouts.models.rollout import CanaryStep
from rollouts.planner.context import Context, Draft
from rollouts.planner.steps import Advance, Outcome, Walk


def handle(ctx: Context, draft: Draft, walk: Walk, step: CanaryStep) -> Outcome:
    return Advance()
