"""How `rollouts get` names a step (each field of a combined step, in the order they run),
and `convert` / `lint` on a combined step."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
from typer.testing import CliRunner

from rollouts.cli.main import app
from rollouts.cli.step_text import describe_step

HEADER = {"name": "set-header", "match": [{"headerName": "trace",
                                           "headerValue": {"exact": "debug"}}]}


@pytest.mark.parametrize(("step", "text"), [
    ({"setWeight": 20}, "setWeight: 20"),
    ({"pause": {}}, "pause (until promoted)"),
    ({"pause": {"duration": "1m"}}, "pause: 1m"),
    ({"analysis": {"templates": [{"templateName": "a"}, {"templateName": "b"}]}},
     "analysis: a, b"),
    ({"experiment": {"templates": [{"name": "base"}, {"name": "can"}], "duration": "5m"}},
     "experiment: base, can for 5m"),
    ({"plugin": {"name": "example.dev/approve"}}, "plugin: example.dev/approve"),
    ({"setHeaderRoute": {"name": "h"}}, "setHeaderRoute: h removed"),
    # Argo's test/e2e/apisix/rollout-apisix-canary-set-header.yaml, written in another order:
    ({"pause": {"duration": 15}, "setHeaderRoute": HEADER, "setCanaryScale": {"replicas": 1}},
     "setCanaryScale: replicas=1 + setHeaderRoute: set-header (trace=debug) + pause: 15"),
    ({"setWeight": 10, "setMirrorRoute": {"name": "m", "match": [
        {"method": {"exact": "GET"}, "path": {"prefix": "/api"},
         "headers": {"x-user": {"regex": "qa-.*"}}}]}},
     "setMirrorRoute: m (x-user=~qa-.* GET /api*) + setWeight: 10"),
    ({}, "(empty step)"),
    ({"bogus": 1}, "bogus"),
])
def test_describe_step(step: dict[str, Any], text: str) -> None:
    assert describe_step(step) == text


ARGO_COMBINED = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web:1}]}
  strategy:
    canary:
      canaryService: web-canary
      stableService: web-stable
      trafficRouting:
        managedRoutes: [{name: testers}]
        apisix: {route: {name: web-route, rules: [main]}}
      steps:
        - setCanaryScale: {replicas: 1}
          setHeaderRoute:
            name: testers
            match: [{headerName: trace, headerValue: {exact: debug}}]
          pause: {duration: 15}
        - setWeight: 50
"""


def test_convert_and_lint_accept_a_combined_step_and_refuse_two_actions(
        tmp_path: pathlib.Path) -> None:
    source = tmp_path / "argo.yaml"
    source.write_text(ARGO_COMBINED)
    converted = CliRunner().invoke(app, ["convert", str(source)])
    assert converted.exit_code == 0, converted.output
    assert "rollouts.dev/v1alpha1" in converted.stdout
    ours = tmp_path / "ours.yaml"
    ours.write_text(converted.stdout)
    linted = CliRunner().invoke(app, ["lint", str(ours)])
    assert linted.exit_code == 0, linted.output
    two = tmp_path / "two.yaml"
    two.write_text(converted.stdout.replace("- setWeight: 50", "- {setWeight: 50, pause: {}}"))
    refused = CliRunner().invoke(app, ["lint", str(two)])
    assert refused.exit_code == 1
    assert ("spec.strategy.canary.steps[1]: setWeight and pause cannot be combined in one "
            "step") in refused.stdout, refused.output
