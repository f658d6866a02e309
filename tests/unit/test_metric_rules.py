"""dryRun / measurementRetention rules (models/metric_rules.py): Argo's regular expressions,
a rule matching no metric is an error, the last matching retention rule wins; and a dry-run
metric that fails, measured through a whole run, never fails it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from rollouts.analysis.assessment import measure
from rollouts.analysis.run import apply_measurements
from rollouts.errors import InvalidSpecError
from rollouts.models.analysis import AnalysisRun, load_analysis_run
from rollouts.models.metric_rules import retention_limit, rule_matches
from rollouts.models.rollout import parse_spec

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def run_body(**spec: Any) -> dict[str, Any]:
    metrics = [{"name": name, "interval": "1s", "count": 3,
                "successCondition": "result < 1",
                "provider": {"prometheus": {"address": "http://p:9090", "query": "q"}}}
               for name in ("error-rate", "success-rate", "latency")]
    return {"apiVersion": "rollouts.dev/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": "r"}, "spec": {"metrics": metrics, **spec}}


@pytest.mark.parametrize(("pattern", "name", "matched"), [
    (".*", "anything", True),
    ("*", "anything", True),  # ours: the wildcard
    ("rate", "error-rate", True),  # unanchored, as Go's regexp.MatchString
    ("rate", "latency", False),
    ("^rate$", "error-rate", False),
    ("^error-rate$", "error-rate", True),
    ("error|latency", "latency", True),
])
def test_metric_name_is_an_unanchored_regular_expression(pattern: str, name: str,
                                                         matched: bool) -> None:
    assert rule_matches(pattern, name) is matched


def test_dry_run_rules_select_metrics_by_regex() -> None:
    spec = load_analysis_run(run_body(dryRun=[{"metricName": "rate$"}])).spec
    assert [m.name for m in spec.metrics if spec.is_dry_run(m.name)] == [
        "error-rate", "success-rate"]


@pytest.mark.parametrize(("field", "rules", "message"), [
    ("dryRun", [{"metricName": "^lat$"}], "dryRun[0].metricName: '^lat$' matches no metric"),
    ("measurementRetention", [{"metricName": ".*", "limit": 2},
                              {"metricName": "typo", "limit": 5}],
     "measurementRetention[1].metricName: 'typo' matches no metric"),
    ("dryRun", [{"metricName": "(unclosed"}], "invalid regular expression"),
])
def test_a_rule_matching_nothing_or_not_a_regex_is_refused(
        field: str, rules: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        load_analysis_run(run_body(**{field: rules}))
    assert message in str(caught.value)
    assert caught.value.field.startswith("spec")


def test_retention_last_matching_rule_wins_wildcard_is_the_fallback() -> None:
    spec = load_analysis_run(run_body(measurementRetention=[
        {"metricName": "*", "limit": 7}, {"metricName": "rate", "limit": 2},
        {"metricName": "^success", "limit": 4}])).spec
    assert [spec.retention_limit(n) for n in ("error-rate", "success-rate", "latency")] == [
        2, 4, 7]
    assert load_analysis_run(run_body()).spec.retention_limit("latency") == 10
    assert retention_limit(None, "x", 10) == 10


def test_rollout_analysis_rules_are_typed_and_checked() -> None:
    spec = {"replicas": 1, "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}},
                         "spec": {"containers": [{"name": "a", "image": "a:1"}]}},
            "strategy": {"canary": {"analysis": {
                "templates": [{"templateName": "t"}],
                "dryRun": [{"metricName": ".*"}],
                "measurementRetention": [{"metricName": "rate", "limit": 20}]}}}}
    parsed = parse_spec(spec)
    analysis = parsed.strategy.canary.analysis  # type: ignore[union-attr]
    assert analysis is not None and analysis.dry_run and analysis.dry_run[0].metric_name == ".*"
    bad = {**spec, "strategy": {"canary": {"analysis": {
        "templates": [{"templateName": "t"}],
        "measurementRetention": [{"metricName": "[", "limit": 0}]}}}}
    with pytest.raises(ValidationError) as refused:
        parse_spec(bad)
    assert [e["loc"][-3:] for e in refused.value.errors()] == [
        ("measurementRetention", 0, "metricName"), ("measurementRetention", 0, "limit")]
    assert "invalid regular expression '[': missing ]: [" in str(refused.value)


def test_a_failing_dry_run_metric_is_recorded_but_the_run_succeeds() -> None:
    """Three measurements each: latency (dry run) fails at once, the others pass; the run
    is Successful, its dryRunSummary counts the failure, and error-rate keeps only its last
    2 measurements (measurementRetention) while counting all 3."""
    run = load_analysis_run(run_body(dryRun=[{"metricName": "^latency$"}],
                                     measurementRetention=[{"metricName": "error",
                                                            "limit": 2}]))
    values = {"error-rate": 0.1, "success-rate": 0.2, "latency": 5.0}
    for i in range(3):
        at = T0 + timedelta(seconds=i)
        results = {m.name: measure(m, values[m.name], started_at=at, finished_at=at)
                   for m in run.spec.metrics}
        status = apply_measurements(run, results, at)
        run = AnalysisRun.model_validate({**run.to_wire(), "status": status.to_wire()})
    status = run.status
    assert status is not None and status.phase == "Successful"
    latency = status.result_for("latency")
    assert latency is not None and latency.dry_run and latency.phase == "Failed"
    assert (latency.count, latency.failed, len(latency.measurements)) == (1, 1, 1)
    assert status.dry_run_summary is not None
    assert (status.dry_run_summary.count, status.dry_run_summary.failed) == (1, 1)
    assert status.run_summary is not None and status.run_summary.successful == 2
    error_rate = status.result_for("error-rate")
    assert error_rate is not None and (error_rate.count, len(error_rate.measurements)) == (3, 2)
    assert error_rate.measurements[0].started_at == T0 + timedelta(seconds=1)
    assert len(status.result_for("success-rate").measurements) == 3  # type: ignore[union-attr]
