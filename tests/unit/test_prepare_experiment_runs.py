"""An Experiment's analyses resolved into AnalysisRuns (kube/experiments.prepare_experiment_runs):
template hashes substituted, the Experiment's dryRun / measurementRetention passed on, owned
by the Experiment."""

from __future__ import annotations

from typing import Any

from rollouts.experiments.manifests import template_hashes
from rollouts.kube.analysis import Templates, parse_template
from rollouts.kube.experiments import prepare_experiment_runs
from rollouts.models.experiment import ValidExperiment, parse_experiment
from rollouts.models.wire import EXPERIMENT_LABEL, ROLLOUT_LABEL
from tests.unit.test_prepare_runs import TEMPLATE


def experiment(**spec: Any) -> ValidExperiment:
    pod = {"metadata": {"labels": {"app": "a"}},
           "spec": {"containers": [{"name": "app", "image": "a:1"}]}}
    parsed = parse_experiment({
        "metadata": {"name": "exp", "namespace": "default", "uid": "e1",
                     "labels": {ROLLOUT_LABEL: "web"}},
        "spec": {"templates": [
            {"name": t, "selector": {"matchLabels": {"app": "a"}}, "template": pod}
            for t in ("baseline", "canary")], **spec}})
    assert isinstance(parsed, ValidExperiment)
    return parsed


TEMPLATES = Templates.from_parsed([parse_template(TEMPLATE, cluster=False)])
ANALYSIS = {"name": "judge", "templateName": "compare", "args": [
    {"name": "canary-hash", "value": "{{templates.canary.podTemplateHash}}"},
    {"name": "stable-hash", "value": "{{ templates.baseline.podTemplateHash }}"}]}


def test_template_hashes_dry_run_and_retention_reach_the_run() -> None:
    exp = experiment(analyses=[ANALYSIS], dryRun=[{"metricName": "errors"}],
                     measurementRetention=[{"metricName": "*", "limit": 3}])
    prepared, problems = prepare_experiment_runs(exp, TEMPLATES)
    assert problems == {}
    run = prepared["judge"]
    hashes = template_hashes(exp)
    assert run["spec"]["args"] == [{"name": "canary-hash", "value": hashes["canary"]},
                                   {"name": "stable-hash", "value": hashes["baseline"]}]
    assert hashes["canary"] in run["spec"]["metrics"][0]["provider"]["prometheus"]["query"]
    assert run["spec"]["dryRun"] == [{"metricName": "errors"}]
    assert run["spec"]["measurementRetention"] == [{"metricName": "*", "limit": 3}]
    metadata = run["metadata"]
    assert metadata["name"] == "exp-judge"
    assert metadata["labels"] == {EXPERIMENT_LABEL: "exp", ROLLOUT_LABEL: "web"}
    [owner] = metadata["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Experiment", "exp", "e1")


def test_unresolvable_analyses_name_the_field() -> None:
    bad_template = {**ANALYSIS, "args": [
        {"name": "canary-hash", "value": "{{templates.nope.podTemplateHash}}"},
        {"name": "stable-hash", "value": "x"}]}
    exp = experiment(analyses=[bad_template, {"name": "other", "templateName": "missing"},
                               {"name": "latest", "templateName": "compare", "args": [
                                   {"name": "canary-hash",
                                    "valueFrom": {"podTemplateHashValue": "Latest"}},
                                   {"name": "stable-hash", "value": "x"}]}])
    prepared, problems = prepare_experiment_runs(exp, TEMPLATES)
    assert prepared == {}
    assert "no template named 'nope'" in problems["spec.analyses[0].args[0]"]
    assert "'missing' not found" in problems["spec.analyses[1].templates[0]"]
    # a standalone Experiment has no Latest revision to take a hash from
    assert any("Latest" in why for field, why in problems.items()
               if field.startswith("spec.analyses[2]")), problems
