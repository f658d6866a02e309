"""plan_experiment(experiment, observed, now) -> ExperimentPlan: what one Experiment needs.

The life of an Experiment (Argo Rollouts' semantics):

1. Pending: a ReplicaSet per template is created and sized; when every template has all
   its replicas available, the Experiment is Running (`availableAt`). A template that is
   not available `progressDeadlineSeconds` after the start fails the Experiment.
2. Running: an AnalysisRun per `analyses[]` entry is started. A run that ends Failed, Error
   or Inconclusive ends the Experiment with that phase at once.
3. It ends when `duration` (counted from `availableAt`) has passed and every run marked
   `requiredForCompletion` has completed; without a duration, when those runs have
   completed; with neither, only when `spec.terminate` is set. `terminate` ends it at once.
4. Ended: the phase is the worst of the runs' (Successful when all went well), unfinished
   runs are terminated; `scaleDownDelaySeconds` (30 by default) after the end the
   ReplicaSets are scaled to zero and the template Services deleted.

Level-triggered and idempotent: each pass compares what exists with what the status says
and emits only the writes still missing; planning the same inputs twice writes nothing new.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from rollouts.experiments.manifests import (
    analysis_run_name,
    replica_set_manifest,
    replica_set_name,
    service_manifest,
    service_name,
    template_hash,
)
from rollouts.models.experiment import (
    COMPLETED_EXPERIMENT_PHASES,
    TRAFFIC_HOLD_ANNOTATION,
    ExperimentAnalysisRunStatus,
    ExperimentPhase,
    ExperimentStatus,
    InvalidExperiment,
    TemplatePhase,
    TemplateStatus,
    ValidExperiment,
)
from rollouts.models.wire import COMPLETED_RUN_PHASES, whole_seconds
from rollouts.planner.routing import ObjectKey, RouteWrite
from rollouts.planner.types import (
    Action,
    AnalysisRunView,
    ApplyRouteWrite,
    CreateAnalysisRun,
    CreateReplicaSet,
    ReplicaSetView,
    ScaleReplicaSet,
    TerminateAnalysisRun,
)

_HELD_RECHECK_SECONDS: Final = 60.0

# Worst last: the phase of an ended Experiment is the worst of its runs' phases.
_SEVERITY: Final = ("Successful", "Inconclusive", "Error", "Failed")


@dataclass(frozen=True)
class ExperimentObserved:
    """What an Experiment owns, as observed, and its analyses resolved by the kube layer."""

    replica_sets: tuple[ReplicaSetView, ...] = ()
    analysis_runs: tuple[AnalysisRunView, ...] = ()
    # analyses[].name -> the complete AnalysisRun manifest it starts.
    prepared_runs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # field path -> why an analysis cannot make a run (template missing, ...).
    problems: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExperimentPlan:
    actions: tuple[Action, ...]
    status: ExperimentStatus
    # Seconds until the plan should be made again though nothing changes (deadline, end).
    requeue_after: float | None = None


def plan_experiment(experiment: ValidExperiment | InvalidExperiment,
                    observed: ExperimentObserved, now: dt.datetime) -> ExperimentPlan:
    if isinstance(experiment, InvalidExperiment):
        return _invalid(experiment.status, experiment.metadata.generation, experiment.errors,
                        now)
    status = experiment.status
    if status.phase in COMPLETED_EXPERIMENT_PHASES:
        return _ended(experiment, observed, status.phase or "Successful", status.message,
                      now, finishing=False)
    problems = tuple(observed.problems.items())
    if problems:
        return _invalid(status, experiment.metadata.generation, problems, now)
    return _running(experiment, observed, now)


def _invalid(status: ExperimentStatus, generation: int,
             errors: tuple[tuple[str, str], ...], now: dt.datetime) -> ExperimentPlan:
    """Argo ends an Experiment with an invalid spec in Error; nothing is created."""
    message = "InvalidSpec: " + "; ".join(f"{path}: {why}" for path, why in errors)
    return ExperimentPlan((), status.model_copy(update={
        "phase": "Error", "message": message, "observed_generation": generation,
        "finished_at": status.finished_at or whole_seconds(now)}))


def _rs(observed: ExperimentObserved, name: str) -> ReplicaSetView | None:
    return next((r for r in observed.replica_sets if r.name == name), None)


def _run(observed: ExperimentObserved, name: str) -> AnalysisRunView | None:
    return next((r for r in observed.analysis_runs if r.name == name), None)


def _running(experiment: ValidExperiment, observed: ExperimentObserved,
             now: dt.datetime) -> ExperimentPlan:
    spec, status, name = experiment.spec, experiment.status, experiment.metadata.name
    # Exact instants (not whole seconds): a duration never ends before its full length.
    started = status.started_at or now
    deadline = started + dt.timedelta(seconds=spec.progress_deadline_seconds)
    actions: list[Action] = []
    templates: list[TemplateStatus] = []
    late: list[str] = []
    for template in spec.templates:
        rs_name = replica_set_name(name, template.name)
        rs = _rs(observed, rs_name)
        if rs is None:
            actions.append(CreateReplicaSet(
                rs_name, template_hash(name, template), template.replicas, 0,
                replica_set_manifest(experiment, template, template.replicas)))
        elif rs.spec_replicas != template.replicas:
            actions.append(ScaleReplicaSet(rs_name, template.replicas,
                                           resource_version=rs.resource_version))
        available = rs.available if rs is not None else 0
        ready = available >= template.replicas
        old = status.template(template.name)
        if template.service is not None and (old is None or old.service_name is None):
            actions.append(_service_write(experiment, template, "create"))
        phase: TemplatePhase = "Running" if ready else "Progressing"
        message = "" if ready else f"{available}/{template.replicas} available"
        if not ready and status.available_at is None and now >= deadline:
            phase, late = "Failed", [*late, template.name]
            message = (f"ReplicaSet {rs_name}: {available}/{template.replicas} available "
                       f"after progressDeadlineSeconds ({spec.progress_deadline_seconds}s)")
        templates.append(_template_status(template.name, phase, message, rs,
                                          template_hash(name, template),
                                          service_name(name, template)
                                          if template.service is not None else None,
                                          old, now))
    base = status.model_copy(update={
        "started_at": started, "template_statuses": templates,
        "observed_generation": experiment.metadata.generation})
    if late:
        return _ended(dataclasses.replace(experiment, status=base),
                      observed, "Failed", f"Templates not available in time: "
                      f"{', '.join(late)}", now, finishing=True)
    if spec.terminate:
        return _ended(dataclasses.replace(experiment, status=base),
                      observed, _worst(observed, experiment), "Terminated", now,
                      finishing=True)
    if status.available_at is None and any(t.status != "Running" for t in templates):
        waiting = ", ".join(f"{t.name} {t.message}" for t in templates if t.status != "Running")
        return ExperimentPlan(tuple(actions), base.model_copy(update={
            "phase": "Pending", "message": f"Waiting for templates: {waiting}"}),
            _seconds(deadline - now))
    available_at = status.available_at or now
    runs = _run_statuses(experiment, observed)
    for analysis in spec.analyses or ():
        run_name = analysis_run_name(name, analysis.name)
        if _run(observed, run_name) is None and analysis.name in observed.prepared_runs:
            actions.append(_create_run(observed.prepared_runs[analysis.name]))
    running = base.model_copy(update={"available_at": available_at, "analysis_runs": runs})
    unsuccessful = [r for r in runs if r.phase in COMPLETED_RUN_PHASES
                    and r.phase != "Successful"]
    if unsuccessful:
        worst = _worst(observed, experiment)
        detail = "; ".join(f"analysis {r.name} {r.phase}" + (f": {r.message}" if r.message
                                                              else "") for r in unsuccessful)
        return _ended(dataclasses.replace(experiment, status=running),
                      observed, worst, detail, now, finishing=True)
    required = [a for a in spec.analyses or () if a.required_for_completion]
    required_done = all(_phase_of(runs, a.name) in COMPLETED_RUN_PHASES for a in required)
    seconds = spec.duration_seconds()
    end = None if seconds is None else available_at + dt.timedelta(seconds=seconds)
    finished = ((end is not None and now >= end and required_done)
                or (end is None and required and required_done))
    if finished:
        return _ended(dataclasses.replace(experiment, status=running),
                      observed, "Successful",
                      "Duration passed" if end is not None else "Required analyses completed",
                      now, finishing=True)
    message = "Running"
    if end is not None and now < end:
        message = f"Running until {end.isoformat().replace('+00:00', 'Z')}"
    elif required:
        message = "Running until the required analyses complete"
    return ExperimentPlan(tuple(actions), running.model_copy(update={
        "phase": "Running", "message": message}),
        _seconds(end - now) if end is not None and now < end else None)


def _create_run(manifest: Mapping[str, Any]) -> CreateAnalysisRun:
    return CreateAnalysisRun(kind="step", pod_hash="", step_index=None, attempt=0,
                             field="spec.analyses", manifest=manifest)


def _service_write(experiment: ValidExperiment, template: Any, op: str) -> ApplyRouteWrite:
    key = ObjectKey("v1", "Service", service_name(experiment.metadata.name, template),
                    experiment.metadata.namespace)
    if op == "create":
        return ApplyRouteWrite(RouteWrite(key, "create",
                                          manifest=service_manifest(experiment, template)))
    return ApplyRouteWrite(RouteWrite(key, "delete"))


def _template_status(name: str, phase: TemplatePhase, message: str, rs: ReplicaSetView | None,
                     pod_hash: str, service: str | None, old: TemplateStatus | None,
                     now: dt.datetime) -> TemplateStatus:
    changed = old is None or old.status != phase
    return TemplateStatus(
        name=name, status=phase, message=message,
        replicas=rs.replicas if rs else 0, updated_replicas=rs.replicas if rs else 0,
        ready_replicas=rs.ready if rs else 0, available_replicas=rs.available if rs else 0,
        pod_template_hash=pod_hash, service_name=service,
        last_transition_time=whole_seconds(now) if changed or old is None
        else old.last_transition_time)


def _run_statuses(experiment: ValidExperiment, observed: ExperimentObserved
                  ) -> list[ExperimentAnalysisRunStatus]:
    out = []
    for analysis in experiment.spec.analyses or ():
        run_name = analysis_run_name(experiment.metadata.name, analysis.name)
        run = _run(observed, run_name)
        out.append(ExperimentAnalysisRunStatus(
            name=analysis.name, analysis_run=run_name,
            phase=run.phase if run is not None else "Pending",
            message=run.message if run is not None else ""))
    return out


def _phase_of(runs: list[ExperimentAnalysisRunStatus], name: str) -> str:
    return next((r.phase for r in runs if r.name == name), "Pending")


def _worst(observed: ExperimentObserved, experiment: ValidExperiment) -> ExperimentPhase:
    """The worst phase among the Experiment's completed runs (Successful: none went wrong)."""
    names = {analysis_run_name(experiment.metadata.name, a.name)
             for a in experiment.spec.analyses or ()}
    phases = [r.phase for r in observed.analysis_runs
              if r.name in names and r.phase in _SEVERITY]
    worst = max(phases, key=_SEVERITY.index, default="Successful")
    return worst  # type: ignore[return-value]


def _ended(experiment: ValidExperiment, observed: ExperimentObserved, phase: ExperimentPhase,
           message: str, now: dt.datetime, *, finishing: bool) -> ExperimentPlan:
    """The end state: unfinished runs terminated; once scaleDownDelaySeconds have passed
    since the end, the ReplicaSets at zero and the template Services deleted with them."""
    spec, status, name = experiment.spec, experiment.status, experiment.metadata.name
    ended_at = status.finished_at or whole_seconds(now)
    scale_down_at = ended_at + dt.timedelta(seconds=spec.scale_down_delay_seconds)
    # A Rollout's routes may still send the pods traffic: they stay until it lets go (its
    # write to the Experiment wakes this plan again).
    held = TRAFFIC_HOLD_ANNOTATION in (experiment.metadata.annotations or {})
    due = now >= scale_down_at and not held
    actions: list[Action] = []
    for rs in observed.replica_sets:
        if rs.spec_replicas != 0 and due:
            actions.append(ScaleReplicaSet(rs.name, 0, resource_version=rs.resource_version))
    for run in observed.analysis_runs:
        if run.phase not in COMPLETED_RUN_PHASES:
            actions.append(TerminateAnalysisRun(run.name))
    templates = []
    waiting = False
    for template in spec.templates:
        old = status.template(template.name)
        owned = _rs(observed, replica_set_name(name, template.name))
        up = owned is not None and owned.spec_replicas != 0
        waiting = waiting or (up and not due)
        # The Service goes with the pods: when they are scaled down (or at the end, when
        # there are none).
        if template.service is not None and ((due and up) or (finishing and not up)):
            actions.append(_service_write(experiment, template, "delete"))
        kept = old.service_name if old is not None and up and not due else None
        final: TemplatePhase = (old.status if old is not None and old.status in
                                ("Failed", "Error") else
                                "Successful" if phase == "Successful" else
                                "Error" if phase == "Error" else "Failed")
        templates.append(_template_status(
            template.name, final, old.message if old is not None and final == old.status
            else "", owned, template_hash(name, template), kept, old, now))
    ended = status.model_copy(update={
        "phase": phase, "message": message, "template_statuses": templates,
        "analysis_runs": _run_statuses(experiment, observed) if spec.analyses else None,
        "finished_at": ended_at,
        "observed_generation": experiment.metadata.generation})
    # Held: the Rollout's write letting go wakes this plan; until then it is not over (the
    # look every minute is a safety net only).
    requeue = (_HELD_RECHECK_SECONDS if held else _seconds(scale_down_at - now)) if waiting \
        else None
    return ExperimentPlan(tuple(actions), ended, requeue)


def _seconds(delta: dt.timedelta) -> float:
    return max(delta.total_seconds(), 0.0)
