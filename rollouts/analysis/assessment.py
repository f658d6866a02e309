"""Pure assessment of an AnalysisRun: measurements in, phases, messages and schedule out.

No I/O and no clock: every function that needs the time takes `now`. The providers turn a
query into a value; this module turns values into measurements (`measure`), folds them into
a metric's counters (`record_measurement`), decides each metric's phase (`assess_metric`),
the run's phase (`assess_run`) and when the next measurement is due (`next_measurement_at`).

Argo Rollouts semantics kept (analysis/analysis.go: assessMetricStatus,
assessMetricFailureInconclusiveOrError, assessRunStatus; analysisutil.IsTerminating):
- limits are strict: Failed when failed > failureLimit, Inconclusive when
  inconclusive > inconclusiveLimit, Error when consecutiveError > consecutiveErrorLimit. With
  the default consecutiveErrorLimit 4, the 5th error in a row makes the metric Error.
- failureLimit -1 disables the failure check.
- `count` counts measurements that did not error (Successful + Failed + Inconclusive); a
  metric with a count succeeds once that many were taken without crossing a limit. Without
  count and interval the effective count is 1; with only an interval it runs until stopped.
- consecutiveSuccessLimit > 0: Successful once that many successes in a row. If count is
  reached first: Failed when failureLimit is -1, otherwise Inconclusive.
- A completed metric keeps its phase. A non-dry-run metric that ends Failed, Error or
  Inconclusive terminates the run; so does `spec.terminate`. While terminating, metrics that
  have not finished count as Successful, and the run takes the worst completed phase
  (Successful if nothing completed).
- Worst phase: Failed > Error > Inconclusive > Successful (analysisutil.IsWorse).
- Dry-run metrics are assessed and summarised in dryRunSummary but never change the run's
  phase and never terminate it.
- Measurement history keeps the last 10 per metric unless measurementRetention says otherwise.
- After an Error measurement the next try comes after min(interval, 10s).

Deliberate differences:
- A measurement with no data (nil, NaN, empty vector) is never Successful (see
  `conditions.measurement_outcome`), and an Error measurement also breaks a
  consecutiveSuccess streak.
- A metric with `compare` is judged by its evidence (`comparison.metric_verdict`), not by
  conditions, inconclusiveLimit or count alone.
- An unresolved or invalid limit (e.g. a leftover `{{args.x}}`) makes the metric Error with a
  message instead of raising.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Final

from rollouts.analysis.comparison import metric_verdict
from rollouts.analysis.conditions import (
    Condition,
    compile_condition,
    measurement_outcome,
)
from rollouts.errors import ConditionSyntaxError, InvalidSpecError
from rollouts.models.analysis import (
    COMPLETED_PHASES,
    DEFAULT_MEASUREMENT_RETENTION,
    AnalysisPhase,
    AnalysisRunSpec,
    Measurement,
    Metric,
    MetricResult,
    RunSummary,
)

ERROR_RETRY_SECONDS: Final = 10
MAX_VALUE_CHARS: Final = 1024  # what a measurement keeps of a value (status size)

# Worse phases have higher ranks.
_RANK: Final = MappingProxyType({"Successful": 0, "Inconclusive": 1, "Error": 2, "Failed": 3})


def is_completed(phase: str) -> bool:
    return phase in COMPLETED_PHASES


def is_worse(current: AnalysisPhase, candidate: AnalysisPhase) -> bool:
    return _RANK.get(candidate, -1) > _RANK.get(current, -1)


# ---------------------------------------------------------------------------------------------
# Measurements


def format_value(value: object) -> str:
    """The string a measurement stores: JSON-like, NaN/Inf spelled out, capped in length."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        text = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    else:
        try:
            text = json.dumps(value, separators=(",", ":"), allow_nan=True, default=str)
        except (TypeError, ValueError, RecursionError):
            text = repr(value)
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 3] + "..."
    return text


def compile_metric_conditions(metric: Metric) -> tuple[Condition | None, Condition | None]:
    """(success, failure) of a metric; ConditionSyntaxError if either does not parse."""
    success = compile_condition(metric.success_condition) if metric.success_condition else None
    failure = compile_condition(metric.failure_condition) if metric.failure_condition else None
    return success, failure


def measure(
    metric: Metric, value: object, *, started_at: datetime, finished_at: datetime
) -> Measurement:
    """A completed measurement for a value a provider returned."""
    try:
        success, failure = compile_metric_conditions(metric)
    except ConditionSyntaxError as exc:
        return error_measurement(
            f"invalid condition: {exc}", started_at=started_at, finished_at=finished_at
        )
    outcome = measurement_outcome(success, failure, value)
    return Measurement(
        phase=outcome.phase,
        value=format_value(value),
        started_at=started_at,
        finished_at=finished_at,
        message=outcome.message,
    )


def error_measurement(
    message: str, *, started_at: datetime, finished_at: datetime | None = None
) -> Measurement:
    """A measurement for a provider failure (network, timeout, bad answer): always Error."""
    return Measurement(
        phase="Error",
        started_at=started_at,
        finished_at=finished_at or started_at,
        message=message or "measurement failed without a message",
    )


def new_result(metric_name: str, *, dry_run: bool = False) -> MetricResult:
    return MetricResult(name=metric_name, phase="Pending", dry_run=dry_run or None)


def trim_measurements(measurements: Sequence[Measurement], limit: int) -> list[Measurement]:
    """The last `limit` measurements (at least one is always kept)."""
    keep = max(1, limit)
    return list(measurements[-keep:])


def record_measurement(
    result: MetricResult,
    measurement: Measurement,
    *,
    retention: int = DEFAULT_MEASUREMENT_RETENTION,
) -> MetricResult:
    """Fold a measurement into a metric's counters and history.

    An in-flight measurement (Pending/Running, e.g. a Job) is appended, or replaces the
    previous in-flight one; counters move only when a measurement completes. A completed
    metric is returned unchanged.
    """
    if is_completed(result.phase):
        return result
    history = list(result.measurements)
    if history and not is_completed(history[-1].phase):
        history.pop()
    history.append(measurement)
    counters: dict[str, int] = {
        "count": result.count,
        "successful": result.successful,
        "failed": result.failed,
        "inconclusive": result.inconclusive,
        "error": result.error,
        "consecutive_error": result.consecutive_error,
        "consecutive_success": result.consecutive_success,
    }
    phase = measurement.phase
    if phase == "Error":
        counters["error"] += 1
        counters["consecutive_error"] += 1
        counters["consecutive_success"] = 0
    elif phase in ("Successful", "Failed", "Inconclusive"):
        counters["count"] += 1
        counters["consecutive_error"] = 0
        counters[phase.lower()] += 1
        counters["consecutive_success"] = (
            counters["consecutive_success"] + 1 if phase == "Successful" else 0
        )
    update: dict[str, object] = {
        "measurements": trim_measurements(history, retention),
        "phase": "Running" if result.phase == "Pending" else result.phase,
        **counters,
    }
    if phase == "Error" and measurement.message:
        update["message"] = measurement.message
    return result.model_copy(update=update)


# ---------------------------------------------------------------------------------------------
# Metric assessment


@dataclass(frozen=True, slots=True)
class MetricAssessment:
    phase: AnalysisPhase
    message: str | None = None


@dataclass(frozen=True, slots=True)
class _Limits:
    failure: int
    inconclusive: int
    consecutive_error: int
    consecutive_success: int
    count: int | None


def _limits(metric: Metric) -> _Limits:
    return _Limits(
        failure=metric.effective_failure_limit(),
        inconclusive=metric.effective_inconclusive_limit(),
        consecutive_error=metric.effective_consecutive_error_limit(),
        consecutive_success=metric.effective_consecutive_success_limit(),
        count=metric.effective_count(),
    )


def assess_metric(
    metric: Metric, result: MetricResult | None, *, terminating: bool = False
) -> MetricAssessment:
    """The phase of one metric from its counters, with a message when it did not succeed."""
    if result is not None and is_completed(result.phase):
        return MetricAssessment(result.phase, result.message)
    if result is None or not result.measurements:
        return MetricAssessment("Successful" if terminating else "Pending")
    if not is_completed(result.measurements[-1].phase):
        return MetricAssessment("Running")
    try:
        limits = _limits(metric)
    except InvalidSpecError as exc:
        return MetricAssessment("Error", f"metric {metric.name!r}: {exc}")
    if metric.compare is not None:
        return _assess_comparison(metric, result, limits, terminating)

    if limits.failure >= 0 and result.failed > limits.failure:
        return MetricAssessment("Failed", metric_message(metric, result, "Failed"))
    if result.consecutive_error > limits.consecutive_error:
        return MetricAssessment("Error", metric_message(metric, result, "Error"))
    if result.inconclusive > limits.inconclusive:
        return MetricAssessment("Inconclusive", metric_message(metric, result, "Inconclusive"))
    if limits.consecutive_success > 0 and result.consecutive_success >= limits.consecutive_success:
        return MetricAssessment("Successful")
    if limits.count is not None and result.count >= limits.count:
        if limits.consecutive_success > 0:
            # The streak never came: Argo calls this Failed when failures are not limited,
            # Inconclusive when they are (neither limit decided).
            phase: AnalysisPhase = "Failed" if limits.failure < 0 else "Inconclusive"
            return MetricAssessment(
                phase,
                f"metric {_q(metric.name)} {phase.lower()}: count {limits.count} reached "
                f"without {limits.consecutive_success} consecutive successes "
                f"(best streak at the end: {result.consecutive_success})",
            )
        return MetricAssessment("Successful")
    if terminating:
        return MetricAssessment("Successful")
    return MetricAssessment("Running")


def _assess_comparison(
    metric: Metric, result: MetricResult, limits: _Limits, terminating: bool
) -> MetricAssessment:
    """A `compare` metric: failure and error limits as for any metric, then the verdict of
    its evidence (see `comparison`); inconclusiveLimit and conditions do not apply."""
    if limits.failure >= 0 and result.failed > limits.failure:
        last = _last(result, "Failed")
        why = last.message if last is not None and last.message else "canary worse than baseline"
        return MetricAssessment(
            "Failed",
            f"metric {_q(metric.name)} failed: {why} "
            f"(failures {result.failed} > failureLimit {limits.failure})",
        )
    if result.consecutive_error > limits.consecutive_error:
        return MetricAssessment("Error", metric_message(metric, result, "Error"))
    verdict = metric_verdict(metric, result)
    if verdict is not None:
        return MetricAssessment(verdict.phase, verdict.message)
    return MetricAssessment("Successful" if terminating else "Running")


def _q(text: str) -> str:
    return json.dumps(text)


def _last(result: MetricResult, phase: str) -> Measurement | None:
    return next((m for m in reversed(result.measurements) if m.phase == phase), None)


def metric_message(metric: Metric, result: MetricResult, phase: AnalysisPhase) -> str:
    """Why a metric ended in `phase`, naming the value and the condition involved.

    e.g. `metric "error-rate" failed: value 0.12 does not satisfy "result[0] < 0.05"
    (failures 3 > failureLimit 2)`.
    """
    name = _q(metric.name)
    if phase == "Failed":
        last = _last(result, "Failed")
        value = last.value if last is not None and last.value is not None else "?"
        if metric.failure_condition:
            why = f"value {value} satisfies failureCondition {_q(metric.failure_condition)}"
        elif metric.success_condition:
            why = f"value {value} does not satisfy {_q(metric.success_condition)}"
        else:
            why = f"value {value}"
        limit = metric.effective_failure_limit()
        return f"metric {name} failed: {why} (failures {result.failed} > failureLimit {limit})"
    if phase == "Error":
        last = _last(result, "Error")
        reason = last.message if last is not None and last.message else "no reason given"
        limit = metric.effective_consecutive_error_limit()
        return (
            f"metric {name} errored: {reason} (consecutive errors {result.consecutive_error}"
            f" > consecutiveErrorLimit {limit})"
        )
    if phase == "Inconclusive":
        last = _last(result, "Inconclusive")
        value = last.value if last is not None and last.value is not None else "?"
        conditions = " and ".join(
            f"{label} {_q(text)}"
            for label, text in (
                ("successCondition", metric.success_condition),
                ("failureCondition", metric.failure_condition),
            )
            if text
        )
        why = (
            last.message
            if last is not None and last.message
            else f"value {value} matches neither {conditions}"
            if conditions
            else f"value {value}"
        )
        limit = metric.effective_inconclusive_limit()
        return (
            f"metric {name} inconclusive: {why} (inconclusive {result.inconclusive}"
            f" > inconclusiveLimit {limit})"
        )
    return f"metric {name} {phase.lower()}"


# ---------------------------------------------------------------------------------------------
# Run assessment


@dataclass(frozen=True, slots=True)
class RunAssessment:
    phase: AnalysisPhase
    message: str | None
    metric_phases: Mapping[str, MetricAssessment]
    run_summary: RunSummary
    dry_run_summary: RunSummary | None
    terminating: bool


def _summary(phases: Sequence[AnalysisPhase]) -> RunSummary:
    return RunSummary(
        count=len(phases),
        successful=sum(p == "Successful" for p in phases),
        failed=sum(p == "Failed" for p in phases),
        inconclusive=sum(p == "Inconclusive" for p in phases),
        error=sum(p == "Error" for p in phases),
    )


def assess_run(spec: AnalysisRunSpec, results: Sequence[MetricResult]) -> RunAssessment:
    """The run's phase from every metric's results (worst wins), with summaries."""
    by_name = {r.name: r for r in results}
    first = {m.name: assess_metric(m, by_name.get(m.name)) for m in spec.metrics}
    terminating = bool(spec.terminate) or any(
        a.phase in ("Failed", "Error", "Inconclusive") and not spec.is_dry_run(name)
        for name, a in first.items()
    )
    assessed = (
        {m.name: assess_metric(m, by_name.get(m.name), terminating=True) for m in spec.metrics}
        if terminating
        else first
    )

    live = [m.name for m in spec.metrics if not spec.is_dry_run(m.name)]
    dry = [m.name for m in spec.metrics if spec.is_dry_run(m.name)]
    worst: AnalysisPhase | None = None
    message: str | None = None
    # Dry-run metrics are waited for (as in Argo) but never set the phase.
    everything_completed = all(is_completed(a.phase) for a in assessed.values())
    for name in live:
        assessment = assessed[name]
        if is_completed(assessment.phase) and (worst is None or is_worse(worst, assessment.phase)):
            worst = assessment.phase
            message = assessment.message

    if terminating:
        phase: AnalysisPhase = worst or "Successful"
    elif not everything_completed:
        phase, message = "Running", None
    else:
        phase = worst or "Successful"
    if phase == "Successful" and dry:
        dry_failures = [
            assessed[n].message or f"metric {_q(n)} {assessed[n].phase.lower()}"
            for n in dry
            if assessed[n].phase in ("Failed", "Error", "Inconclusive")
        ]
        if dry_failures:
            message = "dry run: " + "; ".join(dry_failures)

    def completed(names: Sequence[str]) -> list[AnalysisPhase]:
        return [assessed[n].phase for n in names if is_completed(assessed[n].phase)]

    return RunAssessment(
        phase=phase,
        message=message,
        metric_phases=assessed,
        run_summary=_summary(completed(live)).model_copy(update={"count": len(live)}),
        dry_run_summary=(
            _summary(completed(dry)).model_copy(update={"count": len(dry)}) if dry else None
        ),
        terminating=terminating,
    )


def apply_run_assessment(
    results: Sequence[MetricResult], assessment: RunAssessment
) -> list[MetricResult]:
    """The metric results with the phases (and messages) the assessment decided."""
    updated: list[MetricResult] = []
    for result in results:
        decided = assessment.metric_phases.get(result.name)
        if decided is None or decided.phase == result.phase:
            updated.append(result)
            continue
        update: dict[str, object] = {"phase": decided.phase}
        if decided.message:
            update["message"] = decided.message
        updated.append(result.model_copy(update=update))
    return updated


# ---------------------------------------------------------------------------------------------
# Scheduling


def next_measurement_at(
    metric: Metric, result: MetricResult | None, started_at: datetime
) -> datetime | None:
    """When `metric` should next be measured; None when it needs no more measurements
    (or an in-flight measurement has no resumeAt and will be woken by its own watch).

    The first measurement is due at the run's start plus initialDelay. Later ones are due
    `interval` after the previous measurement *started*, so the schedule does not drift by
    the time queries take. After an Error, the retry comes after min(interval, 10s).
    """
    if result is not None and is_completed(result.phase):
        return None
    if result is None or not result.measurements:
        return started_at + timedelta(seconds=metric.initial_delay_seconds())
    last = result.measurements[-1]
    if not is_completed(last.phase):
        return last.resume_at
    if is_completed(assess_metric(metric, result).phase):
        return None
    base = last.started_at or last.finished_at or started_at
    interval = metric.interval_seconds()
    if last.phase == "Error":
        wait = ERROR_RETRY_SECONDS if interval is None else min(interval, ERROR_RETRY_SECONDS)
        return base + timedelta(seconds=wait)
    if interval is None:
        return base
    return base + timedelta(seconds=interval)


def measurement_due(
    metric: Metric, result: MetricResult | None, started_at: datetime, now: datetime
) -> bool:
    due = next_measurement_at(metric, result, started_at)
    return due is not None and due <= now


def requeue_after(
    spec: AnalysisRunSpec, results: Sequence[MetricResult], started_at: datetime, now: datetime
) -> float | None:
    """Seconds until the earliest due measurement of any metric (0 if one is due now)."""
    by_name = {r.name: r for r in results}
    times = [
        t
        for m in spec.metrics
        if (t := next_measurement_at(m, by_name.get(m.name), started_at)) is not None
    ]
    if not times:
        return None
    return max(0.0, (min(times) - now).total_seconds())
