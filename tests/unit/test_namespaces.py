"""The namespaces `rollouts controller -n` names: invalid names refused, missing ones warned
about (against the API emulator, which answers as kube-apiserver does), a 403 tolerated."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import httpx
import pytest

from rollouts.kube.client import KubeClient
from rollouts.kube.config import Connection
from rollouts.kube.namespaces import namespace_name_problem, warn_missing_namespaces
from rollouts.sandbox import rbac
from rollouts.sandbox.apiserver import ApiEmulator
from rollouts.sandbox.emulator_thread import EmulatorThread

LOGGER = "rollouts.kube.namespaces"
RBAC = "rbac.authorization.k8s.io/v1"


@pytest.mark.parametrize("name", ["default", "shop", "a", "team-1", "1x", "a" * 63])
def test_dns_1123_labels_are_namespace_names(name: str) -> None:
    assert namespace_name_problem(name) is None


@pytest.mark.parametrize("name", ["", "Shop", "shop_1", "shop.eu", "-shop", "shop-", "a" * 64,
                                  "shop ", "sh/op"])
def test_other_names_are_refused_naming_the_value(name: str) -> None:
    problem = namespace_name_problem(name)
    assert problem is not None and repr(name) in problem and "DNS-1123 label" in problem
    assert "\n" not in problem


@pytest.fixture
def emulator() -> Iterator[ApiEmulator]:
    emulator = ApiEmulator(namespaces=("default", "shop"))
    thread = EmulatorThread(emulator)
    thread.start()
    try:
        yield emulator
    finally:
        thread.stop()


def check(emulator: ApiEmulator, names: list[str], token: str = "admin") -> tuple[str, ...]:
    async def run() -> tuple[str, ...]:
        connection = Connection(host=emulator.url, token=token)
        async with KubeClient(connection, http="httpx") as client:
            return await warn_missing_namespaces(client, names)
    return asyncio.run(run())


def test_the_emulator_answers_a_missing_namespace_as_kube_apiserver(emulator: ApiEmulator
                                                                   ) -> None:
    answer = httpx.get(f"{emulator.url}/api/v1/namespaces/nowhere", timeout=10)
    assert answer.status_code == 404
    assert answer.json() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'namespaces "nowhere" not found', "reason": "NotFound",
        "details": {"name": "nowhere", "kind": "namespaces"}, "code": 404,
    }


def test_each_missing_namespace_is_one_warning(emulator: ApiEmulator,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    missing = check(emulator, ["default", "nowhere", "shop", "gone", "nowhere"])
    assert missing == ("nowhere", "gone")
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == LOGGER] == [
        ("WARNING", f"namespace {name} does not exist; watching it anyway: Rollouts created "
                    "there later are picked up") for name in ("nowhere", "gone")]


def test_existing_namespaces_say_nothing(emulator: ApiEmulator,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    assert check(emulator, ["default", "shop"]) == ()
    assert [r for r in caplog.records if r.name == LOGGER] == []


def test_a_namespace_created_later_is_no_longer_missing(emulator: ApiEmulator) -> None:
    assert check(emulator, ["later"]) == ("later",)
    emulator.apply_manifest({"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": "later"}})
    assert check(emulator, ["later"]) == ()


def test_without_permission_to_read_namespaces_nothing_is_checked(
        emulator: ApiEmulator, caplog: pytest.LogCaptureFixture) -> None:
    # A Role-per-namespace install: the controller may read Rollouts in "shop" only.
    emulator.add_token("sa-token", rbac.User.service_account("shop", "rollouts"))
    meta = {"name": "rollouts", "namespace": "shop"}
    emulator.apply_manifest({"apiVersion": RBAC, "kind": "Role", "metadata": meta, "rules": [
        {"apiGroups": ["rollouts.dev"], "resources": ["rollouts"], "verbs": ["get", "list"]}]})
    emulator.apply_manifest({
        "apiVersion": RBAC, "kind": "RoleBinding", "metadata": dict(meta),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "rollouts"},
        "subjects": [{"kind": "ServiceAccount", "name": "rollouts", "namespace": "shop"}]})
    answer = httpx.get(f"{emulator.url}/api/v1/namespaces/shop", timeout=10,
                       headers={"Authorization": "Bearer sa-token"})
    assert answer.status_code == 403 and answer.json()["reason"] == "Forbidden"

    caplog.set_level(logging.DEBUG, logger=LOGGER)
    assert check(emulator, ["shop", "nowhere"], token="sa-token") == ()
    records = [r for r in caplog.records if r.name == LOGGER]
    assert [r.levelname for r in records] == ["DEBUG", "DEBUG"]
    assert "nowhere" in records[1].getMessage()


def test_an_unreachable_server_is_a_warning_not_a_failure(
        caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> tuple[str, ...]:
        async with KubeClient(Connection(host="http://127.0.0.1:9"), http="httpx",
                              timeout=2.0) as client:
            return await warn_missing_namespaces(client, ["shop"])
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    assert asyncio.run(run()) == ()
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelname == "WARNING"
    assert "could not check that namespace shop exists" in record.getMessage()
