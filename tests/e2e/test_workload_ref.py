"""spec.workloadRef end to end: a Deployment with 4 ready pods is migrated to a Rollout that
references it, in the sandbox (API emulator, Deployment and ReplicaSet controllers, kubelet)
with the real controller.

While the Rollout takes over, the ready pods of the app (the Deployment's and the Rollout's
together) are sampled continuously: they never drop below the 4 desired. The Deployment ends
at 0 pods (scaleDown progressively / onsuccess) or is not touched (never).
"""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.sandbox.apiserver import ApiError
from rollouts.sandbox.kubelet import is_pod_ready
from tests.e2e.conftest import CountingSandbox

pytestmark = pytest.mark.e2e

REPLICAS = 4


def deployment(image: str = "web:1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": image}]}},
        },
    }


def rollout(scale_down: str) -> dict[str, Any]:
    return {
        "apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": REPLICAS,
            "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                            "scaleDown": scale_down},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
        },
    }


def get_deployment(sb: CountingSandbox) -> dict[str, Any]:
    found = sb.emulator.get_object("apps", "v1", "deployments", sb.namespace, "web")
    assert found is not None
    return found


def ready_pods(sb: CountingSandbox) -> dict[str, int]:
    """Ready pods of the app by owner kind: "deployment" (pod-template-hash) or "rollout"."""
    counts = {"deployment": 0, "rollout": 0}
    for pod in sb.emulator.list_objects("", "v1", "pods", sb.namespace, label_selector="app=web"):
        if not is_pod_ready(pod) or pod["metadata"].get("deletionTimestamp"):
            continue
        labels = pod["metadata"].get("labels") or {}
        counts["rollout" if "rollouts-pod-template-hash" in labels else "deployment"] += 1
    return counts


def ready_over_time(sb: CountingSandbox, since: int) -> list[dict[str, int]]:
    """Ready pods of the app by owner after every pod write from resourceVersion `since` on,
    replayed in the API server's write order: every state the cluster passed through, none
    missed between two looks."""
    ready: dict[str, tuple[str, bool]] = {}  # pod uid -> (owner, ready)
    states = []
    for rv, plural, event, pod in sb.emulator.write_history():
        if plural != "pods" or (pod["metadata"].get("labels") or {}).get("app") != "web":
            continue
        labels = pod["metadata"].get("labels") or {}
        owner = "rollout" if "rollouts-pod-template-hash" in labels else "deployment"
        uid = pod["metadata"]["uid"]
        if event == "DELETED" or pod["metadata"].get("deletionTimestamp"):
            ready.pop(uid, None)
        else:
            ready[uid] = (owner, is_pod_ready(pod))
        if rv >= since:
            states.append({kind: sum(1 for o, r in ready.values() if o == kind and r)
                           for kind in ("deployment", "rollout")})
    return states


def last_rv(sb: CountingSandbox) -> int:
    return max(rv for rv, *_ in sb.emulator.write_history())


def start_deployment(sb: CountingSandbox) -> None:
    sb.apply([deployment()])
    sb.wait_for("the Deployment's 4 pods ready",
                lambda: ready_pods(sb)["deployment"] == REPLICAS)


@pytest.mark.parametrize("scale_down", ["progressively", "onsuccess"])
def test_migration_keeps_every_pod_available_and_scales_the_deployment_to_zero(
        cluster: CountingSandbox, scale_down: str) -> None:
    sb = cluster
    start_deployment(sb)
    since = last_rv(sb)
    sb.apply([rollout(scale_down)])
    sb.wait_phase("web", "Healthy")
    sb.wait_for("the Deployment scaled to 0 with no pod left",
                lambda: get_deployment(sb)["spec"]["replicas"] == 0
                and ready_pods(sb) == {"deployment": 0, "rollout": REPLICAS})
    states = ready_over_time(sb, since)
    totals = [sum(state.values()) for state in states]
    assert min(totals) >= REPLICAS, f"ready pods fell to {min(totals)} during the migration"
    assert states[-1] == {"deployment": 0, "rollout": REPLICAS}
    # The Deployment's pods went only while the Rollout's were ready beside them.
    assert any(s["deployment"] == REPLICAS and s["rollout"] > 0 for s in states), states
    # The Rollout runs the Deployment's template, with its own hash label.
    (stable,) = sb.replica_sets("web").values()
    containers = stable["spec"]["template"]["spec"]["containers"]
    assert containers[0]["image"] == "web:1"
    assert sb.status("web")["selector"] == "app=web"  # taken from the Deployment

    # A new template in the Deployment is a new revision of the Rollout: it walks the steps.
    before = sb.status("web")["currentPodHash"]
    sb.emulator.patch_object("apps", "v1", "deployments", sb.namespace, "web", {
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}})
    status = sb.wait_phase("web", "Paused", step=1)
    assert status["currentPodHash"] != before
    assert get_deployment(sb)["spec"]["replicas"] == 0  # not scaled back up by a release


def test_scale_down_never_leaves_the_deployment_untouched(cluster: CountingSandbox) -> None:
    sb = cluster
    start_deployment(sb)
    generation = get_deployment(sb)["metadata"]["generation"]
    sb.apply([rollout("never")])
    sb.wait_phase("web", "Healthy")
    sb.wait_for("the Rollout's 4 pods ready", lambda: ready_pods(sb)["rollout"] == REPLICAS)
    deployed = get_deployment(sb)
    assert deployed["spec"]["replicas"] == REPLICAS
    assert deployed["metadata"]["generation"] == generation
    assert ready_pods(sb)["deployment"] == REPLICAS
    assert sb.failed_writes("/deployments/web", codes=(200, 201, 409, 422)) == 0


def test_a_missing_deployment_is_invalid_spec_until_it_exists(cluster: CountingSandbox) -> None:
    sb = cluster
    sb.apply([rollout("onsuccess")])
    status = sb.wait_phase("web", "Degraded")
    assert 'spec.workloadRef.name: Deployment "web" not found' in status["message"]
    sb.apply([deployment()])  # its creation wakes the Rollout
    sb.wait_phase("web", "Healthy")
    sb.wait_for("the Deployment scaled to 0", lambda: get_deployment(sb)["spec"]["replicas"] == 0)


def test_template_and_workload_ref_together_are_refused(sandbox: CountingSandbox) -> None:
    body = rollout("never")
    body["spec"]["template"] = deployment()["spec"]["template"]
    with pytest.raises(ApiError) as refused:  # by the CRD's validation rule, at admission
        sandbox.apply([body])
    assert refused.value.code == 422
    assert "template and workloadRef cannot be used together" in str(refused.value)
