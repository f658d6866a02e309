"""The API emulator's semantics, through real HTTP (httpx, the kubernetes client, kopf)."""

from __future__ import annotations

import asyncio
import json
import logging
import pathlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from rollouts.models.step_kinds import NO_STEP_KIND, TWO_STEP_ACTIONS
from rollouts.sandbox.apiserver import ApiEmulator, ApiError, LabelSelector
from rollouts.sandbox.emulator_thread import EmulatorThread

MERGE = {"Content-Type": "application/merge-patch+json"}
JSONPATCH = {"Content-Type": "application/json-patch+json"}
SMP = {"Content-Type": "application/strategic-merge-patch+json"}

WIDGETS = "/apis/example.dev/v1/namespaces/default/widgets"

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.dev"},
    "spec": {
        "group": "example.dev",
        "scope": "Namespaced",
        "names": {
            "plural": "widgets",
            "singular": "widget",
            "kind": "Widget",
            "shortNames": ["wd"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                # Without preserve-unknown-fields a real server would prune every field.
                "schema": {"openAPIV3Schema": {"type": "object",
                                               "x-kubernetes-preserve-unknown-fields": True}},
                "subresources": {
                    "status": {},
                    "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas",
                        "labelSelectorPath": ".status.selector",
                    },
                },
            }
        ],
    },
}


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.dev/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": spec or {"size": 1},
    }


@pytest.fixture
async def emu() -> AsyncIterator[ApiEmulator]:
    emulator = ApiEmulator(bookmark_interval=0.2)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest.fixture
async def client(emu: ApiEmulator) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": "Bearer anything"}
    async with httpx.AsyncClient(base_url=emu.url, headers=headers, timeout=10) as c:
        yield c


@pytest.fixture
async def crd(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=CRD)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def watch_lines(
    client: httpx.AsyncClient,
    path: str,
    *,
    until: Callable[[list[dict[str, Any]]], bool] | None = None,
    **params: str,
) -> list[dict[str, Any]]:
    """Collect watch events until ``until(events)`` holds or the server ends the stream."""
    events: list[dict[str, Any]] = []
    async with client.stream("GET", path, params={"watch": "true", **params}) as resp:
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            if line.strip():
                events.append(json.loads(line))
                if until is not None and until(events):
                    break
    return events


def assert_status(r: httpx.Response, code: int, reason: str) -> dict[str, Any]:
    assert r.status_code == code, r.text
    body = r.json()
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == code
    assert body["reason"] == reason
    assert body["message"]
    return dict(body)


# ------------------------------------------------------------------------------ discovery


async def test_discovery_lists_core_groups_and_subresources(client: httpx.AsyncClient) -> None:
    api = (await client.get("/api")).json()
    assert api["kind"] == "APIVersions" and api["versions"] == ["v1"]
    core = (await client.get("/api/v1")).json()
    names = {r["name"]: r for r in core["resources"]}
    assert core["kind"] == "APIResourceList" and core["groupVersion"] == "v1"
    assert names["namespaces"]["namespaced"] is False
    assert names["pods"]["namespaced"] is True and "po" in names["pods"]["shortNames"]
    assert {"pods/status", "events", "secrets", "configmaps", "serviceaccounts"} <= set(names)
    assert "watch" in names["pods"]["verbs"] and "patch" in names["pods/status"]["verbs"]
    groups = {g["name"]: g for g in (await client.get("/apis")).json()["groups"]}
    assert {
        "apps",
        "batch",
        "coordination.k8s.io",
        "apiextensions.k8s.io",
    } <= set(groups)
    assert groups["apps"]["preferredVersion"]["groupVersion"] == "apps/v1"
    assert (await client.get("/apis/apps")).json()["kind"] == "APIGroup"
    apps = {r["name"]: r for r in (await client.get("/apis/apps/v1")).json()["resources"]}
    assert apps["replicasets/scale"]["kind"] == "Scale"
    assert apps["replicasets"]["singularName"] == "replicaset"
    assert (await client.get("/version")).json()["major"] == "1"
    assert_status(await client.get("/apis/nope.dev/v1"), 404, "NotFound")


async def test_namespaces_can_be_listed_and_default_exists(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/namespaces")
    assert r.status_code == 200
    names = [i["metadata"]["name"] for i in r.json()["items"]]
    assert "default" in names
    ns = (await client.get("/api/v1/namespaces/default")).json()
    assert ns["status"]["phase"] == "Active" and ns["metadata"]["uid"]


# ------------------------------------------------------------------------------ create / get


async def test_create_fills_server_metadata_and_answers_201(
    client: httpx.AsyncClient, emu: ApiEmulator
) -> None:
    before = emu.resource_version
    r = await client.post(
        "/api/v1/namespaces/default/configmaps",
        json={"metadata": {"name": "cm1"}, "data": {"a": "1"}},
    )
    assert r.status_code == 201
    obj = r.json()
    meta = obj["metadata"]
    assert obj["kind"] == "ConfigMap" and obj["apiVersion"] == "v1"
    assert meta["namespace"] == "default"
    assert len(meta["uid"]) == 36
    assert meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) == before + 1 == emu.resource_version
    got = (await client.get("/api/v1/namespaces/default/configmaps/cm1")).json()
    assert got == obj

    r = await client.post(
        "/api/v1/namespaces/default/configmaps", json={"metadata": {"generateName": "gen-"}}
    )
    assert r.status_code == 201
    name = r.json()["metadata"]["name"]
    assert name.startswith("gen-") and len(name) == len("gen-") + 5

    dup = await client.post(
        "/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "cm1"}}
    )
    body = assert_status(dup, 409, "AlreadyExists")
    assert body["details"]["name"] == "cm1"


async def test_create_errors_are_status_objects(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/namespaces/missing/configmaps", json={"metadata": {"name": "x"}})
    assert_status(r, 404, "NotFound")
    r = await client.post("/api/v1/namespaces/default/configmaps", json={"metadata": {}})
    assert_status(r, 422, "Invalid")
    r = await client.post(
        "/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "Bad_Name"}}
    )
    assert_status(r, 422, "Invalid")
    r = await client.post(
        "/api/v1/namespaces/default/configmaps",
        json={"metadata": {"name": "x", "namespace": "other"}},
    )
    assert_status(r, 400, "BadRequest")
    assert_status(await client.get("/api/v1/namespaces/default/pods/nope"), 404, "NotFound")
    assert_status(await client.get("/api/v1/nothings"), 404, "NotFound")


# ------------------------------------------------------------------------------ generation, status


async def test_generation_bumps_only_on_spec_changes(client: httpx.AsyncClient, crd: Any) -> None:
    obj = (await client.post(WIDGETS, json=widget("w1", size=1))).json()
    assert obj["metadata"]["generation"] == 1
    rv0 = obj["metadata"]["resourceVersion"]

    labelled = (
        await client.patch(
            f"{WIDGETS}/w1", json={"metadata": {"labels": {"a": "b"}}}, headers=MERGE
        )
    ).json()
    assert labelled["metadata"]["generation"] == 1
    assert int(labelled["metadata"]["resourceVersion"]) > int(rv0)

    changed = (
        await client.patch(f"{WIDGETS}/w1", json={"spec": {"size": 2}}, headers=MERGE)
    ).json()
    assert changed["metadata"]["generation"] == 2

    same = (await client.patch(f"{WIDGETS}/w1", json={"spec": {"size": 2}}, headers=MERGE)).json()
    assert same["metadata"]["resourceVersion"] == changed["metadata"]["resourceVersion"]
    assert same["metadata"]["generation"] == 2


async def test_status_subresource_is_separate(client: httpx.AsyncClient, crd: Any) -> None:
    created = (await client.post(WIDGETS, json={**widget("w1"), "status": {"x": 1}})).json()
    assert "status" not in created  # status is dropped on create

    r = await client.patch(f"{WIDGETS}/w1", json={"status": {"phase": "Bad"}}, headers=MERGE)
    assert r.status_code == 200 and "status" not in r.json()

    r = await client.patch(
        f"{WIDGETS}/w1/status",
        json={"spec": {"size": 99}, "metadata": {"labels": {"x": "y"}}, "status": {"phase": "Ok"}},
        headers=MERGE,
    )
    assert r.status_code == 200
    obj = r.json()
    assert obj["status"] == {"phase": "Ok"}
    assert obj["spec"] == {"size": 1}
    assert "labels" not in obj["metadata"]
    assert obj["metadata"]["generation"] == 1

    # A main-resource PUT keeps the stored status.
    obj["status"] = {"phase": "Overwritten"}
    obj["spec"] = {"size": 3}
    put = (await client.put(f"{WIDGETS}/w1", json=obj)).json()
    assert put["status"] == {"phase": "Ok"} and put["metadata"]["generation"] == 2

    got = (await client.get(f"{WIDGETS}/w1/status")).json()
    assert got["status"] == {"phase": "Ok"}


async def test_stale_resource_version_conflicts(client: httpx.AsyncClient, crd: Any) -> None:
    obj = (await client.post(WIDGETS, json=widget("w1"))).json()
    stale = obj["metadata"]["resourceVersion"]
    await client.patch(f"{WIDGETS}/w1", json={"spec": {"size": 2}}, headers=MERGE)

    obj["spec"] = {"size": 5}
    assert_status(await client.put(f"{WIDGETS}/w1", json=obj), 409, "Conflict")
    r = await client.patch(
        f"{WIDGETS}/w1",
        json={"metadata": {"resourceVersion": stale}, "spec": {"size": 3}},
        headers=MERGE,
    )
    assert_status(r, 409, "Conflict")
    r = await client.patch(
        f"{WIDGETS}/w1/status",
        json={"metadata": {"resourceVersion": stale}, "status": {"a": 1}},
        headers=MERGE,
    )
    assert_status(r, 409, "Conflict")

    fresh = (await client.get(f"{WIDGETS}/w1")).json()
    fresh["spec"] = {"size": 7}
    r = await client.put(f"{WIDGETS}/w1", json=fresh)
    assert r.status_code == 200 and r.json()["spec"] == {"size": 7}

    del fresh["metadata"]["resourceVersion"]  # custom resources need one on update
    assert_status(await client.put(f"{WIDGETS}/w1", json=fresh), 422, "Invalid")
    assert_status(await client.put(f"{WIDGETS}/nope", json=widget("nope")), 404, "NotFound")


async def test_json_patch_and_failed_test_answers_422(client: httpx.AsyncClient, crd: Any) -> None:
    obj = (await client.post(WIDGETS, json=widget("w1"))).json()
    rv = obj["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.dev/x"]},
        {"op": "add", "path": "/metadata/labels", "value": {"a/b": "c"}},
        {"op": "replace", "path": "/spec/size", "value": 4},
    ]
    r = await client.patch(f"{WIDGETS}/w1", json=ops, headers=JSONPATCH)
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["finalizers"] == ["example.dev/x"]
    assert r.json()["spec"]["size"] == 4

    r = await client.patch(f"{WIDGETS}/w1", json=ops[:2], headers=JSONPATCH)  # rv is stale now
    assert_status(r, 422, "Invalid")
    r = await client.patch(
        f"{WIDGETS}/w1", json=[{"op": "remove", "path": "/metadata/labels/a~1b"}], headers=JSONPATCH
    )
    assert r.status_code == 200 and "a/b" not in r.json()["metadata"].get("labels", {})
    r = await client.patch(
        f"{WIDGETS}/w1",
        json=[{"op": "replace", "path": "/metadata/resourceVersion", "value": "1"}],
        headers=JSONPATCH,
    )
    assert_status(r, 409, "Conflict")
    r = await client.patch(f"{WIDGETS}/w1", json={"spec": {}}, headers=JSONPATCH)
    assert_status(r, 400, "BadRequest")


async def test_strategic_merge_patch(client: httpx.AsyncClient, crd: Any) -> None:
    await client.post(
        "/api/v1/namespaces/default/configmaps",
        json={"metadata": {"name": "cm"}, "data": {"a": "1"}},
    )
    r = await client.patch(
        "/api/v1/namespaces/default/configmaps/cm", json={"data": {"b": "2"}}, headers=SMP
    )
    assert r.json()["data"] == {"a": "1", "b": "2"}
    await client.post(WIDGETS, json=widget("w1"))
    r = await client.patch(f"{WIDGETS}/w1", json={"spec": {"size": 2}}, headers=SMP)
    assert_status(r, 415, "UnsupportedMediaType")  # like a real server on custom resources

    pod = {
        "metadata": {"name": "p"},
        "spec": {
            "containers": [
                {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
                {"name": "b", "image": "b:1"},
            ]
        },
    }
    await client.post("/api/v1/namespaces/default/pods", json=pod)
    r = await client.patch(
        "/api/v1/namespaces/default/pods/p",
        json={
            "spec": {
                "containers": [
                    {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
                    {"name": "b", "$patch": "delete"},
                ]
            }
        },
        headers=SMP,
    )
    (container,) = r.json()["spec"]["containers"]
    assert container["image"] == "a:2"
    assert container["env"] == [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]


# ------------------------------------------------------------------------------ list, selectors


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", {"a", "b"}),
        ("app==web", {"a", "b"}),
        ("app!=web", {"c", "d"}),
        ("tier in (front, back)", {"a", "c"}),
        ("tier notin (front)", {"b", "c", "d"}),
        ("tier", {"a", "c"}),
        ("!tier", {"b", "d"}),
        ("app=web,tier", {"a"}),
        ("app in (web,db),!tier", {"b"}),
    ],
)
async def test_label_selectors(
    client: httpx.AsyncClient, selector: str, expected: set[str]
) -> None:
    labels = {
        "a": {"app": "web", "tier": "front"},
        "b": {"app": "web"},
        "c": {"app": "db", "tier": "back"},
        "d": {},
    }
    for name, lab in labels.items():
        await client.post(
            "/api/v1/namespaces/default/configmaps",
            json={"metadata": {"name": name, "labels": lab}},
        )
    r = await client.get(
        "/api/v1/namespaces/default/configmaps", params={"labelSelector": selector}
    )
    assert {i["metadata"]["name"] for i in r.json()["items"]} == expected


async def test_list_namespaced_all_namespaces_and_field_selectors(
    client: httpx.AsyncClient, emu: ApiEmulator
) -> None:
    await client.post("/api/v1/namespaces", json={"metadata": {"name": "other"}})
    for ns in ("default", "other"):
        for name in ("x", "y"):
            r = await client.post(
                f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": name}}
            )
            assert r.status_code == 201
    every = (await client.get("/api/v1/configmaps")).json()
    assert every["kind"] == "ConfigMapList"
    assert every["metadata"]["resourceVersion"] == str(emu.resource_version)
    assert len(every["items"]) == 4
    only = (await client.get("/api/v1/namespaces/other/configmaps")).json()["items"]
    assert {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in only} == {
        ("other", "x"),
        ("other", "y"),
    }
    r = await client.get("/api/v1/configmaps", params={"fieldSelector": "metadata.name=x"})
    assert {i["metadata"]["namespace"] for i in r.json()["items"]} == {"default", "other"}
    r = await client.get(
        "/api/v1/configmaps",
        params={"fieldSelector": "metadata.namespace!=default,metadata.name==y"},
    )
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in r.json()["items"]] == [
        ("other", "y")
    ]

    page1 = (await client.get("/api/v1/configmaps", params={"limit": "3"})).json()
    assert len(page1["items"]) == 3 and page1["metadata"]["remainingItemCount"] == 1
    page2 = (
        await client.get(
            "/api/v1/configmaps", params={"limit": "3", "continue": page1["metadata"]["continue"]}
        )
    ).json()
    assert len(page2["items"]) == 1 and "continue" not in page2["metadata"]


def test_label_selector_parser_rejects_garbage() -> None:
    with pytest.raises(ApiError):
        LabelSelector.parse("a in b")
    assert LabelSelector.from_dict(
        {
            "matchLabels": {"a": "1"},
            "matchExpressions": [{"key": "b", "operator": "NotIn", "values": ["x"]}],
        }
    ).matches({"a": "1", "b": "y"})


async def test_table_output_for_kubectl(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "t"}})
    r = await client.get(
        "/api/v1/namespaces/default/configmaps",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"},
    )
    table = r.json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert table["rows"][0]["cells"][0] == "t"
    assert table["rows"][0]["object"]["metadata"]["name"] == "t"


# ------------------------------------------------------------------------------ watch


async def test_watch_from_resource_version_replays_only_later_events(
    client: httpx.AsyncClient,
) -> None:
    path = "/api/v1/namespaces/default/configmaps"
    await client.post(path, json={"metadata": {"name": "before"}})
    mark = (await client.get(path)).json()["metadata"]["resourceVersion"]
    created = (await client.post(path, json={"metadata": {"name": "after"}})).json()
    patched = (await client.patch(f"{path}/after", json={"data": {"k": "v"}}, headers=MERGE)).json()
    deleted = await client.delete(f"{path}/after")
    assert deleted.status_code == 200

    events = await watch_lines(client, path, resourceVersion=mark, timeoutSeconds="1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "after"),
        ("MODIFIED", "after"),
        ("DELETED", "after"),
    ]
    # Every event carries the resourceVersion the write answered with.
    assert (
        events[0]["object"]["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    )
    assert (
        events[1]["object"]["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]
    )
    assert int(events[2]["object"]["metadata"]["resourceVersion"]) > int(
        patched["metadata"]["resourceVersion"]
    )


async def test_watch_without_resource_version_lists_then_streams_live(
    client: httpx.AsyncClient,
) -> None:
    path = "/api/v1/namespaces/default/configmaps"
    await client.post(path, json={"metadata": {"name": "old"}})
    replies: list[dict[str, Any]] = []

    async def write_later() -> None:
        await asyncio.sleep(0.2)
        r = await client.post(path, json={"metadata": {"name": "new"}})
        replies.append(r.json())

    task = asyncio.create_task(write_later())
    events = await watch_lines(client, path, until=lambda ev: len(ev) >= 2, timeoutSeconds="5")
    await task
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "old"),
        ("ADDED", "new"),
    ]
    assert (
        events[1]["object"]["metadata"]["resourceVersion"]
        == replies[0]["metadata"]["resourceVersion"]
    )


async def test_watch_too_old_resource_version_is_410() -> None:
    async with ApiEmulator(history_size=3) as emu, httpx.AsyncClient(base_url=emu.url) as c:
        for i in range(6):
            await c.post(
                "/api/v1/namespaces/default/configmaps", json={"metadata": {"name": f"c{i}"}}
            )
        events = await watch_lines(
            c, "/api/v1/namespaces/default/configmaps", resourceVersion="1", timeoutSeconds="1"
        )
        assert len(events) == 1 and events[0]["type"] == "ERROR"
        assert events[0]["object"]["code"] == 410
        assert events[0]["object"]["reason"] == "Expired"
        recent = await watch_lines(
            c,
            "/api/v1/namespaces/default/configmaps",
            resourceVersion=str(emu.resource_version - 1),
            timeoutSeconds="1",
        )
        assert [e["object"]["metadata"]["name"] for e in recent] == ["c5"]


async def test_watch_bookmarks_carry_current_resource_version(
    client: httpx.AsyncClient, emu: ApiEmulator
) -> None:
    events = await watch_lines(
        client,
        "/apis/apps/v1/replicasets",
        until=lambda ev: len(ev) >= 3,
        resourceVersion=str(emu.resource_version),
        allowWatchBookmarks="true",
        timeoutSeconds="5",
    )
    assert all(e["type"] == "BOOKMARK" for e in events)
    assert events[0]["object"]["metadata"]["resourceVersion"] == str(emu.resource_version)
    assert events[0]["object"]["kind"] == "ReplicaSet"


async def test_watch_honours_selectors_and_timeout(client: httpx.AsyncClient) -> None:
    path = "/api/v1/namespaces/default/configmaps"
    await client.post(path, json={"metadata": {"name": "a", "labels": {"app": "x"}}})
    mark = (await client.get(path)).json()["metadata"]["resourceVersion"]
    await client.post(path, json={"metadata": {"name": "b", "labels": {"app": "y"}}})
    await client.patch(f"{path}/a", json={"metadata": {"labels": {"app": "z"}}}, headers=MERGE)
    await client.patch(f"{path}/b", json={"metadata": {"labels": {"app": "x"}}}, headers=MERGE)
    start = time.monotonic()
    events = await watch_lines(
        client, path, resourceVersion=mark, labelSelector="app=x", timeoutSeconds="1"
    )
    assert 0.8 < time.monotonic() - start < 10  # the server ended it
    # Leaving the selector looks like DELETED, entering it like ADDED.
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("DELETED", "a"),
        ("ADDED", "b"),
    ]
    events = await watch_lines(
        client, path, resourceVersion=mark, fieldSelector="metadata.name=b", timeoutSeconds="1"
    )
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED"]
    events = await watch_lines(client, f"{path}/b", resourceVersion=mark, timeoutSeconds="1")
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED"]


async def test_in_process_writes_emit_watch_events(emu: ApiEmulator) -> None:
    sub = emu.subscribe("", "v1", "configmaps", "default")
    obj = emu.create_object("", "v1", "configmaps", "default", {"metadata": {"name": "m"}})
    emu.patch_object("", "v1", "configmaps", "default", "m", {"data": {"a": "b"}})
    emu.delete_object("", "v1", "configmaps", "default", "m")
    types = [(await sub.get(1)) for _ in range(3)]
    assert [e.type for e in types if e] == ["ADDED", "MODIFIED", "DELETED"]
    assert types[0] is not None
    assert types[0].object["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    sub.close()


# ------------------------------------------------------------------------------ CRDs


async def test_crd_makes_resource_discoverable_and_served(client: httpx.AsyncClient) -> None:
    assert_status(await client.get(WIDGETS), 404, "NotFound")
    r = await client.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=CRD)
    assert r.status_code == 201
    conditions = {c["type"]: c["status"] for c in r.json()["status"]["conditions"]}
    assert conditions["Established"] == "True"

    groups = {g["name"] for g in (await client.get("/apis")).json()["groups"]}
    assert "example.dev" in groups
    resources = {
        r["name"]: r for r in (await client.get("/apis/example.dev/v1")).json()["resources"]
    }
    assert set(resources) == {"widgets", "widgets/status", "widgets/scale"}
    assert resources["widgets"]["kind"] == "Widget"
    assert resources["widgets"]["shortNames"] == ["wd"]
    assert resources["widgets"]["namespaced"] is True

    assert (await client.post(WIDGETS, json=widget("w1"))).status_code == 201
    assert (await client.get(WIDGETS)).json()["kind"] == "WidgetList"

    r = await client.delete(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.dev"
    )
    assert r.status_code == 200
    assert_status(await client.get(WIDGETS), 404, "NotFound")
    assert "example.dev" not in {g["name"] for g in (await client.get("/apis")).json()["groups"]}


# ------------------------------------------------------------------------------ delete


async def test_finalizers_hold_deletion_until_removed(client: httpx.AsyncClient, crd: Any) -> None:
    body = widget("w1")
    body["metadata"]["finalizers"] = ["example.dev/hold"]
    await client.post(WIDGETS, json=body)
    r = await client.delete(f"{WIDGETS}/w1")
    assert r.status_code == 200
    marked = (await client.get(f"{WIDGETS}/w1")).json()
    assert marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["generation"] == 2
    r = await client.patch(
        f"{WIDGETS}/w1",
        json={"metadata": {"finalizers": ["example.dev/hold", "example.dev/new"]}},
        headers=MERGE,
    )
    assert_status(r, 422, "Invalid")  # no new finalizers on a deleting object
    r = await client.patch(f"{WIDGETS}/w1", json={"metadata": {"finalizers": None}}, headers=MERGE)
    assert r.status_code == 200
    assert_status(await client.get(f"{WIDGETS}/w1"), 404, "NotFound")


async def test_owner_deletion_collects_dependents(client: httpx.AsyncClient) -> None:
    owner = (
        await client.post(
            "/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "owner"}}
        )
    ).json()
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
        "blockOwnerDeletion": True,
        "controller": True,
    }
    await client.post(
        "/api/v1/namespaces/default/secrets",
        json={"metadata": {"name": "dep", "ownerReferences": [ref]}},
    )
    await client.post(
        "/api/v1/namespaces/default/secrets",
        json={"metadata": {"name": "orphan", "ownerReferences": [ref]}},
    )
    await client.delete("/api/v1/namespaces/default/configmaps/owner")
    assert_status(await client.get("/api/v1/namespaces/default/secrets/dep"), 404, "NotFound")

    owner2 = (
        await client.post(
            "/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "owner2"}}
        )
    ).json()
    ref["uid"], ref["name"] = owner2["metadata"]["uid"], "owner2"
    await client.post(
        "/api/v1/namespaces/default/secrets",
        json={"metadata": {"name": "kept", "ownerReferences": [ref]}},
    )
    await client.delete(
        "/api/v1/namespaces/default/configmaps/owner2", params={"propagationPolicy": "Orphan"}
    )
    kept = (await client.get("/api/v1/namespaces/default/secrets/kept")).json()
    assert "ownerReferences" not in kept["metadata"]


async def test_namespace_deletion_removes_its_content(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/namespaces", json={"metadata": {"name": "gone"}})
    await client.post("/api/v1/namespaces/gone/configmaps", json={"metadata": {"name": "c"}})
    assert (await client.delete("/api/v1/namespaces/gone")).status_code == 200
    assert_status(await client.get("/api/v1/namespaces/gone"), 404, "NotFound")
    assert (await client.get("/api/v1/namespaces/gone/configmaps")).json()["items"] == []


# ------------------------------------------------------------------------------ scale


async def test_scale_subresource(client: httpx.AsyncClient, crd: Any) -> None:
    rs = {
        "metadata": {"name": "rs1"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": []}},
        },
    }
    created = (await client.post("/apis/apps/v1/namespaces/default/replicasets", json=rs)).json()
    path = "/apis/apps/v1/namespaces/default/replicasets/rs1/scale"
    scale = (await client.get(path)).json()
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"]["replicas"] == 2 and scale["status"]["selector"] == "app=x"
    r = await client.patch(path, json={"spec": {"replicas": 5}}, headers=MERGE)
    assert r.json()["spec"]["replicas"] == 5
    after = (await client.get("/apis/apps/v1/namespaces/default/replicasets/rs1")).json()
    assert after["spec"]["replicas"] == 5 and after["metadata"]["generation"] == 2
    scale["spec"]["replicas"] = 1  # stale resourceVersion
    assert_status(await client.put(path, json=scale), 409, "Conflict")
    assert created["metadata"]["uid"] == after["metadata"]["uid"]

    await client.post(WIDGETS, json=widget("w1", replicas=3))
    await client.patch(
        f"{WIDGETS}/w1/status", json={"status": {"replicas": 2, "selector": "app=w"}}, headers=MERGE
    )
    wscale = (await client.get(f"{WIDGETS}/w1/scale")).json()
    assert wscale["spec"]["replicas"] == 3 and wscale["status"] == {
        "replicas": 2,
        "selector": "app=w",
    }
    wscale["spec"]["replicas"] = 4
    assert (await client.put(f"{WIDGETS}/w1/scale", json=wscale)).json()["spec"]["replicas"] == 4
    assert (await client.get(f"{WIDGETS}/w1")).json()["spec"]["replicas"] == 4
    assert_status(
        await client.get("/api/v1/namespaces/default/configmaps/x/scale"), 404, "NotFound"
    )


async def test_request_counters(client: httpx.AsyncClient, emu: ApiEmulator) -> None:
    emu.reset_counters()
    await client.get("/api/v1/namespaces/default/pods")
    await client.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "c"}})
    await client.patch("/api/v1/namespaces/default/configmaps/c", json={"data": {}}, headers=MERGE)
    assert emu.requests_total == 3
    assert emu.requests[("list", "pods")] == 1
    assert emu.requests[("create", "configmaps")] == 1
    assert emu.requests[("patch", "configmaps")] == 1


# ------------------------------------------------------------------------------ real clients


@pytest.fixture
def threaded() -> Iterator[EmulatorThread]:
    host = EmulatorThread(ApiEmulator())
    host.start()
    try:
        yield host
    finally:
        host.stop()


def test_kubernetes_client_against_threaded_emulator(
    threaded: EmulatorThread, tmp_path: pathlib.Path
) -> None:
    import kubernetes

    kubeconfig = threaded.emulator.write_kubeconfig(tmp_path / "kubeconfig")
    api_client = kubernetes.config.new_client_from_config(str(kubeconfig), context="sandbox")
    core = kubernetes.client.CoreV1Api(api_client)
    custom = kubernetes.client.CustomObjectsApi(api_client)
    ext = kubernetes.client.ApiextensionsV1Api(api_client)

    assert "default" in [n.metadata.name for n in core.list_namespace().items]
    cm = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "c", "labels": {"app": "a"}}, "data": {"k": "v"}}
    )
    assert cm.metadata.namespace == "default" and cm.metadata.uid
    cms = core.list_config_map_for_all_namespaces(label_selector="app in (a, b)")
    assert [c.metadata.name for c in cms.items] == ["c"]
    with pytest.raises(kubernetes.client.ApiException) as err:
        core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    assert err.value.status == 409

    ext.create_custom_resource_definition(CRD)
    w = custom.create_namespaced_custom_object(
        "example.dev", "v1", "default", "widgets", widget("w1")
    )
    stale = dict(w)
    custom.patch_namespaced_custom_object(
        "example.dev",
        "v1",
        "default",
        "widgets",
        "w1",
        {"spec": {"size": 2}},
        _content_type="application/merge-patch+json",
    )
    with pytest.raises(kubernetes.client.ApiException) as err:
        custom.replace_namespaced_custom_object(
            "example.dev", "v1", "default", "widgets", "w1", stale
        )
    assert err.value.status == 409
    custom.patch_namespaced_custom_object_status(
        "example.dev",
        "v1",
        "default",
        "widgets",
        "w1",
        {"status": {"phase": "Ok"}},
        _content_type="application/merge-patch+json",
    )
    got = custom.get_namespaced_custom_object("example.dev", "v1", "default", "widgets", "w1")
    assert got["status"] == {"phase": "Ok"} and got["metadata"]["generation"] == 2

    # The in-process API works from this (foreign) thread too.
    assert threaded.emulator.get_object("example.dev", "v1", "widgets", "default", "w1")

    watch = kubernetes.watch.Watch()
    seen = [
        (e["type"], e["object"]["metadata"]["name"])
        for e in watch.stream(
            custom.list_namespaced_custom_object,
            "example.dev",
            "v1",
            "default",
            "widgets",
            timeout_seconds=1,
        )
    ]
    assert seen == [("ADDED", "w1")]
    api_client.close()


def test_kopf_operator_runs_against_the_emulator(
    threaded: EmulatorThread, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kopf
    from kopf.testing import KopfRunner

    emu = threaded.emulator
    emu.create_object("apiextensions.k8s.io", "v1", "customresourcedefinitions", None, CRD)
    monkeypatch.setenv("KUBECONFIG", str(emu.write_kubeconfig(tmp_path / "kubeconfig")))

    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Any:
        return kopf.login_with_kubeconfig(**kwargs)  # reads $KUBECONFIG

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.level = logging.INFO
        # Were a watch event's resourceVersion to differ from the patch reply's, kopf would
        # wait this long for consistency and the waits below would time out.
        settings.persistence.consistency_timeout = 60
        settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage()

    @kopf.on.create("example.dev", "v1", "widgets", registry=registry)
    def created(body: Any, patch: Any, **_: Any) -> None:
        patch.status["phase"] = "Ready"
        kopf.info(body, reason="Created", message="hello")

    @kopf.on.field("example.dev", "v1", "widgets", field="spec.size", registry=registry)
    def resized(new: Any, patch: Any, **_: Any) -> None:
        patch.status["size"] = new

    deleted: list[str] = []

    @kopf.on.delete("example.dev", "v1", "widgets", registry=registry)
    def gone(name: str, **_: Any) -> None:
        deleted.append(name)

    def wait_for(predicate: Callable[[], bool], timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError("condition not reached")

    def status() -> Any:
        obj = emu.get_object("example.dev", "v1", "widgets", "default", "w1")
        return (obj or {}).get("status", {})

    with KopfRunner(["run", "-A", "--standalone"], registry=registry, timeout=30) as runner:
        emu.create_object("example.dev", "v1", "widgets", "default", widget("w1", size=1))
        wait_for(lambda: status().get("phase") == "Ready" and status().get("size") == 1)
        emu.patch_object("example.dev", "v1", "widgets", "default", "w1", {"spec": {"size": 2}})
        wait_for(lambda: status().get("size") == 2)
        obj = emu.get_object("example.dev", "v1", "widgets", "default", "w1")
        assert obj is not None and obj["metadata"]["generation"] == 2
        assert obj["metadata"]["finalizers"]  # kopf's JSON patch with a `test` op went through
        emu.delete_object("example.dev", "v1", "widgets", "default", "w1")
        wait_for(lambda: emu.get_object("example.dev", "v1", "widgets", "default", "w1") is None)
        assert deleted == ["w1"]
        assert emu.requests[("patch", "widgets/status")] >= 1
        wait_for(
            lambda: any(  # kopf posted its event through the core v1 events API
                e["reason"] == "Created" and e["involvedObject"]["name"] == "w1"
                for e in emu.list_objects("", "v1", "events", "default")
            )
        )
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None


CRDS_DIR = pathlib.Path(__file__).resolve().parents[2] / "crds"


@pytest.mark.skipif(
    not (CRDS_DIR / "rollouts.dev_rollouts.yaml").exists(), reason="no generated CRDs yet"
)
async def test_project_crds_are_served(client: httpx.AsyncClient, emu: ApiEmulator) -> None:
    for path in sorted(CRDS_DIR.glob("*.yaml")):
        emu.apply_yaml(path)
    resources = {
        r["name"]: r for r in (await client.get("/apis/rollouts.dev/v1alpha1")).json()["resources"]
    }
    assert {"rollouts", "rollouts/status", "rollouts/scale", "analysisruns/status"} <= set(
        resources
    )
    assert resources["clusteranalysistemplates"]["namespaced"] is False
    def demo(spec: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout",
                "metadata": {"name": "demo"}, "spec": spec}

    rollouts = "/apis/rollouts.dev/v1alpha1/namespaces/default/rollouts"
    r = await client.post(rollouts, json=demo({"replicas": 3}))
    # The CRD's schema is enforced: strategy is required; selector and template too, unless
    # a workloadRef names a Deployment to take them from (CEL rules).
    refused = assert_status(r, 422, "Invalid")
    assert refused["message"].startswith('Rollout.rollouts.dev "demo" is invalid: [')
    causes = refused["details"]["causes"]
    assert {"reason": "FieldValueRequired", "message": "Required value",
            "field": "spec.strategy"} in causes
    for rule in ("selector is required (or workloadRef naming a Deployment)",
                 "template is required (or workloadRef naming a Deployment)"):
        assert {"reason": "FieldValueInvalid", "message": f'Invalid value: "object": {rule}',
                "field": "spec"} in causes, causes
    r = await client.post(rollouts, json=demo({
        "replicas": 3,
        "selector": {"matchLabels": {"app": "demo"}},
        "template": {"metadata": {"labels": {"app": "demo"}},
                     "spec": {"containers": [{"name": "app", "image": "app:1"}]}},
        "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
    }))
    assert r.status_code == 201 and r.json()["metadata"]["generation"] == 1
    # A step: at most one of setWeight/pause/analysis/experiment/plugin, setCanaryScale and
    # the managed routes beside any (CEL rules read from models/step_kinds.py).
    two = {**r.json()["spec"], "strategy": {"canary": {"steps": [
        {"setWeight": 5, "pause": {}}, {}, {"setCanaryScale": {"replicas": 1}, "pause": {}}]}}}
    refused = assert_status(await client.post(rollouts, json={**demo(two), "metadata": {
        "name": "two"}}), 422, "Invalid")
    assert [(c["field"], c["message"]) for c in refused["details"]["causes"]] == [
        ("spec.strategy.canary.steps[0]", f'Invalid value: "object": {TWO_STEP_ACTIONS}'),
        ("spec.strategy.canary.steps[1]", f'Invalid value: "object": {NO_STEP_KIND}')]
    scale = (
        await client.get("/apis/rollouts.dev/v1alpha1/namespaces/default/rollouts/demo/scale")
    ).json()
    assert scale["spec"]["replicas"] == 3
