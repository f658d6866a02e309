"""Every field a Rollout's spec accepts either changes what the controller does or is
refused with a message naming it: never accepted and silently ignored.

The table classifies each field of the Rollout spec, the canary and blue-green strategies,
a canary step and an analysis reference; a field added to a model without a row here fails
the completeness test. Refused fields carry a manifest fragment that sets them where they
would do nothing, and the error path the controller reports.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import BaseModel

from rollouts.models.rollout import (
    BlueGreenStrategy,
    CanaryStep,
    CanaryStrategy,
    RolloutSpec,
    RolloutStrategy,
    rollout_manifest_errors,
)
from rollouts.models.rollout_analysis import RolloutAnalysis
from tests.unit.world import blue_green_spec, canary_spec

# field -> where the controller acts on it (module) or "refused: <when>"
FIELDS: dict[type[BaseModel], dict[str, str]] = {
    RolloutSpec: {
        "replicas": "planner (every strategy)", "selector": "planner/manifests.py",
        "template": "planner/manifests.py", "workload_ref": "kube/workload.py, planner/workload.py",
        "rollback_window": "planner/rollback_window.py",
        "min_ready_seconds": "planner/manifests.py (ReplicaSet minReadySeconds)",
        "revision_history_limit": "planner/context.py trim_history",
        "paused": "planner/canary.py, bluegreen.py", "progress_deadline_seconds": "planner/plan.py",
        "progress_deadline_abort": "planner/plan.py", "strategy": "planner/plan.py",
        "analysis": "planner/analysis.py trim_runs",
        "restart_at": "planner/restart.py",
    },
    CanaryStrategy: {
        "canary_service": "planner/canary.py pin", "stable_service": "planner/canary.py pin",
        "steps": "planner/canary.py", "max_surge": "planner/traffic.py rolling_counts",
        "max_unavailable": "planner/traffic.py rolling_counts",
        "analysis": "planner/canary.py background analysis",
        "scale_down_delay_seconds": "refused: other than 0 without trafficRouting",
        "abort_scale_down_delay_seconds": "refused: other than 0 without trafficRouting",
        "traffic_routing": "traffic/ routers",
        "dynamic_stable_scale": "refused: without trafficRouting (models/traffic.py)",
        "scale_down_delay_revision_limit": "refused: without trafficRouting",
        "min_pods_per_replica_set": "refused: without trafficRouting",
        "canary_metadata": "planner/pod_metadata.py", "stable_metadata": "planner/pod_metadata.py",
        "anti_affinity": "planner/anti_affinity.py",
        "ping_pong": "planner/pingpong.py (alb, istio; refused without a router)",
        "replica_progress_threshold": "refused: without trafficRouting",
    },
    BlueGreenStrategy: {
        "active_service": "planner/bluegreen.py", "preview_service": "planner/bluegreen.py",
        "preview_replica_count": "planner/bluegreen.py",
        "auto_promotion_enabled": "planner/bluegreen.py",
        "auto_promotion_seconds": "planner/bluegreen.py",
        "max_unavailable": "refused: other than 0",
        "scale_down_delay_seconds": "planner/bluegreen.py",
        "abort_scale_down_delay_seconds": "planner/bluegreen.py",
        "pre_promotion_analysis": "planner/bluegreen.py",
        "post_promotion_analysis": "planner/bluegreen.py",
        "active_metadata": "planner/pod_metadata.py",
        "preview_metadata": "planner/pod_metadata.py",
        "anti_affinity": "planner/anti_affinity.py",
    },
    RolloutStrategy: {
        "canary": "planner/canary.py", "blue_green": "planner/bluegreen.py",
        "create_services": "planner/owned_services.py",
    },
    CanaryStep: {
        "set_weight": "planner/steps/set_weight.py", "pause": "planner/steps/pause.py",
        "set_canary_scale": "refused: without trafficRouting; else planner/router_traffic.py",
        "analysis": "planner/steps/analysis.py",
        "set_header_route": "refused: without trafficRouting; else traffic/",
        "set_mirror_route": "refused: without trafficRouting; else traffic/",
        "plugin": "planner/steps/plugin.py",
        "experiment": "planner/steps/experiment.py",
    },
    RolloutAnalysis: {
        "templates": "analysis/templates.py", "args": "analysis/templates.py",
        "dry_run": "analysis/templates.py, analysis/run.py",
        "measurement_retention": "analysis/templates.py",
    },
}

C = "spec.strategy.canary"

# (base spec, where to set it, value, the error path reported)
REFUSED: list[tuple[dict[str, Any], str, Any, str]] = [
    (canary_spec(), "strategy.canary.scaleDownDelaySeconds", 30, f"{C}.scaleDownDelaySeconds"),
    (canary_spec(), "strategy.canary.abortScaleDownDelaySeconds", 10,
     f"{C}.abortScaleDownDelaySeconds"),
    (canary_spec(), "strategy.canary.replicaProgressThreshold", {"type": "Pod", "value": 1},
     f"{C}.replicaProgressThreshold"),
    (canary_spec(), "strategy.canary.dynamicStableScale", True, f"{C}.dynamicStableScale"),
    (canary_spec(), "strategy.canary.scaleDownDelayRevisionLimit", 1,
     f"{C}.scaleDownDelayRevisionLimit"),
    (canary_spec(), "strategy.canary.minPodsPerReplicaSet", 2, f"{C}.minPodsPerReplicaSet"),
    (canary_spec(), "strategy.canary.steps", [{"setCanaryScale": {"replicas": 1}}],
     f"{C}.steps[0].setCanaryScale"),
    (blue_green_spec(), "strategy.blueGreen.maxUnavailable", 1,
     "spec.strategy.blueGreen.maxUnavailable"),
    (blue_green_spec(), "strategy.blueGreen.maxUnavailable", "25%",
     "spec.strategy.blueGreen.maxUnavailable"),
]

HONOURED_AS_WRITTEN: list[tuple[dict[str, Any], str, Any]] = [
    (canary_spec(), "strategy.canary.canaryMetadata", {"labels": {"a": "b"}}),
    (canary_spec(), "strategy.canary.stableMetadata", {"labels": {"a": "b"}}),
    # 0 is no delay: what happens without a router anyway.
    (canary_spec(), "strategy.canary.scaleDownDelaySeconds", 0),
    (canary_spec(), "strategy.canary.abortScaleDownDelaySeconds", 0),
    (blue_green_spec(), "strategy.blueGreen.maxUnavailable", 0),
    (canary_spec(canaryService="c", stableService="s", trafficRouting={"smi": {}}),
     "strategy.canary.replicaProgressThreshold", {"type": "Percent", "value": 90}),
    (canary_spec(canaryService="c", stableService="s", trafficRouting={"smi": {}}),
     "strategy.canary.scaleDownDelaySeconds", 30),
]


def _set(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    node = spec
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return spec


def test_every_field_is_classified() -> None:
    for model, table in FIELDS.items():
        assert set(model.model_fields) == set(table), (
            f"{model.__name__}: classify {set(model.model_fields) ^ set(table)} here")


@pytest.mark.parametrize(("base", "path", "value", "error"), REFUSED)
def test_a_field_that_would_do_nothing_is_refused_naming_it(
        base: dict[str, Any], path: str, value: Any, error: str) -> None:
    errors = dict(rollout_manifest_errors(_set(base, path, value)))
    assert error in errors, errors


@pytest.mark.parametrize(("base", "path", "value"), HONOURED_AS_WRITTEN)
def test_a_field_set_where_it_acts_is_accepted(base: dict[str, Any], path: str,
                                              value: Any) -> None:
    assert rollout_manifest_errors(_set(base, path, value)) == []
