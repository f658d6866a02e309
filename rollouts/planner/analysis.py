"""How AnalysisRuns gate a Rollout: which run a step needs, and what its phase means.

- Successful: the gated step completes.
- Failed or Error: the Rollout aborts (traffic back to stable first, invariant 2).
- Inconclusive: the Rollout pauses (reason InconclusiveAnalysisRun) until promoted or aborted.
- Anything else (Pending, Running): wait.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from rollouts.models.rollout import (
    PauseCondition,
    RolloutAnalysisRunStatus,
    RolloutSpec,
    ValidRollout,
)
from rollouts.models.rollout_analysis import RolloutAnalysis
from rollouts.models.wire import COMPLETED_RUN_PHASES, INCONCLUSIVE_PAUSE
from rollouts.planner.context import Context, Draft
from rollouts.planner.manifests import desired_hash
from rollouts.planner.types import (
    AnalysisKind,
    AnalysisRunView,
    CreateAnalysisRun,
    DeleteAnalysisRun,
    ExperimentView,
    TerminateAnalysisRun,
    TerminateExperiment,
)

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


def analysis_references(spec: RolloutSpec) -> Iterator[tuple[AnalysisKind, str, RolloutAnalysis,
                                                                int | None]]:
    """(kind, field path, reference, step index) for every analysis the strategy asks for."""
    canary = spec.strategy.canary
    if canary is not None:
        for i, step in enumerate(canary.steps or []):
            if step.analysis is not None:
                yield "step", f"spec.strategy.canary.steps[{i}].analysis", step.analysis, i
        if canary.analysis is not None:
            yield "background", "spec.strategy.canary.analysis", canary.analysis, None
    blue_green = spec.strategy.blue_green
    if blue_green is not None:
        if blue_green.pre_promotion_analysis is not None:
            yield ("prePromotion", "spec.strategy.blueGreen.prePromotionAnalysis",
                   blue_green.pre_promotion_analysis, None)
        if blue_green.post_promotion_analysis is not None:
            yield ("postPromotion", "spec.strategy.blueGreen.postPromotionAnalysis",
                   blue_green.post_promotion_analysis, None)


def run_slot(rollout: ValidRollout) -> tuple[str, int]:
    """(revision, attempt) of the runs this pass may start: the desired revision, and the
    recorded attempt unless that revision is new (a new revision starts at attempt 0)."""
    desired = desired_hash(rollout)
    status = rollout.status
    if status.observed_pod_hash != desired:
        return desired, 0
    return desired, status.analysis_attempt or 0


def gate(ctx: Context, draft: Draft, kind: AnalysisKind, field: str,
         step_index: int | None = None) -> Gate:
    """The verdict of the run for the reference at `field`, starting it when there is none
    yet (from the run the observer prepared for this revision and attempt)."""
    run = find_run(ctx, kind, step_index)
    if run is None:
        prepared = ctx.observed.prepared_runs.get(field)
        if (prepared is not None and prepared.pod_hash == ctx.desired_hash
                and prepared.attempt == attempt(ctx)):
            draft.actions.append(CreateAnalysisRun(
                kind=prepared.kind, pod_hash=prepared.pod_hash, step_index=prepared.step_index,
                attempt=prepared.attempt, field=prepared.field, manifest=prepared.manifest))
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


def current(ctx: Context, run: AnalysisRunView | ExperimentView) -> bool:
    """Whether a run belongs to the revision being rolled out, in this attempt."""
    return run.pod_hash == ctx.desired_hash and run.attempt == attempt(ctx)


def terminate_runs(ctx: Context, draft: Draft, *, keep_current: bool) -> None:
    """Stop unfinished runs the Rollout no longer waits for: those of other revisions and
    earlier attempts, and with `keep_current=False` (promoted, aborted) all of them."""
    for run in ctx.observed.analysis_runs:
        if run.phase in COMPLETED_RUN_PHASES or (keep_current and current(ctx, run)):
            continue
        draft.actions.append(TerminateAnalysisRun(run.name))
    # The experiment steps' Experiments likewise (an open-ended one runs until here).
    for experiment in ctx.observed.experiments:
        if experiment.phase in COMPLETED_RUN_PHASES or experiment.terminating or (
                keep_current and current(ctx, experiment)):
            continue
        draft.actions.append(TerminateExperiment(experiment.name))


def trim_runs(ctx: Context, draft: Draft) -> None:
    """Delete finished runs beyond spec.analysis.{successful,unsuccessful}RunHistoryLimit."""
    limits = ctx.spec.analysis
    keep_ok = limits.successful_run_history_limit if limits else 5
    keep_bad = limits.unsuccessful_run_history_limit if limits else 5
    finished = sorted(
        (r for r in ctx.observed.analysis_runs
         if r.phase in COMPLETED_RUN_PHASES and not current(ctx, r)),
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
    made: list[AnalysisRunView | ExperimentView] = [*ctx.observed.analysis_runs,
                                                    *ctx.observed.experiments]
    seen = [r.attempt for r in made if r.pod_hash == ctx.desired_hash]
    return max(seen) + 1 if seen else attempt(ctx)


def run_status(run: AnalysisRunView | None) -> RolloutAnalysisRunStatus | None:
    """A run as the Rollout's status shows it."""
    if run is None:
        return None
    return RolloutAnalysisRunStatus(name=run.name, status=run.phase, message=run.message)


def pause_inconclusive(ctx: Context, pause_conditions: list[PauseCondition]
                       ) -> list[PauseCondition]:
    """The pause an Inconclusive run holds the Rollout in (until promote or abort)."""
    if any(p.reason == INCONCLUSIVE_PAUSE for p in pause_conditions):
        return pause_conditions
    return [*pause_conditions, PauseCondition(reason=INCONCLUSIVE_PAUSE, start_time=ctx.now)]
