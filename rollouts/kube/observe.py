"""Turn API objects (plain dicts) into the planner's `Observed` view.

Pure functions: the operator feeds them from its watch-fed caches, the tests from literals.
Anything malformed in an object degrades to a neutral value (0 replicas, no deadline) rather
than raising: nothing a user can put in the cluster may crash the controller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from rollouts.kube.analysis import Templates, prepare_runs
from rollouts.kube.fieldowners import SELECTOR_FIELD, field_owner
from rollouts.kube.pod_views import owned_pods
from rollouts.kube.workload import workload_view
from rollouts.models.experiment import TRAFFIC_HOLD_ANNOTATION
from rollouts.models.rollout import RolloutSpec, ValidRollout
from rollouts.models.wire import (
    ANALYSIS_ATTEMPT_LABEL,
    ANALYSIS_KIND_LABEL,
    ANALYSIS_STEP_LABEL,
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    SCALE_DOWN_DEADLINE_ANNOTATION,
    controller_owner,
    parse_time,
)
from rollouts.planner.pod_metadata import (
    PODS_METADATA_ANNOTATION,
    TEMPLATE_METADATA_ANNOTATION,
    decode,
)
from rollouts.planner.routing import ObjectKey, Router, RouteSnapshot
from rollouts.planner.step_plugins import StepPlugin
from rollouts.planner.types import (
    AnalysisRunView,
    ExperimentTemplateView,
    ExperimentView,
    Observed,
    ReplicaSetView,
    ServiceView,
)


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
        template=_dict(spec.get("template")) or None,
        template_metadata=decode(annotations.get(TEMPLATE_METADATA_ANNOTATION)),
        pods_metadata=decode(annotations.get(PODS_METADATA_ANNOTATION)),
    )


def service_view(body: Mapping[str, Any]) -> ServiceView:
    metadata = _dict(body.get("metadata"))
    selector = _dict(_dict(body.get("spec")).get("selector"))
    return ServiceView(
        name=str(metadata.get("name") or ""),
        selector={str(k): str(v) for k, v in selector.items()},
        resource_version=str(metadata.get("resourceVersion") or ""),
        selector_manager=field_owner(body, SELECTOR_FIELD),
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


def experiment_view(body: Mapping[str, Any]) -> ExperimentView:
    run = analysis_run_view(body)  # the same labels and status fields
    metadata = _dict(body.get("metadata"))
    templates = tuple(
        ExperimentTemplateView(name=str(t.get("name") or ""),
                               service_name=t.get("serviceName") or None,
                               pod_hash=t.get("podTemplateHash") or None)
        for t in _dict(body.get("status")).get("templateStatuses") or ()
        if isinstance(t, Mapping))
    return ExperimentView(name=run.name, phase=run.phase, message=run.message,
                          pod_hash=run.pod_hash, step_index=run.step_index,
                          attempt=run.attempt,
                          terminating=bool(_dict(body.get("spec")).get("terminate")),
                          templates=templates,
                          traffic_held=TRAFFIC_HOLD_ANNOTATION in _dict(
                              metadata.get("annotations")),
                          resource_version=str(metadata.get("resourceVersion") or ""))


def experiment_services(bodies: Iterable[Mapping[str, Any]], rollout_uid: str
                        ) -> tuple[str, ...]:
    """The Services of the templates of the Rollout's Experiments, as their status names
    them: the destinations a deleted Rollout's routes may still send weight to. Read from
    the Experiments rather than from status.canary.weights.additional, which shows them
    only a pass after the routes were written."""
    return tuple(dict.fromkeys(
        t.service_name for body in bodies if owned_by(body, rollout_uid)
        for t in experiment_view(body).templates if t.service_name))


def named_services(spec: RolloutSpec) -> tuple[str, ...]:
    """Every Service the strategy names."""
    canary = spec.strategy.canary
    blue_green = spec.strategy.blue_green
    names = [
        canary.canary_service if canary else None,
        canary.stable_service if canary else None,
        *((canary.ping_pong.ping_service, canary.ping_pong.pong_service)
          if canary and canary.ping_pong else ()),
        blue_green.active_service if blue_green else None,
        blue_green.preview_service if blue_green else None,
    ]
    return tuple(dict.fromkeys(name for name in names if name))


def owned_replica_sets(rollout: ValidRollout, replica_sets: Iterable[Mapping[str, Any]]
                       ) -> tuple[ReplicaSetView, ...]:
    """The views of the ReplicaSets the Rollout controls, oldest revision first (read
    once per resourceVersion: `_kept_views`)."""
    uid = rollout.metadata.uid
    return tuple(sorted(_kept_views(rollout, "replica_sets", replica_set_view, (
        rs for rs in replica_sets if owned_by(rs, uid))),
        key=lambda view: (view.revision, view.name)))


View = TypeVar("View")


def _kept_views(rollout: ValidRollout, kind: str,
                view: Callable[[Mapping[str, Any]], View],
                bodies: Iterable[Mapping[str, Any]]) -> list[View]:
    """`view` of each body, kept with the parsed Rollout (`ValidRollout.memo`) by the
    body's (uid, name, resourceVersion) for the next pass: the watched ReplicaSets and
    Services rarely change between two passes, and reading one again (its annotations
    decoded, its managedFields searched) was a tenth of a pass (bench/pass_cost.py). Only
    the bodies of this pass are kept; a body without a resourceVersion is read anew."""
    kept: Mapping[tuple[str, str, str], View] = rollout.memo.get(kind) or {}
    fresh: dict[tuple[str, str, str], View] = {}
    views = []
    for body in bodies:
        metadata = _dict(body.get("metadata"))
        version = str(metadata.get("resourceVersion") or "")
        key = (str(metadata.get("uid") or ""), str(metadata.get("name") or ""), version)
        made = kept.get(key) if version else None
        if made is None:
            made = view(body)
        if version:
            fresh[key] = made
        views.append(made)
    rollout.memo[kind] = fresh
    return views


def owned_by(body: Mapping[str, Any], rollout_uid: str) -> bool:
    """Whether an object is controlled by the Rollout with this uid (a recreated Rollout of
    the same name does not adopt its predecessor's objects)."""
    owner = controller_owner(body)
    return owner is not None and (not rollout_uid or not owner[1] or owner[1] == rollout_uid)


def observe(
    rollout: ValidRollout,
    *,
    replica_sets: Iterable[Mapping[str, Any]],
    services: Mapping[str, Mapping[str, Any] | None],
    analysis_runs: Iterable[Mapping[str, Any]],
    templates: Templates,
    router: Router | None = None,
    route_bodies: Mapping[ObjectKey, Mapping[str, Any] | None] | None = None,
    experiments: Iterable[Mapping[str, Any]] = (),
    workload: Mapping[str, Any] | None = None,
    step_plugins: Mapping[str, StepPlugin] | None = None,
    pods: Iterable[Mapping[str, Any]] | None = None,
) -> Observed:
    """The planner's view of what a Rollout owns and names, from raw objects.

    `replica_sets` / `analysis_runs` may include objects of other owners; they are filtered
    by the controlling ownerReference's uid. `services` maps names to bodies (None = missing);
    a Service the strategy names but the mapping lacks is reported missing. Every analysis
    reference is resolved against `templates` into the run it starts; what cannot make a run
    is reported (the planner turns it into InvalidSpec naming the field). With a `router`
    (built from the canary's trafficRouting), every object it reads is looked up in
    `route_bodies` (missing: None). `pods`: the pods listed on this pass (None: not listed);
    those of ReplicaSets the Rollout does not own are dropped.
    """
    uid = rollout.metadata.uid
    service_views: dict[str, ServiceView | None] = {}
    named = [(name, services.get(name)) for name in named_services(rollout.spec)]
    found = iter(_kept_views(rollout, "services", service_view,
                             (body for _, body in named if body is not None)))
    for name, body in named:
        service_views[name] = next(found) if body is not None else None
    prepared, problems = prepare_runs(rollout, templates)
    routes: dict[ObjectKey, RouteSnapshot | None] = {}
    if router is not None:
        for key, body in (route_bodies or {}).items():
            routes[key] = RouteSnapshot(key, body) if body is not None else None
        for key in router.objects(routes):  # named but not read: missing
            routes.setdefault(key, None)
    owned_sets = owned_replica_sets(rollout, replica_sets)
    return Observed(
        replica_sets=owned_sets,
        services=service_views,
        analysis_runs=tuple(
            sorted(
                (analysis_run_view(run) for run in analysis_runs if owned_by(run, uid)),
                key=lambda view: view.name,
            )
        ),
        analysis_problems=problems,
        prepared_runs=prepared,
        router=router,
        routes=routes,
        experiments=tuple(sorted((experiment_view(e) for e in experiments if owned_by(e, uid)),
                                 key=lambda view: view.name)),
        workload=workload_view(workload),  # spec.workloadRef's Deployment
        step_plugins=step_plugins or {},
        pods=None if pods is None else owned_pods(pods, owned_sets),
    )
