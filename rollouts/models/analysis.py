"""AnalysisTemplate, ClusterAnalysisTemplate and AnalysisRun (`rollouts.dev/v1alpha1`).

Field names, defaults and meanings follow Argo Rollouts `argoproj.io/v1alpha1`
(pkg/apis/rollouts/v1alpha1/analysis_types.go). Differences, all deliberate:

- Providers: `prometheus`, `web`, `job`, `datadog`, `newRelic`, `cloudWatch`, `graphite`,
  `influxdb`, `wavefront`, `skywalking` (models/providers.py). Any other provider key
  (kayenta, plugin, ...) is rejected with a message naming the supported ones.
- `prometheus.authentication` offers Argo's `basicAuth`, `oauth2` and `sigv4`, and ours:
  `basic` and `bearer` (credentials read from a Secret by reference).
- `AnalysisTemplateSpec.templates` (include other templates) is accepted as in newer Argo.
- Conditions are not syntax-checked here: models sit below `rollouts.analysis` in the
  layering and a condition may still contain `{{args.x}}` placeholders. Use
  `rollouts.analysis.conditions.check_condition` on the resolved text.

Limits (`count`, `failureLimit`, ...) are int-or-string as in Argo, so that a template can
write `failureLimit: "{{args.failure-limit}}"`; read them through the `Metric` accessors,
which apply Argo's defaults and refuse unresolved placeholders.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from rollouts.errors import InvalidSpecError
from rollouts.models.base import (
    PLACEHOLDER,
    ApiModel,
    ArgDuration,
    StatusModel,
    duration_value,
    has_placeholder,
)
from rollouts.models.comparison import ROLE_PLACEHOLDER, Compare, Evidence
from rollouts.models.metric_rules import DryRun as DryRun
from rollouts.models.metric_rules import MeasurementRetention as MeasurementRetention
from rollouts.models.metric_rules import is_dry_run, retention_limit, unmatched_rule
from rollouts.models.providers import AUTHENTICATIONS as AUTHENTICATIONS

# Moved to models/providers.py; still importable from here.
from rollouts.models.providers import BasicAuth as BasicAuth
from rollouts.models.providers import BasicAuthSecretRef as BasicAuthSecretRef
from rollouts.models.providers import BearerAuth as BearerAuth
from rollouts.models.providers import (
    CloudWatchMetric,
    DatadogMetric,
    GraphiteMetric,
    InfluxdbMetric,
    NewRelicMetric,
    SkyWalkingMetric,
    WavefrontMetric,
    snake,
)
from rollouts.models.providers import Header as Header
from rollouts.models.providers import JobMetric as JobMetric
from rollouts.models.providers import PrometheusAuthentication as PrometheusAuthentication
from rollouts.models.providers import PrometheusMetric as PrometheusMetric
from rollouts.models.providers import PrometheusRangeQuery as PrometheusRangeQuery
from rollouts.models.providers import SecretKeyRef as SecretKeyRef
from rollouts.models.providers import WebMetric as WebMetric
from rollouts.models.providers import range_time_offset as range_time_offset
from rollouts.models.wire import COMPLETED_RUN_PHASES

API_VERSION: Final = "rollouts.dev/v1alpha1"

AnalysisPhase = Literal["Pending", "Running", "Successful", "Failed", "Error", "Inconclusive"]
COMPLETED_PHASES: frozenset[str] = COMPLETED_RUN_PHASES

# Argo's defaults (analysis_types.go comments and the analysis controller).
DEFAULT_FAILURE_LIMIT = 0
DEFAULT_INCONCLUSIVE_LIMIT = 0
DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4
DEFAULT_CONSECUTIVE_SUCCESS_LIMIT = 0
DEFAULT_MEASUREMENT_RETENTION = 10

_INT_TEXT = re.compile(r"^-?\d+$")


def _check_int_or_string(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("expected an integer or a '{{args.name}}' placeholder")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and (_INT_TEXT.match(value.strip()) or PLACEHOLDER.search(value)):
        return value
    raise ValueError("expected an integer or a '{{args.name}}' placeholder")


# Argo's IntOrString for counts and limits: an int, a decimal string, or a placeholder that
# argument substitution will turn into one.
IntOrString = Annotated[
    int | str,
    BeforeValidator(_check_int_or_string),
    PlainSerializer(lambda v: v),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
        }
    ),
]


def int_value(value: int | str, field: str) -> int:
    """The integer an IntOrString stands for; InvalidSpecError if it is still a placeholder."""
    if isinstance(value, int):
        return value
    text = value.strip()
    if _INT_TEXT.match(text):
        return int(text)
    raise InvalidSpecError(field, f"{value!r} is not an integer (unresolved argument?)")


# ---------------------------------------------------------------------------------------------
# Arguments


class FieldRef(ApiModel):
    field_path: str = Field(min_length=1, description="e.g. metadata.labels['app']")


class ValueFrom(ApiModel):
    """Exactly one source for an argument's value."""

    secret_key_ref: SecretKeyRef | None = None
    field_ref: FieldRef | None = None
    pod_template_hash_value: Literal["Stable", "Latest"] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ValueFrom:
        given = [
            n
            for n, v in (
                ("secretKeyRef", self.secret_key_ref),
                ("fieldRef", self.field_ref),
                ("podTemplateHashValue", self.pod_template_hash_value),
            )
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "valueFrom needs exactly one of secretKeyRef, fieldRef, podTemplateHashValue"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class Argument(ApiModel):
    """A template argument, referenced as `{{args.<name>}}`; no value means 'must be given'."""

    name: str = Field(min_length=1)
    value: str | None = None
    value_from: ValueFrom | None = None

    @model_validator(mode="after")
    def _not_both(self) -> Argument:
        if self.value is not None and self.value_from is not None:
            raise ValueError(f"argument {self.name!r}: set value or valueFrom, not both")
        return self


# ---------------------------------------------------------------------------------------------
# Providers


SUPPORTED_PROVIDERS: tuple[str, ...] = (
    "prometheus",
    "web",
    "job",
    "datadog",
    "newRelic",
    "cloudWatch",
    "graphite",
    "influxdb",
    "wavefront",
    "skywalking",
)


class MetricProvider(ApiModel):
    """Exactly one provider (Argo's names)."""

    prometheus: PrometheusMetric | None = None
    web: WebMetric | None = None
    job: JobMetric | None = None
    datadog: DatadogMetric | None = None
    new_relic: NewRelicMetric | None = None
    cloud_watch: CloudWatchMetric | None = None
    graphite: GraphiteMetric | None = None
    influxdb: InfluxdbMetric | None = None
    wavefront: WavefrontMetric | None = None
    skywalking: SkyWalkingMetric | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_providers(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(str(k) for k in data if k not in SUPPORTED_PROVIDERS)
            if unknown:
                raise ValueError(
                    f"unsupported metric provider {', '.join(unknown)}; "
                    f"supported: {', '.join(SUPPORTED_PROVIDERS)}"
                )
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> MetricProvider:
        given = [n for n in SUPPORTED_PROVIDERS if getattr(self, snake(n)) is not None]
        if len(given) != 1:
            raise ValueError(
                f"provider needs exactly one of {', '.join(SUPPORTED_PROVIDERS)}"
                + (f" (got {', '.join(given)})" if given else " (got none)")
            )
        return self

    @property
    def kind(self) -> str:
        """The (Argo) name of the provider that is set: 'prometheus', 'newRelic', ..."""
        return next(n for n in SUPPORTED_PROVIDERS if getattr(self, snake(n)) is not None)

    @property
    def spec(self) -> ApiModel:
        """The spec of the provider that is set."""
        found: ApiModel = getattr(self, snake(self.kind))
        return found


# ---------------------------------------------------------------------------------------------
# Metric


class Metric(ApiModel):
    name: str = Field(min_length=1)
    interval: ArgDuration | None = Field(
        default=None, description="time between measurements; unset means a single measurement"
    )
    initial_delay: ArgDuration | None = None
    count: IntOrString | None = Field(
        default=None,
        description="measurements to take; unset with no interval means 1, "
        "unset with an interval means until stopped",
    )
    success_condition: str | None = None
    failure_condition: str | None = None
    failure_limit: IntOrString | None = Field(
        default=None, description="failed measurements tolerated (default 0; -1: never fail)"
    )
    inconclusive_limit: IntOrString | None = Field(default=None, description="default 0")
    consecutive_error_limit: IntOrString | None = Field(default=None, description="default 4")
    consecutive_success_limit: IntOrString | None = Field(
        default=None, description="succeed after this many successes in a row (default 0: off)"
    )
    provider: MetricProvider
    compare: Compare | None = Field(
        default=None, description="ours: judge canary against baseline (docs/analysis.md)"
    )

    @model_validator(mode="after")
    def _compare_fits(self) -> Metric:
        if self.compare is None:
            return self
        prometheus = self.provider.prometheus
        if prometheus is None:
            raise ValueError("compare needs provider prometheus")
        if ROLE_PLACEHOLDER not in prometheus.query:
            raise ValueError(f"compare needs {ROLE_PLACEHOLDER} in provider.prometheus.query")
        if self.success_condition or self.failure_condition:
            raise ValueError(
                "compare decides the measurement: remove successCondition/failureCondition"
            )
        return self

    @model_validator(mode="after")
    def _limits(self) -> Metric:
        floors = (
            ("count", self.count, 0),
            ("failureLimit", self.failure_limit, -1),
            ("inconclusiveLimit", self.inconclusive_limit, 0),
            ("consecutiveErrorLimit", self.consecutive_error_limit, 0),
            ("consecutiveSuccessLimit", self.consecutive_success_limit, 0),
        )
        for field, value, floor in floors:
            if value is None or has_placeholder(value):
                continue
            if int_value(value, field) < floor:
                raise ValueError(f"{field} must be >= {floor}")
        if (
            self.count is not None
            and not has_placeholder(self.count)
            and int_value(self.count, "count") > 1
            and self.interval is None
        ):
            # Argo's validation: several measurements need an interval between them.
            raise ValueError("interval must be specified when count > 1")
        return self

    def effective_count(self) -> int | None:
        """Argo's EffectiveCount: count, else 1 without interval, else None (unbounded)."""
        count = 0 if self.count is None else int_value(self.count, f"{self.name}.count")
        if count == 0:
            return 1 if self.interval is None else None
        return count

    def effective_failure_limit(self) -> int:
        return self._limit(self.failure_limit, "failureLimit", DEFAULT_FAILURE_LIMIT)

    def effective_inconclusive_limit(self) -> int:
        return self._limit(self.inconclusive_limit, "inconclusiveLimit", DEFAULT_INCONCLUSIVE_LIMIT)

    def effective_consecutive_error_limit(self) -> int:
        return self._limit(
            self.consecutive_error_limit, "consecutiveErrorLimit", DEFAULT_CONSECUTIVE_ERROR_LIMIT
        )

    def effective_consecutive_success_limit(self) -> int:
        return self._limit(
            self.consecutive_success_limit,
            "consecutiveSuccessLimit",
            DEFAULT_CONSECUTIVE_SUCCESS_LIMIT,
        )

    def interval_seconds(self) -> int | None:
        if self.interval is None:
            return None
        return duration_value(self.interval, f"metrics[{self.name}].interval")

    def initial_delay_seconds(self) -> int:
        if self.initial_delay is None:
            return 0
        return duration_value(self.initial_delay, f"metrics[{self.name}].initialDelay")

    def _limit(self, value: int | str | None, field: str, default: int) -> int:
        if value is None:
            return default
        return int_value(value, f"metrics[{self.name}].{field}")


class AnalysisTemplateRef(ApiModel):
    template_name: str = Field(min_length=1)
    cluster_scope: bool | None = None


def _unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"duplicate {what} {name!r}")
        seen.add(name)


class _RunSettings(ApiModel):
    """What templates and runs share: dry-run and retention lookups."""

    metrics: list[Metric] = Field(default_factory=list)
    args: list[Argument] | None = None
    dry_run: list[DryRun] | None = None
    measurement_retention: list[MeasurementRetention] | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> _RunSettings:
        _unique([m.name for m in self.metrics], "metric")
        _unique([a.name for a in self.args or ()], "argument")
        return self

    def is_dry_run(self, metric_name: str) -> bool:
        """A dryRun rule matches the metric (models/metric_rules.py)."""
        return is_dry_run(self.dry_run, metric_name)

    def retention_limit(self, metric_name: str) -> int:
        """Measurements kept for a metric: the last matching rule's, else Argo's 10."""
        return retention_limit(self.measurement_retention, metric_name,
                               DEFAULT_MEASUREMENT_RETENTION)


class AnalysisTemplateSpec(_RunSettings):
    templates: list[AnalysisTemplateRef] | None = None

    @model_validator(mode="after")
    def _something_to_run(self) -> AnalysisTemplateSpec:
        if not self.metrics and not self.templates:
            raise ValueError("a template needs metrics or templates")
        return self


class AnalysisRunSpec(_RunSettings):
    terminate: bool | None = None

    @model_validator(mode="after")
    def _has_metrics(self) -> AnalysisRunSpec:
        if not self.metrics:
            raise ValueError("an AnalysisRun needs at least one metric")
        return self

    @model_validator(mode="after")
    def _rules_match(self) -> AnalysisRunSpec:
        """As Argo: a dryRun / measurementRetention rule that matches no metric is an error
        (a misspelt name is never silently ignored)."""
        names = [m.name for m in self.metrics]
        for field, rules in (("dryRun", self.dry_run), ("measurementRetention",
                                                        self.measurement_retention)):
            problem = unmatched_rule(field, [r.metric_name for r in rules or ()], names)
            if problem is not None:
                raise ValueError(problem)
        return self


# ---------------------------------------------------------------------------------------------
# Status


class Measurement(StatusModel):
    phase: AnalysisPhase
    value: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    message: str | None = None
    resume_at: datetime | None = None
    metadata: dict[str, str] | None = None
    evidence: Evidence | None = None  # ours: comparison metrics only


class MetricResult(StatusModel):
    name: str
    phase: AnalysisPhase = "Pending"
    measurements: list[Measurement] = Field(default_factory=list)
    message: str | None = None
    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    consecutive_error: int = 0
    consecutive_success: int = 0
    dry_run: bool | None = None
    metadata: dict[str, str] | None = None


class RunSummary(StatusModel):
    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0


class AnalysisRunStatus(StatusModel):
    phase: AnalysisPhase = "Pending"
    message: str | None = None
    started_at: datetime | None = None
    metric_results: list[MetricResult] = Field(default_factory=list)
    run_summary: RunSummary | None = None
    dry_run_summary: RunSummary | None = None

    def result_for(self, metric_name: str) -> MetricResult | None:
        return next((r for r in self.metric_results if r.name == metric_name), None)


# ---------------------------------------------------------------------------------------------
# Objects


class AnalysisTemplate(ApiModel):
    api_version: Literal["rollouts.dev/v1alpha1"] = API_VERSION
    kind: Literal["AnalysisTemplate"] = "AnalysisTemplate"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: AnalysisTemplateSpec


class ClusterAnalysisTemplate(ApiModel):
    api_version: Literal["rollouts.dev/v1alpha1"] = API_VERSION
    kind: Literal["ClusterAnalysisTemplate"] = "ClusterAnalysisTemplate"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: AnalysisTemplateSpec


class AnalysisRun(ApiModel):
    api_version: Literal["rollouts.dev/v1alpha1"] = API_VERSION
    kind: Literal["AnalysisRun"] = "AnalysisRun"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: AnalysisRunSpec
    status: AnalysisRunStatus | None = None


# ---------------------------------------------------------------------------------------------
# Loading

_M = TypeVar("_M", bound=ApiModel)


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + part
    return path or "<root>"


def load(model: type[_M], data: Mapping[str, Any]) -> _M:
    """Validate a manifest dict (camelCase keys) into `model`.

    Raises InvalidSpecError naming the first offending field (e.g. `spec.metrics[0].provider`).
    """
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        raise InvalidSpecError(_field_path(tuple(first["loc"])), message) from exc


def load_analysis_template(data: Mapping[str, Any]) -> AnalysisTemplate:
    return load(AnalysisTemplate, data)


def load_cluster_analysis_template(data: Mapping[str, Any]) -> ClusterAnalysisTemplate:
    return load(ClusterAnalysisTemplate, data)


def load_analysis_run(data: Mapping[str, Any]) -> AnalysisRun:
    return load(AnalysisRun, data)


def load_analysis_object(
    data: Mapping[str, Any],
) -> AnalysisTemplate | ClusterAnalysisTemplate | AnalysisRun:
    """Dispatch on `kind`."""
    kind = data.get("kind")
    if kind == "AnalysisTemplate":
        return load_analysis_template(data)
    if kind == "ClusterAnalysisTemplate":
        return load_cluster_analysis_template(data)
    if kind == "AnalysisRun":
        return load_analysis_run(data)
    raise InvalidSpecError("kind", f"expected an analysis kind, got {kind!r}")
