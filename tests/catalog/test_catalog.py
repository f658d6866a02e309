"""The ready-made ClusterAnalysisTemplates in `analysis/`.

Static half: every file loads with our model, uses only declared args, and its conditions
compile (and behave) once the default args are substituted. Live half: each template's
query, args substituted, runs through `PrometheusProvider` against a real Prometheus loaded
with synthetic traffic (see conftest.py) at a fixed past moment, and `measurement_outcome`
must say Successful for good traffic, Failed for bad, and never Successful without traffic.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollouts.analysis.conditions import compile_condition, measurement_outcome
from rollouts.analysis.providers.base import Measurement, ProviderContext
from rollouts.analysis.providers.prometheus import PrometheusProvider
from rollouts.models.analysis import (
    ClusterAnalysisTemplate,
    Metric,
    load_cluster_analysis_template,
)
from rollouts.models.rollout import parse_spec
from rollouts.sandbox.prometheus import PrometheusServer
from tests.catalog.conftest import AT, KINDS, Scenario, kind_of, scenarios

CATALOG = Path(__file__).resolve().parents[2] / "analysis"
README = CATALOG / "README.md"
EXPECTED = sorted(name for kind in KINDS for name in (kind.success_template, kind.latency_template))
DEFAULT_ADDRESS = "http://prometheus.monitoring:9090"
PLACEHOLDER = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.\-]+)\s*\}\}")
SCENARIOS = scenarios()


# ---------------------------------------------------------------------------------------------
# Helpers


def read(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((CATALOG / f"{name}.yaml").read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def declared_args(doc: Mapping[str, Any]) -> dict[str, str | None]:
    """Arg name -> default value (None: the caller must give it)."""
    return {arg["name"]: arg.get("value") for arg in doc["spec"].get("args") or ()}


def substitute(value: Any, args: Mapping[str, str]) -> Any:
    """Replace every `{{args.x}}` in every string of `value` (textually, as Argo does)."""
    if isinstance(value, str):

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in args:
                raise KeyError(f"no value for {{{{args.{name}}}}}")
            return args[name]

        return PLACEHOLDER.sub(one, value)
    if isinstance(value, list):
        return [substitute(item, args) for item in value]
    if isinstance(value, dict):
        return {key: substitute(item, args) for key, item in value.items()}
    return value


def resolve(doc: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, Any]:
    """The template with defaults, then `given`, substituted; refuses unknown args."""
    declared = declared_args(doc)
    unknown = sorted(set(given) - set(declared))
    assert not unknown, f"args not declared by the template: {unknown}"
    values = {name: value for name, value in declared.items() if value is not None}
    values.update(given)
    missing = sorted(set(declared) - set(values))
    assert not missing, f"required args not given: {missing}"
    resolved: dict[str, Any] = substitute(dict(doc), values)
    assert "{{" not in yaml.safe_dump(resolved), "a placeholder survived substitution"
    return resolved


def required_dummies(doc: Mapping[str, Any]) -> dict[str, str]:
    return {name: f"dummy-{name}" for name, value in declared_args(doc).items() if value is None}


def the_metric(template: ClusterAnalysisTemplate) -> Metric:
    (metric,) = template.spec.metrics
    return metric


def outcome_of(metric: Metric, result: object) -> tuple[str, str | None]:
    assert metric.success_condition is not None
    assert metric.failure_condition is not None
    success = compile_condition(metric.success_condition)
    failure = compile_condition(metric.failure_condition)
    return tuple(measurement_outcome(success, failure, result))  # type: ignore[return-value]


def resolved_defaults(name: str) -> ClusterAnalysisTemplate:
    doc = read(name)
    return load_cluster_analysis_template(resolve(doc, required_dummies(doc)))


# ---------------------------------------------------------------------------------------------
# Static checks


def test_the_catalog_holds_exactly_the_expected_templates() -> None:
    # The comparison templates (*-compare) are checked by test_compare_catalog.py.
    thresholds = [p.stem for p in CATALOG.glob("*.yaml") if not p.stem.endswith("-compare")]
    assert sorted(thresholds) == EXPECTED
    assert not list(CATALOG.glob("*.yml")), "use the .yaml extension"


def test_every_template_has_live_scenarios_for_good_bad_and_no_traffic() -> None:
    for name in EXPECTED:
        cases = {s.case: s.phase for s in SCENARIOS if s.template == name}
        assert cases.get("good") == "Successful", name
        assert cases.get("bad") == "Failed", name
        assert cases.get("no-traffic") not in (None, "Successful"), name


@pytest.mark.parametrize("name", EXPECTED)
def test_template_loads_as_is(name: str) -> None:
    doc = read(name)
    template = load_cluster_analysis_template(doc)
    assert template.api_version == "rollouts.dev/v1alpha1"
    assert template.kind == "ClusterAnalysisTemplate"
    assert template.metadata["name"] == name
    metric = the_metric(template)
    assert metric.provider.kind == "prometheus"
    assert metric.success_condition and metric.failure_condition
    assert metric.interval is not None


@pytest.mark.parametrize("name", EXPECTED)
def test_placeholders_and_declared_args_match(name: str) -> None:
    doc = read(name)
    declared = declared_args(doc)
    body = {key: value for key, value in doc["spec"].items() if key != "args"}
    used = set(PLACEHOLDER.findall(yaml.safe_dump(body)))
    assert used == set(declared), (
        f"undeclared: {sorted(used - set(declared))}, unused: {sorted(set(declared) - used)}"
    )
    # Defaults are strings (Argo's args are strings) and the address is overridable.
    assert all(value is None or isinstance(value, str) for value in declared.values())
    assert declared["prometheus-address"] == DEFAULT_ADDRESS
    assert doc["spec"]["metrics"][0]["provider"]["prometheus"]["address"] == (
        "{{args.prometheus-address}}"
    )


def test_shared_args_have_the_same_default_everywhere() -> None:
    # Templates run together in one analysis share their args, so a success-rate and a
    # latency template must agree on every default they have in common.
    defaults: dict[str, set[str | None]] = {}
    for name in EXPECTED:
        for arg, value in declared_args(read(name)).items():
            defaults.setdefault(arg, set()).add(value)
    assert {arg: values for arg, values in defaults.items() if len(values) > 1} == {}


@pytest.mark.parametrize("name", EXPECTED)
def test_conditions_compile_and_limits_resolve_with_default_args(name: str) -> None:
    metric = the_metric(resolved_defaults(name))
    assert metric.success_condition is not None and metric.failure_condition is not None
    compile_condition(metric.success_condition)
    compile_condition(metric.failure_condition)
    assert metric.effective_count() == 5
    assert metric.effective_failure_limit() == 1
    assert metric.effective_inconclusive_limit() == 1
    assert metric.interval_seconds() == 60
    assert metric.provider.prometheus is not None
    assert metric.provider.prometheus.address == DEFAULT_ADDRESS


@pytest.mark.parametrize("name", EXPECTED)
def test_conditions_never_call_missing_data_a_success(name: str) -> None:
    metric = the_metric(resolved_defaults(name))
    if metric.name == "success-rate":
        passing, boundary, failing = 0.99, 0.95, 0.5
    else:
        assert metric.name == "latency"
        passing, boundary, failing = 100.0, 500.0, 600.0
    assert outcome_of(metric, [passing])[0] == "Successful"
    assert outcome_of(metric, [boundary])[0] == "Successful"
    assert outcome_of(metric, [failing])[0] == "Failed"
    # No traffic is an empty vector: neither condition holds.
    assert outcome_of(metric, []) == ("Inconclusive", None)
    # A NaN cannot be compared: an evaluation error, never a success.
    phase, message = outcome_of(metric, [math.nan])
    assert phase == "Error" and message is not None and "NaN" in message


# ---------------------------------------------------------------------------------------------
# README


def _yaml_blocks(text: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)


def test_readme_lists_every_template_and_its_args() -> None:
    text = README.read_text(encoding="utf-8")
    for name in EXPECTED:
        assert f"`{name}`" in text, f"{name} missing from analysis/README.md"
        for arg in declared_args(read(name)):
            assert f"`{arg}`" in text, f"arg {arg} of {name} missing from analysis/README.md"


def test_readme_rollout_example_is_a_valid_rollout_using_catalog_templates() -> None:
    docs = [
        doc
        for block in _yaml_blocks(README.read_text(encoding="utf-8"))
        for doc in yaml.safe_load_all(block)
        if isinstance(doc, dict) and doc.get("kind") == "Rollout"
    ]
    assert docs, "analysis/README.md shows no Rollout"
    for doc in docs:
        spec = parse_spec(doc["spec"])
        assert spec.strategy.canary is not None
        analyses = [s.analysis for s in spec.strategy.canary.steps or () if s.analysis]
        assert analyses, "the example Rollout has no analysis step"
        for analysis in analyses:
            given = {arg.name for arg in analysis.args or ()}
            for ref in analysis.templates:
                assert ref.cluster_scope, "catalog templates are cluster-scoped"
                assert ref.template_name in EXPECTED
                required = required_dummies(read(ref.template_name))
                assert set(required) <= given, f"{ref.template_name} needs {sorted(required)}"


# ---------------------------------------------------------------------------------------------
# Live: real Prometheus, real provider


@pytest.mark.prometheus
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
async def test_template_against_prometheus(
    scenario: Scenario, catalog_prometheus: PrometheusServer
) -> None:
    kind = kind_of(scenario.template)
    args = {
        **kind.template_args(scenario.traffic),
        "prometheus-address": catalog_prometheus.url,
        **scenario.overrides,
    }
    template = load_cluster_analysis_template(resolve(read(scenario.template), args))
    metric = the_metric(template)
    async with PrometheusProvider() as provider:
        result = await provider.measure(metric, ProviderContext(), AT)
    assert isinstance(result, Measurement), result
    assert result.kind == "vector"
    if scenario.value is None:
        assert result.no_data, f"expected no data, got {result.raw}"
    else:
        assert isinstance(result.value, list) and len(result.value) == 1, result.raw
        assert result.value[0] == pytest.approx(scenario.value, rel=1e-9)
    phase, message = outcome_of(metric, result.value)
    assert phase == scenario.phase, (phase, message, result.raw)
