"""Prometheus at past timestamps, for `rollouts replay` (synchronous, prometheus-api-client).

The controller's provider (`prometheus.PrometheusProvider`) is asynchronous and speaks the
HTTP API with httpx so it never blocks the operator's event loop. A replay is a command-line
loop that asks one question after another about the past and waits for each answer, which is
exactly what `prometheus_api_client.PrometheusConnect` is made for: a synchronous client
with a requests session (keep-alive, retries on connection errors) whose `custom_query` /
`custom_query_range` take the evaluation time.

The queries are the provider's own: the same request (`query_request`: instant query at the
measurement's time, or the rangeQuery's window ending there), the same `{{role}}` /
`{{interval}}` expansion for `compare` metrics (`comparison_queries`) and the same mapping of
answers to values (`parse_query_data`, `comparison_samples`). What differs: the time is the
past moment given, not the clock; `address` (when given) replaces every metric's address
(the in-cluster one is rarely reachable from where a replay runs); metrics that need
secrets for authentication are refused (a replay reads no cluster).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException

from rollouts.analysis.providers.base import (
    ErrorReason,
    Measurement,
    MeasurementResult,
    ProviderContext,
    ProviderError,
    check_credentials,
)
from rollouts.analysis.providers.prometheus import (
    DEFAULT_TIMEOUT_SECONDS,
    RESOLVED_QUERY_KEY,
    comparison_queries,
    comparison_samples,
    parse_query_data,
    query_request,
)
from rollouts.models.analysis import Metric, PrometheusMetric

__all__ = ["PastPrometheus"]


def _result_data(result: Any, *, ranged: bool) -> Mapping[str, Any]:
    """The API's `data` member rebuilt from the `result` the client returns (it drops the
    `resultType`, which the shape tells: series with `values` are a matrix, series with
    `value` a vector, a bare [time, value] pair a scalar or a string)."""
    if ranged:
        return {"resultType": "matrix", "result": result}
    if isinstance(result, list) and all(isinstance(entry, Mapping) for entry in result):
        kind = "matrix" if any("values" in entry for entry in result) else "vector"
        return {"resultType": kind, "result": result}
    if isinstance(result, Sequence) and len(result) == 2:
        try:
            float(result[1])
        except (TypeError, ValueError):
            return {"resultType": "string", "result": result}
        return {"resultType": "scalar", "result": result}
    raise ValueError(f"unexpected result {result!r}")


class PastPrometheus:
    """Measures `provider.prometheus` metrics at given past moments."""

    def __init__(self, address: str | None = None, *, disable_ssl: bool = False) -> None:
        self.address = address.rstrip("/") if address else None
        self.disable_ssl = disable_ssl
        self._clients: dict[tuple[str, tuple[tuple[str, str], ...], bool], PrometheusConnect] = {}

    def _client(
        self, address: str, headers: Mapping[str, str], insecure: bool
    ) -> PrometheusConnect:
        key = (address, tuple(sorted(headers.items())), insecure)
        client = self._clients.get(key)
        if client is None:
            client = PrometheusConnect(
                url=address, headers=dict(headers) or None, disable_ssl=insecure
            )
            self._clients[key] = client
        return client

    def measure(self, metric: Metric, at: datetime) -> MeasurementResult:
        """What `metric` would have measured at `at` (a ProviderError when it cannot)."""
        spec = metric.provider.prometheus
        if spec is None:
            return ProviderError(
                ErrorReason.INVALID_SPEC,
                f"metric {metric.name!r} has no prometheus provider (replay reads Prometheus only)",
            )
        missing = check_credentials(metric, ProviderContext())
        if missing is not None:
            return ProviderError(
                ErrorReason.INVALID_SPEC, f"{missing.message} (replay reads no secrets)"
            )
        address = self.address or spec.address
        if not address or not address.startswith(("http://", "https://")):
            return ProviderError(
                ErrorReason.INVALID_SPEC,
                "no prometheus address: pass --prometheus-address"
                if not address
                else f"prometheus address {address!r} is not an http(s) URL",
            )
        if metric.compare is None:
            answer = self._query(spec, address, at)
            if isinstance(answer, Measurement):
                return Measurement(
                    answer.value,
                    answer.raw,
                    answer.kind,
                    answer.series,
                    {RESOLVED_QUERY_KEY: spec.query},
                )
            return answer
        wanted = comparison_queries(metric, spec)
        if isinstance(wanted, ProviderError):
            return wanted
        answers = [
            self._query(spec.model_copy(update={"query": text}), address, at) for _, text in wanted
        ]
        return comparison_samples(metric, wanted, answers)

    def _query(
        self, spec: PrometheusMetric, address: str, at: datetime
    ) -> Measurement | ProviderError:
        timeout = float(spec.timeout) if spec.timeout is not None else DEFAULT_TIMEOUT_SECONDS
        try:
            path, params = query_request(spec, at, timeout)
        except ValueError as exc:
            return ProviderError(ErrorReason.INVALID_SPEC, str(exc))
        headers = {h.key: h.value for h in spec.headers or ()}
        client = self._client(address, headers, bool(spec.insecure) or self.disable_ssl)
        ranged = path.endswith("query_range")
        try:
            if ranged:
                result = client.custom_query_range(
                    params["query"],
                    start_time=datetime.fromtimestamp(float(params["start"]), tz=at.tzinfo),
                    end_time=datetime.fromtimestamp(float(params["end"]), tz=at.tzinfo),
                    step=params["step"],
                    params={"timeout": params["timeout"]},
                    timeout=timeout,
                )
            else:
                result = client.custom_query(
                    params["query"],
                    params={"time": params["time"], "timeout": params["timeout"]},
                    timeout=timeout,
                )
        except PrometheusApiClientException as exc:
            return ProviderError(ErrorReason.HTTP_STATUS, f"{address}{path}: {exc}")
        except requests.Timeout as exc:
            return ProviderError(ErrorReason.TIMEOUT, f"{address}{path}: {exc}")
        except requests.RequestException as exc:
            return ProviderError(
                ErrorReason.CONNECTION, f"{address}{path}: {type(exc).__name__}: {exc}"
            )
        try:
            return parse_query_data(_result_data(result, ranged=ranged))
        except (ValueError, TypeError, AttributeError) as exc:
            return ProviderError(ErrorReason.BAD_RESPONSE, f"{address}{path}: {exc}")
