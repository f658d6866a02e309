"""analysis: start the step's AnalysisRun and follow its verdict — Successful advances,
Failed/Error aborts, Inconclusive pauses until promoted or aborted, anything else waits."""

from __future__ import annotations

from rollouts.models.rollout import CanaryStep
from rollouts.planner.analysis import failure_message, gate, pause_inconclusive
from rollouts.planner.context import Context, Draft
from rollouts.planner.steps import Abort, Advance, Outcome, Pause, Wait, Walk


def handle(ctx: Context, draft: Draft, walk: Walk, step: CanaryStep) -> Outcome:
    verdict = gate(ctx, draft, "step", f"spec.strategy.canary.steps[{walk.index}].analysis",
                   walk.index)
    if verdict.verdict == "successful":
        return Advance()
    if verdict.verdict == "failed":
        return Abort(failure_message(f"step {walk.index + 1}", verdict))
    if verdict.verdict == "inconclusive":
        walk.pause_conditions[:] = pause_inconclusive(ctx, walk.pause_conditions)
        return Pause(verdict.describe(walk.label) + "; promote or abort")
    return Wait(verdict.describe(walk.label))
