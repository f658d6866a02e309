"""Observe resolves analysis references into ready AnalysisRuns (kube/analysis.prepare_runs)."""

from __future__ import annotations

from typing import Any

from rollouts.kube.analysis import Templates, parse_template, prepare_runs
from rollouts.models.rollout import ValidRollout, parse_rollout

TEMPLATE: dict[str, Any] = {
    "apiVersion": "rollouts.dev/v1alpha1",
    "kind": "AnalysisTemplate",
    "metadata": {"name": "compare", "namespace": "default"},
    "spec": {
        "args": [{"name": "canary-hash"}, {"name": "stable-hash"}],
        "metrics": [{
            "name": "errors",
            "provider": {"prometheus": {
                "query": 'x{a="{{args.canary-hash}}",b="{{args.stable-hash}}"}'}},
            "successCondition": "result[0] < 1",
        }],
    },
}


def rollout(status: dict[str, Any]) -> ValidRollout:
    body = {
        "apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "app", "image": "web:1"}]}},
            "strategy": {"canary": {"steps": [
                {"setWeight": 50},
                {"analysis": {
                    "templates": [{"templateName": "compare"}],
                    "args": [
                        {"name": "canary-hash",
                         "valueFrom": {"podTemplateHashValue": "Latest"}},
                        {"name": "stable-hash",
                         "valueFrom": {"podTemplateHashValue": "Stable"}},
                    ],
                }},
            ]}},
        },
        "status": status,
    }
    parsed = parse_rollout(body)
    assert isinstance(parsed, ValidRollout)
    return parsed


TEMPLATES = Templates.from_parsed([parse_template(TEMPLATE, cluster=False)])


def test_a_first_revision_with_a_stable_hash_argument_is_not_invalid() -> None:
    """No stable revision exists yet (its steps are skipped): the Stable hash is not a
    problem of the spec."""
    prepared, problems = prepare_runs(rollout({}), TEMPLATES)
    assert problems == {}
    assert list(prepared) == ["spec.strategy.canary.steps[1].analysis"]


def test_with_a_stable_revision_the_run_gets_both_hashes() -> None:
    prepared, problems = prepare_runs(rollout({"stableRS": "stable123"}), TEMPLATES)
    assert problems == {}
    run = prepared["spec.strategy.canary.steps[1].analysis"]
    query = run.manifest["spec"]["metrics"][0]["provider"]["prometheus"]["query"]
    assert 'b="stable123"' in query
    assert 'a="stable123"' not in query
