"""How AnalysisRuns gate a Rollout: which run a step needs, and what its phase means.

- Successful: the gated step completes.
- Failed or Error: the Rollout aborts (traffic back to stable first, invariant 2).
- Inconclusive: the Rollout pauses (reason InconclusiveAnalysisRun) until promoted or aborted.
- Anything else (Pending, Running): wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rollouts.models.rollout import RolloutAnalysis
from rollouts.planner.context import Context, Draft
from rollouts.planner.types import (
    AnalysisRunView,
    CreateAnalysisRun,
    DeleteAnalysisRun,
    TerminateAnalysisRun,
)

INCONCLUSIVE_PAUSE = "InconclusiveAnalysisRun"
FINISHED = frozenset({"Successful", "Failed", "Error", "Inconclusive"})

Verdict = Literal["running", "successful", "failed", "inconclusive"]


@dataclass(frozen=True)
class Gate:
    verdict: Verdict
    run: AnalysisRunView | None

    def describe(self, what: str) -> str:
        if self.run is None:
            return f"{what}: starting analysis"
        text = f"{what}: AnalysisRun {self.run.name} {self.run.phase}"
        return f"{text}: {self.run.message}" if self.run.message else text


def attempt(ctx: Context) -> int:
    return ctx.status.analysis_attempt or 0


def find_run(ctx: Context, kind: str, step_index: int | None = None) -> AnalysisRunView | None:
    return next(
        (
            run
            for run in ctx.observed.analysis_runs
            if run.pod_hash == ctx.desired_hash
            and run.kind == kind
            and run.step_index == step_index
            and run.attempt == attempt(ctx)
        ),
        None,
    )


def gate(ctx: Context, draft: Draft, kind: str, analysis: RolloutAnalysis, field: str,
         step_index: int | None = None) -> Gate:
    """The verdict of the run for this slot, creating the run when there is none yet."""
    run = find_run(ctx, kind, step_index)
    if run is None:
        draft.actions.append(CreateAnalysisRun(
            kind=kind, pod_hash=ctx.desired_hash, analysis=analysis, field=field,
            step_index=step_index, attempt=attempt(ctx)))
        return Gate("running", None)
    if run.phase == "Successful":
        return Gate("successful", run)
    if run.phase in ("Failed", "Error"):
        return Gate("failed", run)
    if run.phase == "Inconclusive":
        return Gate("inconclusive", run)
    return Gate("running", run)


def latest_run(ctx: Context, kind: str) -> AnalysisRunView | None:
    """The newest run of this kind for the revision, of its latest attempt (for display:
    after an abort, the runs that caused it)."""
    runs = [r for r in ctx.observed.analysis_runs
            if r.pod_hash == ctx.desired_hash and r.kind == kind]
    return max(runs, key=lambda r: (r.attempt, r.created, r.step_index or 0, r.name),
               default=None)


def current(ctx: Context, run: AnalysisRunView) -> bool:
    """Whether a run belongs to the revision being rolled out, in this attempt."""
    return run.pod_hash == ctx.desired_hash and run.attempt == attempt(ctx)


def terminate_runs(ctx: Context, draft: Draft, *, keep_current: bool) -> None:
    """Stop unfinished runs the Rollout no longer waits for: those of other revisions and
    earlier attempts, and with `keep_current=False` (promoted, aborted) all of them."""
    for run in ctx.observed.analysis_runs:
        if run.phase in FINISHED or (keep_current and current(ctx, run)):
            continue
        draft.actions.append(TerminateAnalysisRun(run.name))


def trim_runs(ctx: Context, draft: Draft) -> None:
    """Delete finished runs beyond spec.analysis.{successful,unsuccessful}RunHistoryLimit."""
    limits = ctx.spec.analysis
    keep_ok = limits.successful_run_history_limit if limits else 5
    keep_bad = limits.unsuccessful_run_history_limit if limits else 5
    finished = sorted(
        (r for r in ctx.observed.analysis_runs if r.phase in FINISHED and not current(ctx, r)),
        key=lambda r: (r.created, r.name), reverse=True)
    good = [r for r in finished if r.phase == "Successful"]
    bad = [r for r in finished if r.phase != "Successful"]
    for run in good[keep_ok:] + bad[keep_bad:]:
        draft.actions.append(DeleteAnalysisRun(run.name))


def failure_message(what: str, g: Gate) -> str:
    assert g.run is not None
    detail = f": {g.run.message}" if g.run.message else ""
    return f"Aborted: {what} AnalysisRun {g.run.name} {g.run.phase}{detail}"


def next_attempt(ctx: Context) -> int:
    """The attempt number runs get after a retry of the current abort.

    Derived from the runs that exist, never from status alone, so planning the same abort
    twice gives the same number (invariant 6).
    """
    seen = [r.attempt for r in ctx.observed.analysis_runs if r.pod_hash == ctx.desired_hash]
    return max(seen) + 1 if seen else attempt(ctx)
