"""Which notification triggers a status change fires: a pure function of (old, new).

The planner writes a Rollout's whole status on every pass; comparing the status it read with
the one it writes tells what happened in between. Deriving events from the transition rather
than from the pass that caused it means a pass repeated on the same inputs (which writes
nothing, invariant 6) fires nothing either, and a restarted controller, whose first pass
starts from the status already written, fires nothing for what was already announced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from rollouts.models.rollout import RolloutAnalysisRunStatus, RolloutStatus

STARTED: Final = "on-rollout-started"
STEP_COMPLETED: Final = "on-rollout-step-completed"
PAUSED: Final = "on-rollout-paused"
ANALYSIS_FAILED: Final = "on-analysis-run-failed"
ABORTED: Final = "on-rollout-aborted"
COMPLETED: Final = "on-rollout-completed"
DEGRADED: Final = "on-rollout-degraded"

TRIGGERS: Final = (STARTED, STEP_COMPLETED, PAUSED, ANALYSIS_FAILED, ABORTED, COMPLETED,
                   DEGRADED)
# Argo Rollouts' names for the same moments, accepted in subscriptions.
ALIASES: Final = {"on-rollout-updated": STARTED, "on-analysis-run-error": ANALYSIS_FAILED}

_FAILED_RUN: Final = frozenset({"Failed", "Error"})


@dataclass(frozen=True)
class Fired:
    """One trigger fired by a transition, with the facts a message needs."""

    trigger: str
    revision: str | None
    step: int | None
    phase: str | None
    message: str


def fired(old: RolloutStatus, new: RolloutStatus) -> list[Fired]:
    """The triggers the transition old -> new fires, in the order they happened.

    `old` is the status as read (an empty status for a Rollout never reconciled). A first
    reconcile fires nothing: a Rollout that is created is deployed, not rolled out.

    >>> a = RolloutStatus(phase="Healthy", observed_pod_hash="a", current_pod_hash="a")
    >>> b = RolloutStatus(phase="Paused", observed_pod_hash="b", current_pod_hash="b",
    ...                   current_step_index=1)
    >>> [f.trigger for f in fired(a, b)]
    ['on-rollout-started', 'on-rollout-step-completed', 'on-rollout-paused']
    """
    if old.phase is None:
        return []
    names: list[str] = []
    same_revision = old.observed_pod_hash == new.observed_pod_hash
    if not same_revision or _restarted(old, new):
        names.append(STARTED)
    if _steps_done(old, new, same_revision):
        names.append(STEP_COMPLETED)
    if _analysis_failed(old, new):
        names.append(ANALYSIS_FAILED)
    if _aborted(old, new):
        names.append(ABORTED)
    if new.phase != old.phase:
        names.extend({"Paused": [PAUSED], "Degraded": [DEGRADED],
                      "Healthy": [COMPLETED]}.get(new.phase or "", []))
    elif not same_revision and new.phase == "Healthy":
        names.append(COMPLETED)  # a rollback to stable completes in the pass it starts
    return [Fired(name, new.observed_pod_hash or new.current_pod_hash,
                  new.current_step_index, new.phase, new.message) for name in names]


def _restarted(old: RolloutStatus, new: RolloutStatus) -> bool:
    """A retry: `rollouts retry` clears the abort in status itself, so the sign is the
    Rollout leaving Degraded (or abort) for progress on the same revision."""
    stopped = bool(old.abort) or old.phase == "Degraded"
    return stopped and not new.abort and new.phase in ("Progressing", "Paused")


def _aborted(old: RolloutStatus, new: RolloutStatus) -> bool:
    """The controller aborting (failed analysis, progress deadline) sets `abort` itself;
    `rollouts abort` writes it into status first, so the controller's own transition is the
    phase turning Degraded while aborted."""
    if not new.abort:
        return False
    return not old.abort or (old.phase != "Degraded" and new.phase == "Degraded")


def _steps_done(old: RolloutStatus, new: RolloutStatus, same_revision: bool) -> bool:
    if new.abort or new.current_step_index is None:
        return False
    before = old.current_step_index if same_revision else 0
    return new.current_step_index > (before or 0)


def _runs(status: RolloutStatus) -> list[RolloutAnalysisRunStatus]:
    runs: list[RolloutAnalysisRunStatus | None] = []
    if status.canary is not None:
        runs += [status.canary.current_step_analysis_run_status,
                 status.canary.current_background_analysis_run_status]
    if status.blue_green is not None:
        runs += [status.blue_green.pre_promotion_analysis_run_status,
                 status.blue_green.post_promotion_analysis_run_status]
    return [run for run in runs if run is not None]


def _analysis_failed(old: RolloutStatus, new: RolloutStatus) -> bool:
    failed_before = {run.name for run in _runs(old) if run.status in _FAILED_RUN}
    return any(run.status in _FAILED_RUN and run.name not in failed_before
               for run in _runs(new))
