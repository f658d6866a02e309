"""The API emulator over HTTPS, through the controller's client (aiohttp) and the CLI's
(httpx): the CA comes from the kubeconfig, errors and transport failures keep their types."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterator

import httpx
import pytest

from rollouts.errors import NotFoundError
from rollouts.kube.client import KubeClient
from rollouts.kube.config import Connection, from_kubeconfig
from rollouts.sandbox.apiserver import ApiEmulator
from rollouts.sandbox.emulator_thread import EmulatorThread


@pytest.fixture
def kubeconfig(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    emulator = ApiEmulator(tls=True)
    with EmulatorThread(emulator):
        yield emulator.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.mark.parametrize("http", ["aiohttp", "httpx"])
async def test_both_clients_verify_the_sandbox_ca(kubeconfig: pathlib.Path, http: str) -> None:
    connection = from_kubeconfig(str(kubeconfig))
    assert connection.host.startswith("https://") and connection.ca_path
    async with KubeClient(connection, http=http) as client:  # type: ignore[arg-type]
        created = await client.create("", "v1", "configmaps", "default",
                                      {"metadata": {"name": "a"}, "data": {"k": "v"}})
        assert created["metadata"]["resourceVersion"]
        items, version = await client.list("", "v1", "configmaps", "default")
        assert [i["metadata"]["name"] for i in items] == ["a"] and version
        with pytest.raises(NotFoundError) as caught:
            await client.get("", "v1", "configmaps", "default", "missing")
        assert caught.value.reason == "NotFound"
        events = client.watch("", "v1", "configmaps", "default", resource_version=version,
                               timeout=2)
        await client.patch_merge("", "v1", "configmaps", "default", "a", {"data": {"k": "w"}})
        kind, obj = await anext(events)
        assert (kind, obj["data"]) == ("MODIFIED", {"k": "w"})
        await events.aclose()


@pytest.mark.parametrize("http", ["aiohttp", "httpx"])
async def test_an_untrusted_server_is_a_connect_error(kubeconfig: pathlib.Path,
                                                      http: str) -> None:
    # The same server without its CA: the handshake fails, as an httpx.ConnectError for both.
    connection = dataclasses.replace(from_kubeconfig(str(kubeconfig)), ca_path=None)
    async with KubeClient(connection, http=http) as client:  # type: ignore[arg-type]
        with pytest.raises(httpx.ConnectError):
            await client.list("", "v1", "configmaps", "default")


async def test_a_refused_connection_is_a_connect_error() -> None:
    emulator = ApiEmulator()
    with EmulatorThread(emulator):
        url = emulator.url
    async with KubeClient(Connection(host=url)) as client:  # nothing listens there now
        with pytest.raises(httpx.ConnectError):
            await client.list("", "v1", "configmaps", "default")
