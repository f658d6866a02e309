"""Carry out a Plan: apply its actions as given, then the status, then Events.

The executor decides nothing and builds nothing: every action carries what it writes
(complete manifests for creates, the observed resourceVersion for patches), so applying a
plan cannot fail half-way on a bad spec. Each apply is idempotent: a create that finds the
object already there, or a delete that finds it gone, is a no-op.

Every write that depends on an observation carries that object's resourceVersion, so a write
based on a stale view fails with ConflictError (409) instead of undoing someone else's
change; the caller observes and plans again. Nothing is retried here, and no error is told
apart by its message text.

Fields written (invariant 5 — tell GitOps tools to ignore exactly these):
- Services named by the strategy: `spec.selector`, the whole atomic map (the Rollout's
  selector labels plus `rollouts-pod-template-hash`), by server-side apply under the field
  manager `rollouts-controller`; nothing else of the Service.
- Services the Rollout owns (spec.strategy.createServices): created whole when missing.
- ReplicaSets the Rollout owns: created whole; later `spec.replicas` and the
  `rollouts.dev/scale-down-deadline` annotation; deleted when out of history.
- the Rollout: only `/status`, through the status subresource, replaced wholesale (PUT with
  the observed resourceVersion: 409 when the Rollout changed since).
- route objects of the traffic router (with trafficRouting): exactly the writes the router
  decided — see the router's module for the fields it owns.
- the Deployment of `spec.workloadRef`: `spec.replicas` only (scaleDown onsuccess /
  progressively; kube/workload.py).
- core/v1 Events about the Rollout: created, and `count` / `lastTimestamp` patched on a
  repeat (rollouts.planner.events).
- pods of its ReplicaSets: role labels / annotations, and evictions for a restart
  (rollouts/kube/pods.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from rollouts.errors import ConflictError, ForbiddenError, KubeError, NotFoundError
from rollouts.kube.client import KubeClient, kind_resource
from rollouts.kube.events import EventMemory
from rollouts.kube.pods import apply_pod_action
from rollouts.kube.workload import scale_patch as workload_scale_patch
from rollouts.models.rollout import ObjectMeta, RolloutStatus
from rollouts.models.wire import (
    API_VERSION,
    GROUP,
    POD_TEMPLATE_HASH_LABEL,
    SCALE_DOWN_DEADLINE_ANNOTATION,
    VERSION,
    format_time,
    whole_seconds,
)
from rollouts.planner.events import CountEvent, EventWrite, Recorded, decide_writes, key_of
from rollouts.planner.routing import RouteWrite
from rollouts.planner.selector_contest import FIELD_MANAGER
from rollouts.planner.types import (
    Action,
    ApplyRouteWrite,
    CreateAnalysisRun,
    CreateExperiment,
    CreateReplicaSet,
    CreateService,
    DeleteAnalysisRun,
    DeleteReplicaSet,
    Event,
    EvictPod,
    PatchPodMetadata,
    PatchReplicaSetPodMetadata,
    PinService,
    Plan,
    ScaleDeployment,
    ScaleReplicaSet,
    TerminateAnalysisRun,
    TerminateExperiment,
)

REPORTING_COMPONENT = "rollouts-controller"
_MAX_EVENT_MESSAGE = 1024

log = logging.getLogger("rollouts.kube.execute")


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


def status_body(metadata: ObjectMeta, status: RolloutStatus) -> dict[str, Any]:
    """The body of the status PUT: the whole status, guarded by the observed
    resourceVersion (the API server answers 409 Conflict when it is stale)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Rollout",
        "metadata": {"name": metadata.name, "namespace": metadata.namespace,
                     "resourceVersion": metadata.resource_version},
        "status": status.to_wire(),
    }


def scale_patch(action: ScaleReplicaSet) -> dict[str, Any]:
    deadline = action.scale_down_at
    metadata: dict[str, Any] = {
        "annotations": {
            SCALE_DOWN_DEADLINE_ANNOTATION: (
                format_time(whole_seconds(deadline)) if deadline is not None else None
            )
        }
    }
    if action.resource_version:
        metadata["resourceVersion"] = action.resource_version
    return {"metadata": metadata, "spec": {"replicas": action.replicas}}


def pin_manifest(namespace: str, action: PinService) -> dict[str, Any]:
    """The server-side apply of a Service's whole selector (an atomic map: whoever applies
    it owns all of it) under the controller's field manager; nothing else of the Service.
    Guarded by the observed resourceVersion."""
    metadata: dict[str, Any] = {"name": action.service, "namespace": namespace}
    if action.resource_version:
        metadata["resourceVersion"] = action.resource_version
    selector = {**action.selector, POD_TEMPLATE_HASH_LABEL: action.pod_hash}
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata,
            "spec": {"selector": selector}}


def event_manifest(metadata: ObjectMeta, event: Event, now: dt.datetime) -> dict[str, Any]:
    stamp = format_time(whole_seconds(now))
    message = event.message
    if len(message) > _MAX_EVENT_MESSAGE:
        message = message[: _MAX_EVENT_MESSAGE - 3] + "..."
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{metadata.name}.{secrets.token_hex(8)}",
                     "namespace": metadata.namespace},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": "Rollout",
            "name": metadata.name,
            "namespace": metadata.namespace,
            "uid": metadata.uid,
            "resourceVersion": metadata.resource_version,
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


async def _create(client: KubeClient, group: str, plural: str, namespace: str,
                  manifest: Mapping[str, Any]) -> bool:
    version = "v1" if group in ("apps", "") else VERSION
    try:
        await client.create(group, version, plural, namespace, manifest)
    except ConflictError as exc:
        # AlreadyExists: a previous pass (or a previous controller) created it.
        if exc.reason != "AlreadyExists":
            raise
        return False
    return True


async def _delete(client: KubeClient, group: str, plural: str, namespace: str,
                  name: str) -> bool:
    version = "v1" if group == "apps" else VERSION
    try:
        await client.delete(group, version, plural, namespace, name)
    except NotFoundError:
        return False
    return True


async def _terminate(client: KubeClient, plural: str, namespace: str, name: str) -> bool:
    """spec.terminate: true on a run or an Experiment; False when it is gone already."""
    try:
        await client.patch_merge(GROUP, VERSION, plural, namespace, name,
                                 {"spec": {"terminate": True}})
    except NotFoundError:
        return False
    return True


async def apply_route_write(client: KubeClient, write: RouteWrite) -> bool:
    """A router's write as it decided it: the patch is guarded by the resourceVersion it
    carries (409 when stale); a create finding the object, a delete not finding it, are
    no-ops."""
    group, version, plural = kind_resource(write.key.api_version, write.key.kind)
    namespace = write.key.namespace
    if write.op == "patch":
        await client.patch_json(group, version, plural, namespace, write.key.name,
                                write.patch)
        return True
    if write.op == "create":
        assert write.manifest is not None, "a create carries its manifest"
        try:
            await client.create(group, version, plural, namespace, write.manifest)
        except ConflictError as exc:
            if exc.reason != "AlreadyExists":
                raise
            return False
        return True
    try:
        await client.delete(group, version, plural, namespace, write.key.name)
    except NotFoundError:
        return False
    return True


async def apply_action(client: KubeClient, namespace: str, action: Action) -> bool:
    """Apply one action as given; False when it found the work already done."""
    match action:
        case CreateReplicaSet(manifest=manifest):
            return await _create(client, "apps", "replicasets", namespace, manifest)
        case ScaleReplicaSet():
            await client.patch_merge("apps", "v1", "replicasets", namespace, action.name,
                                     scale_patch(action))
            return True
        case CreateService(manifest=manifest):
            return await _create(client, "", "services", namespace, manifest)
        case PinService():
            # force: the selector is the controller's; taking it back from whoever took it
            # is the repair (rollouts.planner.selector_contest counts and reports them).
            await client.apply("", "v1", "services", namespace, action.service,
                               pin_manifest(namespace, action), field_manager=FIELD_MANAGER,
                               force=True)
            return True
        case DeleteReplicaSet(name=name):
            return await _delete(client, "apps", "replicasets", namespace, name)
        case CreateAnalysisRun(manifest=manifest):
            return await _create(client, GROUP, "analysisruns", namespace, manifest)
        case TerminateAnalysisRun(name=name):
            return await _terminate(client, "analysisruns", namespace, name)
        case DeleteAnalysisRun(name=name):
            return await _delete(client, GROUP, "analysisruns", namespace, name)
        case ApplyRouteWrite(write=write):
            return await apply_route_write(client, write)
        case CreateExperiment(manifest=manifest):
            return await _create(client, GROUP, "experiments", namespace, manifest)
        case TerminateExperiment(name=name):
            return await _terminate(client, "experiments", namespace, name)
        case ScaleDeployment(name=name):  # spec.workloadRef (kube/workload.py)
            await client.patch_merge("apps", "v1", "deployments", namespace, name,
                                     workload_scale_patch(action))
            return True
        case PatchReplicaSetPodMetadata() | PatchPodMetadata() | EvictPod():
            return await apply_pod_action(client, namespace, action)


async def write_status(client: KubeClient, metadata: ObjectMeta, old_status: Any,
                       status: RolloutStatus) -> bool:
    """Replace the status if it changed; False when there was nothing to write.

    Raises ConflictError (409) when the Rollout changed since it was observed.
    """
    if status_unchanged(old_status, status):
        return False
    await client.replace(GROUP, VERSION, "rollouts", metadata.namespace, metadata.name,
                         status_body(metadata, status), subresource="status")
    return True


async def _write_event(client: KubeClient, metadata: ObjectMeta, write: EventWrite,
                       now: dt.datetime) -> tuple[str, int]:
    """Create the Event, or count a repeat on the existing one (a new Event when that one
    has expired or may not be patched); the name and count written."""
    if isinstance(write, CountEvent):
        try:
            await client.patch_merge("", "v1", "events", metadata.namespace, write.name,
                                     {"count": write.count,
                                      "lastTimestamp": format_time(whole_seconds(now))})
            return write.name, write.count
        except (NotFoundError, ForbiddenError):
            pass
    manifest = event_manifest(metadata, write.event, now)
    await client.create("", "v1", "events", metadata.namespace, manifest)
    return str(manifest["metadata"]["name"]), 1


async def post_events(client: KubeClient, metadata: ObjectMeta, events: tuple[Event, ...],
                      now: dt.datetime, memory: EventMemory | None = None) -> None:
    """One Event per transition, repeats counted (`rollouts.planner.events`); `memory` is
    what this controller wrote before (None: nothing, as after a restart). Best effort: an
    Event that cannot be posted is logged, never fails the reconcile."""
    memory = memory if memory is not None else EventMemory()
    rollout, uid = (metadata.namespace, metadata.name), metadata.uid or ""
    for write in decide_writes(events, memory.of(rollout, uid), now):
        try:
            name, count = await _write_event(client, metadata, write, now)
        except KubeError as exc:
            log.warning(
                "event not posted",
                extra={"rollout": f"{metadata.namespace}/{metadata.name}",
                       "reason": write.event.reason, "error": str(exc)},
            )
            continue
        memory.remember(rollout, uid, key_of(write.event), Recorded(name, count, now))


async def execute(client: KubeClient, metadata: ObjectMeta, old_status: Any, plan: Plan,
                  now: dt.datetime, events: EventMemory | None = None) -> bool:
    """Apply the plan's actions in order, write the status, post the events.

    `metadata` is the Rollout's as observed (its resourceVersion guards the status write),
    `old_status` the status as observed (raw), `now` stamps the Events, `events` remembers
    the Events written before (see `post_events`). Returns whether anything was written.
    ConflictError propagates: observe and plan again.

    The status is written before the Events so that a status write lost to a conflict does
    not leave Events behind that the next pass would post a second time.
    """
    wrote = False
    for action in plan.actions:
        wrote = await apply_action(client, metadata.namespace, action) or wrote
    wrote = await write_status(client, metadata, old_status, plan.status) or wrote
    if plan.events:
        await post_events(client, metadata, plan.events, now, events)
        wrote = True
    return wrote
