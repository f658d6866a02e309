"""CEL rules (`x-kubernetes-validations`) that mirror the model validators an API server can
check at admission, keyed by model class in `CEL_RULES`; the CRD generator
(`rollouts.models.structural_schema`) puts each model's rules on its own schema node.

A rule on an object that sits in a list without `maxItems` is costed by the API server as if
the list held ~1M items, and the per-rule budget is 10M cost units: such rules use only
presence tests and boolean operators (no string comparisons, no list literals or macros), which
keeps them under ~9 units each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from pydantic import BaseModel

from rollouts.models import analysis, comparison, providers, rollout, rollout_analysis


@dataclass(frozen=True)
class CelRule:
    rule: str
    message: str

    def to_schema(self) -> dict[str, str]:
        return {"rule": self.rule, "message": self.message}


def has(field: str) -> str:
    return f"has(self.{field})"


def exactly_one(*present: str) -> str:
    """A CEL expression true when exactly one of the `present` conditions holds.

    Written as a chain of conditionals rather than a count over a list literal: the API server
    charges a list literal 10 units and each comprehension step more, and these rules sit on
    list items whose cost is multiplied by ~1M.
    """
    terms = [f"({p})" if " " in p else p for p in present]
    if len(terms) == 1:
        return terms[0]
    if len(terms) == 2:
        return f"{terms[0]} != {terms[1]}"
    rest = terms[1:]
    return f"{terms[0]} ? !({' || '.join(rest)}) : {exactly_one(*rest)}"


def _differ_when_set(first: str, second: str) -> str:
    # Mirrors the model validators: an empty first name does not count as set.
    return f"!{has(first)} || !{has(second)} || self.{first} == '' || self.{first} != self.{second}"


def _non_empty(field: str) -> str:
    return f"({has(field)} && size(self.{field}) > 0)"


CEL_RULES: Final[Mapping[type[BaseModel], tuple[CelRule, ...]]] = MappingProxyType(
    {
        # --- Rollout
        rollout.RolloutSpec: (
            CelRule(
                f"!{has('selector')} || " + " || ".join(
                    (_non_empty("selector.matchLabels"), _non_empty("selector.matchExpressions"))
                ),
                "selector must not be empty",
            ),
            # spec.workloadRef (models/workload.py): template and selector from a Deployment.
            CelRule(f"{has('selector')} || {has('workloadRef')}",
                    "selector is required (or workloadRef naming a Deployment)"),
            CelRule(f"!({has('template')} && {has('workloadRef')})",
                    "template and workloadRef cannot be used together: the pod template comes "
                    "from the referenced Deployment"),
            CelRule(f"{has('template')} || {has('workloadRef')}",
                    "template is required (or workloadRef naming a Deployment)"),
        ),
        rollout.RolloutStrategy: (
            CelRule(
                "has(self.canary) != has(self.blueGreen)",
                "strategy needs exactly one of canary, blueGreen",
            ),
        ),
        rollout.CanaryStrategy: (
            CelRule(
                _differ_when_set("canaryService", "stableService"),
                "canaryService and stableService must be different Services",
            ),
        ),
        rollout.CanaryStep: (
            CelRule(" || ".join(has(kind) for kind in rollout.STEP_KINDS), rollout.NO_STEP_KIND),
            CelRule(f"!({' || '.join(has(kind) for kind in rollout.STEP_ACTIONS)}) || "
                    f"({exactly_one(*(has(kind) for kind in rollout.STEP_ACTIONS))})",
                    rollout.TWO_STEP_ACTIONS),
        ),
        rollout.SetCanaryScale: (
            CelRule(
                exactly_one(
                    has("weight"),
                    has("replicas"),
                    f"{has('matchTrafficWeight')} && self.matchTrafficWeight",
                ),
                "setCanaryScale needs exactly one of weight, replicas, matchTrafficWeight: true",
            ),
        ),
        rollout.BlueGreenStrategy: (
            CelRule(
                _differ_when_set("previewService", "activeService"),
                "activeService and previewService must be different Services",
            ),
        ),
        rollout_analysis.ArgumentValueFrom: (
            CelRule(
                exactly_one(has("podTemplateHashValue"), has("fieldRef")),
                "valueFrom needs exactly one of podTemplateHashValue, fieldRef",
            ),
        ),
        # --- analysis
        analysis.ValueFrom: (
            CelRule(
                exactly_one(has("secretKeyRef"), has("fieldRef"), has("podTemplateHashValue")),
                "valueFrom needs exactly one of secretKeyRef, fieldRef, podTemplateHashValue",
            ),
        ),
        analysis.Argument: (
            CelRule(
                f"!({has('value')} && {has('valueFrom')})",
                "set value or valueFrom, not both",
            ),
        ),
        providers.PrometheusAuthentication: (
            CelRule(
                exactly_one(*(has(n) for n in providers.AUTHENTICATIONS)),
                f"authentication needs exactly one of {', '.join(providers.AUTHENTICATIONS)}",
            ),
        ),
        providers.WebMetric: (
            CelRule(
                f"!({has('body')} && {has('jsonBody')})",
                "web: set body or jsonBody, not both",
            ),
        ),
        analysis.MetricProvider: (
            CelRule(
                exactly_one(*(has(n) for n in analysis.SUPPORTED_PROVIDERS)),
                f"provider needs exactly one of {', '.join(analysis.SUPPORTED_PROVIDERS)}",
            ),
        ),
        comparison.CompareTolerance: (
            CelRule(
                exactly_one(has("relative"), has("absolute")),
                "tolerance needs exactly one of relative, absolute",
            ),
        ),
        analysis.AnalysisTemplateSpec: (
            CelRule(
                f"{_non_empty('metrics')} || {_non_empty('templates')}",
                "a template needs metrics or templates",
            ),
        ),
        analysis.AnalysisRunSpec: (
            CelRule(_non_empty("metrics"), "an AnalysisRun needs at least one metric"),
        ),
    }
)


def rules_for(model: type[BaseModel]) -> tuple[CelRule, ...]:
    """The CEL rules of a model class and of the models it derives from."""
    found: list[CelRule] = []
    for cls in model.__mro__:
        found.extend(CEL_RULES.get(cls, ()))
    return tuple(found)
