"""The writes of a pass whose status was held back, until the watch brings them back.

A pass that writes its status waits for that write's echo before planning again (the
reconciler's `written_over`); the ReplicaSet and Service watch events of its actions come
before it, as a rule. A pass whose status is held back (`rollouts.planner.write_folding`)
has no echo to wait for, and the next pass may be woken by the first of its actions' watch
events (the Service's) while the caches do not show the others yet: it would create the
ReplicaSet again (an AlreadyExists no-op, but a request) or scale it from a stale view (a
409). So until every action of a held pass shows in the caches, or `ECHO_WAIT` is up, the
next pass waits for them, woken by their watch events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rollouts.planner.types import Action, CreateReplicaSet, PinService, ScaleReplicaSet

__all__ = ["Echo", "awaited", "missing"]


@dataclass(frozen=True)
class Echo:
    """An object a pass wrote: shown by the caches once they hold it at another
    resourceVersion than `replaced` (None: created, shown once it is there at all)."""

    kind: Literal["ReplicaSet", "Service"]
    name: str
    replaced: str | None


def awaited(actions: Sequence[Action]) -> tuple[Echo, ...]:
    """The echoes to wait for after applying `actions` (an unguarded write has none the
    caches could tell apart)."""
    echoes: list[Echo] = []
    for action in actions:
        if isinstance(action, CreateReplicaSet):
            echoes.append(Echo("ReplicaSet", action.name, None))
        elif isinstance(action, ScaleReplicaSet) and action.resource_version:
            echoes.append(Echo("ReplicaSet", action.name, action.resource_version))
        elif isinstance(action, PinService) and action.resource_version:
            echoes.append(Echo("Service", action.service, action.resource_version))
    return tuple(echoes)


def _version(body: Mapping[str, Any] | None) -> str | None:
    if body is None:
        return None
    return str((body.get("metadata") or {}).get("resourceVersion") or "")


def missing(echoes: Sequence[Echo], replica_sets: Iterable[Any],
            service: Callable[[str], Mapping[str, Any] | None]) -> tuple[Echo, ...]:
    """The echoes the caches do not show yet: `replica_sets` the Rollout's ReplicaSet
    bodies, `service(name)` a Service's body (None when not cached)."""
    by_name = {str((rs.get("metadata") or {}).get("name")): rs for rs in replica_sets
               if isinstance(rs, Mapping)}
    left = []
    for echo in echoes:
        body = by_name.get(echo.name) if echo.kind == "ReplicaSet" else service(echo.name)
        version = _version(body)
        if version is None or (echo.replaced is not None and version == echo.replaced):
            left.append(echo)
    return tuple(left)
