"""Specs of the vendor metric providers (`provider.datadog`, `newRelic`, ...), Argo's fields.

Each provider's credentials come, as in Argo Rollouts, from a Secret named by the spec
(`profile` / `secretRef.name`, with Argo's default names and keys) or from `{{args.x}}`
arguments backed by Secrets (Prometheus `authentication`, web `authentication.oauth2`).
One difference, deliberate: the Secret is read from the AnalysisRun's own namespace, never
from the controller's, so a team cannot measure with another team's credentials (copy the
Secret next to the templates that use it). See docs/api.md, one section per provider.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from rollouts.models.base import (
    MAX_DURATION_SECONDS,
    ApiModel,
    ArgDuration,
    has_placeholder,
    parse_duration,
)

__all__ = [
    "AUTHENTICATIONS",
    "DEFAULT_PROFILES",
    "PLAIN_PROFILE_KEYS",
    "BasicAuth",
    "BasicAuthArgs",
    "BasicAuthSecretRef",
    "BearerAuth",
    "CloudWatchMetric",
    "DatadogMetric",
    "DatadogSecretRef",
    "GraphiteMetric",
    "Header",
    "InfluxdbMetric",
    "JobMetric",
    "NewRelicMetric",
    "OAuth2Config",
    "PrometheusAuthentication",
    "PrometheusMetric",
    "PrometheusRangeQuery",
    "SecretKeyRef",
    "SigV4Config",
    "SkyWalkingMetric",
    "WavefrontMetric",
    "WebAuthentication",
    "WebMetric",
    "check_duration_or_arg",
    "range_time_offset",
    "snake",
]

# The Secret each provider reads when the spec names none (Argo's names).
DEFAULT_PROFILES: dict[str, str] = {
    "datadog": "datadog",
    "newRelic": "newrelic",
    "influxdb": "influxdb",
    "wavefront": "wavefront",
}


# Keys of those Secrets that are settings, not credentials: not masked in what is written.
PLAIN_PROFILE_KEYS: frozenset[str] = frozenset(
    {
        "address",
        "org",
        "ARGO_ROLLOUTS_NEWRELIC_REGION",
        "ARGO_ROLLOUTS_NEWRELIC_ACCOUNT_ID",
        "ARGO_ROLLOUTS_NEWRELIC_BASE_URL_NERD_GRAPH",
        "ARGO_ROLLOUTS_NEWRELIC_BASE_URL_REST",
        "ARGO_ROLLOUTS_WAVEFRONT_ADDRESS",
    }
)


def check_duration_or_arg(value: object) -> object:
    if isinstance(value, str) and "{{" in value:
        return value
    parse_duration(value)
    return value


DurationText = Annotated[str, BeforeValidator(check_duration_or_arg)]
# A provider's `timeout` in seconds: positive and, like every duration, at most 87600h.
TimeoutSeconds = Annotated[int, Field(gt=0, le=MAX_DURATION_SECONDS)]


class OAuth2Config(ApiModel):
    """OAuth2 client-credentials (RFC 6749 §4.4): a token from `tokenUrl`, sent as Bearer.
    `clientSecret` is usually `{{args.x}}` from a Secret."""

    token_url: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=1)
    scopes: list[str] | None = None


class SigV4Config(ApiModel):
    """AWS Signature V4 (Amazon Managed Prometheus): the standard AWS credential chain
    (IRSA, environment, profile), optionally assuming `roleArn`. Needs boto3."""

    region: str | None = None
    profile: str | None = None
    role_arn: str | None = None


class BasicAuthArgs(ApiModel):
    """Argo's `basicAuth`: username and password, usually `{{args.x}}` from Secrets."""

    username: str = Field(min_length=1)
    password: str


class WebAuthentication(ApiModel):
    oauth2: OAuth2Config


class DatadogSecretRef(ApiModel):
    name: str = Field(min_length=1)
    namespaced: bool | None = None


class DatadogMetric(ApiModel):
    api_version: Literal["v1", "v2"] | None = Field(default=None, description="default v1")
    interval: DurationText | None = Field(default=None, description="window queried, default 5m")
    query: str | None = None
    queries: dict[str, str] | None = Field(default=None, description="v2: name -> query")
    formula: str | None = Field(default=None, description="v2: combines `queries`")
    aggregator: (
        Literal["avg", "min", "max", "sum", "last", "percentile", "mean", "l2norm", "area"]
        | None
    ) = Field(default=None, description="v2: default last")
    request_timeout: DurationText | None = Field(default=None, description="default 10s")
    secret_ref: DatadogSecretRef | None = Field(
        default=None, description='Secret with api-key, app-key, address; default "datadog"'
    )

    @model_validator(mode="after")
    def _query_shape(self) -> DatadogMetric:
        if (self.query is None) == (self.queries is None):
            raise ValueError("datadog needs exactly one of query, queries")
        if self.queries is not None and (self.api_version or "v1") != "v2":
            raise ValueError("datadog queries and formula need apiVersion v2")
        if self.formula is not None and self.queries is None:
            raise ValueError("datadog formula needs queries")
        if self.queries is not None and len(self.queries) > 1 and self.formula is None:
            raise ValueError("datadog: several queries need a formula")
        return self


class NewRelicMetric(ApiModel):
    profile: str | None = Field(default=None, description='Secret name, default "newrelic"')
    query: str = Field(min_length=1, description="NRQL")
    timeout: TimeoutSeconds | None = Field(default=None, description="seconds, default 30")


class GraphiteMetric(ApiModel):
    address: str = Field(min_length=1)
    query: str = Field(min_length=1, description="a target, or `target=...` query text")
    timeout: TimeoutSeconds | None = Field(default=None, description="seconds, default 30")


class InfluxdbMetric(ApiModel):
    profile: str | None = Field(default=None, description='Secret name, default "influxdb"')
    query: str = Field(min_length=1, description="Flux")
    timeout: TimeoutSeconds | None = Field(default=None, description="seconds, default 30")


class WavefrontMetric(ApiModel):
    address: str | None = Field(default=None, description="host; else the Secret's address")
    query: str = Field(min_length=1)
    profile: str | None = Field(default=None, description='Secret name, default "wavefront"')
    timeout: TimeoutSeconds | None = Field(default=None, description="seconds, default 30")


class SkyWalkingMetric(ApiModel):
    address: str = Field(min_length=1)
    query: str = Field(min_length=1, description="GraphQL, with a $duration: Duration! variable")
    interval: DurationText | None = Field(default=None, description="window, default 5m")
    timeout: TimeoutSeconds | None = Field(default=None, description="seconds, default 30")


def _json_list(value: object) -> object:
    """Argo's docs write metricDataQueries as JSON text; accept that as well as a list."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"metricDataQueries is not a JSON list: {exc}") from None
    return value


class CloudWatchMetric(ApiModel):
    interval: DurationText | None = Field(default=None, description="window, default 5m")
    metric_data_queries: Annotated[list[dict[str, Any]], BeforeValidator(_json_list)] = Field(
        min_length=1, description="GetMetricData MetricDataQuery objects"
    )


# --- prometheus, web, job ----------------------------------------------------------------


class SecretKeyRef(ApiModel):
    name: str = Field(min_length=1)
    key: str = Field(min_length=1)




class Header(ApiModel):
    key: str = Field(min_length=1)
    value: str


class BasicAuthSecretRef(ApiModel):
    name: str = Field(min_length=1)
    username_key: str = Field(min_length=1)
    password_key: str = Field(min_length=1)


class BasicAuth(ApiModel):
    secret_ref: BasicAuthSecretRef


class BearerAuth(ApiModel):
    secret_key_ref: SecretKeyRef


class PrometheusAuthentication(ApiModel):
    """Argo's `basicAuth`, `oauth2` and `sigv4`, and ours: `basic` / `bearer` read from a
    Secret by reference."""

    basic: BasicAuth | None = None
    bearer: BearerAuth | None = None
    basic_auth: BasicAuthArgs | None = None
    oauth2: OAuth2Config | None = None
    sigv4: SigV4Config | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PrometheusAuthentication:
        given = [n for n in AUTHENTICATIONS if getattr(self, snake(n)) is not None]
        if len(given) != 1:
            raise ValueError(
                f"authentication needs exactly one of {', '.join(AUTHENTICATIONS)}"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


AUTHENTICATIONS: tuple[str, ...] = ("basic", "bearer", "basicAuth", "oauth2", "sigv4")


def snake(name: str) -> str:
    """A camelCase field name as the model's attribute name."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


_RANGE_SHORT = re.compile(r"^now(?:\(\))?(?:\s*-\s*(\S+))?$")
_RANGE_ARGO = re.compile(r"""^now\(\)\s*-\s*duration\(\s*["']([^"']+)["']\s*\)$""")


def range_time_offset(text: str) -> int:
    """Seconds before 'now' that a rangeQuery start/end denotes.

    Accepts Argo's form (`now()`, `now() - duration("5m")`) and the short form
    (`now`, `now-5m`). Raises ValueError otherwise.
    """
    stripped = text.strip()
    match = _RANGE_ARGO.match(stripped)
    if match is not None:
        return parse_duration(match.group(1))
    match = _RANGE_SHORT.match(stripped)
    if match is None:
        raise ValueError(
            f'invalid range time {text!r}: use now(), now() - duration("5m"), now or now-5m'
        )
    return parse_duration(match.group(1)) if match.group(1) else 0


def _check_range_time(value: object) -> object:
    if isinstance(value, str) and not has_placeholder(value):
        range_time_offset(value)
    return value


RangeTime = Annotated[str, BeforeValidator(_check_range_time)]


class PrometheusRangeQuery(ApiModel):
    """A range query over [now - start, now - end] every `step` (Argo's rangeQuery)."""

    start: RangeTime
    end: RangeTime
    step: ArgDuration

    @model_validator(mode="after")
    def _ordered(self) -> PrometheusRangeQuery:
        if has_placeholder(self.start) or has_placeholder(self.end):
            return self
        if range_time_offset(self.start) < range_time_offset(self.end):
            raise ValueError("rangeQuery.start must not be after rangeQuery.end")
        if not has_placeholder(self.step) and parse_duration(self.step) <= 0:
            raise ValueError("rangeQuery.step must be positive")
        return self


class PrometheusMetric(ApiModel):
    address: str | None = Field(
        default=None, description="Prometheus base URL; the controller default if unset"
    )
    query: str = Field(min_length=1)
    timeout: TimeoutSeconds | None = Field(default=None, description="seconds, as in Argo")
    insecure: bool | None = None
    headers: list[Header] | None = None
    authentication: PrometheusAuthentication | None = None
    range_query: PrometheusRangeQuery | None = None


class WebMetric(ApiModel):
    url: str = Field(min_length=1)
    method: Literal["GET", "POST", "PUT"] | None = Field(default=None, description="default GET")
    headers: list[Header] | None = None
    body: str | None = None
    json_body: dict[str, Any] | None = None
    timeout_seconds: TimeoutSeconds | None = Field(default=None, description="default 10")
    json_path: str | None = Field(default=None, description='default "{$}"')
    insecure: bool | None = None
    authentication: WebAuthentication | None = None

    @model_validator(mode="after")
    def _body_rules(self) -> WebMetric:
        if self.body is not None and self.json_body is not None:
            raise ValueError("web: set body or jsonBody, not both")
        if (self.body is not None or self.json_body is not None) and self.method not in (
            "POST",
            "PUT",
        ):
            raise ValueError("web: body and jsonBody need method POST or PUT")
        return self


class JobMetric(ApiModel):
    metadata: dict[str, Any] | None = None
    spec: dict[str, Any] = Field(description="a Kubernetes batch/v1 JobSpec")
