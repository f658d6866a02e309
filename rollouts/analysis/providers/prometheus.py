"""The Prometheus metric provider (`provider.prometheus`).

Speaks the Prometheus HTTP API directly with `httpx.AsyncClient` instead of going through
`prometheus-api-client`: that library is synchronous (requests), so every query would
block the operator's event loop or need a thread, and it cannot take an injected
transport for tests. The API surface we need is two endpoints. (`rollouts replay`, a
command that asks the past one question after another, does use it: see
`prometheus_past`, which shares this module's request, expansion and parsing functions.)

* instant query: POST /api/v1/query with `time=now` (the injected clock, not the wall
  clock, so a measurement can be replayed against a recorded history);
* `rangeQuery`: POST /api/v1/query_range over [now - start, now - end] every `step`.

Like the Go client Argo uses, queries are POSTed as a form (long PromQL does not fit in
a URL) and retried as GET when a proxy answers 405.

Result mapping (see `Measurement`): vector -> list[float] in server order; scalar ->
float; matrix -> list[float] flattened series by series (what Argo's range-query docs
assume with `all(result, ...)`); string -> str. Empty vector -> [] which `no_data` flags.
Timeout: `timeout` seconds from the spec, default 30 (Argo's), applied to the whole
request and passed to Prometheus so it stops evaluating too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from rollouts.analysis.providers.auth import spec_auth
from rollouts.analysis.providers.base import (
    ComparisonSamples,
    ErrorReason,
    HttpClients,
    HttpProvider,
    Measurement,
    MeasurementResult,
    ProviderContext,
    ProviderError,
    check_credentials,
    format_float,
    http_status_error,
    shorten,
)
from rollouts.analysis.providers.egress import EgressPolicy
from rollouts.models.analysis import Metric
from rollouts.models.base import parse_duration
from rollouts.models.comparison import INTERVAL_PLACEHOLDER, ROLE_PLACEHOLDER
from rollouts.models.providers import PrometheusMetric, range_time_offset

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "RESOLVED_QUERY_KEY",
    "PrometheusProvider",
    "comparison_queries",
    "comparison_samples",
    "parse_query_data",
    "query_request",
]

DEFAULT_TIMEOUT_SECONDS = 30
# Argo stores the query after argument substitution under this metadata key.
RESOLVED_QUERY_KEY = "ResolvedPrometheusQuery"


def _unix(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("`now` must be timezone-aware")
    return f"{moment.timestamp():.3f}"


def _sample_value(pair: object) -> float:
    """The float in a `[timestamp, "value"]` pair; Prometheus sends values as strings."""
    if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
        raise ValueError(f"expected [timestamp, value], got {pair!r}")
    text = pair[1]
    if not isinstance(text, str):
        raise ValueError(f"expected a string sample value, got {text!r}")
    return float(text)  # accepts "NaN", "+Inf", "-Inf"


def _labels(entry: Mapping[str, Any]) -> Mapping[str, str]:
    metric = entry.get("metric", {})
    if not isinstance(metric, Mapping):
        raise ValueError(f"expected a label set, got {metric!r}")
    return {str(k): str(v) for k, v in metric.items()}


def _numbers(measurement: Measurement) -> tuple[float, ...] | None:
    """The finite samples of a vector, matrix or scalar answer; None for a string."""
    value = measurement.value
    values = [value] if isinstance(value, float) else value
    if not isinstance(values, list):
        return None
    return tuple(v for v in values if isinstance(v, float) and math.isfinite(v))


@dataclass(frozen=True)
class _Call:
    """Where and how one measurement's queries are sent."""

    address: str
    headers: dict[str, str]
    auth: httpx.Auth | None
    timeout: float
    now: datetime


def _list_raw(values: Sequence[float]) -> str:
    return "[" + ",".join(format_float(v) for v in values) + "]"


def parse_query_data(data: object) -> Measurement:
    """Map the `data` member of a successful API answer to a Measurement.

    Raises ValueError on an unexpected shape.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"expected an object in 'data', got {type(data).__name__}")
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "vector":
        if not isinstance(result, list):
            raise ValueError("vector result is not a list")
        values = [_sample_value(entry.get("value")) for entry in result]
        series = tuple(_labels(entry) for entry in result)
        return Measurement(values, shorten(_list_raw(values)), "vector", series)
    if kind == "scalar":
        value = _sample_value(result)
        return Measurement(value, format_float(value), "scalar")
    if kind == "matrix":
        if not isinstance(result, list):
            raise ValueError("matrix result is not a list")
        flat: list[float] = []
        for entry in result:
            points = entry.get("values", [])
            if not isinstance(points, list):
                raise ValueError("matrix series values are not a list")
            flat.extend(_sample_value(point) for point in points)
        series = tuple(_labels(entry) for entry in result)
        return Measurement(flat, shorten(_list_raw(flat)), "matrix", series)
    if kind == "string":
        if not isinstance(result, Sequence) or isinstance(result, str) or len(result) != 2:
            raise ValueError(f"expected [timestamp, string], got {result!r}")
        text = str(result[1])
        return Measurement(text, shorten(text), "string")
    raise ValueError(f"unsupported resultType {kind!r}")


def comparison_queries(
    metric: Metric, spec: PrometheusMetric
) -> list[tuple[str, str]] | ProviderError:
    """(what, PromQL) for each query of a `compare` metric: the query (and
    `compare.totalQuery`) once per side, `{{role}}` replaced by `compare.canary` /
    `compare.baseline` and `{{interval}}` by the metric's interval."""
    compare = metric.compare
    assert compare is not None
    interval = metric.interval_seconds()
    templates = [("", spec.query)]
    if compare.total_query:
        templates.append(("totalQuery ", compare.total_query))
    wanted: list[tuple[str, str]] = []
    for label, template in templates:
        if INTERVAL_PLACEHOLDER in template and interval is None:
            return ProviderError(
                ErrorReason.INVALID_SPEC, f"{INTERVAL_PLACEHOLDER} needs metric.interval"
            )
        for side, role in (("canary", compare.canary), ("baseline", compare.baseline)):
            text = template.replace(ROLE_PLACEHOLDER, role)
            text = text.replace(INTERVAL_PLACEHOLDER, f"{interval}s")
            wanted.append((f"{side} {label}".strip(), text))
    return wanted


def comparison_samples(
    metric: Metric,
    wanted: Sequence[tuple[str, str]],
    answers: Sequence[Measurement | ProviderError],
) -> ComparisonSamples | ProviderError:
    """Both sides' numbers from the answers to `comparison_queries` (same order)."""
    numbers: list[tuple[float, ...]] = []
    for (what, _), answer in zip(wanted, answers, strict=True):
        if isinstance(answer, ProviderError):
            return ProviderError(answer.reason, f"{what}: {answer.message}")
        values = _numbers(answer)
        if values is None:
            return ProviderError(
                ErrorReason.BAD_RESPONSE, f"{what}: a {answer.kind} is not a number"
            )
        numbers.append(values)
    metadata = {f"{RESOLVED_QUERY_KEY}/{what}": text for what, text in wanted}
    if metric.compare is not None and metric.compare.total_query:
        return ComparisonSamples(numbers[0], numbers[1], numbers[2], numbers[3], metadata)
    return ComparisonSamples(numbers[0], numbers[1], metadata=metadata)


def query_request(
    spec: PrometheusMetric, now: datetime, timeout: float
) -> tuple[str, dict[str, str]]:
    """(API path, form parameters) of the query a metric makes at `now`. ValueError for a
    rangeQuery that cannot be sent."""
    params = {"query": spec.query, "timeout": f"{timeout:g}s"}
    if spec.range_query is None:
        params["time"] = _unix(now)
        return "/api/v1/query", params
    rq = spec.range_query
    step = parse_duration(rq.step)
    if step <= 0:
        raise ValueError("rangeQuery.step must be positive")
    start = now - timedelta(seconds=range_time_offset(rq.start))
    end = now - timedelta(seconds=range_time_offset(rq.end))
    if start > end:
        raise ValueError("rangeQuery.start must not be after rangeQuery.end")
    params.update(start=_unix(start), end=_unix(end), step=str(step))
    return "/api/v1/query_range", params


class PrometheusProvider(HttpProvider):
    """Measures `provider.prometheus` metrics.

    `default_address` is used when a metric names none (the controller's configured
    Prometheus, like Argo's ARGO_ROLLOUTS_PROMETHEUS_ADDRESS). `transport` is for tests.
    """

    kind = "prometheus"

    def __init__(
        self,
        *,
        default_address: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clients: HttpClients | None = None,
        default_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        policy: EgressPolicy | None = None,
    ) -> None:
        self.default_address = default_address
        self.default_timeout = default_timeout
        self._clients = clients or HttpClients(transport=transport, policy=policy)

    async def measure(
        self, metric: Metric, context: ProviderContext, now: datetime
    ) -> MeasurementResult:
        spec = metric.provider.prometheus
        if spec is None:
            return ProviderError(
                ErrorReason.INVALID_SPEC,
                f"metric {metric.name!r} has no prometheus provider",
            )
        missing = check_credentials(metric, context)
        if missing is not None:
            return missing
        address = spec.address or self.default_address
        if not address or not address.startswith(("http://", "https://")):
            return ProviderError(
                ErrorReason.INVALID_SPEC,
                "prometheus address is not configured"
                if not address
                else f"prometheus address {address!r} is not an http(s) URL",
            )
        timeout = float(spec.timeout) if spec.timeout is not None else self.default_timeout
        headers = {h.key: h.value for h in spec.headers or ()}
        headers.update(context.headers)
        auth = context.apply_auth(headers)
        if spec.authentication is not None:
            argo_auth = await spec_auth(
                self._clients, spec.authentication, headers,
                insecure=bool(spec.insecure), timeout=timeout,
            )
            if isinstance(argo_auth, ProviderError):
                return argo_auth
            auth = argo_auth or auth
        call = _Call(address.rstrip("/"), headers, auth, timeout, now)
        if metric.compare is not None:
            return await self._compare(metric, spec, call)
        result = await self._query(spec, call)
        if isinstance(result, Measurement):
            metadata = {RESOLVED_QUERY_KEY: spec.query, **result.metadata}
            result = dataclasses.replace(result, metadata=metadata)
        return result

    async def _query(self, spec: PrometheusMetric, call: _Call) -> Measurement | ProviderError:
        try:
            path, params = query_request(spec, call.now, call.timeout)
        except ValueError as exc:
            return ProviderError(ErrorReason.INVALID_SPEC, str(exc))
        url = call.address + path
        response = await self._send(
            self._clients, bool(spec.insecure), url, params, call.headers, call.auth,
            call.timeout,
        )
        if isinstance(response, ProviderError):
            return response
        return self._parse(response, url)

    async def _compare(
        self, metric: Metric, spec: PrometheusMetric, call: _Call
    ) -> MeasurementResult:
        """Run the query (and `compare.totalQuery`) once per side (see `comparison_queries`)."""
        wanted = comparison_queries(metric, spec)
        if isinstance(wanted, ProviderError):
            return wanted
        answers = await asyncio.gather(
            *(self._query(spec.model_copy(update={"query": text}), call) for _, text in wanted)
        )
        return comparison_samples(metric, wanted, answers)

    @staticmethod
    async def _send(
        clients: HttpClients,
        insecure: bool,
        url: str,
        params: dict[str, str],
        headers: dict[str, str],
        auth: httpx.Auth | None,
        timeout: float,
    ) -> httpx.Response | ProviderError:
        response = await clients.fetch(
            "POST", url, insecure=insecure, data=params, headers=headers, auth=auth,
            timeout=timeout,
        )
        if isinstance(response, httpx.Response) and response.status_code == 405:
            response = await clients.fetch(
                "GET", url, insecure=insecure, params=params, headers=headers, auth=auth,
                timeout=timeout,
            )
        return response

    @staticmethod
    def _parse(response: httpx.Response, url: str) -> Measurement | ProviderError:
        status = response.status_code
        try:
            body = json.loads(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        # Prometheus explains failed queries in a JSON body with a 4xx/5xx status.
        if isinstance(body, Mapping) and body.get("status") == "error":
            kind = body.get("errorType") or "error"
            return ProviderError(
                ErrorReason.QUERY_ERROR,
                f"{kind}: {body.get('error') or 'no message'}",
                status_code=status,
            )
        if not 200 <= status < 300:
            return http_status_error(response, url)
        if not isinstance(body, Mapping):
            return ProviderError(
                ErrorReason.BAD_RESPONSE,
                f"{url} did not answer with a JSON object: {shorten(response.text, 200)!r}",
                status_code=status,
            )
        if body.get("status") != "success":
            return ProviderError(
                ErrorReason.BAD_RESPONSE,
                f"unexpected status {body.get('status')!r} from {url}",
                status_code=status,
            )
        try:
            measurement = parse_query_data(body.get("data"))
        except (ValueError, TypeError, AttributeError) as exc:
            return ProviderError(
                ErrorReason.BAD_RESPONSE,
                f"unexpected answer from {url}: {exc}",
                status_code=status,
            )
        warnings = body.get("warnings")
        if isinstance(warnings, list) and warnings:
            metadata = {"warnings": ", ".join(f'"{w}"' for w in warnings)}
            measurement = dataclasses.replace(measurement, metadata=metadata)
        return measurement
