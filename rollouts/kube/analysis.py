"""The Rollout's analysis references against the templates in the cluster.

Templates are validated once, when the watch delivers them (`parse_template`, called where
the operator indexes them), and kept as models. Each pass the observer resolves every
reference of the Rollout into the complete AnalysisRun it would start for the revision being
rolled out (`prepare_runs`); what cannot make a run becomes InvalidSpec naming the field.
The planner then starts a prepared run as it is; nothing is resolved at execute time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from rollouts.analysis.templates import build_analysis_run
from rollouts.errors import InvalidSpecError
from rollouts.models.analysis import (
    AnalysisTemplate,
    ClusterAnalysisTemplate,
    load_analysis_template,
    load_cluster_analysis_template,
)
from rollouts.models.rollout import ValidRollout
from rollouts.models.rollout_analysis import RolloutAnalysis
from rollouts.models.wire import ANALYSIS_ATTEMPT_LABEL
from rollouts.planner.analysis import analysis_references, run_slot
from rollouts.planner.types import AnalysisKind, PreparedRun


@dataclass(frozen=True)
class ParsedTemplate:
    """One (Cluster)AnalysisTemplate as validated when it was indexed: the model, or why it
    is unusable."""

    name: str
    cluster: bool
    template: AnalysisTemplate | ClusterAnalysisTemplate | None
    error: str = ""

    @property
    def key(self) -> str:
        kind = "ClusterAnalysisTemplate" if self.cluster else "AnalysisTemplate"
        return f"{kind}/{self.name}"


def parse_template(body: Mapping[str, Any], *, cluster: bool) -> ParsedTemplate:
    name = str((body.get("metadata") or {}).get("name") or "")
    load = load_cluster_analysis_template if cluster else load_analysis_template
    try:
        return ParsedTemplate(name, cluster, load(dict(body)))
    except (InvalidSpecError, ValidationError, ValueError) as exc:
        return ParsedTemplate(name, cluster, None, str(exc))


@dataclass(frozen=True)
class Templates:
    """The AnalysisTemplates of one namespace and every ClusterAnalysisTemplate, by name.

    A template that does not validate is kept out and its error kept, so a reference to it
    reports why it is unusable rather than "not found".
    """

    namespaced: Mapping[str, AnalysisTemplate] = field(default_factory=dict)
    cluster: Mapping[str, ClusterAnalysisTemplate] = field(default_factory=dict)
    broken: Mapping[str, str] = field(default_factory=dict)
    # The indexed entries these were made from (`from_parsed`); None when built directly.
    sources: tuple[ParsedTemplate, ...] | None = None

    @classmethod
    def from_parsed(cls, parsed: Sequence[ParsedTemplate]) -> Templates:
        good: dict[str, AnalysisTemplate] = {}
        good_cluster: dict[str, ClusterAnalysisTemplate] = {}
        broken: dict[str, str] = {}
        for entry in parsed:
            if isinstance(entry.template, ClusterAnalysisTemplate):
                good_cluster[entry.name] = entry.template
            elif isinstance(entry.template, AnalysisTemplate):
                good[entry.name] = entry.template
            else:
                broken[entry.key] = entry.error
        return cls(good, good_cluster, broken, tuple(parsed))


def rollout_body(rollout: ValidRollout) -> dict[str, Any]:
    """The Rollout as argument `valueFrom.fieldRef` paths read it: every path they support
    is under metadata (`analysis.templates._field_value`), so the spec is left out (dumping
    it on every pass was 1-2 % of the controller's CPU, docs/benchmarks.md)."""
    return {"apiVersion": rollout.api_version, "kind": "Rollout",
            "metadata": rollout.metadata.to_wire()}


_MEMO = "prepared_runs"
Prepared = tuple[dict[str, PreparedRun], dict[str, str]]
Reference = tuple[AnalysisKind, str, RolloutAnalysis, int | None]


def prepare_runs(rollout: ValidRollout, templates: Templates) -> Prepared:
    """(field -> the run the reference starts now, field -> why it cannot make one).

    Kept with the parsed Rollout (`ValidRollout.memo`) while what the runs are made from
    stays the same: a pass at the same version, or at the echo of our own status write
    (same spec, labels and annotations, same revision and attempt), with the same indexed
    templates, reuses them instead of resolving every reference again."""
    references = list(analysis_references(rollout.spec))
    if not references:  # most Rollouts: nothing to resolve, nothing to hash or dump
        return {}, {}
    inputs = _inputs(rollout, templates)
    kept = rollout.memo.get(_MEMO)
    if inputs is not None and kept is not None and _same(kept[0], inputs):
        prepared, problems = kept[1]
    else:
        prepared, problems = _prepare(rollout, references, templates)
        if inputs is not None:
            rollout.memo[_MEMO] = (inputs, (prepared, problems))
    return dict(prepared), dict(problems)


def _inputs(rollout: ValidRollout, templates: Templates
            ) -> tuple[tuple[object, ...], tuple[object, ...]] | None:
    """What the runs are made from: (objects compared by identity, values compared by
    equality). The spec and template are parsed once per version and passed on to the
    versions that echo it; each template is parsed once per watch event. None: templates
    not built from indexed entries, so nothing to tell a change by."""
    if templates.sources is None:
        return None
    metadata, status = rollout.metadata, rollout.status
    return ((rollout.spec, rollout.template, *templates.sources),
            (metadata.name, metadata.namespace, metadata.uid, metadata.labels,
             metadata.annotations, status.stable_rs, status.observed_pod_hash,
             status.analysis_attempt))


def _same(kept: tuple[tuple[object, ...], tuple[object, ...]],
          inputs: tuple[tuple[object, ...], tuple[object, ...]]) -> bool:
    (kept_objects, kept_values), (objects, values) = kept, inputs
    return (len(kept_objects) == len(objects)
            and all(a is b for a, b in zip(kept_objects, objects, strict=True))
            and kept_values == values)


def _prepare(rollout: ValidRollout, references: list[Reference],
             templates: Templates) -> Prepared:
    pod_hash, attempt = run_slot(rollout)
    body = rollout_body(rollout)
    prepared: dict[str, PreparedRun] = {}
    problems: dict[str, str] = {}
    # A first revision has no stable one yet and runs no analysis (its steps are skipped);
    # its references are still checked, with the revision standing in for the stable.
    stable_hash = rollout.status.stable_rs or pod_hash
    for kind, path, reference, step in references:
        try:
            manifest = build_analysis_run(
                body, reference, kind=kind, pod_hash=pod_hash,
                templates=templates.namespaced, cluster_templates=templates.cluster,
                stable_hash=stable_hash, latest_hash=pod_hash,
                step_index=step, attempt=attempt, field=path,
            )
        except InvalidSpecError as exc:
            message = exc.message
            for ref in reference.templates:
                scope = "ClusterAnalysisTemplate" if ref.cluster_scope else "AnalysisTemplate"
                why = templates.broken.get(f"{scope}/{ref.template_name}")
                if why:
                    message = f"{scope} {ref.template_name} is invalid: {why}"
            problems[exc.field] = message
            continue
        manifest["metadata"].setdefault("labels", {})[ANALYSIS_ATTEMPT_LABEL] = str(attempt)
        prepared[path] = PreparedRun(path, kind, step, pod_hash, attempt, manifest)
    return prepared, problems
