"""What the HTTP vendor providers (datadog, newRelic, graphite, influxdb, wavefront,
skywalking) share: build one request, send it under the egress policy, parse the answer.

Each vendor module says only how its request looks (`request`) and what its answer means
(`parse`); sending, timeouts, status codes and shape errors are handled here once, so every
vendor classifies failures the same way (`ErrorReason`) and an empty answer is always
`no_data`, never a success.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from rollouts.analysis.providers.base import (
    ErrorReason,
    HttpClients,
    HttpProvider,
    Measurement,
    MeasurementResult,
    ProviderContext,
    ProviderError,
    format_float,
    http_status_error,
    json_text,
    profile_secret,
    shorten,
)
from rollouts.analysis.providers.egress import EgressPolicy
from rollouts.models.analysis import Metric
from rollouts.models.base import ApiModel

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "HttpCall",
    "VendorProvider",
    "json_measurement",
    "number_measurement",
    "profile_value",
    "raise_graphql_errors",
]

DEFAULT_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class HttpCall:
    """One request to a vendor's API."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    params: dict[str, str] | None = None
    content: bytes | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS


def profile_value(
    context: ProviderContext, keys: tuple[str, ...], secret: str, *, default: str | None = None
) -> str:
    """The first of `keys` present in the provider's Secret; ProviderError(CREDENTIALS)
    naming the Secret and the key when none is and there is no default."""
    for key in keys:
        value = context.profile.get(key)
        if value:
            return value
    if default is not None:
        return default
    raise ProviderError(
        ErrorReason.CREDENTIALS, f"secret {secret!r} has no key {' or '.join(map(repr, keys))}"
    )


def number_measurement(value: float | None) -> Measurement:
    """A single number (None: no data, which is never a success)."""
    return Measurement(value, "" if value is None else format_float(value), "scalar")


def json_measurement(value: object) -> Measurement:
    raw = value if isinstance(value, str) else json_text(value)
    return Measurement(value, shorten(raw), "json")


def as_number(value: object) -> float | None:
    """A JSON number (or numeric string) as float; None for null."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


class VendorProvider(HttpProvider):
    """Subclasses set `kind` (the provider's Argo name) and implement `request`/`parse`."""

    kind: str = ""

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clients: HttpClients | None = None,
        policy: EgressPolicy | None = None,
    ) -> None:
        self._clients = clients or HttpClients(transport=transport, policy=policy)

    def request(
        self, spec: Any, context: ProviderContext, now: datetime, secret: str
    ) -> HttpCall:
        """The request for one measurement; raise ProviderError for a spec or credentials
        problem."""
        raise NotImplementedError

    def parse(self, body: Any, response: httpx.Response) -> Measurement:
        """The measurement in a 2xx JSON answer; ProviderError(QUERY_ERROR) when the body
        reports a failed query, ValueError/KeyError/TypeError for an unexpected shape."""
        raise NotImplementedError

    def decode(self, response: httpx.Response) -> Any:
        """The body as data (JSON unless a vendor says otherwise)."""
        return json.loads(response.content)

    async def measure(
        self, metric: Metric, context: ProviderContext, now: datetime
    ) -> MeasurementResult:
        if metric.provider.kind != self.kind:
            return ProviderError(
                ErrorReason.INVALID_SPEC, f"metric {metric.name!r} has no {self.kind} provider"
            )
        spec: ApiModel = metric.provider.spec
        try:
            call = self.request(spec, context, now, profile_secret(metric) or "")
        except ProviderError as exc:
            return exc
        if not call.url.startswith(("http://", "https://")):
            return ProviderError(
                ErrorReason.INVALID_SPEC, f"{self.kind} address {call.url!r} is not an http(s) URL"
            )
        response = await self._clients.fetch(
            call.method, call.url, params=call.params, headers=call.headers,
            content=call.content, timeout=call.timeout,
        )
        if isinstance(response, ProviderError):
            return response
        try:
            body = self.decode(response)
        except (ValueError, UnicodeDecodeError):
            body = None
        if not 200 <= response.status_code < 300:
            error = _error_text(body)
            if error is not None:
                return ProviderError(
                    ErrorReason.QUERY_ERROR, error, status_code=response.status_code
                )
            return http_status_error(response, call.url)
        if body is None:
            return ProviderError(
                ErrorReason.BAD_RESPONSE,
                f"{call.url} did not answer with {self.kind} data: "
                f"{shorten(response.text, 200)!r}",
                status_code=response.status_code,
            )
        try:
            return self.parse(body, response)
        except ProviderError as exc:
            return exc
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            return ProviderError(
                ErrorReason.BAD_RESPONSE,
                f"unexpected answer from {call.url}: {type(exc).__name__}: {exc}",
                status_code=response.status_code,
            )


def raise_graphql_errors(body: Mapping[str, Any]) -> None:
    """ProviderError(QUERY_ERROR) with the first message of a GraphQL `errors` answer."""
    message = _error_text({"errors": body.get("errors")})
    if message is not None:
        raise ProviderError(ErrorReason.QUERY_ERROR, message)


def _error_text(body: object) -> str | None:
    """The message of a JSON error body in the forms vendors use, if any."""
    if not isinstance(body, Mapping):
        return None
    for key in ("errors", "error", "message"):
        found = body.get(key)
        if isinstance(found, list) and found:
            first = found[0]
            return str(first.get("message", first) if isinstance(first, Mapping) else first)
        if isinstance(found, str) and found:
            return found
    return None
