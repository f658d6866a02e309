"""`rollouts dashboard`: an aiohttp server with server-rendered pages and live updates.

One list+watch per kind feeds a shared `Store`; each open page holds one Server-Sent Events
stream that is woken by the store when a Rollout it shows changes, waits a moment so a burst
of changes goes out as one batch, and sends re-rendered fragments (a table row, or the
detail section). Nothing polls the API server per browser.

Security, like `kubectl proxy`: the server uses the user's own kubeconfig, so by default it
listens on 127.0.0.1 only and refuses requests whose Host is not a loopback name (a web page
elsewhere cannot reach it through DNS rebinding). Every action needs the token the page
carries in a header (a cross-site form cannot send one). Bound to another address, every
request needs the token: the URL printed at start carries it once and a cookie keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import importlib.resources
import ipaddress
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from rollouts.cli.kubeopts import CliError
from rollouts.dashboard import model
from rollouts.dashboard.actions import OPERATION_NAMES, apply_operation
from rollouts.dashboard.pages import Frame, Pages
from rollouts.dashboard.state import Key, Store, Subscription, feed
from rollouts.errors import ForbiddenError, NotFoundError, OperationError
from rollouts.kube.client import KubeClient

TOKEN_HEADER = "X-Rollouts-Token"
TOKEN_COOKIE = "rollouts_token"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@dataclass
class Settings:
    namespace: str | None  # None: every namespace
    address: str = "127.0.0.1"
    port: int = 3100
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    # A burst of changes within this window goes out as one batch per page.
    batch_seconds: float = 0.2
    heartbeat_seconds: float = 15.0
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))

    @property
    def require_token(self) -> bool:
        return not is_loopback(self.address)


class Dashboard:
    def __init__(self, settings: Settings, store: Store, client: KubeClient) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.pages = Pages()
        self.port = settings.port  # the bound port once started (for --port 0)

    # --- the application -------------------------------------------------------------------
    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self.list_page)
        app.router.add_get("/rollouts/{namespace}/{name}", self.detail_page)
        app.router.add_get("/stream", self.stream)
        app.router.add_post("/api/rollouts/{namespace}/{name}/{operation}", self.act)
        app.router.add_get("/static/{file}", self.static)
        app.router.add_get("/healthz", self.health)
        app.on_shutdown.append(self._closing)
        return app

    async def _closing(self, app: web.Application) -> None:
        self.store.close()

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        settings = self.settings
        if not settings.require_token:
            host = request.host.rsplit(":", 1)[0].strip("[]")
            if not is_loopback(host):
                return web.Response(status=421, text=f"refused: Host {request.host} is not a "
                                    "loopback address (the dashboard listens on loopback only)")
        elif request.path != "/healthz":
            offered = request.query.get("token")
            if offered is not None and _same(offered, settings.token):
                query = {k: v for k, v in request.query.items() if k != "token"}
                target = request.path + (f"?{urlencode(query)}" if query else "")
                response = web.HTTPFound(target)
                response.set_cookie(TOKEN_COOKIE, settings.token, httponly=True,
                                    samesite="Strict")
                return response
            if not _same(request.cookies.get(TOKEN_COOKIE, ""), settings.token):
                return web.Response(status=401, text="the dashboard needs its token: open the "
                                    "URL `rollouts dashboard` printed (it ends in ?token=...)")
        if request.method == "POST" and not _same(request.headers.get(TOKEN_HEADER, ""),
                                                  settings.token):
            return web.json_response({"error": "missing or wrong dashboard token"},
                                     status=403)
        return await handler(request)

    def _frame(self) -> Frame:
        scope = (f"namespace {self.settings.namespace}" if self.settings.namespace
                 else "all namespaces")
        return Frame("/", self.settings.token, scope, model.when_synced(self.store))

    # --- pages -----------------------------------------------------------------------------
    async def list_page(self, request: web.Request) -> web.Response:
        namespace = request.query.get("namespace", "")
        phase = request.query.get("phase", "")
        rows = model.rows(self.store, self.settings.clock(), namespace=namespace or None,
                          phase=phase or None)
        stream = "/stream?" + urlencode({"view": "list", "namespace": namespace,
                                         "since": self.store.seq})
        html = self.pages.rollouts(self._frame(), rows, self.store.namespaces(),
                                   namespace=namespace, phase=phase, stream=stream)
        return web.Response(text=html, content_type="text/html")

    async def detail_page(self, request: web.Request) -> web.Response:
        key = (request.match_info["namespace"], request.match_info["name"])
        detail = model.detail(self.store, key, self.settings.clock())
        if detail is None:
            raise web.HTTPNotFound(text=f"rollout {key[1]} not found in namespace {key[0]}")
        stream = "/stream?" + urlencode({"view": "detail", "namespace": key[0],
                                         "name": key[1], "since": self.store.seq})
        return web.Response(text=self.pages.detail(self._frame(), detail, stream=stream),
                            content_type="text/html")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["file"]
        suffix = name[name.rfind("."):] if "." in name else ""
        resource = importlib.resources.files("rollouts.dashboard") / "static" / name
        if suffix not in STATIC_TYPES or "/" in name or not resource.is_file():
            raise web.HTTPNotFound()
        return web.Response(body=resource.read_bytes(), content_type=STATIC_TYPES[suffix],
                            headers={"Cache-Control": "no-cache"})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"rollouts": len(self.store.objects["rollouts"]),
                                  "problems": self.store.problems})

    # --- live updates ----------------------------------------------------------------------
    async def stream(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        namespace = query.get("namespace", "")
        detail_key: Key | None = None
        if query.get("view") == "detail":
            detail_key = (namespace, query.get("name", ""))
        try:
            since = int(query.get("since", "0"))
        except ValueError:
            since = 0

        def wants(key: Key) -> bool:
            if detail_key is not None:
                return key == detail_key
            return not namespace or key[0] == namespace

        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no"})
        await response.prepare(request)
        subscription = self.store.subscribe(wants)
        # What changed between the page's rendering and this stream connecting.
        subscription.dirty |= {k for k in self.store.changed_since(since) if wants(k)}
        try:
            await self._send(response, "synced", {"at": self.settings.clock().isoformat(),
                                                   "count": 0})
            await self._pump(response, subscription, detail_key)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.unsubscribe(subscription)
        return response

    async def _pump(self, response: web.StreamResponse, subscription: Subscription,
                    detail_key: Key | None) -> None:
        while not self.store.closed:
            if not subscription.dirty:
                try:
                    async with asyncio.timeout(self.settings.heartbeat_seconds):
                        await subscription.wake.wait()
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if self.store.closed:
                    return
                await asyncio.sleep(self.settings.batch_seconds)
            keys = subscription.take()
            now = self.settings.clock()
            if detail_key is not None:
                html = self.pages.detail_body(model.detail(self.store, detail_key, now))
                await self._send(response, "detail", {"html": html})
            else:
                frame = self._frame()
                for key in sorted(keys):
                    body = self.store.rollout(key)
                    if body is None:
                        await self._send(response, "remove", {"id": model.dom_id(key)})
                    else:
                        row = model.row(self.store, body, now)
                        await self._send(response, "row", {"id": row.id,
                                                           "html": self.pages.row(frame, row)})
            await self._send(response, "synced", {"at": now.isoformat(), "count": len(keys)})

    @staticmethod
    async def _send(response: web.StreamResponse, event: str, data: dict[str, Any]) -> None:
        await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

    # --- actions ---------------------------------------------------------------------------
    async def act(self, request: web.Request) -> web.Response:
        namespace = request.match_info["namespace"]
        name = request.match_info["name"]
        operation = request.match_info["operation"]
        if operation not in OPERATION_NAMES:
            return web.json_response({"error": f"unknown operation {operation!r}"}, status=404)
        try:
            payload = await request.json() if request.can_read_body else {}
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        full = bool(payload.get("full")) if isinstance(payload, dict) else False
        try:
            outcome = await apply_operation(self.client, namespace, name, operation, full=full)
        except OperationError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        except CliError as exc:
            cause = exc.__cause__
            status = 403 if isinstance(cause, ForbiddenError) else \
                404 if isinstance(cause, NotFoundError) else 502
            return web.json_response({"error": exc.message}, status=status)
        return web.json_response({"message": outcome.message, "changes": list(outcome.changes)})


def _same(offered: str, expected: str) -> bool:
    return hmac.compare_digest(offered.encode(), expected.encode())


async def serve(settings: Settings, client: KubeClient, *,
                started: Callable[[str], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Follow the cluster and serve until `stop` is set (or cancelled).

    Fails before listening when the Rollouts cannot be listed (CliError: one line).
    `started` gets the URL to open (with the token when one is required).
    """
    store = Store()
    synced = asyncio.Event()
    feeder = asyncio.create_task(feed(store, client, settings.namespace, synced))
    ready = asyncio.create_task(synced.wait())
    await asyncio.wait({feeder, ready}, return_when=asyncio.FIRST_COMPLETED)
    if feeder.done():
        ready.cancel()
        feeder.result()  # raises the reason
    dashboard = Dashboard(settings, store, client)
    runner = web.AppRunner(dashboard.application(), shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.address, settings.port)
        try:
            await site.start()
        except OSError as exc:
            raise CliError(f"cannot listen on {settings.address}:{settings.port}: "
                           f"{exc.strerror or exc}; try another --port") from exc
        port = _bound_port(runner, settings.port)
        dashboard.port = port
        host = f"[{settings.address}]" if ":" in settings.address else settings.address
        url = f"http://{host}:{port}/"
        if settings.require_token:
            url += f"?token={settings.token}"
        if started is not None:
            started(url)
        waiters: set[asyncio.Future[Any]] = {feeder}
        if stop is not None:
            waiters.add(asyncio.ensure_future(stop.wait()))
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if feeder in done:
            feeder.result()
    finally:
        store.close()
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        await runner.cleanup()


def _bound_port(runner: web.AppRunner, fallback: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return fallback


def run_dashboard(client: KubeClient, settings: Settings,
                  announce: Callable[[str], None]) -> None:
    """Blocking: serve until Ctrl-C (the `rollouts dashboard` command)."""

    async def main() -> None:
        async with client:
            await serve(settings, client, started=announce)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
