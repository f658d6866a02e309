"""The fault proxy passes requests through, injects the faults it is told, and cuts watches."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator

import httpx
import pytest
import yaml

from rollouts.sandbox.apiserver import ApiEmulator
from rollouts.sandbox.emulator_thread import EmulatorThread
from rollouts.sandbox.faultproxy import FaultProxy

PODS = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
def emulator() -> Iterator[ApiEmulator]:
    emulator = ApiEmulator()
    with EmulatorThread(emulator):
        yield emulator


def test_without_faults_requests_pass_through(emulator: ApiEmulator) -> None:
    with FaultProxy(emulator.url, rate=0.0, cut_rate=0.0) as proxy:
        created = httpx.post(proxy.url + PODS, json={"metadata": {"name": "a"}})
        assert created.status_code == 201
        listed = httpx.get(proxy.url + PODS)
        assert [i["metadata"]["name"] for i in listed.json()["items"]] == ["a"]
    assert proxy.faults_total == 0 and proxy.requests == 2


def test_429_carries_retry_after_and_is_not_applied(emulator: ApiEmulator) -> None:
    with FaultProxy(emulator.url, rate=1.0, kinds=("429",)) as proxy:
        reply = httpx.post(proxy.url + PODS, json={"metadata": {"name": "a"}})
    assert reply.status_code == 429 and reply.headers["Retry-After"] == "1"
    assert reply.json()["reason"] == "TooManyRequests"
    assert emulator.list_objects("", "v1", "configmaps", "default") == []


def test_409_is_only_for_writes(emulator: ApiEmulator) -> None:
    with FaultProxy(emulator.url, rate=1.0, kinds=("409",)) as proxy:
        assert httpx.get(proxy.url + PODS).status_code == 200
        assert httpx.post(proxy.url + PODS,
                          json={"metadata": {"name": "a"}}).status_code == 409
    assert proxy.injected == {"409": 1}


def test_a_timed_out_write_may_have_been_applied(emulator: ApiEmulator) -> None:
    with FaultProxy(emulator.url, rate=1.0, kinds=("timeout",), hold=0.01, seed=3) as proxy:
        codes = [httpx.post(proxy.url + PODS, json={"metadata": {"name": f"c{i}"}}).status_code
                 for i in range(12)]
    assert set(codes) == {504}
    applied = len(emulator.list_objects("", "v1", "configmaps", "default"))
    assert applied == proxy.injected["timeout-applied"] > 0
    assert proxy.injected["timeout"] > 0


def test_a_cut_watch_stream_ends_without_a_clean_end(emulator: ApiEmulator) -> None:
    with FaultProxy(emulator.url, rate=0.0, cut_rate=1.0) as proxy:
        events = []
        with (pytest.raises(httpx.HTTPError),  # the stream breaks mid-read
              httpx.stream("GET", proxy.url + PODS, params={"watch": "true"},
                           timeout=10) as stream):
            httpx.post(emulator.url + PODS, json={"metadata": {"name": "a"}})
            for line in stream.iter_lines():
                events.append(json.loads(line)["type"])
    assert events == ["ADDED"] and proxy.injected["cut"] == 1


def test_kubeconfig_points_at_the_proxy(emulator: ApiEmulator, tmp_path: pathlib.Path) -> None:
    source = emulator.write_kubeconfig(tmp_path / "kubeconfig")
    with FaultProxy(emulator.url) as proxy:
        target = proxy.write_kubeconfig(source, tmp_path / "via-proxy")
    servers = [c["cluster"]["server"] for c in yaml.safe_load(target.read_text())["clusters"]]
    assert servers == [proxy.url]


def test_unknown_fault_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault kinds"):
        FaultProxy("http://127.0.0.1:1", kinds=("418",))
