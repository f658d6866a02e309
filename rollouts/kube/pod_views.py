"""Pods (plain dicts) into the planner's `PodView`; pure, and malformed pods degrade to
neutral values rather than raising."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rollouts.models.wire import POD_TEMPLATE_HASH_LABEL, parse_time
from rollouts.planner.types import PodView, ReplicaSetView


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in _dict(value).items()}


def _ready(status: Mapping[str, Any]) -> bool:
    conditions = status.get("conditions")
    return any(_dict(c).get("type") == "Ready" and _dict(c).get("status") == "True"
               for c in (conditions if isinstance(conditions, list) else ()))


def pod_view(body: Mapping[str, Any]) -> PodView:
    metadata = _dict(body.get("metadata"))
    labels = _strings(metadata.get("labels"))
    return PodView(
        name=str(metadata.get("name") or ""),
        uid=str(metadata.get("uid") or ""),
        pod_hash=labels.get(POD_TEMPLATE_HASH_LABEL, ""),
        created=parse_time(metadata.get("creationTimestamp")),
        deleting=bool(metadata.get("deletionTimestamp")),
        ready=_ready(_dict(body.get("status"))),
        labels=labels,
        annotations=_strings(metadata.get("annotations")),
    )


def _owner_name(body: Mapping[str, Any]) -> str | None:
    refs = _dict(body.get("metadata")).get("ownerReferences")
    for ref in refs if isinstance(refs, list) else ():
        ref = _dict(ref)
        if ref.get("controller") and ref.get("kind") == "ReplicaSet":
            return str(ref.get("name") or "")
    return None


def owned_pods(bodies: Iterable[Mapping[str, Any]],
               replica_sets: Iterable[ReplicaSetView]) -> tuple[PodView, ...]:
    """The pods controlled by one of `replica_sets` (by the controller ownerReference and the
    pod-template-hash label), sorted by name."""
    owners = {rs.name: rs.pod_hash for rs in replica_sets}
    views = []
    for body in bodies:
        owner = _owner_name(body)
        view = pod_view(body)
        if owner in owners and view.pod_hash == owners[owner]:
            views.append(view)
    return tuple(sorted(views, key=lambda v: v.name))
