"""The Amazon CloudWatch metric provider (`provider.cloudWatch`): GetMetricData.

Calls GetMetricData with `metricDataQueries` over [now - interval, now] (interval default
5m, injected clock) through boto3, with the standard AWS credential chain (environment,
shared profile, IRSA web identity, instance role) and region (AWS_REGION). boto3 is an
optional dependency: `pip install 'rollouts[aws]'`. The image is built without it.
The boto3 call is synchronous, so it runs in a worker thread; the value is the list of
`MetricDataResults` (Id, Label, StatusCode, Timestamps as RFC 3339, Values), as in Argo
(`all(result[0].Values, {# <= 0.01})`); no results, or results without values -> no data.

The endpoint is the region's, or `endpoint_url` given to the provider (tests, VPC
endpoints); it is checked against the egress policy like every other address.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx

from rollouts.analysis.providers.base import (
    ErrorReason,
    Measurement,
    MeasurementResult,
    ProviderContext,
    ProviderError,
    json_text,
    shorten,
)
from rollouts.analysis.providers.egress import EgressDenied, EgressPolicy
from rollouts.models.analysis import Metric
from rollouts.models.base import parse_duration

__all__ = ["CloudWatchProvider"]

DEFAULT_INTERVAL = "5m"
DEFAULT_TIMEOUT_SECONDS = 30.0
ClientFactory = Callable[[], Any]


def _default_client(endpoint_url: str | None) -> Any:
    import boto3

    return boto3.client("cloudwatch", endpoint_url=endpoint_url)


def _results(answer: dict[str, Any]) -> list[dict[str, Any]]:
    results = []
    for entry in answer.get("MetricDataResults", []):
        results.append(
            {
                "Id": entry.get("Id"),
                "Label": entry.get("Label"),
                "StatusCode": entry.get("StatusCode"),
                "Timestamps": [t.isoformat() for t in entry.get("Timestamps", [])],
                "Values": [float(v) for v in entry.get("Values", [])],
            }
        )
    return results


class CloudWatchProvider:
    kind = "cloudWatch"

    def __init__(
        self,
        *,
        client_factory: ClientFactory | None = None,
        endpoint_url: str | None = None,
        policy: EgressPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._factory = client_factory or (lambda: _default_client(endpoint_url))
        self._endpoint = endpoint_url
        self._policy = policy or EgressPolicy()
        self._timeout = timeout
        self._client: Any = None

    async def measure(
        self, metric: Metric, context: ProviderContext, now: datetime
    ) -> MeasurementResult:
        spec = metric.provider.cloud_watch
        if spec is None:
            return ProviderError(
                ErrorReason.INVALID_SPEC, f"metric {metric.name!r} has no cloudWatch provider"
            )
        try:
            window = parse_duration(spec.interval or DEFAULT_INTERVAL)
        except ValueError as exc:
            return ProviderError(ErrorReason.INVALID_SPEC, str(exc))
        if self._endpoint is not None:
            try:
                await self._policy.check(httpx.URL(self._endpoint))
            except EgressDenied as exc:
                return ProviderError(ErrorReason.ADDRESS_DENIED, str(exc))
        try:
            async with asyncio.timeout(self._timeout):
                answer = await asyncio.to_thread(
                    self._call, spec.metric_data_queries, now - timedelta(seconds=window), now
                )
        except TimeoutError:
            return ProviderError(ErrorReason.TIMEOUT, f"GetMetricData took over {self._timeout:g}s")
        except ModuleNotFoundError:
            return ProviderError(
                ErrorReason.INVALID_SPEC,
                "cloudWatch needs boto3: install the controller with the aws extra "
                "(rollouts[aws])",
            )
        except Exception as exc:  # botocore's errors: credentials, throttling, validation
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            reason = ErrorReason.QUERY_ERROR if code else ErrorReason.CONNECTION
            return ProviderError(reason, f"GetMetricData: {type(exc).__name__}: {exc}")
        results = _results(answer)
        if not any(r["Values"] for r in results):
            return Measurement([], "[]", "json")
        return Measurement(results, shorten(json_text(results)), "json")

    def _call(self, queries: list[dict[str, Any]], start: datetime, end: datetime) -> Any:
        if self._client is None:
            self._client = self._factory()
        return self._client.get_metric_data(
            MetricDataQueries=queries, StartTime=start, EndTime=end
        )

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and hasattr(client, "close"):
            await asyncio.to_thread(client.close)
