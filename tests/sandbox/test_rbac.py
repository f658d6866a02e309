"""RBAC in the API emulator: registered tokens are authorised by the stored Roles and
bindings, with kube-apiserver's 403 Status (reason, message and details)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rollouts.sandbox import rbac
from rollouts.sandbox.apiserver import ApiEmulator
from rollouts.sandbox.emulator_thread import EmulatorThread

SA = rbac.User.service_account("ops", "ctl")
RBAC = "rbac.authorization.k8s.io/v1"


@pytest.fixture
def emulator() -> Iterator[ApiEmulator]:
    emulator = ApiEmulator(namespaces=("default", "shop", "web", "ops"))
    thread = EmulatorThread(emulator)
    thread.start()
    emulator.add_token("sa-token", SA)
    emulator.add_token("nobody-token", rbac.User("jane"))
    try:
        yield emulator
    finally:
        thread.stop()


def bind(emulator: ApiEmulator, kind: str, name: str, rules: list[dict[str, Any]],
         namespace: str | None = None, subject: dict[str, Any] | None = None) -> None:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    emulator.apply_manifest({"apiVersion": RBAC, "kind": kind, "metadata": meta,
                             "rules": rules})
    emulator.apply_manifest({
        "apiVersion": RBAC, "kind": f"{kind}Binding", "metadata": dict(meta),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
        "subjects": [subject or {"kind": "ServiceAccount", "name": "ctl", "namespace": "ops"}],
    })


def call(emulator: ApiEmulator, method: str, path: str, token: str = "sa-token",
         headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, emulator.url + path, timeout=10, **kwargs,
                         headers={"Authorization": f"Bearer {token}", **(headers or {})})


SERVICES = {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list"]}


# Go drops empty StatusDetails fields (omitempty): no "group" for the core group.
def test_denied_list_is_kube_apiservers_403(emulator: ApiEmulator) -> None:
    response = call(emulator, "GET", "/api/v1/namespaces/shop/services")
    assert response.status_code == 403
    assert response.json() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'services is forbidden: User "system:serviceaccount:ops:ctl" cannot list '
                   'resource "services" in API group "" in the namespace "shop"',
        "reason": "Forbidden", "details": {"kind": "services"}, "code": 403,
    }


def test_denied_named_subresource_at_cluster_scope(emulator: ApiEmulator) -> None:
    response = call(emulator, "PATCH", "/api/v1/namespaces/shop/status",
                    headers={"Content-Type": "application/merge-patch+json"}, json={})
    assert response.status_code == 403
    body = response.json()
    assert body["message"] == (
        'namespaces "shop" is forbidden: User "system:serviceaccount:ops:ctl" cannot patch '
        'resource "namespaces/status" in API group "" at the cluster scope')
    assert body["details"] == {"name": "shop", "kind": "namespaces"}


def test_cluster_role_binding_grants_everywhere(emulator: ApiEmulator) -> None:
    bind(emulator, "ClusterRole", "read-services", [SERVICES])
    assert call(emulator, "GET", "/api/v1/namespaces/shop/services").status_code == 200
    assert call(emulator, "GET", "/api/v1/services").status_code == 200
    # Only the verbs granted.
    assert call(emulator, "POST", "/api/v1/namespaces/shop/services",
                json={"metadata": {"name": "x"}}).status_code == 403
    assert ("system:serviceaccount:ops:ctl", "list", "", "services", "shop") in (
        emulator.allowed)


def test_role_binding_grants_in_its_namespace_only(emulator: ApiEmulator) -> None:
    bind(emulator, "Role", "read-services", [SERVICES], namespace="shop",
         subject={"kind": "ServiceAccount", "name": "ctl", "namespace": "ops"})
    assert call(emulator, "GET", "/api/v1/namespaces/shop/services").status_code == 200
    assert call(emulator, "GET", "/api/v1/namespaces/web/services").status_code == 403
    assert call(emulator, "GET", "/api/v1/services").status_code == 403  # all namespaces


def test_subresources_and_names_are_matched_exactly(emulator: ApiEmulator) -> None:
    bind(emulator, "ClusterRole", "narrow", [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["namespaces/status"], "verbs": ["get"],
         "resourceNames": ["shop"]},
    ])
    assert call(emulator, "GET", "/api/v1/namespaces/web").status_code == 200
    assert call(emulator, "GET", "/api/v1/namespaces/shop/status").status_code == 200
    # `namespaces` does not cover `namespaces/status`; resourceNames limits the names.
    assert call(emulator, "GET", "/api/v1/namespaces/web/status").status_code == 403
    assert call(emulator, "GET", "/api/v1/namespaces").status_code == 403


def test_wildcards_and_group_subjects(emulator: ApiEmulator) -> None:
    bind(emulator, "ClusterRole", "all", [{"apiGroups": ["*"], "resources": ["*"],
                                           "verbs": ["*"]}],
         subject={"kind": "Group", "name": "system:serviceaccounts:ops"})
    assert call(emulator, "GET", "/apis/apps/v1/namespaces/web/replicasets").status_code == 200
    assert call(emulator, "GET", "/api/v1/namespaces", token="nobody-token").status_code == 403


def test_missing_role_is_named_in_the_reason(emulator: ApiEmulator) -> None:
    emulator.apply_manifest({
        "apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": {"name": "dangling"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "gone"},
        "subjects": [{"kind": "ServiceAccount", "name": "ctl", "namespace": "ops"}]})
    message = call(emulator, "GET", "/api/v1/namespaces/shop/services").json()["message"]
    assert message.endswith(
        ': RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found')


def test_discovery_is_open_and_other_paths_are_not(emulator: ApiEmulator) -> None:
    for path in ("/api", "/api/v1", "/apis", "/apis/apps/v1", "/version"):
        assert call(emulator, "GET", path).status_code == 200, path
    response = call(emulator, "GET", "/")
    assert response.status_code == 403
    assert response.json()["message"] == (
        'forbidden: User "system:serviceaccount:ops:ctl" cannot get path "/"')


def test_other_tokens_stay_administrators(emulator: ApiEmulator) -> None:
    assert call(emulator, "GET", "/api/v1/namespaces", token="sandbox-token").status_code == 200
    assert httpx.get(emulator.url + "/api/v1/namespaces").status_code == 200
