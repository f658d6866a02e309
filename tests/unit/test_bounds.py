"""Values the CRD schema used to accept that wedged a Rollout (issue 11).

Each extreme must end as InvalidSpec naming the field, never as an exception from the planner
or the analysis assessment (invariant 7). The duration grammar is one grammar: the CRD's
`pattern` and `parse_duration` accept exactly the same strings.
"""

from __future__ import annotations

import copy
import functools
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import re2
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from rollouts.analysis.assessment import next_measurement_at, requeue_after
from rollouts.errors import InvalidSpecError
from rollouts.kube.analysis import parse_template
from rollouts.models.analysis import AnalysisRunSpec, load_analysis_template
from rollouts.models.base import (
    DURATION_PATTERN,
    MAX_DURATION_SECONDS,
    MAX_INT32,
    parse_duration,
)
from rollouts.models.rollout import InvalidRollout, ValidRollout, parse_rollout
from tests.unit.world import World, blue_green_spec, canary_spec

INT64_MAX = 2**63 - 1
CRDS = Path(__file__).resolve().parents[2] / "crds"


def _with(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    *parents, leaf = path.split(".")
    node: Any = spec
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[leaf] = value
    return spec


_CANARY = canary_spec([{"setWeight": 20}, {"pause": {}}], canaryService="canary",
                      stableService="stable")
# scaleDownDelaySeconds other than 0 needs a traffic router (models/workload_rules.py).
_ROUTED = canary_spec([{"setWeight": 20}, {"pause": {}}], canaryService="canary",
                      stableService="stable", trafficRouting={"smi": {}})
_BLUE_GREEN = blue_green_spec()

EXTREMES = [
    (_CANARY, "progressDeadlineSeconds", INT64_MAX, "spec.progressDeadlineSeconds"),
    (_CANARY, "minReadySeconds", INT64_MAX, "spec.minReadySeconds"),
    (_CANARY, "replicas", INT64_MAX, "spec.replicas"),
    (_CANARY, "strategy.canary.steps.1.pause.duration", "99999999999999999999h",
     "spec.strategy.canary.steps[1].pause.duration"),
    (_CANARY, "strategy.canary.steps.1.pause.duration", INT64_MAX,
     "spec.strategy.canary.steps[1].pause.duration"),
    (_CANARY, "strategy.canary.steps.1.pause.duration", "99999999999999999999",
     "spec.strategy.canary.steps[1].pause.duration"),
    (_CANARY, "strategy.canary.scaleDownDelaySeconds", INT64_MAX,
     "spec.strategy.canary.scaleDownDelaySeconds"),
    (_CANARY, "strategy.canary.abortScaleDownDelaySeconds", INT64_MAX,
     "spec.strategy.canary.abortScaleDownDelaySeconds"),
    (_BLUE_GREEN, "strategy.blueGreen.scaleDownDelaySeconds", INT64_MAX,
     "spec.strategy.blueGreen.scaleDownDelaySeconds"),
    (_BLUE_GREEN, "strategy.blueGreen.autoPromotionSeconds", INT64_MAX,
     "spec.strategy.blueGreen.autoPromotionSeconds"),
    (_BLUE_GREEN, "strategy.blueGreen.abortScaleDownDelaySeconds", INT64_MAX,
     "spec.strategy.blueGreen.abortScaleDownDelaySeconds"),
]


@pytest.mark.parametrize(("base", "path", "value", "field"), EXTREMES,
                         ids=[f"{e[1]}={e[2]}" for e in EXTREMES])
def test_an_extreme_value_is_invalid_spec_naming_the_field(
    base: dict[str, Any], path: str, value: Any, field: str
) -> None:
    world = World(_with(base, path, value))
    parsed = parse_rollout(world.rollout())
    assert isinstance(parsed, InvalidRollout)
    assert field in dict(parsed.errors), parsed.errors
    result = world.plan()
    assert result.status.phase == "Degraded"
    assert any(c.type == "InvalidSpec" and c.status == "True" and field in c.message
               for c in result.status.conditions)


@pytest.mark.parametrize(("base", "path", "value"), [
    (_CANARY, "progressDeadlineSeconds", MAX_DURATION_SECONDS),
    (_CANARY, "strategy.canary.steps.1.pause.duration", "87600h"),
    (_ROUTED, "strategy.canary.scaleDownDelaySeconds", MAX_DURATION_SECONDS),
    (_BLUE_GREEN, "strategy.blueGreen.autoPromotionSeconds", MAX_DURATION_SECONDS),
    (_BLUE_GREEN, "strategy.blueGreen.scaleDownDelaySeconds", MAX_DURATION_SECONDS),
])
def test_the_largest_accepted_values_plan_without_overflow(
    base: dict[str, Any], path: str, value: Any
) -> None:
    world = World(_with(base, path, value))
    assert isinstance(parse_rollout(world.rollout()), ValidRollout)
    world.run(10)
    world.set_image("app:2")
    world.run(10)
    world.advance(MAX_DURATION_SECONDS)
    world.run(5)


def _template(**metric: Any) -> dict[str, Any]:
    return {
        "apiVersion": "rollouts.dev/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "t"},
        "spec": {"metrics": [{"name": "m", "successCondition": "result[0] < 1",
                              "provider": {"prometheus": {"query": "q"}}, **metric}]},
    }


@pytest.mark.parametrize(("field", "value"), [
    ("interval", INT64_MAX), ("interval", "99999999999999999999h"),
    ("initialDelay", INT64_MAX), ("initialDelay", "2562047h47m16.854775807s"),
])
def test_analysis_durations_beyond_the_limit_are_invalid_spec(field: str, value: Any) -> None:
    with pytest.raises(InvalidSpecError) as info:
        load_analysis_template(_template(**{field: value}))
    assert info.value.field == f"spec.metrics[0].{field}"
    assert "87600h" in str(info.value)
    parsed = parse_template(_template(**{field: value}), cluster=False)
    assert parsed.template is None and field in parsed.error


def test_the_assessment_schedules_the_longest_accepted_durations() -> None:
    spec = AnalysisRunSpec.model_validate(
        _template(interval=MAX_DURATION_SECONDS, initialDelay="87600h")["spec"])
    started = datetime(2026, 1, 1, tzinfo=UTC)
    due = next_measurement_at(spec.metrics[0], None, started)
    assert due is not None and (due - started).total_seconds() == MAX_DURATION_SECONDS
    assert requeue_after(spec, [], started, started) == MAX_DURATION_SECONDS


# --- one duration grammar ----------------------------------------------------------------


@functools.cache
def _crd_duration_patterns() -> frozenset[str]:
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("x-kubernetes-int-or-string") and "maxLength" in node \
                    and "pattern" in node and "%" not in node["pattern"]:
                found.add(node["pattern"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in CRDS.glob("rollouts.dev_*.yaml"):
        walk(yaml.safe_load(path.read_text()))
    return frozenset(found)


def test_every_crd_duration_uses_the_parser_grammar() -> None:
    assert _crd_duration_patterns() == {DURATION_PATTERN}


def _accepted_by_parser(text: str) -> bool:
    try:
        parse_duration(text)
    except ValueError as exc:
        return "at most" in str(exc)  # well-formed but too long: the grammar accepted it
    return True


_PIECES = st.sampled_from(["0", "1", "5", "30", "007", ".", ".5", "1.", "1.5", "h", "m", "s",
                           "ms", "us", "ns", "\u00b5s", "\u03bcs", "d", "-", "+", " ", "e"])


@settings(max_examples=600, deadline=None)
@given(st.lists(_PIECES, max_size=8).map("".join))
def test_the_crd_pattern_and_the_parser_agree(text: str) -> None:
    (pattern,) = _crd_duration_patterns()
    # The API server matches `pattern` with Go's regexp (RE2); this pattern uses only syntax
    # that RE2 and Python read the same way.
    assert (re2.search(pattern, text) is not None) == _accepted_by_parser(text), text


@pytest.mark.parametrize(("text", "seconds"), [
    ("30", 30), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("1.5h", 5400), ("5s5m", 305),
    ("1h1h", 7200), ("500ms", 1), ("1ns", 1), (".5s", 1), ("2\u00b5s", 1), ("0s", 0),
    ("87600h", MAX_DURATION_SECONDS),
])
def test_go_durations_parse(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5m5", "", "h", "1d", "-5s", "+5s", " 5s", "5s ", "1.h.", "."])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)
    assert not re.search(DURATION_PATTERN, text)


def test_counts_are_bounded_like_kubernetes_int32() -> None:
    assert isinstance(parse_rollout(World(_with(_CANARY, "replicas", MAX_INT32)).rollout()),
                      ValidRollout)
    parsed = parse_rollout(World(_with(_CANARY, "replicas", MAX_INT32 + 1)).rollout())
    assert isinstance(parsed, InvalidRollout)
    assert "spec.replicas" in dict(parsed.errors)
