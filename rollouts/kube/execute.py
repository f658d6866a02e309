"""Carry out a Plan: idempotent writes, each guarded by what was observed.

Order: the plan's actions as given (the planner orders them for safety, e.g. traffic to
stable before a scale-down), then the Rollout status, then Events.

Every write that depends on an observation carries that object's resourceVersion, so a write
based on a stale view fails with ConflictError (409) instead of undoing someone else's
change; the caller observes and plans again. Nothing is retried here.

Fields written (invariant 5 — tell GitOps tools to ignore exactly these):
- Services named by the strategy: `spec.selector["rollouts-pod-template-hash"]` only.
- ReplicaSets the Rollout owns: created whole; later `spec.replicas` and the
  `rollouts.dev/scale-down-deadline` annotation; deleted when out of history.
- the Rollout: only `/status`, through the status subresource, replaced wholesale.
- core/v1 Events about the Rollout.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from rollouts.clock import SystemClock
from rollouts.errors import ConflictError, KubeError, NotFoundError
from rollouts.kube.analysis import Templates, run_manifest
from rollouts.kube.client import KubeClient
from rollouts.kube.observe import format_time
from rollouts.models.rollout import (
    API_VERSION,
    GROUP,
    POD_TEMPLATE_HASH_LABEL,
    SCALE_DOWN_DEADLINE_ANNOTATION,
    VERSION,
    RolloutSpec,
    RolloutStatus,
)
from rollouts.planner.manifests import replica_set_manifest
from rollouts.planner.types import (
    Action,
    CreateAnalysisRun,
    CreateReplicaSet,
    DeleteAnalysisRun,
    DeleteReplicaSet,
    Event,
    Observed,
    PinService,
    Plan,
    ReplicaSetView,
    ScaleReplicaSet,
    ServiceView,
    TerminateAnalysisRun,
)

REPORTING_COMPONENT = "rollouts-controller"
_MAX_EVENT_MESSAGE = 1024

log = logging.getLogger("rollouts.kube.execute")


def _meta(body: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = body.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def status_unchanged(old: Any, new: RolloutStatus) -> bool:
    """Whether writing `new` would change nothing the controller reads back."""
    if not isinstance(old, Mapping):
        return False
    if dict(old) == new.to_wire():
        return True
    try:
        return RolloutStatus.model_validate(dict(old)).to_wire() == new.to_wire()
    except ValueError:
        return False


def status_patch(resource_version: str, status: RolloutStatus) -> list[dict[str, Any]]:
    """JSON patch replacing the whole status, only if the Rollout is still as observed.

    `add` on an existing member replaces it (RFC 6902), so it works with or without a status;
    fields the new status leaves out are removed instead of lingering from older passes.
    """
    return [
        {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
        {"op": "add", "path": "/status", "value": status.to_wire()},
    ]


def _same_time(a: dt.datetime | None, b: dt.datetime | None) -> bool:
    """Equal at the annotation's (second) precision."""
    if a is None or b is None:
        return a is b
    return format_time(a) == format_time(b)


def scale_patch(action: ScaleReplicaSet, view: ReplicaSetView | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "annotations": {
            SCALE_DOWN_DEADLINE_ANNOTATION: (
                format_time(action.scale_down_at) if action.scale_down_at is not None else None
            )
        }
    }
    if view is not None and view.resource_version:
        metadata["resourceVersion"] = view.resource_version
    return {"metadata": metadata, "spec": {"replicas": action.replicas}}


def pin_patch(action: PinService, view: ServiceView | None) -> dict[str, Any]:
    """Only the one selector key: the rest of the Service belongs to its authors."""
    patch: dict[str, Any] = {"spec": {"selector": {POD_TEMPLATE_HASH_LABEL: action.pod_hash}}}
    if view is not None and view.resource_version:
        patch["metadata"] = {"resourceVersion": view.resource_version}
    return patch


def event_manifest(
    rollout_body: Mapping[str, Any], event: Event, now: dt.datetime
) -> dict[str, Any]:
    metadata = _meta(rollout_body)
    name = str(metadata.get("name") or "")
    namespace = str(metadata.get("namespace") or "default")
    stamp = format_time(now)
    message = event.message
    if len(message) > _MAX_EVENT_MESSAGE:
        message = message[: _MAX_EVENT_MESSAGE - 3] + "..."
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.{secrets.token_hex(8)}", "namespace": namespace},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": "Rollout",
            "name": name,
            "namespace": namespace,
            "uid": str(metadata.get("uid") or ""),
            "resourceVersion": str(metadata.get("resourceVersion") or ""),
        },
        "reason": event.reason,
        "message": message,
        "type": event.type,
        "source": {"component": REPORTING_COMPONENT},
        "reportingComponent": REPORTING_COMPONENT,
        "reportingInstance": "",
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


async def _run_action(
    client: KubeClient,
    rollout_body: Mapping[str, Any],
    spec: RolloutSpec | None,
    action: Action,
    observed: Observed,
    templates: Templates,
) -> bool:
    """Run one action; False when it was skipped as already done."""
    metadata = _meta(rollout_body)
    namespace = str(metadata.get("namespace") or "default")
    match action:
        case CreateReplicaSet():
            if spec is None:
                raise ValueError("cannot create a ReplicaSet for a Rollout with an invalid spec")
            rollout_spec = rollout_body.get("spec")
            template = rollout_spec.get("template") if isinstance(rollout_spec, Mapping) else None
            manifest = replica_set_manifest(
                rollout_name=str(metadata.get("name") or ""),
                rollout_uid=str(metadata.get("uid") or ""),
                namespace=namespace,
                spec=spec,
                template=dict(template) if isinstance(template, Mapping) else
                spec.template.model_dump(by_alias=True, exclude_none=True),
                pod_hash=action.pod_hash,
                replicas=action.replicas,
                revision=action.revision,
            )
            try:
                await client.create("apps", "v1", "replicasets", namespace, manifest)
            except ConflictError as exc:
                # AlreadyExists: a previous pass (or a previous controller) created it.
                if exc.reason and exc.reason != "AlreadyExists":
                    raise
                return False
            return True
        case ScaleReplicaSet():
            rs = next((v for v in observed.replica_sets if v.name == action.name), None)
            if (
                rs is not None
                and rs.spec_replicas == action.replicas
                and _same_time(rs.scale_down_at, action.scale_down_at)
            ):
                return False
            await client.patch_merge(
                "apps", "v1", "replicasets", namespace, action.name, scale_patch(action, rs)
            )
            return True
        case PinService():
            svc = observed.services.get(action.service)
            if svc is not None and svc.selector.get(POD_TEMPLATE_HASH_LABEL) == action.pod_hash:
                return False
            await client.patch_merge(
                "", "v1", "services", namespace, action.service, pin_patch(action, svc)
            )
            return True
        case DeleteReplicaSet():
            try:
                await client.delete("apps", "v1", "replicasets", namespace, action.name)
            except NotFoundError:
                return False
            return True
        case CreateAnalysisRun():
            status = rollout_body.get("status")
            stable = status.get("stableRS") if isinstance(status, Mapping) else None
            manifest = run_manifest(
                rollout_body, action.analysis, templates,
                kind=action.kind,  # type: ignore[arg-type]
                pod_hash=action.pod_hash, stable_hash=stable, step_index=action.step_index,
                attempt=action.attempt, field=action.field,
            )
            try:
                await client.create(GROUP, VERSION, "analysisruns", namespace, manifest)
            except ConflictError as exc:
                if exc.reason and exc.reason != "AlreadyExists":
                    raise
                return False
            return True
        case TerminateAnalysisRun():
            try:
                await client.patch_merge(GROUP, VERSION, "analysisruns", namespace, action.name,
                                         {"spec": {"terminate": True}})
            except NotFoundError:
                return False
            return True
        case DeleteAnalysisRun():
            try:
                await client.delete(GROUP, VERSION, "analysisruns", namespace, action.name)
            except NotFoundError:
                return False
            return True
    return False


async def write_status(
    client: KubeClient, rollout_body: Mapping[str, Any], status: RolloutStatus
) -> bool:
    """Replace the status if it changed; False when there was nothing to write.

    Raises ConflictError when the Rollout changed since it was observed (the JSON-patch
    `test` fails: 422 from the API server, reported here as a conflict).
    """
    if status_unchanged(rollout_body.get("status"), status):
        return False
    metadata = _meta(rollout_body)
    resource_version = str(metadata.get("resourceVersion") or "")
    try:
        await client.patch_json(
            GROUP,
            VERSION,
            "rollouts",
            str(metadata.get("namespace") or "default"),
            str(metadata.get("name") or ""),
            status_patch(resource_version, status),
            subresource="status",
        )
    except KubeError as exc:
        if exc.status == 422 and "test" in exc.message.lower():
            raise ConflictError(409, "Conflict", exc.message) from exc
        raise
    return True


async def post_events(
    client: KubeClient,
    rollout_body: Mapping[str, Any],
    events: tuple[Event, ...],
    now: dt.datetime,
) -> None:
    """Best effort: an Event that cannot be posted is logged, never fails the reconcile."""
    namespace = str(_meta(rollout_body).get("namespace") or "default")
    for event in events:
        try:
            await client.create("", "v1", "events", namespace,
                                event_manifest(rollout_body, event, now))
        except KubeError as exc:
            log.warning(
                "event not posted",
                extra={"rollout": f"{namespace}/{_meta(rollout_body).get('name')}",
                       "reason": event.reason, "error": str(exc)},
            )


async def execute(
    client: KubeClient,
    rollout_body: Mapping[str, Any],
    spec: RolloutSpec | None,
    plan: Plan,
    *,
    observed: Observed | None = None,
    now: dt.datetime | None = None,
    templates: Templates | None = None,
) -> bool:
    """Run the plan's actions in order, write the status, post the events.

    `observed` supplies the resourceVersions that guard scale and selector writes (and lets
    writes that would change nothing be skipped); `now` stamps the Events. Returns whether
    anything was written. ConflictError propagates: observe and plan again.

    The status is written before the Events so that a status write lost to a conflict does
    not leave Events behind that the next pass would post a second time.
    """
    observed = observed or Observed()
    wrote = False
    for action in plan.actions:
        wrote = await _run_action(client, rollout_body, spec, action, observed,
                                  templates or Templates()) or wrote
    wrote = await write_status(client, rollout_body, plan.status) or wrote
    if plan.events:
        await post_events(client, rollout_body, plan.events, now or SystemClock().now())
        wrote = True
    return wrote
