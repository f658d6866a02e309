"""The vendor providers against a local HTTP server speaking each vendor's documented API:
the request they send (path, query, headers with the Secret's credentials, body), the value
they read, and the error, timeout and empty-result cases."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from rollouts.analysis.providers.base import (
    ErrorReason,
    Measurement,
    ProviderContext,
    ProviderError,
)
from rollouts.analysis.providers.datadog import DatadogProvider
from rollouts.analysis.providers.graphite import GraphiteProvider
from rollouts.analysis.providers.influxdb import InfluxdbProvider, parse_annotated_csv
from rollouts.analysis.providers.newrelic import NewRelicProvider
from rollouts.analysis.providers.skywalking import SkyWalkingProvider
from rollouts.analysis.providers.vendor import VendorProvider
from rollouts.analysis.providers.wavefront import WavefrontProvider
from rollouts.models.analysis import Metric
from tests.analysis.local_http import LocalServer, serve

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
END = int(NOW.timestamp())


def metric(kind: str, **spec: Any) -> Metric:
    return Metric.model_validate({"name": "m", "provider": {kind: spec}})


def reply(body: object, status: int = 200, *, text: str | None = None,
          content_type: str = "application/json", delay: float = 0) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        if delay:
            await asyncio.sleep(delay)
        if text is not None:
            return web.Response(text=text, status=status, content_type=content_type)
        return web.json_response(body, status=status)

    return handler


async def measure(provider_type: Callable[[], VendorProvider], routes: dict[Any, Any],
                  make_metric: Callable[[str], Metric], profile: dict[str, str] | None = None,
                  ) -> tuple[Any, LocalServer]:
    async with serve(routes) as server, provider_type() as provider:
        context = ProviderContext(profile={k: v.replace("{url}", server.url)
                                           for k, v in (profile or {}).items()})
        result = await provider.measure(make_metric(server.url), context, NOW)
    return result, server


# --- datadog ---------------------------------------------------------------------------------

DD_SECRET = {"address": "{url}", "api-key": "dd-api", "app-key": "dd-app"}


async def test_datadog_v1_reads_the_last_point_of_the_first_series() -> None:
    body = {"status": "ok", "series": [{"pointlist": [[1, 0.5], [2, 0.25]]}, {"pointlist": []}]}
    result, server = await measure(
        DatadogProvider, {("GET", "/api/v1/query"): reply(body)},
        lambda _: metric("datadog", query="sum:errors{svc:web}", interval="10m"), DD_SECRET)
    assert isinstance(result, Measurement) and result.value == 0.25 and result.raw == "0.25"
    request = server.requests[0]
    assert request.headers["DD-API-KEY"] == "dd-api"
    assert request.headers["DD-APPLICATION-KEY"] == "dd-app"
    assert dict(request.query) == {"from": str(END - 600), "to": str(END),
                                   "query": "sum:errors{svc:web}"}


async def test_datadog_v2_sends_queries_and_formula_and_reads_the_scalar() -> None:
    body = {"data": {"type": "scalar_response", "attributes": {"columns": [
        {"type": "number", "name": "a", "values": [0.03]}]}}}
    result, server = await measure(
        DatadogProvider, {("POST", "/api/v2/query/scalar"): reply(body)},
        lambda _: metric("datadog", apiVersion="v2", aggregator="sum",
                         queries={"a": "sum:errors", "b": "sum:requests"}, formula="a / b"),
        DD_SECRET)
    assert isinstance(result, Measurement) and result.value == 0.03
    sent = json.loads(server.bodies[0])["data"]["attributes"]
    assert sent["from"] == (END - 300) * 1000 and sent["to"] == END * 1000
    assert sent["formulas"] == [{"formula": "a / b"}]
    assert [(q["name"], q["query"], q["aggregator"]) for q in sent["queries"]] == [
        ("a", "sum:errors", "sum"), ("b", "sum:requests", "sum")]


async def test_datadog_v2_grouped_answers_are_a_list_with_group_names() -> None:
    body = {"data": {"attributes": {"columns": [
        {"type": "group", "name": "resource_name", "values": [["GET /a"], ["GET /b"]]},
        {"type": "number", "name": "query", "values": [0.01, 0.2]}]}}}
    result, _ = await measure(
        DatadogProvider, {("POST", "/api/v2/query/scalar"): reply(body)},
        lambda _: metric("datadog", apiVersion="v2", query="sum:e by {resource_name}"),
        DD_SECRET)
    assert isinstance(result, Measurement) and result.value == [0.01, 0.2]
    assert json.loads(result.metadata["groups"])[0] == {"name": "GET /b", "value": 0.2}


@pytest.mark.parametrize(
    ("body", "status", "reason", "no_data"),
    [
        ({"status": "ok", "series": []}, 200, None, True),
        ({"status": "ok", "series": [{"pointlist": []}]}, 200, None, True),
        ({"status": "error", "error": "Rule is not valid"}, 400, ErrorReason.QUERY_ERROR, False),
        ({"errors": ["Forbidden"]}, 403, ErrorReason.QUERY_ERROR, False),
        ({"series": "nope"}, 200, ErrorReason.BAD_RESPONSE, False),
    ],
)
async def test_datadog_errors_and_empty(body: object, status: int, reason: ErrorReason | None,
                                        no_data: bool) -> None:
    result, _ = await measure(
        DatadogProvider, {("GET", "/api/v1/query"): reply(body, status)},
        lambda _: metric("datadog", query="q"), DD_SECRET)
    if reason is None:
        assert isinstance(result, Measurement) and result.no_data is no_data
    else:
        assert isinstance(result, ProviderError) and result.reason is reason


async def test_datadog_timeout_and_missing_keys() -> None:
    result, _ = await measure(
        DatadogProvider, {("GET", "/api/v1/query"): reply({}, delay=3)},
        lambda _: metric("datadog", query="q", requestTimeout="1s"), DD_SECRET)
    assert isinstance(result, ProviderError) and result.reason is ErrorReason.TIMEOUT
    result, server = await measure(
        DatadogProvider, {}, lambda _: metric("datadog", query="q"), {"api-key": "k"})
    assert isinstance(result, ProviderError) and result.reason is ErrorReason.CREDENTIALS
    assert "'app-key'" in result.message and "'datadog'" in result.message
    assert not server.requests


# --- newRelic --------------------------------------------------------------------------------

NR_SECRET = {"ARGO_ROLLOUTS_NEWRELIC_APIKEY": "nr-key",
             "ARGO_ROLLOUTS_NEWRELIC_ACCOUNT_ID": "1234",
             "ARGO_ROLLOUTS_NEWRELIC_BASE_URL_NERD_GRAPH": "{url}/graphql"}


def nerdgraph(results: object) -> dict[str, Any]:
    return {"data": {"actor": {"account": {"nrql": {"results": results}}}}}


@pytest.mark.parametrize(
    ("results", "value"),
    [([{"successRate": 0.99}], {"successRate": 0.99}),
     ([{"a": 1}, {"a": 2}], [{"a": 1}, {"a": 2}]),
     ([], [])],
)
async def test_newrelic_nrql_through_nerdgraph(results: object, value: object) -> None:
    result, server = await measure(
        NewRelicProvider, {("POST", "/graphql"): reply(nerdgraph(results))},
        lambda _: metric("newRelic", query="SELECT count(*) FROM Transaction"), NR_SECRET)
    assert isinstance(result, Measurement) and result.value == value
    assert result.no_data is (value == [])
    assert server.requests[0].headers["API-Key"] == "nr-key"
    sent = json.loads(server.bodies[0])
    assert sent["variables"] == {"accountId": 1234, "nrql": "SELECT count(*) FROM Transaction"}
    assert "nrql(query: $nrql)" in sent["query"]


async def test_newrelic_graphql_errors_and_bad_account() -> None:
    body = {"errors": [{"message": "NRQL Syntax Error"}], "data": None}
    result, _ = await measure(NewRelicProvider, {("POST", "/graphql"): reply(body)},
                              lambda _: metric("newRelic", query="bad"), NR_SECRET)
    assert isinstance(result, ProviderError) and result.reason is ErrorReason.QUERY_ERROR
    assert "NRQL Syntax Error" in result.message
    bad = {**NR_SECRET, "ARGO_ROLLOUTS_NEWRELIC_ACCOUNT_ID": "abc"}
    result, _ = await measure(NewRelicProvider, {}, lambda _: metric("newRelic", query="q"), bad)
    assert isinstance(result, ProviderError) and result.reason is ErrorReason.CREDENTIALS


async def test_newrelic_timeout() -> None:
    result, _ = await measure(NewRelicProvider, {("POST", "/graphql"): reply({}, delay=3)},
                              lambda _: metric("newRelic", query="q", timeout=1), NR_SECRET)
    assert isinstance(result, ProviderError) and result.reason is ErrorReason.TIMEOUT


# --- graphite --------------------------------------------------------------------------------


async def test_graphite_render_api() -> None:
    body = [{"target": "summarize(x)", "datapoints": [[1.5, 1], [None, 2], [2.0, 3]]},
            {"target": "other", "datapoints": [[9, 1]]}]
    result, server = await measure(
        GraphiteProvider, {("GET", "/render"): reply(body)},
        lambda url: metric("graphite", address=url,
                           query="target=summarize(\n  x,\n  '5min', 'avg')"))
    assert isinstance(result, Measurement) and result.value == [1.5, 2.0]
    assert dict(server.requests[0].query) == {
        "target": "summarize(x,'5min', 'avg')", "from": str(END - 300), "until": str(END),
        "format": "json"}


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [([], 200, None), ([{"target": "x", "datapoints": [[None, 1]]}], 200, None),
     ({"error": "bad target"}, 400, ErrorReason.QUERY_ERROR),
     ("not json", 500, ErrorReason.HTTP_STATUS)],
)
async def test_graphite_errors_and_empty(body: object, status: int,
                                         reason: ErrorReason | None) -> None:
    handler = (reply(None, status, text=body, content_type="text/plain")
               if isinstance(body, str) else reply(body, status))
    result, _ = await measure(GraphiteProvider, {("GET", "/render"): handler},
                              lambda url: metric("graphite", address=url, query="x"))
    if reason is None:
        assert isinstance(result, Measurement) and result.no_data
    else:
        assert isinstance(result, ProviderError) and result.reason is reason


# --- influxdb --------------------------------------------------------------------------------

CSV = (
    "#datatype,string,long,dateTime:RFC3339,double,string\r\n"
    "#group,false,false,false,false,true\r\n"
    "#default,_result,,,,\r\n"
    ",result,table,_time,_value,_field\r\n"
    ",,0,2026-03-01T11:59:00Z,0.01,errors\r\n"
    ",,0,2026-03-01T12:00:00Z,0.02,errors\r\n"
    "\r\n"
    "#datatype,string,long,dateTime:RFC3339,string\r\n"
    ",result,table,_time,_value\r\n"
    ",,1,2026-03-01T12:00:00Z,hello\r\n"
)
INFLUX_SECRET = {"address": "{url}", "authToken": "influx-token", "org": "acme"}


async def test_influxdb_flux_query_and_annotated_csv() -> None:
    result, server = await measure(
        InfluxdbProvider,
        {("POST", "/api/v2/query"): reply(None, text=CSV, content_type="text/csv")},
        lambda _: metric("influxdb", query='from(bucket: "b") |> range(start: -15m)'),
        INFLUX_SECRET)
    assert isinstance(result, Measurement) and result.value == [0.01, 0.02, "hello"]
    request = server.requests[0]
    assert request.headers["Authorization"] == "Token influx-token"
    assert request.headers["Content-Type"] == "application/vnd.flux"
    assert dict(request.query) == {"org": "acme"}
    assert server.bodies[0] == b'from(bucket: "b") |> range(start: -15m)'


async def test_influxdb_errors_empty_and_timeout() -> None:
    error = {"code": "invalid", "message": "compilation failed: undefined identifier"}
    result, _ = await measure(InfluxdbProvider, {("POST", "/api/v2/query"): reply(error, 400)},
                              lambda _: metric("influxdb", query="x"), INFLUX_SECRET)
    assert isinstance(result, ProviderError) and result.reason is ErrorReason.QUERY_ERROR
    assert "compilation failed" in result.message
    result, _ = await measure(
        InfluxdbProvider,
        {("POST", "/api/v2/query"): reply(None, text="\r\n", content_type="text/csv")},
        lambda _: metric("influxdb", query="x"), INFLUX_SECRET)
    assert isinstance(result, Measurement) and result.no_data
    result, _ = await measure(
        InfluxdbProvider, {("POST", "/api/v2/query"): reply({}, delay=3)},
        lambda _: metric("influxdb", query="x", timeout=1), INFLUX_SECRET)
    assert isinstance(result, ProviderError) and result.reason is ErrorReason.TIMEOUT


def test_annotated_csv_without_values() -> None:
    assert parse_annotated_csv(",result,table\r\n,,0\r\n") == []


# --- wavefront -------------------------------------------------------------------------------


async def test_wavefront_chart_api() -> None:
    body = {"timeseries": [{"data": [[1, 0.5], [2, 0.97]]}], "warnings": "slow query"}
    result, server = await measure(
        WavefrontProvider, {("GET", "/api/v2/chart/api"): reply(body)},
        lambda url: metric("wavefront", address=url, query='ts("req")'),
        {"ARGO_ROLLOUTS_WAVEFRONT_TOKEN": "wf-token"})
    assert isinstance(result, Measurement) and result.value == 0.97
    assert result.metadata == {"warnings": "slow query"}
    request = server.requests[0]
    assert request.headers["Authorization"] == "Bearer wf-token"
    assert request.query["q"] == 'ts("req")' and request.query["e"] == str(END * 1000)


async def test_wavefront_empty_error_and_missing_token() -> None:
    result, _ = await measure(
        WavefrontProvider, {("GET", "/api/v2/chart/api"): reply({"timeseries": []})},
        lambda url: metric("wavefront", address=url, query="q"), {"token": "t"})
    assert isinstance(result, Measurement) and result.no_data
    result, _ = await measure(
        WavefrontProvider,
        {("GET", "/api/v2/chart/api"): reply({"message": "Query syntax error"}, 400)},
        lambda url: metric("wavefront", address=url, query="q"), {"token": "t"})
    assert isinstance(result, ProviderError) and result.reason is ErrorReason.QUERY_ERROR
    result, _ = await measure(WavefrontProvider, {},
                              lambda url: metric("wavefront", address=url, query="q"))
    assert isinstance(result, ProviderError) and result.reason is ErrorReason.CREDENTIALS


# --- skywalking ------------------------------------------------------------------------------


async def test_skywalking_graphql_with_duration() -> None:
    data = {"service_apdex": {"values": {"values": [{"value": 9950}]}}}
    result, server = await measure(
        SkyWalkingProvider, {("POST", "/graphql"): reply({"data": data})},
        lambda url: metric("skywalking", address=url, interval="3m",
                           query="query q($duration: Duration!) { x }"))
    assert isinstance(result, Measurement) and result.value == data
    sent = json.loads(server.bodies[0])
    assert sent["variables"]["duration"] == {"start": "2026-03-01 1157",
                                             "end": "2026-03-01 1200", "step": "MINUTE"}


async def test_skywalking_errors_null_data_and_timeout() -> None:
    result, _ = await measure(
        SkyWalkingProvider,
        {("POST", "/graphql"): reply({"errors": [{"message": "no such metric"}]})},
        lambda url: metric("skywalking", address=url, query="q"))
    assert isinstance(result, ProviderError) and result.reason is ErrorReason.QUERY_ERROR
    result, _ = await measure(SkyWalkingProvider, {("POST", "/graphql"): reply({"data": None})},
                              lambda url: metric("skywalking", address=url, query="q"))
    assert isinstance(result, Measurement) and result.no_data
    result, _ = await measure(SkyWalkingProvider, {("POST", "/graphql"): reply({}, delay=3)},
                              lambda url: metric("skywalking", address=url, query="q",
                                                 timeout=1))
    assert isinstance(result, ProviderError) and result.reason is ErrorReason.TIMEOUT


async def test_vendor_addresses_obey_the_egress_policy() -> None:
    result, _ = await measure(
        GraphiteProvider, {},
        lambda _: metric("graphite", address="http://169.254.169.254", query="x"))
    assert isinstance(result, ProviderError) and result.reason is ErrorReason.ADDRESS_DENIED
