"""Reconcile one AnalysisRun: take the measurements that are due, write the status (I/O).

Thin on purpose: `run.step_run` decides what is due and `run.apply_measurements` folds the
results in; this module only reads Secrets, calls providers and writes `status`.

- Every provider failure, exception or timeout becomes an Error measurement with the
  reason (design invariant 3: never a success).
- Arguments backed by a Secret (`valueFrom.secretKeyRef`) and the credentials a metric's
  `authentication` names are read here, per pass, and never written anywhere: values found in
  a measurement's value, message or metadata (e.g. Prometheus' resolved query) are masked.
- The status is written through the `/status` subresource as a merge patch carrying the
  resourceVersion that was read, so a stale pass gets a 409 instead of overwriting newer
  measurements. Nothing is written when nothing changed (reconciling twice writes once).
- No kopf here: the operator calls `reconcile_analysis_run` and requeues after the seconds it
  returns.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

import httpx

from rollouts.analysis.assessment import error_measurement, is_completed, measure
from rollouts.analysis.comparison import judge
from rollouts.analysis.masking import MASK, mask
from rollouts.analysis.providers.base import (
    ComparisonSamples,
    ErrorReason,
    ProviderContext,
    ProviderError,
    profile_secret,
    required_secrets,
)
from rollouts.analysis.providers.base import (
    Measurement as ProviderMeasurement,
)
from rollouts.analysis.providers.cloudwatch import CloudWatchProvider
from rollouts.analysis.providers.datadog import DatadogProvider
from rollouts.analysis.providers.egress import EgressPolicy
from rollouts.analysis.providers.graphite import GraphiteProvider
from rollouts.analysis.providers.influxdb import InfluxdbProvider
from rollouts.analysis.providers.job import (
    DEFAULT_POLL_SECONDS,
    Decided,
    JobProvider,
    KubeApi,
    MeasurementContext,
    Pending,
    ProviderOutcome,
    RunRef,
)
from rollouts.analysis.providers.newrelic import NewRelicProvider
from rollouts.analysis.providers.prometheus import PrometheusProvider
from rollouts.analysis.providers.skywalking import SkyWalkingProvider
from rollouts.analysis.providers.wavefront import WavefrontProvider
from rollouts.analysis.providers.web import WebProvider
from rollouts.analysis.run import (
    DueMeasurement,
    apply_measurements,
    measurement_index,
    requeue_after,
    step_run,
)
from rollouts.analysis.templates import naming_args, placeholders, substitute_args
from rollouts.errors import ConflictError, InvalidSpecError, KubeError, NotFoundError
from rollouts.models.analysis import (
    AnalysisRun,
    AnalysisRunStatus,
    Measurement,
    Metric,
    MetricResult,
    load,
    load_analysis_run,
)
from rollouts.models.base import parse_duration
from rollouts.models.providers import PLAIN_PROFILE_KEYS

__all__ = [
    "CONFLICT_REQUEUE",
    "GROUP",
    "MASK",
    "PLURAL",
    "VERSION",
    "Provider",
    "ProviderConfig",
    "ProviderSet",
    "merge_patch_for",
    "reconcile_analysis_run",
    "to_measurement",
]

GROUP: Final = "rollouts.dev"
VERSION: Final = "v1alpha1"
PLURAL: Final = "analysisruns"
# What a pass returns after a 409: observe again at once (the caller applies its floor).
CONFLICT_REQUEUE: Final = 0.0

log = logging.getLogger("rollouts.analysis")


class Provider(Protocol):
    """What the runner calls. Prometheus/web (`MetricProviderProtocol`) fit as they are;
    the job provider may also answer `Pending` or `Decided`."""

    async def measure(
        self, metric: Metric, context: ProviderContext, now: datetime
    ) -> ProviderOutcome: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class ProviderConfig:
    """How to build the providers (from the operator's configuration)."""

    prometheus_address: str | None = None
    # Upper bound on one measurement (secret reads + provider call); a metric whose own
    # timeout is longer gets that plus a margin.
    measurement_timeout: float = 60.0
    job_poll_interval: float = DEFAULT_POLL_SECONDS
    # For tests: an httpx transport for the HTTP providers (e.g. httpx.MockTransport).
    transport: httpx.AsyncBaseTransport | None = None
    # Where the HTTP providers may connect (link-local and cloud metadata refused unless
    # allowed by `--allow-metric-address`), and how much they read.
    egress: EgressPolicy = field(default_factory=EgressPolicy)


@dataclass
class ProviderSet:
    """One instance of each provider, shared by every run; close it on shutdown."""

    prometheus: Provider
    web: Provider
    job: Provider
    measurement_timeout: float = 60.0
    poll_interval: float = DEFAULT_POLL_SECONDS
    # The vendor providers by their Argo name ("datadog", "newRelic", ...).
    others: dict[str, Provider] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: ProviderConfig, client: KubeApi) -> ProviderSet:
        return cls(
            prometheus=PrometheusProvider(
                default_address=config.prometheus_address,
                transport=config.transport,
                policy=config.egress,
            ),
            web=WebProvider(transport=config.transport, policy=config.egress),
            job=JobProvider(client, poll_interval=config.job_poll_interval),
            measurement_timeout=config.measurement_timeout,
            poll_interval=config.job_poll_interval,
            others={
                "datadog": DatadogProvider(transport=config.transport, policy=config.egress),
                "newRelic": NewRelicProvider(transport=config.transport, policy=config.egress),
                "graphite": GraphiteProvider(transport=config.transport, policy=config.egress),
                "influxdb": InfluxdbProvider(transport=config.transport, policy=config.egress),
                "wavefront": WavefrontProvider(transport=config.transport, policy=config.egress),
                "skywalking": SkyWalkingProvider(
                    transport=config.transport, policy=config.egress
                ),
                "cloudWatch": CloudWatchProvider(policy=config.egress),
            },
        )

    def for_metric(self, metric: Metric) -> Provider:
        kind = metric.provider.kind
        if kind == "prometheus":
            return self.prometheus
        if kind == "web":
            return self.web
        if kind == "job":
            return self.job
        if kind in self.others:
            return self.others[kind]
        raise ValueError(f"no provider for {kind!r}")

    def timeout_for(self, metric: Metric) -> float:
        own: float | None = None
        spec = metric.provider.spec
        seconds = getattr(spec, "timeout", None) or getattr(spec, "timeout_seconds", None)
        if isinstance(seconds, int):
            own = float(seconds)
        request_timeout = getattr(spec, "request_timeout", None)
        if isinstance(request_timeout, str) and "{{" not in request_timeout:
            own = float(parse_duration(request_timeout))
        return self.measurement_timeout if own is None else max(self.measurement_timeout, own + 5)

    async def aclose(self) -> None:
        for provider in (self.prometheus, self.web, self.job, *self.others.values()):
            try:
                await provider.aclose()
            except Exception:  # one provider failing to close must not keep the others open
                log.exception("closing a metric provider failed")


# ---------------------------------------------------------------------------------------------
# Secrets and arguments


class _Secrets:
    """Secret values read during one pass (each Secret fetched once)."""

    def __init__(self, client: KubeApi, namespace: str) -> None:
        self._client = client
        self._namespace = namespace
        self._data: dict[str, Mapping[str, Any]] = {}
        self.seen: set[str] = set()  # every value handed out, to mask in results

    async def value(self, name: str, key: str, *, mask: bool = True) -> str:
        await self.fetch(name)
        data = self._data[name]
        encoded = data.get(key)
        if encoded is None:
            raise ProviderError(ErrorReason.CREDENTIALS, f"secret {name!r} has no key {key!r}")
        try:
            text = base64.b64decode(str(encoded), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ProviderError(
                ErrorReason.CREDENTIALS, f"secret {name!r} key {key!r} is not base64 UTF-8 text"
            ) from None
        if text and mask:
            self.seen.add(text)
        return text

    async def all(self, name: str) -> dict[str, str]:
        """Every key of Secret `name` (a vendor provider's profile); each value is masked
        but those of PLAIN_PROFILE_KEYS (addresses, regions, org: masking a value like "us"
        everywhere would garble every message and hide nothing)."""
        await self.fetch(name)
        return {
            key: await self.value(name, key, mask=key not in PLAIN_PROFILE_KEYS)
            for key in self._data.get(name, {})
        }

    async def fetch(self, name: str) -> None:
        """Fetch Secret `name` into the cache; ProviderError if it does not exist."""
        if name not in self._data:
            try:
                secret = await self._client.get("", "v1", "secrets", self._namespace, name)
            except NotFoundError:
                raise ProviderError(ErrorReason.CREDENTIALS, f"secret {name!r} not found") from None
            self._data[name] = secret.get("data") or {}


async def _resolve_metric(run: AnalysisRun, metric: Metric, secrets: _Secrets) -> Metric:
    """`metric` with the run's remaining `{{args.x}}` substituted (Secret-backed args read
    now); ProviderError naming what cannot be resolved."""
    wire = metric.to_wire()
    wanted = placeholders(wire)
    if not wanted:
        return metric
    values: dict[str, str] = {}
    args = {a.name: a for a in run.spec.args or ()}
    for name in sorted(wanted):
        arg = args.get(name)
        if arg is None:
            continue
        if arg.value is not None:
            values[name] = arg.value
        elif arg.value_from is not None and arg.value_from.secret_key_ref is not None:
            ref = arg.value_from.secret_key_ref
            values[name] = await secrets.value(ref.name, ref.key)
    left: list[str] = []
    resolved = substitute_args(wire, values, on_missing=left.append)
    if left:
        raise ProviderError(
            ErrorReason.INVALID_SPEC,
            "unresolved argument(s) " + ", ".join(f"{{{{args.{n}}}}}" for n in sorted(set(left))),
        )
    try:
        return load(Metric, resolved)
    except InvalidSpecError as exc:
        # Secret values quoted in the message are masked with the rest of the record.
        raise ProviderError(
            ErrorReason.INVALID_SPEC,
            f"metric {metric.name!r} is invalid after argument substitution: {exc.field}: "
            + naming_args(wire, exc.field, exc.message),
        ) from None


def _mask(text: str | None, secrets: set[str]) -> str | None:
    return None if text is None else mask(text, secrets)


def _masked(measurement: Measurement, secrets: set[str]) -> Measurement:
    if not secrets:
        return measurement
    metadata = (
        {k: _mask(v, secrets) or "" for k, v in measurement.metadata.items()}
        if measurement.metadata
        else None
    )
    return measurement.model_copy(
        update={
            "value": _mask(measurement.value, secrets),
            "message": _mask(measurement.message, secrets),
            "metadata": metadata,
        }
    )


# ---------------------------------------------------------------------------------------------
# One measurement


def to_measurement(
    metric: Metric,
    outcome: ProviderOutcome,
    slot: datetime,
    now: datetime,
    poll: float,
    previous: MetricResult | None = None,
) -> Measurement:
    """The status record for what a provider answered (`previous`: the metric's result so
    far, which a comparison's sequential test continues from)."""
    if isinstance(outcome, ProviderError):
        return error_measurement(str(outcome), started_at=slot, finished_at=now)
    if isinstance(outcome, Pending):
        wait = outcome.poll_after if outcome.poll_after is not None else poll
        return Measurement(
            phase="Running",
            started_at=slot,
            message=outcome.message,
            metadata=dict(outcome.metadata) or None,
            resume_at=now + timedelta(seconds=max(0.0, wait)),
        )
    if isinstance(outcome, Decided):
        return Measurement(
            phase=outcome.phase,
            value=outcome.value,
            started_at=slot,
            finished_at=now,
            message=outcome.message,
            metadata=dict(outcome.metadata) or None,
        )
    if isinstance(outcome, ComparisonSamples):
        try:
            judged = judge(metric, outcome, previous, started_at=slot, finished_at=now)
        except (InvalidSpecError, ValueError) as exc:
            return error_measurement(f"cannot judge: {exc}", started_at=slot, finished_at=now)
        return judged.model_copy(update={"metadata": dict(outcome.metadata) or None})
    if isinstance(outcome, ProviderMeasurement) and metric.compare is not None:
        return error_measurement(
            "a comparison metric needs both sides; the provider returned one value",
            started_at=slot,
            finished_at=now,
        )
    if isinstance(outcome, ProviderMeasurement):
        record = measure(metric, outcome.value, started_at=slot, finished_at=now)
        update: dict[str, object] = {"value": outcome.raw}
        if outcome.metadata:
            update["metadata"] = dict(outcome.metadata)
        return record.model_copy(update=update)
    return error_measurement(
        f"provider returned {type(outcome).__name__}, not a measurement",
        started_at=slot,
        finished_at=now,
    )


async def _take(
    run: AnalysisRun,
    due: DueMeasurement,
    providers: ProviderSet,
    secrets: _Secrets,
    now: datetime,
) -> Measurement:
    metric = due.metric
    timeout = providers.timeout_for(metric)
    try:
        async with asyncio.timeout(timeout):
            resolved = await _resolve_metric(run, metric, secrets)
            credentials = {
                (name, key): await secrets.value(name, key)
                for name, key in required_secrets(resolved)
            }
            base_context = ProviderContext.from_secrets(resolved, credentials)
            profile = profile_secret(resolved)
            if profile is not None:
                base_context = dataclasses.replace(
                    base_context, profile=await secrets.all(profile)
                )
            context = MeasurementContext.extend(
                base_context,
                _run_ref(run),
                due.slot,
                due.index,
            )
            outcome = await providers.for_metric(resolved).measure(resolved, context, now)
        previous = run.status.result_for(metric.name) if run.status is not None else None
        record = to_measurement(
            resolved, outcome, due.slot, now, providers.poll_interval, previous
        )
    except TimeoutError:
        record = error_measurement(
            f"Timeout: no answer within {timeout:g}s", started_at=due.slot, finished_at=now
        )
    except ProviderError as exc:
        record = error_measurement(str(exc), started_at=due.slot, finished_at=now)
    except KubeError as exc:
        record = error_measurement(
            f"reading secrets failed: {exc}", started_at=due.slot, finished_at=now
        )
    except Exception as exc:  # a provider bug is an Error measurement, not a crash
        # No traceback: its frames and message may hold the secrets this pass read.
        log.error(
            "metric %s of AnalysisRun %s: provider raised %s: %s",
            metric.name,
            _name(run),
            type(exc).__name__,
            mask(str(exc), secrets.seen),
        )
        record = error_measurement(
            f"provider raised {type(exc).__name__}: {exc}", started_at=due.slot, finished_at=now
        )
    return _masked(record, secrets.seen)


def _name(run: AnalysisRun) -> str:
    return str(run.metadata.get("name") or "")


def _run_ref(run: AnalysisRun) -> RunRef:
    meta = run.metadata
    return RunRef(
        name=str(meta.get("name") or ""),
        namespace=str(meta.get("namespace") or "default"),
        uid=str(meta.get("uid") or ""),
    )


# ---------------------------------------------------------------------------------------------
# Status write


def merge_patch_for(old: Any, new: Any) -> Any:
    """A merge patch turning `old` into `new`: `new`, with null for keys that disappear."""
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return new
    patch: dict[str, Any] = {}
    for key, value in new.items():
        patch[key] = merge_patch_for(old.get(key), value) if key in old else value
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


async def _write_status(
    client: KubeApi, run_body: Mapping[str, Any], new: Mapping[str, Any]
) -> None:
    metadata = run_body.get("metadata") or {}
    patch = {
        "metadata": {"resourceVersion": str(metadata.get("resourceVersion") or "")},
        "status": merge_patch_for(run_body.get("status") or {}, new),
    }
    if not patch["metadata"]["resourceVersion"]:
        del patch["metadata"]
    await client.patch_merge(
        GROUP,
        VERSION,
        PLURAL,
        str(metadata.get("namespace") or "default"),
        str(metadata.get("name") or ""),
        patch,
        subresource="status",
    )


async def _write_status_rebased(
    client: KubeApi, run_body: Mapping[str, Any], new: Mapping[str, Any]
) -> list[str] | None:
    """Write `new`, decided on `run_body`; the resourceVersions the write made stale, or None
    when it was not written.

    After a conflict, read the run again: when its spec and status are still those the
    measurements were folded into (only metadata changed: kopf adding its finalizer to a run
    just created, a label), the same status is still right and is written on the fresh
    resourceVersion, instead of throwing away measurements already taken (which would ask
    the provider a second time for the same slot). None when the spec or status did change:
    the caller reads again and decides anew."""
    based_on = str((run_body.get("metadata") or {}).get("resourceVersion") or "")
    try:
        await _write_status(client, run_body, new)
        return [based_on]
    except ConflictError:
        pass
    metadata = run_body.get("metadata") or {}
    fresh = await client.get(GROUP, VERSION, PLURAL, str(metadata.get("namespace") or "default"),
                             str(metadata.get("name") or ""))
    if (fresh.get("spec") != run_body.get("spec")
            or (fresh.get("status") or {}) != (run_body.get("status") or {})):
        return None
    try:
        await _write_status(client, fresh, new)
    except ConflictError:
        return None
    return [based_on, str((fresh.get("metadata") or {}).get("resourceVersion") or "")]


async def _terminate_in_flight(
    run: AnalysisRun, taken: Mapping[str, Measurement], providers: ProviderSet
) -> None:
    """Stop Jobs of measurements the finished run no longer waits for (best effort: the
    ownerReference deletes them with the run anyway). In flight are those this pass just
    started and those it found running and did not finish."""
    old = run.status or AnalysisRunStatus()
    for metric in run.spec.metrics:
        result = old.result_for(metric.name)
        last = taken.get(metric.name)
        if last is None and result is not None and result.measurements:
            last = result.measurements[-1]
        if last is None or is_completed(last.phase):
            continue
        provider = providers.for_metric(metric)
        terminate = getattr(provider, "terminate", None)
        if terminate is None:
            continue
        context = MeasurementContext(
            run=_run_ref(run),
            slot=last.started_at,
            index=measurement_index(result),
        )
        try:
            await terminate(metric, context)
        except Exception:
            log.warning(
                "metric %s of AnalysisRun %s: stopping its job failed",
                metric.name,
                _name(run),
                exc_info=True,
            )


async def reconcile_analysis_run(
    client: KubeApi, run_body: Mapping[str, Any], providers: ProviderSet, now: datetime,
    *, on_write: Callable[[str], None] = lambda version: None,
) -> float | None:
    """One pass over an AnalysisRun. Returns seconds until the next pass is needed (None:
    nothing scheduled; the run is complete or waits on a watch).

    `on_write` is told each resourceVersion of the run that a status write of this pass made
    stale: a body still at one of them does not show this pass's measurements yet, and
    measuring on it would take them again.

    Measures what is due, writes the status if it changed (guarded by resourceVersion) and
    returns CONFLICT_REQUEUE (0) when that write met a newer version: read again and retry.
    An invalid spec sets phase Error with the field named instead of raising.
    """
    metadata = run_body.get("metadata") or {}
    try:
        run = load_analysis_run(run_body)
    except InvalidSpecError as exc:
        current = run_body.get("status") or {}
        wanted = {"phase": "Error", "message": f"invalid AnalysisRun: {exc}"}
        if current.get("phase") != "Error" or current.get("message") != wanted["message"]:
            try:
                await _write_status(client, run_body, wanted)
            except ConflictError:
                return CONFLICT_REQUEUE
        return None

    decision = step_run(run, now)
    if decision.completed:
        return None
    secrets = _Secrets(client, str(metadata.get("namespace") or "default"))
    taken = await asyncio.gather(
        *(_take(run, due, providers, secrets, now) for due in decision.due)
    )
    results = {due.metric.name: m for due, m in zip(decision.due, taken, strict=True)}
    status = apply_measurements(run, results, now)
    old_wire = run.status.to_wire() if run.status is not None else {}
    new_wire = status.to_wire()
    if new_wire != old_wire:
        superseded = await _write_status_rebased(client, run_body, new_wire)
        if superseded is None:
            log.info("AnalysisRun %s changed while measuring; reading it again", _name(run))
            return CONFLICT_REQUEUE
        for version in superseded:
            on_write(version)
        if is_completed(status.phase):
            await _terminate_in_flight(run, results, providers)
    return requeue_after(run, status, now)
