"""Run assessment: counters, limits, dry run, retention, scheduling, messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollouts.analysis.assessment import (
    ERROR_RETRY_SECONDS,
    apply_run_assessment,
    assess_metric,
    assess_run,
    error_measurement,
    format_value,
    is_worse,
    measure,
    measurement_due,
    new_result,
    next_measurement_at,
    record_measurement,
    requeue_after,
    trim_measurements,
)
from rollouts.models.analysis import (
    AnalysisRunSpec,
    Measurement,
    Metric,
    MetricResult,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def metric(**fields: Any) -> Metric:
    data: dict[str, Any] = {
        "name": "error-rate",
        "successCondition": "result[0] < 0.05",
        "provider": {"prometheus": {"query": "q"}},
    }
    data.update(fields)
    return Metric.model_validate(data)


def m(phase: str, at: int = 0, value: str | None = None, message: str | None = None) -> Measurement:
    return Measurement.model_validate(
        {
            "phase": phase,
            "startedAt": T0 + timedelta(seconds=at),
            "finishedAt": T0 + timedelta(seconds=at + 1),
            "value": value,
            "message": message,
        }
    )


def run(phases: Sequence[str], *, retention: int = 1000, name: str = "error-rate") -> MetricResult:
    result = new_result(name)
    for i, phase in enumerate(phases):
        result = record_measurement(result, m(phase, at=60 * i), retention=retention)
    return result


# ---------------------------------------------------------------------------------------------
# Counters


def test_counters_follow_argo() -> None:
    result = run(["Successful", "Failed", "Error", "Error", "Inconclusive", "Successful"])
    assert (result.count, result.successful, result.failed, result.inconclusive) == (4, 2, 1, 1)
    assert result.error == 2
    assert result.consecutive_error == 0  # reset by a non-error measurement
    assert result.consecutive_success == 1
    assert result.phase == "Running"
    assert len(result.measurements) == 6


def test_errors_break_success_streak_and_accumulate() -> None:
    result = run(["Successful", "Successful", "Error", "Error"])
    assert result.consecutive_success == 0
    assert result.consecutive_error == 2
    assert result.count == 2  # errors are not counted (Argo: count = S + F + I)


def test_in_flight_measurement_is_replaced_not_counted() -> None:
    result = record_measurement(new_result("job"), m("Running"))
    assert result.count == 0 and len(result.measurements) == 1
    result = record_measurement(result, m("Running", value="still"))
    assert len(result.measurements) == 1
    result = record_measurement(result, m("Successful"))
    assert result.count == 1 and result.successful == 1 and len(result.measurements) == 1


def test_error_message_is_kept_on_the_result() -> None:
    result = record_measurement(new_result("x"), m("Error", message="connection refused"))
    assert result.message == "connection refused"


def test_completed_result_is_frozen() -> None:
    done = run(["Successful"]).model_copy(update={"phase": "Successful"})
    assert record_measurement(done, m("Failed")) is done


# ---------------------------------------------------------------------------------------------
# Metric phase

ONE_SHOT: dict[str, Any] = {}
FIVE: dict[str, Any] = {"interval": "1m", "count": 5}
ENDLESS: dict[str, Any] = {"interval": "1m"}


@pytest.mark.parametrize(
    ("fields", "phases", "expected"),
    [
        # Effective count 1 without interval and count.
        (ONE_SHOT, [], "Pending"),
        (ONE_SHOT, ["Successful"], "Successful"),
        (ONE_SHOT, ["Failed"], "Failed"),
        (ONE_SHOT, ["Inconclusive"], "Inconclusive"),
        (ONE_SHOT, ["Error"], "Running"),  # retried: an error is not a measurement
        (ONE_SHOT, ["Error"] * 4, "Running"),
        (ONE_SHOT, ["Error"] * 5, "Error"),  # 5 > consecutiveErrorLimit 4
        (ONE_SHOT, ["Error"] * 4 + ["Successful"], "Successful"),
        (ONE_SHOT, ["Running"], "Running"),
        # count
        (FIVE, ["Successful"] * 4, "Running"),
        (FIVE, ["Successful"] * 5, "Successful"),
        (FIVE, ["Successful"] * 4 + ["Error"], "Running"),
        (FIVE, ["Successful", "Failed"], "Failed"),  # failureLimit 0
        ({**FIVE, "failureLimit": 2}, ["Failed", "Failed"], "Running"),
        ({**FIVE, "failureLimit": 2}, ["Failed"] * 3, "Failed"),
        (
            {**FIVE, "failureLimit": 2},
            ["Failed", "Failed", "Successful"] + ["Successful"] * 2,
            "Successful",
        ),
        ({**FIVE, "failureLimit": -1}, ["Failed"] * 5, "Successful"),
        ({**FIVE, "failureLimit": "3"}, ["Failed"] * 3, "Running"),
        ({**FIVE, "inconclusiveLimit": 1}, ["Inconclusive"], "Running"),
        ({**FIVE, "inconclusiveLimit": 1}, ["Inconclusive"] * 2, "Inconclusive"),
        ({**FIVE, "consecutiveErrorLimit": 0}, ["Error"], "Error"),
        ({**FIVE, "consecutiveErrorLimit": 2}, ["Error", "Error"], "Running"),
        ({**FIVE, "consecutiveErrorLimit": 2}, ["Error"] * 3, "Error"),
        (
            {**FIVE, "consecutiveErrorLimit": 2},
            ["Error", "Error", "Successful", "Error", "Error"],
            "Running",
        ),
        # consecutiveSuccessLimit
        (
            {**FIVE, "consecutiveSuccessLimit": 2, "failureLimit": 3},
            ["Successful"] * 2,
            "Successful",
        ),
        (
            {**FIVE, "consecutiveSuccessLimit": 2, "failureLimit": 3},
            ["Successful", "Failed", "Successful", "Failed", "Successful"],
            "Inconclusive",
        ),
        (
            {**FIVE, "consecutiveSuccessLimit": 3, "failureLimit": -1},
            ["Successful", "Failed"] * 2 + ["Successful"],
            "Failed",
        ),
        ({**ENDLESS, "consecutiveSuccessLimit": 3}, ["Successful"] * 3, "Successful"),
        # interval without count: runs until stopped or a limit
        (ENDLESS, ["Successful"] * 50, "Running"),
        (ENDLESS, ["Successful"] * 50 + ["Failed"], "Failed"),
    ],
)
def test_assess_metric(fields: dict[str, Any], phases: list[str], expected: str) -> None:
    assert assess_metric(metric(**fields), run(phases)).phase == expected


def test_terminating_metric_is_successful_unless_measuring() -> None:
    endless = metric(interval="1m")
    assert assess_metric(endless, run(["Successful"]), terminating=True).phase == "Successful"
    assert assess_metric(endless, None, terminating=True).phase == "Successful"
    assert assess_metric(endless, run(["Running"]), terminating=True).phase == "Running"
    assert assess_metric(endless, run(["Failed"]), terminating=True).phase == "Failed"


def test_completed_phase_is_sticky() -> None:
    done = run(["Failed"]).model_copy(update={"phase": "Failed", "message": "m"})
    assert assess_metric(metric(failureLimit=5), done).phase == "Failed"


def test_unresolved_limit_is_an_error_not_a_crash() -> None:
    assessed = assess_metric(metric(failureLimit="{{args.limit}}"), run(["Successful"]))
    assert assessed.phase == "Error"
    assert assessed.message is not None and "failureLimit" in assessed.message


# ---------------------------------------------------------------------------------------------
# Messages


def test_failure_message_names_metric_value_condition_and_limit() -> None:
    mt = metric(failureLimit=2, interval="1m", count=10)
    result = new_result("error-rate")
    for value in ([0.2], [0.12], [0.12]):
        result = record_measurement(result, measure(mt, value, started_at=T0, finished_at=T0))
    assessed = assess_metric(mt, result)
    assert assessed.phase == "Failed"
    assert assessed.message == (
        'metric "error-rate" failed: value [0.12] does not satisfy "result[0] < 0.05" '
        "(failures 3 > failureLimit 2)"
    )


def test_failure_message_with_failure_condition() -> None:
    mt = metric(failureCondition="result[0] > 0.1")
    result = record_measurement(
        new_result("error-rate"), measure(mt, [0.3], started_at=T0, finished_at=T0)
    )
    message = assess_metric(mt, result).message
    assert message is not None
    assert 'value [0.3] satisfies failureCondition "result[0] > 0.1"' in message


def test_error_message_says_why() -> None:
    mt = metric()
    result = new_result("error-rate")
    for _ in range(5):
        result = record_measurement(
            result, error_measurement("timeout after 10s", started_at=T0, finished_at=T0)
        )
    assessed = assess_metric(mt, result)
    assert assessed.phase == "Error"
    assert assessed.message == (
        'metric "error-rate" errored: timeout after 10s '
        "(consecutive errors 5 > consecutiveErrorLimit 4)"
    )


def test_no_data_is_inconclusive_or_error_with_reason() -> None:
    mt = metric()
    empty = measure(mt, [], started_at=T0, finished_at=T0)
    assert empty.phase == "Error" and empty.message is not None and "no data" in empty.message
    mt_none = metric(successCondition=None)
    nothing = measure(mt_none, [], started_at=T0, finished_at=T0)
    assert nothing.phase == "Inconclusive"
    result = record_measurement(new_result("error-rate"), nothing)
    message = assess_metric(mt_none, result).message
    assert message is not None and "no data" in message and "inconclusiveLimit 0" in message


def test_invalid_condition_gives_error_measurement() -> None:
    mt = metric(successCondition="result[0] <")
    bad = measure(mt, [0.1], started_at=T0, finished_at=T0)
    assert bad.phase == "Error"
    assert bad.message is not None and "invalid condition" in bad.message


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ([0.12], "[0.12]"),
        (0.5, "0.5"),
        (float("nan"), "NaN"),
        (float("inf"), "+Inf"),
        ({"a": 1}, '{"a":1}'),
        ("ok", "ok"),
        (None, "null"),
        (list(range(1000)), None),
    ],
)
def test_format_value(value: object, text: str | None) -> None:
    out = format_value(value)
    if text is None:
        assert len(out) <= 1024 and out.endswith("...")
    else:
        assert out == text


# ---------------------------------------------------------------------------------------------
# Run phase


def spec(*metrics: Metric, **fields: Any) -> AnalysisRunSpec:
    return AnalysisRunSpec.model_validate({"metrics": [x.to_wire() for x in metrics], **fields})


A = metric(name="a", interval="1m", count=3)
B = metric(name="b", interval="1m", count=3)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (["Successful"] * 3, ["Successful"] * 3, "Successful"),
        (["Successful"] * 3, ["Successful"], "Running"),
        (["Successful"] * 3, [], "Running"),
        (["Failed"], ["Successful"], "Failed"),  # a failure ends the run at once
        (["Failed"], ["Error"] * 5, "Failed"),  # Failed is worse than Error
        (["Error"] * 5, ["Inconclusive"], "Error"),
        (["Inconclusive"], ["Successful"] * 3, "Inconclusive"),
        (["Inconclusive"], ["Running"], "Inconclusive"),
    ],
)
def test_assess_run_worst_wins(a: list[str], b: list[str], expected: str) -> None:
    results = [run(a, name="a"), run(b, name="b")]
    assert assess_run(spec(A, B), results).phase == expected


def test_terminate_is_successful_like_argo() -> None:
    s = spec(A, B, terminate=True)
    assessed = assess_run(s, [run(["Successful"], name="a")])
    assert assessed.phase == "Successful" and assessed.terminating
    assert assessed.metric_phases["a"].phase == "Successful"
    assert assess_run(s, []).phase == "Successful"
    assert assess_run(s, [run(["Failed"], name="a")]).phase == "Failed"


def test_run_message_and_summary() -> None:
    results = [run(["Failed"], name="a"), run(["Successful"], name="b")]
    assessed = assess_run(spec(A, B), results)
    assert assessed.message is not None and assessed.message.startswith('metric "a" failed')
    assert assessed.run_summary.count == 2
    assert assessed.run_summary.failed == 1
    assert assessed.run_summary.successful == 1  # b terminated early -> Successful
    assert assessed.dry_run_summary is None


def test_dry_run_metric_never_fails_the_run() -> None:
    s = spec(A, B, dryRun=[{"metricName": "b"}])
    results = [run(["Successful"] * 3, name="a"), run(["Failed"], name="b")]
    assessed = assess_run(s, results)
    assert assessed.phase == "Successful"
    assert not assessed.terminating
    assert assessed.metric_phases["b"].phase == "Failed"
    assert assessed.dry_run_summary is not None
    assert (assessed.dry_run_summary.count, assessed.dry_run_summary.failed) == (1, 1)
    assert (assessed.run_summary.count, assessed.run_summary.successful) == (1, 1)
    assert assessed.message is not None and assessed.message.startswith('dry run: metric "b"')


def test_wildcard_dry_run_makes_run_successful_when_done() -> None:
    s = spec(A, B, dryRun=[{"metricName": "*"}])
    results = [run(["Failed"], name="a"), run(["Error"] * 5, name="b")]
    assert assess_run(s, results).phase == "Successful"


def test_apply_run_assessment_writes_phases() -> None:
    results = [run(["Failed"], name="a"), run(["Successful"], name="b")]
    updated = apply_run_assessment(results, assess_run(spec(A, B), results))
    assert [r.phase for r in updated] == ["Failed", "Successful"]
    assert updated[0].message is not None and "failureLimit" in updated[0].message


def test_is_worse_order() -> None:
    order = ["Successful", "Inconclusive", "Error", "Failed"]
    for i, low in enumerate(order):
        for high in order[i + 1 :]:
            assert is_worse(low, high)  # type: ignore[arg-type]
            assert not is_worse(high, low)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Retention


def test_retention_keeps_last_ten_by_default() -> None:
    result = new_result("a")
    for i in range(25):
        result = record_measurement(result, m("Successful", at=i))
    assert len(result.measurements) == 10
    assert result.measurements[0].started_at == T0 + timedelta(seconds=15)
    assert result.count == 25  # counters are not trimmed


def test_retention_limit_from_spec() -> None:
    s = spec(
        A,
        B,
        measurementRetention=[{"metricName": "a", "limit": 2}, {"metricName": "*", "limit": 5}],
    )
    assert s.retention_limit("a") == 2
    assert s.retention_limit("b") == 5
    assert spec(A).retention_limit("a") == 10
    assert len(run(["Successful"] * 4, retention=s.retention_limit("a")).measurements) == 2


def test_trim_keeps_at_least_one() -> None:
    assert len(trim_measurements([m("Successful"), m("Failed")], 0)) == 1


# ---------------------------------------------------------------------------------------------
# Scheduling


def test_first_measurement_after_initial_delay() -> None:
    assert next_measurement_at(metric(initialDelay="30s"), None, T0) == T0 + timedelta(seconds=30)
    assert next_measurement_at(metric(), None, T0) == T0


def test_interval_counts_from_previous_start_not_finish() -> None:
    mt = metric(interval="5m", count=3)
    slow = Measurement(phase="Successful", started_at=T0, finished_at=T0 + timedelta(seconds=40))
    result = record_measurement(new_result("error-rate"), slow)
    assert next_measurement_at(mt, result, T0) == T0 + timedelta(minutes=5)


def test_error_retry_is_min_of_interval_and_ten_seconds() -> None:
    result = run(["Error"])
    assert next_measurement_at(metric(interval="5m"), result, T0) == T0 + timedelta(
        seconds=ERROR_RETRY_SECONDS
    )
    assert next_measurement_at(metric(interval="3s"), result, T0) == T0 + timedelta(seconds=3)
    assert next_measurement_at(metric(), result, T0) == T0 + timedelta(seconds=10)


def test_nothing_scheduled_when_done() -> None:
    assert next_measurement_at(metric(), run(["Successful"]), T0) is None
    assert next_measurement_at(metric(interval="1m"), run(["Failed"]), T0) is None
    done = run(["Successful"]).model_copy(update={"phase": "Successful"})
    assert next_measurement_at(metric(interval="1m"), done, T0) is None


def test_in_flight_measurement_resumes_at_resume_at() -> None:
    resume = T0 + timedelta(seconds=20)
    result = record_measurement(
        new_result("job"), Measurement(phase="Running", started_at=T0, resume_at=resume)
    )
    assert next_measurement_at(metric(), result, T0) == resume
    result = record_measurement(new_result("job"), Measurement(phase="Running", started_at=T0))
    assert next_measurement_at(metric(), result, T0) is None


def test_measurement_due_and_requeue() -> None:
    mt = metric(name="a", interval="1m", count=3)
    result = run(["Successful"], name="a")
    assert not measurement_due(mt, result, T0, T0 + timedelta(seconds=59))
    assert measurement_due(mt, result, T0, T0 + timedelta(seconds=60))
    s = spec(mt, metric(name="b", initialDelay="10s"))
    assert requeue_after(s, [result], T0, T0 + timedelta(seconds=5)) == 5.0
    assert requeue_after(s, [result], T0, T0 + timedelta(seconds=90)) == 0.0
    finished = [run(["Successful"] * 3, name="a"), run(["Successful"], name="b")]
    assert requeue_after(s, finished, T0, T0) is None


# ---------------------------------------------------------------------------------------------
# Properties

_PHASES = st.sampled_from(["Successful", "Failed", "Inconclusive", "Error"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_PHASES, max_size=30),
    st.integers(min_value=-1, max_value=5),
    st.integers(min_value=0, max_value=5),
    st.integers(min_value=0, max_value=5),
    st.one_of(st.none(), st.integers(min_value=1, max_value=10)),
)
def test_counters_add_up(
    phases: list[str], failure: int, inconclusive: int, errors: int, count: int | None
) -> None:
    mt = metric(
        interval="1m",
        count=count,
        failureLimit=failure,
        inconclusiveLimit=inconclusive,
        consecutiveErrorLimit=errors,
    )
    result = new_result("error-rate")
    for i, phase in enumerate(phases):
        result = record_measurement(result, m(phase, at=i), retention=3)
        result = result.model_copy(update={"phase": assess_metric(mt, result).phase})
    assert result.count == result.successful + result.failed + result.inconclusive
    assert len(result.measurements) <= 3
    if result.phase == "Failed":
        assert failure >= 0 and result.failed > failure
    if result.phase == "Successful":
        assert count is not None and result.count >= count
        assert result.failed <= failure or failure < 0


@settings(max_examples=300, deadline=None)
@given(st.lists(_PHASES, min_size=1, max_size=10))
def test_error_measurement_never_yields_success(phases: list[str]) -> None:
    """However the history looks, a metric whose latest measurement is an Error is not
    Successful unless it had already reached its count before that error."""
    mt = metric(interval="1m", count=len(phases) + 1, consecutiveErrorLimit=100)
    result = run([*phases, "Error"])
    assert assess_metric(mt, result).phase != "Successful"
    one_shot = metric()
    only_errors = run(["Error"] * len(phases))
    assert assess_metric(one_shot, only_errors).phase in ("Running", "Error")
    assessed = assess_run(spec(one_shot), [only_errors])
    assert assessed.phase in ("Running", "Error")


def test_run_waits_for_dry_run_metrics_like_argo() -> None:
    s = spec(A, B, dryRun=[{"metricName": "b"}])
    results = [run(["Successful"] * 3, name="a"), run(["Successful"], name="b")]
    assert assess_run(s, results).phase == "Running"
