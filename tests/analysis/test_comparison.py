"""Comparison metrics: the `compare` model, judging looks, and how a metric follows its
evidence (pure: tables and small scripted runs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest

from rollouts.analysis.assessment import assess_metric, new_result, record_measurement
from rollouts.analysis.comparison import (
    decode_state,
    encode_state,
    evidence_line,
    judge,
    last_evidence,
)
from rollouts.analysis.providers.base import ComparisonSamples, ProviderContext, ProviderError
from rollouts.analysis.providers.prometheus import PrometheusProvider
from rollouts.analysis.runner import to_measurement
from rollouts.analysis.sequential import SequentialState
from rollouts.errors import InvalidSpecError
from rollouts.models.analysis import AnalysisRun, Metric, MetricResult, load

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ERRORS = 'sum(increase(errors_total{hash="{{role}}"}[{{interval}}]))'
TOTAL = 'sum(increase(requests_total{hash="{{role}}"}[{{interval}}]))'
LATENCY = 'latency_seconds{hash="{{role}}"}'


def counts_metric(count: int = 5, **compare: Any) -> Metric:
    return load(
        Metric,
        {
            "name": "errors",
            "interval": "1m",
            "count": count,
            "provider": {"prometheus": {"address": "http://prom", "query": ERRORS}},
            "compare": {
                "test": "sequentialCounts",
                "canary": "new",
                "baseline": "old",
                "totalQuery": TOTAL,
                **compare,
            },
        },
    )


def latency_metric(count: int = 2, **compare: Any) -> Metric:
    return load(
        Metric,
        {
            "name": "latency",
            "interval": "1m",
            "count": count,
            "provider": {"prometheus": {"address": "http://prom", "query": LATENCY}},
            "compare": {"test": "mannWhitney", "canary": "new", "baseline": "old", **compare},
        },
    )


def look(metric: Metric, result: MetricResult | None, samples: ComparisonSamples) -> MetricResult:
    index = result.count + result.error if result is not None else 0
    moment = T0 + timedelta(minutes=index)
    measurement = judge(metric, samples, result, started_at=moment, finished_at=moment)
    return record_measurement(result or new_result(metric.name), measurement)


def counts(xc: float, nc: float, xb: float, nb: float) -> ComparisonSamples:
    return ComparisonSamples((xc,), (xb,), (nc,), (nb,))


# ---------------------------------------------------------------------------------------------
# The model


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"provider": {"prometheus": {"query": "up"}}}, "compare needs {{role}}"),
        ({"provider": {"web": {"url": "http://x"}}}, "compare needs provider prometheus"),
        ({"successCondition": "result[0] < 1"}, "remove successCondition"),
        ({"compare": {"test": "sequentialCounts", "canary": "a", "baseline": "b"}}, "totalQuery"),
        (
            {
                "compare": {
                    "test": "sequentialCounts",
                    "canary": "a",
                    "baseline": "b",
                    "totalQuery": "requests",
                }
            },
            "totalQuery must contain {{role}}",
        ),
        (
            {
                "compare": {
                    "test": "sequentialCounts",
                    "canary": "a",
                    "baseline": "b",
                    "totalQuery": TOTAL,
                    "tolerance": {"absolute": 0.01},
                }
            },
            "absolute is not supported by sequentialCounts",
        ),
        (
            {"compare": {"test": "mannWhitney", "canary": "a", "baseline": "b", "totalQuery": "x"}},
            "only for test sequentialCounts",
        ),
        (
            {"compare": {"test": "mannWhitney", "canary": "a", "baseline": "b", "tolerance": {}}},
            "exactly one of relative, absolute",
        ),
        (
            {"compare": {"test": "mannWhitney", "canary": "a", "baseline": "b", "confidence": 1}},
            "less than 1",
        ),
        ({"compare": {"test": "tTest", "canary": "a", "baseline": "b"}}, "mannWhitney"),
    ],
)
def test_invalid_compare_is_rejected_with_the_field(change: dict[str, Any], message: str) -> None:
    wire = {**latency_metric().to_wire(), **change}
    with pytest.raises(InvalidSpecError, match=message):
        load(Metric, wire)


def test_defaults() -> None:
    compare = counts_metric().compare
    assert compare is not None
    assert compare.effective_direction() == "increase"
    assert compare.effective_confidence() == 0.95
    assert compare.effective_min_samples() == 100
    assert compare.effective_tolerance().relative == 0.1
    # Counts look up to five more horizons (count 5: 25 looks) before pausing; a sample
    # test, and counts without a horizon, 3.
    assert compare.effective_extra_measurements(5) == 25
    assert compare.effective_extra_measurements(5, traffic=False) == 3
    assert compare.effective_extra_measurements(None) == 3
    assert counts_metric(extraMeasurements=2).compare.effective_extra_measurements(5) == 2  # type: ignore[union-attr]
    latency = latency_metric().compare
    assert latency is not None
    assert latency.effective_min_samples() == 10
    assert latency.effective_extra_measurements(2) == 3


# ---------------------------------------------------------------------------------------------
# Sequential counts, look by look


def test_a_bad_canary_fails_at_the_look_the_evidence_arrives() -> None:
    metric = counts_metric()
    result = look(metric, None, counts(2, 1000, 1, 1000))
    assert result.measurements[-1].phase == "Successful"
    assert result.measurements[-1].evidence.decision == "continue"  # type: ignore[union-attr]
    assert assess_metric(metric, result).phase == "Running"
    result = look(metric, result, counts(40, 5000, 5, 5000))
    evidence = last_evidence(result)
    assert evidence is not None and evidence.decision == "fail"
    assert (evidence.canary, evidence.canary_errors) == (6000, 42)  # both looks add up
    assert (evidence.baseline, evidence.baseline_errors) == (6000, 6)
    assert evidence.looks == 2
    assert evidence.interval_low is not None and evidence.interval_low > 1.1
    verdict = assess_metric(metric, result)
    assert verdict.phase == "Failed"
    assert verdict.message is not None
    assert verdict.message.startswith('metric "errors" failed: canary error rate higher than')


def test_a_good_canary_passes_early() -> None:
    # Early passes must hold under per-look swings too: with a 3x tolerance, a few looks.
    metric = counts_metric(tolerance={"relative": 2.0})
    result: MetricResult | None = None
    rng = np.random.default_rng(1)
    for _ in range(4):
        result = look(
            metric,
            result,
            counts(rng.poisson(200), 100_000, rng.poisson(200), 100_000),
        )
        if assess_metric(metric, result).phase != "Running":
            break
    assert result is not None and result.count < 5
    assert assess_metric(metric, result).phase == "Successful"
    assert last_evidence(result).reason.startswith("error rate bounded")  # type: ignore[union-attr]


def test_the_last_look_passes_when_no_regression_was_shown() -> None:
    # 110 canary errors against 100: no regression shown, and a doubling (the default
    # passMargin) is ruled out.
    metric = counts_metric()
    result: MetricResult | None = None
    for _ in range(5):
        result = look(metric, result, counts(22, 500, 20, 500))
    assert result is not None
    evidence = last_evidence(result)
    assert evidence is not None and evidence.decision == "pass"
    assert "2x ruled out" in evidence.reason
    assert assess_metric(metric, result).phase == "Successful"


def test_a_last_look_that_cannot_rule_out_the_pass_margin_extends_then_is_inconclusive() -> None:
    # 10 canary errors against 5 by the last look: nothing shown, but a 2x canary would
    # look the same.
    metric = counts_metric(extraMeasurements=2)
    result, phases = _looks(metric, [counts(2, 500, 1, 500)] * 8)
    assert phases == ["Running"] * 6 + ["Inconclusive"]
    message = assess_metric(metric, result).message or ""
    assert "2x not ruled out (passMargin)" in message and "after 7 measurements" in message


def test_a_wider_pass_margin_passes_what_it_rules_out() -> None:
    # 20 against 10 rule out 10x (passMargin 9), not 2x.
    metric = counts_metric(passMargin={"relative": 9})
    result, phases = _looks(metric, [counts(4, 500, 2, 500)] * 5)
    assert phases == ["Running"] * 4 + ["Successful"]
    assert "10x ruled out" in (last_evidence(result).reason or "")  # type: ignore[union-attr]


def test_errors_during_the_extension_rule_the_margin_out() -> None:
    metric = counts_metric(extraMeasurements=3)
    # 90 against 85 by the first extra look: 2x ruled out (with 40 a side, 50 against 45,
    # not yet).
    _, phases = _looks(metric, [counts(2, 500, 1, 500)] * 5 + [counts(80, 500, 80, 500)])
    assert phases == ["Running"] * 5 + ["Successful"]
    _, phases = _looks(metric, [counts(2, 500, 1, 500)] * 5 + [counts(40, 500, 40, 500)])
    assert phases == ["Running"] * 6


@pytest.mark.parametrize(
    ("compare", "words"),
    [
        ({"passMargin": {"absolute": 0.01}}, "must be relative"),
        ({"passMargin": {"relative": 0}}, "must be relative and above 0"),
    ],
)
def test_a_pass_margin_must_be_a_positive_ratio(compare: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidSpecError, match=words):
        counts_metric(**compare)


def test_a_pass_margin_is_only_for_counts() -> None:
    with pytest.raises(InvalidSpecError, match="passMargin is only for test sequentialCounts"):
        latency_metric(passMargin={"relative": 1})


def test_too_little_traffic_extends_then_is_inconclusive() -> None:
    metric = counts_metric(extraMeasurements=2)
    result: MetricResult | None = None
    phases = []
    for _ in range(7):
        result = look(metric, result, counts(0, 3, 0, 3))
        phases.append(assess_metric(metric, result).phase)
        if phases[-1] != "Running":
            break
    assert result is not None
    # count 5 + 2 extra measurements, each recorded Inconclusive, then the metric is.
    assert phases == ["Running"] * 6 + ["Inconclusive"]
    assert [m.phase for m in result.measurements] == ["Inconclusive"] * 7
    assert "extra measurement 2 of 2" in (result.measurements[-2].message or "")
    message = assess_metric(metric, result).message or ""
    assert "too little traffic" in message and "after 7 measurements" in message


def test_by_default_no_traffic_waits_three_looks_and_an_open_margin_five_horizons() -> None:
    # count 5: an idle canary is Inconclusive after 5 + 3 looks; one with traffic whose
    # doubling is not ruled out (2 errors against 1 a look) keeps looking, 5 + 25.
    idle, phases = _looks(counts_metric(), [counts(0, 3, 0, 3)] * 40)
    assert len(phases) == 8 and phases[-1] == "Inconclusive"
    assert "too little traffic" in (assess_metric(counts_metric(), idle).message or "")
    open_margin, phases = _looks(counts_metric(), [counts(2, 500, 1, 500)] * 40)
    assert len(phases) == 30 and phases[-1] == "Inconclusive"
    assert "extra measurement 25 of 25" in (open_margin.measurements[-2].message or "")
    assert "2x not ruled out" in (assess_metric(counts_metric(), open_margin).message or "")


def test_traffic_arriving_during_the_extension_decides() -> None:
    metric = counts_metric(extraMeasurements=3)
    result: MetricResult | None = None
    for _ in range(5):
        result = look(metric, result, counts(0, 10, 0, 10))
    assert assess_metric(metric, result).phase == "Running"
    result = look(metric, result, counts(50, 500, 50, 500))
    assert assess_metric(metric, result).phase == "Successful"


SPIKE = counts(36, 1200, 48, 4800)  # 3x the baseline's rate in one look
NORMAL = counts(12, 1200, 48, 4800)


def _looks(metric: Metric, looks: list[ComparisonSamples]) -> tuple[MetricResult, list[str]]:
    result: MetricResult | None = None
    phases = []
    for samples in looks:
        result = look(metric, result, samples)
        phases.append(assess_metric(metric, result).phase)
        if phases[-1] != "Running":
            break
    assert result is not None
    return result, phases


def test_strong_but_inconsistent_evidence_at_the_last_look_extends_the_step() -> None:
    # Two 3x looks: the count e-value is past 20 (no dispersion is estimated from the one
    # window before the newest), the checks do not agree yet. The last look neither passes
    # nor fails: the metric waits. The dispersion reads the normal looks that follow as
    # swings (phi ~ 6) and explains the excess away, but the plain (Poisson) count e-value
    # stays past 20 for three more looks (5409, 227, 27): still held, never passed on phi
    # alone (docs/analysis.md, "No promotion by dispersion"). The fourth passes: with
    # passMargin 4 (5x ruled out; phi ~6 leaves a doubling possible, and the default margin
    # would keep it Inconclusive).
    metric = counts_metric(
        count=2, tolerance={"relative": 0.2}, extraMeasurements=4, passMargin={"relative": 4}
    )
    result, phases = _looks(metric, [SPIKE] * 2 + [NORMAL] * 4)
    assert phases == ["Running"] * 5 + ["Successful"]
    assert _looks(counts_metric(count=2, tolerance={"relative": 0.2}, extraMeasurements=4),
                  [SPIKE] * 2 + [NORMAL] * 4)[1] == ["Running"] * 5 + ["Inconclusive"]  # fmt: skip
    short = counts_metric(count=2, tolerance={"relative": 0.2}, extraMeasurements=3)
    assert _looks(short, [SPIKE] * 2 + [NORMAL] * 3)[1] == ["Running"] * 4 + ["Inconclusive"]
    held = result.measurements[1]
    assert held.phase == "Inconclusive"
    assert "waiting: excess not shown consistent by the last look" in (held.message or "")
    assert "extra measurement 1 of 4" in (held.message or "")


def test_evidence_still_inconsistent_after_the_extension_is_inconclusive() -> None:
    metric = counts_metric(count=2, tolerance={"relative": 0.2}, extraMeasurements=3)
    result, phases = _looks(metric, [SPIKE] * 3 + [NORMAL] + [SPIKE])
    assert phases == ["Running"] * 4 + ["Inconclusive"]
    message = assess_metric(metric, result).message or ""
    assert "excess not shown consistent" in message and "after 5 measurements" in message


def test_no_baseline_errors_and_empty_answers() -> None:
    metric = counts_metric()
    # An empty errors vector (no 5xx series at all) counts as zero errors.
    result = look(metric, None, ComparisonSamples((), (), (5000.0,), (5000.0,)))
    assert last_evidence(result).decision == "continue"  # type: ignore[union-attr]
    assert last_evidence(result).canary_errors == 0  # type: ignore[union-attr]


def test_state_round_trips_and_refuses_a_foreign_state() -> None:
    state = SequentialState.start(0.1).update(3, 100, 1, 100)
    back = decode_state(encode_state(state), 0.1)
    assert back.log_likelihood == pytest.approx(state.log_likelihood, abs=1e-4)
    assert back.looks == 1 and back.canary_errors == 3
    with pytest.raises(ValueError, match="another tolerance"):
        decode_state(encode_state(state), 0.2)
    with pytest.raises(ValueError, match="unreadable"):
        decode_state("{not json", 0.1)


def test_an_unreadable_state_is_an_error_measurement_not_a_restart() -> None:
    metric = counts_metric()
    result = look(metric, None, counts(1, 500, 1, 500))
    broken = result.measurements[-1].evidence.model_copy(update={"state": "garbage"})  # type: ignore[union-attr]
    result = result.model_copy(
        update={"measurements": [result.measurements[-1].model_copy(update={"evidence": broken})]}
    )
    measurement = to_measurement(metric, counts(1, 500, 1, 500), T0, T0, 1.0, result)
    assert measurement.phase == "Error"
    assert (measurement.message or "").startswith("cannot judge: the sequential test's saved")


# ---------------------------------------------------------------------------------------------
# Mann-Whitney, look by look


def test_mann_whitney_fails_a_slower_canary() -> None:
    metric = latency_metric()
    rng = np.random.default_rng(2)
    samples = ComparisonSamples(tuple(rng.normal(0.3, 0.02, 30)), tuple(rng.normal(0.2, 0.02, 30)))
    result = look(metric, None, samples)
    assert result.measurements[-1].phase == "Failed"
    evidence = last_evidence(result)
    assert evidence is not None and evidence.p_value is not None and evidence.p_value < 0.01
    assert evidence.effect == pytest.approx(0.1, abs=0.03)
    assert assess_metric(metric, result).phase == "Failed"


def test_mann_whitney_passes_after_count_looks() -> None:
    metric = latency_metric(count=2)
    rng = np.random.default_rng(3)
    result: MetricResult | None = None
    for expected in ("Running", "Successful"):
        same = ComparisonSamples(tuple(rng.normal(0.2, 0.02, 30)), tuple(rng.normal(0.2, 0.02, 30)))
        result = look(metric, result, same)
        assert assess_metric(metric, result).phase == expected


def test_mann_whitney_too_few_samples_waits_then_is_inconclusive() -> None:
    metric = latency_metric(count=1, extraMeasurements=1)
    few = ComparisonSamples((0.2, 0.3), (0.2,) * 30)
    result = look(metric, None, few)
    assert result.measurements[-1].phase == "Inconclusive"
    assert assess_metric(metric, result).phase == "Running"
    result = look(metric, result, few)
    assert assess_metric(metric, result).phase == "Inconclusive"


def test_without_interval_there_is_no_extension() -> None:
    wire = latency_metric(count=1).to_wire()
    del wire["interval"]
    metric = load(Metric, wire)
    result = look(metric, None, ComparisonSamples((0.2,), (0.2,)))
    assert assess_metric(metric, result).phase == "Inconclusive"


def test_evidence_line() -> None:
    result = look(counts_metric(), None, counts(40, 5000, 5, 5000))
    line = evidence_line(last_evidence(result))  # type: ignore[arg-type]
    assert line.startswith("fail (sequentialCounts, look 1): canary error rate higher than")
    assert "errors 40/5000 vs 5/5000" in line


def test_rollouts_get_shows_the_evidence_on_the_metric_line() -> None:
    from rollouts.cli.render import _metric_line

    result = look(counts_metric(), None, counts(40, 5000, 5, 5000))
    line = _metric_line(result).plain
    assert "\n" not in line
    assert line.startswith("errors: ")
    assert "| fail (sequentialCounts, look 1): canary error rate higher" in line
    plain = _metric_line(new_result("threshold")).plain
    assert "|" not in plain


def test_evidence_is_in_the_analysis_run_status_wire_form() -> None:
    result = look(counts_metric(), None, counts(40, 5000, 5, 5000))
    wire = result.to_wire()["measurements"][0]["evidence"]
    assert wire["decision"] == "fail" and wire["test"] == "sequentialCounts"
    assert {"canary", "baseline", "canaryErrors", "eValue", "intervalLow", "state"} <= set(wire)
    assert json.loads(wire["state"])["looks"] == 1
    run = {
        "metadata": {"name": "r"},
        "spec": {"metrics": [counts_metric().to_wire()]},
        "status": {"phase": "Running", "metricResults": [result.to_wire()]},
    }
    loaded = AnalysisRun.model_validate(run)
    assert loaded.status is not None
    assert loaded.status.metric_results[0].measurements[0].evidence is not None


# ---------------------------------------------------------------------------------------------
# The provider fetches both sides


async def test_provider_queries_each_side_with_role_and_interval() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        query = dict(httpx.QueryParams(request.content.decode()))["query"]
        seen.append(query)
        value = "7" if "errors" in query else "1000"
        if 'hash="old"' in query and "errors" in query:
            return httpx.Response(
                200, json={"status": "success", "data": {"resultType": "vector", "result": []}}
            )
        return httpx.Response(
            200,
            json={
                "status": "success",
                "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, value]}]},
            },
        )

    provider = PrometheusProvider(transport=httpx.MockTransport(answer))
    try:
        samples = await provider.measure(counts_metric(), ProviderContext(), T0)
    finally:
        await provider.aclose()
    assert samples == ComparisonSamples(
        (7.0,),
        (),
        (1000.0,),
        (1000.0,),
        metadata=samples.metadata,  # type: ignore[union-attr]
    )
    assert sorted(seen) == sorted(
        [
            'sum(increase(errors_total{hash="new"}[60s]))',
            'sum(increase(errors_total{hash="old"}[60s]))',
            'sum(increase(requests_total{hash="new"}[60s]))',
            'sum(increase(requests_total{hash="old"}[60s]))',
        ]
    )


async def test_provider_names_the_side_that_failed() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        query = dict(httpx.QueryParams(request.content.decode()))["query"]
        if 'hash="old"' in query:
            return httpx.Response(
                400, json={"status": "error", "errorType": "bad_data", "error": "parse error"}
            )
        return httpx.Response(
            200,
            json={"status": "success", "data": {"resultType": "vector", "result": []}},
        )

    provider = PrometheusProvider(transport=httpx.MockTransport(answer))
    try:
        outcome = await provider.measure(latency_metric(), ProviderContext(), T0)
    finally:
        await provider.aclose()
    assert isinstance(outcome, ProviderError)
    assert str(outcome) == "QueryError: baseline: bad_data: parse error"


def test_the_example_loads() -> None:
    import pathlib

    import yaml

    from rollouts.models.analysis import AnalysisTemplate, load_analysis_object
    from rollouts.models.rollout import parse_spec

    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / "canary-compare.yaml"
    template, rollout = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    loaded = load_analysis_object(template)
    assert isinstance(loaded, AnalysisTemplate)
    tests = [m.compare.test for m in loaded.spec.metrics if m.compare is not None]
    assert tests == ["sequentialCounts", "mannWhitney"]
    assert parse_spec(rollout["spec"]).strategy.canary is not None


def test_a_single_value_for_a_comparison_metric_is_an_error() -> None:
    from rollouts.analysis.providers.base import Measurement as ProviderMeasurement

    outcome = ProviderMeasurement([1.0], "[1]", "vector")
    measurement = to_measurement(counts_metric(), outcome, T0, T0, 1.0)
    assert measurement.phase == "Error"
    assert "needs both sides" in (measurement.message or "")


def test_a_state_trimmed_away_is_an_error_not_a_restart() -> None:
    metric = counts_metric()
    result = look(metric, None, counts(1, 500, 1, 500))
    trimmed = result.model_copy(update={"measurements": []})  # only the counters remain
    measurement = to_measurement(metric, counts(1, 500, 1, 500), T0, T0, 1.0, trimmed)
    assert measurement.phase == "Error"
    assert "raise measurementRetention" in (measurement.message or "")
