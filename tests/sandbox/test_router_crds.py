"""The routing kinds in the API emulator: their CRDs apply, and each router's writes go through
real HTTP (JSON patches with the resourceVersion guard, creates, deletes) and read back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import httpx
import pytest
import yaml

from rollouts.planner.routing import ObjectKey, Observed, Router, RouteSnapshot, TrafficIntent
from rollouts.sandbox.apiserver import ApiEmulator
from tests.unit.traffic.cases import CASES, Case

CRDS = list(yaml.safe_load_all(
    resources.files("rollouts.sandbox").joinpath("crds/routers.yaml").read_text()))
# Ingress is built in (the NGINX and ALB routers write it); the other kinds come from the CRDs.
PLURALS = {("networking.k8s.io/v1", "Ingress"): "ingresses"} | {
    (f"{d['spec']['group']}/{v['name']}", d["spec"]["names"]["kind"]):
    d["spec"]["names"]["plural"] for d in CRDS for v in d["spec"]["versions"]}


def url(key: ObjectKey, named: bool = True) -> str:
    path = (f"/apis/{key.api_version}/namespaces/{key.namespace}/"
            f"{PLURALS[(key.api_version, key.kind)]}")
    return f"{path}/{key.name}" if named else path


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    emulator = ApiEmulator()
    await emulator.start()
    try:
        async with httpx.AsyncClient(base_url=emulator.url, timeout=10) as c:
            for crd in CRDS:
                r = await c.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                                 json=crd)
                assert r.status_code == 201, r.text
            yield c
    finally:
        await emulator.stop()


async def observe(client: httpx.AsyncClient, router: Router) -> Observed:
    observed: dict[ObjectKey, RouteSnapshot | None] = {}
    while not set(keys := router.objects(observed)) <= set(observed):
        for key in keys:
            r = await client.get(url(key))
            observed[key] = RouteSnapshot(key, r.json()) if r.status_code == 200 else None
    return observed


async def apply(client: httpx.AsyncClient, router: Router, intent: TrafficIntent | None,
                ) -> list[int]:
    observed = await observe(client, router)
    writes = router.finalize(observed) if intent is None else router.writes(observed, intent)
    codes = []
    for write in writes:
        if write.op == "create":
            r = await client.post(url(write.key, named=False), json=write.manifest)
        elif write.op == "delete":
            r = await client.delete(url(write.key))
        else:
            r = await client.patch(url(write.key), json=list(write.patch),
                                   headers={"Content-Type": "application/json-patch+json"})
        codes.append(r.status_code)
    return codes


def test_every_routing_kind_has_a_crd() -> None:
    kinds = {kind for _, kind in PLURALS}
    assert {"HTTPRoute", "GRPCRoute", "TCPRoute", "VirtualService", "DestinationRule",
            "TrafficSplit", "TraefikService", "ApisixRoute", "Mapping", "VirtualRouter",
            "VirtualNode"} <= kinds


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_router_round_trip_through_the_emulator(client: httpx.AsyncClient,
                                                      case: Case) -> None:
    for body in case.objects:
        r = await client.post(url(ObjectKey(body["apiVersion"], body["kind"],
                                            body["metadata"]["name"], "default"), named=False),
                              json=body)
        assert r.status_code == 201, r.text
    router = case.router()
    assert router.problems(await observe(client, router)) == []

    intent = TrafficIntent(30, 70, canary_hash="abc", stable_hash="def")
    assert set(await apply(client, router, intent)) <= {200, 201}
    assert router.verified_weight(await observe(client, router)) == 30
    assert await apply(client, router, intent) == []  # nothing left to write

    # A write planned on what was read before someone else's change is refused with 409.
    observed = await observe(client, router)
    stale = [w for w in router.writes(observed, TrafficIntent(50, 50)) if w.op == "patch"]
    assert stale
    for write in stale:
        bump: list[dict[str, Any]] = [{"op": "add", "path": "/metadata/labels",
                                       "value": {"touched": "yes"}}]
        r = await client.patch(url(write.key), json=bump,
                               headers={"Content-Type": "application/json-patch+json"})
        assert r.status_code == 200, r.text
        r = await client.patch(url(write.key), json=list(write.patch),
                               headers={"Content-Type": "application/json-patch+json"})
        assert r.status_code == 409, r.text

    assert set(await apply(client, router, None)) <= {200}
    after = await observe(client, router)
    owned = [k for k, s in after.items() if s is not None
             and s.body["metadata"].get("ownerReferences")]
    assert owned == []
    if all(after.get(k) for k in router.objects(after)):
        assert router.verified_weight(after) == 0
