"""A simulated application for the sandbox: request metrics per ReplicaSet, for Prometheus.

Every ReplicaSet with ready pods gets its own small HTTP server on 127.0.0.1 (a random free
port) answering ``GET /metrics`` in the Prometheus text format, and Prometheus scrapes it.
The traffic is synthetic and needs no background loop: each ready pod serves
``rps_per_pod`` requests per second (10 by default) for **each Service whose selector matches
the pod**, and the counters are advanced, whenever they are read or the inputs change, by the
time elapsed since. How the requests go for each pod image, and the series and labels
exported: `rollouts.sandbox.app_traffic` (the pure part; this module follows the API
emulator and serves it).

Endpoints and Prometheus targets
--------------------------------
Prometheus 2.42 applies target changes in 5 s batches (discovery, then the scrape manager),
so a freshly registered target is first scraped up to ~10 s late. The simulator therefore
keeps a few endpoints registered ahead of need (``spare_endpoints``): a ReplicaSet that gets
ready pods takes a registered idle endpoint and is scraped at the next scrape interval; the
endpoint goes back to the pool (exporting nothing, so its series go stale at once) when the
ReplicaSet has no ready pod left or is deleted. When the pool runs dry a new endpoint is
started and registered with `PrometheusServer.set_targets`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from aiohttp import web

from rollouts.sandbox.apiserver import ApiEmulator, Subscription
from rollouts.sandbox.app_traffic import Profile, ReplicaSetTraffic, profile_for_pod_spec
from rollouts.sandbox.routes import ROUTE_KINDS, route_groups

__all__ = ["AppSimulator"]

_LOG = logging.getLogger(__name__)
_RS = ("apps", "v1", "replicasets")
_SERVICES = ("", "v1", "services")
HASH_LABEL = "rollouts-pod-template-hash"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Targets(Protocol):
    def set_targets(self, targets: Iterable[str], *, job: str | None = None) -> None: ...


class _Endpoint:
    """One HTTP server exporting one ReplicaSet's metrics (or nothing while idle)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.app: ReplicaSetTraffic | None = None
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.scrapes = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        application = web.Application()
        application.router.add_get("/metrics", self._metrics)
        self.runner = web.AppRunner(application, access_log=None)
        await self.runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        await web.SockSite(self.runner, sock).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        self.scrapes += 1
        text = self.app.render(self.clock()) if self.app is not None else ""
        return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


def _selector_matches(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    # A Service without a selector has no automatic endpoints.
    return bool(selector) and all(labels.get(k) == v for k, v in (selector or {}).items())


def _owner_rollout(rs: Mapping[str, Any]) -> str:
    for ref in (rs.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return str(ref.get("name") or "")
    return ""


class AppSimulator:
    """Serves the simulated application's metrics for every ReplicaSet with ready pods.

    Runs its own event loop in a daemon thread (`start()` / `stop()`), fed by in-process
    watches of ReplicaSets and Services on `emulator`. `prometheus` (anything with
    `set_targets`) is told the endpoints under `job`.
    """

    def __init__(
        self,
        emulator: ApiEmulator,
        prometheus: _Targets | None = None,
        *,
        namespace: str | None = None,
        job: str = "app",
        rps_per_pod: float = 10.0,
        spare_endpoints: int = 4,
        profile: Callable[[Mapping[str, Any]], Profile] = profile_for_pod_spec,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.emulator = emulator
        self.prometheus = prometheus
        self.namespace = namespace
        self.job = job
        self.rps_per_pod = rps_per_pod
        self.spare_endpoints = spare_endpoints
        self.profile = profile
        self.clock = clock
        self.apps: dict[tuple[str, str], ReplicaSetTraffic] = {}  # (ns, rs name) -> traffic
        self._services: dict[tuple[str, str], dict[str, str]] = {}  # (ns, name) -> selector
        self._routes: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, ns, name)
        self._endpoints: list[_Endpoint] = []
        self._assigned: dict[tuple[str, str], _Endpoint] = {}
        self._subs: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    # -- lifecycle (sync, own thread) ------------------------------------------------------

    def start(self) -> AppSimulator:
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="sandbox-app", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> AppSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        await self.astart()
        try:
            self._ready.set()
            await self._stop.wait()
        finally:
            await self.astop()

    # -- lifecycle (async, on the caller's loop) -------------------------------------------

    async def astart(self) -> None:
        for _ in range(self.spare_endpoints):
            await self._new_endpoint()
        self._publish()
        svc_sub = self.emulator.subscribe(*_SERVICES, namespace=self.namespace, initial=True)
        rs_sub = self.emulator.subscribe(*_RS, namespace=self.namespace, initial=True)
        self._subs = [svc_sub, rs_sub]
        # Whatever order the two watches deliver in, a Service event re-matches every
        # ReplicaSet of its namespace.
        self._tasks = [
            asyncio.create_task(self._pump(svc_sub, self._on_service), name="app-services"),
            asyncio.create_task(self._pump(rs_sub, self._on_replica_set), name="app-rs"),
        ]
        for group, version, plural in ROUTE_KINDS:
            try:
                sub = self.emulator.subscribe(group, version, plural, namespace=self.namespace,
                                              initial=True)
            except Exception:  # the kind is not served (its CRD not applied)
                continue
            self._subs.append(sub)
            self._tasks.append(asyncio.create_task(
                self._pump(sub, self._on_route(plural)), name=f"app-{plural}"))

    async def astop(self) -> None:
        for sub in self._subs:
            sub.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for endpoint in self._endpoints:
            await endpoint.stop()
        self._subs, self._tasks, self._endpoints = [], [], []
        self._assigned.clear()

    # -- queries (any thread) --------------------------------------------------------------

    def endpoints(self) -> dict[str, str]:
        """ReplicaSet name -> "host:port" of its metrics endpoint, for the served ones."""
        return {key[1]: ep.address for key, ep in list(self._assigned.items())}

    def targets(self) -> list[str]:
        """Every registered endpoint, idle ones included."""
        return [ep.address for ep in list(self._endpoints)]

    def wait_scraped(self, timeout: float = 30.0) -> None:
        """Block until every registered endpoint has been scraped (Prometheus has taken
        the targets up): from then on a ReplicaSet's series appear within one interval."""
        deadline = time.monotonic() + timeout
        while any(ep.scrapes == 0 for ep in list(self._endpoints)):
            if time.monotonic() >= deadline:
                idle = [ep.address for ep in self._endpoints if ep.scrapes == 0]
                raise TimeoutError(f"endpoints not scraped within {timeout}s: {idle}")
            time.sleep(0.1)

    # -- events ----------------------------------------------------------------------------

    async def _pump(self, sub: Subscription, handle: Callable[[str, dict[str, Any]],
                                                               Any]) -> None:
        async for event in sub:
            try:
                result = handle(event.type, event.object)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # one odd object must not stop the simulator
                _LOG.exception("sandbox app: handling a %s event failed", event.type)

    def _on_service(self, event_type: str, svc: dict[str, Any]) -> None:
        meta = svc.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if event_type == "DELETED":
            self._services.pop(key, None)
        else:
            self._services[key] = dict((svc.get("spec") or {}).get("selector") or {})
        now = self.clock()
        for app_key, app in self.apps.items():
            if app_key[0] == key[0]:
                app.set_services(self._services_for(app), now)
        self._rebalance(now)

    def _on_route(self, plural: str) -> Callable[[str, dict[str, Any]], None]:
        def handle(event_type: str, body: dict[str, Any]) -> None:
            meta = body.get("metadata") or {}
            key = (plural, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            if event_type == "DELETED":
                self._routes.pop(key, None)
            else:
                self._routes[key] = body
            self._rebalance(self.clock())
        return handle

    def _rebalance(self, now: float) -> None:
        """Request rates of the Services behind weighted routes: the pods behind a route
        serve `rps_per_pod` each in all, split between its Services by the route's weights
        and within a Service by ready pods."""
        by_namespace: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for (plural, namespace, _), body in self._routes.items():
            by_namespace.setdefault(namespace, {}).setdefault(plural, []).append(body)
        rates: dict[tuple[str, str], dict[str, float]] = {key: {} for key in self.apps}
        for namespace, objects in by_namespace.items():
            apps = [(k, a) for k, a in self.apps.items() if k[0] == namespace and a.ready > 0]
            for group in route_groups(objects):
                behind = [(k, a) for k, a in apps if set(a.services) & set(group)]
                pods = sum(a.ready for _, a in behind)
                for service, share in group.items():
                    serving = [(k, a) for k, a in behind if service in a.services]
                    ready = sum(a.ready for _, a in serving)
                    for key, app in serving:
                        rates[key][service] = float(
                            self.rps_per_pod * pods * share * app.ready / ready)
        for key, app in self.apps.items():
            app.set_rates(rates[key], now)

    def _services_for(self, app: ReplicaSetTraffic) -> list[str]:
        return [name for (ns, name), selector in self._services.items()
                if ns == app.namespace and _selector_matches(selector, app.pod_labels)]

    async def _on_replica_set(self, event_type: str, rs: dict[str, Any]) -> None:
        meta = rs.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        ready = 0 if event_type == "DELETED" else int(
            (rs.get("status") or {}).get("readyReplicas") or 0)
        now = self.clock()
        app = self.apps.get(key)
        if ready <= 0:
            if app is not None:
                app.set_ready(0, now)
            self._release(key)
            if event_type == "DELETED":
                self.apps.pop(key, None)
            self._rebalance(now)
            return
        if app is None:
            template = (rs.get("spec") or {}).get("template") or {}
            labels = dict((template.get("metadata") or {}).get("labels") or {})
            app = ReplicaSetTraffic(
                namespace=key[0], replicaset=key[1], rollout=_owner_rollout(rs),
                pod_hash=str(labels.get(HASH_LABEL) or (meta.get("labels") or {}).get(
                    HASH_LABEL) or ""),
                pod_labels=labels, profile=self.profile(template.get("spec") or {}), now=now,
                rps_per_pod=self.rps_per_pod)
            app.set_services(self._services_for(app), now)
            self.apps[key] = app
        app.set_ready(ready, now)
        if key not in self._assigned:
            endpoint = next((ep for ep in self._endpoints if ep.app is None), None)
            if endpoint is None:
                endpoint = await self._new_endpoint()
                self._publish()
            endpoint.app = app
            self._assigned[key] = endpoint
        self._rebalance(now)

    def _release(self, key: tuple[str, str]) -> None:
        endpoint = self._assigned.pop(key, None)
        if endpoint is not None:
            endpoint.app = None

    async def _new_endpoint(self) -> _Endpoint:
        endpoint = _Endpoint(self.clock)
        await endpoint.start()
        self._endpoints.append(endpoint)
        return endpoint

    def _publish(self) -> None:
        if self.prometheus is not None:
            self.prometheus.set_targets(self.targets(), job=self.job)
