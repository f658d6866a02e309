"""What `rollouts demo` looks at: a Rollout, its ReplicaSets, its Services' selectors and
its newest AnalysisRun at one moment (`take_snapshot`), read from the sandbox's API server."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

from rollouts.analysis.templates import ANALYSIS_KIND_LABEL, ANALYSIS_STEP_LABEL
from rollouts.models.rollout import POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION
from rollouts.sandbox.cluster import Sandbox, SandboxError


@dataclass(frozen=True)
class ReplicaSetRow:
    name: str
    pod_hash: str
    revision: int
    image: str
    desired: int
    available: int

    @property
    def tag(self) -> str:
        return self.image.rsplit(":", 1)[-1] if ":" in self.image else self.pod_hash


@dataclass(frozen=True)
class MeasurementRow:
    metric: str
    number: int  # 1-based, per metric
    phase: str
    value: str  # as the provider recorded it: a Prometheus vector, e.g. "[0.9957]"
    condition: str  # the run's (resolved) condition this phase came from, "" when none

    @property
    def number_value(self) -> float | None:
        """The value as one number, when it is one (a one-element vector)."""
        with contextlib.suppress(ValueError, TypeError):
            parsed = json.loads(self.value)
            if isinstance(parsed, list) and len(parsed) == 1:
                return float(parsed[0])
            return float(parsed)
        return None

    @property
    def short_value(self) -> str:
        number = self.number_value
        if number is not None:
            return f"{number:.3f}"
        return "no data" if self.value in ("", "[]") else self.value


@dataclass(frozen=True)
class AnalysisRow:
    """The newest AnalysisRun of the Rollout's current revision."""

    name: str
    kind: str  # step, background, ...
    phase: str
    message: str
    measurements: tuple[MeasurementRow, ...]
    step: int | None = None  # the index of the step it judges (step runs)

    @property
    def done(self) -> bool:
        return self.phase not in ("", "Pending", "Running")

    def first(self, phase: str) -> MeasurementRow | None:
        return next((m for m in self.measurements if m.phase == phase), None)


@dataclass(frozen=True)
class Snapshot:
    """The Rollout, its ReplicaSets and its Services' selectors at one moment."""

    name: str
    elapsed: float
    generation: int
    observed_generation: int | None
    phase: str
    message: str
    step: int | None
    steps: tuple[dict[str, Any], ...]
    desired_weight: int | None
    canary_weight: int | None
    stable_weight: int | None
    verified: bool | None
    current_hash: str | None
    stable_hash: str | None
    aborted: bool
    replica_sets: tuple[ReplicaSetRow, ...]
    services: tuple[tuple[str, str], ...]  # (service, pinned hash or "-")
    run: AnalysisRow | None = None
    # After an abort: the step it stopped at, when known (the controller resets the index).
    stopped_at: int | None = None

    @property
    def first_revision(self) -> bool:
        """Nothing was rolled out yet: the first revision skips its steps."""
        stable = self.rs(self.stable_hash)
        return stable is not None and all(r.revision >= stable.revision
                                          for r in self.replica_sets)

    @property
    def in_flight(self) -> bool:
        return self.current_hash is not None and self.current_hash != self.stable_hash

    @property
    def up_to_date(self) -> bool:
        return self.observed_generation == self.generation

    def rs(self, pod_hash: str | None) -> ReplicaSetRow | None:
        return next((r for r in self.replica_sets if r.pod_hash == pod_hash), None)

    def sizes(self, pod_hash: str | None) -> tuple[int, int]:
        row = self.rs(pod_hash)
        return (row.desired, row.available) if row else (0, 0)

    def service(self, name: str) -> str:
        return dict(self.services).get(name, "-")

    def role(self, row: ReplicaSetRow) -> str:
        if row.pod_hash == self.stable_hash:
            return "stable"
        if row.pod_hash == self.current_hash:
            return "aborted" if self.aborted else "canary"
        return "old"

    def transition_key(self) -> tuple[Any, ...]:
        return (self.phase, self.step, self.aborted, self.canary_weight, self.desired_weight,
                self.stable_hash, self.current_hash,
                tuple((r.pod_hash, r.desired, r.available) for r in self.replica_sets),
                self.services)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _condition(metric: dict[str, Any], phase: str) -> str:
    key = {"Successful": "successCondition", "Failed": "failureCondition"}.get(phase)
    return str(metric.get(key) or "") if key else ""


def take_analysis(sandbox: Sandbox, name: str, pod_hash: str | None) -> AnalysisRow | None:
    """The newest AnalysisRun the Rollout owns for `pod_hash`, if any."""
    runs = [run for run in sandbox.analysis_runs(name).values()
            if as_dict(as_dict(run.get("metadata")).get("labels")).get(POD_TEMPLATE_HASH_LABEL)
            == pod_hash]
    if pod_hash is None or not runs:
        return None
    run = max(runs, key=lambda r: (str(as_dict(r.get("metadata")).get("creationTimestamp")),
                                   str(as_dict(r.get("metadata")).get("name"))))
    meta, status = as_dict(run.get("metadata")), as_dict(run.get("status"))
    specs = {str(as_dict(m).get("name")): as_dict(m)
             for m in as_dict(run.get("spec")).get("metrics") or ()}
    rows = []
    for result in status.get("metricResults") or ():
        metric = str(as_dict(result).get("name"))
        for number, taken in enumerate(as_dict(result).get("measurements") or (), start=1):
            phase = str(as_dict(taken).get("phase") or "")
            rows.append(MeasurementRow(metric, number, phase,
                                       str(as_dict(taken).get("value") or ""),
                                       _condition(specs.get(metric, {}), phase)))
    step = str(as_dict(meta.get("labels")).get(ANALYSIS_STEP_LABEL) or "")
    return AnalysisRow(
        name=str(meta.get("name")),
        kind=str(as_dict(meta.get("labels")).get(ANALYSIS_KIND_LABEL) or "?"),
        phase=str(status.get("phase") or "Pending"),
        message=str(status.get("message") or ""),
        measurements=tuple(rows),
        step=int(step) if step.isdigit() else None,
    )


def take_snapshot(sandbox: Sandbox, name: str, started: float) -> Snapshot:
    body = sandbox.rollout(name)
    spec, status = as_dict(body.get("spec")), as_dict(body.get("status"))
    canary_spec = as_dict(as_dict(spec.get("strategy")).get("canary"))
    canary = as_dict(status.get("canary"))
    weights = canary.get("weights")
    rows = []
    for pod_hash, rs in sandbox.replica_sets(name).items():
        meta = as_dict(rs.get("metadata"))
        containers = as_dict(as_dict(as_dict(rs.get("spec")).get("template")).get("spec")).get(
            "containers") or [{}]
        revision = str(as_dict(meta.get("annotations")).get(REVISION_ANNOTATION) or "0")
        rows.append(ReplicaSetRow(
            name=str(meta.get("name")),
            pod_hash=pod_hash,
            revision=int(revision) if revision.isdigit() else 0,
            image=str(as_dict(containers[0]).get("image") or "?"),
            desired=int(as_dict(rs.get("spec")).get("replicas") or 0),
            available=int(as_dict(rs.get("status")).get("availableReplicas") or 0),
        ))
    run = take_analysis(sandbox, name, status.get("currentPodHash"))
    services = []
    for key in ("canaryService", "stableService"):
        service = canary_spec.get(key)
        if isinstance(service, str):
            try:
                pinned = sandbox.service_selector(service).get(POD_TEMPLATE_HASH_LABEL, "-")
            except SandboxError:
                pinned = "(missing)"
            services.append((service, pinned))
    return Snapshot(
        name=name,
        elapsed=time.monotonic() - started,
        generation=int(as_dict(body.get("metadata")).get("generation") or 0),
        observed_generation=status.get("observedGeneration"),
        phase=str(status.get("phase") or "Unknown"),
        message=str(status.get("message") or ""),
        step=status.get("currentStepIndex"),
        steps=tuple(as_dict(s) for s in canary_spec.get("steps") or ()),
        desired_weight=canary.get("desiredWeight"),
        canary_weight=as_dict(as_dict(weights).get("canary")).get("weight") if weights else None,
        stable_weight=as_dict(as_dict(weights).get("stable")).get("weight") if weights else None,
        verified=as_dict(weights).get("verified") if weights else None,
        current_hash=status.get("currentPodHash"),
        stable_hash=status.get("stableRS"),
        aborted=bool(status.get("abort")),
        replica_sets=tuple(sorted(rows, key=lambda r: -r.revision)),
        services=tuple(services),
        run=run,
        stopped_at=run.step if status.get("abort") and run is not None
        and run.step is not None and run.phase in ("Failed", "Error", "Inconclusive") else None,
    )
