"""What every metric provider shares: the result types, the call context, HTTP plumbing.

A provider turns one resolved `Metric` (arguments already substituted) into one
`MeasurementResult`:

* a `Measurement`: the value the condition evaluator sees as `result`, plus a short
  printable `raw` form for `status.metricResults[].measurements[].value`; or
* a `ProviderError` (a `MetricError`) whose `reason` says why there is no value.

Providers *return* errors rather than raise them: a failed measurement is an ordinary
outcome that counts toward `consecutiveErrorLimit`, never a crash. An empty answer is a
`Measurement` whose `no_data` is true; the assessor must treat it as inconclusive or an
error, never as success (design invariant 3).

Providers do no Kubernetes I/O. Credentials named by a spec (`authentication.basic`,
`authentication.bearer`) are read from Secrets by the caller and handed in through
`ProviderContext`; `required_secrets()` says which (Secret, key) pairs a metric needs.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, Self, TypeAlias

import httpx

from rollouts.analysis.providers.egress import EgressDenied, EgressPolicy, ResponseTooLarge, fetch
from rollouts.errors import MetricError
from rollouts.models.analysis import Metric
from rollouts.models.providers import DEFAULT_PROFILES, PrometheusAuthentication

__all__ = [
    "RAW_LIMIT",
    "BasicCredentials",
    "ComparisonSamples",
    "ErrorReason",
    "HttpClients",
    "Measurement",
    "MeasurementResult",
    "MetricProviderProtocol",
    "ProviderContext",
    "ProviderError",
    "error_from_http_exception",
    "format_float",
    "http_status_error",
    "json_text",
    "required_secrets",
    "shorten",
]

# Longest `raw` text kept for the status; a large vector or JSON document is cut there.
RAW_LIMIT = 1024


class ErrorReason(StrEnum):
    """Why a provider produced no value. Stable strings: they appear in status messages."""

    TIMEOUT = "Timeout"
    CONNECTION = "ConnectionError"
    HTTP_STATUS = "HTTPStatus"
    QUERY_ERROR = "QueryError"  # the metrics server answered with an error body
    BAD_RESPONSE = "BadResponse"  # not JSON, or JSON of an unexpected shape
    JSON_PATH = "JSONPathNotFound"
    INVALID_SPEC = "InvalidSpec"  # e.g. no address, bad jsonPath, unresolved placeholder
    CREDENTIALS = "Credentials"  # the spec asks for credentials the caller did not resolve
    ADDRESS_DENIED = "AddressNotAllowed"  # the egress policy refuses the address
    TOO_LARGE = "ResponseTooLarge"


class ProviderError(MetricError):
    """A measurement that failed; `reason` classifies it, `str()` explains it."""

    def __init__(
        self, reason: ErrorReason, message: str, *, status_code: int | None = None
    ) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message
        self.status_code = status_code

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProviderError) and (
            self.reason,
            self.message,
            self.status_code,
        ) == (other.reason, other.message, other.status_code)

    def __hash__(self) -> int:
        return hash((self.reason, self.message, self.status_code))


@dataclass(frozen=True)
class Measurement:
    """One successful answer from a provider.

    `value` is what conditions see as `result`:
      * Prometheus vector -> list[float] in the order the server returned the series;
      * Prometheus scalar -> float;
      * Prometheus matrix (range query) -> list[float], all series flattened in order
        (series by series, each in time order), so `all(result, # < 1)` checks every
        point as in Argo Rollouts; `series` keeps the per-series labels;
      * Prometheus string -> str;
      * web -> the JSON value the jsonPath selects (dict, list, str, float, bool, None).
    NaN stays float('nan'); ±Inf stays ±inf.

    `raw` is the printable form stored in the status (Argo style: "[0.99,1]", "0.5", JSON
    for web), cut at RAW_LIMIT characters.
    """

    value: object
    raw: str
    kind: str  # "vector" | "scalar" | "matrix" | "string" | "json"
    series: tuple[Mapping[str, str], ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def no_data(self) -> bool:
        """True for an empty vector/matrix or a JSON null/empty list: never a success."""
        return self.value is None or (isinstance(self.value, list) and not self.value)


@dataclass(frozen=True)
class ComparisonSamples:
    """What a `compare` metric's queries returned for each side, as finite numbers.

    `canary` / `baseline`: the answers of `provider.prometheus.query` (every sample of a
    vector or matrix); `canary_total` / `baseline_total`: those of `compare.totalQuery`
    (sequentialCounts). NaN and infinite samples are dropped here.
    """

    canary: tuple[float, ...]
    baseline: tuple[float, ...]
    canary_total: tuple[float, ...] = ()
    baseline_total: tuple[float, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)


MeasurementResult: TypeAlias = Measurement | ComparisonSamples | ProviderError


@dataclass(frozen=True)
class BasicCredentials:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class ProviderContext:
    """Per-measurement inputs a provider must not fetch itself.

    `basic_auth` / `bearer_token` are the resolved values of the spec's
    `authentication` block; `headers` are extra resolved headers added after the spec's
    own (and before authentication, which wins on `Authorization`).
    """

    basic_auth: BasicCredentials | None = None
    bearer_token: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Every key of the Secret a vendor provider reads its credentials from (`profile`).
    profile: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_secrets(
        cls, metric: Metric, secrets: Mapping[tuple[str, str], str]
    ) -> ProviderContext:
        """Build the context from Secret values keyed by (secret name, key).

        Raises ProviderError(CREDENTIALS) naming the first missing (secret, key).
        """
        auth = _authentication(metric)
        if auth is None or (auth.basic is None and auth.bearer is None):
            return cls()

        def get(name: str, key: str) -> str:
            try:
                return secrets[(name, key)]
            except KeyError:
                raise ProviderError(
                    ErrorReason.CREDENTIALS, f"secret {name!r} has no key {key!r}"
                ) from None

        if auth.basic is not None:
            ref = auth.basic.secret_ref
            return cls(
                basic_auth=BasicCredentials(
                    get(ref.name, ref.username_key), get(ref.name, ref.password_key)
                )
            )
        assert auth.bearer is not None
        ref_b = auth.bearer.secret_key_ref
        return cls(bearer_token=get(ref_b.name, ref_b.key))

    def apply_auth(self, headers: dict[str, str]) -> httpx.Auth | None:
        """Add the bearer header to `headers`; return basic auth for httpx, if any."""
        if self.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self.bearer_token}"
        if self.basic_auth is not None:
            return httpx.BasicAuth(self.basic_auth.username, self.basic_auth.password)
        return None


def _authentication(metric: Metric) -> PrometheusAuthentication | None:
    prometheus = metric.provider.prometheus
    return prometheus.authentication if prometheus is not None else None


def required_secrets(metric: Metric) -> list[tuple[str, str]]:
    """The (Secret name, key) pairs the caller must read before measuring `metric`."""
    auth = _authentication(metric)
    if auth is None:
        return []
    if auth.basic is not None:
        ref = auth.basic.secret_ref
        return [(ref.name, ref.username_key), (ref.name, ref.password_key)]
    if auth.bearer is not None:
        return [(auth.bearer.secret_key_ref.name, auth.bearer.secret_key_ref.key)]
    return []


def profile_secret(metric: Metric) -> str | None:
    """The Secret whose keys a vendor provider reads its credentials from (Argo's names:
    `profile`, datadog's `secretRef.name`, else the provider's default), or None."""
    kind = metric.provider.kind
    default = DEFAULT_PROFILES.get(kind)
    if default is None:
        return None
    spec = metric.provider.spec
    ref = getattr(spec, "secret_ref", None)
    named = getattr(spec, "profile", None) or (ref.name if ref is not None else None)
    return str(named or default)


def check_credentials(metric: Metric, context: ProviderContext) -> ProviderError | None:
    """An error if the spec asks for credentials that the context does not carry.

    Sending the request without them would turn a configuration mistake into a
    confusing 401, or worse, into data from an unauthenticated tenant.
    """
    auth = _authentication(metric)
    if auth is None:
        return None
    if auth.basic is not None and context.basic_auth is None:
        return ProviderError(
            ErrorReason.CREDENTIALS,
            f"basic authentication from secret {auth.basic.secret_ref.name!r} was not resolved",
        )
    if auth.bearer is not None and context.bearer_token is None:
        return ProviderError(
            ErrorReason.CREDENTIALS,
            f"bearer token from secret {auth.bearer.secret_key_ref.name!r} was not resolved",
        )
    return None


class MetricProviderProtocol(Protocol):
    """One provider kind ("prometheus", "web", ...)."""

    async def measure(
        self, metric: Metric, context: ProviderContext, now: datetime
    ) -> MeasurementResult:
        """Take one measurement of `metric` (arguments already substituted) at `now`.

        Never raises for a failed measurement: returns a ProviderError instead.
        """
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


# -- formatting ----------------------------------------------------------------------------


def format_float(value: float) -> str:
    """Go's strconv.FormatFloat(v, 'f', -1, 64), as Prometheus and Argo print samples."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def shorten(text: str, limit: int = RAW_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_text(value: object) -> str:
    """Compact JSON for `raw`; NaN/Infinity kept readable rather than rejected."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


# -- HTTP ----------------------------------------------------------------------------------


def error_from_http_exception(exc: Exception, what: str) -> ProviderError:
    """Classify a transport-level failure of a request to `what` (an URL)."""
    if isinstance(exc, EgressDenied):
        return ProviderError(ErrorReason.ADDRESS_DENIED, f"request to {what} refused: {exc}")
    if isinstance(exc, ResponseTooLarge):
        return ProviderError(ErrorReason.TOO_LARGE, f"{what}: {exc}")
    if isinstance(exc, httpx.TooManyRedirects):
        return ProviderError(ErrorReason.CONNECTION, f"request to {what}: {exc}")
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return ProviderError(ErrorReason.TIMEOUT, f"request to {what} timed out")
    if isinstance(exc, httpx.ConnectError):
        detail = str(exc) or "connection failed"
        return ProviderError(ErrorReason.CONNECTION, f"cannot connect to {what}: {detail}")
    if isinstance(exc, httpx.HTTPError):
        detail = str(exc) or type(exc).__name__
        return ProviderError(ErrorReason.CONNECTION, f"request to {what} failed: {detail}")
    return ProviderError(ErrorReason.CONNECTION, f"request to {what} failed: {exc!r}")


def http_status_error(response: httpx.Response, url: str) -> ProviderError:
    """A non-2xx answer, with the start of its body (servers often explain themselves)."""
    snippet = shorten(response.text.strip(), 200)
    return ProviderError(
        ErrorReason.HTTP_STATUS,
        f"{url} answered {response.status_code} {response.reason_phrase}"
        + (f": {snippet}" if snippet else ""),
        status_code=response.status_code,
    )


class HttpClients:
    """Lazily created `httpx.AsyncClient`s, one per TLS-verification setting.

    Kept per provider instance (no module-level state) so connections are reused across
    measurements. Pass `transport` (e.g. `httpx.MockTransport`) to test without a network.
    """

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str = "rollouts-controller",
        client_factory: Callable[[bool], httpx.AsyncClient] | None = None,
        policy: EgressPolicy | None = None,
    ) -> None:
        self.policy = policy or EgressPolicy()
        self._transport = transport
        self._user_agent = user_agent
        self._factory = client_factory
        self._clients: dict[bool, httpx.AsyncClient] = {}

    def get(self, *, insecure: bool) -> httpx.AsyncClient:
        client = self._clients.get(insecure)
        if client is None or client.is_closed:
            if self._factory is not None:
                client = self._factory(insecure)
            else:
                client = httpx.AsyncClient(
                    transport=self._transport,
                    verify=not insecure,
                    headers={"User-Agent": self._user_agent},
                    follow_redirects=False,  # `fetch` follows them, checking each target
                )
            self._clients[insecure] = client
        return client

    async def fetch(
        self,
        method: str,
        url: str,
        *,
        insecure: bool = False,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        content: bytes | None = None,
        auth: httpx.Auth | None = None,
    ) -> httpx.Response | ProviderError:
        """One request under the egress policy, within `timeout` seconds overall; every
        failure (refused address, transport error, timeout, oversized body) is returned
        as a ProviderError naming `url`."""
        try:
            async with asyncio.timeout(timeout):
                return await fetch(
                    self.get(insecure=insecure), self.policy, method, url,
                    headers=headers, params=params, data=data, content=content, auth=auth,
                    timeout=timeout,
                )
        except (httpx.HTTPError, TimeoutError, EgressDenied, ResponseTooLarge) as exc:
            return error_from_http_exception(exc, url)
        except UnicodeEncodeError:  # not the exception's text: it quotes the (secret) value
            return ProviderError(
                ErrorReason.INVALID_SPEC, f"request to {url}: a header value is not ASCII"
            )

    async def aclose(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await client.aclose()


class HttpProvider:
    """The lifecycle shared by the HTTP-based providers: one client set, closed once."""

    _clients: HttpClients

    async def aclose(self) -> None:
        await self._clients.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
