"""spec.workloadRef on the kube side: the referenced Deployment read into the Rollout (its pod
template and, when the Rollout has none, its selector) and into `Observed` (its size), and the
one write made to it.

Pure functions over the Deployment's body: the operator feeds them from its watch-fed cache.
Fields written on the Deployment (invariant 5 — tell GitOps tools to ignore it while
migrating): `spec.replicas` only, and only with `scaleDown: onsuccess | progressively`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from rollouts.models.rollout import (
    InvalidRollout,
    LabelSelector,
    PodTemplate,
    ValidRollout,
)
from rollouts.planner.types import ScaleDeployment, WorkloadView

FIELD = "spec.workloadRef"


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def workload_name(rollout: ValidRollout) -> str | None:
    """The Deployment a Rollout reads (None: no workloadRef)."""
    ref = rollout.spec.workload_ref
    return ref.name if ref is not None else None


def trim_deployment(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the controller keeps of a Deployment in its cache."""
    metadata = _dict(body.get("metadata"))
    spec = _dict(body.get("spec"))
    return {
        "metadata": {key: metadata[key] for key in ("name", "namespace", "uid",
                                                      "resourceVersion") if key in metadata},
        "spec": {key: spec[key] for key in ("replicas", "selector", "template") if key in spec},
        "status": {key: value for key, value in _dict(body.get("status")).items()
                   if key in ("replicas", "readyReplicas", "availableReplicas")},
    }


def resolve_workload(rollout: ValidRollout,
                     deployment: Mapping[str, Any] | None) -> ValidRollout | InvalidRollout:
    """The Rollout with the Deployment's pod template (and selector) in place; InvalidSpec
    naming the field when the Deployment is missing or cannot give them."""
    ref = rollout.spec.workload_ref
    if ref is None:
        return rollout
    if deployment is None:
        return _invalid(rollout, f"{FIELD}.name", f'Deployment "{ref.name}" not found')
    spec = _dict(deployment.get("spec"))
    template = spec.get("template")
    try:
        PodTemplate.model_validate(template)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return _invalid(rollout, FIELD, f'Deployment "{ref.name}" has no usable pod template '
                        f"(spec.template{'.' + where if where else ''}: {first['msg']})")
    selector = rollout.spec.selector
    if selector is None:
        try:
            selector = LabelSelector.model_validate(spec.get("selector"))
        except ValidationError:
            return _invalid(rollout, FIELD, f'Deployment "{ref.name}" has no usable selector')
    assert isinstance(template, Mapping)
    labels = _dict(_dict(template.get("metadata")).get("labels"))
    wanted = selector.match_labels or {}
    if not wanted and not selector.match_expressions:
        return _invalid(rollout, "spec.selector", "selector must not be empty")
    for key, value in wanted.items():
        if labels.get(key) != value:
            return _invalid(rollout, "spec.selector.matchLabels",
                            f"{key}={value} does not match the template labels of "
                            f'Deployment "{ref.name}"')
    return dataclasses.replace(
        rollout, spec=rollout.spec.model_copy(update={"selector": selector}),
        template=dict(template))


def workload_view(deployment: Mapping[str, Any] | None) -> WorkloadView | None:
    if deployment is None:
        return None
    metadata = _dict(deployment.get("metadata"))
    replicas = _dict(deployment.get("spec")).get("replicas", 1)
    available = _dict(deployment.get("status")).get("availableReplicas", 0)
    return WorkloadView(
        name=str(metadata.get("name") or ""),
        spec_replicas=replicas if isinstance(replicas, int) else 1,
        available=available if isinstance(available, int) else 0,
        resource_version=str(metadata.get("resourceVersion") or ""),
    )


def scale_patch(action: ScaleDeployment) -> dict[str, Any]:
    """A merge patch of spec.replicas alone, guarded by the observed resourceVersion."""
    patch: dict[str, Any] = {"spec": {"replicas": action.replicas}}
    if action.resource_version:
        patch["metadata"] = {"resourceVersion": action.resource_version}
    return patch


def _invalid(rollout: ValidRollout, path: str, message: str) -> InvalidRollout:
    return InvalidRollout(rollout.metadata, ((path, message),), rollout.status)
