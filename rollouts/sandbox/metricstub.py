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
import threading
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

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
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

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
        self._thread = threading.Thread(target=self._run, name="metric-stub", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/api/v1/query", self._query)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1])
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def stop(self) -> None:
        """Stop serving: from now on queries get connection refused."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> MetricStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
