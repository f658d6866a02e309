"""Pod-level fields of a strategy: anti-affinity between revisions (Argo Rollouts v1alpha1
`antiAffinity`). Role metadata (`canaryMetadata`, `activeMetadata`, ...) is `PodMetadata` in
rollouts/models/traffic.py."""

from __future__ import annotations

from pydantic import Field, model_validator

from rollouts.models.base import ApiModel


class PreferredDuringSchedulingIgnoredDuringExecution(ApiModel):
    """Prefer nodes without the other revision's pods; `weight` ranks this preference among
    the pod's other preferred scheduling terms (1-100, as in Kubernetes)."""

    weight: int = Field(ge=1, le=100)


class RequiredDuringSchedulingIgnoredDuringExecution(ApiModel):
    """Never schedule next to the other revision's pods (an empty object turns it on)."""


class AntiAffinity(ApiModel):
    """Keep a new revision's pods off the nodes running the stable revision's pods, so that
    scaling the old revision down empties whole nodes (cluster autoscalers can then remove
    them instead of evicting and restarting the new pods)."""

    preferred_during_scheduling_ignored_during_execution: (
        PreferredDuringSchedulingIgnoredDuringExecution | None) = None
    required_during_scheduling_ignored_during_execution: (
        RequiredDuringSchedulingIgnoredDuringExecution | None) = None

    @model_validator(mode="after")
    def _exactly_one(self) -> AntiAffinity:
        given = [f for f in (self.preferred_during_scheduling_ignored_during_execution,
                             self.required_during_scheduling_ignored_during_execution)
                 if f is not None]
        if len(given) != 1:
            raise ValueError("antiAffinity needs exactly one of "
                             "preferredDuringSchedulingIgnoredDuringExecution, "
                             "requiredDuringSchedulingIgnoredDuringExecution")
        return self
