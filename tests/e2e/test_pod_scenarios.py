"""Pod-level features against the real controller in the sandbox: role metadata changed on
running pods in place (same uid: not restarted), and `rollouts restart` replacing every pod
one at a time through the eviction subresource."""

from __future__ import annotations

import time
from typing import Any

import pytest

from rollouts.models.rollout import POD_TEMPLATE_HASH_LABEL
from tests.e2e.conftest import CountingSandbox
from tests.e2e.dsl import (
    blue_green,
    canary,
    healthy,
    image,
    pause,
    paused,
    promote,
    rollout,
    scenario,
    set_weight,
    sizes,
)

pytestmark = pytest.mark.e2e

STABLE = {"labels": {"role": "stable"}, "annotations": {"team/on-call": "payments"}}
CANARY = {"labels": {"role": "canary", "track": "canary"}}


def pods(sb: CountingSandbox, pod_hash: str) -> list[dict[str, Any]]:
    return [p for p in sb.emulator.list_objects(
        "", "v1", "pods", namespace=sb.namespace,
        label_selector=f"{POD_TEMPLATE_HASH_LABEL}={pod_hash}")
        if not p["metadata"].get("deletionTimestamp")]


def labels(sb: CountingSandbox, pod_hash: str, key: str) -> set[str | None]:
    return {p["metadata"].get("labels", {}).get(key) for p in pods(sb, pod_hash)}


def uids(sb: CountingSandbox, pod_hash: str) -> set[str]:
    return {p["metadata"]["uid"] for p in pods(sb, pod_hash)}


def test_canary_and_stable_metadata_follow_promotion_in_place(cluster: CountingSandbox) -> None:
    s = scenario(cluster).given(rollout(
        "web", canary(set_weight(50), pause(), canaryMetadata=CANARY, stableMetadata=STABLE),
        replicas=2))
    v1 = s.hash("stable")
    cluster.wait_for("stable pods labelled", lambda: labels(cluster, v1, "role") == {"stable"})
    assert {p["metadata"]["annotations"].get("team/on-call") for p in pods(cluster, v1)} == {
        "payments"}
    s.when(image("web:2")).then(paused(at_step=1), sizes(canary=1, stable=1))
    v2 = s.hash("canary")
    cluster.wait_for("canary pods labelled", lambda: labels(cluster, v2, "role") == {"canary"})
    assert labels(cluster, v2, "track") == {"canary"}
    assert labels(cluster, v1, "role") == {"stable"}
    canary_pod = uids(cluster, v2)
    s.when(promote()).then(healthy(), sizes(stable=2))
    cluster.wait_for("promoted pods relabelled", lambda: (
        labels(cluster, v2, "role") == {"stable"} and labels(cluster, v2, "track") == {None}))
    # The canary's pod was relabelled in place, not replaced.
    assert canary_pod <= uids(cluster, v2)
    assert all(p["metadata"]["labels"]["app"] == "web" for p in pods(cluster, v2))
    # New pods of the stable ReplicaSet carry the stable role from its template.
    rs = cluster.replica_sets("web")[v2]
    template = rs["spec"]["template"]["metadata"]
    assert template["labels"]["role"] == "stable" and "track" not in template["labels"]
    # Changing the metadata in the spec makes no new revision: the same pods are relabelled.
    running = uids(cluster, v2)
    cluster.patch_spec("web", {"strategy": {"canary": {"stableMetadata": {  # a merge patch
        "labels": {"tier": "gold", "role": None}, "annotations": None}}}})
    cluster.wait_for("relabelled in place", lambda: (
        labels(cluster, v2, "tier") == {"gold"} and labels(cluster, v2, "role") == {None}))
    assert uids(cluster, v2) == running and len(cluster.replica_sets("web")) == 2
    assert {p["metadata"].get("annotations", {}).get("team/on-call")
            for p in pods(cluster, v2)} == {None}


def test_active_and_preview_metadata(cluster: CountingSandbox) -> None:
    s = scenario(cluster).given(rollout(
        "shop", blue_green(auto_promotion=False,
                           activeMetadata={"labels": {"role": "active"}},
                           previewMetadata={"labels": {"role": "preview"}}), replicas=2))
    v1 = s.hash("stable")
    cluster.wait_for("active pods", lambda: labels(cluster, v1, "role") == {"active"})
    s.when(image("shop:2")).then(paused())
    v2 = s.hash("canary")
    cluster.wait_for("preview pods", lambda: labels(cluster, v2, "role") == {"preview"}
                     and len(pods(cluster, v2)) == 2)
    preview = uids(cluster, v2)
    s.when(promote()).then(healthy())
    cluster.wait_for("now active", lambda: labels(cluster, v2, "role") == {"active"})
    assert uids(cluster, v2) == preview


def test_rollouts_restart_replaces_every_pod_one_at_a_time(cluster: CountingSandbox) -> None:
    s = scenario(cluster).given(rollout("api", canary(), replicas=3))
    stable = s.hash("stable")
    before = uids(cluster, stable)
    time.sleep(1.1)  # creation timestamps have whole seconds: the old pods are older
    result = s.cli("restart", "api")
    out = " ".join(result.output.split())
    assert "restart requested" in out and "commit the change to Git" in out
    restart_at = cluster.rollout("api")["spec"]["restartAt"]
    lowest = 3

    def done() -> bool:
        nonlocal lowest
        rs = cluster.replica_sets("api")[stable]
        lowest = min(lowest, int((rs.get("status") or {}).get("availableReplicas", 0)))
        return cluster.status("api").get("restartedAt") == restart_at

    cluster.wait_for("restart complete", done, timeout=60)
    after = uids(cluster, stable)
    assert len(after) == 3 and not before & after
    assert lowest >= 2  # never more than maxUnavailable (25% of 3 -> at least 1) down
    s.then(healthy(), sizes(stable=3))
    assert len(cluster.replica_sets("api")) == 1  # no new revision
    evictions = sum(n for (method, path, code), n in cluster.responses.items()
                    if method == "POST" and path.endswith("/eviction") and code == 201)
    assert evictions == 3
    # Events are posted after the status write that records the restart.
    cluster.wait_for("the restart's Events", lambda: "RolloutRestarted" in [
        e.get("reason") for e in cluster.events("api")])
    assert [e.get("reason") for e in cluster.events("api")].count("PodEvicted") == 3
