"""setCanaryScale: size the canary independently of the weight from here on (needs a
traffic router, as in Argo Rollouts: without one the canary's pods are its weight, and the
spec is refused before planning). `Walk.canary_scale` keeps it in force for the steps after
it, until another setCanaryScale (`matchTrafficWeight: true` goes back to sizing by weight).

The step is done once the canary runs the pods it sizes, all available (Argo's "at the
desired replica counts"); what else the step holds (a pause, an analysis) starts then."""

from __future__ import annotations

from rollouts.models.rollout import CanaryStep
from rollouts.planner.context import Context, Draft
from rollouts.planner.steps import Advance, Outcome, Wait, Walk
from rollouts.planner.traffic import at_size, waiting_for_pods


def handle(ctx: Context, draft: Draft, walk: Walk, step: CanaryStep) -> Outcome:
    pods, _ = walk.traffic.pods(walk.weight, walk.canary, walk.stable, walk.canary_scale)
    if at_size(walk.canary, pods):
        return Advance()
    have = min(walk.canary.available, pods) if walk.canary else 0
    return Wait(f"{walk.label}: setCanaryScale: {waiting_for_pods(pods, have)}"
                if have < pods else f"{walk.label}: setCanaryScale: scaling the canary "
                f"to {pods} {'pod' if pods == 1 else 'pods'}")
