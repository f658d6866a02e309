"""The Rollout's side of analysis: which AnalysisTemplates a Rollout runs, with which
arguments, and how many finished AnalysisRuns it keeps (the templates and runs themselves
live in models/analysis.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rollouts.models.base import MAX_INT32, ApiModel
from rollouts.models.metric_rules import DryRun, MeasurementRetention


class FieldRef(ApiModel):
    field_path: str


class ArgumentValueFrom(ApiModel):
    pod_template_hash_value: Literal["Stable", "Latest"] | None = None
    field_ref: FieldRef | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ArgumentValueFrom:
        given = [f for f in (self.pod_template_hash_value, self.field_ref) if f is not None]
        if len(given) != 1:
            raise ValueError("valueFrom needs exactly one of podTemplateHashValue, fieldRef")
        return self


class AnalysisRunArgument(ApiModel):
    name: str
    value: str | None = None
    value_from: ArgumentValueFrom | None = None


class AnalysisTemplateRef(ApiModel):
    template_name: str
    cluster_scope: bool = False


class RolloutAnalysis(ApiModel):
    templates: list[AnalysisTemplateRef] = Field(min_length=1)
    args: list[AnalysisRunArgument] | None = None
    # Merged into the AnalysisRun's (after the templates' own, so the Rollout's win);
    # models/metric_rules.py says what a rule matches.
    dry_run: list[DryRun] | None = None
    measurement_retention: list[MeasurementRetention] | None = None


class RolloutAnalysisBackground(RolloutAnalysis):
    starting_step: int | None = Field(default=None, ge=0, le=MAX_INT32)


class AnalysisRunHistory(ApiModel):
    """spec.analysis: how many finished AnalysisRuns to keep."""

    successful_run_history_limit: int = Field(default=5, ge=0, le=MAX_INT32)
    unsuccessful_run_history_limit: int = Field(default=5, ge=0, le=MAX_INT32)
