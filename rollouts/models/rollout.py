"""The Rollout API (`rollouts.dev/v1alpha1`), field-compatible with Argo Rollouts v1alpha1.

Spec models reject unknown fields; a Rollout that uses an Argo feature we do not support
fails validation naming that field instead of being half-applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from rollouts.models.base import (
    MAX_DURATION_SECONDS,
    MAX_INT32,
    ApiModel,
    Duration,
    IntOrPercent,
    StatusModel,
    parse_duration,
)
from rollouts.models.experiment_weight import experiment_weight_errors
from rollouts.models.pods import AntiAffinity
from rollouts.models.rollout_analysis import (
    AnalysisRunArgument,
    AnalysisRunHistory,
    RolloutAnalysis,
    RolloutAnalysisBackground,
)
from rollouts.models.step_kinds import NO_STEP_KIND as NO_STEP_KIND
from rollouts.models.step_kinds import STEP_ACTIONS as STEP_ACTIONS
from rollouts.models.step_kinds import STEP_KINDS as STEP_KINDS
from rollouts.models.step_kinds import TWO_STEP_ACTIONS as TWO_STEP_ACTIONS
from rollouts.models.step_kinds import step_kind_problem
from rollouts.models.template_service import TemplateService as TemplateService
from rollouts.models.traffic import (
    PingPongSpec,
    PodMetadata,
    RolloutTrafficRouting,
    SetHeaderRoute,
    SetMirrorRoute,
    not_run_yet,
    traffic_errors,
)

# The wire names live in rollouts.models.wire; re-exported for the modules that read them
# with the Rollout model.
from rollouts.models.wire import API_VERSION as API_VERSION
from rollouts.models.wire import GROUP as GROUP
from rollouts.models.wire import POD_TEMPLATE_HASH_LABEL as POD_TEMPLATE_HASH_LABEL
from rollouts.models.wire import REVISION_ANNOTATION as REVISION_ANNOTATION
from rollouts.models.wire import VERSION as VERSION
from rollouts.models.wire import Timestamp
from rollouts.models.workload import (
    PluginStep,
    ReplicaProgressThreshold,
    RollbackWindowSpec,
    StepPluginStatus,
    WorkloadRef,
)
from rollouts.models.workload_rules import ignored_field_errors

# --- selectors and references -------------------------------------------------------------


class LabelSelectorRequirement(ApiModel):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | None = None


class LabelSelector(ApiModel):
    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None


# --- canary ---------------------------------------------------------------------------------


class RolloutPause(ApiModel):
    """A pause step; without a duration it waits for `promote`."""

    duration: Duration | None = None

    def seconds(self) -> int | None:
        return None if self.duration is None else parse_duration(self.duration)


class SetCanaryScale(ApiModel):
    weight: int | None = Field(default=None, ge=0, le=100)
    replicas: int | None = Field(default=None, ge=0, le=MAX_INT32)
    match_traffic_weight: bool | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SetCanaryScale:
        given = [
            f
            for f in (self.weight, self.replicas, self.match_traffic_weight or None)
            if f is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "setCanaryScale needs exactly one of weight, replicas, matchTrafficWeight: true"
            )
        return self


# --- experiment step (the Experiment kind itself: models/experiment.py) --------------------


class ExperimentAnalysisRef(ApiModel):
    """One analysis of an Experiment (or of an experiment step): a named AnalysisRun made
    from one template."""

    name: str = Field(min_length=1)
    template_name: str = Field(min_length=1)
    cluster_scope: bool = False
    args: list[AnalysisRunArgument] | None = None
    # The Experiment does not complete before this run has (even past its duration).
    required_for_completion: bool = False


class RolloutExperimentTemplate(ApiModel):
    name: str = Field(min_length=1)
    spec_ref: Literal["stable", "canary"]
    replicas: int | None = Field(default=None, ge=0, le=MAX_INT32)
    # Traffic to this template's pods: needs a router that can send it (see semantic_errors).
    weight: int | None = Field(default=None, ge=0, le=100)
    metadata: PodMetadata | None = None
    selector: LabelSelector | None = None
    service: TemplateService | None = None


class RolloutExperimentStep(ApiModel):
    templates: list[RolloutExperimentTemplate] = Field(min_length=1)
    duration: Duration | None = None
    analyses: list[ExperimentAnalysisRef] | None = None
    dry_run: list[dict[str, str]] | None = None
    measurement_retention: list[dict[str, Any]] | None = None


class CanaryStep(ApiModel):
    # Out of maxTrafficWeight (100 unless set): checked in semantic_errors.
    set_weight: int | None = Field(default=None, ge=0)
    pause: RolloutPause | None = None
    set_canary_scale: SetCanaryScale | None = None
    analysis: RolloutAnalysis | None = None
    set_header_route: SetHeaderRoute | None = None
    set_mirror_route: SetMirrorRoute | None = None
    experiment: RolloutExperimentStep | None = None
    plugin: PluginStep | None = None

    @model_validator(mode="after")
    def _one_action(self) -> CanaryStep:
        problem = step_kind_problem(self.kinds())
        if problem is not None:
            raise ValueError(problem)
        return self

    def kinds(self) -> list[str]:
        """The step's fields that are set, by wire name, in STEP_KINDS order."""
        by_alias = CanaryStep.model_fields_by_alias()  # once, not once a kind
        return [kind for kind in STEP_KINDS if getattr(self, by_alias[kind]) is not None]

    @classmethod
    def model_fields_by_alias(cls) -> dict[str, str]:
        """Wire name -> attribute name of the step's fields."""
        return {(info.alias or name): name for name, info in cls.model_fields.items()}


class CanaryStrategy(ApiModel):
    canary_service: str | None = None
    stable_service: str | None = None
    steps: list[CanaryStep] | None = None
    max_surge: IntOrPercent = "25%"
    max_unavailable: IntOrPercent = "25%"
    analysis: RolloutAnalysisBackground | None = None
    scale_down_delay_seconds: int = Field(default=30, ge=0, le=MAX_DURATION_SECONDS)
    abort_scale_down_delay_seconds: int = Field(default=30, ge=0, le=MAX_DURATION_SECONDS)
    traffic_routing: RolloutTrafficRouting | None = None
    dynamic_stable_scale: bool = False
    scale_down_delay_revision_limit: int | None = Field(default=None, ge=0, le=MAX_INT32)
    min_pods_per_replica_set: int | None = Field(default=None, ge=1, le=MAX_INT32)
    canary_metadata: PodMetadata | None = None
    stable_metadata: PodMetadata | None = None
    ping_pong: PingPongSpec | None = None
    replica_progress_threshold: ReplicaProgressThreshold | None = None
    anti_affinity: AntiAffinity | None = None

    @model_validator(mode="after")
    def _services_differ(self) -> CanaryStrategy:
        if self.canary_service and self.canary_service == self.stable_service:
            raise ValueError("canaryService and stableService must be different Services")
        return self


# --- blue-green -----------------------------------------------------------------------------


class BlueGreenStrategy(ApiModel):
    active_service: str = Field(min_length=1)
    preview_service: str | None = None
    preview_replica_count: int | None = Field(default=None, ge=1, le=MAX_INT32)
    auto_promotion_enabled: bool = True
    auto_promotion_seconds: int | None = Field(default=None, ge=0, le=MAX_DURATION_SECONDS)
    max_unavailable: IntOrPercent = 0
    scale_down_delay_seconds: int = Field(default=30, ge=0, le=MAX_DURATION_SECONDS)
    abort_scale_down_delay_seconds: int = Field(default=30, ge=0, le=MAX_DURATION_SECONDS)
    pre_promotion_analysis: RolloutAnalysis | None = None
    post_promotion_analysis: RolloutAnalysis | None = None
    active_metadata: PodMetadata | None = None
    preview_metadata: PodMetadata | None = None
    anti_affinity: AntiAffinity | None = None

    @model_validator(mode="after")
    def _services_differ(self) -> BlueGreenStrategy:
        if self.preview_service and self.preview_service == self.active_service:
            raise ValueError("activeService and previewService must be different Services")
        return self


class RolloutStrategy(ApiModel):
    canary: CanaryStrategy | None = None
    blue_green: BlueGreenStrategy | None = None
    # Our extension (Flagger does it always): a Service the strategy names that does not
    # exist is created and owned by the Rollout (ports from the pod template's containers),
    # instead of being reported as InvalidSpec.
    create_services: bool = False

    @model_validator(mode="after")
    def _exactly_one(self) -> RolloutStrategy:
        if (self.canary is None) == (self.blue_green is None):
            raise ValueError("strategy needs exactly one of canary, blueGreen")
        return self


# --- the Rollout ----------------------------------------------------------------------------


class PodTemplate(ApiModel):
    """A Pod template; its spec is passed through to ReplicaSets untouched."""

    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: dict[str, Any]

    @field_validator("metadata")
    @classmethod
    def _labels_are_strings(cls, value: dict[str, Any]) -> dict[str, Any]:
        labels = value.get("labels") or {}
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise ValueError("metadata.labels must map strings to strings")
        return value


class RolloutSpec(ApiModel):
    replicas: int = Field(default=1, ge=0, le=MAX_INT32)
    # Both may come from spec.workloadRef instead (models/workload.py).
    selector: LabelSelector | None = None
    template: PodTemplate | None = None
    workload_ref: WorkloadRef | None = None
    rollback_window: RollbackWindowSpec | None = None
    min_ready_seconds: int = Field(default=0, ge=0, le=MAX_DURATION_SECONDS)
    revision_history_limit: int = Field(default=10, ge=0, le=MAX_INT32)
    paused: bool = False
    progress_deadline_seconds: int = Field(default=600, ge=1, le=MAX_DURATION_SECONDS)
    progress_deadline_abort: bool = False
    strategy: RolloutStrategy
    analysis: AnalysisRunHistory | None = None
    # Pods created before this moment are replaced, one at a time (rollouts/planner/restart.py).
    restart_at: Timestamp | None = None

    @model_validator(mode="after")
    def _selector_matches_template(self) -> RolloutSpec:
        if self.workload_ref is not None and self.template is not None:
            raise ValueError("template and workloadRef cannot be used together: the pod "
                             "template comes from the referenced Deployment")
        if self.template is None and self.workload_ref is None:
            raise ValueError("template is required (or workloadRef naming a Deployment)")
        if self.selector is None:
            if self.workload_ref is None:
                raise ValueError("selector is required")
            return self  # the Deployment's selector is used
        if self.template is None:
            if not self.selector.match_labels and not self.selector.match_expressions:
                raise ValueError("selector must not be empty")
            return self  # checked against the Deployment's template once it is read
        check_selector(self.selector, self.template)
        return self


def check_selector(selector: LabelSelector, template: PodTemplate) -> None:
    """Raise ValueError when the selector is empty or the template's labels miss it (the
    ReplicaSet would own no pods); shared by Rollouts and experiment templates."""
    labels: dict[str, str] = template.metadata.get("labels") or {}
    wanted = selector.match_labels or {}
    if not wanted and not selector.match_expressions:
        raise ValueError("selector must not be empty")
    for key, value in wanted.items():
        if labels.get(key) != value:
            raise ValueError(
                f"selector.matchLabels {key}={value} does not match template.metadata.labels"
            )


# --- status ---------------------------------------------------------------------------------

Phase = Literal["Healthy", "Progressing", "Paused", "Degraded"]


class Condition(StatusModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: Timestamp | None = None
    last_update_time: Timestamp | None = None


class PauseCondition(StatusModel):
    reason: str
    start_time: Timestamp


class WeightDestination(StatusModel):
    pod_template_hash: str | None = None
    weight: int = 0
    service_name: str | None = None  # set for `additional` (an experiment template's)


class TrafficWeights(StatusModel):
    canary: WeightDestination = WeightDestination()
    stable: WeightDestination = WeightDestination(weight=100)
    # Experiment templates' Services the routes send weight to (out of the stable's share).
    additional: list[WeightDestination] | None = None
    verified: bool | None = None


class RolloutAnalysisRunStatus(StatusModel):
    name: str
    status: str = ""
    message: str = ""


class CanaryStatus(StatusModel):
    # weights: what the traffic split is now (for replica-weighted canaries: the share of
    # available pods); desiredWeight: what the current step asks for.
    weights: TrafficWeights | None = None
    desired_weight: int | None = None
    current_step_analysis_run_status: RolloutAnalysisRunStatus | None = None
    current_background_analysis_run_status: RolloutAnalysisRunStatus | None = None
    # With pingPong: which of pingService / pongService is the stable one now (the other
    # is the canary's); they swap at each promotion.
    stable_ping_pong: Literal["ping", "pong"] | None = None
    step_plugin_statuses: list[StepPluginStatus] | None = None


class BlueGreenStatus(StatusModel):
    active_selector: str | None = None
    preview_selector: str | None = None
    scale_up_preview_check_point: bool | None = None
    pre_promotion_analysis_run_status: RolloutAnalysisRunStatus | None = None
    post_promotion_analysis_run_status: RolloutAnalysisRunStatus | None = None


class SelectorRepair(StatusModel):
    """One time the controller put a Service's selector back after another field manager
    took it away (rollouts.planner.selector_contest counts them)."""

    service: str
    manager: str = ""
    # The Service as observed when the hash key was found missing: one repair per change.
    resource_version: str = ""
    time: Timestamp


class NotificationRecord(StatusModel):
    """One notification owed to one subscribed service (rollouts.notifications).

    Written with the status change that triggered it, so a controller killed before
    delivering it delivers it after the restart, and one that delivered it never sends it
    again. Holds no secret: services are named, their URLs live in the controller's Secret.
    """

    id: str
    trigger: str
    service: str
    recipient: str = ""
    time: Timestamp
    state: Literal["Pending", "Sent", "Failed"] = "Pending"
    attempts: int = 0
    # The facts the payload is built from, as they were at the transition.
    revision: str | None = None
    step: int | None = None
    phase: str | None = None
    message: str = ""
    # Why the last attempt failed (an HTTP status or error class; never a URL).
    error: str | None = None


class RolloutStatus(StatusModel):
    phase: Phase | None = None
    message: str = ""
    observed_generation: int | None = None
    replicas: int = 0
    updated_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    current_pod_hash: str | None = None
    stable_rs: str | None = Field(default=None, alias="stableRS")
    current_step_index: int | None = None
    # The canary step for people: 1-based "N/M", "M/M" when done, "aborted at N/M" after an
    # abort (currentStepIndex is 0-based and reset by an abort, as in Argo Rollouts).
    step: str | None = None
    pause_conditions: list[PauseCondition] | None = None
    controller_pause: bool | None = None
    abort: bool | None = None
    aborted_at: Timestamp | None = None
    # Why the Rollout was aborted (operator request, progress deadline, failed analysis).
    abort_message: str | None = None
    # AnalysisRuns of earlier attempts (before an abort) are not looked at after a retry.
    analysis_attempt: int | None = None
    promote_full: bool | None = None
    # The desired revision the controller last saw; a new one resets abort and step progress.
    observed_pod_hash: str | None = None
    # When the current revision (or step) last made progress: the progress-deadline clock.
    progress_at: Timestamp | None = None
    # When the active revision became fully available (blue-green auto-promotion clock).
    preview_ready_at: Timestamp | None = None
    canary: CanaryStatus | None = None
    blue_green: BlueGreenStatus | None = None
    selector: str | None = None
    conditions: list[Condition] | None = None
    # Recent repairs of a Service selector another field manager took (the last 5 minutes).
    selector_repairs: list[SelectorRepair] | None = None
    # Notifications owed and recently delivered (kept by rollouts.notifications, not the
    # planner, which carries the field over unchanged).
    notifications: list[NotificationRecord] | None = None
    # The spec.restartAt whose restart is complete (or was cancelled by a new revision).
    restarted_at: Timestamp | None = None

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions or () if c.type == type_), None)

    def paused_for(self, reason: str) -> PauseCondition | None:
        return next((p for p in self.pause_conditions or () if p.reason == reason), None)


class ObjectMeta(StatusModel):
    """The metadata fields the controller reads; everything else passes through."""

    name: str
    namespace: str = "default"
    uid: str = ""
    generation: int = 1
    resource_version: str = ""
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    creation_timestamp: str | None = None


class Rollout(StatusModel):
    """A whole Rollout object as read from the API server.

    The spec is validated separately (`parse_spec`) so that a Rollout with an invalid spec is
    still readable and can be given an InvalidSpec condition instead of being dropped.
    """

    api_version: str = API_VERSION
    kind: Literal["Rollout"] = "Rollout"
    metadata: ObjectMeta
    spec: dict[str, Any] = Field(default_factory=dict)
    status: RolloutStatus = RolloutStatus()


def parse_spec(spec: Mapping[str, Any]) -> RolloutSpec:
    """Validate a Rollout spec; raises pydantic.ValidationError naming the field."""
    return RolloutSpec.model_validate(spec)


def rollout_manifest_errors(spec: Mapping[str, Any], *, refuse_not_run: bool = True
                            ) -> list[tuple[str, str]]:
    """(field path, message) for every problem in a spec; empty when valid.

    With `refuse_not_run` (the controller), fields this version accepts but does not run
    yet are problems too; lint passes False and shows them as warnings (`not_run_warnings`).
    """
    parsed = _parse(spec)
    if isinstance(parsed, list):
        return parsed
    return semantic_errors(parsed) + (not_run_warnings(parsed) if refuse_not_run else [])


def _parse(spec: Mapping[str, Any]) -> RolloutSpec | list[tuple[str, str]]:
    try:
        return parse_spec(spec)
    except ValidationError as exc:
        return [(_field_path("spec", err["loc"]), _message(err)) for err in exc.errors()]


def not_run_warnings(spec: RolloutSpec) -> list[tuple[str, str]]:
    canary = spec.strategy.canary
    return [] if canary is None else not_run_yet(canary)


# --- the parse-once boundary ------------------------------------------------------------------


@dataclass(frozen=True)
class ValidRollout:
    """A Rollout whose spec validated: what observe, plan and execute work from.

    `template` is the pod template exactly as written: the pod-template hash and the
    ReplicaSets are made from it, so that the same manifest always gives the same hash.
    """

    metadata: ObjectMeta
    spec: RolloutSpec
    template: Mapping[str, Any]
    status: RolloutStatus
    api_version: str = API_VERSION
    # What observe makes from this parse and the watched objects, kept for the next pass
    # (kube/analysis.py, kube/observe.py), each entry with what it was made from, checked
    # before reuse. `dataclasses.replace` passes it on (the same spec's next versions).
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class InvalidRollout:
    """A Rollout whose spec did not validate: (field path, message) for every problem."""

    metadata: ObjectMeta
    errors: tuple[tuple[str, str], ...]
    status: RolloutStatus


def parse_rollout(body: Mapping[str, Any] | Rollout) -> ValidRollout | InvalidRollout:
    """Validate a Rollout object once per reconcile pass.

    A status this controller cannot read (written by something else) is planned from
    scratch rather than making the Rollout unservable.
    """
    rollout = body if isinstance(body, Rollout) else read_rollout(body)
    parsed = _parse(rollout.spec)
    if isinstance(parsed, list):
        return InvalidRollout(rollout.metadata, tuple(parsed), rollout.status)
    errors = semantic_errors(parsed) + not_run_warnings(parsed)
    if errors:
        return InvalidRollout(rollout.metadata, tuple(errors), rollout.status)
    # With a workloadRef the template is the Deployment's (filled in by
    # rollouts.kube.workload before anything is planned).
    return ValidRollout(rollout.metadata, parsed, dict(rollout.spec.get("template") or {}),
                        rollout.status, rollout.api_version)


def read_rollout(body: Mapping[str, Any]) -> Rollout:
    """The Rollout object with its spec left raw; an unreadable status reads as empty."""
    try:
        return Rollout.model_validate(body)
    except ValidationError:
        return Rollout.model_validate({**body, "status": {}})


def semantic_errors(spec: RolloutSpec) -> list[tuple[str, str]]:
    """Rules that need more than one field (the traffic-routing ones: models/traffic.py)."""
    canary = spec.strategy.canary
    return (([] if canary is None else traffic_errors(canary) + experiment_weight_errors(canary))
            + ignored_field_errors(spec))


def _field_path(root: str, loc: tuple[int | str, ...]) -> str:
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("function-after", "function-before") or "[" in str(part):
            continue
        else:
            path += f".{part}"
    return path


def _message(err: Any) -> str:
    if err.get("type") == "extra_forbidden":
        return "unknown field (not supported by rollouts.dev/v1alpha1)"
    msg = str(err.get("msg", "invalid"))
    return msg.removeprefix("Value error, ")
