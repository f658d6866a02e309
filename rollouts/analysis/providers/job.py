"""The Job metric provider (`provider.job`): a batch/v1 Job per measurement.

A Job takes longer than one reconcile pass, so a measurement spans several calls:

1. the first call creates the Job (name deterministic per run, metric and measurement
   ordinal; owned by the AnalysisRun, so deleting the run deletes its Jobs) and returns
   `Pending`: the runner records a Running measurement and looks again at its `resumeAt`;
2. later calls read the Job: still running -> `Pending` again; condition `Complete` ->
   `Decided("Successful")`; condition `Failed` -> `Decided("Failed")`. As in Argo, a Job's
   verdict is its own: success/failure conditions are not evaluated for job metrics.

Because the name is derived from the run's status (the measurement's ordinal), a controller
restarted between creating the Job and recording it finds the same Job again instead of
starting a second one; a Job of that name not controlled by this run is refused.

What the provider Protocol gains for this (prometheus/web are unchanged):
- `Pending` and `Decided`, two more outcomes a provider may return besides a value
  (`base.Measurement`) and a `ProviderError`;
- `MeasurementContext`, a `ProviderContext` that also names the run (`RunRef`), the
  measurement's slot and ordinal. The runner always passes one; other providers ignore it.
- `KubeApi`: the few client calls providers and the runner make, as a Protocol
  (`rollouts.kube.client.KubeClient` satisfies it; kube sits above analysis in the layers).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, Protocol, TypeAlias

import httpx

from rollouts.analysis.providers.base import (
    ErrorReason,
    MeasurementResult,
    ProviderContext,
    ProviderError,
    error_from_http_exception,
)
from rollouts.analysis.templates import dns_label
from rollouts.errors import ConflictError, KubeError, NotFoundError
from rollouts.models.analysis import API_VERSION, Metric

__all__ = [
    "DEFAULT_POLL_SECONDS",
    "RUN_NAME_ANNOTATION",
    "RUN_UID_LABEL",
    "Decided",
    "JobProvider",
    "KubeApi",
    "MeasurementContext",
    "Pending",
    "ProviderOutcome",
    "RunRef",
    "job_name",
    "job_outcome",
]

DEFAULT_POLL_SECONDS: Final = 10.0
RUN_UID_LABEL: Final = "rollouts.dev/analysis-run-uid"
RUN_NAME_ANNOTATION: Final = "rollouts.dev/analysis-run"
METRIC_NAME_ANNOTATION: Final = "rollouts.dev/metric-name"


class KubeApi(Protocol):
    """The Kubernetes calls the analysis layer makes (KubeClient's signatures)."""

    async def get(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]: ...

    async def create(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        body: Mapping[str, Any],
    ) -> dict[str, Any]: ...

    async def patch_merge(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        body: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]: ...

    async def patch_json(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        ops: Sequence[Mapping[str, Any]],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]: ...

    async def delete(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        *,
        propagation_policy: str | None = "Background",
        resource_version: str | None = None,
    ) -> dict[str, Any] | None: ...


# ---------------------------------------------------------------------------------------------
# Outcomes and context


@dataclass(frozen=True)
class Pending:
    """The measurement is under way (e.g. a Job still running): record it as Running and
    call the provider again after `poll_after` seconds (the runner's default if None)."""

    message: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    poll_after: float | None = None


@dataclass(frozen=True)
class Decided:
    """A measurement whose phase the provider decided itself (a Job's verdict)."""

    phase: Literal["Successful", "Failed"]
    value: str
    message: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


ProviderOutcome: TypeAlias = MeasurementResult | Pending | Decided


@dataclass(frozen=True)
class RunRef:
    """The AnalysisRun a measurement belongs to."""

    name: str
    namespace: str
    uid: str = ""


@dataclass(frozen=True)
class MeasurementContext(ProviderContext):
    """`ProviderContext` plus which run and which measurement this call is for."""

    run: RunRef | None = None
    slot: datetime | None = None  # the measurement's startedAt
    index: int = 1  # 1-based ordinal of the measurement for its metric

    def measurement_key(self, metric_name: str) -> str | None:
        """The same text for every attempt at one measurement (run, metric, ordinal), across
        controller restarts: what a receiver may dedupe a repeated request by. E.g.
        "2f6c...-uid/error-rate/3"; None without a run."""
        if self.run is None:
            return None
        run = self.run.uid or f"{self.run.namespace}/{self.run.name}"
        return f"{run}/{metric_name}/{self.index}"

    @classmethod
    def extend(
        cls, base: ProviderContext, run: RunRef, slot: datetime | None, index: int
    ) -> MeasurementContext:
        """`base` (credentials, headers) with the measurement's identity added."""
        inherited = {f.name: getattr(base, f.name) for f in dataclasses.fields(ProviderContext)}
        return cls(**inherited, run=run, slot=slot, index=index)


# ---------------------------------------------------------------------------------------------
# Jobs


def job_name(run_name: str, metric_name: str, index: int) -> str:
    """`{run}-{metric}-{index}` as a DNS label (Job names become pod labels: <= 63)."""
    suffix = f"-{index}"
    return dns_label(f"{run_name}-{metric_name}", 63 - len(suffix)) + suffix


def job_outcome(job: Mapping[str, Any]) -> Pending | Decided:
    """What a Job's status says about the measurement."""
    metadata = job.get("metadata") or {}
    name = str(metadata.get("name") or "")
    status = job.get("status") or {}
    info = {"job-name": name}
    for condition in status.get("conditions") or ():
        if not isinstance(condition, Mapping) or str(condition.get("status")) != "True":
            continue
        kind = condition.get("type")
        if kind == "Complete":
            return Decided("Successful", "Complete", f"job {name} completed", info)
        if kind == "Failed":
            why = ": ".join(
                str(part) for part in (condition.get("reason"), condition.get("message")) if part
            )
            return Decided(
                "Failed", "Failed", f"job {name} failed" + (f": {why}" if why else ""), info
            )
    counts = ", ".join(
        f"{key} {int(status.get(key) or 0)}" for key in ("active", "succeeded", "failed")
    )
    return Pending(f"job {name} is running ({counts})", info)


def _controller_uid(job: Mapping[str, Any]) -> str | None:
    for ref in (job.get("metadata") or {}).get("ownerReferences") or ():
        if isinstance(ref, Mapping) and ref.get("controller"):
            return str(ref.get("uid") or "")
    return None


def _api_error(exc: KubeError, what: str) -> ProviderError:
    reason = ErrorReason.INVALID_SPEC if exc.status in (400, 422) else ErrorReason.CONNECTION
    return ProviderError(reason, f"{what}: {exc}", status_code=exc.status)


class JobProvider:
    """Measures `provider.job` metrics by running a Job per measurement."""

    kind = "job"

    def __init__(self, client: KubeApi, *, poll_interval: float = DEFAULT_POLL_SECONDS) -> None:
        self._client = client
        self.poll_interval = poll_interval

    async def aclose(self) -> None:
        """Nothing to release: the Kubernetes client belongs to the caller."""

    def manifest(self, metric: Metric, run: RunRef, index: int) -> dict[str, Any]:
        """The Job for measurement `index` of `metric` in `run`."""
        spec = metric.provider.job
        if spec is None:
            raise ValueError(f"metric {metric.name!r} has no job provider")
        user = spec.metadata or {}
        labels = {str(k): str(v) for k, v in (user.get("labels") or {}).items()}
        annotations = {str(k): str(v) for k, v in (user.get("annotations") or {}).items()}
        if run.uid:
            labels[RUN_UID_LABEL] = run.uid
        annotations[RUN_NAME_ANNOTATION] = run.name
        annotations[METRIC_NAME_ANNOTATION] = metric.name
        metadata: dict[str, Any] = {
            "name": job_name(run.name, metric.name, index),
            "namespace": run.namespace,
            "labels": labels,
            "annotations": annotations,
        }
        if run.uid:
            metadata["ownerReferences"] = [
                {
                    "apiVersion": API_VERSION,
                    "kind": "AnalysisRun",
                    "name": run.name,
                    "uid": run.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec.spec}

    async def measure(
        self, metric: Metric, context: ProviderContext, now: datetime
    ) -> ProviderOutcome:
        if metric.provider.job is None:
            return ProviderError(
                ErrorReason.INVALID_SPEC, f"metric {metric.name!r} has no job provider"
            )
        if not isinstance(context, MeasurementContext) or context.run is None:
            return ProviderError(
                ErrorReason.INVALID_SPEC, "job metrics need the AnalysisRun in the context"
            )
        run = context.run
        body = self.manifest(metric, run, context.index)
        name = str(body["metadata"]["name"])
        try:
            job = await self._read(run.namespace, name)
            if job is None:
                try:
                    await self._client.create("batch", "v1", "jobs", run.namespace, body)
                except ConflictError:
                    # Created by a previous incarnation (or a racing pass): look at it.
                    job = await self._read(run.namespace, name)
                else:
                    return Pending(
                        f"job {name} created", {"job-name": name}, poll_after=self.poll_interval
                    )
        except KubeError as exc:
            return _api_error(exc, f"job {name}")
        except (httpx.HTTPError, TimeoutError) as exc:
            return error_from_http_exception(exc, f"the Kubernetes API (job {name})")
        if job is None:
            return ProviderError(ErrorReason.CONNECTION, f"job {name} vanished after creation")
        owner = _controller_uid(job)
        if run.uid and owner != run.uid:
            return ProviderError(
                ErrorReason.INVALID_SPEC,
                f"job {name} exists and is not controlled by AnalysisRun {run.name}",
            )
        outcome = job_outcome(job)
        if isinstance(outcome, Pending) and outcome.poll_after is None:
            outcome = dataclasses.replace(outcome, poll_after=self.poll_interval)
        return outcome

    async def terminate(self, metric: Metric, context: ProviderContext) -> None:
        """Delete the Job of an in-flight measurement (the run finished without it)."""
        if not isinstance(context, MeasurementContext) or context.run is None:
            return
        name = job_name(context.run.name, metric.name, context.index)
        with contextlib.suppress(NotFoundError):
            await self._client.delete("batch", "v1", "jobs", context.run.namespace, name)

    async def _read(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._client.get("batch", "v1", "jobs", namespace, name)
        except NotFoundError:
            return None
