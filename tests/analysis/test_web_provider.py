"""The web provider and its jsonPath subset, against httpx.MockTransport."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from rollouts.analysis.providers.base import (
    ErrorReason,
    Measurement,
    MeasurementResult,
    MetricProviderProtocol,
    ProviderContext,
    ProviderError,
)
from rollouts.analysis.providers.web import (
    JsonPath,
    JsonPathError,
    JsonPathNotFoundError,
    WebProvider,
)
from rollouts.models.analysis import Metric
from tests.analysis.test_prometheus_provider import Recorder

URL = "http://checks.test/api/health"
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
DOC = {
    "data": {"ok": True, "ratio": 0.97, "name": "canary", "missing": None},
    "a": {"b": [10, 20, 30]},
    "items": [{"value": 1}, {"value": 2}, {"other": 3}],
    "key-with-dash": "x",
}


def metric(**web: Any) -> Metric:
    return Metric.model_validate(
        {
            "name": "w",
            "successCondition": "result == true",
            "provider": {"web": {"url": URL, **web}},
        }
    )


async def measure(
    response: Any, m: Metric | None = None, context: ProviderContext | None = None, **kw: Any
) -> tuple[MeasurementResult, Recorder]:
    recorder = Recorder(response)
    async with WebProvider(transport=httpx.MockTransport(recorder), **kw) as provider:
        result = await provider.measure(m or metric(), context or ProviderContext(), NOW)
    return result, recorder


def value_of(result: MeasurementResult) -> Measurement:
    assert isinstance(result, Measurement), f"expected a measurement, got {result!r}"
    return result


def error_of(result: MeasurementResult) -> ProviderError:
    assert isinstance(result, ProviderError), f"expected an error, got {result!r}"
    return result


def test_web_provider_satisfies_the_protocol() -> None:
    provider: MetricProviderProtocol = WebProvider()
    assert provider is not None


# -- jsonPath ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("{$}", DOC),
        ("$", DOC),
        ("{$.data.ok}", True),
        ("$.data.ok", True),
        ("{.data.ratio}", 0.97),
        ("data.name", "canary"),
        ("$.a.b[0]", 10),
        ("{$.a.b[-1]}", 30),
        ("$['key-with-dash']", "x"),
        ('$["data"]["name"]', "canary"),
        ("$.data.missing", None),
        ("{ $.data.ok }", True),
        ("$.items[*].value", [1, 2]),
        ("$.a.b[*]", [10, 20, 30]),
        ("$.a.*", [[10, 20, 30]]),
    ],
)
def test_json_path_subset(path: str, expected: object) -> None:
    assert JsonPath(path).find(DOC) == expected


@pytest.mark.parametrize(
    "path", ["$.nope", "$.data.ok.deeper", "$.a.b[3]", "$.a.b[-4]", "$.data[0]", "$.items[*].zzz"]
)
def test_json_path_not_found(path: str) -> None:
    with pytest.raises(JsonPathNotFoundError):
        JsonPath(path).find(DOC)


@pytest.mark.parametrize(
    "path", ["$..value", "$.items[?(@.value>1)]", "$.a.b[0:2]", "$.a.b[x]", "$.a.[", "$.", "#"]
)
def test_json_path_unsupported_syntax(path: str) -> None:
    with pytest.raises(JsonPathError):
        JsonPath(path)


# -- requests ---------------------------------------------------------------------------------


async def test_get_with_json_path() -> None:
    result, recorder = await measure(httpx.Response(200, json=DOC), metric(jsonPath="{$.data.ok}"))
    m = value_of(result)
    assert (m.value, m.raw, m.kind) == (True, "true", "json")
    request = recorder.requests[0]
    assert request.method == "GET" and request.url == httpx.URL(URL)
    assert request.content == b""


async def test_default_json_path_is_the_whole_document() -> None:
    m = value_of((await measure(httpx.Response(200, json=DOC)))[0])
    assert m.value == DOC
    assert json.loads(m.raw) == DOC


async def test_string_value_raw_is_not_quoted() -> None:
    m = value_of((await measure(httpx.Response(200, json=DOC), metric(jsonPath="$.data.name")))[0])
    assert (m.value, m.raw) == ("canary", "canary")


async def test_post_json_body_and_headers() -> None:
    m = metric(
        method="POST",
        jsonBody={"service": "app", "window": 5},
        headers=[{"key": "X-Team", "value": "payments"}],
        jsonPath="$.a.b[1]",
    )
    result, recorder = await measure(httpx.Response(200, json=DOC), m)
    assert value_of(result).value == 20
    request = recorder.requests[0]
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Team"] == "payments"
    assert json.loads(request.content) == {"service": "app", "window": 5}


async def test_put_raw_body() -> None:
    m = metric(
        method="PUT", body="plain text", headers=[{"key": "Content-Type", "value": "text/plain"}]
    )
    _, recorder = await measure(httpx.Response(200, json={}), m)
    request = recorder.requests[0]
    assert (request.method, request.content) == ("PUT", b"plain text")
    assert request.headers["Content-Type"] == "text/plain"


async def test_context_headers_and_bearer_token() -> None:
    context = ProviderContext(bearer_token="tok", headers={"X-Extra": "1"})
    _, recorder = await measure(httpx.Response(200, json={}), metric(), context)
    headers = recorder.requests[0].headers
    assert headers["Authorization"] == "Bearer tok" and headers["X-Extra"] == "1"


# -- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 404, 500, 503])
async def test_non_2xx_is_an_error(status: int) -> None:
    err = error_of((await measure(httpx.Response(status, text="nope")))[0])
    assert (err.reason, err.status_code) == (ErrorReason.HTTP_STATUS, status)
    assert str(status) in str(err)


async def test_body_that_is_not_json() -> None:
    err = error_of((await measure(httpx.Response(200, text="OK")))[0])
    assert err.reason is ErrorReason.BAD_RESPONSE


async def test_json_path_not_found_is_an_error() -> None:
    err = error_of(
        (await measure(httpx.Response(200, json=DOC), metric(jsonPath="$.data.nope")))[0]
    )
    assert err.reason is ErrorReason.JSON_PATH
    assert "$.data.nope" in str(err)


async def test_invalid_json_path_sends_nothing() -> None:
    result, recorder = await measure(httpx.Response(200, json=DOC), metric(jsonPath="$..x"))
    assert error_of(result).reason is ErrorReason.INVALID_SPEC
    assert recorder.requests == []


async def test_timeout_from_transport() -> None:
    def raise_timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    assert error_of((await measure(raise_timeout))[0]).reason is ErrorReason.TIMEOUT


async def test_connection_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    err = error_of((await measure(refuse))[0])
    assert err.reason is ErrorReason.CONNECTION and "Connection refused" in str(err)


async def test_empty_list_is_no_data() -> None:
    m = value_of(
        (await measure(httpx.Response(200, json={"rows": []}), metric(jsonPath="$.rows")))[0]
    )
    assert m.value == [] and m.no_data
