"""Our list-and-watch (rollouts.kube.informer, rollouts.controller.caches) against the API
emulator: the first list, events, 410 Expired and a relist, cut streams, bookmarks."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, cast

import pytest

from rollouts.controller.caches import WatchedCaches
from rollouts.controller.runtime import Runtime
from rollouts.kube.cache import trim_replica_set
from rollouts.kube.client import KubeClient
from rollouts.kube.config import Connection, from_kubeconfig
from rollouts.kube.informer import Backoff, Index, Informer, Kind, object_key
from rollouts.models.wire import GROUP, POD_TEMPLATE_HASH_LABEL, VERSION
from rollouts.sandbox.apiserver import ApiEmulator
from rollouts.sandbox.emulator_thread import EmulatorThread
from rollouts.sandbox.faultproxy import FaultProxy

CONFIGMAPS = Kind("", "v1", "configmaps")
NS = "default"


@pytest.fixture
def emulator() -> Iterator[ApiEmulator]:
    api = ApiEmulator(history_size=50, bookmark_interval=0.2, namespaces=(NS, "other", "third"))
    with EmulatorThread(api):
        yield api


@pytest.fixture
async def client(emulator: ApiEmulator) -> AsyncIterator[KubeClient]:
    async with KubeClient(Connection(host=emulator.url)) as kube:
        yield kube


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for `condition`, polling the loop (the informer runs on it); a timeout fails."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def configmap(name: str, owner: str, namespace: str = NS, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "labels": {"owner": owner}},
            "data": dict(data)}


def by_owner(body: Any) -> tuple[str, str] | None:
    owner = ((body.get("metadata") or {}).get("labels") or {}).get("owner")
    return None if not owner else (str(body["metadata"]["namespace"]), str(owner))


def fast() -> Backoff:
    return Backoff(initial=0.01, ceiling=0.1)


def recorder() -> tuple[list[tuple[str, str]], Callable[[str, dict[str, Any]], None]]:
    seen: list[tuple[str, str]] = []
    return seen, lambda kind, body: seen.append((kind, body["metadata"]["name"]))


async def test_lists_then_follows_adds_changes_and_deletes(client: KubeClient,
                                                           emulator: ApiEmulator) -> None:
    for name, owner in (("a", "r1"), ("b", "r1"), ("c", "r2")):
        await client.create("", "v1", "configmaps", NS, configmap(name, owner))
    seen, on_change = recorder()
    index = Index(by_owner)
    informer = Informer(client, CONFIGMAPS, trim=dict, namespaces=(NS,), indexes=(index,),
                        on_change=on_change, page_size=2, backoff=fast)
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 10)
        assert sorted(informer.objects) == [(NS, "a"), (NS, "b"), (NS, "c")]
        assert sorted(b["metadata"]["name"] for b in index.get((NS, "r1"), ())) == ["a", "b"]
        assert sorted(seen) == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c")]
        assert emulator.requests[("list", "configmaps")] == 2  # pages of 2
        seen.clear()

        await client.create("", "v1", "configmaps", NS, configmap("d", "r2"))
        await client.patch_merge("", "v1", "configmaps", NS, "a", {"data": {"k": "v"}})
        # A change of owner moves the object to its new key.
        await client.patch_merge("", "v1", "configmaps", NS, "b",
                                 {"metadata": {"labels": {"owner": "r2"}}})
        await client.delete("", "v1", "configmaps", NS, "c")
        await until(lambda: len(seen) == 4)
        assert seen == [("ADDED", "d"), ("MODIFIED", "a"), ("MODIFIED", "b"), ("DELETED", "c")]
        assert informer.objects[(NS, "a")]["data"] == {"k": "v"}
        assert [b["metadata"]["name"] for b in index[(NS, "r1")]] == ["a"]
        assert sorted(b["metadata"]["name"] for b in index[(NS, "r2")]) == ["b", "d"]
        assert (NS, "c") not in informer.objects
        # Another namespace is not this informer's.
        await client.create("", "v1", "configmaps", "other", configmap("x", "r1", "other"))
        await client.create("", "v1", "configmaps", NS, configmap("e", "r1"))
        await until(lambda: (NS, "e") in informer.objects)
        assert ("other", "x") not in informer.objects
        assert emulator.requests[("list", "configmaps")] == 2  # no relist
    finally:
        await informer.stop()


async def test_an_expired_version_lists_again_and_drops_what_vanished(
        client: KubeClient, emulator: ApiEmulator) -> None:
    for name in ("a", "b"):
        await client.create("", "v1", "configmaps", NS, configmap(name, "r1"))
    seen, on_change = recorder()
    index = Index(by_owner)
    informer = Informer(client, CONFIGMAPS, trim=dict, indexes=(index,), on_change=on_change,
                        backoff=fast)
    informer.start()
    await asyncio.wait_for(informer.synced.wait(), 10)
    await informer.stop()  # a controller cut off for a while: its version goes out of date
    seen.clear()
    await client.delete("", "v1", "configmaps", NS, "a")
    await client.create("", "v1", "configmaps", NS, configmap("c", "r1"))
    for i in range(60):  # more writes than the emulator's history of 50 events
        await client.patch_merge("", "v1", "configmaps", NS, "b", {"data": {"i": str(i)}})
    expired = informer.versions[None]
    watch = client.watch("", "v1", "configmaps", resource_version=expired, timeout=5)
    with pytest.raises(Exception) as caught:
        await anext(watch)
    assert (getattr(caught.value, "status", None), getattr(caught.value, "reason", None)) == (
        410, "Expired")

    informer.start()  # watches from the expired version: 410, then lists again
    try:
        await until(lambda: ("DELETED", "a") in seen and (NS, "c") in informer.objects)
        assert sorted(informer.objects) == [(NS, "b"), (NS, "c")]
        assert informer.objects[(NS, "b")]["data"] == {"i": "59"}
        assert sorted(seen) == [("ADDED", "c"), ("DELETED", "a"), ("MODIFIED", "b")]
        assert sorted(b["metadata"]["name"] for b in index[(NS, "r1")]) == ["b", "c"]
        assert emulator.requests[("list", "configmaps")] == 2
        # And it watches on from the new list: later writes arrive.
        await client.patch_merge("", "v1", "configmaps", NS, "c", {"data": {"k": "v"}})
        await until(lambda: informer.objects[(NS, "c")].get("data") == {"k": "v"})
    finally:
        await informer.stop()


async def test_bookmarks_move_the_version_of_a_quiet_watch(client: KubeClient) -> None:
    informer = Informer(client, CONFIGMAPS, trim=dict, backoff=fast)
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 10)
        listed = int(informer.versions[None] or 0)
        # Writes to another kind move the server's version; no configmap event comes.
        secret = await client.create("", "v1", "secrets", NS, {"metadata": {"name": "s"}})
        written = int(secret["metadata"]["resourceVersion"])
        assert written > listed
        await until(lambda: int(informer.versions[None] or 0) >= written)
        assert informer.objects == {}
    finally:
        await informer.stop()


async def test_cut_streams_resume_from_the_last_version(emulator: ApiEmulator,
                                                        tmp_path: pathlib.Path) -> None:
    kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig")
    with FaultProxy(emulator.url, rate=0.0, cut_rate=1.0, seed=3) as proxy:
        connection = from_kubeconfig(str(proxy.write_kubeconfig(kubeconfig, tmp_path / "cut")))
        async with KubeClient(connection) as kube:
            informer = Informer(kube, CONFIGMAPS, trim=dict, backoff=fast)
            informer.start()
            try:
                await asyncio.wait_for(informer.synced.wait(), 10)
                for i in range(12):  # over several cut streams (each lives 0.2-3 s)
                    await kube.create("", "v1", "configmaps", NS, configmap(f"m{i}", "r"))
                    await asyncio.sleep(0.4)
                await until(lambda: len(informer.objects) == 12, timeout=15)
                assert emulator.requests[("watch", "configmaps")] >= 2
                assert emulator.requests[("list", "configmaps")] == 1  # resumed, not relisted
            finally:
                await informer.stop()


def owned_replica_set(name: str, owner_kind: str, owner: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name, "namespace": NS, "labels": {POD_TEMPLATE_HASH_LABEL: name},
            "ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": owner_kind,
                                 "name": owner, "uid": f"uid-{owner}", "controller": True}],
        },
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}}},
    }


async def test_the_controller_caches_file_and_wake_as_kopf_s_indexes_did(
        client: KubeClient) -> None:
    await client.create("apps", "v1", "replicasets", NS, owned_replica_set("r-1", "Rollout", "r"))
    await client.create("apps", "v1", "replicasets", NS,
                        owned_replica_set("e-1", "Experiment", "e"))
    unowned = owned_replica_set("d-1", "Rollout", "x")
    del unowned["metadata"]["ownerReferences"]  # a Deployment's: not cached
    await client.create("apps", "v1", "replicasets", NS, unowned)
    await client.create("", "v1", "services", NS,
                        {"metadata": {"name": "stable"}, "spec": {"selector": {"app": "r-1"}}})
    runtime = Runtime(client=client, providers=cast(Any, None))
    woken = {key: runtime.wakeup(key) for key in
             ((NS, "r"), (NS, "experiment/e"), (NS, "uses-stable"), (NS, "unrelated"))}
    runtime.set_services((NS, "uses-stable"), ("stable",))
    synced: list[bool] = []
    caches = WatchedCaches.build(client, runtime, None, on_synced=lambda: synced.append(True))
    caches.start()
    try:
        await asyncio.wait_for(caches.wait_synced(), 10)
        await until(lambda: synced == [True])
        [replica_set] = caches.rollout_replicasets.get((NS, "r"), ())
        assert replica_set == trim_replica_set(
            await client.get("apps", "v1", "replicasets", NS, "r-1"))
        assert [object_key(b) for b in caches.experiment_replicasets[(NS, "experiment/e")]] == [
            (NS, "e-1")]
        assert (NS, "d-1") not in caches.replica_sets.objects
        [service] = caches.services_by_name.get((NS, "stable"), ())
        assert service["spec"] == {"selector": {"app": "r-1"}}
        for event in woken.values():
            event.clear()

        await client.patch_merge("", "v1", "services", NS, "stable",
                                 {"spec": {"selector": {"app": "r-2"}}})
        await client.patch_merge("apps", "v1", "replicasets", NS, "r-1",
                                 {"spec": {"replicas": 2}})
        await client.delete("apps", "v1", "replicasets", NS, "e-1")
        await until(lambda: all(woken[key].is_set() for key in
                                ((NS, "r"), (NS, "experiment/e"), (NS, "uses-stable"))))
        assert not woken[(NS, "unrelated")].is_set()
        assert caches.rollout_replicasets[(NS, "r")][0]["spec"]["replicas"] == 2
        assert caches.experiment_replicasets.get((NS, "experiment/e"), ()) == ()
    finally:
        await caches.stop()


async def test_one_watch_per_namespace_and_synced_once_each_is_listed(
        client: KubeClient, emulator: ApiEmulator) -> None:
    await client.create("", "v1", "configmaps", NS, configmap("a", "r1"))
    await client.create("", "v1", "configmaps", "other", configmap("b", "r1", "other"))
    await client.create("", "v1", "configmaps", "third", configmap("c", "r1", "third"))
    index = Index(by_owner)
    informer = Informer(client, CONFIGMAPS, trim=dict, namespaces=(NS, "other"),
                        indexes=(index,), backoff=fast)
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 10)
        assert sorted(informer.objects) == [(NS, "a"), ("other", "b")]
        assert [object_key(b) for b in index[(NS, "r1")]] == [(NS, "a")]
        assert emulator.requests[("list", "configmaps")] == 2
        await client.delete("", "v1", "configmaps", "other", "b")
        await until(lambda: ("other", "b") not in informer.objects)
        assert index.get(("other", "r1"), ()) == ()
    finally:
        await informer.stop()
