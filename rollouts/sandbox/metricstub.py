"""A Prometheus stand-in whose answers the caller sets: for fault campaigns and their tests.

The real Prometheus of `rollouts.sandbox.prometheus` measures the simulated app, which is what
the demo and the analysis scenarios want; a fault campaign wants the opposite: a metric source
that says exactly "success", "server error", "connection refused" or "no answer at all" when
told, the same for every run, with no scrape delay. This one serves the instant-query endpoint
(`/api/v1/query`, GET or POSTed form) on 127.0.0.1 from its own thread.

Answers are chosen per query: the first rule whose key occurs in the query text wins, else
`default`. `Answer.value(x)` is a one-sample vector; `Answer.error()` a 503 (Prometheus'
answer when it cannot evaluate); `Answer.hang()` never answers (the client's timeout must cut
it off); `stop()` gives connection refused.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from rollouts.sandbox.loopthread import LoopThread, serve_app

__all__ = ["Answer", "MetricStub"]


@dataclass(frozen=True)
class Answer:
    kind: str  # "value" | "error" | "hang"
    number: float = 0.0

    @classmethod
    def value(cls, number: float) -> Answer:
        return cls("value", number)

    @classmethod
    def error(cls) -> Answer:
        return cls("error")

    @classmethod
    def hang(cls) -> Answer:
        return cls("hang")


class MetricStub:
    """`with MetricStub() as prom:` serves on `prom.url` until the block ends."""

    def __init__(self, default: Answer | None = None) -> None:
        self.default = default or Answer.value(1.0)
        self.rules: dict[str, Answer] = {}
        # Queries answered (or left hanging) by kind, and by the rule key that chose them.
        self.served: collections.Counter[str] = collections.Counter()
        self.queries: collections.Counter[str] = collections.Counter()  # by query text
        self.port = 0
        self._stop: asyncio.Event | None = None
        self._thread: LoopThread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer_for(self, query: str) -> Answer:
        for key, answer in list(self.rules.items()):
            if key in query:
                return answer
        return self.default

    async def _query(self, request: web.Request) -> web.Response:
        form: Any = await request.post() if request.method == "POST" else request.query
        query = str(form.get("query") or "")
        answer = self.answer_for(query)
        self.served[answer.kind] += 1
        self.queries[query] += 1
        if answer.kind == "hang":
            assert self._stop is not None
            await self._stop.wait()  # until the stub stops: the client gives up first
            raise web.HTTPServiceUnavailable()
        if answer.kind == "error":
            return web.json_response(
                {"status": "error", "errorType": "unavailable",
                 "error": "stub: Prometheus is unavailable"}, status=503)
        return web.json_response({"status": "success", "data": {
            "resultType": "vector",
            "result": [{"metric": {}, "value": [time.time(), repr(answer.number)]}]}})

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> MetricStub:
        self._thread = LoopThread("metric-stub", self._main)
        self._thread.start()
        return self

    async def _main(self, stop: asyncio.Event, ready: Callable[[], None]) -> None:
        self._stop = stop
        app = web.Application()
        app.router.add_route("*", "/api/v1/query", self._query)

        def serving(port: int) -> None:
            self.port = port
            ready()

        await serve_app(app, self.port, stop, serving)

    def stop(self) -> None:
        """Stop serving: from now on queries get connection refused."""
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def __enter__(self) -> MetricStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
