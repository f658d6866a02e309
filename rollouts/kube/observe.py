"""Turn API objects (plain dicts) into the planner's `Observed` view.

Pure functions: the operator feeds them from its watch-fed caches, the tests from literals.
Anything malformed in an object degrades to a neutral value (0 replicas, no deadline) rather
than raising: nothing a user can put in the cluster may crash the controller.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from rollouts.kube.analysis import ANALYSIS_ATTEMPT_LABEL, Templates, analysis_problems
from rollouts.models.rollout import (
    API_VERSION,
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    SCALE_DOWN_DEADLINE_ANNOTATION,
    parse_spec,
)
from rollouts.planner.types import AnalysisRunView, Observed, ReplicaSetView, ServiceView

# Labels the controller puts on the AnalysisRuns it creates (read back here).
ANALYSIS_KIND_LABEL = "rollouts.dev/analysis-kind"
ANALYSIS_STEP_LABEL = "rollouts.dev/step-index"

Key = tuple[str, str]  # (namespace, name)


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return default


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def parse_time(value: Any) -> dt.datetime | None:
    """An RFC 3339 timestamp as an aware UTC datetime; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def format_time(value: dt.datetime) -> str:
    """RFC 3339 in UTC with a Z, second precision (as Kubernetes writes timestamps)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def controller_owner(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """(name, uid) of the Rollout that controls this object, if one does."""
    refs = _dict(body.get("metadata")).get("ownerReferences") or []
    if not isinstance(refs, list):
        return None
    for ref in refs:
        ref = _dict(ref)
        if (
            ref.get("kind") == "Rollout"
            and str(ref.get("apiVersion", "")).split("/")[0] == API_VERSION.split("/")[0]
            and ref.get("controller", True)
            and ref.get("name")
        ):
            return str(ref["name"]), str(ref.get("uid") or "")
    return None


def owner_key(body: Mapping[str, Any]) -> Key | None:
    """(namespace, rollout name) of the controlling Rollout, for waking its reconcile."""
    owner = controller_owner(body)
    if owner is None:
        return None
    namespace = str(_dict(body.get("metadata")).get("namespace") or "")
    return namespace, owner[0]


def replica_set_view(body: Mapping[str, Any]) -> ReplicaSetView:
    metadata = _dict(body.get("metadata"))
    labels = _dict(metadata.get("labels"))
    annotations = _dict(metadata.get("annotations"))
    spec = _dict(body.get("spec"))
    status = _dict(body.get("status"))
    pod_hash = str(
        labels.get(POD_TEMPLATE_HASH_LABEL)
        or _dict(_dict(spec.get("selector")).get("matchLabels")).get(POD_TEMPLATE_HASH_LABEL)
        or ""
    )
    return ReplicaSetView(
        name=str(metadata.get("name") or ""),
        pod_hash=pod_hash,
        revision=_int(annotations.get(REVISION_ANNOTATION)),
        spec_replicas=_int(spec.get("replicas"), 1),  # the API default when unset
        replicas=_int(status.get("replicas")),
        ready=_int(status.get("readyReplicas")),
        available=_int(status.get("availableReplicas")),
        scale_down_at=parse_time(annotations.get(SCALE_DOWN_DEADLINE_ANNOTATION)),
        resource_version=str(metadata.get("resourceVersion") or ""),
    )


def service_view(body: Mapping[str, Any]) -> ServiceView:
    metadata = _dict(body.get("metadata"))
    selector = _dict(_dict(body.get("spec")).get("selector"))
    return ServiceView(
        name=str(metadata.get("name") or ""),
        selector={str(k): str(v) for k, v in selector.items()},
        resource_version=str(metadata.get("resourceVersion") or ""),
    )


def analysis_run_view(body: Mapping[str, Any]) -> AnalysisRunView:
    metadata = _dict(body.get("metadata"))
    labels = _dict(metadata.get("labels"))
    status = _dict(body.get("status"))
    step = labels.get(ANALYSIS_STEP_LABEL)
    return AnalysisRunView(
        name=str(metadata.get("name") or ""),
        phase=str(status.get("phase") or "Pending"),
        message=str(status.get("message") or ""),
        pod_hash=str(labels.get(POD_TEMPLATE_HASH_LABEL) or ""),
        kind=str(labels.get(ANALYSIS_KIND_LABEL) or ""),
        step_index=_int(step) if step is not None and str(step).isdigit() else None,
        attempt=_int(labels.get(ANALYSIS_ATTEMPT_LABEL)) if str(
            labels.get(ANALYSIS_ATTEMPT_LABEL, "")).isdigit() else 0,
        created=str(metadata.get("creationTimestamp") or ""),
    )


def named_services(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """Every Service the strategy names, from the raw spec (valid or not)."""
    strategy = _dict(_dict(spec).get("strategy"))
    canary = _dict(strategy.get("canary"))
    blue_green = _dict(strategy.get("blueGreen"))
    names = [
        canary.get("canaryService"),
        canary.get("stableService"),
        blue_green.get("activeService"),
        blue_green.get("previewService"),
    ]
    seen: dict[str, None] = {}
    for name in names:
        if isinstance(name, str) and name:
            seen.setdefault(name, None)
    return tuple(seen)


def owned_by(body: Mapping[str, Any], rollout_uid: str) -> bool:
    """Whether an object is controlled by the Rollout with this uid (a recreated Rollout of
    the same name does not adopt its predecessor's objects)."""
    owner = controller_owner(body)
    return owner is not None and (not rollout_uid or not owner[1] or owner[1] == rollout_uid)


def observe(
    rollout: Mapping[str, Any],
    replica_sets: Iterable[Mapping[str, Any]] = (),
    services: Mapping[str, Mapping[str, Any] | None] | None = None,
    analysis_runs: Iterable[Mapping[str, Any]] = (),
    templates: Templates | None = None,
) -> Observed:
    """The planner's view of what a Rollout owns and names, from raw objects.

    `replica_sets` / `analysis_runs` may include objects of other owners; they are filtered
    by the controlling ownerReference's uid. `services` maps names to bodies (None = missing);
    a Service the strategy names but the mapping lacks is reported missing. With
    `templates`, every analysis reference is resolved against them and what cannot make a
    run is reported (the planner turns it into InvalidSpec naming the field).
    """
    metadata = _dict(rollout.get("metadata"))
    uid = str(metadata.get("uid") or "")
    services = services or {}
    service_views: dict[str, ServiceView | None] = {}
    for name in named_services(_dict(rollout.get("spec"))):
        found = services.get(name)
        service_views[name] = service_view(found) if found is not None else None
    return Observed(
        replica_sets=tuple(
            sorted(
                (replica_set_view(rs) for rs in replica_sets if owned_by(rs, uid)),
                key=lambda view: (view.revision, view.name),
            )
        ),
        services=service_views,
        analysis_runs=tuple(
            sorted(
                (analysis_run_view(run) for run in analysis_runs if owned_by(run, uid)),
                key=lambda view: view.name,
            )
        ),
        analysis_problems=_analysis_problems(rollout, templates),
    )


def _analysis_problems(rollout: Mapping[str, Any], templates: Templates | None
                       ) -> dict[str, str]:
    if templates is None:
        return {}
    try:
        spec = parse_spec(dict(_dict(rollout.get("spec"))))
    except (ValidationError, ValueError):
        return {}  # the planner reports the spec itself
    return analysis_problems(rollout, spec, templates)
