"""The observer reads a router's objects until the list stops growing (App Mesh learns its
VirtualRouter from the VirtualService), and a deleted Rollout's routes are finalized."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from rollouts.errors import NotFoundError
from rollouts.kube.routes import finalize_routes, read_routes
from rollouts.planner.routing import HeaderMatch, HeaderRoute, ObjectKey, TrafficIntent
from tests.unit.traffic.cases import BY_NAME, Store, key_of


class StoreClient:
    """The two KubeClient calls routes.py makes, over a `Store` (patches with jsonpatch)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.gets: list[str] = []

    async def get(self, group: str, version: str, plural: str, namespace: str,
                  name: str) -> dict[str, Any]:
        self.gets.append(f"{plural}/{name}")
        for key, body in self.store.objects.items():
            if key.name == name and plural.startswith(key.kind.lower()):
                return copy.deepcopy(body)
        raise NotFoundError(404, "NotFound", f"{plural} {name} not found")


def test_app_mesh_objects_are_read_until_the_list_stops_growing() -> None:
    case = BY_NAME["appmesh"]
    client = StoreClient(Store.of(case.objects))
    bodies = asyncio.run(read_routes(client, case.router()))  # type: ignore[arg-type]
    assert {k.kind for k, body in bodies.items() if body is not None} == {
        "VirtualService", "VirtualRouter", "VirtualNode"}
    assert client.gets.index("virtualrouters/web-vrouter") > client.gets.index(
        "virtualservices/web-vs")
    assert len(client.gets) == len(set(client.gets))  # each object read once


def test_a_missing_object_reads_as_none() -> None:
    case = BY_NAME["gatewayapi"]
    bodies = asyncio.run(read_routes(StoreClient(Store()), case.router()))  # type: ignore[arg-type]
    assert list(bodies.values()) == [None]
    assert all(isinstance(k, ObjectKey) for k in bodies)


def test_finalize_leaves_all_stable_with_no_managed_route() -> None:
    case = BY_NAME["nginx"]
    store = Store.of(case.objects)
    router = case.router()
    store.apply(router.writes(store.observe(router), TrafficIntent(
        30, 70, header_routes=(HeaderRoute("header-1", (HeaderMatch("x", "y"),)),))))
    assert router.verified_weight(store.observe(router)) == 30

    class Applying(StoreClient):
        async def patch_json(self, group: str, version: str, plural: str, namespace: str,
                             name: str, patch: Any) -> None:
            raise AssertionError("nginx finalizes by deleting its canary Ingress")

        async def delete(self, group: str, version: str, plural: str, namespace: str,
                         name: str) -> None:
            del self.store.objects[next(k for k in self.store.objects if k.name == name)]

    client = Applying(store)
    asyncio.run(finalize_routes(client, router))  # type: ignore[arg-type]
    assert [key_of(b).name for b in store.objects.values()] == ["web-ingress"]
    assert not router.finalize(store.observe(router))
