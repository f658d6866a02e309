"""The pod reads and writes of a pass (rollouts/kube/pods.py, pod_views.py): the exact
requests, and pods read into views (httpx.MockTransport, no server)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from rollouts.errors import KubeError
from rollouts.kube.analysis import Templates
from rollouts.kube.observe import observe, replica_set_view
from rollouts.kube.pod_views import owned_pods, pod_view
from rollouts.kube.pods import apply_pod_action, read_pods
from rollouts.models.wire import POD_TEMPLATE_HASH_LABEL, format_time
from rollouts.planner.pod_metadata import PODS_METADATA_ANNOTATION, TEMPLATE_METADATA_ANNOTATION
from rollouts.planner.types import EvictPod, PatchPodMetadata, PatchReplicaSetPodMetadata
from tests.unit.test_execute import NOW, Recorder, rollout_body, rs_body, valid

PODS = "/api/v1/namespaces/shop/pods"


def pod_body(name: str, pod_hash: str, owner: str, *, created: str = "2026-01-01T11:00:00Z",
             ready: bool = True, deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name, "uid": f"uid-{name}", "creationTimestamp": created,
        "labels": {"app": "web", POD_TEMPLATE_HASH_LABEL: pod_hash},
        "annotations": {"a": "1"},
        "ownerReferences": [{"kind": "ReplicaSet", "name": owner, "controller": True}]}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T11:59:00Z"
    return {"metadata": metadata, "status": {"conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


def test_pod_view_and_owned_pods() -> None:
    view = pod_view(pod_body("p1", "aaa", "web-aaa", deleting=True, ready=False))
    assert (view.name, view.uid, view.pod_hash, view.deleting, view.ready) == (
        "p1", "uid-p1", "aaa", True, False)
    assert view.created == dt.datetime(2026, 1, 1, 11, tzinfo=dt.UTC)
    assert pod_view({"metadata": "junk"}).name == ""  # malformed: neutral, never raises
    sets = (replica_set_view(rs_body("web-aaa", "aaa", 1, "1")),)
    bodies = [pod_body("p2", "aaa", "web-aaa"), pod_body("p1", "aaa", "web-aaa"),
              pod_body("other", "bbb", "web-bbb"), pod_body("liar", "zzz", "web-aaa")]
    assert [p.name for p in owned_pods(bodies, sets)] == ["p1", "p2"]


def test_replica_set_view_reads_the_metadata_records() -> None:
    body = rs_body("web-aaa", "aaa", 1, "1")
    body["metadata"]["annotations"].update({
        TEMPLATE_METADATA_ANNOTATION: '{"labels":{"role":"stable"},"annotations":{}}',
        PODS_METADATA_ANNOTATION: "not json"})
    view = replica_set_view(body)
    assert view.template_metadata.labels == (("role", "stable"),)
    assert view.pods_metadata.labels == ()


async def test_pods_are_listed_only_when_needed() -> None:
    rec = Recorder({("GET", PODS): (200, {"items": [pod_body("p", "aaa", "web-aaa")]})})
    sets = [rs_body("web-aaa", "aaa", 3, "1")]
    quiet = valid(rollout_body(status={"stableRS": "aaa", "currentPodHash": "aaa"}))
    async with rec.client() as client:
        assert await read_pods(client, quiet, sets, NOW) is None
        assert rec.requests == []
        due = rollout_body(status={"stableRS": "aaa", "currentPodHash": "aaa"})
        due["spec"]["restartAt"] = format_time(NOW)
        items = await read_pods(client, valid(due), sets, NOW)
    assert items is not None and [p["metadata"]["name"] for p in items] == ["p"]
    ((method, path, _, _),) = rec.requests
    assert (method, path) == ("GET", PODS)
    observed = observe(valid(due), replica_sets=sets, services={}, analysis_runs=[],
                       templates=Templates.from_parsed([]), pods=items)
    assert observed.pods is not None and [p.name for p in observed.pods] == ["p"]


async def test_pod_action_requests() -> None:
    rec = Recorder()
    async with rec.client() as client:
        await apply_pod_action(client, "shop", PatchReplicaSetPodMetadata(
            "web-aaa", {"role": "stable", "track": None}, {}, {"r": "x"}, "9"))
        await apply_pod_action(client, "shop", PatchReplicaSetPodMetadata(
            "web-aaa", {}, {}, {"r": "y"}, "10"))
        await apply_pod_action(client, "shop", PatchPodMetadata("p", {"role": "stable"},
                                                                {"n": None}))
        assert await apply_pod_action(client, "shop", EvictPod("p", "uid-p"))
    assert [(m, p, b) for m, p, _, b in rec.requests] == [
        ("PATCH", "/apis/apps/v1/namespaces/shop/replicasets/web-aaa",
         {"metadata": {"annotations": {"r": "x"}, "resourceVersion": "9"},
          "spec": {"template": {"metadata": {"labels": {"role": "stable", "track": None}}}}}),
        ("PATCH", "/apis/apps/v1/namespaces/shop/replicasets/web-aaa",
         {"metadata": {"annotations": {"r": "y"}, "resourceVersion": "10"}}),
        ("PATCH", f"{PODS}/p", {"metadata": {"labels": {"role": "stable"},
                                             "annotations": {"n": None}}}),
        ("POST", f"{PODS}/p/eviction",
         {"apiVersion": "policy/v1", "kind": "Eviction",
          "metadata": {"name": "p", "namespace": "shop"},
          "deleteOptions": {"preconditions": {"uid": "uid-p"}}}),
    ]


@pytest.mark.parametrize(("code", "reason", "outcome"), [
    (404, "NotFound", False),  # already gone
    (409, "Conflict", False),  # another pod of that name now
    (429, "TooManyRequests", False),  # a disruption budget: later
    (500, "InternalError", KubeError),
])
async def test_eviction_answers(code: int, reason: str, outcome: Any) -> None:
    rec = Recorder({("POST", f"{PODS}/p/eviction"): (code, {"reason": reason,
                                                            "message": "m"})})
    async with rec.client() as client:
        if outcome is KubeError:
            with pytest.raises(KubeError):
                await apply_pod_action(client, "shop", EvictPod("p", "uid-p"))
        else:
            assert await apply_pod_action(client, "shop", EvictPod("p", "uid-p")) is outcome
