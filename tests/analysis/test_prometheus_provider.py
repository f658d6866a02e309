"""The Prometheus provider: answer shapes and failures (MockTransport), then the real path.

The second half runs against a real Prometheus loaded with a recorded history (see
conftest.py) and queries it at past timestamps through the provider, as the controller
would with an injected clock.
"""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from rollouts.analysis.providers.base import (
    BasicCredentials,
    ErrorReason,
    Measurement,
    MeasurementResult,
    MetricProviderProtocol,
    ProviderContext,
    ProviderError,
    format_float,
    required_secrets,
)
from rollouts.analysis.providers.prometheus import RESOLVED_QUERY_KEY, PrometheusProvider
from rollouts.errors import MetricError
from rollouts.models.analysis import Metric
from rollouts.sandbox.prometheus import find_free_port
from tests.analysis.conftest import History

ADDRESS = "http://prometheus.test:9090"
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
SUCCESS_RATE = (
    'sum(rate(http_requests_total{{app="{app}",code="200"}}[5m]))'
    ' / sum(rate(http_requests_total{{app="{app}"}}[5m]))'
)


def metric(query: str = "up", **prometheus: Any) -> Metric:
    spec = {"address": ADDRESS, "query": query, **prometheus}
    return Metric.model_validate(
        {"name": "m", "successCondition": "result[0] >= 0.95", "provider": {"prometheus": spec}}
    )


Handler = Callable[[httpx.Request], Any]


class Recorder:
    """A MockTransport handler that answers with a fixed response and keeps the requests."""

    def __init__(self, response: httpx.Response | Handler) -> None:
        self.response = response
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if isinstance(self.response, httpx.Response):
            return self.response
        result = self.response(request)
        if asyncio.iscoroutine(result):
            result = await result
        assert isinstance(result, httpx.Response)
        return result

    @property
    def form(self) -> dict[str, str]:
        body = parse_qs(self.requests[-1].content.decode())
        return {key: values[0] for key, values in body.items()}


def ok(data: dict[str, Any], **extra: Any) -> httpx.Response:
    return httpx.Response(200, json={"status": "success", "data": data, **extra})


def vector(*values: str, labels: list[dict[str, str]] | None = None) -> httpx.Response:
    labels = labels or [{} for _ in values]
    result = [
        {"metric": lab, "value": [NOW.timestamp(), v]}
        for lab, v in zip(labels, values, strict=True)
    ]
    return ok({"resultType": "vector", "result": result})


async def measure(
    handler: httpx.Response | Handler,
    m: Metric | None = None,
    context: ProviderContext | None = None,
    **provider_args: Any,
) -> tuple[MeasurementResult, Recorder]:
    recorder = Recorder(handler)
    provider = PrometheusProvider(transport=httpx.MockTransport(recorder), **provider_args)
    async with provider:
        result = await provider.measure(m or metric(), context or ProviderContext(), NOW)
    return result, recorder


def value_of(result: MeasurementResult) -> Measurement:
    assert isinstance(result, Measurement), f"expected a measurement, got {result!r}"
    return result


def error_of(result: MeasurementResult) -> ProviderError:
    assert isinstance(result, ProviderError), f"expected an error, got {result!r}"
    assert isinstance(result, MetricError)
    return result


def test_providers_satisfy_the_protocol() -> None:
    provider: MetricProviderProtocol = PrometheusProvider()
    assert provider is not None


# -- answer shapes ----------------------------------------------------------------------------


async def test_vector_becomes_a_list_of_floats_in_series_order() -> None:
    labels = [{"pod": "b"}, {"pod": "a"}]
    result, recorder = await measure(vector("0.99", "1", labels=labels), metric("q"))
    m = value_of(result)
    assert m.value == [0.99, 1.0]
    assert m.raw == "[0.99,1]"
    assert m.kind == "vector"
    assert m.series == ({"pod": "b"}, {"pod": "a"})
    assert m.metadata == {RESOLVED_QUERY_KEY: "q"}
    assert not m.no_data

    request = recorder.requests[0]
    assert request.method == "POST"
    assert request.url == httpx.URL(f"{ADDRESS}/api/v1/query")
    assert recorder.form == {"query": "q", "time": f"{NOW.timestamp():.3f}", "timeout": "30s"}


async def test_scalar_becomes_a_float() -> None:
    result, _ = await measure(ok({"resultType": "scalar", "result": [NOW.timestamp(), "0.5"]}))
    m = value_of(result)
    assert (m.value, m.raw, m.kind) == (0.5, "0.5", "scalar")


async def test_empty_vector_is_no_data_not_a_value() -> None:
    m = value_of((await measure(ok({"resultType": "vector", "result": []})))[0])
    assert m.value == []
    assert m.raw == "[]"
    assert m.no_data


async def test_nan_and_infinities_are_kept() -> None:
    m = value_of((await measure(vector("NaN", "+Inf", "-Inf")))[0])
    assert isinstance(m.value, list)
    assert math.isnan(m.value[0])
    assert m.value[1:] == [math.inf, -math.inf]
    assert m.raw == "[NaN,+Inf,-Inf]"
    scalar = ok({"resultType": "scalar", "result": [1, "NaN"]})
    m = value_of((await measure(scalar))[0])
    assert isinstance(m.value, float) and math.isnan(m.value)
    assert not m.no_data  # NaN is a value; conditions decide what it means


async def test_string_result() -> None:
    m = value_of((await measure(ok({"resultType": "string", "result": [1, "hello"]})))[0])
    assert (m.value, m.raw, m.kind) == ("hello", "hello", "string")


async def test_range_query_flattens_the_matrix_series_by_series() -> None:
    matrix = ok(
        {
            "resultType": "matrix",
            "result": [
                {"metric": {"pod": "a"}, "values": [[1, "1"], [2, "2"]]},
                {"metric": {"pod": "b"}, "values": [[1, "3"]]},
            ],
        }
    )
    rq = {"start": 'now() - duration("5m")', "end": "now()", "step": "1m"}
    result, recorder = await measure(matrix, metric("q", rangeQuery=rq, timeout=5))
    m = value_of(result)
    assert m.value == [1.0, 2.0, 3.0]
    assert m.kind == "matrix"
    assert m.series == ({"pod": "a"}, {"pod": "b"})
    assert recorder.requests[0].url.path == "/api/v1/query_range"
    assert recorder.form == {
        "query": "q",
        "start": f"{(NOW - timedelta(minutes=5)).timestamp():.3f}",
        "end": f"{NOW.timestamp():.3f}",
        "step": "60",
        "timeout": "5s",
    }


async def test_warnings_go_to_metadata() -> None:
    response = ok({"resultType": "vector", "result": []}, warnings=["partial data"])
    m = value_of((await measure(response))[0])
    assert m.metadata["warnings"] == '"partial data"'


async def test_raw_is_cut_for_huge_vectors() -> None:
    m = value_of((await measure(vector(*["0.123456789"] * 500)))[0])
    assert isinstance(m.value, list) and len(m.value) == 500
    assert len(m.raw) == 1024 and m.raw.endswith("...")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.1, "0.1"),
        (1e-7, "0.0000001"),
        (1e21, "1000000000000000000000"),
        (-2.5, "-2.5"),
    ],
)
def test_format_float_prints_like_prometheus(value: float, text: str) -> None:
    assert format_float(value) == text


# -- failures ---------------------------------------------------------------------------------


async def test_prometheus_error_body_is_a_query_error_with_its_message() -> None:
    body = {"status": "error", "errorType": "bad_data", "error": "1:5: parse error: unclosed"}
    err = error_of((await measure(httpx.Response(400, json=body)))[0])
    assert err.reason is ErrorReason.QUERY_ERROR
    assert err.status_code == 400
    assert "bad_data: 1:5: parse error: unclosed" in str(err)


@pytest.mark.parametrize("status", [422, 503])
async def test_execution_and_timeout_error_bodies(status: int) -> None:
    body = {"status": "error", "errorType": "timeout", "error": "query timed out"}
    err = error_of((await measure(httpx.Response(status, json=body)))[0])
    assert (err.reason, err.status_code) == (ErrorReason.QUERY_ERROR, status)


async def test_http_500_without_a_json_body() -> None:
    err = error_of((await measure(httpx.Response(500, text="upstream exploded")))[0])
    assert err.reason is ErrorReason.HTTP_STATUS
    assert err.status_code == 500
    assert "500" in str(err) and "upstream exploded" in str(err)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>login</html>"),
        httpx.Response(200, json=["not", "an", "object"]),
        httpx.Response(200, json={"status": "success", "data": {"resultType": "histogram"}}),
        httpx.Response(200, json={"status": "success", "data": {"resultType": "vector"}}),
        httpx.Response(
            200,
            json={
                "status": "success",
                "data": {"resultType": "vector", "result": [{"value": [1, 0.5]}]},
            },
        ),
    ],
    ids=["html", "json-list", "unknown-type", "no-result", "number-not-string"],
)
async def test_bad_answers_are_errors(response: httpx.Response) -> None:
    err = error_of((await measure(response))[0])
    assert err.reason is ErrorReason.BAD_RESPONSE


async def test_transport_timeout() -> None:
    def raise_timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    err = error_of((await measure(raise_timeout))[0])
    assert err.reason is ErrorReason.TIMEOUT


async def test_slow_server_hits_the_overall_deadline() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return vector("1")

    loop = asyncio.get_running_loop()
    started = loop.time()
    err = error_of((await measure(slow, default_timeout=0.05))[0])
    assert err.reason is ErrorReason.TIMEOUT
    assert loop.time() - started < 5


async def test_connection_refused() -> None:
    port = find_free_port()  # nothing listens there
    provider = PrometheusProvider()
    async with provider:
        result = await provider.measure(
            metric(address=f"http://127.0.0.1:{port}"), ProviderContext(), NOW
        )
    err = error_of(result)
    assert err.reason is ErrorReason.CONNECTION
    assert f"127.0.0.1:{port}" in str(err)


@pytest.mark.parametrize(
    ("address", "default", "message"),
    [(None, None, "not configured"), ("prometheus:9090", None, "not an http(s) URL")],
)
async def test_bad_or_missing_address(
    address: str | None, default: str | None, message: str
) -> None:
    m = Metric.model_validate(
        {"name": "m", "provider": {"prometheus": {"query": "up", "address": address}}}
    )
    result, recorder = await measure(vector("1"), m, default_address=default)
    err = error_of(result)
    assert err.reason is ErrorReason.INVALID_SPEC and message in str(err)
    assert recorder.requests == []


async def test_default_address_and_path_prefix() -> None:
    m = Metric.model_validate({"name": "m", "provider": {"prometheus": {"query": "up"}}})
    _, recorder = await measure(vector("1"), m, default_address="http://thanos:10902/prom/")
    assert recorder.requests[0].url == httpx.URL("http://thanos:10902/prom/api/v1/query")


async def test_get_fallback_when_post_is_not_allowed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(405)
        return vector("1")

    result, recorder = await measure(handler)
    assert value_of(result).value == [1.0]
    assert [r.method for r in recorder.requests] == ["POST", "GET"]
    assert recorder.requests[1].url.params["query"] == "up"


async def test_unresolved_range_placeholder_is_an_invalid_spec() -> None:
    rq = {"start": "{{args.lookback}}", "end": "now()", "step": "1m"}
    err = error_of((await measure(vector("1"), metric(rangeQuery=rq)))[0])
    assert err.reason is ErrorReason.INVALID_SPEC


async def test_wrong_provider_kind() -> None:
    web = Metric.model_validate({"name": "w", "provider": {"web": {"url": "http://x"}}})
    err = error_of((await measure(vector("1"), web))[0])
    assert err.reason is ErrorReason.INVALID_SPEC


# -- headers and credentials ----------------------------------------------------------------


async def test_spec_headers_are_sent() -> None:
    m = metric(headers=[{"key": "X-Scope-OrgID", "value": "tenant_a"}])
    _, recorder = await measure(vector("1"), m)
    assert recorder.requests[0].headers["X-Scope-OrgID"] == "tenant_a"


async def test_bearer_token_from_context() -> None:
    auth = {"bearer": {"secretKeyRef": {"name": "prom", "key": "token"}}}
    m = metric(authentication=auth)
    assert required_secrets(m) == [("prom", "token")]
    context = ProviderContext.from_secrets(m, {("prom", "token"): "s3cret"})
    _, recorder = await measure(vector("1"), m, context)
    assert recorder.requests[0].headers["Authorization"] == "Bearer s3cret"
    assert "s3cret" not in repr(context)


async def test_basic_auth_from_context() -> None:
    ref = {"name": "prom", "usernameKey": "user", "passwordKey": "pass"}
    m = metric(authentication={"basic": {"secretRef": ref}})
    assert required_secrets(m) == [("prom", "user"), ("prom", "pass")]
    context = ProviderContext.from_secrets(m, {("prom", "user"): "ann", ("prom", "pass"): "pw"})
    assert context.basic_auth == BasicCredentials("ann", "pw")
    _, recorder = await measure(vector("1"), m, context)
    expected = base64.b64encode(b"ann:pw").decode()
    assert recorder.requests[0].headers["Authorization"] == f"Basic {expected}"


async def test_unresolved_credentials_are_an_error_and_nothing_is_sent() -> None:
    m = metric(authentication={"bearer": {"secretKeyRef": {"name": "prom", "key": "token"}}})
    result, recorder = await measure(vector("1"), m, ProviderContext())
    assert error_of(result).reason is ErrorReason.CREDENTIALS
    assert recorder.requests == []


def test_missing_secret_key_names_it() -> None:
    m = metric(authentication={"bearer": {"secretKeyRef": {"name": "prom", "key": "token"}}})
    with pytest.raises(ProviderError) as info:
        ProviderContext.from_secrets(m, {})
    assert info.value.reason is ErrorReason.CREDENTIALS
    assert "'prom'" in str(info.value) and "'token'" in str(info.value)


def test_no_authentication_needs_no_secrets() -> None:
    assert required_secrets(metric()) == []
    assert ProviderContext.from_secrets(metric(), {}) == ProviderContext()


# -- a real Prometheus with a recorded history ------------------------------------------------


def at(history: History, offset: float = 0) -> datetime:
    return datetime.fromtimestamp(history.at + offset, tz=UTC)


async def real(
    history: History, query: str, when: datetime, **prometheus: Any
) -> MeasurementResult:
    m = metric(query, **{"address": history.prometheus.url, **prometheus})
    async with PrometheusProvider() as provider:
        return await provider.measure(m, ProviderContext(), when)


@pytest.mark.prometheus
@pytest.mark.parametrize(("app", "expected"), [("good", 1.0), ("bad", 0.6)])
async def test_real_success_rate_at_a_past_moment(
    prometheus_history: History, app: str, expected: float
) -> None:
    m = value_of(
        await real(prometheus_history, SUCCESS_RATE.format(app=app), at(prometheus_history))
    )
    assert m.kind == "vector"
    assert m.value == [pytest.approx(expected)]


@pytest.mark.prometheus
async def test_real_zero_over_zero_is_nan(prometheus_history: History) -> None:
    m = value_of(
        await real(prometheus_history, SUCCESS_RATE.format(app="idle"), at(prometheus_history))
    )
    assert isinstance(m.value, list) and len(m.value) == 1 and math.isnan(m.value[0])
    assert m.raw == "[NaN]"


@pytest.mark.prometheus
async def test_real_imported_nan_sample(prometheus_history: History) -> None:
    when = datetime.fromtimestamp(prometheus_history.end, tz=UTC)
    m = value_of(await real(prometheus_history, 'weird_gauge{kind="nan"}', when))
    assert isinstance(m.value, list) and math.isnan(m.value[0])


@pytest.mark.prometheus
async def test_real_query_before_the_history_has_no_data(prometheus_history: History) -> None:
    before = datetime.fromtimestamp(prometheus_history.start - 3600, tz=UTC)
    m = value_of(await real(prometheus_history, SUCCESS_RATE.format(app="good"), before))
    assert m.value == [] and m.no_data


@pytest.mark.prometheus
async def test_real_series_labels_and_order(prometheus_history: History) -> None:
    query = "sort_desc(avg by (app) (request_latency_seconds))"
    m = value_of(await real(prometheus_history, query, at(prometheus_history)))
    assert m.value == [2.5, 0.125]
    assert m.series == ({"app": "bad"}, {"app": "good"})


@pytest.mark.prometheus
async def test_real_scalar(prometheus_history: History) -> None:
    query = 'scalar(sum(rate(http_requests_total{app="bad",code="500"}[5m])))'
    m = value_of(await real(prometheus_history, query, at(prometheus_history)))
    assert m.kind == "scalar" and m.value == pytest.approx(4.0)


@pytest.mark.prometheus
async def test_real_range_query(prometheus_history: History) -> None:
    rq = {"start": 'now() - duration("5m")', "end": "now()", "step": "1m"}
    m = value_of(
        await real(
            prometheus_history, "request_latency_seconds", at(prometheus_history), rangeQuery=rq
        )
    )
    assert m.kind == "matrix"
    assert len(m.series) == 2
    assert isinstance(m.value, list) and len(m.value) == 12  # 2 series x 6 steps
    assert sorted(set(m.value)) == [0.125, 2.5]


@pytest.mark.prometheus
async def test_real_bad_query_is_a_query_error(prometheus_history: History) -> None:
    err = error_of(await real(prometheus_history, "sum(rate(x[5m])", at(prometheus_history)))
    assert err.reason is ErrorReason.QUERY_ERROR
    assert err.status_code == 400
    assert "bad_data" in str(err) and "parse error" in str(err)
