"""The kubelet / ReplicaSet simulator against the API emulator."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from rollouts.clock import ManualClock
from rollouts.sandbox.apiserver import ApiEmulator
from rollouts.sandbox.emulator_thread import EmulatorThread
from rollouts.sandbox.kubelet import (
    KubeletSimulator,
    is_pod_ready,
    never_ready_if_image_contains,
)

RS = ("apps", "v1", "replicasets")
PODS = ("", "v1", "pods")


def replicaset(
    name: str, replicas: int, *, image: str = "app:v1", min_ready: int = 0
) -> dict[str, Any]:
    labels = {"app": "demo", "rs": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "minReadySeconds": min_ready,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": {"note": "x"}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def emu() -> AsyncIterator[ApiEmulator]:
    async with ApiEmulator() as emulator:
        yield emulator


def pods_of(emu: ApiEmulator, rs: str) -> list[dict[str, Any]]:
    return emu.list_objects(*PODS, namespace="default", label_selector=f"rs={rs}")


def status_of(emu: ApiEmulator, rs: str) -> dict[str, Any]:
    obj = emu.get_object(*RS, "default", rs)
    assert obj is not None
    return dict(obj.get("status") or {})


async def test_pods_follow_replicas(emu: ApiEmulator) -> None:
    async with KubeletSimulator(emu, ready_delay=0.05) as kubelet:
        rs = emu.create_object(*RS, "default", replicaset("web-abc", 3))
        await eventually(lambda: len(pods_of(emu, "web-abc")) == 3)
        pod = pods_of(emu, "web-abc")[0]
        assert pod["metadata"]["name"].startswith("web-abc-")
        assert len(pod["metadata"]["name"]) == len("web-abc-") + 5
        assert pod["metadata"]["labels"] == {"app": "demo", "rs": "web-abc"}
        assert pod["metadata"]["annotations"] == {"note": "x"}
        (ref,) = pod["metadata"]["ownerReferences"]
        assert ref["uid"] == rs["metadata"]["uid"] and ref["controller"] is True
        assert ref["kind"] == "ReplicaSet"
        await eventually(lambda: status_of(emu, "web-abc").get("readyReplicas") == 3)
        st = status_of(emu, "web-abc")
        assert st["replicas"] == st["fullyLabeledReplicas"] == st["availableReplicas"] == 3
        assert st["observedGeneration"] == 1

        # Scale down: the newest pods go first.
        names_by_age = [
            p["metadata"]["name"]
            for p in sorted(
                pods_of(emu, "web-abc"), key=lambda p: int(p["metadata"]["resourceVersion"])
            )
        ]
        emu.patch_object(*RS, "default", "web-abc", {"spec": {"replicas": 1}})
        await eventually(lambda: status_of(emu, "web-abc").get("replicas") == 1)
        assert [p["metadata"]["name"] for p in pods_of(emu, "web-abc")] == names_by_age[:1]
        assert status_of(emu, "web-abc")["observedGeneration"] == 2

        emu.patch_object(*RS, "default", "web-abc", {"spec": {"replicas": 2}})
        await eventually(lambda: status_of(emu, "web-abc").get("availableReplicas") == 2)

        # Deleting the ReplicaSet collects its pods; the kubelet does not resurrect them.
        emu.delete_object(*RS, "default", "web-abc")
        await kubelet.settle()
        assert pods_of(emu, "web-abc") == []


async def test_pods_become_ready_after_the_delay(emu: ApiEmulator) -> None:
    async with KubeletSimulator(emu, ready_delay=0.5):
        emu.create_object(*RS, "default", replicaset("slow", 2))
        await eventually(lambda: status_of(emu, "slow").get("replicas") == 2)
        started = time.monotonic()
        assert status_of(emu, "slow")["readyReplicas"] == 0
        assert all(p["status"]["phase"] == "Pending" for p in pods_of(emu, "slow"))
        await eventually(lambda: status_of(emu, "slow").get("readyReplicas") == 2)
        assert time.monotonic() - started > 0.3
        pod = pods_of(emu, "slow")[0]
        assert pod["status"]["phase"] == "Running" and is_pod_ready(pod)
        assert pod["status"]["podIP"].startswith("10.244.")
        assert pod["status"]["containerStatuses"][0]["ready"] is True


async def test_available_replicas_wait_for_min_ready_seconds(emu: ApiEmulator) -> None:
    clock = ManualClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    async with KubeletSimulator(emu, ready_delay=0.0, now=clock.now) as kubelet:
        emu.create_object(*RS, "default", replicaset("mr", 2, min_ready=30))
        await eventually(lambda: status_of(emu, "mr").get("readyReplicas") == 2)
        await kubelet.settle()
        assert status_of(emu, "mr")["availableReplicas"] == 0
        clock.advance(29)
        await kubelet.resync()
        assert status_of(emu, "mr")["availableReplicas"] == 0
        clock.advance(1)
        await kubelet.resync()
        assert status_of(emu, "mr")["availableReplicas"] == 2


async def test_available_replicas_follow_the_real_clock_by_default(emu: ApiEmulator) -> None:
    async with KubeletSimulator(emu, ready_delay=0.0):
        emu.create_object(*RS, "default", replicaset("mr", 1, min_ready=1))
        await eventually(lambda: status_of(emu, "mr").get("readyReplicas") == 1)
        assert status_of(emu, "mr")["availableReplicas"] == 0
        await eventually(lambda: status_of(emu, "mr").get("availableReplicas") == 1, 4)


async def test_never_ready_pods_stay_unready(emu: ApiEmulator) -> None:
    never = never_ready_if_image_contains("crashloop")
    async with KubeletSimulator(emu, ready_delay=0.0, never_ready=never) as kubelet:
        emu.create_object(*RS, "default", replicaset("good", 1))
        emu.create_object(*RS, "default", replicaset("bad", 2, image="app:v2-crashloop"))
        await eventually(lambda: status_of(emu, "good").get("readyReplicas") == 1)
        await eventually(
            lambda: (
                all(p["status"]["phase"] == "Running" for p in pods_of(emu, "bad"))
                and len(pods_of(emu, "bad")) == 2
            )
        )
        await kubelet.settle()
        assert status_of(emu, "bad")["readyReplicas"] == 0
        assert status_of(emu, "bad")["replicas"] == 2
        waiting = pods_of(emu, "bad")[0]["status"]["containerStatuses"][0]["state"]["waiting"]
        assert waiting["reason"] == "CrashLoopBackOff"

        # A probe that starts failing on a ready pod shows in the ReplicaSet status.
        name = pods_of(emu, "good")[0]["metadata"]["name"]
        kubelet.set_pod_ready("default", name, ready=False)
        await eventually(lambda: status_of(emu, "good").get("readyReplicas") == 0)


async def test_existing_replicasets_are_picked_up_on_start(emu: ApiEmulator) -> None:
    emu.create_object(*RS, "default", replicaset("early", 2))
    async with KubeletSimulator(emu, ready_delay=0.0):
        await eventually(lambda: status_of(emu, "early").get("availableReplicas") == 2)


def test_emulator_thread_hosts_the_kubelet() -> None:
    emu = ApiEmulator()
    host = EmulatorThread(emu, kubelet=KubeletSimulator(emu, ready_delay=0.0))
    with host, httpx.Client(base_url=host.url) as client:
        r = client.post("/apis/apps/v1/namespaces/default/replicasets", json=replicaset("t", 2))
        assert r.status_code == 201
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            rs = client.get("/apis/apps/v1/namespaces/default/replicasets/t").json()
            if rs.get("status", {}).get("availableReplicas") == 2:
                break
            time.sleep(0.02)
        assert rs["status"]["availableReplicas"] == 2
        pods = client.get(
            "/api/v1/namespaces/default/pods", params={"labelSelector": "rs=t"}
        ).json()["items"]
        assert len(pods) == 2
