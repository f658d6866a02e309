"""Server-side apply and managedFields in the API emulator, through real HTTP, compared with
what kube-apiserver answers (structured-merge-diff semantics, the 409 apply conflict)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import yaml

from rollouts.sandbox import managedfields
from rollouts.sandbox.apiserver import ApiEmulator

SERVICES = "/api/v1/namespaces/default/services"
APPLY = {"Content-Type": "application/apply-patch+yaml"}
MERGE = {"Content-Type": "application/merge-patch+json"}
HASH = "rollouts-pod-template-hash"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    emulator = ApiEmulator()
    await emulator.start()
    try:
        async with httpx.AsyncClient(base_url=emulator.url, timeout=10,
                                     headers={"User-Agent": "kubectl/v1.35.0 (linux/amd64)"}) as c:
            yield c
    finally:
        await emulator.stop()


def service(selector: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": [{"port": 80, "protocol": "TCP"}], **extra}
    if selector is not None:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": spec}


async def apply(client: httpx.AsyncClient, body: dict[str, Any], manager: str, *,
                force: bool = False) -> httpx.Response:
    params = {"fieldManager": manager, **({"force": "true"} if force else {})}
    return await client.patch(f"{SERVICES}/web", params=params, headers=APPLY,
                              content=yaml.safe_dump(body))


def managers(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e["fieldsV1"]
            for e in obj["metadata"].get("managedFields", [])}


async def test_apply_creates_and_records_an_apply_entry(client: httpx.AsyncClient) -> None:
    r = await apply(client, service({"app": "web"}), "kustomize-controller")
    assert r.status_code == 201, r.text
    entries = r.json()["metadata"]["managedFields"]
    assert [(e["manager"], e["operation"], e["apiVersion"], e["fieldsType"]) for e in entries] \
        == [("kustomize-controller", "Apply", "v1", "FieldsV1")]
    assert entries[0]["time"].endswith("Z")
    fields = entries[0]["fieldsV1"]
    # The selector is atomic: one leaf, not one per key.
    assert fields["f:spec"]["f:selector"] == {}
    port = fields["f:spec"]["f:ports"]['k:{"port":80,"protocol":"TCP"}']
    assert port == {".": {}, "f:port": {}, "f:protocol": {}}


async def test_apply_conflict_answers_like_kube_apiserver(client: httpx.AsyncClient) -> None:
    await apply(client, service({"app": "web"}), "kustomize-controller")
    r = await apply(client, service({"app": "web", HASH: "abc"}), "rollouts-controller")
    assert r.status_code == 409
    body = r.json()
    assert body["reason"] == "Conflict"
    assert body["message"] == ('Apply failed with 1 conflict: conflict with '
                               '"kustomize-controller": .spec.selector')
    assert body["details"] == {"causes": [{"reason": "FieldManagerConflict",
                                           "message": 'conflict with "kustomize-controller"',
                                           "field": ".spec.selector"}]}


async def test_conflicts_with_several_managers_are_grouped(client: httpx.AsyncClient) -> None:
    await apply(client, service({"app": "web"}), "a")
    r = await client.patch(f"{SERVICES}/web", headers=MERGE,
                           json={"spec": {"sessionAffinity": "ClientIP"}})
    assert r.status_code == 200
    r = await apply(client, service({"app": "x"}, sessionAffinity="None"), "b")
    assert r.status_code == 409
    assert r.json()["message"] == (
        "Apply failed with 2 conflicts: conflicts with \"a\":\n- .spec.selector\n"
        "conflicts with \"kubectl\" using v1:\n- .spec.sessionAffinity")


async def test_force_takes_the_atomic_selector_whole(client: httpx.AsyncClient) -> None:
    """The fight of issue 8: whoever applies the selector owns all of it."""
    await apply(client, service({"app": "web"}), "kustomize-controller")
    r = await apply(client, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                             "spec": {"selector": {"app": "web", HASH: "abc"}}},
                    "rollouts-controller", force=True)
    assert r.status_code == 200, r.text
    assert r.json()["spec"]["selector"] == {"app": "web", HASH: "abc"}
    owners = managers(r.json())
    assert "f:selector" not in owners[("kustomize-controller", "Apply")]["f:spec"]
    assert owners[("rollouts-controller", "Apply")] == {"f:spec": {"f:selector": {}}}

    r = await apply(client, service({"app": "web"}), "kustomize-controller", force=True)
    assert r.json()["spec"]["selector"] == {"app": "web"}  # the hash key is gone
    assert ("rollouts-controller", "Apply") not in managers(r.json())


async def test_a_selectorless_manifest_leaves_the_selector_alone(
        client: httpx.AsyncClient) -> None:
    """The documented pattern: Git without spec.selector, the controller owns it."""
    await apply(client, service(), "kustomize-controller")
    r = await apply(client, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                             "spec": {"selector": {"app": "web", HASH: "abc"}}},
                    "rollouts-controller", force=True)
    version = r.json()["metadata"]["resourceVersion"]
    for _ in range(3):
        r = await apply(client, service(), "kustomize-controller", force=True)
        assert r.status_code == 200
        assert r.json()["spec"]["selector"] == {"app": "web", HASH: "abc"}
    # Re-applying the same manifest changes nothing, not even the resourceVersion.
    assert r.json()["metadata"]["resourceVersion"] == version


async def test_fields_no_longer_applied_are_removed_unless_shared(
        client: httpx.AsyncClient) -> None:
    await apply(client, service({"app": "web"}, sessionAffinity="ClientIP",
                                externalName="x"), "git")
    await apply(client, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                         "spec": {"externalName": "x"}}, "other")
    r = await apply(client, service({"app": "web"}), "git")
    spec = r.json()["spec"]
    assert "sessionAffinity" not in spec  # only git had it: dropped
    assert spec["externalName"] == "x"  # shared with "other": kept


async def test_updates_are_recorded_by_manager_and_user_agent(
        client: httpx.AsyncClient) -> None:
    await apply(client, service({"app": "web"}), "git")
    r = await client.patch(f"{SERVICES}/web", headers=MERGE,
                           json={"metadata": {"labels": {"team": "a"}}})
    assert managers(r.json())[("kubectl", "Update")] == {
        "f:metadata": {"f:labels": {"f:team": {}}}}
    r = await client.patch(f"{SERVICES}/web", params={"fieldManager": "me"}, headers=MERGE,
                           json={"spec": {"selector": {"app": "x"}}})
    owners = managers(r.json())
    # An update takes the field from whoever had it (no conflict for updates).
    assert owners[("me", "Update")] == {"f:spec": {"f:selector": {}}}
    assert "f:selector" not in owners[("git", "Apply")]["f:spec"]


async def test_apply_needs_a_field_manager_and_force_needs_apply(
        client: httpx.AsyncClient) -> None:
    r = await client.patch(f"{SERVICES}/web", headers=APPLY, content=yaml.safe_dump(service()))
    assert r.status_code == 422
    assert r.json()["message"] == ('PatchOptions.meta.k8s.io "" is invalid: fieldManager: '
                                   'Required value: is required for apply patch')
    r = await client.patch(f"{SERVICES}/web", params={"force": "true"}, headers=MERGE,
                           json={})
    assert r.status_code == 422
    assert r.json()["message"] == ('PatchOptions.meta.k8s.io "" is invalid: force: '
                                   'Forbidden: may not be specified for non-apply patch')


async def test_apply_with_a_stale_resource_version_conflicts(client: httpx.AsyncClient) -> None:
    r = await apply(client, service({"app": "web"}), "git")
    stale = r.json()["metadata"]["resourceVersion"]
    await client.patch(f"{SERVICES}/web", headers=MERGE, json={"metadata": {"labels": {"a": "b"}}})
    body = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "resourceVersion": stale},
            "spec": {"selector": {"app": "web", HASH: "abc"}}}
    r = await apply(client, body, "rollouts-controller", force=True)
    assert r.status_code == 409
    assert r.json()["message"].endswith("the object has been modified; please apply your "
                                        "changes to the latest version and try again")


@pytest.mark.parametrize(("paths", "trie"), [
    ({("f:spec", "f:selector")}, {"f:spec": {"f:selector": {}}}),
    ({("f:spec", 'k:{"port":80}'), ("f:spec", 'k:{"port":80}', "f:port")},
     {"f:spec": {'k:{"port":80}': {".": {}, "f:port": {}}}}),
    ({("f:metadata", "f:finalizers", 'v:"x"')},
     {"f:metadata": {"f:finalizers": {'v:"x"': {}}}}),
])
def test_fields_v1_round_trip(paths: set[tuple[str, ...]], trie: dict[str, Any]) -> None:
    assert managedfields.to_fields_v1(paths) == trie
    assert managedfields.from_fields_v1(json.loads(json.dumps(trie))) == paths


@pytest.mark.parametrize(("agent", "manager"), [
    ("kubectl/v1.35.0 (linux/amd64) kubernetes/abc", "kubectl"),
    ("python-httpx/0.28.1", "python-httpx"),
    ("", ""),
])
def test_default_manager_comes_from_the_user_agent(agent: str, manager: str) -> None:
    assert managedfields.manager_from_user_agent(agent) == manager


async def test_a_port_without_protocol_is_the_same_item_as_tcp(
        client: httpx.AsyncClient) -> None:
    """List-map keys are defaulted (protocol: TCP), so re-applying a manifest that leaves
    the protocol out neither duplicates the port nor conflicts with the defaulted one."""
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"ports": [{"port": 80}]}}
    await apply(client, body, "git")
    r = await apply(client, body, "git")
    assert r.json()["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    fields = managers(r.json())[("git", "Apply")]["f:spec"]["f:ports"]
    assert list(fields) == ['k:{"port":80,"protocol":"TCP"}']
    assert list(fields['k:{"port":80,"protocol":"TCP"}']) == [".", "f:port"]
