"""Reading the objects a traffic router names (Ingresses, VirtualServices, HTTPRoutes...).

They belong to other teams and tools and are not watched: a Rollout with a router reads them
on each pass (and its plan asks to be woken to read them back while they do not yet show
what was asked of them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rollouts.errors import ConflictError, NotFoundError
from rollouts.kube.client import KubeClient, kind_resource
from rollouts.kube.execute import apply_route_write
from rollouts.planner.routing import ObjectKey, Router, RouteSnapshot


async def read_routes(client: KubeClient, router: Router
                      ) -> dict[ObjectKey, Mapping[str, Any] | None]:
    """Every object the router reads, as the API server has it now (None: missing).

    A router may name further objects once it has seen the first (App Mesh: a
    VirtualService names its VirtualRouter): it is asked again until its list stops growing.
    """
    bodies: dict[ObjectKey, Mapping[str, Any] | None] = {}
    keys = router.objects()
    while any(key not in bodies for key in keys):
        for key in keys:
            if key in bodies:
                continue
            group, version, plural = kind_resource(key.api_version, key.kind)
            try:
                bodies[key] = await client.get(group, version, plural, key.namespace, key.name)
            except NotFoundError:
                bodies[key] = None
        keys = router.objects(snapshots(bodies))
    return bodies


def snapshots(bodies: Mapping[ObjectKey, Mapping[str, Any] | None]
              ) -> dict[ObjectKey, RouteSnapshot | None]:
    """Read bodies as the router sees them (None: missing)."""
    return {key: None if body is None else RouteSnapshot(key, body)
            for key, body in bodies.items()}


async def finalize_routes(client: KubeClient, router: Router, attempts: int = 5) -> None:
    """For a Rollout being deleted: all traffic to stable, no managed route, no object of
    ours left (the router's `finalize`), read back until nothing is left to write. A write
    that meets a newer object (409) is decided again from a fresh read."""
    for _ in range(attempts):
        writes = router.finalize(snapshots(await read_routes(client, router)))
        if not writes:
            return
        try:
            for write in writes:
                await apply_route_write(client, write)
        except ConflictError:
            continue
