"""The Rollout's analysis references against the templates in the cluster.

Template lookup is I/O (the operator keeps them in watch-fed caches); turning a reference into
an AnalysisRun is pure (`rollouts.analysis.templates`). This module joins the two for the
observer (problems become InvalidSpec naming the field) and the executor (the run manifest).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from rollouts.analysis.templates import AnalysisKind, build_analysis_run
from rollouts.errors import InvalidSpecError
from rollouts.models.analysis import (
    AnalysisTemplate,
    ClusterAnalysisTemplate,
    load_analysis_template,
    load_cluster_analysis_template,
)
from rollouts.models.rollout import RolloutAnalysis, RolloutSpec

ANALYSIS_ATTEMPT_LABEL = "rollouts.dev/analysis-attempt"



@dataclass(frozen=True)
class Templates:
    """The AnalysisTemplates of one namespace and every ClusterAnalysisTemplate, by name.

    A template that does not validate is kept out and its error kept, so a reference to it
    reports why it is unusable rather than "not found".
    """

    namespaced: Mapping[str, AnalysisTemplate] = field(default_factory=dict)
    cluster: Mapping[str, ClusterAnalysisTemplate] = field(default_factory=dict)
    broken: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_bodies(cls, namespaced: Iterable[Mapping[str, Any]],
                    cluster: Iterable[Mapping[str, Any]]) -> Templates:
        good: dict[str, AnalysisTemplate] = {}
        good_cluster: dict[str, ClusterAnalysisTemplate] = {}
        broken: dict[str, str] = {}
        for body in namespaced:
            name = str((body.get("metadata") or {}).get("name") or "")
            try:
                good[name] = load_analysis_template(dict(body))
            except (InvalidSpecError, ValidationError, ValueError) as exc:
                broken[f"AnalysisTemplate/{name}"] = str(exc)
        for body in cluster:
            name = str((body.get("metadata") or {}).get("name") or "")
            try:
                good_cluster[name] = load_cluster_analysis_template(dict(body))
            except (InvalidSpecError, ValidationError, ValueError) as exc:
                broken[f"ClusterAnalysisTemplate/{name}"] = str(exc)
        return cls(good, good_cluster, broken)


def analysis_references(spec: RolloutSpec) -> Iterator[tuple[AnalysisKind, str, RolloutAnalysis,
                                                                int | None]]:
    """(kind, field path, reference, step index) for every analysis the strategy asks for."""
    canary = spec.strategy.canary
    if canary is not None:
        for i, step in enumerate(canary.steps or []):
            if step.analysis is not None:
                yield "step", f"spec.strategy.canary.steps[{i}].analysis", step.analysis, i
        if canary.analysis is not None:
            yield "background", "spec.strategy.canary.analysis", canary.analysis, None
    blue_green = spec.strategy.blue_green
    if blue_green is not None:
        if blue_green.pre_promotion_analysis is not None:
            yield ("prePromotion", "spec.strategy.blueGreen.prePromotionAnalysis",
                   blue_green.pre_promotion_analysis, None)
        if blue_green.post_promotion_analysis is not None:
            yield ("postPromotion", "spec.strategy.blueGreen.postPromotionAnalysis",
                   blue_green.post_promotion_analysis, None)


def analysis_problems(rollout_body: Mapping[str, Any], spec: RolloutSpec,
                      templates: Templates) -> dict[str, str]:
    """Field path -> message for every reference that cannot make an AnalysisRun."""
    problems: dict[str, str] = {}
    for kind, path, reference, step in analysis_references(spec):
        try:
            run_manifest(rollout_body, reference, templates, kind=kind, pod_hash="x",
                         stable_hash="x", step_index=step, attempt=0, field=path)
        except InvalidSpecError as exc:
            message = exc.message
            for ref in reference.templates:
                scope = "ClusterAnalysisTemplate" if ref.cluster_scope else "AnalysisTemplate"
                why = templates.broken.get(f"{scope}/{ref.template_name}")
                if why:
                    message = f"{scope} {ref.template_name} is invalid: {why}"
            problems[exc.field] = message
    return problems


def run_manifest(rollout_body: Mapping[str, Any], reference: RolloutAnalysis,
                 templates: Templates, *, kind: AnalysisKind, pod_hash: str,
                 stable_hash: str | None, step_index: int | None, attempt: int,
                 field: str) -> dict[str, Any]:
    """The AnalysisRun to create; raises InvalidSpecError naming the field."""
    manifest = build_analysis_run(
        rollout_body, reference, kind=kind, pod_hash=pod_hash,
        templates=templates.namespaced, cluster_templates=templates.cluster,
        stable_hash=stable_hash, latest_hash=pod_hash, step_index=step_index,
        attempt=attempt, field=field,
    )
    manifest["metadata"].setdefault("labels", {})[ANALYSIS_ATTEMPT_LABEL] = str(attempt)
    return manifest
