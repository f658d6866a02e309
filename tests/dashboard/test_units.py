"""The dashboard's pure parts (charts, store, page models) and its HTTP guard and actions,
without a browser: aiohttp's test server, and httpx.MockTransport for the API server."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer

from rollouts.dashboard import model
from rollouts.dashboard.charts import metric_chart, numeric, thresholds_of
from rollouts.dashboard.server import Dashboard, Settings, is_loopback
from rollouts.dashboard.state import Store
from rollouts.kube.client import KubeClient
from rollouts.kube.config import Connection
from rollouts.models.analysis import Measurement

NOW = dt.datetime(2026, 1, 1, 10, 0, 0, tzinfo=dt.UTC)


def rollout(name: str = "web", namespace: str = "default", uid: str = "u1",
            status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "generation": 1,
                     "resourceVersion": "7", "creationTimestamp": "2026-01-01T09:59:00Z"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "a", "image": "x:2"}]}},
                 "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}},
        "status": status or {"phase": "Paused", "observedGeneration": 1, "currentStepIndex": 1,
                             "currentPodHash": "new", "stableRS": "old",
                             "pauseConditions": [{"reason": "CanaryPauseStep",
                                                  "startTime": "2026-01-01T09:59:30Z"}]},
    }


def owned(kind: str, name: str, owner_kind: str, owner: str, uid: str = "u1",
          **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {
        "name": name, "namespace": "default", "labels": extra.pop("labels", {}),
        "ownerReferences": [{"apiVersion": "rollouts.dev/v1alpha1" if owner_kind == "Rollout"
                             else "apps/v1", "kind": owner_kind, "name": owner, "uid": uid,
                             "controller": True}]}, **extra}


# --- charts ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("condition", "expected"), [
    ("result[0] <= 0.05", [(0.05, "<=")]),
    ("result > 0.9 && result < 1.1", [(0.9, ">"), (1.1, "<")]),
    ("0.95 <= result[0]", [(0.95, ">=")]),
    ("len(result) > 0 && isNaN(result[0])", []),
    ("", []),
])
def test_thresholds_read_from_simple_comparisons(condition: str,
                                                  expected: list[tuple[float, str]]) -> None:
    assert [(t.value, t.operator) for t in thresholds_of(condition, "success")] == expected


def test_numeric_values() -> None:
    assert numeric("0.012") == 0.012
    assert numeric("[0.5]") == 0.5
    assert numeric("NaN") is None
    assert numeric(None) is None


def test_chart_places_values_against_the_threshold() -> None:
    measurements = [
        Measurement(phase="Successful", value="0.01", finished_at=NOW),
        Measurement(phase="Failed", value="0.09", finished_at=NOW + dt.timedelta(seconds=10)),
        Measurement(phase="Error", message="connection refused",
                    finished_at=NOW + dt.timedelta(seconds=20)),
    ]
    chart = metric_chart("error-rate", measurements, success="result[0] <= 0.05", failure=None)
    ok, failed, error = chart.points
    (threshold,) = chart.thresholds
    assert failed.y < threshold.y < ok.y  # SVG y grows downwards
    assert ok.x < failed.x < error.x
    assert error.phase == "no-value" and "connection refused" in error.label
    assert len(chart.line.split()) == 2  # the error is marked, not joined
    assert "3 measurement(s)" in chart.summary


# --- the store -------------------------------------------------------------------------------

def test_store_indexes_owned_objects_and_wakes_only_interested_pages() -> None:
    store = Store()
    mine = store.subscribe(lambda key: key == ("default", "web"))
    other = store.subscribe(lambda key: key == ("default", "api"))
    assert store.apply("rollouts", "ADDED", rollout()) == {("default", "web")}
    rs = owned("ReplicaSet", "web-new", "Rollout", "web", spec={"replicas": 1})
    assert store.apply("replicasets", "ADDED", rs) == {("default", "web")}
    pod = owned("Pod", "web-new-x", "ReplicaSet", "web-new", uid="rs")
    assert store.apply("pods", "ADDED", pod) == {("default", "web")}
    event = {"kind": "Event", "metadata": {"name": "e1", "namespace": "default"},
             "involvedObject": {"kind": "Rollout", "name": "web"}, "reason": "X"}
    assert store.apply("events", "ADDED", event) == {("default", "web")}
    assert [p["metadata"]["name"] for p in store.pods_of("default", "web-new")] == ["web-new-x"]
    assert store.owned("replicasets", ("default", "web")) == [rs]
    assert mine.wake.is_set() and not other.wake.is_set()
    assert mine.take() == {("default", "web")} and not mine.wake.is_set()
    seq = store.seq
    store.apply("pods", "DELETED", pod)
    assert store.pods_of("default", "web-new") == []
    assert store.changed_since(seq) == {("default", "web")}


# --- page models ------------------------------------------------------------------------------

def test_detail_model_of_a_paused_canary() -> None:
    store = Store()
    store.apply("rollouts", "ADDED", rollout())
    store.apply("replicasets", "ADDED", owned(
        "ReplicaSet", "web-new", "Rollout", "web",
        labels={"rollouts-pod-template-hash": "new"}, spec={"replicas": 1, "template": {
            "spec": {"containers": [{"name": "a", "image": "x:2"}]}}},
        status={"readyReplicas": 1, "availableReplicas": 1}))
    detail = model.detail(store, ("default", "web"), NOW)
    assert detail is not None
    assert [s.state for s in detail.steps] == ["done", "current"]
    assert detail.pause is not None and detail.pause.why == "paused until promoted"
    (revision,) = detail.revisions
    assert revision.roles == ("canary",) and revision.images == ("x:2",)
    row = model.row(store, store.rollout(("default", "web")) or {}, NOW)
    assert (row.phase, row.step, row.age) == ("Paused", "2/2", "60s")
    assert model.detail(store, ("default", "gone"), NOW) is None


# --- the HTTP guard and the actions ------------------------------------------------------------

def api(handler: Any) -> KubeClient:
    return KubeClient(Connection(host="http://api.test"), transport=httpx.MockTransport(handler))


async def serve_test(settings: Settings, client: KubeClient) -> TestClient[Any, Any]:
    store = Store()
    store.apply("rollouts", "ADDED", rollout())
    dashboard = Dashboard(settings, store, client)
    test_client: TestClient[Any, Any] = TestClient(TestServer(dashboard.application()))
    await test_client.start_server()
    return test_client


def test_loopback_names() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")


async def test_loopback_refuses_foreign_host_and_actions_without_token() -> None:
    client = await serve_test(Settings(namespace="default", token="t0k"), api(lambda r: None))
    try:
        assert (await client.get("/")).status == 200
        page = await client.get("/rollouts/default/web")
        assert page.status == 200 and "t0k" in await page.text()
        rebound = await client.get("/", headers={"Host": "evil.example:3100"})
        assert rebound.status == 421
        refused = await client.post("/api/rollouts/default/web/promote", json={})
        assert refused.status == 403
    finally:
        await client.close()


async def test_elsewhere_every_request_needs_the_token() -> None:
    settings = Settings(namespace="default", address="0.0.0.0", token="t0k")
    client = await serve_test(settings, api(lambda r: None))
    try:
        assert (await client.get("/")).status == 401
        entered = await client.get("/?token=t0k", allow_redirects=False)
        assert entered.status == 302 and entered.headers["Location"] == "/"
        assert (await client.get("/")).status == 200  # the cookie carries it now
        assert (await client.get("/?token=wrong", allow_redirects=False)).status == 200
    finally:
        await client.close()


async def test_actions_report_the_apis_refusal() -> None:
    body = rollout()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=body)
        return httpx.Response(403, json={
            "kind": "Status", "code": 403, "reason": "Forbidden",
            "message": 'rollouts.rollouts.dev "web" is forbidden: User "alice" cannot patch'})

    client = await serve_test(Settings(namespace="default", token="t0k"), api(handler))
    try:
        headers = {"X-Rollouts-Token": "t0k"}
        denied = await client.post("/api/rollouts/default/web/promote", json={},
                                   headers=headers)
        assert denied.status == 403
        assert "RBAC" in (await denied.json())["error"]
        nonsense = await client.post("/api/rollouts/default/web/retry", json={},
                                     headers=headers)
        assert nonsense.status == 409
        assert "not aborted" in (await nonsense.json())["error"]
        unknown = await client.post("/api/rollouts/default/web/explode", headers=headers)
        assert unknown.status == 404
    finally:
        await client.close()


async def test_actions_write_like_the_cli() -> None:
    body = rollout()
    patches: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            patches.append(json.loads(request.content))
            return httpx.Response(200, json=body)
        return httpx.Response(200, json=body)

    client = await serve_test(Settings(namespace="default", token="t0k"), api(handler))
    try:
        done = await client.post("/api/rollouts/default/web/promote", json={"full": False},
                                 headers={"X-Rollouts-Token": "t0k"})
        assert done.status == 200, await done.text()
        result = await done.json()
        assert result["message"] == "rollout web promoted (namespace default)"
        assert "currentStepIndex: 1 -> 2" in result["changes"]
        assert patches == [{"metadata": {"resourceVersion": "7"},
                            "status": {"currentStepIndex": 2, "pauseConditions": None}}]
    finally:
        await client.close()


def test_every_template_and_script_ships_in_the_wheel() -> None:
    import fnmatch
    import pathlib
    import tomllib

    root = pathlib.Path(__file__).resolve().parents[2]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["rollouts"]
    package = root / "rollouts"
    shipped = [p for p in (package / "dashboard").rglob("*")
               if p.is_file() and p.suffix in (".html", ".js", ".css")]
    assert shipped
    for path in shipped:
        relative = path.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(relative, g) for g in globs), f"{relative} not packaged"


async def test_stream_sends_changed_rows_and_removals() -> None:
    store = Store()
    store.apply("rollouts", "ADDED", rollout())
    settings = Settings(namespace="default", token="t0k", batch_seconds=0.05)
    dashboard = Dashboard(settings, store, api(lambda r: None))
    client: TestClient[Any, Any] = TestClient(TestServer(dashboard.application()))
    await client.start_server()
    try:
        response = await client.get(f"/stream?view=list&namespace=default&since={store.seq}")
        assert response.headers["Content-Type"].startswith("text/event-stream")

        async def event() -> tuple[str, dict[str, Any]]:
            lines: list[str] = []
            while True:
                line = (await response.content.readline()).decode().rstrip("\n")
                if line == "" and lines:
                    break
                if line and not line.startswith(":"):
                    lines.append(line)
            fields = dict(line.split(": ", 1) for line in lines)
            return fields["event"], json.loads(fields["data"])

        assert (await event())[0] == "synced"
        degraded = rollout(status={"phase": "Degraded", "observedGeneration": 1})
        store.apply("rollouts", "MODIFIED", degraded)
        store.apply("rollouts", "ADDED", rollout(name="other", namespace="elsewhere"))
        kind, data = await event()
        assert kind == "row" and data["id"] == "r--default--web"
        assert "phase-degraded" in data["html"]
        assert (await event())[0] == "synced"  # the other namespace is not this page's
        store.apply("rollouts", "DELETED", degraded)
        assert await event() == ("remove", {"id": "r--default--web"})
        response.close()
    finally:
        await client.close()
