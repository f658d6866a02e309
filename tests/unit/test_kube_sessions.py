"""KubeClient over both HTTP libraries against a small aiohttp server: a server URL with a
path prefix (API proxies), compressed answers, error statuses, and watch lines longer than
aiohttp's line cap."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from rollouts.errors import ConflictError
from rollouts.kube.client import KubeClient
from rollouts.kube.config import Connection

PREFIX = "/k8s/clusters/c-1"
BIG = "x" * 300_000  # one watch event of ~300 KB: more than aiohttp's 128 KiB line cap


async def _get(request: web.Request) -> web.StreamResponse:
    if request.query.get("watch") != "true":
        answer = web.json_response({"metadata": {"name": "a"},
                                    "auth": request.headers.get("Authorization")})
        answer.enable_compression()  # gzip when asked, as kube-apiserver does large answers
        return answer
    response = web.StreamResponse()
    await response.prepare(request)
    for data in ({"v": BIG}, {"v": "small"}):
        event = {"type": "MODIFIED", "object": {"metadata": {"name": "a"}, "data": data}}
        text = json.dumps(event).encode() + b"\n"
        for start in range(0, len(text), 65536):  # arrives in pieces, as over a network
            await response.write(text[start:start + 65536])
    await response.write_eof()
    return response


async def _conflict(request: web.Request) -> web.Response:
    return web.json_response({"kind": "Status", "code": 409, "reason": "Conflict",
                              "message": "the object has been modified"}, status=409)


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """`app` on a free port of 127.0.0.1; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    base = PREFIX + "/api/v1/namespaces/default/configmaps"
    app.router.add_get(base, _get)
    app.router.add_get(base + "/a", _get)
    app.router.add_patch(base + "/a", _conflict)
    async with serving(app) as url:
        yield url + PREFIX


@pytest.mark.parametrize("http", ["aiohttp", "httpx"])
async def test_prefix_errors_and_long_watch_lines(server: str, http: str) -> None:
    async with KubeClient(Connection(host=server, token="t"), http=http) as client:  # type: ignore[arg-type]
        got = await client.get("", "v1", "configmaps", "default", "a")
        assert got == {"metadata": {"name": "a"}, "auth": "Bearer t"}
        with pytest.raises(ConflictError) as caught:
            await client.patch_merge("", "v1", "configmaps", "default", "a", {"data": {}})
        assert (caught.value.status, caught.value.reason) == (409, "Conflict")
        events = [obj["data"]["v"] async for _, obj in
                  client.watch("", "v1", "configmaps", "default", timeout=5)]
        assert events == [BIG, "small"]
        assert client.request_counts == {"get": 1, "patch": 1, "watch": 1}
