"""workloadRef (resolution and the Deployment's scale-down), rollbackWindow and
replicaProgressThreshold, planned without a cluster."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from rollouts.kube.workload import resolve_workload
from rollouts.models.rollout import InvalidRollout, ValidRollout, parse_rollout
from rollouts.models.workload import ReplicaProgressThreshold
from rollouts.planner.plan import plan
from rollouts.planner.progress_threshold import required_pods
from rollouts.planner.types import Observed, Plan, ScaleDeployment, WorkloadView
from tests.unit.world import World, canary_spec


def deployment_body(replicas: int = 4, image: str = "app:1") -> dict[str, Any]:
    return {"metadata": {"name": "web", "resourceVersion": "7"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "demo"}},
                     "template": {"metadata": {"labels": {"app": "demo"}},
                                  "spec": {"containers": [{"name": "app", "image": image}]}}}}


def ref_spec(scale_down: str, steps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec = canary_spec(steps or [{"setWeight": 50}, {"pause": {}}])
    del spec["template"], spec["selector"]
    spec["workloadRef"] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                           "scaleDown": scale_down}
    return spec


@dataclasses.dataclass
class WorkloadWorld(World):
    deployment: dict[str, Any] | None = dataclasses.field(default_factory=deployment_body)

    def observed(self) -> Observed:
        view = None if self.deployment is None else WorkloadView(
            "web", self.deployment["spec"]["replicas"], 0, "7")
        return dataclasses.replace(super().observed(), workload=view)

    def plan(self) -> Plan:
        rollout = parse_rollout(self.rollout())
        if isinstance(rollout, ValidRollout):
            rollout = resolve_workload(rollout, self.deployment)
        return plan(rollout, self.observed(), self.now)

    def apply(self, result: Plan) -> None:
        super().apply(result)
        for action in result.actions:
            if isinstance(action, ScaleDeployment):
                assert self.deployment is not None and action.resource_version == "7"
                self.deployment["spec"]["replicas"] = action.replicas


def test_the_rollout_runs_the_deployments_template_and_selector() -> None:
    rollout = parse_rollout(WorkloadWorld(ref_spec("never")).rollout())
    assert isinstance(rollout, ValidRollout) and rollout.template == {}
    resolved = resolve_workload(rollout, deployment_body(image="app:7"))
    assert isinstance(resolved, ValidRollout)
    assert resolved.template["spec"]["containers"][0]["image"] == "app:7"
    assert resolved.spec.selector is not None and resolved.spec.selector.match_labels == {
        "app": "demo"}


@pytest.mark.parametrize(("body", "path", "text"), [
    (None, "spec.workloadRef.name", 'Deployment "web" not found'),
    ({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "demo"}}}},
     "spec.workloadRef", "has no usable pod template"),
    ({**deployment_body(), "spec": {**deployment_body()["spec"],
                                    "selector": {"matchLabels": {"app": "other"}}}},
     "spec.selector.matchLabels", "app=other does not match the template labels"),
])
def test_a_deployment_that_cannot_give_a_template_is_invalid_spec_naming_the_field(
        body: dict[str, Any] | None, path: str, text: str) -> None:
    rollout = parse_rollout(WorkloadWorld(ref_spec("never")).rollout())
    assert isinstance(rollout, ValidRollout)
    resolved = resolve_workload(rollout, body)
    assert isinstance(resolved, InvalidRollout)
    (found,) = resolved.errors
    assert found[0] == path and text in found[1]


def test_template_and_workload_ref_together_are_refused() -> None:
    spec = ref_spec("never")
    spec["template"] = copy.deepcopy(canary_spec()["template"])
    rollout = parse_rollout(WorkloadWorld(spec).rollout())
    assert isinstance(rollout, InvalidRollout)
    assert "template and workloadRef cannot be used together" in str(rollout.errors)


def deployment_sizes(scale_down: str, available: list[int]) -> list[int]:
    """The Deployment's replicas after each pass, the Rollout's first revision having
    `available` pods available in turn."""
    w = WorkloadWorld(ref_spec(scale_down), auto_ready=False)
    sizes = []
    for count in available:
        w.step()
        w.settle(available={h: count for h in w.replica_sets})
        w.step()
        assert w.deployment is not None
        sizes.append(w.deployment["spec"]["replicas"])
    return sizes


@pytest.mark.parametrize(("scale_down", "sizes"), [
    # One Deployment pod fewer for each available Rollout pod: never fewer than 4 in all.
    ("progressively", [4, 3, 1, 0, 0]),
    # Once Healthy (all 4 available), at once.
    ("onsuccess", [4, 4, 4, 0, 0]),
    ("never", [4, 4, 4, 4, 4]),
])
def test_the_deployment_is_scaled_down_as_scale_down_says(scale_down: str,
                                                           sizes: list[int]) -> None:
    assert deployment_sizes(scale_down, [0, 1, 3, 4, 4]) == sizes


def test_progressively_never_scales_the_deployment_back_up_on_a_dip() -> None:
    assert deployment_sizes("progressively", [2, 1, 0]) == [2, 2, 2]


def test_a_new_deployment_template_is_a_new_revision_walking_the_steps() -> None:
    w = WorkloadWorld(ref_spec("onsuccess"))
    w.run()
    assert w.status.phase == "Healthy" and w.deployment["spec"]["replicas"] == 0
    first = w.status.stable_rs
    w.deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "app:2"
    w.run()
    assert w.status.phase == "Paused" and w.status.current_step_index == 1
    assert w.status.current_pod_hash != first


# --- rollbackWindow -----------------------------------------------------------------------------


def released(window: int | None) -> World:
    """Revisions app:1, app:2, app:3, each promoted through its steps."""
    spec = canary_spec([{"setWeight": 50}, {"pause": {}}])
    if window is not None:
        spec["rollbackWindow"] = {"revisions": window}
    w = World(spec)
    w.run()
    for image in ("app:2", "app:3"):
        w.set_image(image)
        w.run()
        assert w.status.phase == "Paused"
        w.edit_status(pause_conditions=None, current_step_index=2)
        w.run()
        assert w.status.phase == "Healthy"
    return w


@pytest.mark.parametrize(("window", "image", "fast"), [
    (2, "app:2", True),   # one revision newer than the target (3): within 2
    (2, "app:1", False),  # two newer (2, 3): outside
    (3, "app:1", True),
    (None, "app:2", False),
    (0, "app:2", False),
])
def test_a_rollback_within_the_window_skips_the_steps(window: int | None, image: str,
                                                      fast: bool) -> None:
    w = released(window)
    w.set_image(image)
    w.run()
    assert w.status.phase == ("Healthy" if fast else "Paused")
    if fast:
        assert w.rs(w.status.stable_rs).pod_hash == w.status.current_pod_hash
        assert not any(p.reason == "CanaryPauseStep" for p in w.status.pause_conditions or ())


# --- replicaProgressThreshold -------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "value", "wanted", "needed"), [
    (None, 0, 10, 10),
    ("Percent", 80, 10, 8),
    ("Percent", 85, 10, 9),   # rounded up
    ("Percent", 0, 5, 1),     # a weight never goes to no pod at all
    ("Pod", 3, 10, 3),
    ("Pod", 20, 10, 10),      # never more than the weight asks for
    ("Percent", 90, 0, 0),
])
def test_required_pods(kind: str | None, value: int, wanted: int, needed: int) -> None:
    threshold = None if kind is None else ReplicaProgressThreshold(type=kind, value=value)
    assert required_pods(threshold, wanted) == needed


def test_the_threshold_lets_a_router_weight_be_set_before_every_pod_is_up() -> None:
    from tests.unit.fake_router import FakeRouter

    def paused_weight(threshold: dict[str, Any] | None) -> int | None:
        extra = {"replicaProgressThreshold": threshold} if threshold else {}
        w = World(canary_spec([{"setWeight": 100}, {"pause": {}}], canaryService="canary",
                              stableService="stable", trafficRouting={"smi": {}}, **extra),
                  router=FakeRouter())
        w.run()
        w.set_image("app:2")
        w.auto_ready = False
        for _ in range(5):
            w.step()
            w.settle(available={w.status.current_pod_hash or "": 3})
        return w.route_weight

    assert paused_weight(None) == 0  # 3 of 4 canary pods: the weight waits
    assert paused_weight({"type": "Percent", "value": 75}) == 100
    assert paused_weight({"type": "Pod", "value": 4}) == 0


def test_services_keep_the_deployments_pods_until_the_rollouts_are_all_available() -> None:
    spec = ref_spec("progressively")
    spec["strategy"]["canary"].update(canaryService="canary", stableService="stable")
    w = WorkloadWorld(spec, auto_ready=False)
    w.step()
    (pod_hash,) = w.replica_sets
    for available in (0, 3):
        w.settle(available={pod_hash: available})
        w.step()
        assert w.selector("stable") is None and w.selector("canary") is None
    w.settle()
    w.step()
    assert w.selector("stable") == pod_hash == w.selector("canary")
