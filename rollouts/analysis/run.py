"""Stepping an AnalysisRun (pure): which measurements are due now, and folding results in.

The schedule is derived only from what the run's status records, never from memory, so a
controller restarted at any instant neither repeats nor skips a measurement:

- A measurement is identified by its *slot*: the time it was scheduled for, which is what
  its `startedAt` records. The first slot of a metric is the run's `startedAt` plus
  `initialDelay`; each later one is `interval` after the previous slot (after an Error,
  min(interval, 10s), as in Argo). See `assessment.next_measurement_at`.
- A slot is taken when `now` has reached it. When the controller was away for longer than an
  interval, the missed slots are not replayed in a burst: the latest slot at or before `now`
  on the same grid is taken, so the grid does not drift by the controller's lateness.
- Recording a measurement whose slot is already recorded (a retried pass, a write that
  raced) is a no-op; an in-flight measurement (a Job still running) is replaced by its
  later state, in place.

`step_run` decides; `apply_measurements` folds results in and assesses; neither writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from rollouts.analysis.assessment import (
    apply_run_assessment,
    assess_run,
    is_completed,
    new_result,
    next_measurement_at,
    record_measurement,
)
from rollouts.analysis.assessment import (
    requeue_after as _requeue_after,
)
from rollouts.errors import InvalidSpecError
from rollouts.models.analysis import (
    AnalysisRun,
    AnalysisRunStatus,
    Measurement,
    Metric,
    MetricResult,
)

__all__ = [
    "DueMeasurement",
    "RunDecision",
    "apply_measurements",
    "measurement_index",
    "requeue_after",
    "run_started_at",
    "step_run",
]


@dataclass(frozen=True)
class DueMeasurement:
    """One measurement to take (or, when `in_flight` is set, to look at again) now."""

    metric: Metric
    slot: datetime  # becomes the measurement's startedAt
    index: int  # 1-based ordinal of this measurement among the metric's measurements
    in_flight: Measurement | None = None  # the Running measurement being resumed, if any
    dry_run: bool = False


@dataclass(frozen=True)
class RunDecision:
    """What to do for a run at `now`."""

    started_at: datetime
    due: tuple[DueMeasurement, ...]
    completed: bool  # the run has a final phase: nothing will ever be due again
    terminating: bool  # spec.terminate: finish without measuring


def run_started_at(run: AnalysisRun, now: datetime) -> datetime:
    """When the run started: its recorded startedAt, else `now` (its first pass)."""
    status = run.status
    return status.started_at if status is not None and status.started_at else now


def measurement_index(result: MetricResult | None) -> int:
    """The ordinal of the metric's next (or in-flight) measurement.

    Counted from the counters, which move only when a measurement completes and are never
    trimmed by measurementRetention, so it is stable across passes and restarts.
    """
    if result is None:
        return 1
    return result.count + result.error + 1


def _slot(due: datetime, now: datetime, interval: int | None) -> datetime:
    """The latest slot on the grid `due + k*interval` that is not after `now`."""
    if interval is None or interval <= 0 or now <= due:
        return due
    missed = int((now - due).total_seconds() // interval)
    return due + timedelta(seconds=missed * interval)


def step_run(run: AnalysisRun, now: datetime) -> RunDecision:
    """Which metrics of `run` are due for a measurement at `now`.

    Nothing is due for a completed or terminating run, or for a metric that is complete,
    waiting for its initialDelay or interval, or waiting on an in-flight measurement whose
    `resumeAt` has not come.
    """
    status = run.status or AnalysisRunStatus()
    started_at = run_started_at(run, now)
    spec = run.spec
    if is_completed(status.phase):
        return RunDecision(started_at, (), completed=True, terminating=bool(spec.terminate))
    if spec.terminate:
        return RunDecision(started_at, (), completed=False, terminating=True)
    due: list[DueMeasurement] = []
    for metric in spec.metrics:
        result = status.result_for(metric.name)
        try:
            at = next_measurement_at(metric, result, started_at)
        except (InvalidSpecError, ValueError):
            # An unresolved limit: measure once more so assessment can report the Error.
            at = None if result is not None and result.measurements else started_at
        if at is None or at > now:
            continue
        last = result.measurements[-1] if result is not None and result.measurements else None
        if last is not None and not is_completed(last.phase):
            due.append(
                DueMeasurement(
                    metric,
                    last.started_at or at,
                    measurement_index(result),
                    in_flight=last,
                    dry_run=spec.is_dry_run(metric.name),
                )
            )
            continue
        try:
            interval = metric.interval_seconds()
        except ValueError:
            interval = None
        due.append(
            DueMeasurement(
                metric,
                _slot(at, now, interval),
                measurement_index(result),
                dry_run=spec.is_dry_run(metric.name),
            )
        )
    return RunDecision(started_at, tuple(due), completed=False, terminating=False)


def _already_recorded(result: MetricResult, measurement: Measurement) -> bool:
    """Whether `measurement`'s slot is already recorded as completed (or is older)."""
    if not result.measurements or measurement.started_at is None:
        return False
    last = result.measurements[-1]
    if last.started_at is None:
        return False
    if not is_completed(last.phase):
        # An in-flight measurement is replaced by the same slot's later state; an older
        # slot is stale.
        return measurement.started_at < last.started_at
    return measurement.started_at <= last.started_at


def apply_measurements(
    run: AnalysisRun, results: Mapping[str, Measurement], now: datetime
) -> AnalysisRunStatus:
    """The run's next status: `results` (metric name -> measurement) folded in, assessed.

    Sets startedAt once, keeps a completed run as it is, ignores a measurement whose slot
    is already recorded and measurements for metrics the spec does not have. The phase,
    message (naming the metric, value and condition), runSummary and dryRunSummary come
    from `assessment.assess_run`.
    """
    status = run.status or AnalysisRunStatus()
    if is_completed(status.phase):
        return status
    spec = run.spec
    started_at = run_started_at(run, now)
    by_name: dict[str, MetricResult] = {r.name: r for r in status.metric_results}
    for metric in spec.metrics:
        measurement = results.get(metric.name)
        if measurement is None:
            continue
        dry_run = spec.is_dry_run(metric.name)
        result = by_name.get(metric.name) or new_result(metric.name, dry_run=dry_run)
        if _already_recorded(result, measurement):
            continue
        by_name[metric.name] = record_measurement(
            result, measurement, retention=spec.retention_limit(metric.name)
        )
    # Keep the spec's order (stable output: the same inputs always serialise the same).
    ordered = [by_name[m.name] for m in spec.metrics if m.name in by_name]
    assessment = assess_run(spec, ordered)
    ordered = apply_run_assessment(ordered, assessment)
    phase = assessment.phase
    message = assessment.message
    if spec.terminate and is_completed(phase) and not message:
        message = "run terminated"
    if is_completed(phase):
        ordered = [_close_in_flight(r, now) for r in ordered]
    return AnalysisRunStatus(
        phase=phase,
        message=message,
        started_at=started_at,
        metric_results=ordered,
        run_summary=assessment.run_summary,
        dry_run_summary=assessment.dry_run_summary,
    )


TERMINATED_MESSAGE = "terminated: the run finished before this measurement did"


def _close_in_flight(result: MetricResult, now: datetime) -> MetricResult:
    """A metric whose measurement was still under way when the run finished: the
    measurement is closed as Inconclusive (never Successful), counters untouched."""
    if not result.measurements or is_completed(result.measurements[-1].phase):
        return result
    last = result.measurements[-1].model_copy(
        update={"phase": "Inconclusive", "finished_at": now, "message": TERMINATED_MESSAGE}
    )
    update: dict[str, object] = {"measurements": [*result.measurements[:-1], last]}
    if not is_completed(result.phase):
        update["phase"] = "Inconclusive"
        update["message"] = TERMINATED_MESSAGE
    return result.model_copy(update=update)


def requeue_after(run: AnalysisRun, status: AnalysisRunStatus, now: datetime) -> float | None:
    """Seconds until something is next due for `run` with `status` (None: nothing will be,
    the run is complete or only waits on watches)."""
    if is_completed(status.phase):
        return None
    started_at = status.started_at or now
    try:
        return _requeue_after(run.spec, status.metric_results, started_at, now)
    except (InvalidSpecError, ValueError):
        return 0.0
