"""Judging `compare` metrics (pure): both sides' numbers in, a measurement with Evidence out.

A comparison metric is measured like any other (interval, count, initialDelay), but each
measurement is a *look* at canary versus baseline judged by `statistics`:

- `mannWhitney`: every look is its own fixed-horizon test of the samples it fetched.
- `sequentialCounts`: every look adds the new errors and requests (queries over
  `[{{interval}}]`) to the test's state, carried in the previous measurement's evidence, so
  the decision uses everything seen since the run started and stays valid at every look.

Decisions, the phase of the measurement that records them, and what the metric does:

- fail: Failed; the metric fails once failures exceed failureLimit (default 0: at once).
- pass: Successful; sequentialCounts ends Successful at once (an early pass, or the last
  look); mannWhitney ends Successful when `count` looks were taken.
- continue with enough traffic: Successful (nothing wrong so far); keeps measuring.
- continue with too little traffic: Inconclusive; keeps measuring, past `count` for at most
  `extraMeasurements` more looks.
- inconclusive: Inconclusive; the metric ends Inconclusive (too little traffic by the last
  allowed look, count evidence of an excess that the consistency checks never confirmed, or
  a last look that shows no regression but does not rule out one of `passMargin`: extended
  like too little traffic, then the rollout pauses rather than promotes).

`inconclusiveLimit` does not apply: looks without enough traffic are how a comparison waits.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from rollouts.analysis.providers.base import ComparisonSamples
from rollouts.models.analysis import AnalysisPhase, Measurement, Metric, MetricResult
from rollouts.models.comparison import Compare
from rollouts.models.comparison import Evidence as EvidenceRecord

if TYPE_CHECKING:
    # numpy comes with the statistics: imported where a comparison is judged, so that a
    # controller or a CLI command that judges nothing does not pay for it.
    from rollouts.analysis.sequential import SequentialState
    from rollouts.analysis.statistics import Evidence, Tolerance

__all__ = [
    "ComparisonVerdict",
    "evidence_line",
    "evidence_suffix",
    "judge",
    "last_evidence",
    "look_number",
    "metric_verdict",
]

_STATE_DIGITS = 4  # log-likelihoods kept to 1e-4: e-values to 0.01% (status size)


def look_number(result: MetricResult | None) -> int:
    """The 1-based number of the next look: measurements that did not error, plus one."""
    return (result.count if result is not None else 0) + 1


def last_evidence(result: MetricResult | None) -> EvidenceRecord | None:
    """The evidence of the latest measurement that has one (errors have none)."""
    if result is None:
        return None
    return next((m.evidence for m in reversed(result.measurements) if m.evidence), None)


def _tolerance(compare: Compare) -> Tolerance:
    from rollouts.analysis.statistics import Tolerance

    tolerance = compare.effective_tolerance()
    return Tolerance(relative=tolerance.relative, absolute=tolerance.absolute)


def encode_state(state: SequentialState) -> str:
    window = state.window
    # The checks' open window (looks shorter than a check window); absent when none is open,
    # so that one-minute looks keep the shape states had before windows.
    open_window = (
        {} if window.empty else {"window": [*window.counts, window.seconds, window.looks]}
    )
    # The dispersion's Pearson X^2 per grid ratio and its windows; absent before a window.
    pearson = (
        {
            "pearson": _rounded(state.pearson),
            "pearsonNewest": _rounded(state.pearson_newest),
            "pearsonWindows": state.pearson_windows,
        }
        if state.pearson_newest
        else {}
    )
    # The plain judgment's strongest failure so far (log 1/alpha per side); absent: none.
    plain_failed = (
        {"plainFailedLogE": _rounded(state.plain_failed_log_e)}
        if any(state.plain_failed_log_e)
        else {}
    )
    return json.dumps(
        {
            "tolerance": state.tolerance,
            "logLikelihood": _rounded(state.log_likelihood),
            "totals": [
                state.canary_errors,
                state.canary_requests,
                state.baseline_errors,
                state.baseline_requests,
            ],
            "looks": state.looks,
            "signs": [state.looks_with_errors, state.looks_above, state.looks_below],
            "swingLogLikelihood": _rounded(state.swing_log_likelihood),
            "restarting": [
                _rounded(state.swing_up),
                _rounded(state.swing_down),
                _rounded(state.signs_up),
                _rounded(state.signs_down),
            ],
            **open_window,
            **pearson,
            **plain_failed,
        },
        separators=(",", ":"),
    )


def _rounded(values: tuple[float, ...]) -> list[float]:
    return [round(v, _STATE_DIGITS) for v in values]


def decode_state(text: str | None, tolerance: float) -> SequentialState:
    """The state a previous look left; a fresh one when there is none. ValueError when it
    cannot be read or was built for another tolerance (never a silent restart). A state
    saved before the consistency checks existed (no "swingLogLikelihood") keeps its count
    evidence; the checks start from its next look. One saved before they restarted (a
    whole-run "swingLogLikelihood", no "restarting") carries them on from the run's start.
    One saved before the dispersion estimate (no "pearson") estimates it from its next
    window on; one without "plainFailedLogE" remembers no plain failure."""
    from rollouts.analysis.check_windows import Window
    from rollouts.analysis.sequential import SequentialState, resume_checks

    fresh = SequentialState.start(tolerance)
    if text is None:
        return fresh
    try:
        data = json.loads(text)
        log_likelihood = tuple(float(v) for v in data["logLikelihood"])
        xc, nc, xb, nb = (float(v) for v in data["totals"])
        looks = int(data["looks"])
        recorded = float(data["tolerance"])
        swing = tuple(float(v) for v in data.get("swingLogLikelihood", ()))
        with_errors, above, below = (int(v) for v in data.get("signs", (0, 0, 0)))
        swing_up, swing_down, signs_up, signs_down = (
            tuple(float(v) for v in values) for values in data.get("restarting", ((),) * 4)
        )
        saved_window = [float(v) for v in data.get("window", (0.0,) * 6)]
        if len(saved_window) != 6:
            raise ValueError(f"window: 6 numbers expected, got {len(saved_window)}")
        xc_open, nc_open, xb_open, nb_open, seconds_open, looks_open = saved_window
        window = Window(xc_open, nc_open, xb_open, nb_open, seconds_open, int(looks_open))
        pearson = tuple(float(v) for v in data.get("pearson", ()))
        pearson_newest = tuple(float(v) for v in data.get("pearsonNewest", ()))
        pearson_windows = int(data.get("pearsonWindows", 0))
        plain_up, plain_down = (float(v) for v in data.get("plainFailedLogE", (0.0, 0.0)))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"the sequential test's saved state is unreadable: {exc}") from None
    size = len(fresh.log_likelihood)
    if (
        recorded != tolerance
        or len(log_likelihood) != size
        or len(swing) not in (0, size)
        or len(pearson) not in (0, size)
        or len(pearson_newest) not in (0, size)
    ):
        raise ValueError("the sequential test's saved state was built for another tolerance")
    state = SequentialState(
        tolerance,
        log_likelihood,
        canary_requests=nc,
        canary_errors=xc,
        baseline_requests=nb,
        baseline_errors=xb,
        looks=looks,
        swing_up=swing_up,
        swing_down=swing_down,
        signs_up=signs_up,
        signs_down=signs_down,
        looks_with_errors=with_errors,
        looks_above=above,
        looks_below=below,
        swing_log_likelihood=swing,
        window=window,
        pearson=pearson,
        pearson_newest=pearson_newest,
        pearson_windows=pearson_windows,
        plain_failed_log_e=(plain_up, plain_down),
    )
    shapes = fresh.update(1.0, 1.0, 1.0, 1.0)  # the checks' sizes for this tolerance
    for saved, expected in (
        (swing_up, shapes.swing_up),
        (swing_down, shapes.swing_down),
        (signs_up, shapes.signs_up),
        (signs_down, shapes.signs_down),
    ):
        if len(saved) not in (0, len(expected)):
            raise ValueError("the sequential test's saved state was built for another tolerance")
    return resume_checks(state, swing) if "restarting" not in data else state


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def to_record(evidence: Evidence) -> EvidenceRecord:
    low, high = evidence.interval if evidence.interval is not None else (None, None)
    return EvidenceRecord(
        test=evidence.test,
        decision=evidence.decision,
        reason=evidence.reason,
        canary=evidence.canary,
        baseline=evidence.baseline,
        canary_errors=evidence.canary_errors,
        baseline_errors=evidence.baseline_errors,
        statistic=_finite_or_none(evidence.statistic),
        effect=_finite_or_none(evidence.effect),
        interval_low=_finite_or_none(low),
        interval_high=_finite_or_none(high),
        confidence=evidence.confidence,
        p_value=evidence.p_value,
        e_value=_finite_or_none(evidence.e_value),
        looks=evidence.looks,
        state=encode_state(evidence.state) if evidence.state is not None else None,
    )


def _decide_samples(compare: Compare, samples: ComparisonSamples, look: int) -> Evidence:
    from rollouts.analysis.rank_tests import mann_whitney

    evidence = mann_whitney(
        samples.canary,
        samples.baseline,
        direction=compare.effective_direction(),
        tolerance=_tolerance(compare),
        confidence=compare.effective_confidence(),
        min_samples=compare.effective_min_samples(),
    )
    return replace(evidence, looks=look)


def _decide_counts(
    metric: Metric, compare: Compare, samples: ComparisonSamples, previous: EvidenceRecord | None
) -> Evidence:
    from rollouts.analysis.check_windows import CHECK_WINDOW_SECONDS
    from rollouts.analysis.sequential import sequential_counts

    count = metric.effective_count()
    tolerance = _tolerance(compare).relative
    assert tolerance is not None  # the model refuses absolute tolerances for counts
    state = decode_state(previous.state if previous is not None else None, tolerance).update(
        math.fsum(samples.canary),
        math.fsum(samples.canary_total),
        math.fsum(samples.baseline),
        math.fsum(samples.baseline_total),
        seconds=float(metric.interval_seconds() or CHECK_WINDOW_SECONDS),
    )
    return sequential_counts(
        state,
        direction=compare.effective_direction(),
        confidence=compare.effective_confidence(),
        min_samples=compare.effective_min_samples(),
        final=count is not None and state.looks >= count,
        pass_margin=compare.effective_pass_margin(),
    )


def judge(
    metric: Metric,
    samples: ComparisonSamples,
    result: MetricResult | None,
    *,
    started_at: datetime,
    finished_at: datetime,
) -> Measurement:
    """The measurement for one look at both sides of `metric` (which has `compare`).

    Raises ValueError (or InvalidSpecError) when the metric cannot be judged: the caller
    records an Error measurement.
    """
    compare = metric.compare
    if compare is None:
        raise ValueError(f"metric {metric.name!r} has no compare")
    look = look_number(result)
    if compare.test == "sequentialCounts":
        previous = last_evidence(result)
        if previous is None and look > 1:
            # Every earlier look left evidence; none is left when measurementRetention kept
            # only errors since. Starting over would silently forget what was seen.
            raise ValueError(
                "the sequential test's state is gone (measurementRetention kept only errors "
                "since the last look): raise measurementRetention for this metric"
            )
        evidence = _decide_counts(metric, compare, samples, previous)
    else:
        evidence = _decide_samples(compare, samples, look)
    phases: dict[str, AnalysisPhase] = {
        "fail": "Failed",
        "pass": "Successful",
        "continue": "Successful",
        "inconclusive": "Inconclusive",
    }
    phase = phases[evidence.decision]
    if evidence.decision == "inconclusive":
        count = metric.effective_count()
        traffic = evidence.has_min_samples(compare.effective_min_samples())
        extra = (
            compare.effective_extra_measurements(count, traffic=traffic)
            if metric.interval is not None
            else 0
        )
        if count is None or look < count + extra:
            waiting = (
                f" (extra measurement {look - count + 1} of {extra})"
                if count is not None and look >= count
                else ""
            )
            evidence = replace(
                evidence, decision="continue", reason=f"waiting: {evidence.reason}{waiting}"
            )
        else:
            evidence = replace(evidence, reason=f"{evidence.reason} after {look} measurements")
    record = to_record(evidence)
    return Measurement(
        phase=phase,
        value=None if record.effect is None else f"{record.effect:.6g}",
        started_at=started_at,
        finished_at=finished_at,
        message=evidence.reason,
        evidence=record,
    )


@dataclass(frozen=True, slots=True)
class ComparisonVerdict:
    phase: AnalysisPhase
    message: str | None = None


def metric_verdict(metric: Metric, result: MetricResult) -> ComparisonVerdict | None:
    """The phase a comparison metric reached from its latest evidence; None while it is
    still measuring. Failure and error limits are checked by the caller, as for any metric.
    """
    evidence = last_evidence(result)
    if evidence is None or metric.compare is None:
        return None
    name = json.dumps(metric.name)
    if evidence.decision == "inconclusive":
        return ComparisonVerdict("Inconclusive", f"metric {name} inconclusive: {evidence.reason}")
    if evidence.decision != "pass":
        return None
    count = metric.effective_count()
    if metric.compare.test == "sequentialCounts" or (count is not None and result.count >= count):
        return ComparisonVerdict("Successful")
    return None


def evidence_line(evidence: EvidenceRecord) -> str:
    """One line for `rollouts get`: the decision, the test and why."""
    looks = f", look {evidence.looks}" if evidence.looks else ""
    return f"{evidence.decision} ({evidence.test}{looks}): {evidence.reason}"


def evidence_suffix(result: MetricResult) -> str:
    """What `rollouts get` appends to a comparison metric's line: ' | <evidence line>' for
    its latest evidence; '' for other metrics."""
    evidence = last_evidence(result)
    return "" if evidence is None else f" | {evidence_line(evidence)}"
