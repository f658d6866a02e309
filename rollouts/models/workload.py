"""Rollout fields for teams coming from Argo Rollouts: workloadRef, rollbackWindow,
replicaProgressThreshold, step plugins (spec and status), and the rules that keep a field
from being accepted but ignored.

Field names and meanings are Argo Rollouts v1alpha1's.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from rollouts.models.base import MAX_INT32, ApiModel, StatusModel
from rollouts.models.wire import Timestamp

ScaleDown = Literal["never", "onsuccess", "progressively"]


class WorkloadRef(ApiModel):
    """spec.workloadRef: take the pod template (and the selector, when the Rollout has none)
    from an existing Deployment, and scale that Deployment down as the Rollout takes over.

    scaleDown: `never` leaves the Deployment alone; `onsuccess` scales it to 0 once the
    Rollout is Healthy; `progressively` gives it back one pod for every Rollout pod that is
    available (and its pods back if the Rollout loses them).
    """

    api_version: Literal["apps/v1"] = Field(
        description="Only apps/v1 Deployments can be referenced")
    kind: Literal["Deployment"] = Field(description="Only Deployments can be referenced")
    name: str = Field(min_length=1, max_length=253)
    scale_down: ScaleDown = "never"


class RollbackWindowSpec(ApiModel):
    """spec.rollbackWindow: going back to one of the last `revisions` revisions skips the
    steps (and their analysis) and promotes at once."""

    revisions: int = Field(ge=0, le=MAX_INT32)


class ReplicaProgressThreshold(ApiModel):
    """spec.strategy.canary.replicaProgressThreshold: how many of the canary pods a weight
    needs must be available before the weight is set (the step's scale-up counts as done).

    `Percent`: of the pods the weight needs; `Pod`: a number of pods (never more than the
    weight needs). Without it every needed pod must be available.
    """

    type: Literal["Pod", "Percent"]
    value: int = Field(ge=0, le=MAX_INT32)

    @model_validator(mode="after")
    def _percent_in_range(self) -> ReplicaProgressThreshold:
        if self.type == "Percent" and self.value > 100:
            raise ValueError("a Percent threshold is at most 100")
        return self


class PluginStep(ApiModel):
    """A canary step run by a step plugin: `name` is the plugin's registered name,
    `config` is given to it as written."""

    name: str = Field(min_length=1, max_length=253)
    config: dict[str, Any] | None = None


StepPluginPhase = Literal["Running", "Successful", "Failed", "Aborted", "Terminated"]


class StepPluginStatus(StatusModel):
    """status.canary.stepPluginStatuses[]: one plugin step of one revision."""

    index: int
    name: str
    phase: StepPluginPhase = "Running"
    message: str = ""
    # The revision the step ran for: a new revision starts afresh.
    pod_hash: str = ""
    executions: int = 0
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    # When the plugin asked to be run again (its requeueAfter).
    next_run_at: Timestamp | None = None
    # The plugin's own state, handed back to it on its next call.
    status: dict[str, Any] | None = None
