"""`rollouts lint` and `rollouts convert` on Experiments (standalone, and the Rollout step)."""

from __future__ import annotations

import pathlib

import yaml

from tests.cli.test_lint_convert import run

# Argo Rollouts' own example (docs/features/experiment.md), trimmed to one template.
ARGO_EXPERIMENT = """\
apiVersion: argoproj.io/v1alpha1
kind: Experiment
metadata:
  name: example-experiment
spec:
  # runs for 20 minutes once every ReplicaSet is available
  duration: 20m
  progressDeadlineSeconds: 30
  templates:
  - name: purple
    replicas: 1
    selector:
      matchLabels:
        app: canary-demo
        color: purple
    template:
      metadata:
        labels:
          app: canary-demo
          color: purple
      spec:
        containers:
        - name: rollouts-demo
          image: argoproj/rollouts-demo:purple
          ports:
          - name: http
            containerPort: 8080
            protocol: TCP
  analyses:
  - name: compare-results
    templateName: compare
    requiredForCompletion: true
    args:
    - name: host
      value: purple
"""

# The template the Experiment's analysis names (lint wants every named template given).
COMPARE_TEMPLATE = """\
apiVersion: rollouts.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: compare}
spec:
  args: [{name: host}]
  metrics:
  - name: up
    provider: {web: {url: "http://{{args.host}}/health"}}
"""

STEP_ROLLOUT = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: guestbook}
spec:
  selector: {matchLabels: {app: guestbook}}
  template:
    metadata: {labels: {app: guestbook}}
    spec: {containers: [{name: guestbook, image: "guestbook:2"}]}
  strategy:
    canary:
      steps:
      - experiment:
          duration: 1h
          templates:
          - {name: baseline, specRef: stable}
          - {name: canary, specRef: canary}
          analyses:
          - name: mann-whitney
            templateName: mann-whitney
            args:
            - {name: baseline-hash, value: "{{templates.baseline.podTemplateHash}}"}
            - {name: canary-hash, value: "{{templates.canary.podTemplateHash}}"}
"""


def test_convert_an_argo_experiment_changes_only_the_api_version(tmp_path: pathlib.Path
                                                                  ) -> None:
    source = tmp_path / "experiment.yaml"
    source.write_text(ARGO_EXPERIMENT)
    code, out, err = run("convert", str(source))
    assert code == 0, err
    assert out == ARGO_EXPERIMENT.replace("argoproj.io/v1alpha1", "rollouts.dev/v1alpha1")
    converted = tmp_path / "converted.yaml"
    converted.write_text(out)
    code, out, _ = run("lint", str(converted))
    assert code == 1
    assert 'spec.analyses[0].templateName: AnalysisTemplate "compare" is not in the files' in out
    (tmp_path / "compare.yaml").write_text(COMPARE_TEMPLATE)
    code, out, err = run("lint", str(converted), str(tmp_path / "compare.yaml"))
    assert code == 0, out + err
    assert "2 document(s) checked: 0 error(s)" in err


def test_convert_and_lint_a_rollout_with_an_experiment_step(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "rollout.yaml"
    source.write_text(STEP_ROLLOUT)
    code, out, err = run("convert", str(source))
    assert code == 0, err
    assert yaml.safe_load(out)["apiVersion"] == "rollouts.dev/v1alpha1"


def test_lint_names_the_field_of_a_broken_experiment(tmp_path: pathlib.Path) -> None:
    body = yaml.safe_load(ARGO_EXPERIMENT.replace("argoproj.io", "rollouts.dev"))
    template = body["spec"]["templates"][0]
    template["template"]["spec"]["containers"][0]["resources"] = {"limits": {"memory": "lots"}}
    template["selector"]["matchLabels"]["color"] = "orange"
    body["spec"]["duration"] = "forever"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(body))
    code, out, _ = run("lint", str(path))
    assert code == 1
    assert "spec.duration" in out
    assert "spec.templates[0]: selector.matchLabels color=orange does not match" in out
    assert "spec.templates[0].template.spec.containers[0].resources.limits.memory" in out


def test_lint_refuses_an_experiment_step_weight_without_a_router(tmp_path: pathlib.Path
                                                                  ) -> None:
    text = STEP_ROLLOUT.replace("argoproj.io", "rollouts.dev").replace(
        "{name: baseline, specRef: stable}", "{name: baseline, specRef: stable, weight: 5}")
    path = tmp_path / "weighted.yaml"
    path.write_text(text)
    code, out, _ = run("lint", str(path))
    assert code == 1
    assert "spec.strategy.canary.steps[0].experiment.templates[0].weight" in out
