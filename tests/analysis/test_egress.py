"""The egress policy: refused addresses, checked redirects, capped bodies (real HTTP server)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiohttp import web

from rollouts.analysis.providers.base import (
    ErrorReason,
    HttpClients,
    ProviderContext,
    ProviderError,
)
from rollouts.analysis.providers.egress import EgressDenied, EgressPolicy, parse_networks
from rollouts.analysis.providers.prometheus import PrometheusProvider
from rollouts.analysis.providers.web import WebProvider
from rollouts.models.analysis import Metric
from tests.analysis.local_http import serve

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def web_metric(url: str, **fields: Any) -> Metric:
    return Metric.model_validate({"name": "m", "provider": {"web": {"url": url, **fields}}})


def resolver(table: dict[str, list[str]]) -> Any:
    async def resolve(host: str) -> Sequence[str]:
        return table.get(host, [])

    return resolve


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[fe80::1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://100.100.100.200/latest/meta-data/",
        "http://rebound.example/",  # a name resolving to the metadata address
        "http://2852039166/",  # 169.254.169.254 as one decimal number
    ],
)
async def test_metadata_and_link_local_addresses_are_refused(url: str) -> None:
    policy = EgressPolicy(resolver=resolver({"rebound.example": ["169.254.169.254"],
                                             "2852039166": ["169.254.169.254"]}))
    async with WebProvider(policy=policy) as provider:
        result = await provider.measure(web_metric(url), ProviderContext(), NOW)
    assert isinstance(result, ProviderError) and result.reason is ErrorReason.ADDRESS_DENIED
    assert "--allow-metric-address" in result.message or "metadata" in result.message


async def test_an_allowed_network_is_let_through() -> None:
    denied = EgressPolicy()
    allowed = EgressPolicy(parse_networks(["169.254.0.0/16"]))
    url = httpx.URL("http://169.254.10.10/")
    with pytest.raises(EgressDenied):
        await denied.check(url)
    await allowed.check(url)
    with pytest.raises(ValueError, match="not a CIDR"):
        parse_networks(["nope"])


async def test_non_http_schemes_are_refused() -> None:
    with pytest.raises(EgressDenied, match="scheme 'file'"):
        await EgressPolicy().check(httpx.URL("file:///etc/passwd"))


async def test_every_redirect_target_is_checked() -> None:
    async def hop(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/iam")

    async def ok(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/final")

    async def final(request: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": True})

    async with serve({("GET", "/hop"): hop, ("GET", "/ok"): ok,
                      ("GET", "/final"): final}) as server, WebProvider() as provider:
        refused = await provider.measure(web_metric(server.url + "/hop"), ProviderContext(),
                                         NOW)
        followed = await provider.measure(web_metric(server.url + "/ok"), ProviderContext(),
                                          NOW)
    assert isinstance(refused, ProviderError)
    assert refused.reason is ErrorReason.ADDRESS_DENIED and "169.254.169.254" in refused.message
    assert not isinstance(followed, ProviderError) and followed.value == {"ok": True}


async def test_redirect_loops_stop() -> None:
    async def loop(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/loop")

    async with serve({("GET", "/loop"): loop}) as server, WebProvider() as provider:
        result = await provider.measure(web_metric(server.url + "/loop"), ProviderContext(),
                                        NOW)
    assert isinstance(result, ProviderError) and "redirects" in result.message
    assert len(server.requests) == 6


@pytest.mark.parametrize("chunked", [False, True])
async def test_large_bodies_are_cut_off(chunked: bool) -> None:
    async def big(request: web.Request) -> web.StreamResponse:
        if not chunked:
            return web.Response(body=b"[" + b"1," * 5000 + b"1]")
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(100):
            await response.write(b"1," * 100)
        return response

    policy = EgressPolicy(max_response_bytes=4096)
    async with serve({("GET", "/big"): big}) as server, WebProvider(policy=policy) as provider:
        result = await provider.measure(web_metric(server.url + "/big"), ProviderContext(), NOW)
    assert isinstance(result, ProviderError) and result.reason is ErrorReason.TOO_LARGE


async def test_the_prometheus_address_is_checked_too() -> None:
    metric = Metric.model_validate({"name": "m", "provider": {"prometheus": {
        "address": "http://169.254.169.254:9090", "query": "up"}}})
    async with PrometheusProvider() as provider:
        result = await provider.measure(metric, ProviderContext(), NOW)
    assert isinstance(result, ProviderError) and result.reason is ErrorReason.ADDRESS_DENIED


async def test_credentials_are_not_sent_to_another_origin() -> None:
    async def start(request: web.Request) -> web.StreamResponse:
        port = request.url.port
        raise web.HTTPFound(f"http://localhost:{port}/landing")

    async def landing(request: web.Request) -> web.StreamResponse:
        return web.json_response({"auth": request.headers.get("Authorization")})

    async with serve({("GET", "/start"): start, ("GET", "/landing"): landing}) as server:
        clients = HttpClients()
        response = await clients.fetch(
            "GET", server.url + "/start", timeout=5, auth=httpx.BasicAuth("u", "p"),
            headers={"Authorization": "Bearer secret-token"})
        await clients.aclose()
    assert isinstance(response, httpx.Response)
    assert response.json() == {"auth": None}
    assert server.requests[0].headers["Authorization"].startswith("Basic ")
