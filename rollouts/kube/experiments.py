"""One Experiment's pass: observe what it owns, plan (rollouts.experiments.plan), execute.

Thin: the AnalysisRuns of `spec.analyses` are resolved here against the templates in the
cluster (the planner cannot read templates), with `{{templates.NAME.podTemplateHash}}` in
argument values replaced by that template's pod-template hash (Argo's variable, so that a
comparison can scope its queries to the baseline's and the canary's pods). The Experiment's
`dryRun` and `measurementRetention` are passed into every AnalysisRun it starts.

Fields written: the Experiment's `/status` (replaced wholesale, guarded by the observed
resourceVersion); ReplicaSets, AnalysisRuns and Services it owns.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

from rollouts.analysis.templates import build_analysis_run
from rollouts.errors import InvalidSpecError
from rollouts.experiments.manifests import analysis_run_name, template_hashes
from rollouts.experiments.plan import ExperimentObserved, ExperimentPlan, plan_experiment
from rollouts.kube.analysis import Templates
from rollouts.kube.client import KubeClient
from rollouts.kube.execute import apply_action
from rollouts.kube.observe import analysis_run_view, replica_set_view
from rollouts.models.experiment import (
    ExperimentStatus,
    InvalidExperiment,
    ValidExperiment,
    parse_experiment,
)
from rollouts.models.rollout_analysis import (
    AnalysisRunArgument,
    AnalysisTemplateRef,
    RolloutAnalysis,
)
from rollouts.models.wire import (
    API_VERSION,
    EXPERIMENT_LABEL,
    GROUP,
    ROLLOUT_LABEL,
    VERSION,
    controller_owner,
    owner_reference,
)

_TEMPLATE_VARIABLE = re.compile(r"\{\{\s*templates\.([A-Za-z0-9_.\-]+?)\.podTemplateHash\s*\}\}")


def owned_by_experiment(body: Mapping[str, Any], experiment: ValidExperiment | InvalidExperiment
                        ) -> bool:
    owner = controller_owner(body, "Experiment")
    uid = experiment.metadata.uid
    return owner is not None and owner[0] == experiment.metadata.name and (
        not uid or not owner[1] or owner[1] == uid)


def _with_template_hashes(arg: AnalysisRunArgument, hashes: Mapping[str, str],
                          field: str) -> AnalysisRunArgument:
    if arg.value is None:
        return arg

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in hashes:
            raise InvalidSpecError(field, f"argument {arg.name!r}: no template named {name!r} "
                                   f"(templates: {', '.join(hashes)})")
        return hashes[name]

    return arg.model_copy(update={"value": _TEMPLATE_VARIABLE.sub(replace, arg.value)})


def prepare_experiment_runs(experiment: ValidExperiment, templates: Templates
                            ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(analysis name -> its AnalysisRun manifest, field -> why it cannot make one)."""
    spec, metadata = experiment.spec, experiment.metadata
    hashes = template_hashes(experiment)
    body = {"apiVersion": API_VERSION, "kind": "Experiment", "metadata": metadata.to_wire(),
            "spec": spec.to_wire()}
    prepared: dict[str, dict[str, Any]] = {}
    problems: dict[str, str] = {}
    for index, analysis in enumerate(spec.analyses or ()):
        field = f"spec.analyses[{index}]"
        try:
            args = [_with_template_hashes(a, hashes, f"{field}.args[{i}]")
                    for i, a in enumerate(analysis.args or ())]
            reference = RolloutAnalysis(
                templates=[AnalysisTemplateRef(template_name=analysis.template_name,
                                               cluster_scope=analysis.cluster_scope)],
                args=args or None, dry_run=spec.dry_run,
                measurement_retention=spec.measurement_retention)
            manifest = build_analysis_run(
                body, reference, kind="step", pod_hash="", templates=templates.namespaced,
                cluster_templates=templates.cluster, field=field)
        except InvalidSpecError as exc:
            problems[exc.field] = exc.message
            continue
        labels = {EXPERIMENT_LABEL: metadata.name}
        rollout = (metadata.labels or {}).get(ROLLOUT_LABEL)
        if rollout:  # made by a Rollout's experiment step: `rollouts get` finds it there too
            labels[ROLLOUT_LABEL] = rollout
        manifest["metadata"] = {
            "name": analysis_run_name(metadata.name, analysis.name),
            "namespace": metadata.namespace,
            "labels": labels,
            "ownerReferences": [owner_reference("Experiment", metadata.name, metadata.uid)],
        }
        prepared[analysis.name] = manifest
    return prepared, problems


def observe_experiment(experiment: ValidExperiment | InvalidExperiment, *,
                       replica_sets: Iterable[Mapping[str, Any]],
                       analysis_runs: Iterable[Mapping[str, Any]],
                       templates: Templates) -> ExperimentObserved:
    prepared: dict[str, dict[str, Any]] = {}
    problems: dict[str, str] = {}
    if isinstance(experiment, ValidExperiment):
        prepared, problems = prepare_experiment_runs(experiment, templates)
    return ExperimentObserved(
        replica_sets=tuple(sorted((replica_set_view(rs) for rs in replica_sets
                                   if owned_by_experiment(rs, experiment)),
                                  key=lambda view: view.name)),
        analysis_runs=tuple(sorted((analysis_run_view(run) for run in analysis_runs
                                    if owned_by_experiment(run, experiment)),
                                   key=lambda view: view.name)),
        prepared_runs=prepared,
        problems=problems,
    )


def experiment_status_unchanged(old: Any, new: ExperimentStatus) -> bool:
    if not isinstance(old, Mapping):
        return False
    try:
        return ExperimentStatus.model_validate(dict(old)).to_wire() == new.to_wire()
    except ValueError:
        return False


async def execute_experiment(client: KubeClient, body: Mapping[str, Any],
                             plan: ExperimentPlan) -> bool:
    """Apply the actions in order, then replace the status if it changed (409 when the
    Experiment changed since it was observed)."""
    metadata = body.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "default")
    wrote = False
    for action in plan.actions:
        wrote = await apply_action(client, namespace, action) or wrote
    if not experiment_status_unchanged(body.get("status"), plan.status):
        await client.replace(GROUP, VERSION, "experiments", namespace, str(metadata["name"]), {
            "apiVersion": API_VERSION, "kind": "Experiment",
            "metadata": {"name": metadata["name"], "namespace": namespace,
                         "resourceVersion": metadata.get("resourceVersion")},
            "status": plan.status.to_wire(),
        }, subresource="status")
        wrote = True
    return wrote


async def reconcile_experiment(client: KubeClient, body: Mapping[str, Any], *,
                               replica_sets: Iterable[Mapping[str, Any]],
                               analysis_runs: Iterable[Mapping[str, Any]],
                               templates: Templates, now: dt.datetime) -> ExperimentPlan:
    """One observe -> plan -> execute pass; the plan made (its requeue_after, its status)."""
    experiment = parse_experiment(body)
    observed = observe_experiment(experiment, replica_sets=replica_sets,
                                  analysis_runs=analysis_runs, templates=templates)
    plan = plan_experiment(experiment, observed, now)
    await execute_experiment(client, body, plan)
    return plan
