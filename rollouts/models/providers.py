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
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from rollouts.models.base import ApiModel, parse_duration

__all__ = [
    "DEFAULT_PROFILES",
    "BasicAuthArgs",
    "CloudWatchMetric",
    "DatadogMetric",
    "DatadogSecretRef",
    "GraphiteMetric",
    "InfluxdbMetric",
    "NewRelicMetric",
    "OAuth2Config",
    "SigV4Config",
    "SkyWalkingMetric",
    "WavefrontMetric",
    "WebAuthentication",
    "check_duration_or_arg",
]

# The Secret each provider reads when the spec names none (Argo's names).
DEFAULT_PROFILES: dict[str, str] = {
    "datadog": "datadog",
    "newRelic": "newrelic",
    "influxdb": "influxdb",
    "wavefront": "wavefront",
}


def check_duration_or_arg(value: object) -> object:
    if isinstance(value, str) and "{{" in value:
        return value
    parse_duration(value)
    return value


DurationText = Annotated[str, BeforeValidator(check_duration_or_arg)]


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
    timeout: int | None = Field(default=None, gt=0, description="seconds, default 30")


class GraphiteMetric(ApiModel):
    address: str = Field(min_length=1)
    query: str = Field(min_length=1, description="a target, or `target=...` query text")
    timeout: int | None = Field(default=None, gt=0, description="seconds, default 30")


class InfluxdbMetric(ApiModel):
    profile: str | None = Field(default=None, description='Secret name, default "influxdb"')
    query: str = Field(min_length=1, description="Flux")
    timeout: int | None = Field(default=None, gt=0, description="seconds, default 30")


class WavefrontMetric(ApiModel):
    address: str | None = Field(default=None, description="host; else the Secret's address")
    query: str = Field(min_length=1)
    profile: str | None = Field(default=None, description='Secret name, default "wavefront"')
    timeout: int | None = Field(default=None, gt=0, description="seconds, default 30")


class SkyWalkingMetric(ApiModel):
    address: str = Field(min_length=1)
    query: str = Field(min_length=1, description="GraphQL, with a $duration: Duration! variable")
    interval: DurationText | None = Field(default=None, description="window, default 5m")
    timeout: int | None = Field(default=None, gt=0, description="seconds, default 30")


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
