"""AnalysisTemplate / ClusterAnalysisTemplate / AnalysisRun models."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from rollouts.errors import InvalidSpecError
from rollouts.models.analysis import (
    API_VERSION,
    AnalysisRun,
    AnalysisRunStatus,
    AnalysisTemplate,
    ClusterAnalysisTemplate,
    Metric,
    MetricProvider,
    int_value,
    load,
    load_analysis_object,
    load_analysis_run,
    load_analysis_template,
    range_time_offset,
)

ARGO_TEMPLATE: dict[str, Any] = {
    "apiVersion": API_VERSION,
    "kind": "AnalysisTemplate",
    "metadata": {"name": "success-rate", "namespace": "demo"},
    "spec": {
        "args": [
            {"name": "service-name"},
            {"name": "lookback", "value": "5m"},
            {"name": "api-token", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ],
        "metrics": [
            {
                "name": "success-rate",
                "interval": "5m",
                "initialDelay": "30s",
                "count": 10,
                "successCondition": "result[0] >= 0.95",
                "failureCondition": "result[0] < 0.5",
                "failureLimit": 3,
                "inconclusiveLimit": 2,
                "consecutiveErrorLimit": 5,
                "provider": {
                    "prometheus": {
                        "address": "http://prometheus.example.com:9090",
                        "timeout": 40,
                        "insecure": True,
                        "headers": [{"key": "X-Scope-OrgID", "value": "tenant_a"}],
                        "query": 'sum(rate(x{svc="{{args.service-name}}"}[5m]))',
                        "rangeQuery": {
                            "start": 'now() - duration("{{args.lookback}}")',
                            "end": "now()",
                            "step": "1m",
                        },
                    }
                },
            },
            {
                "name": "web-check",
                "successCondition": "result.status == 'ok'",
                "provider": {
                    "web": {
                        "url": "http://svc/health",
                        "method": "POST",
                        "jsonBody": {"a": 1},
                        "headers": [{"key": "Authorization", "value": "Bearer x"}],
                        "timeoutSeconds": 20,
                        "jsonPath": "{$.data}",
                    }
                },
            },
            {
                "name": "smoke",
                "provider": {
                    "job": {
                        "metadata": {"labels": {"a": "b"}},
                        "spec": {"backoffLimit": 1, "template": {"spec": {"containers": []}}},
                    }
                },
            },
        ],
        "dryRun": [{"metricName": "web-check"}],
        "measurementRetention": [{"metricName": "success-rate", "limit": 20}],
    },
}


def test_argo_shaped_template_round_trips() -> None:
    template = load_analysis_template(ARGO_TEMPLATE)
    assert template.to_wire() == ARGO_TEMPLATE
    metric = template.spec.metrics[0]
    assert metric.interval_seconds() == 300
    assert metric.initial_delay_seconds() == 30
    assert metric.effective_count() == 10
    assert metric.effective_failure_limit() == 3
    assert metric.provider.kind == "prometheus"
    assert template.spec.metrics[1].provider.kind == "web"
    assert template.spec.is_dry_run("web-check") and not template.spec.is_dry_run("smoke")
    assert template.spec.retention_limit("success-rate") == 20
    assert template.spec.retention_limit("smoke") == 10


def test_defaults_follow_argo() -> None:
    metric = Metric.model_validate({"name": "m", "provider": {"prometheus": {"query": "up"}}})
    assert metric.effective_failure_limit() == 0
    assert metric.effective_inconclusive_limit() == 0
    assert metric.effective_consecutive_error_limit() == 4
    assert metric.effective_consecutive_success_limit() == 0
    assert metric.effective_count() == 1  # no count, no interval: one measurement
    assert metric.initial_delay_seconds() == 0
    with_interval = metric.model_copy(update={"interval": "1m"})
    assert with_interval.effective_count() is None  # runs until stopped
    # Unset fields stay unset on the wire (no drift against Git).
    assert metric.to_wire() == {"name": "m", "provider": {"prometheus": {"query": "up"}}}


def test_cluster_template_and_dispatch() -> None:
    data = {**copy.deepcopy(ARGO_TEMPLATE), "kind": "ClusterAnalysisTemplate"}
    obj = load_analysis_object(data)
    assert isinstance(obj, ClusterAnalysisTemplate)
    assert isinstance(load_analysis_object(ARGO_TEMPLATE), AnalysisTemplate)
    with pytest.raises(InvalidSpecError, match="kind"):
        load_analysis_object({"kind": "Rollout"})


def test_nested_templates() -> None:
    data = {
        "apiVersion": API_VERSION,
        "kind": "AnalysisTemplate",
        "spec": {"templates": [{"templateName": "a"}, {"templateName": "b", "clusterScope": True}]},
    }
    template = load_analysis_template(data)
    assert template.spec.metrics == []
    assert template.spec.templates is not None and template.spec.templates[1].cluster_scope


def test_analysis_run_with_status() -> None:
    data = {
        "apiVersion": API_VERSION,
        "kind": "AnalysisRun",
        "metadata": {"name": "r"},
        "spec": {
            "metrics": ARGO_TEMPLATE["spec"]["metrics"][:1],
            "args": [{"name": "service-name", "value": "svc"}],
            "terminate": True,
        },
        "status": {
            "phase": "Running",
            "startedAt": "2024-05-01T12:00:00Z",
            "metricResults": [
                {
                    "name": "success-rate",
                    "phase": "Running",
                    "count": 1,
                    "successful": 1,
                    "measurements": [
                        {
                            "phase": "Successful",
                            "value": "[0.99]",
                            "startedAt": "2024-05-01T12:00:00Z",
                            "finishedAt": "2024-05-01T12:00:01Z",
                        }
                    ],
                    "someFutureField": 1,  # statuses tolerate newer controllers
                }
            ],
            "runSummary": {"count": 1, "successful": 1},
        },
    }
    run = load_analysis_run(data)
    assert run.spec.terminate
    assert run.status is not None
    result = run.status.result_for("success-rate")
    assert result is not None and result.measurements[0].value == "[0.99]"
    assert run.status.result_for("nope") is None
    wire = run.to_wire()
    assert wire["status"]["metricResults"][0]["measurements"][0]["startedAt"].startswith(
        "2024-05-01T12:00:00"
    )
    assert AnalysisRun.model_validate(wire) == run


def test_status_defaults() -> None:
    status = AnalysisRunStatus()
    assert status.phase == "Pending" and status.metric_results == []


@pytest.mark.parametrize(
    ("provider", "fragment"),
    [
        ({}, "exactly one of prometheus, web, job, datadog, newRelic"),
        ({"prometheus": {"query": "q"}, "web": {"url": "u"}}, "(got prometheus, web)"),
        ({"datadog": {"queries": {"a": "q"}}}, "need apiVersion v2"),
        ({"datadog": {"apiVersion": "v2", "queries": {"a": "q", "b": "r"}}}, "need a formula"),
        ({"datadog": {"query": "q", "interval": "soon"}}, "invalid duration"),
        ({"newRelic": {}}, "Field required"),
        ({"cloudWatch": {"metricDataQueries": "[nope"}}, "not a JSON list"),
        ({"kayenta": {}}, "supported: prometheus, web, job, datadog"),
        ({"prometheus": {"query": "q", "authentication": {"sigv4": {"x": 1}}}}, "Extra inputs"),
        ({"prometheus": {"query": "q", "authentication": {"oauth2": {}}}}, "Field required"),
        ({"prometheus": {"query": "q", "authentication": {}}}, "exactly one of basic, bearer"),
        ({"prometheus": {"query": ""}}, "at least 1 character"),
        ({"prometheus": {"query": "q", "timeout": 0}}, "greater than 0"),
        ({"prometheus": {"query": "q", "unknownField": 1}}, "Extra inputs"),
        (
            {
                "prometheus": {
                    "query": "q",
                    "rangeQuery": {"start": "yesterday", "end": "now", "step": "1m"},
                }
            },
            "invalid range time",
        ),
        (
            {
                "prometheus": {
                    "query": "q",
                    "rangeQuery": {"start": "now", "end": "now-5m", "step": "1m"},
                }
            },
            "start must not be after",
        ),
        ({"web": {"url": "u", "method": "DELETE"}}, "Input should be"),
        ({"web": {"url": "u", "body": "x"}}, "need method POST or PUT"),
        ({"web": {"url": "u", "method": "POST", "body": "x", "jsonBody": {}}}, "not both"),
        ({"job": {}}, "Field required"),
    ],
)
def test_provider_rejections(provider: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidSpecError) as info:
        load(MetricProvider, provider)
    assert fragment in info.value.message


def test_prometheus_auth_shapes() -> None:
    basic = {"basic": {"secretRef": {"name": "s", "usernameKey": "u", "passwordKey": "p"}}}
    bearer = {"bearer": {"secretKeyRef": {"name": "s", "key": "token"}}}
    argo_basic = {"basicAuth": {"username": "{{args.u}}", "password": "{{args.p}}"}}
    oauth2 = {"oauth2": {"tokenUrl": "http://t/token", "clientId": "c",
                         "clientSecret": "{{args.s}}", "scopes": ["a"]}}
    sigv4 = {"sigv4": {"region": "eu-west-1", "roleArn": "arn:aws:iam::1:role/r"}}
    for auth in (basic, bearer, argo_basic, oauth2, sigv4):
        provider = load(MetricProvider, {"prometheus": {"query": "q", "authentication": auth}})
        assert provider.to_wire()["prometheus"]["authentication"] == auth


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"count": 3}, "interval must be specified when count > 1"),
        ({"count": -1}, "count must be >= 0"),
        ({"failureLimit": -2}, "failureLimit must be >= -1"),
        ({"inconclusiveLimit": -1}, "inconclusiveLimit must be >= 0"),
        ({"consecutiveErrorLimit": -1}, "consecutiveErrorLimit must be >= 0"),
        ({"failureLimit": "three"}, "placeholder"),
        ({"failureLimit": True}, "placeholder"),
        ({"interval": "5 minutes"}, "invalid duration"),
        ({"interval": -5}, "must not be negative"),
        ({"name": ""}, "at least 1 character"),
        ({"provider": None}, "valid dictionary"),
        ({"successCondtion": "x"}, "Extra inputs"),  # a typo is an error, not ignored
    ],
)
def test_metric_rejections(fields: dict[str, Any], fragment: str) -> None:
    data: dict[str, Any] = {"name": "m", "provider": {"prometheus": {"query": "q"}}, **fields}
    with pytest.raises(InvalidSpecError) as info:
        load(Metric, data)
    assert fragment in info.value.message


def test_placeholders_are_accepted_and_resolved_later() -> None:
    metric = load(
        Metric,
        {
            "name": "m",
            "count": "{{args.count}}",
            "failureLimit": "{{ args.limit }}",
            "consecutiveSuccessLimit": "2",
            "provider": {"prometheus": {"query": "q"}},
        },
    )
    assert metric.effective_consecutive_success_limit() == 2
    with pytest.raises(InvalidSpecError, match="failureLimit"):
        metric.effective_failure_limit()
    with pytest.raises(InvalidSpecError, match="count"):
        metric.effective_count()
    assert int_value("-1", "f") == -1


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"metrics": []}, "needs metrics or templates"),
        (
            {"metrics": [{"name": "a", "provider": {"job": {"spec": {}}}}] * 2},
            "duplicate metric 'a'",
        ),
        (
            {"templates": [{"templateName": "t"}], "args": [{"name": "x"}, {"name": "x"}]},
            "duplicate argument 'x'",
        ),
        (
            {
                "templates": [{"templateName": "t"}],
                "args": [
                    {"name": "x", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "a"}}}
                ],
            },
            "not both",
        ),
        (
            {"templates": [{"templateName": "t"}], "args": [{"name": "x", "valueFrom": {}}]},
            "exactly one of secretKeyRef",
        ),
        (
            {
                "templates": [{"templateName": "t"}],
                "measurementRetention": [{"metricName": "a", "limit": 0}],
            },
            "greater than or equal to 1",
        ),
    ],
)
def test_template_spec_rejections(spec: dict[str, Any], fragment: str) -> None:
    data = {"apiVersion": API_VERSION, "kind": "AnalysisTemplate", "spec": spec}
    with pytest.raises(InvalidSpecError) as info:
        load_analysis_template(data)
    assert fragment in info.value.message


def test_error_names_the_field() -> None:
    data = copy.deepcopy(ARGO_TEMPLATE)
    data["spec"]["metrics"][1]["provider"]["web"]["method"] = "PATCH"
    with pytest.raises(InvalidSpecError) as info:
        load_analysis_template(data)
    assert info.value.field == "spec.metrics[1].provider.web.method"


def test_wrong_api_version_is_rejected() -> None:
    data = {**ARGO_TEMPLATE, "apiVersion": "argoproj.io/v1alpha1"}
    with pytest.raises(InvalidSpecError) as info:
        load_analysis_template(data)
    assert info.value.field == "apiVersion"


def test_analysis_run_needs_metrics() -> None:
    with pytest.raises(InvalidSpecError, match="at least one metric"):
        load_analysis_run({"apiVersion": API_VERSION, "kind": "AnalysisRun", "spec": {}})


def test_pod_template_hash_value_and_field_ref() -> None:
    for value_from in ({"podTemplateHashValue": "Stable"}, {"fieldRef": {"fieldPath": "x"}}):
        data = {
            "apiVersion": API_VERSION,
            "kind": "AnalysisTemplate",
            "spec": {
                "templates": [{"templateName": "t"}],
                "args": [{"name": "h", "valueFrom": value_from}],
            },
        }
        assert load_analysis_template(data).to_wire()["spec"]["args"][0]["valueFrom"] == value_from


def test_models_are_frozen() -> None:
    metric = Metric.model_validate({"name": "m", "provider": {"prometheus": {"query": "up"}}})
    with pytest.raises(ValidationError):
        metric.name = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("now()", 0),
        ("now", 0),
        ('now() - duration("5m")', 300),
        ("now() - duration('1h')", 3600),
        ("now-5m", 300),
        ("now - 30s", 30),
    ],
)
def test_range_time_offset(text: str, seconds: int) -> None:
    assert range_time_offset(text) == seconds


def test_range_time_offset_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        range_time_offset("2024-01-01")
