"""Metric provider `timeout` fields are bounded like every duration (issue 11): positive and
at most 87600h in seconds; beyond, the template is invalid naming the field, and the CRD
schema says the same at admission."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from rollouts.analysis.runner import ProviderSet
from rollouts.errors import InvalidSpecError
from rollouts.models.analysis import load_analysis_template
from rollouts.models.base import MAX_DURATION_SECONDS

CRDS = Path(__file__).resolve().parents[2] / "crds"
INT64_MAX = 2**63 - 1

PROVIDERS: dict[str, tuple[dict[str, Any], str]] = {
    "prometheus": ({"query": "up"}, "timeout"),
    "web": ({"url": "http://example.test/"}, "timeoutSeconds"),
    "newRelic": ({"query": "SELECT 1"}, "timeout"),
    "graphite": ({"address": "http://g", "query": "t"}, "timeout"),
    "influxdb": ({"query": "from()"}, "timeout"),
    "wavefront": ({"address": "w", "query": "ts(x)"}, "timeout"),
    "skywalking": ({"address": "http://s", "query": "q"}, "timeout"),
}


def template(provider: str, value: object) -> dict[str, Any]:
    spec, key = PROVIDERS[provider]
    return {"apiVersion": "rollouts.dev/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": "t"},
            "spec": {"metrics": [{"name": "m", "successCondition": "result < 1",
                                  "provider": {provider: {**spec, key: value}}}]}}


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_the_longest_timeout_is_accepted_and_measured_with(provider: str) -> None:
    loaded = load_analysis_template(template(provider, MAX_DURATION_SECONDS))
    metric = loaded.spec.metrics[0]
    assert ProviderSet.timeout_for(ProviderSet(None, None, None),  # type: ignore[arg-type]
                                   metric) == MAX_DURATION_SECONDS + 5


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("value", [MAX_DURATION_SECONDS + 1, INT64_MAX, 0, -1])
def test_a_timeout_out_of_bounds_is_invalid_naming_the_field(provider: str, value: int) -> None:
    key = PROVIDERS[provider][1]
    with pytest.raises(InvalidSpecError) as refused:
        load_analysis_template(template(provider, value))
    assert refused.value.field == f"spec.metrics[0].provider.{provider}.{key}"
    assert ("less than or equal to 315360000" in refused.value.message
            if value > 0 else "greater than 0" in refused.value.message)


def test_the_crds_bound_every_provider_timeout() -> None:
    crd = yaml.safe_load((CRDS / "rollouts.dev_analysistemplates.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    providers = (schema["properties"]["spec"]["properties"]["metrics"]["items"]
                 ["properties"]["provider"]["properties"])
    for provider, (_, key) in PROVIDERS.items():
        field = providers[provider]["properties"][key]
        assert (field["minimum"], field["maximum"]) == (1, MAX_DURATION_SECONDS), provider
