"""prepare_runs costs nothing for a Rollout without analysis, and resolves the references of
one that has some only when what the runs are made from changed (kube/analysis.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from rollouts.controller.parsed import parse_once
from rollouts.kube import analysis
from rollouts.kube.analysis import Templates, parse_template, prepare_runs
from rollouts.models.rollout import ValidRollout
from tests.unit.test_execute import rollout_body
from tests.unit.test_prepare_runs import TEMPLATE, rollout

STEP = "spec.strategy.canary.steps[1].analysis"


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The fields build_analysis_run was called for."""
    calls: list[str] = []
    build = analysis.build_analysis_run

    def counted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs["field"])
        return build(*args, **kwargs)

    monkeypatch.setattr(analysis, "build_analysis_run", counted)
    return calls


def indexed(template: dict[str, Any] = TEMPLATE) -> Templates:
    return Templates.from_parsed([parse_template(template, cluster=False)])


def test_a_rollout_without_analysis_hashes_and_dumps_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*_: Any) -> Any:
        raise AssertionError("not needed without an analysis reference")

    monkeypatch.setattr(analysis, "run_slot", never)
    monkeypatch.setattr(analysis, "rollout_body", never)
    parsed = parse_once(None, rollout_body(status={})).rollout
    assert isinstance(parsed, ValidRollout)
    assert prepare_runs(parsed, indexed()) == ({}, {})


def test_the_body_args_read_is_the_metadata_only() -> None:
    body = analysis.rollout_body(rollout({}))
    assert "spec" not in body
    assert body["metadata"]["name"] == "web" and body["metadata"]["uid"] == "u1"


def test_a_second_pass_with_the_same_inputs_reuses_the_runs(builds: list[str]) -> None:
    model, templates = rollout({"stableRS": "s1"}), indexed()
    first = prepare_runs(model, templates)
    again = prepare_runs(model, Templates.from_parsed(templates.sources or ()))
    assert builds == [STEP]
    assert again == first
    again[0].clear()  # the caller's copy: the kept runs are not touched
    assert list(prepare_runs(model, templates)[0]) == [STEP]


def test_the_echo_of_a_status_write_reuses_the_runs(builds: list[str]) -> None:
    """A new resourceVersion with the same spec, labels and annotations."""
    model, templates = rollout({"stableRS": "s1"}), indexed()
    prepare_runs(model, templates)
    echo = dataclasses.replace(
        model, metadata=model.metadata.model_copy(update={"resource_version": "9"}),
        status=model.status.model_copy(update={"phase": "Paused"}))
    prepare_runs(echo, templates)
    assert builds == [STEP]


def test_what_the_runs_are_made_from_changing_builds_them_again(builds: list[str]) -> None:
    model, templates = rollout({"stableRS": "s1"}), indexed()
    prepared, _ = prepare_runs(model, templates)
    changes = [
        dataclasses.replace(model, status=model.status.model_copy(
            update={"stable_rs": "s2"})),
        dataclasses.replace(model, metadata=model.metadata.model_copy(
            update={"labels": {"team": "a"}})),
        dataclasses.replace(model, template={**model.template, "x": 1}),
    ]
    for changed in changes:
        prepare_runs(changed, templates)
    assert builds == [STEP] * 4
    query = 'x{a="{{args.canary-hash}}",b="{{args.stable-hash}}",c="1"}'
    edited = {**TEMPLATE, "spec": {**TEMPLATE["spec"], "metrics": [
        {**TEMPLATE["spec"]["metrics"][0], "provider": {"prometheus": {"query": query}}}]}}
    rebuilt, _ = prepare_runs(model, indexed(edited))  # the template's watch event
    assert len(builds) == 5
    metric = rebuilt[STEP].manifest["spec"]["metrics"][0]
    assert metric["provider"]["prometheus"]["query"].endswith(',c="1"}')
    assert rebuilt[STEP].manifest != prepared[STEP].manifest


def test_templates_built_directly_are_never_taken_for_the_same(builds: list[str]) -> None:
    """Nothing tells a change of mappings built by hand: resolved every time."""
    model = rollout({"stableRS": "s1"})
    direct = Templates(namespaced=dict(indexed().namespaced))
    prepare_runs(model, direct)
    prepare_runs(model, direct)
    assert builds == [STEP, STEP]


def test_a_problem_is_kept_and_reported_again(builds: list[str]) -> None:
    model, templates = rollout({"stableRS": "s1"}), Templates.from_parsed([])
    for _ in range(2):
        assert prepare_runs(model, templates) == ({}, {
            f"{STEP}.templates[0]": "AnalysisTemplate 'compare' not found"})
    assert builds == [STEP]
