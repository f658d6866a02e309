"""The Datadog metric provider (`provider.datadog`), Argo's fields and defaults.

* v1 (default): GET `/api/v1/query?from&to&query`; the value is the last point of the
  first series (Argo's), no series or a null point -> no data.
* v2: POST `/api/v2/query/scalar` with `queries` (name -> query) combined by `formula`
  (or the single `query`), reduced by `aggregator` (default `last`); the value is the
  formula's number, or the list of numbers when the query groups (`by {tag}`), with
  `metadata.groups` naming each group.

The window is [now - interval, now] (interval default 5m) on the injected clock. Keys come
from the Secret `secretRef.name` (default `datadog`): `api-key`, `app-key`, and `address`
(default https://api.datadoghq.com). Timeout: `requestTimeout`, default 10s.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx

from rollouts.analysis.providers.base import (
    ErrorReason,
    Measurement,
    ProviderContext,
    ProviderError,
    format_float,
    json_text,
    shorten,
)
from rollouts.analysis.providers.vendor import (
    HttpCall,
    VendorProvider,
    as_number,
    number_measurement,
    profile_value,
)
from rollouts.models.base import parse_duration
from rollouts.models.providers import DatadogMetric

__all__ = ["DEFAULT_ADDRESS", "DatadogProvider"]

DEFAULT_ADDRESS = "https://api.datadoghq.com"
DEFAULT_INTERVAL = "5m"
DEFAULT_TIMEOUT = "10s"
MAX_GROUPS = 100


class DatadogProvider(VendorProvider):
    kind = "datadog"

    def request(
        self, spec: DatadogMetric, context: ProviderContext, now: datetime, secret: str
    ) -> HttpCall:
        address = profile_value(context, ("address",), secret, default=DEFAULT_ADDRESS)
        headers = {
            "DD-API-KEY": profile_value(context, ("api-key",), secret),
            "DD-APPLICATION-KEY": profile_value(context, ("app-key",), secret),
            "Accept": "application/json",
        }
        try:
            window = parse_duration(spec.interval or DEFAULT_INTERVAL)
            timeout = float(parse_duration(spec.request_timeout or DEFAULT_TIMEOUT))
        except ValueError as exc:
            raise ProviderError(ErrorReason.INVALID_SPEC, str(exc)) from None
        end = int(now.timestamp())
        start = end - window
        base = address.rstrip("/")
        if (spec.api_version or "v1") == "v1":
            assert spec.query is not None
            params = {"from": str(start), "to": str(end), "query": spec.query}
            return HttpCall("GET", base + "/api/v1/query", headers, params, timeout=timeout)
        queries = spec.queries or {"query": spec.query or ""}
        formula = spec.formula or next(iter(queries))
        body = {
            "data": {
                "type": "scalar_request",
                "attributes": {
                    "from": start * 1000,
                    "to": end * 1000,
                    "queries": [
                        {
                            "data_source": "metrics",
                            "name": name,
                            "query": query,
                            "aggregator": spec.aggregator or "last",
                        }
                        for name, query in queries.items()
                    ],
                    "formulas": [{"formula": formula}],
                },
            }
        }
        headers["Content-Type"] = "application/json"
        return HttpCall(
            "POST", base + "/api/v2/query/scalar", headers,
            content=json.dumps(body).encode(), timeout=timeout,
        )

    def parse(self, body: Any, response: httpx.Response) -> Measurement:
        if "series" in body or response.request.url.path.endswith("/v1/query"):
            return _parse_v1(body)
        return _parse_v2(body)


def _parse_v1(body: Any) -> Measurement:
    if body.get("status") == "error":
        raise ProviderError(ErrorReason.QUERY_ERROR, str(body.get("error") or "query failed"))
    series = body["series"]
    if not series:
        return number_measurement(None)
    points = series[0]["pointlist"]
    if not points:
        return number_measurement(None)
    return number_measurement(as_number(points[-1][1]))


def _parse_v2(body: Any) -> Measurement:
    errors = body.get("errors")
    if errors:
        raise ProviderError(ErrorReason.QUERY_ERROR, str(errors))
    columns = body["data"]["attributes"]["columns"]
    numbers = [c for c in columns if c.get("type") == "number"]
    groups = [c for c in columns if c.get("type") == "group"]
    if not numbers:
        return number_measurement(None)
    values = [as_number(v) for v in numbers[-1]["values"]]
    if not groups:
        return number_measurement(values[0] if values else None)
    finite = [v for v in values if v is not None]
    names = [
        ",".join(str(part) for group in groups for part in _group_parts(group, i))
        for i in range(len(values))
    ]
    pairs = sorted(
        ({"name": n, "value": v} for n, v in zip(names, values, strict=True)),
        key=lambda p: -(p["value"] if isinstance(p["value"], float) else float("-inf")),
    )
    metadata = {"groups": shorten(json_text(pairs[:MAX_GROUPS]))}
    if len(pairs) > MAX_GROUPS:
        metadata["groups_truncated"] = "true"
    raw = "[" + ",".join(format_float(v) for v in finite) + "]"
    return Measurement(finite, shorten(raw), "vector", metadata=metadata)


def _group_parts(column: dict[str, Any], index: int) -> list[object]:
    value = column["values"][index]
    return list(value) if isinstance(value, list) else [value]
