"""Reading the objects a traffic router names (Ingresses, VirtualServices, HTTPRoutes...).

They belong to other teams and tools and are not watched: a Rollout with a router reads them
on each pass (and its plan asks to be woken to read them back while they do not yet show
what was asked of them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rollouts.errors import NotFoundError
from rollouts.kube.client import KubeClient, kind_resource
from rollouts.planner.routing import ObjectKey, Router


async def read_routes(client: KubeClient, router: Router
                      ) -> dict[ObjectKey, Mapping[str, Any] | None]:
    """Every object the router reads, as the API server has it now (None: missing)."""
    bodies: dict[ObjectKey, Mapping[str, Any] | None] = {}
    for key in router.objects():
        group, version, plural = kind_resource(key.api_version, key.kind)
        try:
            bodies[key] = await client.get(group, version, plural, key.namespace, key.name)
        except NotFoundError:
            bodies[key] = None
    return bodies
