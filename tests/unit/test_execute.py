"""execute(): the exact requests a Plan turns into (httpx.MockTransport, no server)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest

from rollouts.errors import ConflictError, KubeError
from rollouts.kube.analysis import Templates
from rollouts.kube.client import KubeClient
from rollouts.kube.config import Connection
from rollouts.kube.execute import execute
from rollouts.kube.observe import observe
from rollouts.models.rollout import (
    ObjectMeta,
    RolloutStatus,
    ValidRollout,
    parse_rollout,
)
from rollouts.models.wire import (
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    SCALE_DOWN_DEADLINE_ANNOTATION,
)
from rollouts.planner.manifests import pod_template_hash, replica_set_manifest
from rollouts.planner.plan import plan as make_plan
from rollouts.planner.routing import ObjectKey, RouteWrite
from rollouts.planner.types import (
    ApplyRouteWrite,
    CreateReplicaSet,
    DeleteReplicaSet,
    Event,
    PinService,
    Plan,
    ScaleReplicaSet,
)

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
UID = "uid-1"


def rollout_body(status: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "rollouts.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "shop", "uid": UID, "resourceVersion": "42",
                     "generation": 1},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
            "strategy": {"canary": {"canaryService": "web-canary", "stableService": "web",
                                    "steps": [{"setWeight": 20}]}},
        },
    }
    if status is not None:
        body["status"] = status
    return body


def rs_body(name: str, pod_hash: str, replicas: int, rv: str,
            deadline: str | None = None) -> dict[str, Any]:
    annotations = {REVISION_ANNOTATION: "1"}
    if deadline:
        annotations[SCALE_DOWN_DEADLINE_ANNOTATION] = deadline
    return {
        "metadata": {
            "name": name, "namespace": "shop", "resourceVersion": rv,
            "labels": {"app": "web", POD_TEMPLATE_HASH_LABEL: pod_hash},
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout",
                                 "name": "web", "uid": UID, "controller": True}],
        },
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "readyReplicas": replicas,
                   "availableReplicas": replicas},
    }


def svc_body(name: str, selector: dict[str, str], rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "shop", "resourceVersion": rv},
            "spec": {"selector": selector, "ports": [{"port": 80}]}}


class Recorder:
    """A fake API server: records requests, answers from a table of (method, path) -> reply."""

    def __init__(self, replies: dict[tuple[str, str], tuple[int, Any]] | None = None) -> None:
        self.requests: list[tuple[str, str, str, Any]] = []
        self.params: list[dict[str, str]] = []
        self.replies = replies or {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.requests.append(
            (request.method, request.url.path, request.headers.get("content-type", ""), body)
        )
        self.params.append(dict(request.url.params))
        status, reply = self.replies.get((request.method, request.url.path), (200, {}))
        if status == 200 and request.method == "POST":
            status, reply = 201, body
        return httpx.Response(status, json=reply)

    def client(self) -> KubeClient:
        return KubeClient(Connection(host="http://k8s.test", token="t0k"),
                          transport=httpx.MockTransport(self))


def status_of(**fields: Any) -> RolloutStatus:
    return RolloutStatus.model_validate(fields)


def valid(body: dict[str, Any]) -> ValidRollout:
    parsed = parse_rollout(body)
    assert isinstance(parsed, ValidRollout)
    return parsed


def meta(body: dict[str, Any]) -> ObjectMeta:
    return ObjectMeta.model_validate(body["metadata"])


def create_rs(body: dict[str, Any], pod_hash: str, replicas: int,
              revision: int) -> CreateReplicaSet:
    manifest = replica_set_manifest(valid(body), pod_hash=pod_hash, replicas=replicas,
                                    revision=revision)
    return CreateReplicaSet(name=f"web-{pod_hash}", pod_hash=pod_hash, replicas=replicas,
                            revision=revision, manifest=manifest)


STATUS_PATH = "/apis/rollouts.dev/v1alpha1/namespaces/shop/rollouts/web/status"


async def test_actions_status_and_events_in_order() -> None:
    rec = Recorder()
    body = rollout_body(status={"phase": "Healthy", "stableRS": "aaa"})
    deadline = NOW + dt.timedelta(seconds=30)
    plan = Plan(
        actions=(
            create_rs(body, "bbb", 1, 2),
            PinService(service="web-canary", pod_hash="bbb", resource_version="8"),
            ScaleReplicaSet(name="web-aaa", replicas=2, scale_down_at=deadline,
                            resource_version="100"),
            DeleteReplicaSet(name="web-old"),
        ),
        status=status_of(phase="Progressing", stableRS="aaa", currentPodHash="bbb"),
        events=(Event(type="Normal", reason="RolloutUpdated", message="new revision bbb"),),
    )
    async with rec.client() as client:
        wrote = await execute(client, meta(body), body["status"], plan, NOW)
        assert client.request_counts == {"create": 2, "patch": 2, "delete": 1, "update": 1}
    assert wrote

    methods = [(m, p) for m, p, _, _ in rec.requests]
    assert methods == [
        ("POST", "/apis/apps/v1/namespaces/shop/replicasets"),
        ("PATCH", "/api/v1/namespaces/shop/services/web-canary"),
        ("PATCH", "/apis/apps/v1/namespaces/shop/replicasets/web-aaa"),
        ("DELETE", "/apis/apps/v1/namespaces/shop/replicasets/web-old"),
        ("PUT", STATUS_PATH),
        ("POST", "/api/v1/namespaces/shop/events"),
    ]
    created = rec.requests[0][3]
    assert created["metadata"]["name"] == "web-bbb"
    assert created["metadata"]["ownerReferences"][0]["uid"] == UID
    assert created["spec"]["template"]["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL] == "bbb"

    # Invariant 5: on a Service only its selector, by server-side apply under the
    # controller's field manager (forcing: the selector is the controller's), guarded by the
    # observed resourceVersion.
    _, _, ctype, pin = rec.requests[1]
    assert ctype == "application/apply-patch+yaml"
    assert pin == {"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "web-canary", "namespace": "shop",
                                "resourceVersion": "8"},
                   "spec": {"selector": {POD_TEMPLATE_HASH_LABEL: "bbb"}}}
    assert rec.params[1] == {"fieldManager": "rollouts-controller", "force": "true"}

    _, _, ctype, scale = rec.requests[2]
    assert ctype == "application/merge-patch+json"
    assert scale == {
        "metadata": {"resourceVersion": "100",
                     "annotations": {SCALE_DOWN_DEADLINE_ANNOTATION: "2026-01-01T12:00:30Z"}},
        "spec": {"replicas": 2},
    }

    # The status: replaced whole, guarded by the Rollout's observed resourceVersion.
    _, _, _, put = rec.requests[4]
    assert put["metadata"] == {"name": "web", "namespace": "shop", "resourceVersion": "42"}
    assert put["status"]["phase"] == "Progressing"
    assert put["status"]["currentPodHash"] == "bbb"
    assert "spec" not in put  # never writes spec

    event = rec.requests[5][3]
    assert event["involvedObject"] == {
        "apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout", "name": "web",
        "namespace": "shop", "uid": UID, "resourceVersion": "42"}
    assert (event["reason"], event["type"]) == ("RolloutUpdated", "Normal")
    assert event["reportingComponent"] == "rollouts-controller"
    assert event["firstTimestamp"] == "2026-01-01T12:00:00Z"


async def test_scale_removes_deadline_with_null() -> None:
    rec = Recorder()
    body = rollout_body(status={})
    plan = Plan(actions=(ScaleReplicaSet(name="web-aaa", replicas=3, resource_version="5"),),
                status=RolloutStatus.model_validate({}))
    async with rec.client() as client:
        await execute(client, meta(body), body["status"], plan, NOW)
    assert rec.requests[0][3] == {
        "metadata": {"resourceVersion": "5",
                     "annotations": {SCALE_DOWN_DEADLINE_ANNOTATION: None}},
        "spec": {"replicas": 3},
    }


async def test_same_inputs_write_nothing() -> None:
    """Invariant 6: the plan made from what was observed, when it all matches, sends no
    request at all."""
    rec = Recorder()
    body = rollout_body()
    rollout = valid(body)
    live = rollout_body()
    pod_hash = pod_template_hash(rollout.template)
    rs = rs_body(f"web-{pod_hash}", pod_hash, 3, "100")
    services = {name: svc_body(name, {"app": "web", POD_TEMPLATE_HASH_LABEL: pod_hash}, "7")
                for name in ("web", "web-canary")}
    first = make_plan(rollout, observe(rollout, replica_sets=[rs], services=services,
                                       analysis_runs=(), templates=Templates()), NOW)
    live["status"] = first.status.to_wire()
    again = valid(live)
    second = make_plan(again, observe(again, replica_sets=[rs], services=services,
                                      analysis_runs=(), templates=Templates()), NOW)
    assert second.actions == () and second.events == ()
    async with rec.client() as client:
        wrote = await execute(client, meta(live), live["status"], second, NOW)
    assert not wrote
    assert rec.requests == []


async def test_status_write_replaces_whole_status() -> None:
    rec = Recorder()
    body = rollout_body(status={"phase": "Paused", "pauseConditions": [
        {"reason": "CanaryPauseStep", "startTime": "2026-01-01T11:59:00Z"}]})
    plan = Plan(actions=(), status=status_of(phase="Progressing"))
    async with rec.client() as client:
        await execute(client, meta(body), body["status"], plan, NOW)
    value = rec.requests[0][3]["status"]
    assert "pauseConditions" not in value  # cleared field goes away, not merged


async def test_stale_status_write_is_a_conflict() -> None:
    rec = Recorder({("PUT", STATUS_PATH): (409, {
        "kind": "Status", "status": "Failure", "reason": "Conflict", "code": 409,
        "message": "anything at all"})})
    plan = Plan(actions=(), status=status_of(phase="Progressing"),
                events=(Event(type="Normal", reason="X", message="y"),))
    async with rec.client() as client:
        with pytest.raises(ConflictError):
            await execute(client, meta(rollout_body()), {}, plan, NOW)
    # No Events for a status that was not written: the next pass posts them once.
    assert [m for m, *_ in rec.requests] == ["PUT"]


async def test_an_invalid_status_write_is_an_error_whatever_its_message_says() -> None:
    """Never keyed on message text: a 422 that mentions "test" is still a 422."""
    rec = Recorder({("PUT", STATUS_PATH): (422, {
        "kind": "Status", "status": "Failure", "reason": "Invalid", "code": 422,
        "message": "testing value /metadata/resourceVersion failed: test failed"})})
    plan = Plan(actions=(), status=status_of(phase="Progressing"))
    async with rec.client() as client:
        with pytest.raises(KubeError) as info:
            await execute(client, meta(rollout_body()), {}, plan, NOW)
    assert not isinstance(info.value, ConflictError) and info.value.status == 422


async def test_stale_scale_propagates_409_and_stops() -> None:
    path = "/apis/apps/v1/namespaces/shop/replicasets/web-aaa"
    rec = Recorder({("PATCH", path): (409, {
        "kind": "Status", "reason": "Conflict", "code": 409,
        "message": "the object has been modified"})})
    body = rollout_body(status={})
    plan = Plan(actions=(ScaleReplicaSet(name="web-aaa", replicas=1, resource_version="1"),
                         PinService(service="web", pod_hash="aaa", resource_version="2")),
                status=status_of(phase="Progressing"))
    async with rec.client() as client:
        with pytest.raises(ConflictError) as info:
            await execute(client, meta(body), body["status"], plan, NOW)
    assert info.value.status == 409
    assert len(rec.requests) == 1  # nothing after the stale write, no status


async def test_create_already_exists_is_fine_other_errors_are_not() -> None:
    path = "/apis/apps/v1/namespaces/shop/replicasets"
    body = rollout_body(status={"phase": "Progressing"})
    plan = Plan(actions=(create_rs(body, "bbb", 1, 2),), status=status_of(phase="Progressing"))
    rec = Recorder({("POST", path): (409, {"reason": "AlreadyExists", "code": 409,
                                           "message": "exists"})})
    async with rec.client() as client:
        assert not await execute(client, meta(body), body["status"], plan, NOW)

    rec = Recorder({("POST", path): (409, {"reason": "Conflict", "code": 409,
                                           "message": "exists"})})
    async with rec.client() as client:
        with pytest.raises(ConflictError):
            await execute(client, meta(body), body["status"], plan, NOW)

    rec = Recorder({("POST", path): (403, {"reason": "Forbidden", "code": 403,
                                           "message": "no"})})
    async with rec.client() as client:
        with pytest.raises(KubeError) as info:
            await execute(client, meta(body), body["status"], plan, NOW)
    assert info.value.status == 403


async def test_event_failure_does_not_fail_the_pass() -> None:
    rec = Recorder({("POST", "/api/v1/namespaces/shop/events"): (403, {"message": "no"})})
    plan = Plan(actions=(), status=status_of(phase="Healthy"),
                events=(Event(type="Warning", reason="X", message="y" * 5000),))
    async with rec.client() as client:
        await execute(client, meta(rollout_body()), {}, plan, NOW)
    assert len(rec.requests[1][3]["message"]) == 1024
    assert rec.requests[0][0] == "PUT"


async def test_bearer_token_sent() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return httpx.Response(200, json={"items": [{"a": 1}],
                                         "metadata": {"resourceVersion": "9"}})

    async with KubeClient(Connection(host="http://k8s.test", token="abc"),
                          transport=httpx.MockTransport(handler)) as client:
        items, rv = await client.list("apps", "v1", "replicasets", "shop",
                                      label_selector="a=b")
    assert (items, rv, seen) == ([{"a": 1}], "9", ["Bearer abc"])


def test_observe_filters_foreign_and_reports_missing_services() -> None:
    foreign = rs_body("other-x", "x", 1, "3")
    foreign["metadata"]["ownerReferences"][0]["uid"] = "someone-else"
    observed = observe(valid(rollout_body()),
                       replica_sets=[rs_body("web-aaa", "aaa", 3, "1"), foreign],
                       services={"web": svc_body("web", {"app": "web"}, "2")},
                       analysis_runs=(), templates=Templates())
    assert [rs.name for rs in observed.replica_sets] == ["web-aaa"]
    rs = observed.replica_sets[0]
    assert (rs.pod_hash, rs.revision, rs.spec_replicas, rs.available) == ("aaa", 1, 3, 3)
    assert observed.services["web-canary"] is None
    web = observed.services["web"]
    assert web is not None and web.resource_version == "2"


# --- against the API emulator: the real status codes and messages ---------------------------


async def test_client_and_status_write_against_emulator() -> None:
    import asyncio
    import pathlib
    import tempfile

    import yaml

    from rollouts.errors import NotFoundError
    from rollouts.sandbox.apiserver import ApiEmulator

    root = pathlib.Path(__file__).resolve().parents[2]
    async with ApiEmulator() as emulator:
        with tempfile.TemporaryDirectory() as tmp:
            path = emulator.write_kubeconfig(pathlib.Path(tmp) / "kubeconfig", namespace="shop")
            client = KubeClient.load(str(path))
        async with client:
            assert client.default_namespace == "shop"
            for crd in yaml.safe_load_all((root / "crds/rollouts.dev_rollouts.yaml").read_text()):
                await client.create("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                                    None, crd)
            await client.create("", "v1", "namespaces", None, {"metadata": {"name": "shop"}})
            body = rollout_body()
            del body["metadata"]["uid"], body["metadata"]["resourceVersion"]
            created = await client.create("rollouts.dev", "v1alpha1", "rollouts", "shop", body)
            with pytest.raises(ConflictError):
                await client.create("rollouts.dev", "v1alpha1", "rollouts", "shop", body)
            with pytest.raises(NotFoundError):
                await client.get("rollouts.dev", "v1alpha1", "rollouts", "shop", "nope")

            items, list_rv = await client.list("rollouts.dev", "v1alpha1", "rollouts", "shop")
            assert [i["metadata"]["name"] for i in items] == ["web"]

            # A status write from the observed version succeeds; a second one from the same
            # (now stale) observation is a conflict, and spec is untouched either way.
            plan = Plan(actions=(), status=status_of(phase="Progressing"))
            assert await execute(client, meta(created), created.get("status"), plan, NOW)
            with pytest.raises(ConflictError):
                await execute(client, meta(created), created.get("status"),
                              Plan(actions=(), status=status_of(phase="Healthy")), NOW)
            live = await client.get("rollouts.dev", "v1alpha1", "rollouts", "shop", "web")
            assert live["status"]["phase"] == "Progressing"
            assert live["spec"] == created["spec"]
            assert live["metadata"]["generation"] == created["metadata"]["generation"]
            # Same inputs again: nothing written.
            assert not await execute(client, meta(live), live["status"], plan, NOW)

            # Watch from the list's version sees the status write as MODIFIED.
            async def first_event() -> tuple[str, dict[str, Any]]:
                async for kind, obj in client.watch("rollouts.dev", "v1alpha1", "rollouts",
                                                    "shop", resource_version=list_rv,
                                                    timeout=5):
                    if kind != "BOOKMARK":
                        return kind, obj
                raise AssertionError("watch ended")

            kind, obj = await asyncio.wait_for(first_event(), 10)
            assert kind == "MODIFIED" and obj["status"]["phase"] == "Progressing"

            await client.delete("rollouts.dev", "v1alpha1", "rollouts", "shop", "web")
            assert client.request_counts["watch"] == 1


# --- route writes (a traffic router's decisions, applied as given) ------------------------

ROUTE_KEY = ObjectKey("networking.example.dev/v1", "Ingress", "web", "shop")
ROUTES = "/apis/networking.example.dev/v1/namespaces/shop/ingresses"


async def test_route_writes_are_applied_as_given() -> None:
    rec = Recorder()
    patch = ({"op": "replace", "path": "/metadata/resourceVersion", "value": "3"},
             {"op": "replace", "path": "/spec/weight", "value": 25})
    plan = Plan(actions=(
        ApplyRouteWrite(RouteWrite(ROUTE_KEY, "patch", patch=patch)),
        ApplyRouteWrite(RouteWrite(ROUTE_KEY, "create", manifest={"metadata": {"name": "c"}})),
        ApplyRouteWrite(RouteWrite(ROUTE_KEY, "delete")),
    ), status=status_of(phase="Progressing"))
    async with rec.client() as client:
        await execute(client, meta(rollout_body()), {"phase": "Progressing"}, plan, NOW)
    assert [(m, p, c) for m, p, c, _ in rec.requests] == [
        ("PATCH", f"{ROUTES}/web", "application/json-patch+json"),
        ("POST", ROUTES, "application/json"),
        ("DELETE", f"{ROUTES}/web", "application/json"),
    ]
    assert rec.requests[0][3] == [dict(op) for op in patch]


async def test_route_writes_are_idempotent_and_a_stale_patch_is_a_conflict() -> None:
    rec = Recorder({("POST", ROUTES): (409, {"reason": "AlreadyExists", "code": 409}),
                    ("DELETE", f"{ROUTES}/web"): (404, {"reason": "NotFound", "code": 404}),
                    ("PATCH", f"{ROUTES}/web"): (409, {"reason": "Conflict", "code": 409})})
    done = Plan(actions=(
        ApplyRouteWrite(RouteWrite(ROUTE_KEY, "create", manifest={"metadata": {"name": "c"}})),
        ApplyRouteWrite(RouteWrite(ROUTE_KEY, "delete")),
    ), status=status_of(phase="Progressing"))
    stale = Plan(actions=(ApplyRouteWrite(RouteWrite(ROUTE_KEY, "patch", patch=(
        {"op": "replace", "path": "/metadata/resourceVersion", "value": "1"},))),),
        status=status_of(phase="Progressing"))
    async with rec.client() as client:
        assert not await execute(client, meta(rollout_body()), {"phase": "Progressing"},
                                 done, NOW)
        with pytest.raises(ConflictError):
            await execute(client, meta(rollout_body()), {}, stale, NOW)


def test_observe_reads_the_objects_the_router_names() -> None:
    from tests.unit.fake_router import ROUTE, FakeRouter

    body = {"metadata": {"name": "web-route", "resourceVersion": "4"},
            "spec": {"canaryWeight": 10}}
    observed = observe(valid(rollout_body()), replica_sets=(), services={}, analysis_runs=(),
                       templates=Templates(), router=FakeRouter(), route_bodies={ROUTE: body})
    snapshot = observed.routes[ROUTE]
    assert snapshot is not None and snapshot.body == body
    assert observed.router is not None and observed.router.verified_weight(observed.routes) == 10
    missing = observe(valid(rollout_body()), replica_sets=(), services={}, analysis_runs=(),
                      templates=Templates(), router=FakeRouter(), route_bodies={})
    assert missing.routes == {ROUTE: None}
