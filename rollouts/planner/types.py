"""What the planner reads (`Observed`) and what it returns (`Plan`): plain frozen data."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from rollouts.models.rollout import RolloutStatus
from rollouts.planner.routing import ObjectKey, Router, RouteSnapshot, RouteWrite
from rollouts.planner.step_plugins import StepPlugin

AnalysisKind = Literal["step", "background", "prePromotion", "postPromotion"]


@dataclass(frozen=True)
class PodMetadataView:
    """Role labels and annotations (canaryMetadata, activeMetadata, ...), sorted pairs."""

    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PodView:
    """One pod of a ReplicaSet the Rollout owns (listed only when a pass needs pods)."""

    name: str
    uid: str
    pod_hash: str
    created: dt.datetime | None = None
    deleting: bool = False
    ready: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplicaSetView:
    """One ReplicaSet owned by the Rollout, as the ReplicaSet controller reports it."""

    name: str
    pod_hash: str
    revision: int
    spec_replicas: int
    replicas: int = 0  # status.replicas: pods that exist
    ready: int = 0
    available: int = 0
    scale_down_at: dt.datetime | None = None
    resource_version: str = ""
    # The pod template as written in the ReplicaSet (an experiment step copies the stable's).
    template: Mapping[str, Any] | None = None
    # Role metadata in the pod template, and the role metadata every pod was seen to carry
    # (rollouts/planner/pod_metadata.py keeps both in annotations of the ReplicaSet).
    template_metadata: PodMetadataView = PodMetadataView()
    pods_metadata: PodMetadataView = PodMetadataView()


@dataclass(frozen=True)
class ServiceView:
    name: str
    selector: Mapping[str, str]
    resource_version: str = ""
    # The field manager that owns spec.selector (from managedFields); "" when unknown.
    selector_manager: str = ""


@dataclass(frozen=True)
class WorkloadView:
    """The Deployment a Rollout's workloadRef names, as its controller reports it."""

    name: str
    spec_replicas: int
    available: int = 0
    resource_version: str = ""


@dataclass(frozen=True)
class AnalysisRunView:
    """An AnalysisRun owned by the Rollout (phase as the run reports it)."""

    name: str
    phase: str
    message: str = ""
    pod_hash: str = ""
    kind: str = ""  # "step", "background", "prePromotion", "postPromotion"
    step_index: int | None = None
    attempt: int = 0  # bumped by each abort, so a retry measures afresh
    created: str = ""  # creationTimestamp, orders runs for history limits


@dataclass(frozen=True)
class ExperimentTemplateView:
    """One template of an Experiment as its status tells: its Service and pods' hash."""

    name: str
    service_name: str | None = None
    pod_hash: str | None = None


@dataclass(frozen=True)
class ExperimentView:
    """An Experiment owned by the Rollout (made by an experiment step)."""

    name: str
    phase: str
    message: str = ""
    pod_hash: str = ""
    step_index: int | None = None
    attempt: int = 0
    terminating: bool = False  # spec.terminate already set
    templates: tuple[ExperimentTemplateView, ...] = ()
    # Its pods wait for the Rollout's routes to let go (models.experiment
    # TRAFFIC_HOLD_ANNOTATION); resource_version guards the write that lets go.
    traffic_held: bool = False
    resource_version: str = ""


@dataclass(frozen=True)
class PreparedRun:
    """The AnalysisRun one analysis reference starts for revision `pod_hash`, attempt
    `attempt`: resolved against the templates by the observer, complete and ready to create.
    """

    field: str  # where the reference sits in the spec
    kind: AnalysisKind
    step_index: int | None
    pod_hash: str
    attempt: int
    manifest: Mapping[str, Any]


@dataclass(frozen=True)
class Observed:
    """Everything the planner may look at besides the Rollout itself and the clock."""

    replica_sets: tuple[ReplicaSetView, ...] = ()
    # Services named by the strategy; None when the named Service does not exist.
    services: Mapping[str, ServiceView | None] = field(default_factory=dict)
    analysis_runs: tuple[AnalysisRunView, ...] = ()
    # Analysis references that cannot make a run (template missing, arg unresolved, ...):
    # field path -> message. Resolved by the observer, which can read templates.
    analysis_problems: Mapping[str, str] = field(default_factory=dict)
    # Every analysis reference that can make a run: field path -> the run it makes.
    prepared_runs: Mapping[str, PreparedRun] = field(default_factory=dict)
    # The traffic router of a canary with trafficRouting (None: the pods are the split),
    # and every object it reads, as observed (None: missing).
    router: Router | None = None
    routes: Mapping[ObjectKey, RouteSnapshot | None] = field(default_factory=dict)
    # Experiments the Rollout's experiment steps made.
    experiments: tuple[ExperimentView, ...] = ()
    # The Deployment of spec.workloadRef (None: no workloadRef).
    workload: WorkloadView | None = None
    # The step plugins this controller has (name -> plugin), for canary `plugin` steps.
    step_plugins: Mapping[str, StepPlugin] = field(default_factory=dict)
    # Pods of the owned ReplicaSets; None when this pass did not need them (not listed).
    pods: tuple[PodView, ...] | None = None


# --- actions: each is idempotent, the executor runs them in order ---------------------------


@dataclass(frozen=True)
class CreateReplicaSet:
    """Create one revision's ReplicaSet (`manifest` is complete, owned by the Rollout)."""

    name: str
    pod_hash: str
    replicas: int
    revision: int
    manifest: Mapping[str, Any]


@dataclass(frozen=True)
class ScaleReplicaSet:
    """Set spec.replicas and the scale-down deadline annotation (None removes it), guarded
    by the ReplicaSet's observed resourceVersion."""

    name: str
    replicas: int
    scale_down_at: dt.datetime | None = None
    resource_version: str = ""


@dataclass(frozen=True)
class DeleteReplicaSet:
    name: str


@dataclass(frozen=True)
class PinService:
    """Point a Service's selector at one revision (the pod-template-hash label), guarded by
    the Service's observed resourceVersion."""

    service: str
    pod_hash: str
    resource_version: str = ""
    # The whole selector to write (the controller owns all of it, written by server-side
    # apply): the Rollout's selector labels, the Service's other keys, and the hash.
    selector: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CreateService:
    """Create a Service the strategy names (spec.strategy.createServices), owned by the
    Rollout (`manifest` is complete)."""

    name: str
    manifest: Mapping[str, Any]


@dataclass(frozen=True)
class CreateAnalysisRun:
    """Start one analysis of one revision (`manifest` prepared by the observer)."""

    kind: AnalysisKind
    pod_hash: str
    step_index: int | None
    attempt: int
    field: str  # where the reference sits in the spec
    manifest: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])


@dataclass(frozen=True)
class TerminateAnalysisRun:
    """Stop a run that is no longer needed (spec.terminate: true); it ends Successful."""

    name: str


@dataclass(frozen=True)
class DeleteAnalysisRun:
    name: str


@dataclass(frozen=True)
class CreateExperiment:
    """Start an experiment step's Experiment (`manifest` complete, owned by the Rollout)."""

    manifest: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])


@dataclass(frozen=True)
class TerminateExperiment:
    """Stop an Experiment no step waits for any more (spec.terminate: true)."""

    name: str


@dataclass(frozen=True)
class ScaleDeployment:
    """Set the workloadRef Deployment's spec.replicas, guarded by its observed
    resourceVersion."""

    name: str
    replicas: int
    resource_version: str = ""


@dataclass(frozen=True)
class ApplyRouteWrite:
    """One write a traffic router decided (a guarded JSON patch, a create or a delete of a
    route object), applied exactly as given."""

    write: RouteWrite


@dataclass(frozen=True)
class PatchReplicaSetPodMetadata:
    """Set role labels / annotations in a ReplicaSet's pod template (None removes a key) and
    the ReplicaSet annotations that record them, guarded by its resourceVersion."""

    name: str
    labels: Mapping[str, str | None]
    annotations: Mapping[str, str | None]
    record: Mapping[str, str]
    resource_version: str = ""


@dataclass(frozen=True)
class PatchPodMetadata:
    """Change labels / annotations of a running pod in place (None removes a key)."""

    name: str
    labels: Mapping[str, str | None]
    annotations: Mapping[str, str | None]


@dataclass(frozen=True)
class EvictPod:
    """Evict one pod (policy/v1 Eviction, so PodDisruptionBudgets are honoured); `uid`
    makes sure a newer pod of the same name is never the one evicted."""

    name: str
    uid: str


Action = (
    CreateReplicaSet
    | ScaleReplicaSet
    | DeleteReplicaSet
    | PinService
    | CreateService
    | CreateAnalysisRun
    | TerminateAnalysisRun
    | DeleteAnalysisRun
    | ApplyRouteWrite
    | CreateExperiment
    | TerminateExperiment
    | ScaleDeployment
    | PatchReplicaSetPodMetadata
    | PatchPodMetadata
    | EvictPod
)


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    status: RolloutStatus
    events: tuple[Event, ...] = ()
    # Seconds until the plan should be made again even if nothing changes (a pause ending,
    # a scale-down deadline, the progress deadline); None: only when something changes.
    requeue_after: float | None = None
