"""The Experiment API (`rollouts.dev/v1alpha1`), field-compatible with Argo Rollouts' Experiment.

An Experiment runs one ReplicaSet per template for a while, with AnalysisRuns beside them,
and ends Successful, Failed, Error or Inconclusive. A Rollout's `experiment` canary step
creates one (baseline and canary pods of the same size, fresh, so that a comparison is fair);
an Experiment can also be applied on its own.

Fields not taken over from Argo (rejected as unknown): `analysisRunMetadata`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import Field, ValidationError, model_validator

from rollouts.models.base import (
    MAX_DURATION_SECONDS,
    MAX_INT32,
    ApiModel,
    Duration,
    StatusModel,
    parse_duration,
)
from rollouts.models.rollout import (
    Condition,
    ExperimentAnalysisRef,
    LabelSelector,
    ObjectMeta,
    PodTemplate,
    TemplateService,
    _field_path,
    _message,
    check_selector,
)
from rollouts.models.template_service import unmatched_ports
from rollouts.models.wire import API_VERSION, Timestamp

ExperimentPhase = Literal["Pending", "Running", "Successful", "Failed", "Error", "Inconclusive"]
TemplatePhase = Literal["Progressing", "Running", "Successful", "Failed", "Error"]

# Set by a Rollout on the Experiment of an experiment step whose templates get traffic
# (`weight`): the ended Experiment keeps its pods and Services until the Rollout removes it,
# which it does once its routes send them nothing (traffic off first, then pods).
TRAFFIC_HOLD_ANNOTATION: Final = "rollouts.dev/traffic-hold"

# Phases an Experiment never leaves.
COMPLETED_EXPERIMENT_PHASES: Final = frozenset({"Successful", "Failed", "Error", "Inconclusive"})


class ExperimentTemplate(ApiModel):
    """One pod template run as a ReplicaSet for the Experiment's lifetime."""

    name: str = Field(min_length=1, max_length=63)
    replicas: int = Field(default=1, ge=0, le=MAX_INT32)
    min_ready_seconds: int = Field(default=0, ge=0, le=MAX_DURATION_SECONDS)
    selector: LabelSelector
    template: PodTemplate
    service: TemplateService | None = None

    @model_validator(mode="after")
    def _selector_matches_template(self) -> ExperimentTemplate:
        check_selector(self.selector, self.template)
        if self.service is not None:
            for i in unmatched_ports(self.service, self.template.spec):
                target = (self.service.ports or [])[i].target_port
                raise ValueError(f"service.ports[{i}].targetPort {target} names no port of "
                                 "the template's containers")
        return self


class ExperimentSpec(ApiModel):
    templates: list[ExperimentTemplate] = Field(min_length=1)
    # From the moment every template is available; none: until the analyses required for
    # completion complete, or until terminated.
    duration: Duration | None = None
    progress_deadline_seconds: int = Field(default=600, ge=1, le=MAX_DURATION_SECONDS)
    analyses: list[ExperimentAnalysisRef] | None = None
    dry_run: list[dict[str, str]] | None = None
    measurement_retention: list[dict[str, Any]] | None = None
    terminate: bool = False
    # How long the templates' pods (and Services) stay after the Experiment ends, as in
    # Argo (30 s by default: time for clients and proxies to stop sending them requests).
    scale_down_delay_seconds: int = Field(default=30, ge=0, le=MAX_DURATION_SECONDS)

    @model_validator(mode="after")
    def _unique_names(self) -> ExperimentSpec:
        for what, names in (("template", [t.name for t in self.templates]),
                            ("analysis", [a.name for a in self.analyses or ()])):
            if len(set(names)) != len(names):
                raise ValueError(f"{what} names must be unique")
        return self

    def duration_seconds(self) -> int | None:
        return None if self.duration is None else parse_duration(self.duration)


class TemplateStatus(StatusModel):
    name: str
    status: TemplatePhase = "Progressing"
    message: str = ""
    replicas: int = 0
    updated_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    pod_template_hash: str | None = None
    service_name: str | None = None
    last_transition_time: Timestamp | None = None


class ExperimentAnalysisRunStatus(StatusModel):
    name: str
    analysis_run: str = ""
    phase: str = "Pending"
    message: str = ""


class ExperimentStatus(StatusModel):
    phase: ExperimentPhase | None = None
    message: str = ""
    observed_generation: int | None = None
    # When every template was first available: the duration is counted from here.
    available_at: Timestamp | None = None
    # When the templates were first asked for (the progress deadline is counted from here).
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    template_statuses: list[TemplateStatus] | None = None
    analysis_runs: list[ExperimentAnalysisRunStatus] | None = None
    conditions: list[Condition] | None = None

    def template(self, name: str) -> TemplateStatus | None:
        return next((t for t in self.template_statuses or () if t.name == name), None)


class Experiment(StatusModel):
    api_version: str = API_VERSION
    kind: Literal["Experiment"] = "Experiment"
    metadata: ObjectMeta
    spec: dict[str, Any] = Field(default_factory=dict)
    status: ExperimentStatus = ExperimentStatus()


@dataclass(frozen=True)
class ValidExperiment:
    """An Experiment whose spec validated; `templates` are the pod templates as written."""

    metadata: ObjectMeta
    spec: ExperimentSpec
    status: ExperimentStatus
    owner_references: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class InvalidExperiment:
    metadata: ObjectMeta
    errors: tuple[tuple[str, str], ...]
    status: ExperimentStatus


def experiment_manifest_errors(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field path, message) for every problem in an Experiment spec; empty when valid."""
    try:
        ExperimentSpec.model_validate(spec)
    except ValidationError as exc:
        return [(_field_path("spec", err["loc"]), _message(err)) for err in exc.errors()]
    return []


def parse_experiment(body: Mapping[str, Any]) -> ValidExperiment | InvalidExperiment:
    """Validate an Experiment object once per pass; an unreadable status reads as empty."""
    try:
        experiment = Experiment.model_validate(body)
    except ValidationError:
        experiment = Experiment.model_validate({**body, "status": {}})
    errors = experiment_manifest_errors(experiment.spec)
    if errors:
        return InvalidExperiment(experiment.metadata, tuple(errors), experiment.status)
    owners = (body.get("metadata") or {}).get("ownerReferences") or ()
    return ValidExperiment(experiment.metadata, ExperimentSpec.model_validate(experiment.spec),
                           experiment.status,
                           tuple(o for o in owners if isinstance(o, Mapping)))
