"""`bounded_requests`: kopf's session sends at most N requests other than watches at once,
and never holds a watch back (a watch holds its connection while it streams)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from rollouts.kube.sessions import bounded_requests
from tests.unit.test_kube_sessions import serving


class Server:
    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.release_watch = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") == "true":  # streams until told to stop
            response = web.StreamResponse()
            await response.prepare(request)
            await response.write(b'{"type": "ADDED"}\n')
            await self.release_watch.wait()
            await response.write_eof()
            return response
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await asyncio.sleep(0.02)
        self.in_flight -= 1
        return web.json_response({"ok": True})


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, str]]:
    state = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    async with serving(app) as url:
        try:
            yield state, url
        finally:
            state.release_watch.set()


async def test_writes_wait_their_turn_and_watches_do_not(server: tuple[Server, str]) -> None:
    state, url = server
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     middlewares=(bounded_requests(3),)) as session:
        # More watches than the bound: none of them may wait behind it.
        watches = [await session.get(f"{url}/w{i}", params={"watch": "true"})
                   for i in range(5)]
        assert [w.status for w in watches] == [200] * 5

        async def patch(i: int) -> object:
            async with session.patch(f"{url}/p{i}", json={}) as response:
                return await response.json()

        answers = await asyncio.gather(*(patch(i) for i in range(30)))
        assert answers == [{"ok": True}] * 30
        assert state.most == 3  # the bound, reached and never passed
        # The watches still stream after the writes.
        assert await watches[0].content.readline() == b'{"type": "ADDED"}\n'
        state.release_watch.set()
        for watch in watches:
            watch.close()
