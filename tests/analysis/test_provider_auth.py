"""Argo's credentials on a local server: Prometheus basicAuth / oauth2 / sigv4, web oauth2,
and CloudWatch GetMetricData through boto3 (botocore's Stubber checks the request shape)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from rollouts.analysis.providers.base import (
    ErrorReason,
    Measurement,
    ProviderContext,
    ProviderError,
)
from rollouts.analysis.providers.cloudwatch import CloudWatchProvider
from rollouts.analysis.providers.prometheus import PrometheusProvider
from rollouts.analysis.providers.web import WebProvider
from rollouts.models.analysis import Metric
from tests.analysis.local_http import serve

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
VECTOR = {"status": "success", "data": {"resultType": "vector",
                                        "result": [{"metric": {}, "value": [1, "0.99"]}]}}


async def token_endpoint(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    expected = "Basic " + base64.b64encode(b"client:s3cret").decode()
    if request.headers.get("Authorization") != expected:
        return web.json_response({"error": "invalid_client"}, status=401)
    assert form["grant_type"] == "client_credentials" and form["scope"] == "read write"
    return web.json_response({"access_token": "tok-123", "token_type": "Bearer"})


async def prometheus(request: web.Request) -> web.StreamResponse:
    return web.json_response(VECTOR)


def prom_metric(url: str, authentication: dict[str, Any]) -> Metric:
    return Metric.model_validate({"name": "m", "provider": {"prometheus": {
        "address": url, "query": "up", "authentication": authentication}}})


async def test_prometheus_oauth2_client_credentials() -> None:
    routes = {("POST", "/token"): token_endpoint, ("POST", "/api/v1/query"): prometheus}
    async with serve(routes) as server, PrometheusProvider() as provider:
        oauth = {"tokenUrl": server.url + "/token", "clientId": "client",
                 "clientSecret": "s3cret", "scopes": ["read", "write"]}
        result = await provider.measure(prom_metric(server.url, {"oauth2": oauth}),
                                        ProviderContext(), NOW)
        bad = await provider.measure(
            prom_metric(server.url, {"oauth2": {**oauth, "clientSecret": "wrong"}}),
            ProviderContext(), NOW)
    assert isinstance(result, Measurement) and result.value == [0.99]
    assert server.requests[-2].headers["Authorization"] == "Bearer tok-123"
    assert isinstance(bad, ProviderError) and bad.reason is ErrorReason.CREDENTIALS
    assert "answered 401" in bad.message and "wrong" not in bad.message


async def test_prometheus_argo_basic_auth() -> None:
    async with serve({("POST", "/api/v1/query"): prometheus}) as server, \
            PrometheusProvider() as provider:
        result = await provider.measure(
            prom_metric(server.url, {"basicAuth": {"username": "u", "password": "p"}}),
            ProviderContext(), NOW)
    assert isinstance(result, Measurement)
    assert server.requests[0].headers["Authorization"] == "Basic " + base64.b64encode(
        b"u:p").decode()


async def test_prometheus_sigv4_signs_with_the_aws_credential_chain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("botocore")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    async with serve({("POST", "/api/v1/query"): prometheus}) as server, \
            PrometheusProvider() as provider:
        result = await provider.measure(
            prom_metric(server.url, {"sigv4": {"region": "eu-west-1"}}), ProviderContext(), NOW)
    assert isinstance(result, Measurement)
    headers = server.requests[0].headers
    assert headers["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") and "/eu-west-1/aps/aws4_request" in \
        headers["Authorization"]
    assert "X-Amz-Date" in headers and "SignedHeaders=" in headers["Authorization"]


async def test_web_oauth2() -> None:
    async def api(request: web.Request) -> web.StreamResponse:
        ok = request.headers.get("Authorization") == "Bearer tok-123"
        return web.json_response({"ok": ok}, status=200 if ok else 401)

    routes = {("POST", "/token"): token_endpoint, ("GET", "/api"): api}
    async with serve(routes) as server, WebProvider() as provider:
        metric = Metric.model_validate({"name": "m", "provider": {"web": {
            "url": server.url + "/api", "jsonPath": "{$.ok}",
            "authentication": {"oauth2": {"tokenUrl": server.url + "/token",
                                          "clientId": "client", "clientSecret": "s3cret",
                                          "scopes": ["read", "write"]}}}}})
        result = await provider.measure(metric, ProviderContext(), NOW)
    assert isinstance(result, Measurement) and result.value is True


def cloudwatch_metric(**extra: Any) -> Metric:
    return Metric.model_validate({"name": "m", "provider": {"cloudWatch": {
        "interval": "15m",
        "metricDataQueries": [{"Id": "rate", "Expression": "errors / requests"}], **extra}}})


async def test_cloudwatch_get_metric_data() -> None:
    boto3 = pytest.importorskip("boto3")
    from botocore.stub import Stubber

    client = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="a",
                          aws_secret_access_key="b")
    stubber = Stubber(client)
    stamp = NOW - timedelta(minutes=1)
    stubber.add_response(
        "get_metric_data",
        {"MetricDataResults": [{"Id": "rate", "Label": "rate", "Timestamps": [stamp],
                                "Values": [0.004], "StatusCode": "Complete"}]},
        {"MetricDataQueries": [{"Id": "rate", "Expression": "errors / requests"}],
         "StartTime": NOW - timedelta(minutes=15), "EndTime": NOW},
    )
    stubber.add_response("get_metric_data", {"MetricDataResults": []}, None)
    stubber.add_client_error("get_metric_data", "ValidationError", "bad expression")
    stubber.activate()
    provider = CloudWatchProvider(client_factory=lambda: client)
    first = await provider.measure(cloudwatch_metric(), ProviderContext(), NOW)
    empty = await provider.measure(cloudwatch_metric(), ProviderContext(), NOW)
    error = await provider.measure(cloudwatch_metric(), ProviderContext(), NOW)
    await provider.aclose()
    assert isinstance(first, Measurement)
    assert first.value == [{"Id": "rate", "Label": "rate", "StatusCode": "Complete",
                            "Timestamps": [stamp.isoformat()], "Values": [0.004]}]
    assert isinstance(empty, Measurement) and empty.no_data
    assert isinstance(error, ProviderError) and error.reason is ErrorReason.QUERY_ERROR
    assert "bad expression" in error.message


async def test_cloudwatch_endpoint_obeys_the_egress_policy() -> None:
    provider = CloudWatchProvider(endpoint_url="http://169.254.169.254/",
                                  client_factory=lambda: None)
    result = await provider.measure(cloudwatch_metric(), ProviderContext(), NOW)
    assert isinstance(result, ProviderError) and result.reason is ErrorReason.ADDRESS_DENIED
