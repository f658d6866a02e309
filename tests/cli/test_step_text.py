"""How `rollouts get` names a step: each field of a combined step, in the order they run."""

from __future__ import annotations

from typing import Any

import pytest

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
