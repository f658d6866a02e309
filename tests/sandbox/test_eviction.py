"""pods/eviction in the emulator answers as kube-apiserver does, and the kubelet simulator
replaces an evicted (or deleted) pod of a ReplicaSet."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from rollouts.sandbox.apiserver import ApiEmulator
from rollouts.sandbox.eviction import desired_healthy
from rollouts.sandbox.kubelet import KubeletSimulator, is_pod_ready
from tests.sandbox.test_kubelet import eventually, pods_of, replicaset

RS = ("apps", "v1", "replicasets")
PODS = ("", "v1", "pods")
BUDGETS = ("policy", "v1", "poddisruptionbudgets")


@pytest.fixture
async def emu() -> AsyncIterator[ApiEmulator]:
    async with ApiEmulator() as emulator:
        yield emulator


@pytest.fixture
async def client(emu: ApiEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=emu.url, timeout=10,
                                 headers={"Authorization": "Bearer x"}) as c:
        yield c


def eviction(name: str, uid: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "policy/v1", "kind": "Eviction",
                            "metadata": {"name": name, "namespace": "default"}}
    if uid is not None:
        body["deleteOptions"] = {"preconditions": {"uid": uid}}
    return body


def path(name: str) -> str:
    return f"/api/v1/namespaces/default/pods/{name}/eviction"


async def test_an_eviction_deletes_the_pod_and_the_replica_set_replaces_it(
        emu: ApiEmulator, client: httpx.AsyncClient) -> None:
    async with KubeletSimulator(emu, ready_delay=0.02):
        emu.create_object(*RS, "default", replicaset("web-a", 2))
        await eventually(lambda: len(pods_of(emu, "web-a")) == 2
                         and all(is_pod_ready(p) for p in pods_of(emu, "web-a")))
        victim = pods_of(emu, "web-a")[0]["metadata"]
        r = await client.post(path(victim["name"]), json=eviction(victim["name"]))
        assert r.status_code == 201, r.text
        assert r.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Success", "code": 201}
        await eventually(lambda: len(pods_of(emu, "web-a")) == 2 and victim["uid"] not in {
            p["metadata"]["uid"] for p in pods_of(emu, "web-a")})


async def test_eviction_errors(emu: ApiEmulator, client: httpx.AsyncClient) -> None:
    pod = emu.create_object(*PODS, "default", {"apiVersion": "v1", "kind": "Pod",
                                               "metadata": {"name": "p"},
                                               "spec": {"containers": []}})
    r = await client.post(path("missing"), json=eviction("missing"))
    assert (r.status_code, r.json()["reason"], r.json()["message"]) == (
        404, "NotFound", 'pods "missing" not found')
    r = await client.post(path("p"), json=eviction("other"))
    assert (r.status_code, r.json()["reason"]) == (400, "BadRequest")
    r = await client.post(path("p"), json=eviction("p", uid="not-its-uid"))
    assert (r.status_code, r.json()["reason"]) == (409, "Conflict")
    assert "Precondition failed: UID in precondition: not-its-uid" in r.json()["message"]
    r = await client.get(path("p"))
    assert r.status_code == 405
    r = await client.post(path("p"), json=eviction("p", uid=pod["metadata"]["uid"]))
    assert r.status_code == 201
    assert emu.get_object(*PODS, "default", "p") is None


async def test_a_disruption_budget_refuses_with_429_then_allows(
        emu: ApiEmulator, client: httpx.AsyncClient) -> None:
    async with KubeletSimulator(emu, ready_delay=0.02):
        emu.create_object(*RS, "default", replicaset("web-b", 2))
        await eventually(lambda: sum(is_pod_ready(p) for p in pods_of(emu, "web-b")) == 2)
        emu.create_object(*BUDGETS, "default", {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"rs": "web-b"}}}})
        name = pods_of(emu, "web-b")[0]["metadata"]["name"]
        r = await client.post(path(name), json=eviction(name))
        assert r.status_code == 429, r.text
        body = r.json()
        assert (body["reason"], body["details"]["causes"][0]["reason"]) == (
            "TooManyRequests", "DisruptionBudget")
        assert body["message"] == ("Cannot evict pod as it would violate the pod's "
                                   "disruption budget.")
        emu.patch_object(*BUDGETS, "default", "web", {"spec": {"minAvailable": 1}})
        r = await client.post(path(name), json=eviction(name))
        assert r.status_code == 201, r.text


@pytest.mark.parametrize(("spec", "expected", "wanted"), [
    ({"minAvailable": 2}, 4, 2),
    ({"minAvailable": "50%"}, 3, 2),
    ({"maxUnavailable": 1}, 4, 3),
    ({"maxUnavailable": "25%"}, 3, 2),
    ({}, 3, 3),
])
def test_desired_healthy(spec: dict[str, Any], expected: int, wanted: int) -> None:
    assert desired_healthy({"spec": spec}, expected) == wanted


async def test_a_deleted_pod_is_replaced(emu: ApiEmulator) -> None:
    async with KubeletSimulator(emu, ready_delay=0.02):
        emu.create_object(*RS, "default", replicaset("web-c", 3))
        await eventually(lambda: sum(is_pod_ready(p) for p in pods_of(emu, "web-c")) == 3)
        gone = pods_of(emu, "web-c")[1]["metadata"]
        emu.delete_object(*PODS, "default", gone["name"])
        await eventually(lambda: sum(is_pod_ready(p) for p in pods_of(emu, "web-c")) == 3
                         and gone["uid"] not in {p["metadata"]["uid"]
                                                 for p in pods_of(emu, "web-c")})
