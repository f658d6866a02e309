"""Stepping an AnalysisRun: what is due when, and folding measurements in (pure, tables)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollouts.analysis.assessment import error_measurement, measure
from rollouts.analysis.run import (
    TERMINATED_MESSAGE,
    apply_measurements,
    measurement_index,
    requeue_after,
    step_run,
)
from rollouts.models.analysis import AnalysisRun, AnalysisRunStatus, Measurement, load_analysis_run

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def metric(name: str = "rate", **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "successCondition": "result[0] >= 0.95",
        "provider": {"prometheus": {"query": "q"}},
        **fields,
    }


def make_run(
    *metrics: dict[str, Any], status: AnalysisRunStatus | None = None, **spec: Any
) -> AnalysisRun:
    body: dict[str, Any] = {
        "metadata": {"name": "r", "namespace": "default"},
        "spec": {"metrics": list(metrics) or [metric()], **spec},
    }
    run = load_analysis_run(body)
    return run.model_copy(update={"status": status}) if status is not None else run


def with_status(run: AnalysisRun, status: AnalysisRunStatus) -> AnalysisRun:
    return run.model_copy(update={"status": status})


Values = Callable[[str, datetime], object]


def one_pass(run: AnalysisRun, now: datetime, values: Values) -> tuple[AnalysisRun, list[datetime]]:
    """step -> measure every due metric with `values` -> apply; returns the run and slots taken."""
    decision = step_run(run, now)
    results: dict[str, Measurement] = {}
    for due in decision.due:
        value = values(due.metric.name, now)
        if isinstance(value, Exception):
            results[due.metric.name] = error_measurement(
                str(value), started_at=due.slot, finished_at=now
            )
        else:
            results[due.metric.name] = measure(
                due.metric, value, started_at=due.slot, finished_at=now
            )
    status = apply_measurements(run, results, now)
    return with_status(run, status), [d.slot for d in decision.due]


def good(_name: str, _now: datetime) -> object:
    return [0.99]


def slots_of(run: AnalysisRun, name: str = "rate") -> list[datetime]:
    assert run.status is not None
    result = run.status.result_for(name)
    assert result is not None
    return [m.started_at for m in result.measurements if m.started_at is not None]


# --- due-ness -----------------------------------------------------------------------------


def test_first_pass_sets_started_at_and_measures_at_once() -> None:
    run = make_run(metric(interval="1m"))
    decision = step_run(run, T0)
    assert [(d.metric.name, d.slot, d.index) for d in decision.due] == [("rate", T0, 1)]
    run, _ = one_pass(run, T0, good)
    assert run.status is not None
    assert run.status.started_at == T0
    assert run.status.phase == "Running"
    # startedAt is set once.
    run, _ = one_pass(run, at(60), good)
    assert run.status is not None and run.status.started_at == T0


@pytest.mark.parametrize(
    ("initial_delay", "now", "due", "requeue"),
    [
        ("30s", 0, False, 30.0),
        ("30s", 29, False, 1.0),
        ("30s", 30, True, None),
        ("2m", 119.5, False, 0.5),
    ],
)
def test_initial_delay(initial_delay: str, now: float, due: bool, requeue: float | None) -> None:
    started = AnalysisRunStatus(phase="Running", started_at=T0)
    run = make_run(metric(initialDelay=initial_delay, interval="1m"), status=started)
    decision = step_run(run, at(now))
    assert bool(decision.due) is due
    if due:
        assert decision.due[0].slot == at(now)
    else:
        assert requeue_after(run, started, at(now)) == requeue


def test_interval_grid_does_not_drift_with_late_passes() -> None:
    run = make_run(metric(interval="60s"))
    taken: list[datetime] = []
    # Every pass comes 1.5 s late; a long outage from 130 s to 330 s.
    for now in (0, 61.5, 121.5, 330, 361.5, 421.5):
        run, slots = one_pass(run, at(now), good)
        taken += slots
    assert taken == [at(0), at(60), at(120), at(300), at(360), at(420)]
    assert slots_of(run) == taken  # startedAt is the slot


def test_no_burst_after_an_outage() -> None:
    run, _ = one_pass(make_run(metric(interval="10s")), T0, good)
    run, slots = one_pass(run, at(1000), good)
    assert slots == [at(1000)]
    assert step_run(run, at(1000)).due == ()


def test_count_ends_the_metric() -> None:
    run = make_run(metric(interval="10s", count=3))
    for now in (0, 10, 20):
        run, _ = one_pass(run, at(now), good)
    assert run.status is not None
    assert run.status.phase == "Successful"
    assert run.status.result_for("rate").count == 3  # type: ignore[union-attr]
    assert step_run(run, at(30)).completed
    assert requeue_after(run, run.status, at(30)) is None
    assert apply_measurements(run, {}, at(40)) == run.status


def test_single_measurement_without_interval() -> None:
    run, _ = one_pass(make_run(metric()), T0, good)
    assert run.status is not None and run.status.phase == "Successful"
    assert run.status.run_summary is not None and run.status.run_summary.successful == 1


def test_requeue_points_at_the_next_slot() -> None:
    run, _ = one_pass(make_run(metric(interval="5m"), metric("lat", interval="1m")), T0, good)
    assert run.status is not None
    assert requeue_after(run, run.status, at(10)) == 50.0


# --- idempotence and restarts --------------------------------------------------------------


def test_stepping_twice_at_the_same_time_measures_once() -> None:
    run, first = one_pass(make_run(metric(interval="30s")), T0, good)
    assert first == [T0]
    again = step_run(run, T0)
    assert again.due == ()
    later = step_run(run, at(15))
    assert later.due == ()


def test_applying_the_same_measurement_twice_changes_nothing() -> None:
    run = make_run(metric(interval="30s"))
    decision = step_run(run, T0)
    m = measure(decision.due[0].metric, [0.99], started_at=decision.due[0].slot, finished_at=T0)
    once = apply_measurements(run, {"rate": m}, T0)
    twice = apply_measurements(with_status(run, once), {"rate": m}, at(1))
    assert twice == once
    # An older slot arriving late is stale and ignored too.
    run2, _ = one_pass(with_status(run, once), at(30), good)
    stale = measure(decision.due[0].metric, [0.1], started_at=at(0), finished_at=at(31))
    assert run2.status is not None
    assert apply_measurements(run2, {"rate": stale}, at(31)) == run2.status


def test_unknown_metric_results_are_ignored() -> None:
    run = make_run(metric(interval="30s"))
    status = apply_measurements(run, {"ghost": error_measurement("x", started_at=T0)}, T0)
    assert status.metric_results == []
    assert status.phase == "Running"


def roundtrip(run: AnalysisRun) -> AnalysisRun:
    """What a fresh controller reads back from the API server."""
    body = {"metadata": run.metadata, "spec": run.spec.to_wire()}
    if run.status is not None:
        body["status"] = run.status.to_wire()
    return load_analysis_run(body)


KEEP_ALL = [{"metricName": "*", "limit": 1000}]


@settings(max_examples=60, deadline=None)
@given(
    passes=st.lists(st.floats(min_value=0.0, max_value=45.0), min_size=1, max_size=40),
    kills=st.lists(st.booleans(), min_size=40, max_size=40),
)
def test_restarts_give_exactly_the_uninterrupted_history(
    passes: list[float], kills: list[bool]
) -> None:
    """A controller killed after any pass (the next one re-reads the status from the server)
    records exactly what an uninterrupted one does; a duplicate pass at the same instant
    measures nothing."""
    steady = make_run(metric(interval="20s"), measurementRetention=KEEP_ALL)
    chaotic = steady
    now = 0.0
    for i, gap in enumerate(passes):
        now += gap
        steady, _ = one_pass(steady, at(now), good)
        chaotic, _ = one_pass(chaotic, at(now), good)
        if kills[i]:
            chaotic = roundtrip(chaotic)
        again, slots = one_pass(chaotic, at(now), good)
        assert slots == []
        assert again.status == chaotic.status
    assert chaotic.status == steady.status


@settings(max_examples=60, deadline=None)
@given(
    passes=st.lists(st.floats(min_value=0.0, max_value=45.0), min_size=1, max_size=40),
    lost=st.lists(st.booleans(), min_size=40, max_size=40),
)
def test_lost_writes_neither_repeat_nor_drift(passes: list[float], lost: list[bool]) -> None:
    """Passes whose status write was lost (killed after measuring, before writing) are
    re-measured later on the same grid: no duplicate slot, no drift, and the latest slot
    matches an uninterrupted controller's. (The first write is kept: until startedAt is
    recorded the grid has no origin, and a lost first pass simply starts the run later.)"""
    lost = [False, *lost]
    steady = make_run(metric(interval="20s"), measurementRetention=KEEP_ALL)
    chaotic = steady
    now = 0.0
    for i, gap in enumerate(passes):
        now += gap
        steady, _ = one_pass(steady, at(now), good)
        candidate, _ = one_pass(chaotic, at(now), good)
        if not lost[i]:
            chaotic = candidate
    now += 1
    steady, _ = one_pass(steady, at(now), good)
    chaotic, _ = one_pass(chaotic, at(now), good)
    recorded = slots_of(chaotic)
    assert recorded == sorted(set(recorded))
    assert all((s - recorded[0]).total_seconds() % 20 == 0 for s in recorded)
    assert recorded[-1] == slots_of(steady)[-1]
    assert set(recorded) <= set(slots_of(steady)) | {recorded[-1]}


def test_lost_write_remeasures_the_same_slot() -> None:
    run, _ = one_pass(make_run(metric(interval="60s")), T0, good)
    _lost, slots = one_pass(run, at(60.2), good)
    assert slots == [at(60)]
    retried, slots = one_pass(run, at(61), good)  # same recorded status, a second later
    assert slots == [at(60)]
    assert slots_of(retried) == [at(0), at(60)]


# --- errors, no data, dry run, messages ------------------------------------------------------


def test_consecutive_errors_lead_to_error_with_the_reason() -> None:
    run = make_run(metric(interval="60s", consecutiveErrorLimit=2))

    def failing(_name: str, _now: datetime) -> object:
        return RuntimeError("Timeout: request to http://prom/api/v1/query timed out")

    times = []
    now = 0.0
    for _ in range(3):
        decision = step_run(run, at(now))
        assert decision.due, now
        run, _ = one_pass(run, at(now), failing)
        times.append(now)
        assert run.status is not None
        retry = requeue_after(run, run.status, at(now))
        if retry is None:
            break
        now += retry
    assert times == [0, 10, 20]  # after an Error the retry comes after min(interval, 10s)
    assert run.status is not None
    assert run.status.phase == "Error"
    assert run.status.message is not None
    assert '"rate" errored' in run.status.message
    assert "timed out" in run.status.message
    assert "consecutiveErrorLimit 2" in run.status.message
    assert run.status.run_summary is not None and run.status.run_summary.error == 1


def test_an_error_is_never_a_success() -> None:
    run = make_run(metric())
    decision = step_run(run, T0)
    err = error_measurement(
        "ConnectionError: refused", started_at=decision.due[0].slot, finished_at=T0
    )
    status = apply_measurements(run, {"rate": err}, T0)
    assert status.phase == "Running"
    result = status.result_for("rate")
    assert result is not None and result.successful == 0 and result.error == 1


@pytest.mark.parametrize("value", [[], None, [math.nan], math.nan])
def test_no_data_is_never_success(value: object) -> None:
    run, _ = one_pass(make_run(metric()), T0, lambda _n, _t: value)
    assert run.status is not None
    result = run.status.result_for("rate")
    assert result is not None and result.successful == 0
    assert run.status.phase != "Successful"
    assert run.status.phase in ("Inconclusive", "Running")


def test_no_data_without_conditions_is_inconclusive() -> None:
    spec = metric()
    del spec["successCondition"]
    run, _ = one_pass(make_run(spec), T0, lambda _n, _t: [])
    assert run.status is not None and run.status.phase == "Inconclusive"
    assert run.status.message is not None and "no data" in run.status.message


def test_failure_message_names_metric_value_and_condition() -> None:
    run, _ = one_pass(make_run(metric()), T0, lambda _n, _t: [0.42])
    assert run.status is not None
    assert run.status.phase == "Failed"
    assert run.status.message is not None
    assert '"rate"' in run.status.message
    assert "0.42" in run.status.message
    assert "result[0] >= 0.95" in run.status.message


def test_dry_run_metric_never_fails_the_run() -> None:
    run = make_run(metric(), metric("canary-latency"), dryRun=[{"metricName": "canary-latency"}])

    def values(name: str, _now: datetime) -> object:
        return [0.1] if name == "canary-latency" else [0.99]

    run, _ = one_pass(run, T0, values)
    assert run.status is not None
    assert run.status.phase == "Successful"
    assert run.status.message is not None and run.status.message.startswith("dry run:")
    assert run.status.dry_run_summary is not None and run.status.dry_run_summary.failed == 1
    assert run.status.run_summary is not None and run.status.run_summary.successful == 1
    result = run.status.result_for("canary-latency")
    assert result is not None and result.dry_run is True
    fresh = make_run(metric(), metric("canary-latency"), dryRun=[{"metricName": "canary-latency"}])
    assert [d.dry_run for d in step_run(fresh, T0).due] == [False, True]


def test_a_failing_metric_stops_the_others() -> None:
    run = make_run(metric("bad"), metric("slow", interval="1m"))

    def values(name: str, _now: datetime) -> object:
        return [0.1] if name == "bad" else [0.99]

    run, _ = one_pass(run, T0, values)
    assert run.status is not None and run.status.phase == "Failed"
    assert step_run(run, at(60)).completed


def test_terminate_finishes_without_measuring() -> None:
    run, _ = one_pass(make_run(metric(interval="1m")), T0, good)
    stopped = run.model_copy(update={"spec": run.spec.model_copy(update={"terminate": True})})
    decision = step_run(stopped, at(60))
    assert decision.due == () and decision.terminating
    status = apply_measurements(stopped, {}, at(60))
    assert status.phase == "Successful"
    assert status.message == "run terminated"


# --- in-flight measurements (jobs) -----------------------------------------------------------


def running(slot: datetime, resume: datetime) -> Measurement:
    return Measurement(phase="Running", started_at=slot, resume_at=resume, message="job running")


def test_in_flight_measurement_is_resumed_in_its_slot() -> None:
    run = make_run(metric(interval="1m", count=2))
    status = apply_measurements(run, {"rate": running(T0, at(10))}, T0)
    run = with_status(run, status)
    assert status.phase == "Running"
    assert step_run(run, at(5)).due == ()
    assert requeue_after(run, status, at(5)) == 5.0
    due = step_run(run, at(10)).due
    assert len(due) == 1
    assert due[0].slot == T0 and due[0].index == 1 and due[0].in_flight is not None
    # Still running: replaced in place, not appended.
    status = apply_measurements(run, {"rate": running(T0, at(20))}, at(10))
    run = with_status(run, status)
    result = status.result_for("rate")
    assert result is not None and len(result.measurements) == 1 and result.count == 0
    assert measurement_index(result) == 1
    done = Measurement(phase="Successful", value="Complete", started_at=T0, finished_at=at(20))
    status = apply_measurements(run, {"rate": done}, at(20))
    result = status.result_for("rate")
    assert result is not None
    assert [m.phase for m in result.measurements] == ["Successful"]
    assert result.count == 1 and measurement_index(result) == 2


def test_in_flight_measurement_is_closed_when_the_run_finishes() -> None:
    run = make_run(metric("job", interval="1m"), metric("bad"))
    status = apply_measurements(run, {"job": running(T0, at(10))}, T0)
    run = with_status(run, status)
    bad = measure(run.spec.metrics[1], [0.1], started_at=T0, finished_at=T0)
    status = apply_measurements(run, {"bad": bad}, at(1))
    assert status.phase == "Failed"
    job = status.result_for("job")
    assert job is not None
    assert job.measurements[-1].phase == "Inconclusive"
    assert job.measurements[-1].message == TERMINATED_MESSAGE
    assert job.successful == 0


def test_retention_limits_history_but_not_the_schedule() -> None:
    run = make_run(metric(interval="10s"), measurementRetention=[{"metricName": "*", "limit": 2}])
    for now in range(0, 60, 10):
        run, _ = one_pass(run, at(now), good)
    assert slots_of(run) == [at(40), at(50)]
    result = run.status.result_for("rate")  # type: ignore[union-attr]
    assert result is not None and result.count == 6 and measurement_index(result) == 7
    assert step_run(run, at(55)).due == ()
    assert step_run(run, at(60)).due[0].slot == at(60)


def test_values_helper_mapping_is_typed() -> None:
    values: Mapping[str, object] = {"rate": [0.99]}
    run, _ = one_pass(make_run(metric()), T0, lambda n, _t: values[n])
    assert run.status is not None and run.status.phase == "Successful"
