"""experiment: start the step's Experiment (owned by the Rollout) and follow its phase.

Successful advances; Failed or Error aborts (as a failed analysis does); Inconclusive pauses
until promoted or aborted; anything else waits. A step with neither a `duration` nor an
analysis `requiredForCompletion` would never end on its own: it advances once the
Experiment is Running, and the Experiment runs on beside the later steps until the Rollout
is promoted or aborted (then it is terminated, see `planner.analysis.terminate_runs`).

The Experiment's templates are the stable revision's pod template (`specRef: stable`, taken
from the stable ReplicaSet) or the Rollout's (`specRef: canary`), with the template's
`metadata` added; analysis arguments taken from `valueFrom.podTemplateHashValue` are
resolved here (the Experiment has no stable or latest revision of its own).

A template with a `weight` (under trafficRouting) gets a Service, and the routes send it
that share while the Experiment runs (`planner.experiment_traffic`); the Experiment is made
held, so that its pods outlive the routes' weight to them.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from typing import Any

from rollouts.models.experiment import TRAFFIC_HOLD_ANNOTATION
from rollouts.models.rollout import (
    CanaryStep,
    LabelSelector,
    RolloutExperimentStep,
    RolloutExperimentTemplate,
)
from rollouts.models.rollout_analysis import AnalysisRunArgument
from rollouts.models.wire import (
    ANALYSIS_ATTEMPT_LABEL,
    ANALYSIS_STEP_LABEL,
    API_VERSION,
    POD_TEMPLATE_HASH_LABEL,
    ROLLOUT_LABEL,
    rollout_owner_reference,
)
from rollouts.planner.analysis import attempt, pause_inconclusive
from rollouts.planner.context import Context, Draft
from rollouts.planner.steps import Abort, Advance, Outcome, Pause, Wait, Walk
from rollouts.planner.types import CreateExperiment, ExperimentView

# Room left in the Experiment's name for `-{template}` in its ReplicaSets' names.
_MAX_NAME = 48


def experiment_name(rollout: str, pod_hash: str, step_index: int, attempt_: int) -> str:
    """`{rollout}-{podhash}-{step}[-r{attempt}]`; only the Rollout's part is shortened."""
    suffix = f"-{pod_hash}-{step_index}" + (f"-r{attempt_}" if attempt_ else "")
    room = _MAX_NAME - len(suffix)
    if len(rollout) > room:
        digest = hashlib.sha256(rollout.encode()).hexdigest()[:6]
        rollout = f"{rollout[: max(room - 7, 1)].rstrip('-')}-{digest}"
    return rollout + suffix


def current_experiment(ctx: Context, step_index: int) -> ExperimentView | None:
    return next((e for e in ctx.observed.experiments
                 if e.pod_hash == ctx.desired_hash and e.step_index == step_index
                 and e.attempt == attempt(ctx)), None)


def handle(ctx: Context, draft: Draft, walk: Walk, step: CanaryStep) -> Outcome:
    assert step.experiment is not None
    found = current_experiment(ctx, walk.index)
    if found is None:
        manifest = experiment_manifest(ctx, walk, step.experiment)
        if isinstance(manifest, str):
            return Wait(f"{walk.label}: {manifest}")
        draft.actions.append(CreateExperiment(manifest))
        return Wait(f"{walk.label}: starting Experiment {manifest['metadata']['name']}")
    described = f"Experiment {found.name} {found.phase}" + (
        f": {found.message}" if found.message else "")
    if found.phase == "Successful":
        return Advance()
    if found.phase in ("Failed", "Error"):
        return Abort(f"Aborted: step {walk.index + 1} {described}")
    if found.phase == "Inconclusive":
        walk.pause_conditions[:] = pause_inconclusive(ctx, walk.pause_conditions)
        return Pause(f"{walk.label}: {described}; promote or abort")
    spec = step.experiment
    open_ended = spec.duration is None and not any(
        a.required_for_completion for a in spec.analyses or ())
    if open_ended and found.phase == "Running":
        return Advance()
    # However long it runs, the Experiment's own progress deadline covers its pods.
    draft.hold_deadline = True
    return Wait(f"{walk.label}: {described}")


def _pod_template(ctx: Context, walk: Walk, template: RolloutExperimentTemplate
                  ) -> dict[str, Any] | None:
    """The pod template a template refers to, with its extra metadata; None: not known."""
    if template.spec_ref == "canary":
        source: Mapping[str, Any] | None = ctx.rollout.template
    else:
        source = walk.stable.template
    if source is None:
        return None
    pod = copy.deepcopy(dict(source))
    metadata = pod.setdefault("metadata", {})
    labels = {k: v for k, v in (metadata.get("labels") or {}).items()
              if k != POD_TEMPLATE_HASH_LABEL}
    annotations = dict(metadata.get("annotations") or {})
    if template.metadata is not None:
        labels.update(template.metadata.labels or {})
        annotations.update(template.metadata.annotations or {})
    metadata["labels"] = labels
    if annotations:
        metadata["annotations"] = annotations
    return pod


def _resolved_args(ctx: Context, args: list[AnalysisRunArgument] | None
                   ) -> list[dict[str, Any]] | None:
    if not args:
        return None
    hashes = {"Stable": ctx.status.stable_rs, "Latest": ctx.desired_hash}
    out = []
    for arg in args:
        source = arg.value_from
        if source is not None and source.pod_template_hash_value is not None:
            out.append({"name": arg.name, "value": hashes[source.pod_template_hash_value]})
        else:
            out.append(arg.to_wire())
    return out


def experiment_manifest(ctx: Context, walk: Walk, step: RolloutExperimentStep
                        ) -> dict[str, Any] | str:
    """The Experiment of this step for the revision being rolled out (a str: why it
    cannot be made yet)."""
    rollout = ctx.rollout
    templates = []
    for template in step.templates:
        pod = _pod_template(ctx, walk, template)
        if pod is None:
            return f"the {template.spec_ref} pod template is not known yet"
        entry: dict[str, Any] = {
            "name": template.name,
            "replicas": 1 if template.replicas is None else template.replicas,
            "selector": (template.selector or ctx.spec.selector or LabelSelector()).to_wire(),
            "template": pod,
        }
        if template.service is not None:
            entry["service"] = template.service.to_wire()
        elif template.weight is not None:  # the router sends its weight to this Service
            entry["service"] = {}
        templates.append(entry)
    # scaleDownDelaySeconds 0: templates without a weight get no traffic from the Rollout's
    # routes, and those with one are held (TRAFFIC_HOLD_ANNOTATION) until the routes send
    # them nothing, so nothing needs draining when the step is over; Argo leaves its
    # default of 30 s, which a step cannot change.
    spec: dict[str, Any] = {"templates": templates,
                            "progressDeadlineSeconds": ctx.spec.progress_deadline_seconds,
                            "scaleDownDelaySeconds": 0}
    if step.duration is not None:
        spec["duration"] = step.duration
    analyses = []
    for analysis in step.analyses or ():
        wire = analysis.to_wire()
        args = _resolved_args(ctx, analysis.args)
        if args is not None:
            wire["args"] = args
        analyses.append(wire)
    if analyses:
        spec["analyses"] = analyses
    if step.dry_run:
        spec["dryRun"] = [dict(d) for d in step.dry_run]
    if step.measurement_retention:
        spec["measurementRetention"] = [dict(m) for m in step.measurement_retention]
    name = experiment_name(rollout.metadata.name, ctx.desired_hash, walk.index, attempt(ctx))
    return {
        "apiVersion": API_VERSION,
        "kind": "Experiment",
        "metadata": {
            "name": name,
            "namespace": rollout.metadata.namespace,
            "labels": {ROLLOUT_LABEL: rollout.metadata.name,
                       POD_TEMPLATE_HASH_LABEL: ctx.desired_hash,
                       ANALYSIS_STEP_LABEL: str(walk.index),
                       ANALYSIS_ATTEMPT_LABEL: str(attempt(ctx))},
            "ownerReferences": [rollout_owner_reference(rollout.metadata.name,
                                                        rollout.metadata.uid)],
            **({"annotations": {TRAFFIC_HOLD_ANNOTATION: "true"}}
               if any(t.weight is not None for t in step.templates) else {}),
        },
        "spec": spec,
    }
